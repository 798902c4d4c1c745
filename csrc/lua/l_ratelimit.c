/* l_ratelimit.c: bt.ratelimit, token buckets (csrc/ratelimit.h) seen from Lua,
 * for experiments and tests; the engine uses the C buckets directly.
 */
#include <math.h>

#include "lua/l_ratelimit.h"
#include "core/ratelimit.h"

/* ---- bt.ratelimit (csrc/ratelimit.h) ------------------------------------------ */

#define BT_BUCKET_MT "bt.RateLimit"
/* Buckets one take/wait may chain (the engine uses two: global, per torrent). */
#define BT_BUCKET_MAX_CHAIN 16

static bt_bucket *check_bucket(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, BT_BUCKET_MT);
}

static double check_nonneg(lua_State *L, int arg, double def)
{
    double v = luaL_optnumber(L, arg, def);
    if (!(v >= 0) || isinf(v))
        luaL_argerror(L, arg, "must be a finite number >= 0");
    return v;
}

/* bt.ratelimit(rate [, burst]) -> bt.RateLimit  [-0, +1, e]
 * rate in bytes/s (0 = unlimited); burst in bytes (default max(rate, 16397)).
 * Time is the caller's: every method takes `now` in seconds. */
static int l_ratelimit(lua_State *L)
{
    double rate = check_nonneg(L, 1, 0);
    double burst = check_nonneg(L, 2, 0);
    bt_bucket *b = lua_newuserdatauv(L, sizeof *b, 0);
    bt_bucket_init(b, rate, burst);
    luaL_setmetatable(L, BT_BUCKET_MT);
    return 1;
}

/* The buckets of a call: self at 1, chained ones from `from` on; all refilled to now. */
static int gather(lua_State *L, int from, double now, bt_bucket **bs)
{
    int k = 0;
    bs[k++] = check_bucket(L, 1);
    int top = lua_gettop(L);
    if (top - from + 1 > BT_BUCKET_MAX_CHAIN - 1)
        luaL_argerror(L, from, "too many chained buckets");
    for (int i = from; i <= top; i++)
        bs[k++] = check_bucket(L, i);
    for (int i = 0; i < k; i++)
        bt_bucket_refill(bs[i], now);
    return k;
}

static int64_t check_bytes(lua_State *L, int arg)
{
    lua_Integer n = luaL_checkinteger(L, arg);
    if (n < 0)
        luaL_argerror(L, arg, "byte count must be >= 0");
    return (int64_t)n;
}

static double check_now(lua_State *L, int arg)
{
    double now = luaL_checknumber(L, arg);
    if (!isfinite(now) || now < 0)
        luaL_argerror(L, arg, "time must be a finite number of seconds >= 0");
    return now;
}

/* The arguments of a chained call rl:f(n, now [, other...]): n into *n, the buckets
 * (self first, all refilled to now) into bs; returns how many. */
static int chain_args(lua_State *L, int64_t *n, bt_bucket **bs)
{
    *n = check_bytes(L, 2);
    return gather(L, 4, check_now(L, 3), bs);
}

/* rl:take(n, now [, other...]) -> granted  [-0, +1, e]
 * Refill to now, grant min(n, what every bucket holds), take it from each. */
static int l_rl_take(lua_State *L)
{
    int64_t n;
    bt_bucket *bs[BT_BUCKET_MAX_CHAIN];
    int k = chain_args(L, &n, bs);
    lua_pushinteger(L, (lua_Integer)bt_bucket_take_chain(bs, k, n));
    return 1;
}

/* rl:wait(n, now [, other...]) -> seconds until min(n, burst) is available  [-0, +1, e] */
static int l_rl_wait(lua_State *L)
{
    int64_t n;
    bt_bucket *bs[BT_BUCKET_MAX_CHAIN];
    int k = chain_args(L, &n, bs);
    lua_pushnumber(L, bt_bucket_wait_chain(bs, k, n));
    return 1;
}

/* rl:spend(n, now) -> nothing: bytes already moved; the tokens may go negative  [-0, +0, e] */
static int l_rl_spend(lua_State *L)
{
    bt_bucket *b = check_bucket(L, 1);
    int64_t n = check_bytes(L, 2);
    bt_bucket_refill(b, check_now(L, 3));
    bt_bucket_spend(b, n);
    return 0;
}

/* rl:refund(n, now [, other...]) -> nothing: give back n tokens taken but not used, up
 * to each bucket's burst  [-0, +0, e] */
static int l_rl_refund(lua_State *L)
{
    int64_t n;
    bt_bucket *bs[BT_BUCKET_MAX_CHAIN];
    int k = chain_args(L, &n, bs);
    bt_bucket_refund_chain(bs, k, n);
    return 0;
}

/* rl:available(now) -> whole tokens (math.maxinteger when unlimited)  [-0, +1, e] */
static int l_rl_available(lua_State *L)
{
    bt_bucket *b = check_bucket(L, 1);
    bt_bucket_refill(b, check_now(L, 2));
    lua_pushinteger(L, (lua_Integer)bt_bucket_available(b));
    return 1;
}

/* rl:set(rate [, burst]) -> nothing: new limits, tokens kept (clamped)  [-0, +0, e] */
static int l_rl_set(lua_State *L)
{
    bt_bucket *b = check_bucket(L, 1);
    double rate = check_nonneg(L, 2, 0);
    bt_bucket_set(b, rate, check_nonneg(L, 3, 0));
    return 0;
}

/* rl:limits() -> rate, burst  [-0, +2, e] */
static int l_rl_limits(lua_State *L)
{
    bt_bucket *b = check_bucket(L, 1);
    lua_pushnumber(L, b->rate);
    lua_pushnumber(L, b->burst);
    return 2;
}

static int l_rl_tostring(lua_State *L)
{
    bt_bucket *b = check_bucket(L, 1);
    if (b->rate == 0)
        lua_pushliteral(L, BT_BUCKET_MT " (unlimited)");
    else
        lua_pushfstring(L, BT_BUCKET_MT " (%f B/s, burst %f)", b->rate, b->burst);
    return 1;
}

void bt_open_ratelimit(lua_State *L, int mod)
{
    static const luaL_Reg rl_methods[] = {
        {"take", l_rl_take},   {"wait", l_rl_wait},   {"spend", l_rl_spend},
        {"refund", l_rl_refund},
        {"available", l_rl_available}, {"set", l_rl_set}, {"limits", l_rl_limits},
        {NULL, NULL},
    };
    mod = lua_absindex(L, mod);
    luaL_newmetatable(L, BT_BUCKET_MT);
    luaL_newlib(L, rl_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_rl_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_ratelimit);
    lua_setfield(L, mod, "ratelimit");
}
