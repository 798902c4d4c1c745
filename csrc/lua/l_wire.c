/* l_wire.c: the `bt.wire` table, peer-wire framing for Lua over wire.c.
 *
 *   local dec = bt.wire.decoder{ handshake = true }
 *   for _, m in ipairs(assert(dec:feed(bytes))) do ... end
 *   sock:send(bt.wire.encode{ type = "request", index = 0, begin = 0, length = 16384 })
 *
 * The decoder keeps only the bytes of the one message it has not seen whole; bytes
 * it can frame directly from the fed string never get copied except into the Lua
 * strings of the message tables. */
#include "lua/l_wire.h"
#include "core/buf.h"
#include "codec/wire.h"

#include <string.h>

#define DECODER_MT "bt.WireDecoder"

/* Highest value any limit option may take: a 32-bit prefix could ask for 4 GiB,
 * and nothing a sane peer sends comes near 64 MiB (a bitfield of 500 million pieces). */
#define LIMIT_CEILING (64u * 1024 * 1024)

typedef struct decoder {
    bt_buf buf;              /* bytes of the incomplete message, never more */
    bt_wire_limits lim;
    int want_handshake;      /* the next bytes are a 68-byte handshake */
    const char *err;         /* sticky failure: static string, NULL while healthy */
    lua_Integer offset;      /* stream offset of the first byte not yet decoded */
    lua_Integer err_offset;  /* stream offset of the message that failed */
} decoder;

static const char *type_name(int type)
{
    switch (type) {
    case BT_MSG_KEEPALIVE:      return "keepalive";
    case BT_MSG_CHOKE:          return "choke";
    case BT_MSG_UNCHOKE:        return "unchoke";
    case BT_MSG_INTERESTED:     return "interested";
    case BT_MSG_NOT_INTERESTED: return "not_interested";
    case BT_MSG_HAVE:           return "have";
    case BT_MSG_BITFIELD:       return "bitfield";
    case BT_MSG_REQUEST:        return "request";
    case BT_MSG_PIECE:          return "piece";
    case BT_MSG_CANCEL:         return "cancel";
    case BT_MSG_PORT:           return "port";
    case BT_MSG_SUGGEST:        return "suggest";
    case BT_MSG_HAVE_ALL:       return "have_all";
    case BT_MSG_HAVE_NONE:      return "have_none";
    case BT_MSG_REJECT:         return "reject";
    case BT_MSG_ALLOWED_FAST:   return "allowed_fast";
    case BT_MSG_EXTENDED:       return "extended";
    default:                    return NULL;
    }
}

static const int KNOWN_TYPES[] = {
    BT_MSG_KEEPALIVE, BT_MSG_CHOKE, BT_MSG_UNCHOKE, BT_MSG_INTERESTED, BT_MSG_NOT_INTERESTED,
    BT_MSG_HAVE, BT_MSG_BITFIELD, BT_MSG_REQUEST, BT_MSG_PIECE, BT_MSG_CANCEL, BT_MSG_PORT,
    BT_MSG_SUGGEST, BT_MSG_HAVE_ALL, BT_MSG_HAVE_NONE, BT_MSG_REJECT, BT_MSG_ALLOWED_FAST,
    BT_MSG_EXTENDED,
};

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const void *p, size_t n)
{
    lua_pushlstring(L, (const char *)p, n);
    lua_setfield(L, -2, k);
}

/* [-0, +1, m] the Lua table for one decoded message */
static void push_msg(lua_State *L, const bt_msg *m)
{
    const char *name = type_name(m->type);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, name ? name : "unknown");
    lua_setfield(L, -2, "type");
    switch (m->type) {
    case BT_MSG_HAVE: case BT_MSG_SUGGEST: case BT_MSG_ALLOWED_FAST:
        set_int(L, "index", m->index);
        break;
    case BT_MSG_REQUEST: case BT_MSG_CANCEL: case BT_MSG_REJECT:
        set_int(L, "index", m->index);
        set_int(L, "begin", m->begin);
        set_int(L, "length", m->length);
        break;
    case BT_MSG_PIECE:
        set_int(L, "index", m->index);
        set_int(L, "begin", m->begin);
        set_str(L, "block", m->payload, m->payload_len);
        break;
    case BT_MSG_BITFIELD:
        set_str(L, "bits", m->payload, m->payload_len);
        break;
    case BT_MSG_PORT:
        set_int(L, "port", m->port);
        break;
    case BT_MSG_EXTENDED:
        set_int(L, "id", m->ext_id);
        set_str(L, "payload", m->payload, m->payload_len);
        break;
    default:
        if (!name) {
            set_int(L, "id", m->type);
            set_str(L, "payload", m->payload, m->payload_len);
        }
        break;
    }
}

/* [-0, +1, m] */
static void push_handshake(lua_State *L, const bt_handshake *hs)
{
    lua_createtable(L, 0, 7);
    lua_pushliteral(L, "handshake");
    lua_setfield(L, -2, "type");
    set_str(L, "info_hash", hs->info_hash, 20);
    set_str(L, "peer_id", hs->peer_id, 20);
    set_str(L, "reserved", hs->reserved, 8);
    lua_pushboolean(L, (hs->reserved[BT_RESERVED_EXTENSION_BYTE] & BT_RESERVED_EXTENSION_BIT) != 0);
    lua_setfield(L, -2, "extensions");
    lua_pushboolean(L, (hs->reserved[BT_RESERVED_FAST_BYTE] & BT_RESERVED_FAST_BIT) != 0);
    lua_setfield(L, -2, "fast");
    lua_pushboolean(L, (hs->reserved[BT_RESERVED_DHT_BYTE] & BT_RESERVED_DHT_BIT) != 0);
    lua_setfield(L, -2, "dht");
}

/* A number with an integer value: lua_tointegerx alone would also take "5". */
static lua_Integer to_int(lua_State *L, int idx, int *isint)
{
    *isint = 0;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    return lua_tointegerx(L, idx, isint);
}

/* Read optional integer option `k` of the table at idx into *out, in lo..hi. */
static void opt_limit(lua_State *L, int idx, const char *k, uint32_t lo, uint32_t hi, uint32_t *out)
{
    int t = lua_getfield(L, idx, k);
    if (t != LUA_TNIL) {
        int isint;
        lua_Integer v = to_int(L, -1, &isint);
        if (!isint || v < (lua_Integer)lo || v > (lua_Integer)hi) {
            lua_pushfstring(L, "%s must be an integer in %I..%I", k, (lua_Integer)lo, (lua_Integer)hi);
            luaL_argerror(L, idx, lua_tostring(L, -1));
        }
        *out = (uint32_t)v;
    }
    lua_pop(L, 1);
}

/* bt.wire.decoder([opts]) -> bt.WireDecoder                          [-0, +1, e]
 * opts: max_block (1..131072, default 16384), max_bitfield (0..64 MiB, default 0:
 * only the overall cap), max_extended (default 1 MiB), max_message (overall cap on
 * a length prefix, default 1 MiB + 16), handshake (true: a handshake comes first). */
static int l_decoder(lua_State *L)
{
    bt_wire_limits lim;
    bt_wire_limits_default(&lim);
    int want_handshake = 0;
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        opt_limit(L, 1, "max_block", 1, BT_WIRE_MAX_BLOCK, &lim.max_block);
        opt_limit(L, 1, "max_bitfield", 0, LIMIT_CEILING, &lim.max_bitfield);
        opt_limit(L, 1, "max_extended", 0, LIMIT_CEILING, &lim.max_extended);
        /* 13: the longest fixed-size message (request) must always fit. */
        opt_limit(L, 1, "max_message", 13, LIMIT_CEILING, &lim.max_message);
        lua_getfield(L, 1, "handshake");
        want_handshake = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    decoder *d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    d->lim = lim;
    d->want_handshake = want_handshake;
    luaL_setmetatable(L, DECODER_MT);
    return 1;
}

static int fail(lua_State *L, decoder *d, const char *err)
{
    if (!d->err) {
        d->err = err;
        d->err_offset = d->offset;
        bt_buf_free(&d->buf);   /* a failed decoder never needs its bytes again */
    }
    lua_pushnil(L);
    lua_pushstring(L, d->err);
    lua_pushinteger(L, d->err_offset);
    return 3;
}

/* dec:feed(bytes) -> { msg, ... } | nil, message, offset                [-0, +1|3, m]
 * Messages whole after these bytes, in order (possibly none). Failure is sticky;
 * offset is where, in the whole stream fed so far (0-based), the rejected message
 * or handshake starts. Messages decoded earlier in the same call are dropped with
 * the error: a stream that broke is to be abandoned. */
static int l_feed(lua_State *L)
{
    decoder *d = luaL_checkudata(L, 1, DECODER_MT);
    size_t rem;
    const uint8_t *in = (const uint8_t *)luaL_checklstring(L, 2, &rem);
    if (d->err)
        return fail(L, d, d->err);
    lua_newtable(L);
    lua_Integer nres = 0;
    for (;;) {
        int from_buf = d->buf.len > 0;
        const uint8_t *p = from_buf ? d->buf.data : in;
        size_t avail = from_buf ? d->buf.len : rem;
        if (avail == 0)
            break;
        const char *err = NULL;
        size_t used = 0;
        int r;
        if (d->want_handshake) {
            bt_handshake hs;
            r = bt_wire_parse_handshake(p, avail, &hs, &err);
            used = BT_HANDSHAKE_LEN;
            if (r == 1) {
                push_handshake(L, &hs);
                d->want_handshake = 0;
            }
        } else {
            bt_msg m;
            r = bt_wire_parse(p, avail, &d->lim, &m, &used, &err);
            if (r == 1)
                push_msg(L, &m);
        }
        if (r < 0)
            return fail(L, d, err);
        if (r == 1) {
            lua_rawseti(L, -2, ++nres);
            if (from_buf) {
                bt_buf_consume(&d->buf, used);
            } else {
                in += used;
                rem -= used;
            }
            d->offset += (lua_Integer)used;
            continue;
        }
        /* Incomplete. Straight from the input: all of it is the one message's
         * beginning, shorter than what the limits allow, so keep it. */
        if (!from_buf) {
            if (bt_buf_append(&d->buf, in, rem))
                return fail(L, d, "out of memory");
            rem = 0;
            break;
        }
        if (rem == 0)
            break;
        /* Buffered: top up only to the next point where the parser learns more
         * (prefix, then prefix + id, then the whole message), so a bad length is
         * judged before any payload is copied. */
        size_t target = d->want_handshake ? BT_HANDSHAKE_LEN
                      : used == 0 ? 4
                      : d->buf.len < 5 ? 5 : used;
        size_t take = target - d->buf.len;
        if (take > rem)
            take = rem;
        if (bt_buf_append(&d->buf, in, take))
            return fail(L, d, "out of memory");
        in += take;
        rem -= take;
    }
    return 1;
}

/* dec:buffered() -> bytes held for the incomplete message            [-0, +1, -] */
static int l_buffered(lua_State *L)
{
    decoder *d = luaL_checkudata(L, 1, DECODER_MT);
    lua_pushinteger(L, (lua_Integer)d->buf.len);
    return 1;
}

/* dec:error() -> nil | message, offset                                 [-0, +1|2, -] */
static int l_error(lua_State *L)
{
    decoder *d = luaL_checkudata(L, 1, DECODER_MT);
    if (!d->err) {
        lua_pushnil(L);
        return 1;
    }
    lua_pushstring(L, d->err);
    lua_pushinteger(L, d->err_offset);
    return 2;
}

static int l_gc(lua_State *L)
{
    decoder *d = luaL_checkudata(L, 1, DECODER_MT);
    bt_buf_free(&d->buf);
    return 0;
}

static int l_tostring(lua_State *L)
{
    decoder *d = luaL_checkudata(L, 1, DECODER_MT);
    lua_pushfstring(L, DECODER_MT " (%s, %I bytes decoded)", d->err ? "failed" : "ok", d->offset);
    return 1;
}

/* ---- encoding ---- */

static const char *field_name_error(lua_State *L, const char *k, const char *what)
{
    return lua_pushfstring(L, "field '%s' must be %s", k, what);
}

static uint32_t get_uint(lua_State *L, const char *k, lua_Integer max, const char *what)
{
    lua_getfield(L, 1, k);
    int isint;
    lua_Integer v = to_int(L, -1, &isint);
    if (!isint || v < 0 || v > max)
        luaL_argerror(L, 1, field_name_error(L, k, what));
    lua_pop(L, 1);
    return (uint32_t)v;
}

#define U32(L, k) get_uint(L, k, 0xffffffff, "an integer in 0..4294967295")

/* String field k of the message table, left on the stack so it stays alive
 * (an __index metamethod may have made it fresh) until the encoder is done. */
static const char *get_bytes(lua_State *L, const char *k, size_t *n)
{
    if (lua_getfield(L, 1, k) != LUA_TSTRING)
        luaL_argerror(L, 1, field_name_error(L, k, "a string"));
    return lua_tolstring(L, -1, n);
}

static void get_fixed(lua_State *L, const char *k, uint8_t *out, size_t want, int required)
{
    lua_getfield(L, 1, k);
    if (!required && lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    size_t n;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (!s || n != want) {
        lua_pushfstring(L, "a string of %d bytes", (int)want);
        luaL_argerror(L, 1, field_name_error(L, k, lua_tostring(L, -1)));
    }
    memcpy(out, s, want);
    lua_pop(L, 1);
}

static int get_flag(lua_State *L, const char *k)
{
    lua_getfield(L, 1, k);
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The handshake described by the table at index 1. */
static int push_handshake_bytes(lua_State *L)
{
    bt_handshake hs;
    memset(&hs, 0, sizeof hs);
    get_fixed(L, "reserved", hs.reserved, 8, 0);
    get_fixed(L, "info_hash", hs.info_hash, 20, 1);
    get_fixed(L, "peer_id", hs.peer_id, 20, 1);
    if (get_flag(L, "extensions"))
        hs.reserved[BT_RESERVED_EXTENSION_BYTE] |= BT_RESERVED_EXTENSION_BIT;
    if (get_flag(L, "fast"))
        hs.reserved[BT_RESERVED_FAST_BYTE] |= BT_RESERVED_FAST_BIT;
    if (get_flag(L, "dht"))
        hs.reserved[BT_RESERVED_DHT_BYTE] |= BT_RESERVED_DHT_BIT;
    uint8_t out[BT_HANDSHAKE_LEN];
    bt_wire_write_handshake(&hs, out);
    lua_pushlstring(L, (const char *)out, sizeof out);
    return 1;
}

/* bt.wire.handshake{ info_hash=, peer_id=, extensions=, fast=, dht=, reserved= }
 *   -> 68 bytes                                                          [-0, +1, e]
 * reserved (8 bytes, default zeros) is the base the three flags are or'ed into. */
static int l_handshake(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    return push_handshake_bytes(L);
}

/* bt.wire.encode(msg) -> bytes                                         [-0, +1, e]
 * msg is any table dec:feed returns (handshake included). Raises naming the field
 * when one is missing or out of range. type="unknown" takes an id in 0..255 that
 * has no meaning here (a known id must be sent under its own type). */
static int l_encode(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (lua_getfield(L, 1, "type") != LUA_TSTRING)
        return luaL_argerror(L, 1, "field 'type' must be a string");
    const char *tname = lua_tostring(L, -1);   /* stays on the stack while used */
    if (strcmp(tname, "handshake") == 0)
        return push_handshake_bytes(L);

    bt_msg m;
    memset(&m, 0, sizeof m);
    m.type = -2;
    for (size_t i = 0; i < sizeof KNOWN_TYPES / sizeof KNOWN_TYPES[0]; i++)
        if (strcmp(tname, type_name(KNOWN_TYPES[i])) == 0)
            m.type = KNOWN_TYPES[i];
    if (m.type == -2) {
        if (strcmp(tname, "unknown") != 0)
            return luaL_argerror(L, 1, lua_pushfstring(L, "unknown message type '%s'", tname));
        m.type = (int)get_uint(L, "id", 255, "an integer in 0..255");
        if (type_name(m.type))
            return luaL_argerror(L, 1, lua_pushfstring(L,
                "field 'id': %d is the id of '%s', encode it under that type",
                m.type, type_name(m.type)));
        m.payload = (const uint8_t *)get_bytes(L, "payload", &m.payload_len);
    }

    switch (m.type) {
    case BT_MSG_HAVE: case BT_MSG_SUGGEST: case BT_MSG_ALLOWED_FAST:
        m.index = U32(L, "index");
        break;
    case BT_MSG_REQUEST: case BT_MSG_CANCEL: case BT_MSG_REJECT:
        m.index = U32(L, "index");
        m.begin = U32(L, "begin");
        m.length = U32(L, "length");
        break;
    case BT_MSG_PIECE:
        m.index = U32(L, "index");
        m.begin = U32(L, "begin");
        m.payload = (const uint8_t *)get_bytes(L, "block", &m.payload_len);
        break;
    case BT_MSG_BITFIELD:
        m.payload = (const uint8_t *)get_bytes(L, "bits", &m.payload_len);
        break;
    case BT_MSG_PORT:
        m.port = (uint16_t)get_uint(L, "port", 65535, "an integer in 0..65535");
        break;
    case BT_MSG_EXTENDED:
        m.ext_id = (uint8_t)get_uint(L, "id", 255, "an integer in 0..255");
        m.payload = (const uint8_t *)get_bytes(L, "payload", &m.payload_len);
        break;
    default:
        break;
    }
    size_t n = bt_wire_encoded_len(&m);
    if (n == 0)
        return luaL_argerror(L, 1, "payload too long for a 32-bit length prefix");
    /* Lua owns the buffer: an error while building it leaks nothing. */
    luaL_Buffer b;
    uint8_t *out = (uint8_t *)luaL_buffinitsize(L, &b, n);
    size_t w = bt_wire_encode(&m, out, n);
    luaL_pushresultsize(&b, w);
    return 1;
}

/* bt.wire.parse_ext_handshake(payload) -> {p =, reqq =, metadata_size =, v =, yourip =,
 *   ipv6 =, m = {name = id}} | nil  [-0, +1, m]
 * What the engine reads from a peer's BEP 10 handshake (extended id 0): the
 * fields it found (absent or out of range: not set; m lists only our extensions
 * the peer named with an id in 1..255), or nil when the payload is not a
 * dictionary of at most EXT_MAX_TOKENS bencode values. */
static int l_parse_ext_handshake(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    bt_ext_hs h;
    if (bt_wire_parse_ext_handshake((const uint8_t *)s, n, &h) != 0) {
        lua_pushnil(L);
        return 1;
    }
    lua_createtable(L, 0, 6);
    if (h.port >= 0)
        set_int(L, "p", h.port);
    if (h.reqq >= 0)
        set_int(L, "reqq", h.reqq);
    if (h.metadata_size >= 0)
        set_int(L, "metadata_size", h.metadata_size);
    if (h.client) {
        lua_pushstring(L, h.client);
        lua_setfield(L, -2, "v");
    }
    if (h.yourip_len) {
        lua_pushlstring(L, (const char *)h.yourip, h.yourip_len);
        lua_setfield(L, -2, "yourip");
    }
    if (h.has_ipv6) {
        lua_pushlstring(L, (const char *)h.ipv6, 16);
        lua_setfield(L, -2, "ipv6");
    }
    lua_createtable(L, 0, BT_EXT_COUNT);
    for (int i = 0; i < BT_EXT_COUNT; i++)
        if (h.m[i])
            set_int(L, BT_EXT_NAMES[i].name, h.m[i]);
    lua_setfield(L, -2, "m");
    return 1;
}

/* bt.wire.ext_handshake{ p =, reqq =, metadata_size =, v =, yourip =, ipv6 =, m = {name = true} }
 *   -> string  [-0, +1, e]
 * The payload the engine sends as its BEP 10 handshake, for specs and test peers:
 * m names which of our extensions to offer (under our ids, bt.wire.EXTENSIONS). */
static int l_ext_handshake(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    bt_ext_hs h;
    memset(&h, 0, sizeof h);
    h.port = lua_getfield(L, 1, "p") == LUA_TNIL ? -1 : (int64_t)get_uint(L, "p", 65535, "an integer in 0..65535");
    lua_pop(L, 1);
    h.reqq = lua_getfield(L, 1, "reqq") == LUA_TNIL ? -1 : (int64_t)get_uint(L, "reqq", UINT32_MAX, "a count");
    lua_pop(L, 1);
    h.metadata_size = lua_getfield(L, 1, "metadata_size") == LUA_TNIL ? -1
        : (int64_t)get_uint(L, "metadata_size", UINT32_MAX, "a size");
    lua_pop(L, 1);
    lua_getfield(L, 1, "v");
    h.client = luaL_optstring(L, -1, NULL);
    if (lua_getfield(L, 1, "yourip") != LUA_TNIL) {
        size_t n;
        const char *ip = luaL_checklstring(L, -1, &n);
        luaL_argcheck(L, n == 4 || n == 16, 1, "yourip must be 4 or 16 bytes");
        memcpy(h.yourip, ip, n);
        h.yourip_len = (uint8_t)n;
    }
    if (lua_getfield(L, 1, "ipv6") != LUA_TNIL) {
        size_t n;
        const char *ip = luaL_checklstring(L, -1, &n);
        luaL_argcheck(L, n == 16, 1, "ipv6 must be 16 bytes");
        memcpy(h.ipv6, ip, 16);
        h.has_ipv6 = true;
    }
    if (lua_getfield(L, 1, "m") == LUA_TTABLE)
        for (int i = 0; i < BT_EXT_COUNT; i++) {
            h.m[i] = lua_getfield(L, -1, BT_EXT_NAMES[i].name) > LUA_TNIL && lua_toboolean(L, -1);
            lua_pop(L, 1);
        }
    bt_buf b = { 0 };
    if (bt_wire_ext_handshake(&b, &h) != 0) {
        bt_buf_free(&b);
        return luaL_error(L, "out of memory");
    }
    lua_pushlstring(L, (const char *)b.data, b.len);
    bt_buf_free(&b);
    return 1;
}

static const luaL_Reg decoder_methods[] = {
    {"feed", l_feed},
    {"buffered", l_buffered},
    {"error", l_error},
    {NULL, NULL},
};

static const luaL_Reg wire_fns[] = {
    {"decoder", l_decoder},
    {"encode", l_encode},
    {"handshake", l_handshake},
    {"parse_ext_handshake", l_parse_ext_handshake},
    {"ext_handshake", l_ext_handshake},
    {NULL, NULL},
};

void bt_open_wire(lua_State *L, int mod)
{
    mod = lua_absindex(L, mod);
    if (luaL_newmetatable(L, DECODER_MT)) {
        luaL_newlib(L, decoder_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);

    bt_setfuncs_sub(L, mod, "wire", wire_fns);
    lua_getfield(L, mod, "wire");
    bt_wire_limits lim;
    bt_wire_limits_default(&lim);
    lua_createtable(L, 0, 4);
    set_int(L, "max_block", lim.max_block);
    set_int(L, "max_bitfield", lim.max_bitfield);
    set_int(L, "max_extended", lim.max_extended);
    set_int(L, "max_message", lim.max_message);
    lua_setfield(L, -2, "default_limits");
    set_int(L, "BLOCK_SIZE", BT_BLOCK_SIZE);
    set_int(L, "HANDSHAKE_LEN", BT_HANDSHAKE_LEN);
    set_int(L, "MAX_BLOCK", BT_WIRE_MAX_BLOCK);
    set_int(L, "EXT_MAX_TOKENS", BT_WIRE_EXT_MAX_TOKENS);
    lua_createtable(L, 0, BT_EXT_COUNT);   /* our extensions and the ids we gave them */
    for (int i = 0; i < BT_EXT_COUNT; i++)
        set_int(L, BT_EXT_NAMES[i].name, BT_EXT_NAMES[i].id);
    lua_setfield(L, -2, "EXTENSIONS");
    lua_pop(L, 1);
}
