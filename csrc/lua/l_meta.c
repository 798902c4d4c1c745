/* l_meta.c: Lua binding for metainfo (bt.meta_parse -> "bt.Metainfo") and SHA-1
 * (bt.sha1, bt.sha1_hex, bt.sha1_hasher -> "bt.Sha1").
 *
 * Conventions: misuse raises an argument error; runtime failure returns
 * nil, message[, offset]. Byte offsets given to Lua are 0-based (as in the C
 * layer): the byte is bytes:sub(off + 1, off + 1). Piece indices are 0-based
 * (as on the wire); file indices are 1-based (Lua arrays).
 */
#include "lua/l_meta.h"

#include <limits.h>
#include <string.h>

#include "codec/magnet.h"

#include "core/sha1.h"

#define BT_SHA1_MT "bt.Sha1"
#define BT_MAGNET_BOX_MT "bt.MagnetBox"   /* holds a parse while its table is built */

/* ---- SHA-1 ------------------------------------------------------------------ */

/* Byte range [i, j] of s in string.sub's convention (1-based, negatives from
 * the end), clamped to the string; returns the start pointer and the length. */
static const char *sub_range(lua_State *L, int arg, size_t *n)
{
    size_t len;
    const char *s = luaL_checklstring(L, arg, &len);
    lua_Integer i = luaL_optinteger(L, arg + 1, 1);
    lua_Integer j = luaL_optinteger(L, arg + 2, -1);
    lua_Integer l = (lua_Integer)len;
    if (i < 0)
        i = i < -l ? 1 : l + i + 1;
    else if (i == 0)
        i = 1;
    if (j < 0)
        j = l + j + 1;
    else if (j > l)
        j = l;
    if (i > j) {
        *n = 0;
        return s;
    }
    *n = (size_t)(j - i + 1);
    return s + i - 1;
}

static void push_hex(lua_State *L, const uint8_t h[BT_SHA1_LEN])
{
    char hex[2 * BT_SHA1_LEN + 1];
    bt_sha1_hex(h, hex);
    lua_pushlstring(L, hex, 2 * BT_SHA1_LEN);
}

/* A digest as 20 raw bytes, or as 40 hex digits when hex. */
static int push_digest(lua_State *L, const uint8_t h[BT_SHA1_LEN], int hex)
{
    if (hex)
        push_hex(L, h);
    else
        lua_pushlstring(L, (const char *)h, BT_SHA1_LEN);
    return 1;
}

static int sha1_of(lua_State *L, int hex)
{
    size_t n;
    const char *p = sub_range(L, 1, &n);
    uint8_t h[BT_SHA1_LEN];
    if (bt_sha1(p, n, h))
        return luaL_error(L, "SHA-1 failed");
    return push_digest(L, h, hex);
}

/* bt.sha1(s [, i [, j]]) -> 20 raw bytes  [-0, +1, e]
 * The optional i, j select s:sub(i, j) without copying it. */
static int l_sha1(lua_State *L) { return sha1_of(L, 0); }

/* bt.sha1_hex(s [, i [, j]]) -> 40 lowercase hex digits  [-0, +1, e] */
static int l_sha1_hex(lua_State *L) { return sha1_of(L, 1); }

/* bt.sha1_hasher() -> bt.Sha1  [-0, +1, m] */
static int l_sha1_hasher(lua_State *L)
{
    bt_sha1_ctx *c = lua_newuserdatauv(L, sizeof *c, 0);
    c->md = NULL;
    luaL_setmetatable(L, BT_SHA1_MT);
    if (bt_sha1_init(c))
        return luaL_error(L, "SHA-1 context: out of memory");
    return 1;
}

static bt_sha1_ctx *check_hasher(lua_State *L)
{
    bt_sha1_ctx *c = luaL_checkudata(L, 1, BT_SHA1_MT);
    if (!c->md)
        luaL_argerror(L, 1, BT_SHA1_MT " is closed");
    return c;
}

/* h:update(s [, i [, j]]) -> h  [-0, +1, e]
 * Feeds s:sub(i, j) (default: all of s) without copying it. */
static int l_hasher_update(lua_State *L)
{
    bt_sha1_ctx *c = check_hasher(L);
    size_t n;
    const char *p = sub_range(L, 2, &n);
    if (bt_sha1_update(c, p, n))
        return luaL_error(L, "SHA-1 update failed");
    lua_settop(L, 1);
    return 1;
}

static int hasher_digest(lua_State *L, int hex)
{
    bt_sha1_ctx *c = check_hasher(L);
    uint8_t h[BT_SHA1_LEN];
    if (bt_sha1_peek(c, h))
        return luaL_error(L, "SHA-1 digest failed");
    return push_digest(L, h, hex);
}

/* h:digest() -> 20 raw bytes of everything fed so far  [-0, +1, e]
 * The hasher is unchanged: more updates may follow (like Python's hashlib). */
static int l_hasher_digest(lua_State *L) { return hasher_digest(L, 0); }

/* h:hexdigest() -> 40 hex digits  [-0, +1, e] */
static int l_hasher_hexdigest(lua_State *L) { return hasher_digest(L, 1); }

/* h:reset() -> h: forget everything fed  [-0, +1, e] */
static int l_hasher_reset(lua_State *L)
{
    bt_sha1_ctx *c = check_hasher(L);
    if (bt_sha1_reset(c))
        return luaL_error(L, "SHA-1 reset failed");
    lua_settop(L, 1);
    return 1;
}

static int l_hasher_gc(lua_State *L)
{
    bt_sha1_free(luaL_checkudata(L, 1, BT_SHA1_MT));
    return 0;
}

static const luaL_Reg hasher_methods[] = {
    { "update", l_hasher_update },
    { "digest", l_hasher_digest },
    { "hexdigest", l_hasher_hexdigest },
    { "reset", l_hasher_reset },
    { NULL, NULL },
};

/* ---- bt.Metainfo ------------------------------------------------------------ */

typedef struct lmeta {
    bt_meta m;
    int ok;   /* parsed successfully; otherwise m is empty */
} lmeta;

static lmeta *check_lmeta(lua_State *L, int idx)
{
    lmeta *u = luaL_checkudata(L, idx, BT_META_MT);
    if (!u->ok)
        luaL_argerror(L, idx, "empty " BT_META_MT);
    return u;
}

const bt_meta *bt_lmeta_check(lua_State *L, int idx)
{
    return &check_lmeta(L, idx)->m;
}

/* bt.meta_parse(bytes) -> bt.Metainfo | nil, message, offset  [-0, +1|3, m]
 * The userdata keeps `bytes` alive (its uservalue): every string in the
 * parsed metainfo points into it. Limits: bt.meta_limits. */
static int l_meta_parse(lua_State *L)
{
    size_t len;
    const char *buf = luaL_checklstring(L, 1, &len);
    lmeta *u = lua_newuserdatauv(L, sizeof *u, 1);
    memset(u, 0, sizeof *u);
    luaL_setmetatable(L, BT_META_MT);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    const char *err = NULL;
    size_t off = 0;
    if (bt_meta_parse(&u->m, buf, len, &err, &off)) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        lua_pushinteger(L, (lua_Integer)off);
        return 3;
    }
    u->ok = 1;
    return 1;
}

static int l_meta_gc(lua_State *L)
{
    lmeta *u = luaL_checkudata(L, 1, BT_META_MT);
    if (u->ok)
        bt_meta_free(&u->m);
    u->ok = 0;
    return 0;
}

static uint32_t check_piece(lua_State *L, const bt_meta *m, int arg)
{
    lua_Integer i = luaL_checkinteger(L, arg);
    if (i < 0 || i >= (lua_Integer)m->num_pieces)
        luaL_argerror(L, arg, lua_pushfstring(L, "piece index %I out of range [0, %I)",
                                              (LUAI_UACINT)i, (LUAI_UACINT)m->num_pieces));
    return (uint32_t)i;
}

/* m:piece_hash(i) -> 20 raw bytes (i is 0-based)  [-0, +1, e] */
static int l_meta_piece_hash(lua_State *L)
{
    const bt_meta *m = &check_lmeta(L, 1)->m;
    uint32_t i = check_piece(L, m, 2);
    lua_pushlstring(L, (const char *)m->pieces + (size_t)i * 20, 20);
    return 1;
}

/* m:piece_size(i) -> bytes in piece i (the last may be short)  [-0, +1, e] */
static int l_meta_piece_size(lua_State *L)
{
    const bt_meta *m = &check_lmeta(L, 1)->m;
    uint32_t i = check_piece(L, m, 2);
    lua_pushinteger(L, (lua_Integer)bt_meta_piece_size(m, i));
    return 1;
}

/* Pushes {path = {components...}, length =, offset =, pad = bool, disk_path =
 * {components...}, and when true: executable, hidden, renamed, link_skipped;
 * symlink = the link's content}. The keys are at stack index `keys`.. (pushed
 * once by the caller: setting fields through them skips re-interning the key
 * strings, a third of the cost of m:files() on 100,000 files). disk_path is
 * the same table as path when sanitizing changed nothing. */
enum { K_PATH, K_LENGTH, K_OFFSET, K_PAD, K_DISK, K_EXEC, K_HIDDEN, K_RENAMED, K_LINKSKIP,
       K_SYMLINK, K_COUNT };

static void push_file(lua_State *L, const bt_meta *m, uint32_t f, int keys)
{
    const bt_meta_file *file = &m->files[f];
    lua_createtable(L, 0, 5);
    lua_pushvalue(L, keys + K_PATH);
    uint32_t ncomp = bt_meta_ncomp(m, f);
    lua_createtable(L, ncomp > INT_MAX ? 0 : (int)ncomp, 0);
    for (uint32_t k = 0; k < ncomp; k++) {
        bt_str s = bt_meta_path_comp(m, f, k);
        lua_pushlstring(L, s.p, s.n);
        lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    if (!(file->flags & BT_META_F_DISK)) {
        lua_pushvalue(L, keys + K_DISK);
        lua_pushvalue(L, -2);
        lua_rawset(L, -5);
    } else {
        static char buf[BT_META_MAX_DISK_PATH + 1];   /* the loop thread's only */
        size_t n = bt_meta_disk_path(m, f, buf, sizeof buf);
        lua_pushvalue(L, keys + K_DISK);
        lua_createtable(L, 1, 0);
        lua_Integer i = 1;
        for (size_t st = 0, j = 0; j <= n; j++)
            if (j == n || buf[j] == '/') {
                lua_pushlstring(L, buf + st, j - st);
                lua_rawseti(L, -2, i++);
                st = j + 1;
            }
        lua_rawset(L, -5);
    }
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + K_LENGTH);
    lua_pushinteger(L, (lua_Integer)file->length);
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + K_OFFSET);
    lua_pushinteger(L, (lua_Integer)file->offset);
    lua_rawset(L, -3);
    lua_pushvalue(L, keys + K_PAD);
    lua_pushboolean(L, file->pad);
    lua_rawset(L, -3);
    static const struct { uint8_t flag; int key; } bools[] = {
        { BT_META_F_EXEC, K_EXEC },
        { BT_META_F_HIDDEN, K_HIDDEN },
        { BT_META_F_RENAMED, K_RENAMED },
        { BT_META_F_LINK_OUT, K_LINKSKIP },
    };
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++)
        if (file->flags & bools[i].flag) {
            lua_pushvalue(L, keys + bools[i].key);
            lua_pushboolean(L, 1);
            lua_rawset(L, -3);
        }
    bt_str link = bt_meta_link_target(m, f);
    if (link.n) {
        lua_pushvalue(L, keys + K_SYMLINK);
        lua_pushlstring(L, link.p, link.n);
        lua_rawset(L, -3);
    }
}

static int push_file_keys(lua_State *L)
{
    static const char *const names[K_COUNT] = {
        [K_PATH] = "path", [K_LENGTH] = "length", [K_OFFSET] = "offset", [K_PAD] = "pad",
        [K_DISK] = "disk_path", [K_EXEC] = "executable", [K_HIDDEN] = "hidden",
        [K_RENAMED] = "renamed", [K_LINKSKIP] = "link_skipped", [K_SYMLINK] = "symlink",
    };
    luaL_checkstack(L, K_COUNT + 8, NULL);
    int keys = lua_gettop(L) + 1;
    for (int i = 0; i < K_COUNT; i++)
        lua_pushstring(L, names[i]);
    return keys;
}

/* m:file(i) -> {path = {...}, length =, offset =, pad =, disk_path = {...}, ...}
 * (i is 1-based; the fields are push_file's)  [-0, +1, e]
 * For a single-file torrent the path is {name} (disk_path {disk_name}); for a
 * multi-file one it is relative to the folder `name` (disk_path: to disk_name). */
static int l_meta_file(lua_State *L)
{
    const bt_meta *m = &check_lmeta(L, 1)->m;
    lua_Integer i = luaL_checkinteger(L, 2);
    luaL_argcheck(L, i >= 1 && i <= (lua_Integer)m->num_files, 2, "file index out of range");
    push_file(L, m, (uint32_t)(i - 1), push_file_keys(L));
    return 1;
}

/* m:files() -> array of what m:file(i) returns, in torrent order  [-0, +1, m] */
static int l_meta_files(lua_State *L)
{
    const bt_meta *m = &check_lmeta(L, 1)->m;
    int keys = push_file_keys(L);
    lua_createtable(L, (int)m->num_files, 0);
    for (uint32_t f = 0; f < m->num_files; f++) {
        push_file(L, m, f, keys);
        lua_rawseti(L, -2, (lua_Integer)f + 1);
    }
    return 1;
}

/* Pushes token t as a plain Lua value: integer, string, array or table.
 * Depth is bounded by the decoder (BT_BENC_MAX_DEPTH). */
static void push_value(lua_State *L, const bt_bdoc *d, uint32_t t)
{
    luaL_checkstack(L, 3, "bencode value nested too deep");
    switch (bt_btype_of(d, t)) {
    case BT_BINT:
        lua_pushinteger(L, (lua_Integer)bt_bint(d, t));
        break;
    case BT_BSTR: {
        size_t n;
        const char *p = bt_bstr(d, t, &n);
        lua_pushlstring(L, p, n);
        break;
    }
    case BT_BLIST: {
        lua_createtable(L, (int)d->tok[t].aux, 0);
        lua_Integer i = 1;
        for (uint32_t c = bt_bfirst(d, t); c; c = bt_bnext(d, t, c)) {
            push_value(L, d, c);
            lua_rawseti(L, -2, i++);
        }
        break;
    }
    case BT_BDICT: {
        lua_createtable(L, 0, (int)(d->tok[t].aux / 2));
        for (uint32_t k = bt_bfirst(d, t); k; k = bt_bnext(d, t, d->tok[k].next)) {
            size_t n;
            const char *p = bt_bstr(d, k, &n);
            lua_pushlstring(L, p, n);
            /* A torrent may repeat a key: the first counts, as bt_bdict_get
             * (and libtorrent) find it. */
            if (lua_rawget(L, -2) != LUA_TNIL) {
                lua_pop(L, 1);
                continue;
            }
            lua_pop(L, 1);
            lua_pushlstring(L, p, n);
            push_value(L, d, d->tok[k].next);
            lua_rawset(L, -3);
        }
        break;
    }
    default:
        lua_pushnil(L);
    }
}

/* Common part of m:value and m:info_value. */
static int push_key(lua_State *L, const bt_meta *m, uint32_t dict)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    uint32_t t = bt_bdict_getn(&m->doc, dict, key, klen);
    if (!t) {
        lua_pushnil(L);
        return 1;
    }
    push_value(L, &m->doc, t);
    lua_pushinteger(L, (lua_Integer)m->doc.tok[t].start);
    return 2;
}

/* m:value(key) -> value, offset | nil: key of the top-level dictionary as a
 * plain Lua value (dicts become tables with string keys, lists arrays), and the
 * 0-based byte offset of its encoding. For optional keys: announce, comment...  [-0, +1|2, m] */
static int l_meta_value(lua_State *L)
{
    return push_key(L, &check_lmeta(L, 1)->m, 0);
}

/* m:info_value(key) -> value, offset | nil: the same for the info dictionary. */
static int l_meta_info_value(lua_State *L)
{
    const bt_meta *m = &check_lmeta(L, 1)->m;
    return push_key(L, m, m->info_tok);
}

/* m:bytes() -> the whole .torrent as given to bt.meta_parse  [-0, +1, -] */
static int l_meta_bytes(lua_State *L)
{
    check_lmeta(L, 1);
    lua_getiuservalue(L, 1, 1);
    return 1;
}

/* m:info_bytes() -> the exact bytes of the info dictionary (what the
 * info-hash is taken over; what ut_metadata serves)  [-0, +1, m] */
static int l_meta_info_bytes(lua_State *L)
{
    const bt_meta *m = &check_lmeta(L, 1)->m;
    const bt_btok *t = &m->doc.tok[m->info_tok];
    lua_pushlstring(L, m->doc.buf + t->start, t->end - t->start);
    return 1;
}

static const luaL_Reg meta_methods[] = {
    { "piece_hash", l_meta_piece_hash },
    { "piece_size", l_meta_piece_size },
    { "file", l_meta_file },
    { "files", l_meta_files },
    { "value", l_meta_value },
    { "info_value", l_meta_info_value },
    { "bytes", l_meta_bytes },
    { "info_bytes", l_meta_info_bytes },
    { NULL, NULL },
};

/* m.FIELD: info_hash (20 raw bytes), info_hash_hex, name, piece_length,
 * num_pieces, total_length, private (bool), multi_file (bool), num_files,
 * disk_name (the name as used on disk), trailing_bytes (ignored after the
 * top-level dictionary), num_sanitized (files whose disk path differs),
 * num_renamed (of them, renamed for a duplicate), num_links_skipped;
 * otherwise the methods above.  [-0, +1, e] */
static int l_meta_index(lua_State *L)
{
    const bt_meta *m = &check_lmeta(L, 1)->m;
    if (lua_type(L, 2) != LUA_TSTRING) {
        lua_pushnil(L);   /* like a table: m[1] or m[{}] is just absent */
        return 1;
    }
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "info_hash") == 0)
        lua_pushlstring(L, (const char *)m->info_hash, 20);
    else if (strcmp(k, "info_hash_hex") == 0)
        push_hex(L, m->info_hash);
    else if (strcmp(k, "name") == 0)
        lua_pushlstring(L, m->name.p, m->name.n);
    else if (strcmp(k, "piece_length") == 0)
        lua_pushinteger(L, (lua_Integer)m->piece_length);
    else if (strcmp(k, "num_pieces") == 0)
        lua_pushinteger(L, (lua_Integer)m->num_pieces);
    else if (strcmp(k, "total_length") == 0)
        lua_pushinteger(L, (lua_Integer)m->total_length);
    else if (strcmp(k, "private") == 0)
        lua_pushboolean(L, m->is_private);
    else if (strcmp(k, "multi_file") == 0)
        lua_pushboolean(L, m->multi_file);
    else if (strcmp(k, "num_files") == 0)
        lua_pushinteger(L, (lua_Integer)m->num_files);
    else if (strcmp(k, "disk_name") == 0)
        lua_pushlstring(L, m->disk_name.p, m->disk_name.n);
    else if (strcmp(k, "trailing_bytes") == 0)
        lua_pushinteger(L, (lua_Integer)m->trailing);
    else if (strcmp(k, "num_sanitized") == 0)
        lua_pushinteger(L, (lua_Integer)m->num_sanitized);
    else if (strcmp(k, "num_renamed") == 0)
        lua_pushinteger(L, (lua_Integer)m->num_renamed);
    else if (strcmp(k, "num_links_skipped") == 0)
        lua_pushinteger(L, (lua_Integer)m->num_links_skipped);
    else {
        luaL_getmetatable(L, BT_META_MT);
        lua_getfield(L, -1, "__methods");
        lua_getfield(L, -1, k);
    }
    return 1;
}

static int l_meta_tostring(lua_State *L)
{
    lmeta *u = luaL_checkudata(L, 1, BT_META_MT);
    if (!u->ok) {
        lua_pushliteral(L, BT_META_MT " (empty)");
        return 1;
    }
    char hex[2 * BT_SHA1_LEN + 1];
    bt_sha1_hex(u->m.info_hash, hex);
    /* The name may hold any bytes (NUL included): push it counted. */
    lua_pushfstring(L, BT_META_MT " %s ", hex);
    lua_pushlstring(L, u->m.name.p, u->m.name.n);
    lua_concat(L, 2);
    return 1;
}

/* ---- module ------------------------------------------------------------------ */

/* bt.meta_limits: what bt.meta_parse accepts at most (codec/metainfo.h), for
 * bt.torrent's size check before reading and for messages and specs. */
static void push_meta_limits(lua_State *L)
{
    static const struct { const char *k; lua_Integer v; } lim[] = {
        { "max_size", BT_META_MAX_SIZE },
        { "max_tokens", BT_META_MAX_TOKENS },
        { "max_files", BT_META_MAX_FILES },
        { "max_pieces", BT_META_MAX_PIECES },
        { "max_piece_length", BT_META_MAX_PIECE_LEN },
        { "max_path_depth", BT_META_MAX_PATH_DEPTH },
        { "max_disk_path", BT_META_MAX_DISK_PATH },
        { "max_name", BT_META_MAX_NAME },
    };
    lua_createtable(L, 0, (int)(sizeof lim / sizeof lim[0]));
    for (size_t i = 0; i < sizeof lim / sizeof lim[0]; i++) {
        lua_pushinteger(L, lim[i].v);
        lua_setfield(L, -2, lim[i].k);
    }
}

/* ---- magnet URIs ------------------------------------------------------------ */

static void push_mstrs(lua_State *L, const bt_mstr *v, uint32_t n, const char *field)
{
    lua_createtable(L, (int)n, 0);
    for (uint32_t i = 0; i < n; i++) {
        lua_pushlstring(L, v[i].p, v[i].n);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    lua_setfield(L, -2, field);
}

/* bt.magnet_parse(uri) -> { info_hash (20 bytes), info_hash_hex, name (dn or nil),
 *   trackers = {url...}, peers = {"host:port"...}, trackers_dropped, peers_dropped }
 *   | nil, message, offset   [-0, +1|3, m]  (codec/magnet.h has the rules) */
static int l_magnet_parse(lua_State *L)
{
    size_t n;
    const char *uri = luaL_checklstring(L, 1, &n);
    /* the parse result lives in a userdata whose __gc frees its arena: a Lua error
     * while the table is built (out of memory) leaks nothing */
    bt_magnet *mp = lua_newuserdatauv(L, sizeof *mp, 0);
    memset(mp, 0, sizeof *mp);
    luaL_setmetatable(L, BT_MAGNET_BOX_MT);
    const char *err;
    size_t off;
    if (bt_magnet_parse(mp, uri, n, &err, &off) != 0) {
        bt_magnet_free(mp);
        lua_pushnil(L);
        lua_pushstring(L, err);
        lua_pushinteger(L, (lua_Integer)off);
        return 3;
    }
    const bt_magnet m = *mp;
    lua_createtable(L, 0, 7);
    lua_pushlstring(L, (const char *)m.info_hash, 20);
    lua_setfield(L, -2, "info_hash");
    bt_push_hex20(L, m.info_hash);
    lua_setfield(L, -2, "info_hash_hex");
    if (m.dn.p) {
        lua_pushlstring(L, m.dn.p, m.dn.n);
        lua_setfield(L, -2, "name");
    }
    push_mstrs(L, m.tr, m.ntr, "trackers");
    push_mstrs(L, m.pe, m.npe, "peers");
    lua_pushinteger(L, m.tr_dropped);
    lua_setfield(L, -2, "trackers_dropped");
    lua_pushinteger(L, m.pe_dropped);
    lua_setfield(L, -2, "peers_dropped");
    bt_magnet_free(mp);
    return 1;
}

static int l_magnet_box_gc(lua_State *L)
{
    bt_magnet_free(luaL_checkudata(L, 1, BT_MAGNET_BOX_MT));
    return 0;
}

void bt_open_meta(lua_State *L, int mod)
{
    mod = lua_absindex(L, mod);
    push_meta_limits(L);
    lua_setfield(L, mod, "meta_limits");

    luaL_newmetatable(L, BT_MAGNET_BOX_MT);
    lua_pushcfunction(L, l_magnet_box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    luaL_newmetatable(L, BT_SHA1_MT);
    luaL_newlib(L, hasher_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_hasher_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);

    luaL_newmetatable(L, BT_META_MT);
    luaL_newlib(L, meta_methods);
    lua_setfield(L, -2, "__methods");
    lua_pushcfunction(L, l_meta_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_meta_gc);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_meta_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    static const luaL_Reg funcs[] = {
        { "sha1", l_sha1 },
        { "sha1_hex", l_sha1_hex },
        { "sha1_hasher", l_sha1_hasher },
        { "meta_parse", l_meta_parse },
        { "magnet_parse", l_magnet_parse },
        { NULL, NULL },
    };
    lua_pushvalue(L, mod);
    luaL_setfuncs(L, funcs, 0);
    lua_pop(L, 1);
}
