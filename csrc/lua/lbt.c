/* lbt.c: luaopen_bt_core, the one exported symbol of the C module.
 * lua/bt/init.lua (`require "bt"`) loads it and adds the Lua parts. */
#include "lua/lbt.h"

#include <stdarg.h>

void bt_setfuncs_sub(lua_State *L, int mod, const char *name, const luaL_Reg *fns)
{
    mod = lua_absindex(L, mod);
    lua_newtable(L);
    luaL_setfuncs(L, fns, 0);
    lua_setfield(L, mod, name);
}

int bt_push_fail(lua_State *L, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    return 2;
}

__attribute__((visibility("default"))) int luaopen_bt_core(lua_State *L)
{
    lua_newtable(L);
    int mod = lua_gettop(L);
    bt_open_bencode(L, mod);
    bt_open_ranges(L, mod);
    bt_open_wire(L, mod);
    bt_open_meta(L, mod);
    bt_open_fs(L, mod);
    bt_open_ratelimit(L, mod);
    bt_open_storage(L, mod);
    bt_open_tracker(L, mod);
    bt_open_session(L, mod);
    lua_pushliteral(L, "0.1.0");
    lua_setfield(L, mod, "version");
    return 1;
}
