/* l_bencode.c: the Lua face of bencode.c.
 *
 *   bt.bdecode(s [, opts])        -> value | nil, message, offset
 *   bt.bdecode_tokens(s [, opts]) -> token count | nil, message, offset
 *   bt.bencode(v)                 -> string (raises on values bencode cannot hold)
 *   bt.list(t) / bt.dict(t)       -> t, tagged as a bencode list / dict
 *   bt.list_mt / bt.dict_mt       -> the two metatables (registry "bt.list" / "bt.dict")
 *
 * Offsets are 0-based byte offsets into s (the byte s:sub(offset + 1, offset + 1)
 * is where the decoder stopped). opts.unsorted = true accepts dict keys out of
 * order (duplicates are still errors); the default is strict BEP 3.
 * opts.max_tokens = n refuses a document of more than n values with
 * "too many tokens (limit n)" at the first value over it; the default is no
 * limit but the input's own (about #s / 2): bound #s, or pass max_tokens.
 *
 * Decoded strings are Lua byte strings, integers Lua integers, lists and dicts
 * tables carrying bt.list_mt / bt.dict_mt so that `le` and `de` stay distinct
 * through a round trip.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "codec/bencode.h"
#include "lua/l_bencode.h"

#define LIST_MT "bt.list"
#define DICT_MT "bt.dict"
#define DOC_MT  "bt.bdoc"   /* internal: owns a token array until collected */
#define BUF_MT  "bt.bbuf"   /* internal: owns an encoder buffer until collected */

/* Lua stack slots a level of decoding or encoding may use (table, key, value,
 * a few temporaries). Checked per level since depth is up to BT_BENC_MAX_DEPTH. */
#define LEVEL_SLOTS 8

/* opts -> flags and *max_tokens. */
static unsigned decode_opts(lua_State *L, int arg, uint32_t *max_tokens)
{
    unsigned flags = 0;
    *max_tokens = BT_BENC_ANY_TOKENS;
    if (lua_isnoneornil(L, arg))
        return 0;
    luaL_checktype(L, arg, LUA_TTABLE);
    if (lua_getfield(L, arg, "unsorted") != LUA_TNIL && lua_toboolean(L, -1))
        flags |= BT_BDEC_ALLOW_UNSORTED;
    lua_pop(L, 1);
    if (lua_getfield(L, arg, "max_tokens") != LUA_TNIL) {
        lua_Integer n = lua_tointeger(L, -1);
        luaL_argcheck(L, lua_isinteger(L, -1) && n >= 1 && n <= (lua_Integer)UINT32_MAX, arg,
                      "max_tokens must be an integer from 1 to 2^32 - 1");
        *max_tokens = (uint32_t)n;
    }
    lua_pop(L, 1);
    return flags;
}

static int doc_gc(lua_State *L)
{
    bt_bdoc *d = lua_touserdata(L, 1);
    bt_bdoc_free(d);
    return 0;
}

static int buf_gc(lua_State *L)
{
    bt_buf *b = lua_touserdata(L, 1);
    bt_buf_free(b);
    return 0;
}

/* --- decoding into Lua values ------------------------------------------ */

typedef struct build {
    lua_State *L;
    const bt_bdoc *d;
    int list_mt, dict_mt;   /* stack slots of the two metatables */
} build;

/* Push the value of token t; returns the index of the token after its subtree.
 * Recursion depth is bounded by the decoder's BT_BENC_MAX_DEPTH. */
static uint32_t push_value(build *b, uint32_t t)
{
    lua_State *L = b->L;
    const bt_btok *k = &b->d->tok[t];
    switch (bt_btype_of(b->d, t)) {
    case BT_BSTR:
        lua_pushlstring(L, b->d->buf + k->aux, k->end - k->aux);
        return t + 1;
    case BT_BINT:
        lua_pushinteger(L, (lua_Integer)bt_bint(b->d, t));
        return t + 1;
    case BT_BLIST: {
        luaL_checkstack(L, LEVEL_SLOTS, "bencode nesting");
        uint32_t n = k->aux, c = t + 1;
        lua_createtable(L, (int)n, 0);
        for (uint32_t i = 1; i <= n; i++) {
            c = push_value(b, c);
            lua_rawseti(L, -2, i);
        }
        lua_pushvalue(L, b->list_mt);
        lua_setmetatable(L, -2);
        return c;
    }
    default: { /* BT_BDICT */
        luaL_checkstack(L, LEVEL_SLOTS, "bencode nesting");
        uint32_t n = k->aux / 2, c = t + 1;
        lua_createtable(L, 0, (int)n);
        for (uint32_t i = 0; i < n; i++) {
            const bt_btok *key = &b->d->tok[c];
            lua_pushlstring(L, b->d->buf + key->aux, key->end - key->aux);
            c = push_value(b, c + 1);
            lua_rawset(L, -3);
        }
        lua_pushvalue(L, b->dict_mt);
        lua_setmetatable(L, -2);
        return c;
    }
    }
}

/* The token array lives in a userdata so that a memory error while building
 * tables (a longjmp) cannot leak it. */
static bt_bdoc *decode_boxed(lua_State *L, const char *s, size_t len, unsigned flags,
                             uint32_t max_tokens, bt_berr *err)
{
    bt_bdoc *d = lua_newuserdatauv(L, sizeof *d, 0);
    memset(d, 0, sizeof *d);
    luaL_setmetatable(L, DOC_MT);
    if (bt_bdecode(d, s, len, flags, max_tokens, err))
        return NULL;
    return d;
}

static int push_error(lua_State *L, const bt_berr *err)
{
    lua_pushnil(L);
    if (err->limit)
        lua_pushfstring(L, "%s (limit %I)", err->msg, (LUAI_UACINT)err->limit);
    else
        lua_pushstring(L, err->msg);
    lua_pushinteger(L, (lua_Integer)err->offset);
    return 3;
}

/* bt.bdecode(s [, opts]) -> value | nil, message, offset   [-0, +1|3, m] */
static int l_bdecode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    uint32_t max_tokens;
    unsigned flags = decode_opts(L, 2, &max_tokens);
    bt_berr err;
    lua_settop(L, 2);
    luaL_getmetatable(L, LIST_MT);   /* 3 */
    luaL_getmetatable(L, DICT_MT);   /* 4 */
    bt_bdoc *d = decode_boxed(L, s, len, flags, max_tokens, &err);   /* 5 */
    if (!d)
        return push_error(L, &err);
    build b = { L, d, 3, 4 };
    push_value(&b, 0);
    bt_bdoc_free(d);   /* now, rather than at the next collection */
    return 1;
}

/* bt.bdecode_tokens(s [, opts]) -> number of tokens | nil, message, offset   [-0, +1|3, m]
 * Tokenizes without building tables: what the benchmark compares with libtorrent. */
static int l_bdecode_tokens(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    uint32_t max_tokens;
    unsigned flags = decode_opts(L, 2, &max_tokens);
    bt_bdoc d;
    bt_berr err;
    if (bt_bdecode(&d, s, len, flags, max_tokens, &err))
        return push_error(L, &err);
    uint32_t n = d.ntok;
    bt_bdoc_free(&d);
    lua_pushinteger(L, n);
    return 1;
}

/* --- encoding Lua values ------------------------------------------------ */

typedef struct enc {
    lua_State *L;
    bt_buf *buf;         /* owned by a userdata: freed by __gc if we raise */
    int list_mt, dict_mt;
} enc;

typedef struct skey {
    const char *p;
    size_t n;
} skey;

static int skey_cmp(const void *a, const void *b)
{
    const skey *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
    if (c)
        return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

static void enc_oom(enc *e)
{
    luaL_error(e->L, "bt.bencode: out of memory");
}

static void encode_value(enc *e, int idx, int depth);

static void encode_list(enc *e, int idx, lua_Integer n, int depth)
{
    lua_State *L = e->L;
    if (bt_buf_putc(e->buf, 'l'))
        enc_oom(e);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, idx, i);
        encode_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    if (bt_buf_putc(e->buf, 'e'))
        enc_oom(e);
}

/* Keys are written in byte order whatever order the table holds them in. */
static void encode_dict(enc *e, int idx, lua_Integer nkeys, int depth)
{
    lua_State *L = e->L;
    /* The key array is a userdata so that raising below frees it. Key strings
     * stay alive: they are keys of the table being encoded, and no Lua code
     * runs during the encoding (raw access only). */
    skey *keys = lua_newuserdatauv(L, (size_t)nkeys * sizeof *keys + 1, 0);
    lua_Integer k = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "bt.bencode: dict key must be a string, got %s", luaL_typename(L, -1));
        if (k == nkeys)
            luaL_error(L, "bt.bencode: table changed while encoding");
        keys[k].p = lua_tolstring(L, -1, &keys[k].n);
        k++;
    }
    if (k != nkeys)
        luaL_error(L, "bt.bencode: table changed while encoding");
    qsort(keys, (size_t)nkeys, sizeof *keys, skey_cmp);
    if (bt_buf_putc(e->buf, 'd'))
        enc_oom(e);
    for (lua_Integer i = 0; i < nkeys; i++) {
        if (bt_benc_str(e->buf, keys[i].p, keys[i].n))
            enc_oom(e);
        lua_pushlstring(L, keys[i].p, keys[i].n);
        lua_rawget(L, idx);
        encode_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    if (bt_buf_putc(e->buf, 'e'))
        enc_oom(e);
    lua_pop(L, 1);   /* keys */
}

static void encode_table(enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    if (depth >= BT_BENC_MAX_DEPTH)
        luaL_error(L, "bt.bencode: nesting deeper than %d (a cycle?)", BT_BENC_MAX_DEPTH);
    luaL_checkstack(L, LEVEL_SLOTS, "bencode nesting");

    /* One pass over the keys tells list (exactly 1..n) from dict (only strings). */
    lua_Integer count = 0, nstr = 0, maxint = 0;
    int other = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (lua_type(L, -1) == LUA_TSTRING)
            nstr++;
        else if (lua_isinteger(L, -1)) {
            lua_Integer i = lua_tointeger(L, -1);
            if (i >= 1 && i > maxint)
                maxint = i;
            else if (i < 1)
                other = 1;
        } else
            other = 1;
    }
    int is_list = -1;   /* unknown */
    if (lua_getmetatable(L, idx)) {
        if (lua_rawequal(L, -1, e->list_mt))
            is_list = 1;
        else if (lua_rawequal(L, -1, e->dict_mt))
            is_list = 0;
        lua_pop(L, 1);
    }
    int seq = !other && nstr == 0 && maxint == count;   /* keys are exactly 1..count */
    if (is_list == 1) {
        if (!seq)
            luaL_error(L, "bt.bencode: bt.list table has keys other than 1..n");
        encode_list(e, idx, count, depth);
    } else if (is_list == 0) {
        if (nstr != count)
            luaL_error(L, "bt.bencode: dict key must be a string");
        encode_dict(e, idx, count, depth);
    } else if (count == 0) {
        luaL_error(L, "bt.bencode: ambiguous empty table: use bt.list{} or bt.dict{}");
    } else if (seq) {
        encode_list(e, idx, count, depth);
    } else if (nstr == count) {
        encode_dict(e, idx, count, depth);
    } else {
        luaL_error(L, "bt.bencode: table is neither a list (keys 1..n) nor a dict (string keys)");
    }
}

static void encode_value(enc *e, int idx, int depth)
{
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (bt_benc_str(e->buf, s, n))
            enc_oom(e);
        return;
    }
    case LUA_TNUMBER: {
        int isint;
        lua_Integer v = lua_tointegerx(L, idx, &isint);
        if (!isint) {
            lua_Number f = lua_tonumber(L, idx);
            if (isnan(f))
                luaL_error(L, "bt.bencode: cannot encode NaN");
            luaL_error(L, "bt.bencode: cannot encode non-integer number %f", (double)f);
        }
        if (bt_benc_int(e->buf, (int64_t)v))
            enc_oom(e);
        return;
    }
    case LUA_TTABLE:
        encode_table(e, idx, depth);
        return;
    default:
        luaL_error(L, "bt.bencode: cannot encode a %s", luaL_typename(L, idx));
    }
}

/* bt.bencode(v) -> string   [-0, +1, e]
 * Raises on booleans, functions, nil, non-integer numbers, NaN, non-string dict
 * keys, mixed or empty plain tables, and nesting past BT_BENC_MAX_DEPTH (cycles). */
static int l_bencode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    luaL_getmetatable(L, LIST_MT);   /* 2 */
    luaL_getmetatable(L, DICT_MT);   /* 3 */
    bt_buf *buf = lua_newuserdatauv(L, sizeof *buf, 0);   /* 4 */
    memset(buf, 0, sizeof *buf);
    luaL_setmetatable(L, BUF_MT);
    enc e = { L, buf, 2, 3 };
    encode_value(&e, 1, 0);
    lua_pushlstring(L, buf->len ? (const char *)buf->data : "", buf->len);
    bt_buf_free(buf);
    return 1;
}

/* Tags argument 1 (or a new table) with the metatable named mt. */
static int tag_table(lua_State *L, const char *mt)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, mt);
    return 1;
}

/* bt.list([t]) -> t   tags t (or a new table) as a bencode list */
static int l_list(lua_State *L) { return tag_table(L, LIST_MT); }

/* bt.dict([t]) -> t   tags t (or a new table) as a bencode dict */
static int l_dict(lua_State *L) { return tag_table(L, DICT_MT); }

void bt_open_bencode(lua_State *L, int mod)
{
    mod = lua_absindex(L, mod);
    static const luaL_Reg fns[] = {
        { "bdecode", l_bdecode },
        { "bdecode_tokens", l_bdecode_tokens },
        { "bencode", l_bencode },
        { "list", l_list },
        { "dict", l_dict },
        { NULL, NULL },
    };
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, fns, 0);
    lua_pop(L, 1);

    luaL_newmetatable(L, LIST_MT);
    lua_setfield(L, mod, "list_mt");
    luaL_newmetatable(L, DICT_MT);
    lua_setfield(L, mod, "dict_mt");

    luaL_newmetatable(L, DOC_MT);
    lua_pushcfunction(L, doc_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    luaL_newmetatable(L, BUF_MT);
    lua_pushcfunction(L, buf_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}
