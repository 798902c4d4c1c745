/* l_policy.c: calling policy hooks (l_policy.h). */
#define _GNU_SOURCE
#include "lua/l_policy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lua/l_peer.h"
#include "lua/l_torrent.h"

#define COUNT_HOOK_EVERY 10000   /* VM instructions between clock checks (~50 us) */
#define MAX_UPLOAD_SLOTS 1000    /* upload_slots above this is a mistake, not a policy */

static lpolicy *g_active;   /* the policy call running (for the count hook) */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The Lua state holds more than the limit, even after a full collection: a policy
 * growing a table without bound would otherwise take the machine's memory. Checked
 * from the count hook and after every hook call: O(1) unless over (then one
 * collection). The state is shared with the application: the limit counts all of it. */
static bool over_memory(lua_State *L, const lpolicy *lp)
{
    if (!lp->mem_limit || (uint64_t)lua_gc(L, LUA_GCCOUNT) * 1024 <= lp->mem_limit)
        return false;
    lua_gc(L, LUA_GCCOLLECT);
    return (uint64_t)lua_gc(L, LUA_GCCOUNT) * 1024 > lp->mem_limit;
}

static const char *memory_message(lua_State *L, const lpolicy *lp)
{
    return lua_pushfstring(L, "policy hook '%s' left Lua holding more than %d MiB (policy_memory_limit): "
                           "a table growing without bound?", lp->hook ? lp->hook : "?",
                           (int)(lp->mem_limit >> 20));
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lpolicy *lp = g_active;
    if (lp && mono() > lp->deadline)
        luaL_error(L, "policy hook '%s' ran longer than %f s (endless loop?)", lp->hook ? lp->hook : "?",
                   lp->time_limit);
    if (lp && over_memory(L, lp)) {
        memory_message(L, lp);
        lua_error(L);
    }
}

void bt_lpolicy_init(lpolicy *lp, lua_State *L, double time_limit, uint64_t mem_limit)
{
    memset(lp, 0, sizeof *lp);
    lp->L = L;
    lp->time_limit = time_limit;
    lp->mem_limit = mem_limit;
}

void bt_lpolicy_free(lpolicy *lp)
{
    free(lp->err);
    free(lp->elems);
    lp->err = NULL;
    lp->elems = NULL;
    lp->elems_cap = 0;
}

/* ---- arguments ---- */

static void push_peer_or_nil(lua_State *L, bt_peer *p)
{
    if (p)
        bt_lpeer_push(L, p);
    else
        lua_pushnil(L);
}

static void push_number_or_huge(lua_State *L, double v)
{
    lua_pushnumber(L, isfinite(v) ? v : HUGE_VAL);
}

/* Push the hook's arguments after the torrent; returns how many in all. */
static int push_args(lua_State *L, bt_torrent *t, bt_hook h, const bt_hook_args *a)
{
    bt_ltorrent_push(L, t);
    switch (h) {
    case BT_HOOK_PICK:
        bt_lpeer_push(L, a->peer);
        lua_pushinteger(L, a->slots);
        return 3;
    case BT_HOOK_TICK:
        lua_pushnumber(L, a->now);
        return 2;
    case BT_HOOK_ENDGAME:
        return 1;
    case BT_HOOK_TIMEOUT:
        bt_lpeer_push(L, a->peer);
        lua_createtable(L, 0, 4);
        lua_pushinteger(L, a->piece);
        lua_setfield(L, -2, "piece");
        lua_pushinteger(L, a->block);
        lua_setfield(L, -2, "block");
        lua_pushnumber(L, a->age);
        lua_setfield(L, -2, "age");
        push_number_or_huge(L, a->expected);
        lua_setfield(L, -2, "expected");
        lua_pushnumber(L, a->stalled);
        return 4;
    case BT_HOOK_ON_PIECE:
        lua_pushinteger(L, a->piece);
        lua_pushboolean(L, a->ok);
        push_peer_or_nil(L, a->peer);
        return 4;
    case BT_HOOK_QUEUE_DEPTH:
        bt_lpeer_push(L, a->peer);
        return 2;
    case BT_HOOK_CHOKE:
        lua_createtable(L, (int)a->npeers, 0);
        for (uint32_t i = 0; i < a->npeers; i++) {
            bt_lpeer_push(L, a->peers[i]);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        lua_pushinteger(L, a->round);
        lua_pushnumber(L, a->now);
        return 4;
    default:
        return 1;
    }
}

/* ---- results ---- */

/* One Lua value as a bt_value, without coercion (engine/policy.h). Arrays are not
 * followed here. Nothing is formatted: the scheduler names a value only when it
 * refuses it (bt_value_describe). */
static void to_value(lua_State *L, int idx, bt_value *v)
{
    v->type = BT_V_OTHER;
    v->tname = NULL;
    v->elems = NULL;
    v->nelems = 0;
    v->peer = NULL;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        v->type = BT_V_NIL;
        break;
    case LUA_TBOOLEAN:
        v->type = BT_V_BOOLEAN;
        v->b = lua_toboolean(L, idx);
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            v->type = BT_V_INTEGER;
            v->i = lua_tointeger(L, idx);
        } else {
            v->type = BT_V_FLOAT;
            v->f = lua_tonumber(L, idx);
        }
        break;
    case LUA_TSTRING: {
        const char *s = lua_tolstring(L, idx, &v->len);
        size_t n = v->len < sizeof v->s - 1 ? v->len : sizeof v->s - 1;
        memcpy(v->s, s, n);
        v->s[n] = '\0';
        v->type = BT_V_STRING;
        break;
    }
    case LUA_TUSERDATA: {
        lpeer *h = bt_lpeer_test(L, idx);
        if (h) {
            v->type = BT_V_PEER;
            v->peer = h->p && !h->p->closing ? h->p : NULL;
            memcpy(v->address, h->address, sizeof v->address);
        } else {
            if (luaL_getmetafield(L, idx, "__name") == LUA_TSTRING)
                v->tname = lua_tostring(L, -1);   /* the metatable keeps it */
            if (v->tname || !lua_isnil(L, -1))
                lua_pop(L, 1);
            if (!v->tname)
                v->tname = "userdata";
        }
        break;
    }
    case LUA_TTABLE:
        v->type = BT_V_ARRAY;
        break;
    default:
        v->tname = luaL_typename(L, idx);
        break;
    }
}

/* The elements [1..#t] of the table at idx, into lp->elems. 0, or -1 out of memory. */
static int to_array(lpolicy *lp, lua_State *L, int idx, bt_value *v)
{
    lua_Unsigned n = lua_rawlen(L, idx);
    if (n > 1000000)
        n = 1000000;   /* a choke round never needs more: the rest is not looked at */
    if (n > lp->elems_cap) {
        bt_value *ne = realloc(lp->elems, (size_t)n * sizeof *ne);
        if (!ne)
            return -1;
        lp->elems = ne;
        lp->elems_cap = (uint32_t)n;
    }
    for (lua_Unsigned i = 0; i < n; i++) {
        lua_rawgeti(L, idx, (lua_Integer)i + 1);
        to_value(L, -1, &lp->elems[i]);
        lua_pop(L, 1);
    }
    v->elems = lp->elems;
    v->nelems = (uint32_t)n;
    return 0;
}

/* ---- the call ---- */

static bool has_hook(void *ud, bt_torrent *t, bt_hook h)
{
    lpolicy *lp = ud;
    lua_State *L = lp->L;
    bt_ltorrent_push_policy(L, t);
    lua_getfield(L, -1, bt_hook_names[h]);
    bool yes = lua_isfunction(L, -1);
    lua_pop(L, 2);
    return yes;
}

/* Results stay on the stack between calls only as long as a string result needs:
 * each call starts by dropping what the previous one left (kept at `base`). */
static int call_hook(void *ud, bt_torrent *t, bt_hook h, const bt_hook_args *a, bt_value *res, int *nres,
                     const char **err)
{
    lpolicy *lp = ud;
    lua_State *L = lp->L;
    free(lp->err);
    lp->err = NULL;
    int top = lua_gettop(L);
    lua_pushcfunction(L, bt_traceback);
    int base = lua_gettop(L);
    bt_ltorrent_push_policy(L, t);
    lua_getfield(L, -1, bt_hook_names[h]);
    lua_remove(L, -2);
    int nargs = push_args(L, t, h, a);
    lpolicy *saved = g_active;
    const char *saved_hook = lp->hook;
    double saved_deadline = lp->deadline;
    g_active = lp;
    lp->hook = bt_hook_names[h];
    lp->deadline = mono() + lp->time_limit;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, COUNT_HOOK_EVERY);
    int r = lua_pcall(L, nargs, LUA_MULTRET, base);
    if (r == LUA_OK && over_memory(L, lp)) {   /* a short hook that grows a table each call */
        lua_settop(L, base);
        memory_message(L, lp);
        r = LUA_ERRMEM;
    }
    g_active = saved;
    lp->hook = saved_hook;
    lp->deadline = saved_deadline;
    if (!saved)
        lua_sethook(L, NULL, 0, 0);
    if (r != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        lp->err = strdup(msg ? msg : "policy error");
        *err = lp->err ? lp->err : "policy error (out of memory)";
        lua_settop(L, top);
        return -1;
    }
    *nres = lua_gettop(L) - base;
    if (*nres == 0) {
        res->type = BT_V_NOTHING;
    } else {
        to_value(L, base + 1, res);
        if (res->type == BT_V_ARRAY && to_array(lp, L, base + 1, res) != 0) {
            lua_settop(L, top);
            *err = "out of memory";
            return -1;
        }
    }
    lua_settop(L, top);
    return 0;
}

const bt_policy_ops bt_lpolicy_ops = { .has = has_hook, .call = call_hook };

void bt_lpolicy_check(lua_State *L, int idx, uint32_t *slots, double *interval)
{
    idx = lua_absindex(L, idx);
    luaL_checktype(L, idx, LUA_TTABLE);
    for (int h = 0; h < BT_NHOOKS; h++) {
        lua_getfield(L, idx, bt_hook_names[h]);
        if (!lua_isfunction(L, -1))
            luaL_error(L, "policy: hook '%s' is %s, not a function (complete a policy with bt.policy.load)",
                       bt_hook_names[h], luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "upload_slots");
    lua_Integer n = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : -1;
    if (n < 0 || n > MAX_UPLOAD_SLOTS)
        luaL_error(L, "policy: upload_slots must be an integer from 0 to %d, not %s", MAX_UPLOAD_SLOTS,
                   luaL_typename(L, -1));
    lua_pop(L, 1);
    *slots = (uint32_t)n;
    lua_getfield(L, idx, "choke_interval");
    double s = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
    if (!(s >= BT_LPOLICY_MIN_INTERVAL && s <= BT_LPOLICY_MAX_INTERVAL))
        luaL_error(L, "policy: choke_interval must be a number of seconds from %d to %d, not %s",
                   (int)BT_LPOLICY_MIN_INTERVAL, (int)BT_LPOLICY_MAX_INTERVAL,
                   lua_type(L, -1) == LUA_TNUMBER ? lua_tolstring(L, -1, NULL) : luaL_typename(L, -1));
    lua_pop(L, 1);
    *interval = s;
}
