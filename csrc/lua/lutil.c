/* lutil.c: see lutil.h. */
#include "lua/lutil.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

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

void bt_new_class(lua_State *L, const char *mt, const luaL_Reg *meta, const luaL_Reg *methods,
                  const char *const *fields)
{
    luaL_newmetatable(L, mt);
    lua_newtable(L);   /* __methods */
    luaL_setfuncs(L, methods, 0);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "__methods");
    lua_newtable(L);   /* the keys: methods and field positions */
    for (const luaL_Reg *r = methods; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -2, r->name);
    }
    for (int i = 0; fields && fields[i]; i++) {
        lua_pushinteger(L, i + 1);
        lua_setfield(L, -2, fields[i]);
    }
    lua_setfield(L, -3, "__keys");
    lua_pop(L, 1);   /* __methods */
    for (const luaL_Reg *r = meta; r->name; r++) {
        if (strcmp(r->name, "__index") == 0) {
            lua_getfield(L, -1, "__keys");
            lua_pushcclosure(L, r->func, 1);
        } else {
            lua_pushcfunction(L, r->func);
        }
        lua_setfield(L, -2, r->name);
    }
    lua_pop(L, 1);
}

void *bt_testudata_key(lua_State *L, int idx, const void *key)
{
    void *p = lua_touserdata(L, idx);
    if (!p || !lua_getmetatable(L, idx))
        return NULL;
    lua_rawgetp(L, LUA_REGISTRYINDEX, key);
    bool same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    return same ? p : NULL;
}

void bt_class_key(lua_State *L, const char *mt, const void *key)
{
    luaL_getmetatable(L, mt);
    lua_rawsetp(L, LUA_REGISTRYINDEX, key);
}

int bt_index_key(lua_State *L)
{
    lua_pushvalue(L, 2);
    int t = lua_rawget(L, lua_upvalueindex(1));
    if (t == LUA_TFUNCTION)
        return -1;
    int id = t == LUA_TNUMBER ? (int)lua_tointeger(L, -1) : 0;
    lua_pop(L, 1);
    return id;
}

void bt_class_add_method(lua_State *L, const char *mt, const char *name, lua_CFunction f)
{
    luaL_getmetatable(L, mt);
    lua_getfield(L, -1, "__methods");
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
    lua_getfield(L, -2, "__keys");
    lua_pushcfunction(L, f);
    lua_setfield(L, -2, name);
    lua_pop(L, 3);
}

int bt_traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
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

int bt_push_hostport(lua_State *L, int family, const void *addr, int port)
{
    char ip[INET6_ADDRSTRLEN];
    if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, addr, ip, sizeof ip))
        return 0;
    lua_pushfstring(L, family == 4 ? "%s:%d" : "[%s]:%d", ip, port);
    return 1;
}
