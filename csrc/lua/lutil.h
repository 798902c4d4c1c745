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

/* An address as every Lua value shows one: "ip:port", or "[ip]:port" for IPv6 (family
 * 4 or 6; addr in network order). Pushes it and returns 1, or pushes nothing and
 * returns 0 when inet_ntop refuses it.  [-0, +0|1, m] */
BT_HIDDEN int bt_push_hostport(lua_State *L, int family, const void *addr, int port);

/* A class whose instances are userdata with metatable `mt`: `meta` holds the
 * metamethods, `methods` goes to the metatable's __methods (where more may be
 * added later), __name is mt. `fields` (NULL-terminated, may be NULL) names the
 * fields its __index serves: __index gets, as upvalue 1, one table mapping each
 * method name to the method and each field name to its position in `fields`
 * (1-based), so that one lookup tells which: see bt_index_key.  [-0, +0, m] */
BT_HIDDEN void bt_new_class(lua_State *L, const char *mt, const luaL_Reg *meta, const luaL_Reg *methods,
                            const char *const *fields);
/* The userdata at idx if its metatable is the class's (found by `key`, a unique C
 * address the class registered with bt_class_key), else NULL. Costs two registry
 * lookups by pointer instead of the string lookup of luaL_testudata, for handles
 * checked on every hook call and method.  [-0, +0, -] */
BT_HIDDEN void *bt_testudata_key(lua_State *L, int idx, const void *key);
/* Register the metatable `mt` (made already) under `key` for bt_testudata_key.  [-0, +0, m] */
BT_HIDDEN void bt_class_key(lua_State *L, const char *mt, const void *key);

/* In a class's __index: for the key at 2, push its method and return -1, or return
 * the field's position (> 0), or 0 when the class has neither.  [-0, +0|1, -] */
BT_HIDDEN int bt_index_key(lua_State *L);
/* Add a method to a class made by bt_new_class.  [-0, +0, m] */
BT_HIDDEN void bt_class_add_method(lua_State *L, const char *mt, const char *name, lua_CFunction f);

/* A message handler for lua_pcall: the error (or a word on a non-string one) with a
 * traceback.  [-1, +1, m] */
BT_HIDDEN int bt_traceback(lua_State *L);

/* 40 lowercase hex digits of 20 bytes.  [-0, +1, m] */
BT_HIDDEN void bt_push_hex20(lua_State *L, const unsigned char *b);

#endif
