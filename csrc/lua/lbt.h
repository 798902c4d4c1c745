/* lbt.h: shared pieces of the Lua binding layer (the l_*.c files).
 *
 * Every binding file exports one function, bt_open_<topic>(L, mod), that adds
 * its functions and metatables to the module table at stack index `mod`.
 * lbt.c calls them all from luaopen_bt_core, the module's only exported symbol.
 */
#ifndef BT_LBT_H
#define BT_LBT_H

#include <lua.h>
#include <lauxlib.h>

#define BT_HIDDEN __attribute__((visibility("hidden")))

BT_HIDDEN void bt_open_bencode(lua_State *L, int mod);  /* l_bencode.c */
BT_HIDDEN void bt_open_ranges(lua_State *L, int mod);   /* l_ranges.c */
BT_HIDDEN void bt_open_wire(lua_State *L, int mod);     /* l_wire.c */
BT_HIDDEN void bt_open_meta(lua_State *L, int mod);     /* l_meta.c: metainfo, sha1 */
BT_HIDDEN void bt_open_fs(lua_State *L, int mod);       /* l_fs.c: bt.fs */
BT_HIDDEN void bt_open_ratelimit(lua_State *L, int mod);  /* l_ratelimit.c: token buckets */
BT_HIDDEN void bt_open_storage(lua_State *L, int mod);  /* l_storage.c: pieces on disk */
BT_HIDDEN void bt_open_tracker(lua_State *L, int mod);  /* l_tracker.c: announces */
BT_HIDDEN void bt_open_session(lua_State *L, int mod);  /* l_session.c: engine */

/* Set field `name` of the table at `mod` to a new table of functions. */
BT_HIDDEN void bt_setfuncs_sub(lua_State *L, int mod, const char *name, const luaL_Reg *fns);

/* A runtime failure's result: pushes nil and the formatted message (lua_pushfstring's
 * formats), returns 2: `return bt_push_fail(L, "%s", err);`. */
BT_HIDDEN int bt_push_fail(lua_State *L, const char *fmt, ...);

#endif
