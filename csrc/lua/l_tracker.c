/* l_tracker.c: Lua side of the tracker client (tracker.h: HTTP(S) and UDP) for
 * tools and tests, and bt.peer_id. The engine drives bt_tracker on its own loop;
 * here a synchronous helper runs a private libev loop until the answer comes.
 *
 *   bt.tracker.announce(params [, timeout_s]) -> result | nil, message
 *   bt.tracker.scrape(params [, timeout_s])   -> result | nil, message
 *   bt.tracker.udp_parse(reply, action, tid [, family]) -> result | false | nil, message
 *   bt.tracker.parse(body)                    -> result | nil, message
 *   bt.tracker.announce_url(params)           -> url
 *   bt.tracker.urlencode(bytes)               -> text
 *   bt.peer_id()                              -> 20 bytes "-BL0100-" .. 12 random
 *
 * params: url, info_hash (20 bytes), peer_id (20 bytes), port, uploaded,
 * downloaded, left (default 0), event ("started" | "completed" | "stopped" |
 * "none", default none), numwant, key (integers, omitted when nil),
 * tracker_id (string), connect_timeout (seconds).
 * result: {failure_reason =, warning_message =, interval =, min_interval =,
 * tracker_id =, complete =, incomplete =, http_status =,
 * peers = {{ip = "1.2.3.4", port = N}, ...} (IPv4 then IPv6), peers_dropped = N};
 * absent fields are nil. A tracker's refusal is a result with failure_reason; a
 * transport or format error is nil, message.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <ev.h>

#include "lua/l_tracker.h"
#include "lua/lutil.h"
#include "codec/udp_tracker.h"
#include "engine/tracker.h"

#define BT_RESULT_BOX_MT "bt.tracker.result"
#define BT_PEER_ID_PREFIX "-BL0100-"   /* Azureus style: client BL, version 0.1.0.0 */

/* The sync helper waits this long past the transfer's own timeout before giving
 * up on curl (it always reports first; this only bounds a bug). */
#define SYNC_GRACE_S 5.0

/* Holds a result whose inner arrays are malloc'ed: Lua's __gc frees them, so a
 * Lua error while building the table leaks nothing. */
typedef struct result_box {
    bt_announce_result r;
    int done;
} result_box;

static int box_gc(lua_State *L)
{
    result_box *b = luaL_checkudata(L, 1, BT_RESULT_BOX_MT);
    bt_announce_result_free(&b->r);
    return 0;
}

static result_box *push_box(lua_State *L)
{
    result_box *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    bt_announce_result_init(&b->r);
    luaL_setmetatable(L, BT_RESULT_BOX_MT);
    return b;
}

static void set_int(lua_State *L, const char *k, int64_t v)
{
    if (v >= 0) {
        lua_pushinteger(L, (lua_Integer)v);
        lua_setfield(L, -2, k);
    }
}

/* The result table of a successful announce (see l_tracker.h).  [-0, +1, m] */
void bt_ltracker_push_result(lua_State *L, const bt_announce_result *r, int peer_strings)
{
    lua_createtable(L, 0, 10);
    if (r->failure_reason) {
        lua_pushstring(L, r->failure_reason);
        lua_setfield(L, -2, "failure_reason");
    }
    if (r->warning_message) {
        lua_pushstring(L, r->warning_message);
        lua_setfield(L, -2, "warning_message");
    }
    if (r->tracker_id) {
        lua_pushlstring(L, r->tracker_id, r->tracker_id_len);
        lua_setfield(L, -2, "tracker_id");
    }
    set_int(L, "interval", r->interval);
    set_int(L, "min_interval", r->min_interval);
    set_int(L, "complete", r->complete);
    set_int(L, "incomplete", r->incomplete);
    set_int(L, "downloaded", r->downloaded);
    if (r->http_status > 0)
        set_int(L, "http_status", r->http_status);
    lua_pushinteger(L, r->peers_dropped);
    lua_setfield(L, -2, "peers_dropped");
    lua_createtable(L, (int)r->npeers, 0);
    for (uint32_t i = 0; i < r->npeers; i++) {
        const bt_peer_addr *p = &r->peers[i];
        if (peer_strings) {
            if (!bt_push_hostport(L, p->family, p->addr, p->port))
                continue;
        } else {
            char ip[INET6_ADDRSTRLEN];
            if (!inet_ntop(p->family == 4 ? AF_INET : AF_INET6, p->addr, ip, sizeof ip))
                continue;
            lua_createtable(L, 0, 2);
            lua_pushstring(L, ip);
            lua_setfield(L, -2, "ip");
            lua_pushinteger(L, p->port);
            lua_setfield(L, -2, "port");
        }
        lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);   /* no hole if one is skipped */
    }
    lua_setfield(L, -2, "peers");
}

/* Push the result table, or nil, message. Returns the number of values. */
static int push_result(lua_State *L, const bt_announce_result *r)
{
    if (!r->ok)
        return bt_push_fail(L, "%s", r->error[0] ? r->error : "unknown error");
    bt_ltracker_push_result(L, r, 0);
    return 1;
}

/* ---- params ------------------------------------------------------------- */

static void field_bytes20(lua_State *L, int t, const char *k, uint8_t out[20])
{
    lua_getfield(L, t, k);
    size_t n = 0;
    const char *s = lua_tolstring(L, -1, &n);
    if (!s || n != 20)
        luaL_argerror(L, t, lua_pushfstring(L, "params.%s must be 20 bytes", k));
    memcpy(out, s, 20);
    lua_pop(L, 1);
}

static lua_Integer field_int(lua_State *L, int t, const char *k, lua_Integer def, lua_Integer lo,
                             lua_Integer hi)
{
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return def;
    }
    int isnum;
    lua_Integer v = lua_tointegerx(L, -1, &isnum);
    if (!isnum || v < lo || v > hi)
        luaL_argerror(L, t, lua_pushfstring(L, "params.%s must be an integer in [%I, %I]", k,
                                            (LUAI_UACINT)lo, (LUAI_UACINT)hi));
    lua_pop(L, 1);
    return v;
}

void bt_ltracker_check_params(lua_State *L, int t, bt_announce *req, const uint8_t *peer_id, int port)
{
    t = lua_absindex(L, t);
    luaL_checktype(L, t, LUA_TTABLE);
    memset(req, 0, sizeof *req);
    lua_getfield(L, t, "url");
    req->url = lua_tostring(L, -1);
    if (!req->url || lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, t, "params.url must be a string");
    lua_pop(L, 1);   /* the table keeps the string alive */
    field_bytes20(L, t, "info_hash", req->info_hash);
    lua_getfield(L, t, "peer_id");
    bool own_id = peer_id && lua_isnil(L, -1);
    lua_pop(L, 1);
    if (own_id)
        memcpy(req->peer_id, peer_id, 20);
    else
        field_bytes20(L, t, "peer_id", req->peer_id);
    req->port = (uint16_t)field_int(L, t, "port", port, 0, 65535);
    req->uploaded = field_int(L, t, "uploaded", 0, 0, LUA_MAXINTEGER);
    req->downloaded = field_int(L, t, "downloaded", 0, 0, LUA_MAXINTEGER);
    req->left = field_int(L, t, "left", 0, 0, LUA_MAXINTEGER);
    req->numwant = (int32_t)field_int(L, t, "numwant", -1, -1, 100000);
    lua_Integer key = field_int(L, t, "key", -1, -1, 0xffffffffLL);
    if (key >= 0) {
        req->has_key = 1;
        req->key = (uint32_t)key;
    }
    static const char *const events[] = {"none", "started", "completed", "stopped", NULL};
    lua_getfield(L, t, "event");
    if (!lua_isnil(L, -1)) {
        const char *e = lua_tostring(L, -1);
        int k = -1;
        for (int i = 0; e && events[i]; i++)
            if (strcmp(e, events[i]) == 0)
                k = i;
        if (k < 0)
            luaL_argerror(L, t, "params.event must be started, completed, stopped or none");
        req->event = (bt_announce_event)k;
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "tracker_id");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_argerror(L, t, "params.tracker_id must be a string");
        req->tracker_id = lua_tolstring(L, -1, &req->tracker_id_len);
        if (req->tracker_id_len > BT_TRACKER_MAX_TRACKER_ID)
            luaL_argerror(L, t, "params.tracker_id too long");
    }
    lua_pop(L, 1);
    lua_getfield(L, t, "connect_timeout");
    req->connect_timeout = lua_isnil(L, -1) ? 0 : luaL_checknumber(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, t, "timeout");
    req->timeout = lua_isnil(L, -1) ? 0 : luaL_checknumber(L, -1);
    lua_pop(L, 1);
}

/* ---- sync announce ------------------------------------------------------ */

typedef struct sync_ctx {
    struct ev_loop *loop;
    result_box *box;
} sync_ctx;

static char *dup_bytes(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

/* Deep copy into the box: res is only valid during the call. */
static void sync_done(void *ud, int id, const bt_announce_result *res)
{
    (void)id;
    sync_ctx *c = ud;
    bt_announce_result *r = &c->box->r;
    *r = *res;
    r->failure_reason = r->warning_message = r->tracker_id = NULL;
    r->peers = NULL;
    r->npeers = 0;
    int oom = 0;
    if (res->failure_reason && !(r->failure_reason = dup_bytes(res->failure_reason, strlen(res->failure_reason))))
        oom = 1;
    if (res->warning_message && !(r->warning_message = dup_bytes(res->warning_message, strlen(res->warning_message))))
        oom = 1;
    if (res->tracker_id && !(r->tracker_id = dup_bytes(res->tracker_id, res->tracker_id_len)))
        oom = 1;
    if (res->npeers) {
        r->peers = malloc(res->npeers * sizeof *r->peers);
        if (r->peers) {
            memcpy(r->peers, res->peers, res->npeers * sizeof *r->peers);
            r->npeers = res->npeers;
        } else {
            oom = 1;
        }
    }
    if (oom) {
        r->ok = 0;
        snprintf(r->error, sizeof r->error, "out of memory");
    }
    c->box->done = 1;
    ev_break(c->loop, EVBREAK_ALL);
}

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

static int sync_run(lua_State *L, int scrape)
{
    bt_announce req;
    bt_ltracker_check_params(L, 1, &req, NULL, 6881);
    double timeout = luaL_optnumber(L, 2, BT_TRACKER_TIMEOUT);
    if (!(timeout > 0) || timeout > 3600)
        luaL_argerror(L, 2, "timeout must be in (0, 3600] seconds");
    req.timeout = timeout;
    if (req.connect_timeout <= 0 || req.connect_timeout > timeout)
        req.connect_timeout = timeout < BT_TRACKER_CONNECT_TIMEOUT ? timeout : BT_TRACKER_CONNECT_TIMEOUT;
    sync_ctx c;
    c.box = push_box(L);   /* from here until the loop is gone, nothing may raise */
    c.loop = ev_loop_new(EVFLAG_AUTO);
    if (!c.loop)
        return bt_push_fail(L, "cannot create an event loop");
    bt_tracker *t = bt_tracker_new(c.loop);
    if (!t) {
        ev_loop_destroy(c.loop);
        return bt_push_fail(L, "cannot create the tracker client (curl)");
    }
    if ((scrape ? bt_tracker_scrape(t, &req, sync_done, &c) : bt_tracker_announce(t, &req, sync_done, &c)) < 0) {
        char msg[BT_TRACKER_ERRLEN];
        snprintf(msg, sizeof msg, "%s", bt_tracker_error(t));
        bt_tracker_free(t);
        ev_loop_destroy(c.loop);
        return bt_push_fail(L, "%s", msg);
    }
    ev_timer guard;
    ev_timer_init(&guard, guard_cb, timeout + SYNC_GRACE_S, 0.);
    ev_timer_start(c.loop, &guard);
    ev_run(c.loop, 0);
    ev_timer_stop(c.loop, &guard);
    bt_tracker_free(t);   /* cancels the announce if the guard fired */
    ev_loop_destroy(c.loop);
    if (!c.box->done)
        return bt_push_fail(L, "timeout (no answer from the client)");
    return push_result(L, &c.box->r);
}

/* bt.tracker.announce(params [, timeout_s]) -> result | nil, message  [-0, +1|2, e] */
static int l_announce(lua_State *L) { return sync_run(L, 0); }

/* bt.tracker.scrape(params [, timeout_s]) -> result | nil, message  [-0, +1|2, e]
 * params.url is the announce URL (http(s): its scrape URL by the /announce rule;
 * udp: a BEP 15 scrape); result: complete, incomplete, downloaded or failure_reason. */
static int l_scrape(lua_State *L) { return sync_run(L, 1); }

/* bt.tracker.udp_parse(reply, action, tid [, family]) -> result | false | nil, message
 * [-0, +1|2, e]. The BEP 15 reply parser alone, for tests: action "connect",
 * "announce" or "scrape" (what was asked), tid the transaction id sent, family 4
 * (default) or 6. false: another transaction's reply. A connect reply's result
 * holds connection_id (8 bytes). */
static int l_udp_parse(lua_State *L)
{
    static const char *const actions[] = {"connect", "announce", "scrape", NULL};
    size_t n;
    const char *p = luaL_checklstring(L, 1, &n);
    int want = luaL_checkoption(L, 2, NULL, actions);
    lua_Integer tid = luaL_checkinteger(L, 3);
    luaL_argcheck(L, tid >= 0 && tid <= 0xffffffffLL, 3, "tid must be a 32-bit unsigned integer");
    lua_Integer fam = luaL_optinteger(L, 4, 4);
    luaL_argcheck(L, fam == 4 || fam == 6, 4, "family must be 4 or 6");
    result_box *b = push_box(L);
    uint64_t conn = 0;
    int r = bt_udp_parse_reply((const uint8_t *)p, n, (uint32_t)want, (uint32_t)tid, (int)fam, &b->r, &conn);
    if (r == 1) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int k = push_result(L, &b->r);
    if (r == 0 && want == BT_UDP_CONNECT && !b->r.failure_reason) {
        uint8_t c[8];
        for (int i = 0; i < 8; i++)
            c[i] = (uint8_t)(conn >> (56 - 8 * i));
        lua_pushlstring(L, (const char *)c, 8);
        lua_setfield(L, -2, "connection_id");
    }
    return k;
}

/* bt.tracker.parse(body) -> result | nil, message  [-0, +1|2, e] */
static int l_parse(lua_State *L)
{
    size_t n;
    const char *body = luaL_checklstring(L, 1, &n);
    result_box *b = push_box(L);
    bt_tracker_parse(body, n, &b->r);
    return push_result(L, &b->r);
}

/* bt.tracker.announce_url(params) -> the full GET URL  [-0, +1, e] */
static int l_announce_url(lua_State *L)
{
    bt_announce req;
    bt_ltracker_check_params(L, 1, &req, NULL, 6881);
    bt_buf b = {0};
    int r = bt_announce_url(&b, &req);
    /* Copied out and freed before anything that may raise. The URL is bounded:
     * BT_TRACKER_MAX_URL plus a query of escaped fixed-size fields. */
    char url[BT_TRACKER_MAX_URL + 1024 + 3 * BT_TRACKER_MAX_TRACKER_ID];
    size_t n = r == 0 && b.len < sizeof url ? b.len : 0;
    if (n)
        memcpy(url, b.data, n);
    bt_buf_free(&b);
    if (r < 0 || n == 0)
        return luaL_argerror(L, 1, r == -1 ? "out of memory" : "invalid announce URL");
    lua_pushlstring(L, url, n);
    return 1;
}

/* bt.tracker.urlencode(bytes) -> percent-encoded text  [-0, +1, e] */
static int l_urlencode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    if (n > (((size_t)-1) - 1) / 3)
        return luaL_argerror(L, 1, "too long");
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, 3 * n + 1);
    size_t k = bt_url_escape(out, s, n);
    luaL_pushresultsize(&b, k);
    return 1;
}

/* bt.peer_id() -> "-BL0100-" .. 12 random bytes  [-0, +1, e] */
static int l_peer_id(lua_State *L)
{
    char id[20];
    size_t pre = sizeof BT_PEER_ID_PREFIX - 1;
    memcpy(id, BT_PEER_ID_PREFIX, pre);
    size_t got = 0;
    while (got < sizeof id - pre) {
        ssize_t r = getrandom(id + pre + got, sizeof id - pre - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return luaL_error(L, "getrandom: %s", strerror(errno));
        }
        got += (size_t)r;
    }
    lua_pushlstring(L, id, sizeof id);
    return 1;
}

void bt_open_tracker(lua_State *L, int mod)
{
    static const luaL_Reg fns[] = {
        {"announce", l_announce},
        {"scrape", l_scrape},
        {"udp_parse", l_udp_parse},
        {"parse", l_parse},
        {"announce_url", l_announce_url},
        {"urlencode", l_urlencode},
        {NULL, NULL},
    };
    mod = lua_absindex(L, mod);
    luaL_newmetatable(L, BT_RESULT_BOX_MT);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    bt_setfuncs_sub(L, mod, "tracker", fns);
    lua_pushcfunction(L, l_peer_id);
    lua_setfield(L, mod, "peer_id");
}
