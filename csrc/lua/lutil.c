/* lutil.c: see lutil.h. */
#include "lua/lutil.h"

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

void bt_new_class(lua_State *L, const char *mt, const luaL_Reg *meta, const luaL_Reg *methods)
{
    luaL_newmetatable(L, mt);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__methods");
    lua_pop(L, 1);
}

int bt_index_method(lua_State *L)
{
    if (!luaL_getmetafield(L, 1, "__methods"))
        return 0;
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1)) {
        lua_remove(L, -2);
        return 1;
    }
    lua_pop(L, 2);
    return 0;
}

void bt_push_hex20(lua_State *L, const unsigned char *b)
{
    static const char digits[] = "0123456789abcdef";
    char hex[40];
    for (int i = 0; i < 20; i++) {
        hex[2 * i] = digits[b[i] >> 4];
        hex[2 * i + 1] = digits[b[i] & 15];
    }
    lua_pushlstring(L, hex, 40);
}
