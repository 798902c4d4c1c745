/* l_torrent.c: bt.Torrent (l_torrent.h). */
#include "lua/l_torrent.h"

#include <string.h>

#include "lua/l_meta.h"
#include "lua/l_peer.h"
#include "lua/l_ranges.h"

#define SETI(name, v) (lua_pushinteger(L, (lua_Integer)(v)), lua_setfield(L, -2, name))
#define SETN(name, v) (lua_pushnumber(L, (v)), lua_setfield(L, -2, name))
/* Largest rate limit accepted, bytes/s: 1 TiB/s is already "unlimited"; the bound
 * keeps token arithmetic exact (ratelimit.h clamps at 2^53). */
#define MAX_RATE 1099511627776.0

ltorrent *bt_ltorrent_new(lua_State *L, bt_session *s, int meta_idx, int policy_idx)
{
    meta_idx = lua_absindex(L, meta_idx);
    policy_idx = lua_absindex(L, policy_idx);
    ltorrent *lt = lua_newuserdatauv(L, sizeof *lt, 1);
    lt->t = NULL;
    lt->s = s;
    luaL_setmetatable(L, BT_TORRENT_MT);
    /* uservalue: { meta = <keeps bt_meta alive>, state = {}, policy = policy, have = view } */
    lua_createtable(L, 0, 4);
    lua_pushvalue(L, meta_idx);
    lua_setfield(L, -2, "meta");
    lua_newtable(L);
    lua_setfield(L, -2, "state");
    lua_pushvalue(L, policy_idx);
    lua_setfield(L, -2, "policy");
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    lt->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return lt;
}

void bt_ltorrent_bind(ltorrent *lt, bt_torrent *t)
{
    lt->t = t;
    t->lref = lt;
}

void bt_ltorrent_drop(lua_State *L, ltorrent *lt)
{
    luaL_unref(L, LUA_REGISTRYINDEX, lt->self_ref);
    lt->self_ref = LUA_NOREF;
}

void bt_ltorrent_push(lua_State *L, const bt_torrent *t)
{
    const ltorrent *lt = t->lref;
    lua_rawgeti(L, LUA_REGISTRYINDEX, lt->self_ref);
}

void bt_ltorrent_push_policy(lua_State *L, const bt_torrent *t)
{
    bt_ltorrent_push(L, t);
    lua_getiuservalue(L, -1, 1);
    lua_getfield(L, -1, "policy");
    lua_replace(L, -3);
    lua_pop(L, 1);
}

void bt_ltorrent_gone(lua_State *L, bt_torrent *t)
{
    ltorrent *lt = t->lref;
    if (!lt)
        return;
    lt->t = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, lt->self_ref);
    lt->self_ref = LUA_NOREF;
    t->lref = NULL;
}

static const char TORRENT_KEY = 0;   /* its address identifies bt.Torrent's metatable */

static ltorrent *check_handle(lua_State *L, int idx)
{
    ltorrent *lt = bt_testudata_key(L, idx, &TORRENT_KEY);
    return lt ? lt : luaL_checkudata(L, idx, BT_TORRENT_MT);
}

bt_torrent *bt_ltorrent_check(lua_State *L, int idx)
{
    ltorrent *lt = check_handle(L, idx);
    if (!lt->t)
        luaL_error(L, BT_TORRENT_MT ": torrent used after its session was closed");
    return lt->t;
}

/* t.have's view */
static const bt_ranges *have_of(lua_State *L, int owner)
{
    return &bt_ltorrent_check(L, owner)->have;
}

/* The fields of a torrent, in the order of the switch below. */
enum {
    F_STATE = 1, F_POLICY, F_META, F_PIECES, F_HAVE, F_MISSING, F_UNREQUESTED, F_PARTIALS, F_ENDGAME, F_INFO_HASH,
    F_PIECE_LENGTH, F_TOTAL_LENGTH, F_NAME, F_COMPLETE, F_STOPPED, F_ERROR, F_NPEERS, F_DIR, F_STORAGE, F_ID,
    F_TIE_START, F_FETCHING,
};
static const char *const FIELDS[] = {
    "state", "policy", "meta", "pieces", "have", "missing", "unrequested", "partials", "endgame", "info_hash",
    "piece_length", "total_length", "name", "complete", "stopped", "error", "npeers", "dir", "storage", "id",
    "tie_start", "fetching", NULL,
};

static int l_torrent_index(lua_State *L)
{
    ltorrent *lt = check_handle(L, 1);
    int id = bt_index_key(L);
    if (id < 0)
        return 1;   /* a method */
    if (id == F_STATE || id == F_POLICY || id == F_META) {
        lua_getiuservalue(L, 1, 1);
        lua_getfield(L, -1, FIELDS[id - 1]);
        return 1;
    }
    if (id == 0) {
        lua_pushnil(L);
        return 1;
    }
    bt_torrent *t = lt->t;
    if (!t)
        return luaL_error(L, BT_TORRENT_MT ": torrent used after its session was closed");
    switch (id) {
    case F_PIECES: lua_pushinteger(L, t->npieces); break;
    case F_HAVE:   /* a view, made once: reading it costs nothing */
        lua_getiuservalue(L, 1, 1);
        if (lua_getfield(L, -1, "have") == LUA_TNIL) {
            lua_pop(L, 1);
            bt_lranges_push_view(L, 1, have_of);
            lua_pushvalue(L, -1);
            lua_setfield(L, -3, "have");
        }
        break;
    case F_MISSING: lua_pushinteger(L, t->npieces - bt_ranges_count(&t->have)); break;
    case F_UNREQUESTED: lua_pushinteger(L, bt_torrent_unrequested(t)); break;
    case F_PARTIALS: lua_pushinteger(L, t->npartials); break;
    case F_ENDGAME: lua_pushboolean(L, t->endgame); break;
    case F_INFO_HASH: bt_push_hex20(L, t->info_hash); break;
    case F_PIECE_LENGTH: lua_pushinteger(L, t->piece_len); break;
    case F_TOTAL_LENGTH: lua_pushinteger(L, t->total); break;
    case F_NAME:
        if (t->meta)
            lua_pushlstring(L, t->meta->name.p, t->meta->name.n);
        else
            lua_pushnil(L);   /* a magnet's, before its metadata */
        break;
    case F_FETCHING: lua_pushboolean(L, t->fetching); break;
    case F_COMPLETE: lua_pushboolean(L, t->complete); break;
    case F_STOPPED: lua_pushboolean(L, t->stopped); break;
    case F_ERROR:
        if (t->error)
            lua_pushstring(L, t->error);
        else
            lua_pushnil(L);
        break;
    case F_NPEERS: lua_pushinteger(L, t->npeers - t->nclosing); break;   /* closing ones have left */
    case F_DIR: lua_pushstring(L, t->dir); break;   /* nil for memory storage */
    case F_STORAGE: lua_pushstring(L, t->in_memory ? "memory" : "disk"); break;
    case F_ID: lua_pushinteger(L, t->id); break;
    case F_TIE_START: lua_pushinteger(L, t->pk.rot); break;   /* where index-order ties start (rarest, common) */
    default: lua_pushnil(L); break;
    }
    return 1;
}

static int l_torrent_newindex(lua_State *L)
{
    luaL_checkudata(L, 1, BT_TORRENT_MT);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "state") == 0) {
        lua_getiuservalue(L, 1, 1);
        lua_pushvalue(L, 3);
        lua_setfield(L, -2, "state");
        return 0;
    }
    return luaL_error(L, BT_TORRENT_MT ": field '%s' is read-only (keep your data in t.state)", k);
}

/* t:availability(i) -> connected peers that have piece i  [-0, +1, v] */
static int l_torrent_availability(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    lua_pushinteger(L, bt_picker_avail(&t->pk, bt_lpiece_check(L, t->npieces, 2)));
    return 1;
}

/* t:has(i) -> we have piece i verified  [-0, +1, v] */
static int l_torrent_has(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    lua_pushboolean(L, bt_ranges_has(&t->have, bt_lpiece_check(L, t->npieces, 2)));
    return 1;
}

/* t:piece_size(i), t:blocks(i) -> bytes, 16 KiB blocks of piece i  [-0, +1, v] */
static int l_torrent_piece_size(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    lua_pushinteger(L, bt_piece_bytes(&t->pt, bt_lpiece_check(L, t->npieces, 2)));
    return 1;
}

static int l_torrent_blocks(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    lua_pushinteger(L, bt_piece_blocks(&t->pt, bt_lpiece_check(L, t->npieces, 2)));
    return 1;
}

/* t:next_missing([from]) -> the first piece >= from (default 0) we lack, or nil  [-0, +1, v] */
static int l_torrent_next_missing(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    lua_Integer from = luaL_optinteger(L, 2, 0);
    if (from < 0 || from > (lua_Integer)t->npieces)
        luaL_argerror(L, 2, lua_pushfstring(L, "from %I out of range [0, %I]", (LUAI_UACINT)from,
                                            (LUAI_UACINT)t->npieces));
    int64_t k = bt_ranges_next_clear(&t->have, (uint32_t)from);
    if (k < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, k);
    return 1;
}

/* ---- the pick iterators ---- */

typedef struct liter {
    bt_piece_iter it;
    lua_Integer left;     /* pieces still to give (the optional count) */
    uint32_t list[];      /* partial: the snapshot */
} liter;

/* upvalues: the liter, the torrent handle, the peer handle */
static int iter_next(lua_State *L)
{
    liter *li = lua_touserdata(L, lua_upvalueindex(1));
    bt_torrent *t = bt_ltorrent_check(L, lua_upvalueindex(2));
    bt_peer *p = bt_lpeer_check(L, lua_upvalueindex(3));
    if (li->left <= 0)
        return 0;
    int64_t piece = bt_torrent_iter_next(t, p, &li->it);
    if (piece < 0) {
        li->left = 0;
        return 0;
    }
    li->left--;
    lua_pushinteger(L, piece);
    return 1;
}

static int push_iter(lua_State *L, int kind, lua_Integer count, uint32_t from, uint32_t to)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    bt_peer *p = bt_lpeer_check(L, 2);
    if (p->sw.t != t)
        luaL_argerror(L, 2, "peer belongs to another torrent");
    if (count < 0)
        luaL_argerror(L, 3, "count must be >= 0");
    uint32_t nlist = kind == BT_ITER_PARTIAL ? bt_torrent_partial_slots(t) : 0;
    liter *li = lua_newuserdatauv(L, sizeof *li + (size_t)nlist * sizeof(uint32_t), 0);
    li->left = count;
    bt_torrent_iter(t, p, &li->it, kind, from, to, li->list);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, iter_next, 3);
    return 1;
}

/* peer:fill(iter [, max]) -> n: requests blocks of the pieces `iter` yields, in order
 * (each as request_blocks would: every free slot), until the peer has no free slot,
 * `max` requests were sent, or iter ends; returns the requests sent. With one of
 * the torrent's own iterators for this peer (t:rarest(peer)...) the loop runs in C,
 * no Lua call per piece; any other iterator function is called for each piece.
 * A method of bt.Peer, defined here beside the iterators it runs (bt_open_torrent
 * adds it to the class).  [-0, +1, v] */
static int l_peer_fill(lua_State *L)
{
    bt_peer *p = bt_lpeer_check(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_Integer max = luaL_optinteger(L, 3, LUA_MAXINTEGER);
    if (max < 0)
        luaL_argerror(L, 3, "count must be >= 0");
    bt_torrent *t = p->sw.t;
    lua_Integer sent = 0;
    liter *li = NULL;
    if (lua_tocfunction(L, 2) == iter_next) {
        lua_getupvalue(L, 2, 3);   /* the iterator's peer */
        bool same = bt_lpeer_test(L, -1) && bt_lpeer_test(L, -1)->p == p;
        lua_pop(L, 1);
        lua_getupvalue(L, 2, 1);
        if (same)
            li = lua_touserdata(L, -1);
        lua_pop(L, 1);
    }
    while (sent < max) {
        uint32_t slots = bt_torrent_slots(p);
        if (slots == 0)
            break;
        int64_t piece;
        if (li) {
            if (li->left <= 0)
                break;
            piece = bt_torrent_iter_next(t, p, &li->it);
            if (piece < 0) {
                li->left = 0;
                break;
            }
            li->left--;
        } else {
            lua_pushvalue(L, 2);
            lua_call(L, 0, 1);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                break;
            }
            piece = bt_lpiece_check(L, t->npieces, -1);
            lua_pop(L, 1);
            if (p->closing || p->sw.t != t)   /* the iterator may have disconnected it */
                break;
        }
        uint32_t want = max - sent < slots ? (uint32_t)(max - sent) : slots;
        int rc = li ? bt_torrent_request_given(t, p, &li->it, (uint32_t)piece, want)
                    : bt_torrent_request_blocks(t, p, (uint32_t)piece, want, false);
        if (rc == BT_REQ_LACKS && li == NULL)
            return luaL_error(L, BT_PEER_MT ": peer %s lacks piece %I (given by the iterator)", p->address,
                              (LUAI_UACINT)piece);
        if (rc < 0)
            return luaL_error(L, BT_PEER_MT ": cannot request piece %I of peer %s", (LUAI_UACINT)piece, p->address);
        sent += rc;
    }
    lua_pushinteger(L, sent);
    return 1;
}

static lua_Integer opt_count(lua_State *L, int arg)
{
    return luaL_optinteger(L, arg, LUA_MAXINTEGER);
}

/* t:rarest(peer [, n]) -> iterator over the pieces nobody has started that the peer
 * has, rarest first, ties in index order from a random start per torrent (clients
 * spread over different pieces, and one client's writes land mostly in order); at
 * most n of them, and none once the peer has no free request slot.  [-0, +1, v] */
static int l_torrent_rarest(lua_State *L)
{
    return push_iter(L, BT_ITER_RAREST, opt_count(L, 3), 0, 0);
}

/* t:common(peer [, n]) -> the same, most common first.  [-0, +1, v] */
static int l_torrent_common(lua_State *L)
{
    return push_iter(L, BT_ITER_COMMON, opt_count(L, 3), 0, 0);
}

/* t:partial(peer [, n]) -> iterator over pieces in progress that the peer has and that
 * still have a block it may request: outside endgame those with a block nobody was
 * asked for, in index order; in endgame every one, oldest first.  [-0, +1, v] */
static int l_torrent_partial(lua_State *L)
{
    return push_iter(L, BT_ITER_PARTIAL, opt_count(L, 3), 0, 0);
}

/* t:wanted(peer [, from [, to]]) -> iterator, in index order, over pieces in [from, to)
 * that the peer has and that have a block it may request.  [-0, +1, v] */
static int l_torrent_wanted(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    lua_Integer from = luaL_optinteger(L, 3, 0);
    lua_Integer to = luaL_optinteger(L, 4, t->npieces);
    if (from < 0)
        from = 0;
    if (to > (lua_Integer)t->npieces)
        to = t->npieces;
    if (to < from)
        to = from;
    lua_settop(L, 2);
    return push_iter(L, BT_ITER_WANTED, LUA_MAXINTEGER, (uint32_t)from, (uint32_t)to);
}

/* t:peers() -> array of the connected peers' handles  [-0, +1, m] */
static int l_torrent_peers(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    lua_createtable(L, (int)t->npeers, 0);
    int k = 0;
    for (bt_peer *p = t->peers; p; p = p->next) {
        if (p->closing || p->state != BT_PS_ACTIVE)
            continue;
        bt_lpeer_push(L, p);
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

/* t:connect(host, port [, source]) -> true | nil, message: dial a peer (numeric
 * address); also from inside a hook (the new peer joins at the next loop iteration).
 * source: where the address came from, peer.source ("manual" by default; "tracker",
 * "dht", "pex"; "incoming" is the listener's alone).  [-0, +1|2, v] */
static int l_torrent_connect(lua_State *L)
{
    ltorrent *lt = luaL_checkudata(L, 1, BT_TORRENT_MT);
    bt_torrent *t = bt_ltorrent_check(L, 1);
    const char *host = luaL_checkstring(L, 2);
    lua_Integer port = luaL_checkinteger(L, 3);
    int source = luaL_checkoption(L, 4, "manual", BT_PEER_SOURCES);
    if (source == BT_SRC_INCOMING)
        luaL_argerror(L, 4, "\"incoming\" is for peers that dialed us");
    const char *err = NULL;
    if (port < 1 || port > 65535)
        return bt_push_fail(L, "port out of range");
    if (bt_sess_connect(lt->s, t, host, (int)port, (bt_peer_source)source, &err) != 0)
        return bt_push_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* Read a { down =, up = } limits table at idx (bytes/s, 0: unlimited) into rates[0]
 * (down) and rates[1] (up); a missing field keeps its rate. Shared with bt.Session. */
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

/* t:set_limits{ down =, up = }: this torrent's rates in bytes/s, 0 unlimited (the
 * session's limits apply too)  [-0, +0, e] */
static int l_torrent_set_limits(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    double rates[2] = { t->down.rate, t->up.rate };
    check_limits(L, 2, rates);
    bt_torrent_set_limits(t, rates[0], rates[1]);
    return 0;
}

/* t:limits() -> { down =, up = }  [-0, +1, -] */
static int l_torrent_limits(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    lua_createtable(L, 0, 2);
    SETN("down", t->down.rate);
    SETN("up", t->up.rate);
    return 1;
}

/* t:stop([reason]): drops every peer; data on disk stays. Inside a hook: no further
 * hook of this torrent runs.  [-0, +0, v] */
static int l_torrent_stop(lua_State *L)
{
    bt_torrent_stop(bt_ltorrent_check(L, 1), luaL_optstring(L, 2, NULL));
    return 0;
}

/* t:sync() -> true | nil, message: fsync every file (before resume data vouches for them)  [-0, +1|2, v] */
static int l_torrent_sync(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    char err[512];
    if (bt_torrent_sync(t, err, sizeof err) != 0)
        return bt_push_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

/* t:metadata() -> info dictionary bytes | nil  [-0, +1, m]
 * A magnet's torrent: the fetched metadata once it matched the info-hash (before and
 * after t:set_meta); any torrent with metadata: its raw info dictionary. */
static int l_torrent_metadata(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    if (t->fetching && t->md.done)
        lua_pushlstring(L, (const char *)t->md.buf, t->md.size);
    else if (t->pt.info)
        lua_pushlstring(L, (const char *)t->pt.info, t->pt.info_len);
    else
        lua_pushnil(L);
    return 1;
}

/* t:set_meta(meta, dir, max_peers [, trust [, storage [, load]]]) -> true | nil, message
 *   [-0, +1|2, e]
 * A magnet's torrent becomes a torrent like any other: meta (a bt.Metainfo of the same
 * info-hash) and the storage arguments as for cs:add. Its peers are closed and dialed
 * again by the session (their piece sets were not kept). */
static int l_torrent_set_meta(lua_State *L)
{
    ltorrent *lt = check_handle(L, 1);
    bt_torrent *t = bt_ltorrent_check(L, 1);
    const bt_meta *m = bt_lmeta_check(L, 2);
    static const char *const kinds[] = { "disk", "memory", NULL };
    int kind = luaL_checkoption(L, 6, "disk", kinds);
    const char *dir = kind == 0 ? luaL_checkstring(L, 3) : NULL;
    lua_Integer mp = luaL_optinteger(L, 4, 0);
    if (mp < 0 || mp > 100000)
        luaL_argerror(L, 4, "max_peers must be in [0, 100000]");
    const bt_ranges *trust = NULL;
    if (!lua_isnoneornil(L, 5)) {
        trust = bt_lranges_read(L, 5);
        if (kind == 1 || trust->size != m->num_pieces)
            luaL_argerror(L, 5, "trusted set has the wrong number of pieces, or storage is memory");
    }
    const char *load = luaL_optstring(L, 7, NULL);
    bt_add_opts o = { .storage = kind == 1 ? BT_STORE_MEMORY : BT_STORE_DISK, .dir = dir, .load = load,
                      .max_peers = (uint32_t)mp, .trust = trust };
    char err[512];
    if (bt_sess_set_meta(lt->s, t, m, &o, err, sizeof err) != 0)
        return bt_push_fail(L, "%s", err);
    lua_getiuservalue(L, 1, 1);   /* the handle keeps the metainfo alive */
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "meta");
    lua_pushboolean(L, 1);
    return 1;
}

/* t:banned(address) -> boolean  [-0, +1, v] */
static int l_torrent_banned(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    lua_pushboolean(L, bt_torrent_banned(t, luaL_checkstring(L, 2)));
    return 1;
}

/* t:stats() -> table of the fields docs/policy.md lists  [-0, +1, m] */
static int l_torrent_stats(lua_State *L)
{
    bt_torrent *t = bt_ltorrent_check(L, 1);
    double rd = 0, ru = 0;
    uint64_t inflight = 0;
    uint32_t npeers = 0, unchoking = 0;
    for (bt_peer *p = t->peers; p; p = p->next) {
        if (p->closing || p->state != BT_PS_ACTIVE)
            continue;
        npeers++;
        unchoking += !p->choking;
        rd += p->rate_down;
        ru += p->rate_up;
        inflight += p->inflight;
    }
    lua_createtable(L, 0, 19);
    SETI("pieces", t->npieces);
    SETI("pieces_done", bt_ranges_count(&t->have));
    SETI("total_bytes", t->total);
    SETI("have_bytes", t->have_bytes);
    SETI("downloaded", t->downloaded);
    SETI("uploaded", t->uploaded);
    SETI("dup_bytes", t->dup_bytes);
    SETI("failed_bytes", t->failed_bytes);
    SETI("cancels", t->cancels);
    SETN("rate_down", rd);
    SETN("rate_up", ru);
    SETI("peers", npeers);
    SETI("peers_unchoking", unchoking);
    SETI("peers_unchoked", t->unchoked);
    SETI("inflight", inflight);
    SETI("partials", t->npartials);
    SETI("bans", t->nbans);
    lua_pushboolean(L, t->endgame);
    lua_setfield(L, -2, "endgame");
    lua_pushboolean(L, t->complete);
    lua_setfield(L, -2, "complete");
    return 1;
}

/* t:memory() -> bytes the engine's bookkeeping holds for this torrent (picker,
 * partial pieces and their buffers, peers' sets and queues)  [-0, +1, v] */
static int l_torrent_memory(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)bt_torrent_memory(bt_ltorrent_check(L, 1)));
    return 1;
}

static int l_torrent_tostring(lua_State *L)
{
    ltorrent *lt = luaL_checkudata(L, 1, BT_TORRENT_MT);
    if (!lt->t)
        lua_pushliteral(L, BT_TORRENT_MT "(closed)");
    else
        lua_pushfstring(L, BT_TORRENT_MT "(%s, %d/%d pieces)", lt->t->dir ? lt->t->dir : "memory",
                        (int)bt_ranges_count(&lt->t->have), (int)lt->t->npieces);
    return 1;
}

void bt_ltorrent_check_limits(lua_State *L, int idx, double rates[2])
{
    check_limits(L, idx, rates);
}

void bt_open_torrent(lua_State *L, int mod)
{
    (void)mod;
    static const luaL_Reg meta[] = {
        { "__index", l_torrent_index }, { "__newindex", l_torrent_newindex },
        { "__tostring", l_torrent_tostring }, { NULL, NULL },
    };
    static const luaL_Reg methods[] = {
        { "availability", l_torrent_availability }, { "has", l_torrent_has },
        { "piece_size", l_torrent_piece_size }, { "blocks", l_torrent_blocks },
        { "next_missing", l_torrent_next_missing },
        { "rarest", l_torrent_rarest }, { "common", l_torrent_common }, { "partial", l_torrent_partial },
        { "wanted", l_torrent_wanted }, { "peers", l_torrent_peers },
        { "connect", l_torrent_connect }, { "stop", l_torrent_stop },
        { "banned", l_torrent_banned }, { "stats", l_torrent_stats }, { "sync", l_torrent_sync },
        { "set_limits", l_torrent_set_limits }, { "limits", l_torrent_limits },
        { "memory", l_torrent_memory }, { "metadata", l_torrent_metadata },
        { "set_meta", l_torrent_set_meta }, { NULL, NULL },
    };
    bt_new_class(L, BT_TORRENT_MT, meta, methods, FIELDS);
    bt_class_key(L, BT_TORRENT_MT, &TORRENT_KEY);
    /* peer:fill runs this file's iterators: added to bt.Peer's methods here (l_peer.c
     * opens the class first) */
    bt_class_add_method(L, BT_PEER_MT, "fill", l_peer_fill);
}
