/* l_session.c: the engine seen from Lua: bt.Session, bt.Torrent and bt.Peer.
 *
 * Lua usage (lua/bt/session.lua wraps this into the public bt.session):
 *   local cs = bt.session_new(opts, handler)   -- handler(kind, ...) gets ticks and events
 *   local t  = cs:add(meta, dir, policy, max_peers [, trust [, "disk"|"memory" [, load]]])
 *   cs:run(); cs:stop(); cs:close(); cs:port()
 *
 * Every call into Lua from C goes through call_policy / call_handler: a
 * protected call with a traceback, and for policy hooks a count hook that
 * stops a runaway loop. A policy error stops its torrent (peers dropped,
 * verified pieces kept on disk); it never unwinds through libev.
 *
 * Handles: a bt.Peer is (slot, generation). The peer's C struct may be freed
 * at any loop iteration; a stale handle raises "peer ... has disconnected".
 */
#define _GNU_SOURCE
#include "lua/lbt.h"
#include "lua/l_meta.h"
#include "lua/l_ranges.h"
#include "lua/l_tracker.h"
#include "engine/session.h"
#include "engine/tracker.h"

#include <arpa/inet.h>

#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SESSION_MT "bt.Session"
#define TORRENT_MT "bt.Torrent"
#define PEER_MT    "bt.Peer"

#define POLICY_TIME_LIMIT   2.0     /* default seconds one hook call may run before it is stopped */
#define COUNT_HOOK_EVERY    10000   /* VM instructions between clock checks (~50 us) */
#define TIMEOUT_MIN_AGE     1.0     /* a request must stall this long before timeout() is asked */
#define MAX_ITER_PIECES     65536   /* rarest(peer, n): n is clamped here */
#define CHOKE_INTERVAL      10.0    /* seconds between choke rounds (BitTorrent's classic value) */
#define CHOKE_DIRTY_GAP     1.0     /* an extra round for a new interested peer, at most this often */

#define SETI(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
#define SETN(name, v) (lua_pushnumber(L, (v)), lua_setfield(L, -2, name))

typedef struct lsess {
    bt_session s;
    lua_State *L;          /* the main thread, never a coroutine */
    int handler_ref;
    int self_ref;          /* keeps the session (and its uservalue) alive while running */
    bool open;
    bool had_error;
    double deadline;       /* count hook: when the current policy call must give up */
    double time_limit;     /* seconds per hook call (policy_time_limit option) */
    bt_tracker *tr;        /* HTTP announces on our loop, made on first use */
    const char *hook_name;
} lsess;

typedef struct ltorrent {
    bt_torrent *t;         /* NULL once the session is closed */
    lsess *ls;
    int policy_ref;        /* policy table */
    int self_ref;          /* the handle itself, pushed to hooks */
} ltorrent;

typedef struct lpeer {
    lsess *ls;
    uint32_t slot, gen;
    char address[64];
} lpeer;

static lsess *g_hook_sess;   /* the session whose policy call is running (for the count hook) */

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lsess *ls = g_hook_sess;
    if (ls && mono() > ls->deadline)
        luaL_error(L, "policy hook '%s' ran longer than %f s (endless loop?)",
                   ls->hook_name ? ls->hook_name : "?", ls->time_limit);
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* ---- handles ---- */

static void push_torrent(lua_State *L, bt_torrent *t)
{
    ltorrent *lt = t->lref;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lt->self_ref);
}

static void push_peer(lua_State *L, lsess *ls, bt_peer *p)
{
    if (p->href >= 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->href);
        return;
    }
    lpeer *h = lua_newuserdatauv(L, sizeof *h, 0);
    h->ls = ls;
    h->slot = p->slot;
    h->gen = bt_sess_peer_gen(&ls->s, p->slot);
    memcpy(h->address, p->address, sizeof h->address);
    luaL_setmetatable(L, PEER_MT);
    lua_pushvalue(L, -1);
    p->href = luaL_ref(L, LUA_REGISTRYINDEX);
}

static lpeer *check_lpeer(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, PEER_MT);
}

/* The live peer behind a handle, or a clear error. */
static bt_peer *check_peer(lua_State *L, int idx)
{
    lpeer *h = check_lpeer(L, idx);
    if (!h->ls->open)
        luaL_error(L, PEER_MT ": the session of peer %s is closed", h->address);
    bt_peer *p = bt_sess_peer(&h->ls->s, h->slot, h->gen);
    if (!p || !p->t || p->t->stopped)
        luaL_error(L, PEER_MT ": peer %s has disconnected (handle used after its peer left)", h->address);
    return p;
}

static ltorrent *check_ltorrent(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, TORRENT_MT);
}

static bt_torrent *check_torrent(lua_State *L, int idx)
{
    ltorrent *lt = check_ltorrent(L, idx);
    if (!lt->t)
        luaL_error(L, TORRENT_MT ": torrent used after its session was closed");
    return lt->t;
}

static uint32_t check_piece(lua_State *L, bt_torrent *t, int arg)
{
    lua_Integer i = luaL_checkinteger(L, arg);
    if (i < 0 || i >= (lua_Integer)t->npieces)
        luaL_argerror(L, arg, lua_pushfstring(L, "piece %I out of range (the torrent has %I pieces, 0-based)",
                                              (LUAI_UACINT)i, (LUAI_UACINT)t->npieces));
    return (uint32_t)i;
}

/* ---- protected calls ---- */

/* Stack: function and nargs arguments on top. Runs under the count hook. Returns
 * 0, or -1 after stopping the torrent with the traceback. Results stay on the stack. */
static int call_policy(lsess *ls, bt_torrent *t, const char *name, int nargs, int nres)
{
    lua_State *L = ls->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    lsess *saved = g_hook_sess;
    const char *saved_name = ls->hook_name;
    double saved_deadline = ls->deadline;
    g_hook_sess = ls;
    ls->hook_name = name;
    ls->deadline = mono() + ls->time_limit;
    lua_sethook(L, count_hook, LUA_MASKCOUNT, COUNT_HOOK_EVERY);
    int r = lua_pcall(L, nargs, nres, base);
    g_hook_sess = saved;
    ls->hook_name = saved_name;
    ls->deadline = saved_deadline;
    if (!saved)
        lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    if (r != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        char *copy = strdup(msg ? msg : "policy error");
        lua_pop(L, 1);
        char *full = malloc(strlen(copy ? copy : "") + 64);
        if (full)
            sprintf(full, "policy hook '%s' failed: %s", name, copy ? copy : "");
        bt_torrent_stop(t, full ? full : "policy error");
        free(full);
        free(copy);
        return -1;
    }
    return 0;
}

/* Push policy[name] and return true if it is a function. */
static bool get_hook(lsess *ls, bt_torrent *t, const char *name)
{
    lua_State *L = ls->L;
    ltorrent *lt = t->lref;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lt->policy_ref);
    lua_getfield(L, -1, name);
    lua_remove(L, -2);
    if (lua_isfunction(L, -1))
        return true;
    lua_pop(L, 1);
    return false;
}

/* Handler errors are ours (session.lua): they stop the loop and run() raises them. */
static void call_handler(lsess *ls, int nargs)
{
    lua_State *L = ls->L;
    int base = lua_gettop(L) - nargs;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->handler_ref);
    lua_insert(L, base + 1);
    lua_pushcfunction(L, traceback);
    lua_insert(L, base + 1);
    if (lua_pcall(L, nargs, 0, base + 1) != LUA_OK) {
        lua_setfield(L, LUA_REGISTRYINDEX, "bt.session.error");
        ls->had_error = true;
        bt_sess_stop(&ls->s);
    }
    lua_settop(L, base);
}

/* Stack: function and nargs arguments. Errors stop the loop like handler errors. */
static void call_fn(lsess *ls, int nargs)
{
    lua_State *L = ls->L;
    int base = lua_gettop(L) - nargs;   /* the function's index */
    lua_pushcfunction(L, traceback);
    lua_insert(L, base);
    if (lua_pcall(L, nargs, 0, base) != LUA_OK) {
        lua_setfield(L, LUA_REGISTRYINDEX, "bt.session.error");
        ls->had_error = true;
        bt_sess_stop(&ls->s);
    }
    lua_settop(L, base - 1);
}

/* ---- C hooks ---- */

static int hook_pick(void *ud, bt_torrent *t, bt_peer *p, uint32_t slots)
{
    lsess *ls = ud;
    lua_State *L = ls->L;
    if (!get_hook(ls, t, "pick"))
        return 0;
    push_torrent(L, t);
    push_peer(L, ls, p);
    lua_pushinteger(L, slots);
    if (call_policy(ls, t, "pick", 3, 0) != 0)
        return -1;
    return 0;
}

/* Pop the queue_depth hook's answer into the peer, clamped to [MIN, reqq]. */
static void set_queue_depth(bt_peer *p, lua_State *L)
{
    lua_Number v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    lua_Integer n = v != v ? 0 : v > 1e9 ? 1000000000 : (lua_Integer)v;   /* NaN and huge values */
    if (n < BT_SESS_MIN_QUEUE)
        n = BT_SESS_MIN_QUEUE;
    if (n > (lua_Integer)p->reqq)
        n = p->reqq;
    p->queue_depth = (uint32_t)n;
}

/* choke(t, peers, round, now) -> peers to unchoke; every other peer is choked. */
static void choke_round(lsess *ls, bt_torrent *t, double now)
{
    lua_State *L = ls->L;
    t->next_choke = now + CHOKE_INTERVAL;
    t->choke_dirty = false;
    t->choke_round++;
    if (!get_hook(ls, t, "choke"))
        return;
    push_torrent(L, t);
    lua_newtable(L);
    int k = 0;
    for (bt_peer *p = t->peers; p; p = p->next) {
        p->want_unchoke = false;
        if (p->state == BT_PS_ACTIVE && !p->closing && p->interested) {
            push_peer(L, ls, p);
            lua_rawseti(L, -2, ++k);
        }
    }
    lua_pushinteger(L, t->choke_round);
    lua_pushnumber(L, now);
    if (call_policy(ls, t, "choke", 4, 1) != 0)
        return;
    if (!lua_istable(L, -1) && !lua_isnil(L, -1)) {
        lua_pop(L, 1);
        bt_torrent_stop(t, "policy hook 'choke' must return an array of peers (or nil)");
        return;
    }
    if (lua_istable(L, -1)) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            lpeer *h = luaL_testudata(L, -1, PEER_MT);
            bt_peer *p = h && h->ls == ls ? bt_sess_peer(&ls->s, h->slot, h->gen) : NULL;
            lua_pop(L, 1);
            if (!h) {
                lua_pop(L, 1);
                bt_torrent_stop(t, "policy hook 'choke' returned something that is not a bt.Peer");
                return;
            }
            if (p && p->t == t)
                p->want_unchoke = true;   /* a peer that left meanwhile is skipped */
        }
    }
    lua_pop(L, 1);
    /* we have nothing to offer: keep everyone choked */
    bool empty = bt_ranges_count(&t->have) == 0;
    for (bt_peer *p = t->peers; p; p = p->next)
        if (p->state == BT_PS_ACTIVE && !p->closing)
            bt_peer_set_choke(p, empty || !p->want_unchoke);
}

static void maybe_choke(lsess *ls, bt_torrent *t, double now)
{
    if (t->choke_by_policy && !t->stopped &&
        (now >= t->next_choke ||
         (t->choke_dirty && t->unchoked < BT_SESS_UPLOAD_SLOTS &&
          now >= t->next_choke - CHOKE_INTERVAL + CHOKE_DIRTY_GAP)))
        choke_round(ls, t, now);
}

static void tick_torrent(lsess *ls, bt_torrent *t, double now)
{
    lua_State *L = ls->L;
    /* timeouts: the oldest request of each peer, once it has stalled a while */
    bool has_timeout = get_hook(ls, t, "timeout");
    if (has_timeout)
        lua_pop(L, 1);
    for (bt_peer *p = t->peers; p && has_timeout && !t->stopped; p = p->next) {
        const bt_req *r = bt_peer_oldest(p);
        if (!r || p->closing)
            continue;
        double since = r->sent > p->last_block ? r->sent : p->last_block;
        double age = now - since;
        if (age < TIMEOUT_MIN_AGE)
            continue;
        uint32_t piece = r->piece, block = r->block;
        get_hook(ls, t, "timeout");
        push_torrent(L, t);
        push_peer(L, ls, p);
        lua_createtable(L, 0, 3);
        lua_pushinteger(L, piece);
        lua_setfield(L, -2, "piece");
        lua_pushinteger(L, block);
        lua_setfield(L, -2, "block");
        lua_pushnumber(L, now - r->sent);
        lua_setfield(L, -2, "sent_ago");
        lua_pushnumber(L, age);
        if (call_policy(ls, t, "timeout", 4, 1) != 0)
            return;
        const char *what = lua_tostring(L, -1);
        if (what && p->t && !p->closing) {
            if (strcmp(what, "cancel") == 0) {
                bt_peer_cancel(p, piece, block);
            } else if (strcmp(what, "reassign") == 0) {
                bt_peer_cancel_all(p);
                p->snubbed = true;
            }
        }
        lua_pop(L, 1);
    }
    if (t->stopped)
        return;
    /* queue depth for each peer, after timeouts (a snubbed peer shrinks at once) */
    if (get_hook(ls, t, "queue_depth")) {
        lua_pop(L, 1);
        for (bt_peer *p = t->peers; p && !t->stopped; p = p->next) {
            if (p->closing || p->state != BT_PS_ACTIVE)
                continue;
            get_hook(ls, t, "queue_depth");
            push_torrent(L, t);
            push_peer(L, ls, p);
            if (call_policy(ls, t, "queue_depth", 2, 1) != 0)
                return;
            set_queue_depth(p, L);
        }
    }
    if (t->stopped)
        return;
    if (get_hook(ls, t, "endgame")) {
        push_torrent(L, t);
        if (call_policy(ls, t, "endgame", 1, 1) != 0)
            return;
        bool eg = lua_toboolean(L, -1);
        lua_pop(L, 1);
        if (eg != t->endgame) {
            t->endgame = eg;
            for (bt_peer *p = t->peers; p; p = p->next)
                p->pick_dry = false;
        }
    }
    maybe_choke(ls, t, now);
    if (!t->stopped && get_hook(ls, t, "tick")) {
        push_torrent(L, t);
        lua_pushnumber(L, now);
        call_policy(ls, t, "tick", 2, 0);
    }
}

static void hook_tick(void *ud, double now)
{
    lsess *ls = ud;
    lua_State *L = ls->L;
    for (bt_torrent *t = ls->s.torrents; t; t = t->next) {
        if (t->stopped)
            continue;
        if (!t->complete)
            tick_torrent(ls, t, now);
        else
            maybe_choke(ls, t, now);   /* a seed still chooses whom to serve */
    }
    lua_pushliteral(L, "tick");
    lua_pushnumber(L, now);
    call_handler(ls, 2);
}

static void hook_event(void *ud, const bt_event *ev)
{
    lsess *ls = ud;
    lua_State *L = ls->L;
    bt_torrent *t = ev->t;
    if (!t || !t->lref)
        return;
    bt_peer *p = ev->peer_slot != UINT32_MAX ? bt_sess_peer(&ls->s, ev->peer_slot, ev->peer_gen) : NULL;
    switch (ev->kind) {
    case BT_EV_PIECE:
        if (!t->stopped && get_hook(ls, t, "on_piece")) {
            push_torrent(L, t);
            lua_pushinteger(L, ev->piece);
            lua_pushboolean(L, ev->ok);
            if (p)
                push_peer(L, ls, p);
            else
                lua_pushnil(L);
            if (call_policy(ls, t, "on_piece", 4, 0) != 0)
                return;
        }
        lua_pushliteral(L, "piece");
        push_torrent(L, t);
        lua_pushinteger(L, ev->piece);
        lua_pushboolean(L, ev->ok);
        call_handler(ls, 4);
        break;
    case BT_EV_COMPLETE:
        lua_pushliteral(L, "complete");
        push_torrent(L, t);
        call_handler(ls, 2);
        break;
    case BT_EV_ERROR:
        lua_pushliteral(L, "error");
        push_torrent(L, t);
        lua_pushstring(L, ev->text ? ev->text : "error");
        call_handler(ls, 3);
        break;
    case BT_EV_PEER_CONNECT:
        if (!p)
            return;
        /* the first pipeline depth comes from the policy too, before the first pick */
        if (!t->stopped && get_hook(ls, t, "queue_depth")) {
            push_torrent(L, t);
            push_peer(L, ls, p);
            if (call_policy(ls, t, "queue_depth", 2, 1) != 0)
                return;
            set_queue_depth(p, L);
        }
        lua_pushliteral(L, "peer_connect");
        push_torrent(L, t);
        push_peer(L, ls, p);
        call_handler(ls, 3);
        break;
    case BT_EV_PEER_DISCONNECT: {
        lua_pushliteral(L, "peer_disconnect");
        push_torrent(L, t);
        /* the address: from the slot's (closing) peer if still there */
        bt_peer *q = ev->peer_slot < ls->s.nslots ? ls->s.slots[ev->peer_slot].p : NULL;
        if (q && bt_sess_peer_gen(&ls->s, ev->peer_slot) == ev->peer_gen)
            lua_pushstring(L, q->address);
        else
            lua_pushnil(L);
        lua_pushstring(L, ev->text ? ev->text : "");
        call_handler(ls, 4);
        break;
    }
    }
}

static void hook_peer_gone(void *ud, bt_peer *p)
{
    lsess *ls = ud;
    if (p->href >= 0) {
        luaL_unref(ls->L, LUA_REGISTRYINDEX, p->href);
        p->href = -1;
    }
}

/* ---- bt.Session ---- */

/* Largest rate limit accepted, bytes/s: 1 TiB/s is already "unlimited"; the bound
 * keeps token arithmetic exact (ratelimit.h clamps at 2^53). */
#define MAX_RATE 1099511627776.0

static lsess *check_sess(lua_State *L, int idx)
{
    lsess *ls = luaL_checkudata(L, idx, SESSION_MT);
    if (!ls->open)
        luaL_error(L, SESSION_MT ": session is closed");
    return ls;
}

static double opt_num(lua_State *L, int idx, const char *k, double def)
{
    lua_getfield(L, idx, k);
    double v = luaL_optnumber(L, -1, def);
    lua_pop(L, 1);
    return v;
}

/* bt.session_new(opts, handler) -> bt.Session | nil, message  [-0, +1|2, e]
 * opts: port (0 ephemeral, -1 none), bind, tick_ms, connect_timeout, idle_timeout, keepalive, max_peers,
 * policy_time_limit (seconds one hook call may run, default 2), max_down, max_up (bytes/s, 0
 * unlimited), max_request (largest block served, 16 KiB to 128 KiB, default 16 KiB), signals (true: SIGINT/SIGTERM
 * stop run() and are reported by cs:signal(); one such session per process) */
static int l_session_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    bt_sess_opts o;
    memset(&o, 0, sizeof o);
    o.port = (int)opt_num(L, 1, "port", 0);
    if (o.port < -1 || o.port > 65535)
        luaL_argerror(L, 1, "port out of range");
    o.tick_s = opt_num(L, 1, "tick_ms", 100) / 1000.0;
    if (o.tick_s < 0.001 || o.tick_s > 60)
        luaL_argerror(L, 1, "tick_ms must be in [1, 60000]");
    o.connect_timeout = opt_num(L, 1, "connect_timeout", BT_SESS_CONNECT_TIMEOUT);
    o.idle_timeout = opt_num(L, 1, "idle_timeout", BT_SESS_IDLE_TIMEOUT);
    o.keepalive = opt_num(L, 1, "keepalive", BT_SESS_KEEPALIVE);
    double mp = opt_num(L, 1, "max_peers", BT_SESS_MAX_PEERS);
    if (mp < 1 || mp > 100000)
        luaL_argerror(L, 1, "max_peers must be in [1, 100000]");
    o.max_peers = (uint32_t)mp;
    double limit = opt_num(L, 1, "policy_time_limit", POLICY_TIME_LIMIT);
    if (!(limit > 0 && limit <= 3600))
        luaL_argerror(L, 1, "policy_time_limit must be in (0, 3600] seconds");
    o.max_down = opt_num(L, 1, "max_down", 0);
    o.max_up = opt_num(L, 1, "max_up", 0);
    if (!(o.max_down >= 0 && o.max_down <= MAX_RATE) || !(o.max_up >= 0 && o.max_up <= MAX_RATE))
        luaL_argerror(L, 1, "max_down and max_up must be in [0, 2^40] bytes/s");
    double mr = opt_num(L, 1, "max_request", BT_SESS_MAX_REQUEST);
    if (!(mr >= BT_SESS_MAX_REQUEST && mr <= BT_WIRE_MAX_BLOCK))
        luaL_argerror(L, 1, "max_request must be in [16384, 131072] bytes");
    o.max_request = (uint32_t)mr;
    lua_getfield(L, 1, "signals");
    o.signals = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "bind");
    o.bind = luaL_optstring(L, -1, NULL);   /* stays on the stack while used */
    lsess *ls = lua_newuserdatauv(L, sizeof *ls, 1);
    memset(ls, 0, sizeof *ls);
    ls->handler_ref = LUA_NOREF;
    ls->self_ref = LUA_NOREF;
    ls->time_limit = limit;
    luaL_setmetatable(L, SESSION_MT);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    ls->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    bt_sess_hooks h = { ls, hook_pick, hook_tick, hook_event, hook_peer_gone };
    const char *err = NULL;
    if (bt_sess_init(&ls->s, &o, &h, &err) != 0)
        return bt_push_fail(L, "%s", err);
    ls->open = true;
    lua_pushvalue(L, 2);
    ls->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);   /* uservalue: torrents by id, keeps their handles alive */
    lua_setiuservalue(L, -2, 1);
    return 1;
}

/* cs:port() -> listening port (0 when not listening)  [-0, +1, -] */
static int l_sess_port(lua_State *L)
{
    lua_pushinteger(L, check_sess(L, 1)->s.port);
    return 1;
}

/* cs:now() -> the loop's clock in seconds  [-0, +1, -] */
static int l_sess_now(lua_State *L)
{
    lua_pushnumber(L, bt_sess_now(&check_sess(L, 1)->s));
    return 1;
}

/* Read a { down =, up = } limits table at idx (bytes/s, 0: unlimited) into rates[0]
 * (down) and rates[1] (up); a missing field keeps its rate. */
static void check_limits(lua_State *L, int idx, double rates[2])
{
    static const char *const names[2] = { "down", "up" };
    luaL_checktype(L, idx, LUA_TTABLE);
    for (int i = 0; i < 2; i++) {
        lua_getfield(L, idx, names[i]);
        if (!lua_isnil(L, -1)) {
            lua_Number v = luaL_checknumber(L, -1);
            if (!(v >= 0 && v <= MAX_RATE))
                luaL_argerror(L, idx, lua_pushfstring(L, "%s must be in [0, 2^40] bytes/s", names[i]));
            rates[i] = v;
        }
        lua_pop(L, 1);
    }
}

/* { down =, up = } of a pair of buckets (bytes/s, 0 unlimited) */
static int push_limits(lua_State *L, const bt_bucket *down, const bt_bucket *up)
{
    lua_createtable(L, 0, 2);
    SETN("down", down->rate);
    SETN("up", up->rate);
    return 1;
}

/* cs:set_limits{ down =, up = }: session-wide rates in bytes/s, 0 unlimited  [-0, +0, e] */
static int l_sess_set_limits(lua_State *L)
{
    lsess *ls = check_sess(L, 1);
    double rates[2] = { ls->s.down.rate, ls->s.up.rate };
    check_limits(L, 2, rates);
    bt_sess_set_limits(&ls->s, rates[0], rates[1]);
    return 0;
}

/* cs:limits() -> { down =, up = } (bytes/s, 0 unlimited)  [-0, +1, -] */
static int l_sess_limits(lua_State *L)
{
    lsess *ls = check_sess(L, 1);
    return push_limits(L, &ls->s.down, &ls->s.up);
}

/* cs:signal() -> "SIGINT" | "SIGTERM" | nil: the signal that stopped run()  [-0, +1, -] */
static int l_sess_signal(lua_State *L)
{
    int sig = check_sess(L, 1)->s.got_signal;
    if (sig == SIGINT)
        lua_pushliteral(L, "SIGINT");
    else if (sig == SIGTERM)
        lua_pushliteral(L, "SIGTERM");
    else
        lua_pushnil(L);
    return 1;
}

/* cs:peer_id() -> our 20-byte peer id  [-0, +1, -] */
static int l_sess_peer_id(lua_State *L)
{
    lua_pushlstring(L, (const char *)check_sess(L, 1)->s.peer_id, 20);
    return 1;
}

/* cs:add(meta, dir, policy, max_peers [, trust [, storage [, load]]])
 *   -> bt.Torrent | nil, message  [-0, +1|2, e]
 * storage "disk" (default): opens (creates) the files under dir and hash-checks
 * what is already there, except the pieces in `trust` (a bt.Ranges from resume
 * data), taken as had. storage "memory": dir must be nil, trust too; nothing
 * touches the file system, except that `load` (a folder) is read (never written)
 * and every piece that verifies there is copied into memory and had. */
static int l_sess_add(lua_State *L)
{
    lsess *ls = check_sess(L, 1);
    const bt_meta *m = bt_lmeta_check(L, 2);
    static const char *const kinds[] = { "disk", "memory", NULL };
    int kind = luaL_checkoption(L, 7, "disk", kinds);
    const char *dir = kind == 0 ? luaL_checkstring(L, 3) : NULL;
    if (kind == 1 && !lua_isnoneornil(L, 3))
        luaL_argerror(L, 3, "memory storage takes no folder (dir must be nil)");
    luaL_checktype(L, 4, LUA_TTABLE);
    lua_Integer mp = luaL_optinteger(L, 5, 0);
    if (mp < 0 || mp > 100000)
        luaL_argerror(L, 5, "max_peers must be in [0, 100000]");
    const bt_ranges *trust = NULL;
    if (!lua_isnoneornil(L, 6)) {
        if (kind == 1)
            luaL_argerror(L, 6, "memory storage has no resume data to trust");
        trust = bt_lranges_check(L, 6);
        if (trust->size != m->num_pieces)
            luaL_argerror(L, 6, "trusted set has the wrong number of pieces");
    }
    const char *load = luaL_optstring(L, 8, NULL);
    if (load && kind == 0)
        luaL_argerror(L, 8, "load is for memory storage (disk storage reads its own folder)");
    bt_add_opts o = { .storage = kind == 1 ? BT_STORE_MEMORY : BT_STORE_DISK, .dir = dir,
                      .load = load, .max_peers = (uint32_t)mp, .trust = trust };
    char err[512];
    bt_torrent *t = bt_sess_add(&ls->s, m, &o, err, sizeof err);
    if (!t)
        return bt_push_fail(L, "%s", err);
    ltorrent *lt = lua_newuserdatauv(L, sizeof *lt, 1);
    lt->t = t;
    lt->ls = ls;
    luaL_setmetatable(L, TORRENT_MT);
    t->lref = lt;
    lua_getfield(L, 4, "choke");
    t->choke_by_policy = lua_isfunction(L, -1);
    lua_pop(L, 1);
    /* uservalue: { meta = <keeps bt_meta alive>, state = {}, policy = policy } */
    lua_createtable(L, 0, 3);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "meta");
    lua_newtable(L);
    lua_setfield(L, -2, "state");
    lua_pushvalue(L, 4);
    lua_setfield(L, -2, "policy");
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, 4);
    lt->policy_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushvalue(L, -1);
    lt->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* cs:run() -> true | raises the handler's error  [-0, +1, e]
 * A nested run (from inside a hook) is refused. */
static int l_sess_run(lua_State *L)
{
    lsess *ls = check_sess(L, 1);
    if (ls->s.running)
        return luaL_error(L, SESSION_MT ": run() called while the session is already running");
    ls->had_error = false;
    int top = lua_gettop(ls->L);   /* every call-out must leave the main stack as it found it */
    bt_sess_run(&ls->s);
    if (lua_gettop(ls->L) != top) {
        int leaked = lua_gettop(ls->L) - top;
        lua_settop(ls->L, top);
        return luaL_error(L, SESSION_MT ": internal error: %d values left on the Lua stack by call-outs", leaked);
    }
    if (ls->had_error) {
        ls->had_error = false;
        lua_getfield(L, LUA_REGISTRYINDEX, "bt.session.error");
        return lua_error(L);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* cs:stop(): run() returns at the end of the current loop iteration  [-0, +0, -] */
static int l_sess_stop(lua_State *L)
{
    bt_sess_stop(&check_sess(L, 1)->s);
    return 0;
}

static void sess_close(lua_State *L, lsess *ls)
{
    if (!ls->open)
        return;
    if (ls->s.running)
        luaL_error(L, SESSION_MT ": close() called while running; call stop() and close after run returns");
    for (bt_torrent *t = ls->s.torrents; t; t = t->next) {
        ltorrent *lt = t->lref;
        if (lt) {
            lt->t = NULL;
            luaL_unref(L, LUA_REGISTRYINDEX, lt->policy_ref);
            luaL_unref(L, LUA_REGISTRYINDEX, lt->self_ref);
        }
        for (bt_peer *p = t->peers; p; p = p->next)
            if (p->href >= 0) {
                luaL_unref(L, LUA_REGISTRYINDEX, p->href);
                p->href = -1;
            }
    }
    ls->s.hooks.peer_gone = NULL;
    ls->s.hooks.event = NULL;
    ls->open = false;
    bt_tracker_free(ls->tr);   /* pending announces are dropped without callbacks */
    ls->tr = NULL;
    if (ls->self_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, ls->self_ref);
        ls->self_ref = LUA_NOREF;
    }
    bt_sess_free(&ls->s);
    luaL_unref(L, LUA_REGISTRYINDEX, ls->handler_ref);
    ls->handler_ref = LUA_NOREF;
}

/* cs:close(): drops every peer and torrent handle; files stay. Idempotent.  [-0, +0, e] */
static int l_sess_close(lua_State *L)
{
    lsess *ls = luaL_checkudata(L, 1, SESSION_MT);
    sess_close(L, ls);
    return 0;
}

static int l_sess_gc(lua_State *L)
{
    lsess *ls = luaL_checkudata(L, 1, SESSION_MT);
    if (ls->s.running)
        return 0;
    sess_close(L, ls);
    return 0;
}

/* ---- bt.Torrent ---- */

static void push_ranges_copy(lua_State *L, const bt_ranges *src)
{
    bt_ranges *r = bt_lranges_push(L, src->size);
    if (bt_ranges_copy(r, src) != 0)
        luaL_error(L, "not enough memory");
}

static void push_hex(lua_State *L, const uint8_t *b, size_t n)
{
    char hex[41];
    for (size_t i = 0; i < n && i < 20; i++)
        sprintf(hex + 2 * i, "%02x", b[i]);
    lua_pushlstring(L, hex, 2 * (n < 20 ? n : 20));
}

static int l_torrent_index(lua_State *L)
{
    ltorrent *lt = check_ltorrent(L, 1);
    const char *k = luaL_checkstring(L, 2);
    /* methods first */
    luaL_getmetafield(L, 1, "__methods");
    lua_getfield(L, -1, k);
    if (!lua_isnil(L, -1))
        return 1;
    lua_pop(L, 2);
    if (strcmp(k, "state") == 0 || strcmp(k, "policy") == 0 || strcmp(k, "meta") == 0) {
        lua_getiuservalue(L, 1, 1);
        lua_getfield(L, -1, k);
        return 1;
    }
    bt_torrent *t = lt->t;
    if (!t)
        return luaL_error(L, TORRENT_MT ": torrent used after its session was closed");
    if (strcmp(k, "pieces") == 0)
        lua_pushinteger(L, t->npieces);
    else if (strcmp(k, "have") == 0)
        push_ranges_copy(L, &t->have);
    else if (strcmp(k, "missing") == 0)
        lua_pushinteger(L, t->npieces - bt_ranges_count(&t->have));
    else if (strcmp(k, "unrequested") == 0)
        lua_pushinteger(L, bt_torrent_unrequested(t));
    else if (strcmp(k, "partials") == 0)
        lua_pushinteger(L, t->npartials);
    else if (strcmp(k, "endgame") == 0)
        lua_pushboolean(L, t->endgame);
    else if (strcmp(k, "info_hash") == 0)
        push_hex(L, t->meta->info_hash, 20);
    else if (strcmp(k, "piece_length") == 0)
        lua_pushinteger(L, t->piece_len);
    else if (strcmp(k, "total_length") == 0)
        lua_pushinteger(L, t->total);
    else if (strcmp(k, "name") == 0)
        lua_pushlstring(L, t->meta->name.p, t->meta->name.n);
    else if (strcmp(k, "complete") == 0)
        lua_pushboolean(L, t->complete);
    else if (strcmp(k, "stopped") == 0)
        lua_pushboolean(L, t->stopped);
    else if (strcmp(k, "error") == 0) {
        if (t->error)
            lua_pushstring(L, t->error);
        else
            lua_pushnil(L);
    } else if (strcmp(k, "npeers") == 0)
        lua_pushinteger(L, t->npeers);
    else if (strcmp(k, "dir") == 0)
        lua_pushstring(L, t->dir);   /* nil for memory storage */
    else if (strcmp(k, "storage") == 0)
        lua_pushstring(L, t->in_memory ? "memory" : "disk");
    else if (strcmp(k, "id") == 0)
        lua_pushinteger(L, t->id);
    else
        lua_pushnil(L);
    return 1;
}

static int l_torrent_newindex(lua_State *L)
{
    check_ltorrent(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "state") == 0) {
        lua_getiuservalue(L, 1, 1);
        lua_pushvalue(L, 3);
        lua_setfield(L, -2, "state");
        return 0;
    }
    return luaL_error(L, TORRENT_MT ": field '%s' is read-only (keep your data in t.state)", k);
}

/* t:availability(i) -> peers that have piece i  [-0, +1, v] */
static int l_torrent_availability(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    lua_pushinteger(L, bt_avail(t, check_piece(L, t, 2)));
    return 1;
}

/* t:has(i) -> we have piece i verified  [-0, +1, v] */
static int l_torrent_has(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    lua_pushboolean(L, bt_ranges_has(&t->have, check_piece(L, t, 2)));
    return 1;
}

/* t:piece_size(i), t:blocks(i) -> bytes, 16 KiB blocks of piece i  [-0, +1, v] */
static int l_torrent_piece_size(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    lua_pushinteger(L, bt_piece_size(t, check_piece(L, t, 2)));
    return 1;
}

static int l_torrent_blocks(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    lua_pushinteger(L, bt_piece_nblocks(t, check_piece(L, t, 2)));
    return 1;
}

/* An iterator over a snapshot array of piece indices (userdata upvalue). */
static int iter_array(lua_State *L)
{
    uint32_t *a = lua_touserdata(L, lua_upvalueindex(1));
    lua_Integer n = lua_tointeger(L, lua_upvalueindex(2));
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(3));
    if (i >= n)
        return 0;
    lua_pushinteger(L, i + 1);
    lua_replace(L, lua_upvalueindex(3));
    lua_pushinteger(L, a[i]);
    return 1;
}

static void push_iter(lua_State *L, int arr_idx, uint32_t n)
{
    lua_pushvalue(L, arr_idx);
    lua_pushinteger(L, n);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, iter_array, 3);
}

/* t:rarest(peer, n) -> iterator over up to n pieces the peer has, we lack and nobody
 * has requested yet, rarest first. Ties go in index order from a random starting
 * point per torrent: clients still spread over different pieces, and one client's
 * writes land mostly in order (random 1 MiB writes cost this ext4 about twice the
 * system time of sequential ones).  [-0, +1, v] */
static int l_torrent_rarest(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    bt_peer *p = check_peer(L, 2);
    if (p->t != t)
        luaL_argerror(L, 2, "peer belongs to another torrent");
    lua_Integer n = luaL_checkinteger(L, 3);
    if (n < 0)
        luaL_argerror(L, 3, "count must be >= 0");
    if (n > MAX_ITER_PIECES)
        n = MAX_ITER_PIECES;
    /* a bounded max-heap of (key, piece) keeps the n best */
    uint64_t *heap = lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *heap, 0);
    uint32_t hn = 0;
    const bt_ranges *a = &p->have, *b = &t->unrequested;
    uint32_t i = 0, j = 0;
    while (n > 0 && i < a->n && j < b->n) {
        uint32_t lo = a->r[i].start > b->r[j].start ? a->r[i].start : b->r[j].start;
        uint32_t hi = a->r[i].end < b->r[j].end ? a->r[i].end : b->r[j].end;
        for (uint32_t k = lo; k < hi; k++) {
            /* key: availability, then the index rotated by t->rot */
            uint32_t r = k >= t->rot ? k - t->rot : k + (t->npieces - t->rot);   /* rotated index */
            uint64_t e = ((uint64_t)bt_avail(t, k) << 32) | r;
            if (hn < (uint32_t)n) {
                uint32_t c = hn++;
                heap[c] = e;
                while (c > 0 && heap[(c - 1) / 2] < heap[c]) {
                    uint64_t tmp = heap[c];
                    heap[c] = heap[(c - 1) / 2];
                    heap[(c - 1) / 2] = tmp;
                    c = (c - 1) / 2;
                }
            } else if (e < heap[0]) {
                heap[0] = e;
                uint32_t c = 0;
                for (;;) {
                    uint32_t l = 2 * c + 1, r = l + 1, m = c;
                    if (l < hn && heap[l] > heap[m])
                        m = l;
                    if (r < hn && heap[r] > heap[m])
                        m = r;
                    if (m == c)
                        break;
                    uint64_t tmp = heap[c];
                    heap[c] = heap[m];
                    heap[m] = tmp;
                    c = m;
                }
            }
        }
        if (a->r[i].end < b->r[j].end)
            i++;
        else
            j++;
    }
    /* heap sort ascending, in place */
    for (uint32_t end = hn; end > 1; end--) {
        uint64_t tmp = heap[0];
        heap[0] = heap[end - 1];
        heap[end - 1] = tmp;
        uint32_t c = 0, size = end - 1;
        for (;;) {
            uint32_t l = 2 * c + 1, r = l + 1, m = c;
            if (l < size && heap[l] > heap[m])
                m = l;
            if (r < size && heap[r] > heap[m])
                m = r;
            if (m == c)
                break;
            uint64_t x = heap[c];
            heap[c] = heap[m];
            heap[m] = x;
            c = m;
        }
    }
    uint32_t *out = lua_newuserdatauv(L, (size_t)(hn ? hn : 1) * sizeof *out, 0);
    for (uint32_t k = 0; k < hn; k++)
        out[k] = (uint32_t)(((heap[k] & 0xffffffffu) + t->rot) % t->npieces);
    push_iter(L, lua_gettop(L), hn);
    return 1;
}

/* t:partial(peer) -> iterator over pieces in progress that the peer has and that
 * still have a block this peer may request, oldest first.  [-0, +1, v] */
static int l_torrent_partial(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    bt_peer *p = check_peer(L, 2);
    if (p->t != t)
        luaL_argerror(L, 2, "peer belongs to another torrent");
    uint32_t *out = lua_newuserdatauv(L, (size_t)(t->npartials ? t->npartials : 1) * sizeof *out, 0);
    uint32_t n = 0;
    for (bt_partial *pp = t->partials; pp && n < t->npartials; pp = pp->next)
        if (bt_ranges_has(&p->have, pp->piece) && bt_piece_requestable(t, p, pp->piece))
            out[n++] = pp->piece;
    push_iter(L, lua_gettop(L), n);
    return 1;
}

static int iter_wanted(lua_State *L)
{
    bt_torrent *t = check_torrent(L, lua_upvalueindex(1));
    bt_peer *p = check_peer(L, lua_upvalueindex(2));
    lua_Integer i = lua_tointeger(L, lua_upvalueindex(3));
    lua_Integer to = lua_tointeger(L, lua_upvalueindex(4));
    if (to > (lua_Integer)t->npieces)
        to = t->npieces;
    while (i < to) {
        int64_t k = bt_ranges_next_set(&p->have, (uint32_t)i);
        if (k < 0 || k >= to)
            break;
        if (bt_piece_requestable(t, p, (uint32_t)k)) {
            lua_pushinteger(L, k + 1);
            lua_replace(L, lua_upvalueindex(3));
            lua_pushinteger(L, k);
            return 1;
        }
        i = k + 1;
    }
    lua_pushinteger(L, to);
    lua_replace(L, lua_upvalueindex(3));
    return 0;
}

/* t:wanted(peer [, from [, to]]) -> lazy iterator, in index order, over pieces in
 * [from, to) that the peer has and that have a block it may request.  [-0, +1, v] */
static int l_torrent_wanted(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    bt_peer *p = check_peer(L, 2);
    if (p->t != t)
        luaL_argerror(L, 2, "peer belongs to another torrent");
    lua_Integer from = luaL_optinteger(L, 3, 0);
    lua_Integer to = luaL_optinteger(L, 4, t->npieces);
    if (from < 0)
        from = 0;
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushinteger(L, from);
    lua_pushinteger(L, to);
    lua_pushcclosure(L, iter_wanted, 4);
    return 1;
}

/* t:peers() -> array of the connected peers' handles  [-0, +1, m] */
static int l_torrent_peers(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    ltorrent *lt = check_ltorrent(L, 1);
    lua_newtable(L);
    int k = 0;
    for (bt_peer *p = t->peers; p; p = p->next) {
        if (p->closing || p->state != BT_PS_ACTIVE)
            continue;
        push_peer(L, lt->ls, p);
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

/* t:connect(host, port) -> true | nil, message  [-0, +1|2, v] */
static int l_torrent_connect(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    const char *host = luaL_checkstring(L, 2);
    lua_Integer port = luaL_checkinteger(L, 3);
    const char *err = NULL;
    if (bt_torrent_connect(t, host, (int)port, &err) != 0)
        return bt_push_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* t:set_limits{ down =, up = }: this torrent's rates in bytes/s, 0 unlimited (the
 * session's limits apply too)  [-0, +0, e] */
static int l_torrent_set_limits(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    double rates[2] = { t->down.rate, t->up.rate };
    check_limits(L, 2, rates);
    bt_torrent_set_limits(t, rates[0], rates[1]);
    return 0;
}

/* t:limits() -> { down =, up = }  [-0, +1, -] */
static int l_torrent_limits(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    return push_limits(L, &t->down, &t->up);
}

/* t:stop([reason]): drops every peer; data on disk stays.  [-0, +0, v] */
static int l_torrent_stop(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    bt_torrent_stop(t, luaL_optstring(L, 2, NULL));
    return 0;
}

/* t:sync() -> true | nil, message: fsync every file (before resume data vouches for them)  [-0, +1|2, v] */
static int l_torrent_sync(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    char err[512];
    if (bt_torrent_sync(t, err, sizeof err) != 0)
        return bt_push_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* t:banned(address) -> boolean  [-0, +1, v] */
static int l_torrent_banned(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    lua_pushboolean(L, bt_torrent_banned(t, luaL_checkstring(L, 2)));
    return 1;
}


/* t:stats() -> table: bytes, rates, peers, pieces, requests in flight...  [-0, +1, m] */
static int l_torrent_stats(lua_State *L)
{
    bt_torrent *t = check_torrent(L, 1);
    double rd = 0, ru = 0;
    uint64_t inflight = 0;
    uint32_t npeers = 0, unchoked = 0;
    for (bt_peer *p = t->peers; p; p = p->next) {
        if (p->closing || p->state != BT_PS_ACTIVE)
            continue;
        npeers++;
        unchoked += !p->choking;
        rd += p->rate_down;
        ru += p->rate_up;
        inflight += p->inflight;
    }
    lua_createtable(L, 0, 16);
    SETI("pieces", t->npieces);
    SETI("pieces_done", bt_ranges_count(&t->have));
    SETI("total_bytes", t->total);
    SETI("have_bytes", t->have_bytes);
    SETI("downloaded", t->downloaded);
    SETI("uploaded", t->uploaded);
    SETI("dup_bytes", t->dup_bytes);
    SETI("failed_bytes", t->failed_bytes);
    SETN("rate_down", rd);
    SETN("rate_up", ru);
    SETI("peers", npeers);
    SETI("unchoked", unchoked);
    SETI("inflight", inflight);
    SETI("partials", t->npartials);
    SETI("bans", t->nbans);
    lua_pushboolean(L, t->endgame);
    lua_setfield(L, -2, "endgame");
    return 1;
}

static int l_torrent_tostring(lua_State *L)
{
    ltorrent *lt = check_ltorrent(L, 1);
    if (!lt->t)
        lua_pushliteral(L, "bt.Torrent(closed)");
    else
        lua_pushfstring(L, "bt.Torrent(%s, %d/%d pieces)", lt->t->dir ? lt->t->dir : "memory", (int)bt_ranges_count(&lt->t->have),
                        (int)lt->t->npieces);
    return 1;
}


/* ---- tracker announces on the session's loop ---- */

static void on_announce(void *ud, int id, const bt_announce_result *res)
{
    lsess *ls = ud;
    lua_State *L = ls->L;
    if (!ls->open)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->self_ref);
    lua_getiuservalue(L, -1, 1);
    lua_rawgeti(L, -1, id);        /* the callback */
    lua_pushnil(L);
    lua_rawseti(L, -3, id);
    lua_remove(L, -2);
    lua_remove(L, -2);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    if (res->ok) {
        bt_ltracker_push_result(L, res, 1);
        call_fn(ls, 1);
    } else {
        lua_pushnil(L);
        lua_pushstring(L, res->error[0] ? res->error : "announce failed");
        call_fn(ls, 2);
    }
}

static int64_t field_int(lua_State *L, int t, const char *k, int64_t def)
{
    lua_getfield(L, t, k);
    int64_t v = lua_isnoneornil(L, -1) ? def : (int64_t)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* cs:announce(params, fn) -> id | nil, message  [-0, +1|2, e]
 * params: url, info_hash (20 bytes), port, uploaded, downloaded, left,
 * event ("started" | "completed" | "stopped" | nil), numwant, tracker_id, timeout.
 * fn(result) or fn(nil, message) is called later from the loop, exactly once
 * (never if the session closes first). result: interval, min_interval, complete,
 * incomplete, failure_reason, warning_message, tracker_id, peers = {"ip:port", ...}. */
static int l_sess_announce(lua_State *L)
{
    lsess *ls = check_sess(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    bt_announce a;
    memset(&a, 0, sizeof a);
    lua_getfield(L, 2, "url");
    a.url = luaL_checkstring(L, -1);
    lua_getfield(L, 2, "info_hash");
    size_t hl = 0;
    const char *ih = luaL_checklstring(L, -1, &hl);
    if (hl != 20)
        luaL_argerror(L, 2, "info_hash must be 20 raw bytes");
    memcpy(a.info_hash, ih, 20);
    memcpy(a.peer_id, ls->s.peer_id, 20);
    a.port = (uint16_t)field_int(L, 2, "port", ls->s.port);
    a.uploaded = field_int(L, 2, "uploaded", 0);
    a.downloaded = field_int(L, 2, "downloaded", 0);
    a.left = field_int(L, 2, "left", 0);
    a.numwant = (int32_t)field_int(L, 2, "numwant", -1);
    lua_getfield(L, 2, "event");
    const char *ev = luaL_optstring(L, -1, NULL);
    a.event = !ev ? BT_EVENT_NONE : strcmp(ev, "started") == 0 ? BT_EVENT_STARTED
            : strcmp(ev, "completed") == 0 ? BT_EVENT_COMPLETED
            : strcmp(ev, "stopped") == 0 ? BT_EVENT_STOPPED : BT_EVENT_NONE;
    lua_getfield(L, 2, "tracker_id");
    if (lua_isstring(L, -1))
        a.tracker_id = lua_tolstring(L, -1, &a.tracker_id_len);
    lua_getfield(L, 2, "timeout");
    a.timeout = luaL_optnumber(L, -1, 0);
    if (!ls->tr) {
        ls->tr = bt_tracker_new(ls->s.loop);
        if (!ls->tr)
            return bt_push_fail(L, "cannot start the tracker client");
    }
    if (ls->self_ref == LUA_NOREF) {
        lua_pushvalue(L, 1);
        ls->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    int id = bt_tracker_announce(ls->tr, &a, on_announce, ls);
    if (id < 0)
        return bt_push_fail(L, "%s", bt_tracker_error(ls->tr));
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 3);
    lua_rawseti(L, -2, id);
    lua_pushinteger(L, id);
    return 1;
}

/* ---- bt.Peer ---- */

static int l_peer_index(lua_State *L)
{
    lpeer *h = check_lpeer(L, 1);
    const char *k = luaL_checkstring(L, 2);
    luaL_getmetafield(L, 1, "__methods");
    lua_getfield(L, -1, k);
    if (!lua_isnil(L, -1))
        return 1;
    lua_pop(L, 2);
    if (strcmp(k, "address") == 0) {   /* stays readable after the peer left */
        lua_pushstring(L, h->address);
        return 1;
    }
    if (strcmp(k, "alive") == 0) {
        lua_pushboolean(L, h->ls->open && bt_sess_peer(&h->ls->s, h->slot, h->gen) != NULL);
        return 1;
    }
    bt_peer *p = check_peer(L, 1);
    if (strcmp(k, "id") == 0)
        lua_pushlstring(L, (const char *)p->peer_id, 20);
    else if (strcmp(k, "have") == 0)
        push_ranges_copy(L, &p->have);
    else if (strcmp(k, "choking") == 0)
        lua_pushboolean(L, p->choking);
    else if (strcmp(k, "interested") == 0)
        lua_pushboolean(L, p->interested);
    else if (strcmp(k, "am_choking") == 0)
        lua_pushboolean(L, p->am_choking);
    else if (strcmp(k, "am_interested") == 0)
        lua_pushboolean(L, p->am_interested);
    else if (strcmp(k, "rate_down") == 0)
        lua_pushnumber(L, p->rate_down);
    else if (strcmp(k, "rate_up") == 0)
        lua_pushnumber(L, p->rate_up);
    else if (strcmp(k, "rtt") == 0)
        lua_pushnumber(L, p->rtt);
    else if (strcmp(k, "inflight") == 0)
        lua_pushinteger(L, p->inflight);
    else if (strcmp(k, "slots") == 0)
        lua_pushinteger(L, bt_peer_slots(p));
    else if (strcmp(k, "queue_depth") == 0)
        lua_pushinteger(L, p->queue_depth);
    else if (strcmp(k, "reqq") == 0)
        lua_pushinteger(L, p->reqq);
    else if (strcmp(k, "snubbed") == 0)
        lua_pushboolean(L, p->snubbed);
    else if (strcmp(k, "seed") == 0)
        lua_pushboolean(L, p->seed);
    else if (strcmp(k, "incoming") == 0)
        lua_pushboolean(L, p->incoming);
    else if (strcmp(k, "downloaded") == 0)
        lua_pushinteger(L, (lua_Integer)p->down_total);
    else if (strcmp(k, "fails") == 0)
        lua_pushinteger(L, p->fails);
    else if (strcmp(k, "connected_for") == 0)
        lua_pushnumber(L, bt_sess_now(p->s) - p->connected_at);
    else if (strcmp(k, "idle") == 0)
        lua_pushnumber(L, bt_sess_now(p->s) - (p->last_block > 0 ? p->last_block : p->connected_at));
    else
        lua_pushnil(L);
    return 1;
}

static uint32_t check_slots_for(lua_State *L, bt_peer *p, lua_Integer want, int arg)
{
    uint32_t slots = bt_peer_slots(p);
    if (want < 0)
        luaL_argerror(L, arg, "count must be >= 0");
    if (want > (lua_Integer)slots)
        luaL_error(L, PEER_MT ": %I requests asked of peer %s, which has %I free slots%s",
                   (LUAI_UACINT)want, p->address, (LUAI_UACINT)slots,
                   p->choking ? " (it is choking us)" : "");
    return slots;
}

static void check_peer_has(lua_State *L, bt_peer *p, uint32_t piece)
{
    if (!bt_ranges_has(&p->have, piece))
        luaL_error(L, PEER_MT ": peer %s lacks piece %I", p->address, (LUAI_UACINT)piece);
}

/* peer:request_blocks(piece, max) -> n: requests up to max free blocks of piece
 * (in endgame also blocks others asked for). Raises if the peer lacks the piece
 * or max exceeds peer.slots.  [-0, +1, v] */
static int l_peer_request_blocks(lua_State *L)
{
    bt_peer *p = check_peer(L, 1);
    uint32_t piece = check_piece(L, p->t, 2);
    lua_Integer max = luaL_checkinteger(L, 3);
    check_slots_for(L, p, max, 3);
    check_peer_has(L, p, piece);
    lua_pushinteger(L, bt_peer_request_blocks(p, piece, (uint32_t)max));
    return 1;
}

/* peer:request(piece, block) -> true | false (already had/asked)  [-0, +1, v] */
static int l_peer_request(lua_State *L)
{
    bt_peer *p = check_peer(L, 1);
    uint32_t piece = check_piece(L, p->t, 2);
    lua_Integer b = luaL_checkinteger(L, 3);
    uint32_t nb = bt_piece_nblocks(p->t, piece);
    if (b < 0 || b >= (lua_Integer)nb)
        luaL_error(L, PEER_MT ": block %I is past the end of piece %I (it has %I blocks, 0-based)",
                   (LUAI_UACINT)b, (LUAI_UACINT)piece, (LUAI_UACINT)nb);
    check_slots_for(L, p, 1, 1);
    check_peer_has(L, p, piece);
    lua_pushboolean(L, bt_peer_request_one(p, piece, (uint32_t)b));
    return 1;
}

/* peer:cancel(piece, block) -> true if it was in flight  [-0, +1, v] */
static int l_peer_cancel(lua_State *L)
{
    bt_peer *p = check_peer(L, 1);
    uint32_t piece = check_piece(L, p->t, 2);
    lua_Integer b = luaL_checkinteger(L, 3);
    if (b < 0 || b >= (lua_Integer)bt_piece_nblocks(p->t, piece))
        luaL_argerror(L, 3, "block out of range");
    lua_pushboolean(L, bt_peer_cancel(p, piece, (uint32_t)b));
    return 1;
}

/* peer:cancel_all(): release every request in flight (they go back to the pool)  [-0, +0, v] */
static int l_peer_cancel_all(lua_State *L)
{
    bt_peer_cancel_all(check_peer(L, 1));
    return 0;
}

/* peer:requests() -> array of {piece=, block=, age=} oldest first  [-0, +1, m] */
static int l_peer_requests(lua_State *L)
{
    bt_peer *p = check_peer(L, 1);
    double now = bt_sess_now(p->s);
    lua_createtable(L, (int)p->inflight, 0);
    int k = 0;
    for (uint32_t i = 0; i < p->qcount; i++) {
        const bt_req *r = &p->q[(p->qhead + i) % p->qcap];
        if (r->piece == UINT32_MAX)
            continue;
        lua_createtable(L, 0, 3);
        SETI("piece", r->piece);
        SETI("block", r->block);
        SETN("age", now - r->sent);
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

/* peer:disconnect([reason]): closed at the end of the current call-out  [-0, +0, v] */
static int l_peer_disconnect(lua_State *L)
{
    bt_peer *p = check_peer(L, 1);
    bt_peer_close(p, luaL_optstring(L, 2, "disconnected by the policy"));
    return 0;
}

/* peer:has(i) -> boolean  [-0, +1, v] */
static int l_peer_has(lua_State *L)
{
    bt_peer *p = check_peer(L, 1);
    lua_pushboolean(L, bt_ranges_has(&p->have, check_piece(L, p->t, 2)));
    return 1;
}

static int l_peer_tostring(lua_State *L)
{
    lpeer *h = check_lpeer(L, 1);
    lua_pushfstring(L, "bt.Peer(%s)", h->address);
    return 1;
}

static int l_peer_eq(lua_State *L)
{
    lpeer *a = luaL_testudata(L, 1, PEER_MT), *b = luaL_testudata(L, 2, PEER_MT);
    lua_pushboolean(L, a && b && a->ls == b->ls && a->slot == b->slot && a->gen == b->gen);
    return 1;
}

static void new_class(lua_State *L, const char *mt, const luaL_Reg *meta, const luaL_Reg *methods)
{
    luaL_newmetatable(L, mt);
    luaL_setfuncs(L, meta, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__methods");
    lua_pushstring(L, mt);
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
}

/* Keep this module (and the libraries it pulled in) mapped until the process
 * ends: lua_close would dlclose it, and unloading libraries whose thread-local
 * storage other threads have touched trips LeakSanitizer's exit scan (it crashed
 * reading a stale dynamic-TLS range here). Unloading saves nothing at exit. */
static void pin_module(void)
{
    Dl_info info;
    if (dladdr((void *)pin_module, &info) && info.dli_fname)
        (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

void bt_open_session(lua_State *L, int mod)
{
    pin_module();
    static const luaL_Reg sess_methods[] = {
        { "add", l_sess_add },   { "run", l_sess_run },         { "stop", l_sess_stop },
        { "close", l_sess_close }, { "port", l_sess_port },     { "now", l_sess_now },
        { "peer_id", l_sess_peer_id }, { "announce", l_sess_announce },
        { "signal", l_sess_signal }, { "set_limits", l_sess_set_limits },
        { "limits", l_sess_limits }, { NULL, NULL },
    };
    luaL_newmetatable(L, SESSION_MT);
    lua_newtable(L);
    luaL_setfuncs(L, sess_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_sess_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_sess_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);

    static const luaL_Reg t_meta[] = {
        { "__index", l_torrent_index }, { "__newindex", l_torrent_newindex },
        { "__tostring", l_torrent_tostring }, { NULL, NULL },
    };
    static const luaL_Reg t_methods[] = {
        { "availability", l_torrent_availability }, { "has", l_torrent_has },
        { "piece_size", l_torrent_piece_size }, { "blocks", l_torrent_blocks },
        { "rarest", l_torrent_rarest }, { "partial", l_torrent_partial },
        { "wanted", l_torrent_wanted }, { "peers", l_torrent_peers },
        { "connect", l_torrent_connect }, { "stop", l_torrent_stop },
        { "banned", l_torrent_banned }, { "stats", l_torrent_stats }, { "sync", l_torrent_sync },
        { "set_limits", l_torrent_set_limits }, { "limits", l_torrent_limits },
        { NULL, NULL },
    };
    new_class(L, TORRENT_MT, t_meta, t_methods);

    static const luaL_Reg p_meta[] = {
        { "__index", l_peer_index }, { "__tostring", l_peer_tostring }, { "__eq", l_peer_eq },
        { NULL, NULL },
    };
    static const luaL_Reg p_methods[] = {
        { "request_blocks", l_peer_request_blocks }, { "request", l_peer_request },
        { "cancel", l_peer_cancel }, { "cancel_all", l_peer_cancel_all },
        { "requests", l_peer_requests }, { "disconnect", l_peer_disconnect },
        { "has", l_peer_has }, { NULL, NULL },
    };
    new_class(L, PEER_MT, p_meta, p_methods);

    lua_pushcfunction(L, l_session_new);
    lua_setfield(L, mod, "session_new");
}
