/* l_peer.c: bt.Peer (l_peer.h). Fields read the connection's state; methods
 * convert their arguments and call the torrent's request functions, which decide. */
#include "lua/l_peer.h"

#include <math.h>
#include <string.h>

#include "engine/torrent.h"
#include "lua/l_ranges.h"

#define SETI(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
#define SETN(name, v) (lua_pushnumber(L, (v)), lua_setfield(L, -2, name))

const char *const BT_PEER_SOURCES[BT_SRC_COUNT + 1] = {
    [BT_SRC_MANUAL] = "manual", [BT_SRC_TRACKER] = "tracker", [BT_SRC_DHT] = "dht", [BT_SRC_PEX] = "pex",
    [BT_SRC_INCOMING] = "incoming", [BT_SRC_COUNT] = NULL,
};

static const char PEER_KEY = 0;   /* its address identifies bt.Peer's metatable */

lpeer *bt_lpeer_test(lua_State *L, int idx)
{
    return bt_testudata_key(L, idx, &PEER_KEY);
}

/* The handle at idx, or the usual argument error. */
static lpeer *check_handle(lua_State *L, int idx)
{
    lpeer *h = bt_lpeer_test(L, idx);
    return h ? h : luaL_checkudata(L, idx, BT_PEER_MT);
}

bt_peer *bt_lpeer_check(lua_State *L, int idx)
{
    lpeer *h = check_handle(L, idx);
    if (!h->p || h->p->closing || !h->p->sw.t || h->p->sw.t->stopped)
        luaL_error(L, BT_PEER_MT ": peer %s has disconnected (handle used after its peer left)", h->address);
    return h->p;
}

void bt_lpeer_push(lua_State *L, bt_peer *p)
{
    if (p->href >= 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, p->href);
        return;
    }
    lpeer *h = lua_newuserdatauv(L, sizeof *h, 1);   /* uservalue: its piece-set view */
    h->p = p;
    memcpy(h->address, p->address, sizeof h->address);
    luaL_setmetatable(L, BT_PEER_MT);
    lua_pushvalue(L, -1);
    p->href = luaL_ref(L, LUA_REGISTRYINDEX);
}

void bt_lpeer_gone(lua_State *L, bt_peer *p)
{
    if (p->href < 0)
        return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->href);
    lpeer *h = lua_touserdata(L, -1);
    if (h)
        h->p = NULL;
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, p->href);
    p->href = -1;
}

uint32_t bt_lpiece_check(lua_State *L, uint32_t npieces, int arg)
{
    lua_Integer i = luaL_checkinteger(L, arg);
    if (i < 0 || i >= (lua_Integer)npieces)
        luaL_argerror(L, arg, lua_pushfstring(L, "piece %I out of range (the torrent has %I pieces, 0-based)",
                                              (LUAI_UACINT)i, (LUAI_UACINT)npieces));
    return (uint32_t)i;
}

/* peer.have's view: the live peer's set (l_ranges.h) */
static const bt_ranges *have_of(lua_State *L, int owner)
{
    return &bt_lpeer_check(L, owner)->have;
}

static double now_of(const bt_peer *p)
{
    return ev_now(p->env->loop);
}

/* The fields of a peer, in the order of the switch below. */
enum {
    F_ADDRESS = 1, F_ALIVE, F_HAVE, F_ID, F_CHOKING, F_INTERESTED, F_AM_CHOKING, F_AM_INTERESTED, F_RATE_DOWN,
    F_RATE_UP, F_RTT, F_MIN_RTT, F_INFLIGHT, F_SLOTS, F_QUEUE_DEPTH, F_REQQ, F_SNUBBED, F_SEED, F_INCOMING,
    F_DOWNLOADED, F_UPLOADED, F_FAILS, F_CONNECTED_FOR, F_IDLE, F_UPLOAD_IDLE, F_CLIENT, F_EXTENSIONS, F_LISTEN_PORT,
    F_SOURCE, F_UPLOAD_RATE,
};
static const char *const FIELDS[] = {
    "address", "alive", "have", "id", "choking", "interested", "am_choking", "am_interested", "rate_down",
    "rate_up", "rtt", "min_rtt", "inflight", "slots", "queue_depth", "reqq", "snubbed", "seed", "incoming",
    "downloaded", "uploaded", "fails", "connected_for", "idle", "upload_idle", "client", "extensions", "listen_port",
    "source", "upload_rate", NULL,
};

static int l_peer_index(lua_State *L)
{
    lpeer *h = check_handle(L, 1);
    int id = bt_index_key(L);
    if (id < 0)
        return 1;   /* a method */
    if (id == F_ADDRESS) {   /* stays readable after the peer left */
        lua_pushstring(L, h->address);
        return 1;
    }
    if (id == F_ALIVE) {
        lua_pushboolean(L, h->p && !h->p->closing && h->p->sw.t && !h->p->sw.t->stopped);
        return 1;
    }
    if (id == 0) {
        lua_pushnil(L);
        return 1;
    }
    bt_peer *p = bt_lpeer_check(L, 1);
    switch (id) {
    case F_HAVE:   /* a view, made once: reading it costs nothing */
        lua_getiuservalue(L, 1, 1);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            bt_lranges_push_view(L, 1, have_of);
            lua_pushvalue(L, -1);
            lua_setiuservalue(L, 1, 1);
        }
        break;
    case F_ID: lua_pushlstring(L, (const char *)p->peer_id, 20); break;
    case F_CHOKING: lua_pushboolean(L, p->choking); break;
    case F_INTERESTED: lua_pushboolean(L, p->interested); break;
    case F_AM_CHOKING: lua_pushboolean(L, p->am_choking); break;
    case F_AM_INTERESTED: lua_pushboolean(L, p->am_interested); break;
    case F_RATE_DOWN: lua_pushnumber(L, p->rate_down); break;
    case F_RATE_UP: lua_pushnumber(L, p->rate_up); break;
    case F_RTT: lua_pushnumber(L, p->rtt); break;
    case F_MIN_RTT: lua_pushnumber(L, p->min_rtt); break;
    case F_INFLIGHT: lua_pushinteger(L, p->inflight); break;
    case F_SLOTS: lua_pushinteger(L, bt_torrent_slots(p)); break;
    case F_QUEUE_DEPTH: lua_pushinteger(L, p->sw.queue_depth); break;
    case F_REQQ: lua_pushinteger(L, p->reqq); break;
    case F_SNUBBED: lua_pushboolean(L, p->sw.snubbed); break;
    case F_SEED: lua_pushboolean(L, p->sw.seed); break;
    case F_INCOMING: lua_pushboolean(L, p->incoming); break;
    case F_DOWNLOADED: lua_pushinteger(L, (lua_Integer)p->down_total); break;
    case F_UPLOADED: lua_pushinteger(L, (lua_Integer)p->sw.uploaded); break;
    case F_FAILS: lua_pushinteger(L, p->sw.fails); break;
    case F_CONNECTED_FOR: lua_pushnumber(L, now_of(p) - p->connected_at); break;
    case F_IDLE: lua_pushnumber(L, now_of(p) - (p->last_block > 0 ? p->last_block : p->connected_at)); break;
    case F_UPLOAD_IDLE: lua_pushnumber(L, bt_peer_upload_idle(p, now_of(p))); break;
    case F_LISTEN_PORT: if (p->listen_port) lua_pushinteger(L, p->listen_port); else lua_pushnil(L); break;
    case F_UPLOAD_RATE: lua_pushnumber(L, p->up_cap.rate); break;
    case F_SOURCE: lua_pushstring(L, p->source < BT_SRC_COUNT ? BT_PEER_SOURCES[p->source] : "?"); break;
    case F_CLIENT: if (p->client[0]) lua_pushstring(L, p->client); else lua_pushnil(L); break;
    case F_EXTENSIONS:   /* BEP 10: our extensions it has, with the ids it gave them */
        lua_createtable(L, 0, BT_EXT_COUNT);
        for (int i = 0; i < BT_EXT_COUNT; i++)
            if (p->ext_ids[i]) {
                lua_pushinteger(L, p->ext_ids[i]);
                lua_setfield(L, -2, BT_EXT_NAMES[i].name);
            }
        break;
    default: lua_pushnil(L); break;
    }
    return 1;
}

/* A request function's verdict as Lua sees it: a count, or the error naming the mistake. */
static int push_requested(lua_State *L, bt_peer *p, int rc, uint32_t piece, uint32_t block, lua_Integer want)
{
    switch (rc) {
    case BT_REQ_GONE:
        return luaL_error(L, BT_PEER_MT ": peer %s has disconnected (handle used after its peer left)", p->address);
    case BT_REQ_RANGE:
        return luaL_error(L, BT_PEER_MT ": piece %I out of range", (LUAI_UACINT)piece);
    case BT_REQ_LACKS:
        return luaL_error(L, BT_PEER_MT ": peer %s lacks piece %I", p->address, (LUAI_UACINT)piece);
    case BT_REQ_SLOTS:
        return luaL_error(L, BT_PEER_MT ": %I requests asked of peer %s, which has %I free slots%s",
                          (LUAI_UACINT)want, p->address, (LUAI_UACINT)bt_torrent_slots(p),
                          p->choking ? " (it is choking us)" : "");
    case BT_REQ_BLOCK:
        return luaL_error(L, BT_PEER_MT ": block %I is past the end of piece %I (it has %I blocks, 0-based)",
                          (LUAI_UACINT)block, (LUAI_UACINT)piece,
                          (LUAI_UACINT)bt_piece_blocks(p->tor, piece));
    case BT_REQ_NOMEM:
        return luaL_error(L, "not enough memory");
    default:
        lua_pushinteger(L, rc);
        return 1;
    }
}

/* The optional count of request_blocks / duplicate_blocks: default every free slot. */
static lua_Integer opt_count(lua_State *L, bt_peer *p, int arg)
{
    lua_Integer max = luaL_optinteger(L, arg, (lua_Integer)bt_torrent_slots(p));
    if (max < 0)
        luaL_argerror(L, arg, "count must be >= 0");
    if (max > (lua_Integer)UINT32_MAX)
        max = UINT32_MAX;
    return max;
}

/* peer:request_blocks(piece [, max]) -> n: requests up to max blocks of piece nobody
 * was asked for (in endgame also blocks others were asked for), max defaulting to
 * every free slot. Raises if the peer lacks the piece or max exceeds peer.slots.
 * [-0, +1, v] */
static int l_peer_request_blocks(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    uint32_t piece = bt_lpiece_check(L, p->tor->npieces, 2);
    lua_Integer max = opt_count(L, p, 3);
    return push_requested(L, p, bt_torrent_request_blocks(p->sw.t, p, piece, (uint32_t)max, false), piece, 0, max);
}

/* peer:duplicate_blocks(piece [, max]) -> n: as request_blocks, and also blocks
 * already asked of other peers (never twice of this one), endgame or not: a second
 * peer for the head of a stream.  [-0, +1, v] */
static int l_peer_duplicate_blocks(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    uint32_t piece = bt_lpiece_check(L, p->tor->npieces, 2);
    lua_Integer max = opt_count(L, p, 3);
    return push_requested(L, p, bt_torrent_request_blocks(p->sw.t, p, piece, (uint32_t)max, true), piece, 0, max);
}

/* peer:request(piece, block) -> true | false (already had, received or asked)  [-0, +1, v] */
static int l_peer_request(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    uint32_t piece = bt_lpiece_check(L, p->tor->npieces, 2);
    lua_Integer b = luaL_checkinteger(L, 3);
    uint32_t block = b < 0 || b > (lua_Integer)UINT32_MAX ? UINT32_MAX : (uint32_t)b;
    int rc = bt_torrent_request_one(p->sw.t, p, piece, block);
    if (rc < 0)
        return push_requested(L, p, rc, piece, block, 1);
    lua_pushboolean(L, rc > 0);
    return 1;
}

/* peer:cancel(piece, block) -> true if it was in flight  [-0, +1, v] */
static int l_peer_cancel(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    uint32_t piece = bt_lpiece_check(L, p->tor->npieces, 2);
    lua_Integer b = luaL_checkinteger(L, 3);
    if (b < 0 || b >= (lua_Integer)bt_piece_blocks(p->tor, piece))
        luaL_argerror(L, 3, "block out of range");
    lua_pushboolean(L, bt_torrent_cancel(p->sw.t, p, piece, (uint32_t)b));
    return 1;
}

/* peer:cancel_all(): every request in flight is cancelled and goes back to the pool  [-0, +0, v] */
static int l_peer_cancel_all(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    bt_torrent_cancel_all(p->sw.t, p);
    return 0;
}

/* peer:requests() -> array of {piece=, block=, age=, expected=} oldest first  [-0, +1, m] */
static int l_peer_requests(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    double now = now_of(p);
    lua_createtable(L, (int)p->inflight, 0);
    int k = 0;
    uint32_t i = 0;
    for (const bt_req *r; (r = bt_peer_next_req(p, &i));) {
        lua_createtable(L, 0, 4);
        SETI("piece", r->piece);
        SETI("block", r->block);
        SETN("age", now - r->sent);
        SETN("expected", bt_peer_expected(p, r));
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

/* peer:disconnect([reason]): closed now; freed once the current call-out returns  [-0, +0, v] */
static int l_peer_disconnect(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    bt_peer_close(p, luaL_optstring(L, 2, "disconnected by the policy"));
    return 0;
}

/* peer:set_upload_rate(bytes_per_s): what we send this peer is limited to that rate (0: no
 * limit of its own), within the session's and the torrent's limits.  [-0, +0, v] */
static int l_peer_set_upload_rate(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    lua_Number r = luaL_checknumber(L, 2);
    if (!(r >= 0 && r <= 1099511627776.0))
        luaL_argerror(L, 2, "rate must be in [0, 2^40] bytes/s (0: no limit)");
    bt_peer_set_upload_rate(p, r);
    return 0;
}

/* peer:has(i) -> boolean  [-0, +1, v] */
static int l_peer_has(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    lua_pushboolean(L, bt_ranges_has(&p->have, bt_lpiece_check(L, p->tor->npieces, 2)));
    return 1;
}

static int l_peer_tostring(lua_State *L)
{
    lpeer *h = luaL_checkudata(L, 1, BT_PEER_MT);
    lua_pushfstring(L, BT_PEER_MT "(%s)", h->address);
    return 1;
}

void bt_open_peer(lua_State *L, int mod)
{
    (void)mod;
    static const luaL_Reg meta[] = {
        { "__index", l_peer_index }, { "__tostring", l_peer_tostring }, { NULL, NULL },
    };
    static const luaL_Reg methods[] = {
        { "request_blocks", l_peer_request_blocks }, { "duplicate_blocks", l_peer_duplicate_blocks },
        { "request", l_peer_request }, { "cancel", l_peer_cancel }, { "cancel_all", l_peer_cancel_all },
        { "requests", l_peer_requests }, { "disconnect", l_peer_disconnect }, { "has", l_peer_has },
        { "set_upload_rate", l_peer_set_upload_rate },
        { NULL, NULL },
    };
    bt_new_class(L, BT_PEER_MT, meta, methods, FIELDS);
    bt_class_key(L, BT_PEER_MT, &PEER_KEY);
}
