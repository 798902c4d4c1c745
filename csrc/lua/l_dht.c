/* l_dht.c: bt.Dht (l_dht.h), the DHT node of engine/dht.h on a session's loop.
 * Converts options, results and replies; the node keeps its table by itself, and
 * lua/bt/dht.lua decides what to look up and announce, and when.
 *
 * Callbacks (one per lookup or query) are kept in the userdata's uservalue by id
 * and called like the session's handler (bt_lsession_call): an error stops the loop.
 */
#include "lua/l_dht.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "engine/dht.h"
#include "engine/session.h"
#include "lua/l_session.h"

#define DHT_MT "bt.Dht"
#define MAX_RATE 1e6   /* queries per second: far beyond any real node */

typedef struct ldht {
    bt_lchild child;   /* first: the session closes us through it */
    bt_dht *d;
    bt_session *s;
    lua_State *L;      /* the main thread */
    int self_ref;      /* the userdata stays alive while open: callbacks are pending on the loop */
} ldht;

static ldht *check_dht(lua_State *L, int idx)
{
    ldht *ld = luaL_checkudata(L, idx, DHT_MT);
    if (!ld->d)
        luaL_error(L, DHT_MT ": the DHT node is closed");
    return ld;
}

static void push_addr(lua_State *L, const uint8_t *ip, const uint8_t *port)
{
    char a[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, ip, a, sizeof a);
    lua_pushfstring(L, "%s:%d", a, (int)(port[0] << 8 | port[1]));
}

/* { {id =, host =, port =}, ... } from n 26-byte compact nodes.  [-0, +1, m] */
static void push_nodes(lua_State *L, const uint8_t *p, size_t n)
{
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        const uint8_t *c = p + 26 * i;
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, c + 20, a, sizeof a);
        lua_createtable(L, 0, 3);
        lua_pushlstring(L, (const char *)c, 20);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, a);
        lua_setfield(L, -2, "host");
        lua_pushinteger(L, c[24] << 8 | c[25]);
        lua_setfield(L, -2, "port");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
}

static void push_reply(lua_State *L, const bt_krpc_msg *m)
{
    lua_createtable(L, 0, 8);
    lua_pushstring(L, m->type == BT_KRPC_REPLY ? "r" : "e");
    lua_setfield(L, -2, "type");
    if (m->type == BT_KRPC_ERROR) {
        lua_pushinteger(L, m->err_code);
        lua_setfield(L, -2, "code");
        lua_pushstring(L, m->err_msg);
        lua_setfield(L, -2, "message");
        return;
    }
    lua_pushlstring(L, (const char *)m->id, 20);
    lua_setfield(L, -2, "id");
    push_nodes(L, m->nodes, m->nodes_len / 26);
    lua_setfield(L, -2, "nodes");
    if (m->token) {
        lua_pushlstring(L, (const char *)m->token, m->token_len);
        lua_setfield(L, -2, "token");
    }
    lua_createtable(L, (int)m->nvalues, 0);
    int k = 0;
    for (uint32_t i = 0; i < m->nvalues; i++)
        if (m->value_len[i] == 6) {
            push_addr(L, m->values[i], m->values[i] + 4);
            lua_rawseti(L, -2, ++k);
        }
    lua_setfield(L, -2, "values");
}

static void on_done(void *ud, int id, const bt_dht_result *r)
{
    ldht *ld = ud;
    lua_State *L = ld->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, ld->self_ref);
    lua_getiuservalue(L, -1, 1);
    lua_rawgeti(L, -1, id);
    lua_pushnil(L);
    lua_rawseti(L, -3, id);
    lua_replace(L, -3);
    lua_pop(L, 1);
    if (!lua_isfunction(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    if (r->kind == BT_DHT_QUERY) {
        if (r->error) {
            lua_pushnil(L);
            lua_pushstring(L, r->error);
            bt_lsession_call(ld->s, 2);
        } else {
            push_reply(L, r->msg);
            bt_lsession_call(ld->s, 1);
        }
        return;
    }
    lua_createtable(L, 0, 5);
    lua_createtable(L, (int)r->npeers, 0);
    for (uint32_t i = 0; i < r->npeers; i++) {
        push_addr(L, r->peers + 6 * i, r->peers + 6 * i + 4);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, "peers");
    push_nodes(L, r->closest, r->nclosest);
    lua_setfield(L, -2, "nodes");
    lua_pushinteger(L, r->replied);
    lua_setfield(L, -2, "replied");
    lua_pushinteger(L, r->announced);
    lua_setfield(L, -2, "announced");
    if (r->error) {
        lua_pushstring(L, r->error);
        lua_setfield(L, -2, "error");
    }
    bt_lsession_call(ld->s, 1);
}

static void dht_close(bt_lchild *c)
{
    ldht *ld = (ldht *)c;
    if (!ld->d)
        return;
    bt_dht_free(ld->d);
    ld->d = NULL;
    bt_lsession_detach(ld->s, &ld->child);
    luaL_unref(ld->L, LUA_REGISTRYINDEX, ld->self_ref);
    ld->self_ref = LUA_NOREF;
}

static double opt_num(lua_State *L, int idx, const char *k, double def)
{
    lua_getfield(L, idx, k);
    double v = luaL_optnumber(L, -1, def);
    lua_pop(L, 1);
    return v;
}

/* bt.dht_new(cs, opts) -> bt.Dht | nil, message  [-0, +1|2, e]
 * cs: a bt.Session (the node runs on its loop; a session may hold several). opts: bind (dotted
 * IPv4, default 0.0.0.0), port (0: any), id (20 bytes, default random), restrict_ips
 * (default true: one routing-table entry per IP), answer_rate, answer_rate_ip (queries
 * answered per second, overall and per source IP; answer_rate_ip -1: no per-IP limit),
 * query_rate (queries sent per second), token_rotate (s between token secrets, default 300)
 * and peer_ttl (s a stored peer lives, default 1800): shorter for tests and experiments. */
static int l_dht_new(lua_State *L)
{
    bt_session *s = bt_lsession_check(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    bt_dht_opts o;
    memset(&o, 0, sizeof o);
    o.port = (int)opt_num(L, 2, "port", 0);
    if (o.port < 0 || o.port > 65535)
        luaL_argerror(L, 2, "port out of range");
    o.answer_rate = opt_num(L, 2, "answer_rate", 0);
    o.answer_rate_ip = opt_num(L, 2, "answer_rate_ip", 0);
    o.query_rate = opt_num(L, 2, "query_rate", 0);
    if (!(o.answer_rate >= 0 && o.answer_rate <= MAX_RATE) || !(o.query_rate >= 0 && o.query_rate <= MAX_RATE) ||
        !((o.answer_rate_ip >= 0 && o.answer_rate_ip <= MAX_RATE) || o.answer_rate_ip == -1))
        luaL_argerror(L, 2, "rates must be in [0, 1e6] per second (answer_rate_ip -1: none)");
    o.token_rotate = opt_num(L, 2, "token_rotate", 0);
    o.peer_ttl = opt_num(L, 2, "peer_ttl", 0);
    if (!(o.token_rotate >= 0 && o.token_rotate <= 86400) || !(o.peer_ttl >= 0 && o.peer_ttl <= 86400))
        luaL_argerror(L, 2, "token_rotate and peer_ttl must be in [0, 86400] seconds (0: default)");
    lua_getfield(L, 2, "restrict_ips");
    o.restrict_ips = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "id");
    size_t idlen = 0;
    o.id = (const uint8_t *)luaL_optlstring(L, -1, NULL, &idlen);
    if (o.id && idlen != 20)
        luaL_argerror(L, 2, "id must be 20 bytes");
    lua_getfield(L, 2, "bind");
    o.bind = luaL_optstring(L, -1, NULL);
    ldht *ld = lua_newuserdatauv(L, sizeof *ld, 1);
    memset(ld, 0, sizeof *ld);
    ld->self_ref = LUA_NOREF;
    luaL_setmetatable(L, DHT_MT);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    ld->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    ld->s = s;
    bt_dht_cb cb = { .ud = ld, .done = on_done };
    const char *err = "";
    ld->d = bt_dht_new(s->loop, &o, &cb, &err);
    if (!ld->d)
        return bt_push_fail(L, "DHT: %s", err);
    ld->child.close = dht_close;
    bt_lsession_attach(s, &ld->child);
    lua_createtable(L, 0, 1);   /* uservalue: callbacks by id, and the session (kept alive) */
    lua_pushvalue(L, 1);
    lua_setfield(L, -2, "session");
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    ld->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 1;
}

/* d:port() -> the UDP port  [-0, +1, e] */
static int l_dht_port(lua_State *L)
{
    lua_pushinteger(L, bt_dht_port(check_dht(L, 1)->d));
    return 1;
}

/* d:id() -> our 20-byte node id  [-0, +1, e] */
static int l_dht_id(lua_State *L)
{
    lua_pushlstring(L, (const char *)bt_dht_id(check_dht(L, 1)->d), 20);
    return 1;
}

/* d:add_node(ip, port) -> true | nil, message: bootstrap from a node (asked for the
 * nodes near our id; its answer puts it in the table)  [-0, +1|2, e] */
static int l_dht_add_node(lua_State *L)
{
    ldht *ld = check_dht(L, 1);
    const char *err;
    if (bt_dht_add_node(ld->d, luaL_checkstring(L, 2), (int)luaL_checkinteger(L, 3), &err) != 0)
        return bt_push_fail(L, "%s", err);
    lua_pushboolean(L, 1);
    return 1;
}

static void keep_fn(lua_State *L, int id, int fn)
{
    lua_getiuservalue(L, 1, 1);
    lua_pushvalue(L, fn);
    lua_rawseti(L, -2, id);
    lua_pop(L, 1);
    lua_pushinteger(L, id);
}

static const uint8_t *check20(lua_State *L, int idx, const char *what)
{
    size_t n;
    const char *s = luaL_checklstring(L, idx, &n);
    if (n != 20)
        luaL_argerror(L, idx, what);
    return (const uint8_t *)s;
}

/* d:lookup(kind, target, port, fn) -> id | nil, message  [-0, +1|2, e]
 * kind "find_node", "get_peers" or "announce" (get_peers, then announce_peer to the
 * closest nodes with their tokens, for port, or implied_port when port is 0); target
 * 20 bytes. fn(result) once, later: result.peers {"ip:port", ...}, result.nodes (the
 * closest that answered, {id, host, port}), replied, announced, error (when no node
 * answered). nil, "no DHT nodes" when the table is empty. */
static int l_dht_lookup(lua_State *L)
{
    ldht *ld = check_dht(L, 1);
    static const char *const kinds[] = { "find_node", "get_peers", "announce", NULL };
    int k = luaL_checkoption(L, 2, NULL, kinds);
    const uint8_t *target = check20(L, 3, "target must be 20 bytes");
    lua_Integer port = luaL_optinteger(L, 4, 0);
    luaL_checktype(L, 5, LUA_TFUNCTION);
    if (port < 0 || port > 65535)
        luaL_argerror(L, 4, "port out of range");
    const char *err;
    int id = bt_dht_lookup(ld->d, (bt_dht_kind)(k + 1), target, (int)port, &err);
    if (id < 0)
        return bt_push_fail(L, "%s", err);
    keep_fn(L, id, 5);
    return 1;
}

/* d:query(ip, port, method, args, fn) -> id | nil, message  [-0, +1|2, e]
 * One query: method "ping", "find_node" (args.target), "get_peers" (args.info_hash),
 * "announce_peer" (args.info_hash, token, port, implied_port). fn(reply) with reply.type
 * "r" (id, nodes, token, values) or "e" (code, message); fn(nil, "timeout"). */
static int l_dht_query(lua_State *L)
{
    ldht *ld = check_dht(L, 1);
    const char *ip = luaL_checkstring(L, 2);
    int port = (int)luaL_checkinteger(L, 3);
    static const char *const methods[] = { "ping", "find_node", "get_peers", "announce_peer", NULL };
    int m = luaL_checkoption(L, 4, NULL, methods) + 1;
    luaL_checktype(L, 5, LUA_TTABLE);
    luaL_checktype(L, 6, LUA_TFUNCTION);
    bt_krpc_query q;
    memset(&q, 0, sizeof q);
    q.method = (bt_krpc_method)m;
    if (m != BT_KRPC_PING) {
        lua_getfield(L, 5, m == BT_KRPC_FIND_NODE ? "target" : "info_hash");
        q.target = check20(L, -1, "args.target / args.info_hash must be 20 bytes");
    }
    if (m == BT_KRPC_ANNOUNCE_PEER) {
        lua_getfield(L, 5, "token");
        q.token = (const uint8_t *)luaL_checklstring(L, -1, &q.token_len);
        if (q.token_len > BT_KRPC_MAX_TOKEN)
            luaL_argerror(L, 5, "token too long");
        q.port = (uint16_t)opt_num(L, 5, "port", 0);
        lua_getfield(L, 5, "implied_port");
        q.implied_port = lua_toboolean(L, -1);
    }
    const char *err;
    int id = bt_dht_query(ld->d, ip, port, &q, &err);
    if (id < 0)
        return bt_push_fail(L, "%s", err);
    keep_fn(L, id, 6);
    return 1;
}

/* d:good_nodes() -> { {id =, host =, port =}, ... }: the good nodes of the table  [-0, +1, e] */
static int l_dht_good_nodes(lua_State *L)
{
    ldht *ld = check_dht(L, 1);
    static uint8_t buf[26 * 160 * BT_DHT_K];
    uint32_t n = bt_dht_good_nodes(ld->d, buf, 160 * BT_DHT_K);
    push_nodes(L, buf, n);
    return 1;
}

/* d:stats() -> the table's size and health, and counters (docs/api.md "DHT")  [-0, +1, e] */
static int l_dht_stats(lua_State *L)
{
    bt_dht_stats st;
    bt_dht_stats_get(check_dht(L, 1)->d, &st);
    lua_createtable(L, 0, 24);
#define F(name) (lua_pushinteger(L, (lua_Integer)st.name), lua_setfield(L, -2, #name))
    F(nodes); F(good); F(questionable); F(buckets); F(replacements); F(lookups); F(inflight);
    F(hashes); F(stored_peers); F(received); F(bad); F(queries); F(answered); F(dropped);
    F(unexpected); F(errors_sent); F(sent); F(replies); F(timeouts); F(bytes_in); F(bytes_out);
#undef F
    return 1;
}

/* d:close(): the socket closed, pending callbacks dropped. Idempotent.  [-0, +0, -] */
static int l_dht_close(lua_State *L)
{
    dht_close(&((ldht *)luaL_checkudata(L, 1, DHT_MT))->child);
    return 0;
}

void bt_open_dht(lua_State *L, int mod)
{
    static const luaL_Reg methods[] = {
        { "port", l_dht_port }, { "id", l_dht_id }, { "add_node", l_dht_add_node },
        { "lookup", l_dht_lookup }, { "query", l_dht_query }, { "good_nodes", l_dht_good_nodes },
        { "stats", l_dht_stats }, { "close", l_dht_close }, { NULL, NULL },
    };
    luaL_newmetatable(L, DHT_MT);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_dht_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_dht_close);
    lua_setfield(L, -2, "__close");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_dht_new);
    lua_setfield(L, mod, "dht_new");
}
