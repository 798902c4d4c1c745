/* l_session.c: bt.Session (l_session.h). Options and results are converted here;
 * the engine (engine/session.h) decides, and reports back through bt_sess_cb,
 * implemented below: events and ticks go to the Lua handler of session.lua, and a
 * peer or torrent about to be freed makes its Lua handle stale.
 *
 * The handler's errors are ours (lua/bt/session.lua): they stop the loop and
 * run() raises them. Policy hooks go through l_policy.c instead, whose errors
 * stop only their torrent.
 */
#define _GNU_SOURCE
#include "lua/l_session.h"

#include <dlfcn.h>
#include <signal.h>
#include <string.h>

#include "codec/udp_tracker.h"
#include "engine/session.h"
#include "lua/l_meta.h"
#include "lua/l_peer.h"
#include "lua/l_policy.h"
#include "lua/l_ranges.h"
#include "lua/l_torrent.h"
#include "lua/l_tracker.h"

#define SESSION_MT "bt.Session"
#define POLICY_TIME_LIMIT 2.0   /* default seconds one hook call may run before it is stopped */
#define POLICY_MEMORY_LIMIT 1073741824.0   /* default bytes of Lua memory after a hook call (1 GiB) */
#define MAX_RATE 1099511627776.0   /* 1 TiB/s, as l_torrent.c */

typedef struct lsess {
    bt_session s;
    lpolicy pol;
    lua_State *L;          /* the main thread, never a coroutine */
    int handler_ref;
    int self_ref;          /* keeps the session (and its uservalue) alive while announces are pending */
    bool open;
    bool had_error;
    bt_lchild *children;   /* bt_lsession_attach's: DHT nodes on our loop */
} lsess;

/* Stack: function and nargs arguments. An error stops the loop; run() raises it. */
static lsess *check_sess(lua_State *L, int idx);

static void call_fn(lsess *ls, int nargs)
{
    lua_State *L = ls->L;
    int base = lua_gettop(L) - nargs;   /* the function's index */
    lua_pushcfunction(L, bt_traceback);
    lua_insert(L, base);
    if (lua_pcall(L, nargs, 0, base) != LUA_OK) {
        lua_setfield(L, LUA_REGISTRYINDEX, "bt.session.error");
        ls->had_error = true;
        bt_sess_stop(&ls->s);
    }
    lua_settop(L, base - 1);
}

/* Stack: nargs arguments for the handler (the kind first). */
static void call_handler(lsess *ls, int nargs)
{
    lua_State *L = ls->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ls->handler_ref);
    lua_insert(L, -nargs - 1);
    call_fn(ls, nargs);
}

/* ---- for objects on the session's loop (l_session.h) ---- */

bt_session *bt_lsession_check(lua_State *L, int idx)
{
    return &check_sess(L, idx)->s;
}

void bt_lsession_call(bt_session *s, int nargs)
{
    call_fn((lsess *)s, nargs);   /* s is the first member of its lsess */
}

void bt_lsession_attach(bt_session *s, bt_lchild *c)
{
    lsess *ls = (lsess *)s;
    c->next = ls->children;
    ls->children = c;
}

void bt_lsession_detach(bt_session *s, bt_lchild *c)
{
    for (bt_lchild **pp = &((lsess *)s)->children; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            return;
        }
}

/* ---- what the engine reports (bt_sess_cb) ---- */

static void on_event(void *ud, const bt_event *ev)
{
    lsess *ls = ud;
    lua_State *L = ls->L;
    bt_torrent *t = ev->t;
    if (!t->lref)
        return;
    switch (ev->kind) {
    case BT_EV_PIECE:
        lua_pushliteral(L, "piece");
        bt_ltorrent_push(L, t);
        lua_pushinteger(L, ev->piece);
        lua_pushboolean(L, ev->ok);
        call_handler(ls, 4);
        break;
    case BT_EV_COMPLETE:
        lua_pushliteral(L, "complete");
        bt_ltorrent_push(L, t);
        call_handler(ls, 2);
        break;
    case BT_EV_ERROR:
        lua_pushliteral(L, "error");
        bt_ltorrent_push(L, t);
        lua_pushstring(L, ev->text ? ev->text : "error");
        call_handler(ls, 3);
        break;
    case BT_EV_PEER_CONNECT: {
        bt_peer *p = bt_torrent_peer_by_uid(t, ev->peer_uid);
        if (!p)
            return;   /* left before we could say it came */
        lua_pushliteral(L, "peer_connect");
        bt_ltorrent_push(L, t);
        bt_lpeer_push(L, p);
        call_handler(ls, 3);
        break;
    }
    case BT_EV_METADATA:
        lua_pushliteral(L, "metadata");
        bt_ltorrent_push(L, t);
        call_handler(ls, 2);
        break;
    case BT_EV_PEER_DISCONNECT:
        lua_pushliteral(L, "peer_disconnect");
        bt_ltorrent_push(L, t);
        lua_pushstring(L, ev->address ? ev->address : "?");
        lua_pushstring(L, ev->text ? ev->text : "");
        call_handler(ls, 4);
        break;
    case BT_EV_PEX:   /* (t, from address, { "ip:port" | "[ip]:port", ... }) */
        lua_pushliteral(L, "pex");
        bt_ltorrent_push(L, t);
        lua_pushstring(L, ev->address ? ev->address : "?");
        lua_createtable(L, (int)ev->naddrs, 0);
        for (uint32_t i = 0; i < ev->naddrs; i++) {
            const bt_pex_addr *a = &ev->addrs[i];
            if (bt_push_hostport(L, a->family, a->addr, a->port))
                lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
        }
        call_handler(ls, 4);
        break;
    }
}

static void on_tick(void *ud, double now)
{
    lsess *ls = ud;
    lua_pushliteral(ls->L, "tick");
    lua_pushnumber(ls->L, now);
    call_handler(ls, 2);
}

static void on_peer_gone(void *ud, bt_peer *p)
{
    bt_lpeer_gone(((lsess *)ud)->L, p);
}

static void on_torrent_gone(void *ud, bt_torrent *t)
{
    bt_ltorrent_gone(((lsess *)ud)->L, t);
}

/* ---- bt.Session ---- */

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
 * max_per_ip (connections with one host, half of them in their handshake; default 8, 0 no per-host rules),
 * evict_idle (s without payload after which a peer may be closed to make room when full; default 10),
 * udp_conn_ttl (s a UDP tracker's connection id is used, at most and by default 60: BEP 15),
 * policy_time_limit (seconds one hook call may run, default 2), policy_memory_limit (bytes of Lua
 * memory after a hook call, default 1 GiB, 0 none), max_down, max_up (bytes/s, 0
 * unlimited), max_request (largest block served, 16 KiB to 128 KiB, default 16 KiB), delay (lab mode: s every
 * byte sent is held, 0 to 2, default 0), loss (lab mode: per segment, 0 to 0.5: a batch with a lost
 * segment waits one more RTO, 0.2 s), loss_seed (its draws), peer_id (20 bytes; default -BL0100- and
 * 12 random characters; the engine's tie-breaks start from it), signals (true: SIGINT/SIGTERM
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
    o.send_timeout = opt_num(L, 1, "send_timeout", BT_SESS_SEND_TIMEOUT);
    o.keepalive = opt_num(L, 1, "keepalive", BT_SESS_KEEPALIVE);
    o.evict_idle = opt_num(L, 1, "evict_idle", BT_TORRENT_EVICT_IDLE);
    if (!(o.evict_idle > 0 && o.evict_idle <= 86400))
        luaL_argerror(L, 1, "evict_idle must be in (0, 86400] seconds");
    o.udp_conn_ttl = opt_num(L, 1, "udp_conn_ttl", BT_UDP_CONN_TTL);
    if (!(o.udp_conn_ttl > 0 && o.udp_conn_ttl <= BT_UDP_CONN_TTL))
        luaL_argerror(L, 1, "udp_conn_ttl must be in (0, 60] seconds");
    double mp = opt_num(L, 1, "max_peers", BT_TORRENT_MAX_PEERS);
    if (mp < 1 || mp > 100000)
        luaL_argerror(L, 1, "max_peers must be in [1, 100000]");
    o.max_peers = (uint32_t)mp;
    double mip = opt_num(L, 1, "max_per_ip", BT_SESS_MAX_PER_IP);
    if (!(mip >= 0 && mip <= 100000))
        luaL_argerror(L, 1, "max_per_ip must be in [0, 100000] (0: no cap)");
    o.max_per_ip = (int)mip;
    double limit = opt_num(L, 1, "policy_time_limit", POLICY_TIME_LIMIT);
    if (!(limit > 0 && limit <= 3600))
        luaL_argerror(L, 1, "policy_time_limit must be in (0, 3600] seconds");
    double mlimit = opt_num(L, 1, "policy_memory_limit", POLICY_MEMORY_LIMIT);
    if (!(mlimit == 0 || (mlimit >= 1 << 20 && mlimit <= 1099511627776.0)))
        luaL_argerror(L, 1, "policy_memory_limit must be 0 (none) or in [1 MiB, 1 TiB] bytes");
    o.max_down = opt_num(L, 1, "max_down", 0);
    o.max_up = opt_num(L, 1, "max_up", 0);
    if (!(o.max_down >= 0 && o.max_down <= MAX_RATE) || !(o.max_up >= 0 && o.max_up <= MAX_RATE))
        luaL_argerror(L, 1, "max_down and max_up must be in [0, 2^40] bytes/s");
    double mr = opt_num(L, 1, "max_request", BT_SESS_MAX_REQUEST);
    if (!(mr >= BT_SESS_MAX_REQUEST && mr <= BT_WIRE_MAX_BLOCK))
        luaL_argerror(L, 1, "max_request must be in [16384, 131072] bytes");
    o.max_request = (uint32_t)mr;
    o.delay = opt_num(L, 1, "delay", 0);
    if (!(o.delay >= 0 && o.delay <= BT_SESS_MAX_DELAY))
        luaL_argerror(L, 1, "delay must be in [0, 2] seconds");
    o.loss = opt_num(L, 1, "loss", 0);
    if (!(o.loss >= 0 && o.loss <= BT_SESS_MAX_LOSS))
        luaL_argerror(L, 1, "loss must be in [0, 0.5]");
    double ls_seed = opt_num(L, 1, "loss_seed", 0);
    if (!(ls_seed >= 0 && ls_seed <= 9007199254740992.0))
        luaL_argerror(L, 1, "loss_seed must be in [0, 2^53]");
    o.loss_seed = (uint64_t)ls_seed;
    lua_getfield(L, 1, "signals");
    o.signals = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "peer_id");
    if (!lua_isnil(L, -1)) {   /* stays on the stack while used */
        size_t idlen = 0;
        const char *id = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &idlen) : NULL;
        if (!id || idlen != 20)
            luaL_argerror(L, 1, "peer_id must be a string of 20 bytes");
        o.peer_id = (const uint8_t *)id;
    }
    lua_getfield(L, 1, "bind");
    o.bind = luaL_optstring(L, -1, NULL);   /* stays on the stack while used */
    lsess *ls = lua_newuserdatauv(L, sizeof *ls, 1);
    memset(ls, 0, sizeof *ls);
    ls->handler_ref = LUA_NOREF;
    ls->self_ref = LUA_NOREF;
    luaL_setmetatable(L, SESSION_MT);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    ls->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    bt_lpolicy_init(&ls->pol, ls->L, limit, (uint64_t)mlimit);
    bt_sess_cb cb = { .ud = ls, .event = on_event, .tick = on_tick, .peer_gone = on_peer_gone,
                      .torrent_gone = on_torrent_gone };
    const char *err = NULL;
    if (bt_sess_init(&ls->s, &o, &cb, &bt_lpolicy_ops, &ls->pol, &err) != 0) {
        bt_lpolicy_free(&ls->pol);
        return bt_push_fail(L, "%s", err);
    }
    ls->open = true;
    lua_pushvalue(L, 2);
    ls->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);   /* uservalue: pending announce callbacks by id */
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

/* cs:set_limits{ down =, up = }: session-wide rates in bytes/s, 0 unlimited  [-0, +0, e] */
static int l_sess_set_limits(lua_State *L)
{
    lsess *ls = check_sess(L, 1);
    double rates[2] = { ls->s.down.rate, ls->s.up.rate };
    bt_ltorrent_check_limits(L, 2, rates);
    bt_sess_set_limits(&ls->s, rates[0], rates[1]);
    return 0;
}

/* cs:limits() -> { down =, up = } (bytes/s, 0 unlimited)  [-0, +1, -] */
static int l_sess_limits(lua_State *L)
{
    lsess *ls = check_sess(L, 1);
    lua_createtable(L, 0, 2);
    lua_pushnumber(L, ls->s.down.rate);
    lua_setfield(L, -2, "down");
    lua_pushnumber(L, ls->s.up.rate);
    lua_setfield(L, -2, "up");
    return 1;
}

/* cs:fd_budget() -> { fd_limit =, fd_peers =, max_pending = }: the open-file limit
 * (raised to the hard one), the peers per torrent it allows, handshakes at once  [-0, +1, -] */
static int l_sess_fd_budget(lua_State *L)
{
    lsess *ls = check_sess(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, ls->s.fd_limit);
    lua_setfield(L, -2, "fd_limit");
    lua_pushinteger(L, ls->s.fd_peers);
    lua_setfield(L, -2, "fd_peers");
    lua_pushinteger(L, ls->s.max_pending);
    lua_setfield(L, -2, "max_pending");
    return 1;
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
    lua_pushlstring(L, (const char *)check_sess(L, 1)->s.env.peer_id, 20);
    return 1;
}

/* cs:add(meta | info_hash, dir, policy, max_peers [, trust [, storage [, load]]])
 *   -> bt.Torrent | nil, message  [-0, +1|2, e]
 * policy: a complete policy table (bt.policy.load). storage "disk" (default):
 * opens (creates) the files under dir and hash-checks what is already there,
 * except the pieces in `trust` (a bt.Ranges from resume data), taken as had.
 * storage "memory": dir must be nil, trust too; nothing touches the file system,
 * except that `load` (a folder) is read (never written) and every piece that
 * verifies there is copied into memory and had. A 20-byte info-hash instead of meta:
 * a magnet's torrent, which fetches its metadata (the "metadata" event, then
 * t:set_meta). */
static int l_sess_add(lua_State *L)
{
    lsess *ls = check_sess(L, 1);
    /* a 20-byte string: a magnet's info-hash (the torrent fetches its metadata first) */
    size_t hlen = 0;
    const char *ih = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &hlen) : NULL;
    if (ih && hlen != 20)
        luaL_argerror(L, 2, "an info-hash is 20 bytes");
    const bt_meta *m = ih ? NULL : bt_lmeta_check(L, 2);
    static const char *const kinds[] = { "disk", "memory", NULL };
    int kind = luaL_checkoption(L, 7, "disk", kinds);
    const char *dir = kind == 0 ? luaL_checkstring(L, 3) : NULL;
    if (kind == 1 && !lua_isnoneornil(L, 3))
        luaL_argerror(L, 3, "memory storage takes no folder (dir must be nil)");
    uint32_t slots;
    double interval;
    bt_lpolicy_check(L, 4, &slots, &interval);
    lua_Integer mp = luaL_optinteger(L, 5, 0);
    if (mp < 0 || mp > 100000)
        luaL_argerror(L, 5, "max_peers must be in [0, 100000]");
    const bt_ranges *trust = NULL;
    if (!lua_isnoneornil(L, 6)) {
        if (kind == 1)
            luaL_argerror(L, 6, "memory storage has no resume data to trust");
        trust = bt_lranges_read(L, 6);
        if (!m || trust->size != m->num_pieces)
            luaL_argerror(L, 6, "trusted set has the wrong number of pieces");
    }
    const char *load = luaL_optstring(L, 8, NULL);
    if (load && kind == 0)
        luaL_argerror(L, 8, "load is for memory storage (disk storage reads its own folder)");
    /* the handle first: the policy scheduler looks hooks up through it while adding */
    ltorrent *lt = bt_ltorrent_new(L, &ls->s, 2, 4);
    bt_add_opts o = { .storage = kind == 1 ? BT_STORE_MEMORY : BT_STORE_DISK, .dir = dir, .load = load,
                      .max_peers = (uint32_t)mp, .trust = trust, .upload_slots = slots,
                      .choke_interval = interval, .lref = lt,
                      .info_hash = (const uint8_t *)ih };
    char err[512];
    bt_torrent *t = bt_sess_add(&ls->s, m, &o, err, sizeof err);
    if (!t) {
        bt_ltorrent_drop(L, lt);
        return bt_push_fail(L, "%s", err);
    }
    bt_ltorrent_bind(lt, t);
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
    ls->open = false;
    ls->s.cb.event = NULL;   /* no more events: handles go stale as their objects go */
    ls->s.cb.tick = NULL;
    while (ls->children)   /* DHT nodes: their sockets and timers are on our loop */
        ls->children->close(ls->children);
    bt_sess_free(&ls->s);   /* pending announces are dropped without callbacks */
    bt_lpolicy_free(&ls->pol);
    if (ls->self_ref != LUA_NOREF) {
        luaL_unref(L, LUA_REGISTRYINDEX, ls->self_ref);
        ls->self_ref = LUA_NOREF;
    }
    luaL_unref(L, LUA_REGISTRYINDEX, ls->handler_ref);
    ls->handler_ref = LUA_NOREF;
}

/* cs:close(): drops every peer and torrent handle; files stay. Idempotent.  [-0, +0, e] */
static int l_sess_close(lua_State *L)
{
    sess_close(L, luaL_checkudata(L, 1, SESSION_MT));
    return 0;
}

static int l_sess_gc(lua_State *L)
{
    lsess *ls = luaL_checkudata(L, 1, SESSION_MT);
    if (!ls->s.running)
        sess_close(L, ls);
    return 0;
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

/* cs:announce(params, fn) -> id | nil, message  [-0, +1|2, e]
 * params as bt.tracker.announce's (docs/api.md), peer_id and port defaulting to the
 * session's, plus timeout (seconds for the whole announce). fn(result) or
 * fn(nil, message) is called later from the loop, exactly once (never if the
 * session closes first); result's peers are "ip:port" strings. */
static int sess_request(lua_State *L, int scrape)
{
    lsess *ls = check_sess(L, 1);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    bt_announce a;
    bt_ltracker_check_params(L, 2, &a, ls->s.env.peer_id, ls->s.port);
    bt_tracker *tr = bt_sess_tracker(&ls->s);
    if (!tr)
        return bt_push_fail(L, "cannot start the tracker client");
    if (ls->self_ref == LUA_NOREF) {
        lua_pushvalue(L, 1);
        ls->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    int id = scrape ? bt_tracker_scrape(tr, &a, on_announce, ls) : bt_tracker_announce(tr, &a, on_announce, ls);
    if (id < 0)
        return bt_push_fail(L, "%s", bt_tracker_error(tr));
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, 3);
    lua_rawseti(L, -2, id);
    lua_pushinteger(L, id);
    return 1;
}

static int l_sess_announce(lua_State *L) { return sess_request(L, 0); }

/* cs:scrape(params, fn) -> id | nil, message  [-0, +1|2, e]
 * As cs:announce, for bt_tracker_scrape: fn(result) holds complete, incomplete,
 * downloaded (or failure_reason), or fn(nil, message). */
static int l_sess_scrape(lua_State *L) { return sess_request(L, 1); }

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
    static const luaL_Reg methods[] = {
        { "add", l_sess_add },   { "run", l_sess_run },         { "stop", l_sess_stop },
        { "close", l_sess_close }, { "port", l_sess_port },     { "now", l_sess_now },
        { "peer_id", l_sess_peer_id }, { "announce", l_sess_announce }, { "scrape", l_sess_scrape },
        { "signal", l_sess_signal }, { "set_limits", l_sess_set_limits },
        { "limits", l_sess_limits }, { "fd_budget", l_sess_fd_budget }, { NULL, NULL },
    };
    luaL_newmetatable(L, SESSION_MT);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_sess_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_sess_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_session_new);
    lua_setfield(L, mod, "session_new");
}
