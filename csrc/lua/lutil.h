/* lutil.h: what every binding file shares (lutil.c). The lowest file of the
 * binding layer: it knows Lua and nothing of the engine.
 *
 * Each binding file adds its functions and metatables to the module table with
 * one bt_open_<topic>(L, mod), declared in its own header; lbt.c, the module
 * entry, calls them all from luaopen_bt_core, the module's only exported symbol.
 */
#ifndef BT_LUTIL_H
#define BT_LUTIL_H

#include <lua.h>
#include <lauxlib.h>

#define BT_HIDDEN __attribute__((visibility("hidden")))

/* Set field `name` of the table at `mod` to a new table of functions. */
BT_HIDDEN void bt_setfuncs_sub(lua_State *L, int mod, const char *name, const luaL_Reg *fns);

/* A runtime failure's result: pushes nil and the formatted message (lua_pushfstring's
 * formats), returns 2: `return bt_push_fail(L, "%s", err);`. */
BT_HIDDEN int bt_push_fail(lua_State *L, const char *fmt, ...);

/* A class whose instances are userdata with metatable `mt`: `meta` holds the
 * metamethods (an __index among them looks up __methods first, see bt_index_method),
 * `methods` goes to the metatable's __methods, __name is mt.  [-0, +0, m] */
BT_HIDDEN void bt_new_class(lua_State *L, const char *mt, const luaL_Reg *meta, const luaL_Reg *methods);
/* For an __index metamethod: if key (a string at 2) names a method of the class of
 * the userdata at 1, push it and return true.  [-0, +0|1, m] */
BT_HIDDEN int bt_index_method(lua_State *L);

/* 40 lowercase hex digits of 20 bytes.  [-0, +1, m] */
BT_HIDDEN void bt_push_hex20(lua_State *L, const unsigned char *b);

#endif
