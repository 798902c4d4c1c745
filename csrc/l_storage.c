/* l_storage.c: Lua binding of storage.h ("bt.Storage"), mainly for tests and
 * tools; the engine calls the C API directly. Also, because csrc/lbt.c (not
 * owned by the storage work) calls only the existing bt_open_* functions, this
 * file's bt_open_storage adds two neighbours of storage to the module:
 *   - bt.fs.write_atomic / fsync_dir / stat_ns / mkdir (resume data, lua/bt/resume.lua),
 *     added to the `bt.fs` table whichever of l_meta.c and this file opens first;
 *   - bt.ratelimit (csrc/ratelimit.h token buckets), which would be cleaner in
 *     its own l_ratelimit.c with a bt_open_ratelimit called from lbt.c.
 *
 * Conventions (as in l_meta.c): piece indices and byte offsets are 0-based (as
 * on the wire); misuse (a piece out of range, a block past the piece's end, a
 * closed storage) raises an argument error; runtime failure (I/O) returns
 * nil, message.
 */
#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include "l_meta.h"
#include "l_ranges.h"
#include "lbt.h"
#include "ratelimit.h"
#include "storage.h"

#define BT_STORAGE_MT "bt.Storage"

typedef struct lstorage {
    bt_storage *s;   /* NULL once closed */
} lstorage;

static lstorage *check_open(lua_State *L, int idx)
{
    lstorage *u = luaL_checkudata(L, idx, BT_STORAGE_MT);
    if (!u->s)
        luaL_argerror(L, idx, "closed " BT_STORAGE_MT);
    return u;
}

static uint32_t check_piece(lua_State *L, bt_storage *s, int arg)
{
    lua_Integer i = luaL_checkinteger(L, arg);
    if (i < 0 || i >= (lua_Integer)bt_storage_num_pieces(s))
        luaL_argerror(L, arg, lua_pushfstring(L, "piece index %I out of range [0, %I)",
                                              (LUAI_UACINT)i,
                                              (LUAI_UACINT)bt_storage_num_pieces(s)));
    return (uint32_t)i;
}

/* A block [begin, begin + len) inside piece `piece`; raises otherwise. */
static uint32_t check_block(lua_State *L, bt_storage *s, uint32_t piece, int arg, lua_Integer len)
{
    lua_Integer begin = luaL_checkinteger(L, arg);
    lua_Integer size = (lua_Integer)bt_storage_piece_size(s, piece);
    if (begin < 0 || begin > size)
        luaL_argerror(L, arg, lua_pushfstring(L, "offset %I outside piece %I (%I bytes)",
                                              (LUAI_UACINT)begin, (LUAI_UACINT)piece,
                                              (LUAI_UACINT)size));
    if (len < 0 || len > size - begin)
        luaL_argerror(L, arg + 1, lua_pushfstring(L, "block of %I bytes at %I past the end of piece %I (%I bytes)",
                                                  (LUAI_UACINT)len, (LUAI_UACINT)begin,
                                                  (LUAI_UACINT)piece, (LUAI_UACINT)size));
    return (uint32_t)begin;
}

static int fail(lua_State *L, bt_storage *s)
{
    lua_pushnil(L);
    lua_pushstring(L, bt_storage_error(s));
    return 2;
}

/* bt.storage.open(meta, dir [, {backend = "disk"|"memory"}]) -> bt.Storage | nil, message
 * bt.storage.open(meta, nil, {backend = "memory"})                          [-0, +1|2, e]
 * meta: a bt.Metainfo, the bytes of a .torrent file, or a table whose field
 * `meta` is a bt.Metainfo. The disk backend (default) creates DIR/NAME (see
 * storage.h for the layout); the memory backend takes no folder (dir must be
 * nil) and allocates chunks as they are written. */
static int l_open(lua_State *L)
{
    int memory = 0;
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "backend");
        const char *b = lua_isnil(L, -1) ? "disk" : lua_tostring(L, -1);
        if (!b || (strcmp(b, "disk") != 0 && strcmp(b, "memory") != 0))
            luaL_argerror(L, 3, "backend must be \"disk\" or \"memory\"");
        memory = strcmp(b, "memory") == 0;
        lua_pop(L, 1);
    }
    const char *dir = NULL;
    if (memory) {
        if (!lua_isnoneornil(L, 2))
            luaL_argerror(L, 2, "the memory backend takes no folder (pass nil)");
    } else {
        dir = luaL_checkstring(L, 2);
    }
    lua_settop(L, 2);
    if (lua_type(L, 1) == LUA_TSTRING) {
        lua_pushvalue(L, lua_upvalueindex(1));   /* bt.meta_parse */
        lua_pushvalue(L, 1);
        lua_call(L, 1, 3);
        if (lua_isnil(L, -3)) {
            lua_pushnil(L);
            lua_pushfstring(L, "bad torrent: %s at byte %I", lua_tostring(L, -3),
                            (LUAI_UACINT)lua_tointeger(L, -2));
            return 2;
        }
        lua_pop(L, 2);
        lua_replace(L, 1);
    } else if (lua_type(L, 1) == LUA_TTABLE) {
        lua_getfield(L, 1, "meta");
        lua_replace(L, 1);
    }
    const bt_meta *m = bt_lmeta_check(L, 1);
    lstorage *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->s = NULL;
    luaL_setmetatable(L, BT_STORAGE_MT);
    char err[BT_STORAGE_ERRLEN];
    u->s = memory ? bt_storage_open_memory(m, err, sizeof err)
                  : bt_storage_open(m, dir, err, sizeof err);
    if (!u->s) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* st:write(piece, begin, bytes) -> true | nil, message  [-0, +1|2, e] */
static int l_write(lua_State *L)
{
    bt_storage *s = check_open(L, 1)->s;
    uint32_t piece = check_piece(L, s, 2);
    size_t len;
    const char *p = luaL_checklstring(L, 4, &len);
    lua_Integer ilen = len > (size_t)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)len;
    uint32_t begin = check_block(L, s, piece, 3, ilen);
    if (bt_storage_write(s, piece, begin, p, len) < 0)
        return fail(L, s);
    lua_pushboolean(L, 1);
    return 1;
}

/* st:read(piece, begin, len) -> bytes | nil, message  [-0, +1|2, e] */
static int l_read(lua_State *L)
{
    bt_storage *s = check_open(L, 1)->s;
    uint32_t piece = check_piece(L, s, 2);
    lua_Integer len = luaL_checkinteger(L, 4);
    uint32_t begin = check_block(L, s, piece, 3, len);
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, (size_t)len);   /* Lua owns it: no leak on error */
    if (bt_storage_read(s, piece, begin, p, (size_t)len) < 0)
        return fail(L, s);
    luaL_pushresultsize(&b, (size_t)len);
    return 1;
}

/* st:hash(piece) -> 20 raw bytes | nil, message  [-0, +1|2, e] */
static int l_hash(lua_State *L)
{
    bt_storage *s = check_open(L, 1)->s;
    uint32_t piece = check_piece(L, s, 2);
    uint8_t h[20];
    if (bt_storage_hash_piece(s, piece, h) < 0)
        return fail(L, s);
    lua_pushlstring(L, (const char *)h, 20);
    return 1;
}

/* st:verify(piece) -> true | false | nil, message  [-0, +1|2, e] */
static int l_verify(lua_State *L)
{
    bt_storage *s = check_open(L, 1)->s;
    uint32_t piece = check_piece(L, s, 2);
    int r = bt_storage_verify(s, piece);
    if (r < 0)
        return fail(L, s);
    lua_pushboolean(L, r);
    return 1;
}

/* st:check_piece(piece) -> true | false | nil, message  [-0, +1|2, e]
 * One step of st:check(): skips missing files and holes without reading. */
static int l_check_piece(lua_State *L)
{
    bt_storage *s = check_open(L, 1)->s;
    uint32_t piece = check_piece(L, s, 2);
    int r = bt_storage_check_piece(s, piece);
    if (r < 0)
        return fail(L, s);
    lua_pushboolean(L, r);
    return 1;
}

/* The Lua progress function is at index 2. An error in it propagates (no C
 * resource is held across this call: the storage owns its buffers). */
static int progress(void *ud, uint32_t done, uint32_t total)
{
    lua_State *L = ud;
    lua_pushvalue(L, 2);
    lua_pushinteger(L, done);
    lua_pushinteger(L, total);
    lua_call(L, 2, 1);
    int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop;
}

/* st:check([progress]) -> bt.Ranges | nil, message  [-0, +1|2, e]
 * Hash-checks what is on disk; the set holds the good pieces. progress(done,
 * total) is called after each piece; returning false stops: nil, "stopped". */
static int l_check(lua_State *L)
{
    bt_storage *s = check_open(L, 1)->s;
    int has_cb = !lua_isnoneornil(L, 2);
    if (has_cb)
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    bt_ranges *have = bt_lranges_push(L, bt_storage_num_pieces(s));
    int r = bt_storage_check_cb(s, have, has_cb ? progress : NULL, L);
    if (r < 0)
        return fail(L, s);
    if (r > 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "stopped");
        return 2;
    }
    return 1;
}

/* st:sync() -> true | nil, message  [-0, +1|2, e] */
static int l_sync(lua_State *L)
{
    bt_storage *s = check_open(L, 1)->s;
    if (bt_storage_sync(s) < 0)
        return fail(L, s);
    lua_pushboolean(L, 1);
    return 1;
}

/* st:num_pieces() -> n  [-0, +1, e] */
static int l_num_pieces(lua_State *L)
{
    lua_pushinteger(L, bt_storage_num_pieces(check_open(L, 1)->s));
    return 1;
}

/* st:piece_size(i) -> bytes  [-0, +1, e] */
static int l_piece_size(lua_State *L)
{
    bt_storage *s = check_open(L, 1)->s;
    lua_pushinteger(L, (lua_Integer)bt_storage_piece_size(s, check_piece(L, s, 2)));
    return 1;
}

/* st:backend() -> "disk" | "memory"  [-0, +1, e] */
static int l_backend(lua_State *L)
{
    bt_storage *s = check_open(L, 1)->s;
    lua_pushstring(L, bt_storage_memory_used(s) >= 0 ? "memory" : "disk");
    return 1;
}

/* st:memory_used() -> bytes allocated by the memory backend (nil for disk)  [-0, +1, e] */
static int l_memory_used(lua_State *L)
{
    int64_t n = bt_storage_memory_used(check_open(L, 1)->s);
    if (n < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)n);
    return 1;
}

/* st:close() -> nothing; idempotent; also __gc and __close  [-0, +0, -] */
static int l_close(lua_State *L)
{
    lstorage *u = luaL_checkudata(L, 1, BT_STORAGE_MT);
    bt_storage_close(u->s);
    u->s = NULL;
    return 0;
}

static int l_tostring(lua_State *L)
{
    lstorage *u = luaL_checkudata(L, 1, BT_STORAGE_MT);
    if (u->s)
        lua_pushfstring(L, BT_STORAGE_MT " (%d pieces)", (int)bt_storage_num_pieces(u->s));
    else
        lua_pushliteral(L, BT_STORAGE_MT " (closed)");
    return 1;
}

/* ---- bt.fs additions (resume data) ------------------------------------------- */

/* bt.fs.write_atomic(path, bytes) -> true | nil, message  [-0, +1|2, e]
 * Temporary file in the same folder (O_EXCL, 0644), fsync, rename over path,
 * fsync the folder: after a crash path holds the old or the new bytes. */
static int l_fs_write_atomic(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t len;
    const char *p = luaL_checklstring(L, 2, &len);
    char err[BT_STORAGE_ERRLEN];
    if (bt_write_atomic(path, p, len, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* bt.fs.fsync_dir(path) -> true | nil, message  [-0, +1|2, e] */
static int l_fs_fsync_dir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    char err[BT_STORAGE_ERRLEN];
    if (bt_fsync_dir(path, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* bt.fs.stat_ns(path) -> {type =, size =, mtime =, mtime_ns =} | nil, message  [-0, +1|2, m]
 * As bt.fs.stat (lstat: a symlink is "link", never followed) with the
 * nanoseconds of the modification time, which resume data compares. */
static int l_fs_stat_ns(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct stat st;
    if (lstat(path, &st)) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    lua_createtable(L, 0, 4);
    const char *type = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir"
                       : S_ISLNK(st.st_mode) ? "link" : "other";
    lua_pushstring(L, type);
    lua_setfield(L, -2, "type");
    lua_pushinteger(L, (lua_Integer)st.st_size);
    lua_setfield(L, -2, "size");
    lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_sec);
    lua_setfield(L, -2, "mtime");
    lua_pushinteger(L, (lua_Integer)st.st_mtim.tv_nsec);
    lua_setfield(L, -2, "mtime_ns");
    return 1;
}

/* bt.fs.mkdir(path) -> true | nil, message  [-0, +1|2, e]
 * One folder, mode 0755 minus the umask; an existing folder is success (the
 * resume folder <dir>/.bt-lua is made on every save). */
static int l_fs_mkdir(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    if (mkdir(path, 0755) < 0) {
        struct stat st;
        int e = errno;
        if (e == EEXIST && lstat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            lua_pushboolean(L, 1);
            return 1;
        }
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(e));
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

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

/* rl:take(n, now [, other...]) -> granted  [-0, +1, e]
 * Refill to now, grant min(n, what every bucket holds), take it from each. */
static int l_rl_take(lua_State *L)
{
    int64_t n = check_bytes(L, 2);
    double now = check_now(L, 3);
    bt_bucket *bs[BT_BUCKET_MAX_CHAIN];
    int k = gather(L, 4, now, bs);
    lua_pushinteger(L, (lua_Integer)bt_bucket_take_chain(bs, k, n));
    return 1;
}

/* rl:wait(n, now [, other...]) -> seconds until min(n, burst) is available  [-0, +1, e] */
static int l_rl_wait(lua_State *L)
{
    int64_t n = check_bytes(L, 2);
    double now = check_now(L, 3);
    bt_bucket *bs[BT_BUCKET_MAX_CHAIN];
    int k = gather(L, 4, now, bs);
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

void bt_open_storage(lua_State *L, int mod)
{
    static const luaL_Reg methods[] = {
        {"write", l_write},   {"read", l_read},         {"hash", l_hash},
        {"verify", l_verify}, {"check", l_check},       {"sync", l_sync},
        {"check_piece", l_check_piece},
        {"num_pieces", l_num_pieces}, {"piece_size", l_piece_size},
        {"backend", l_backend}, {"memory_used", l_memory_used},
        {"close", l_close},   {NULL, NULL},
    };
    mod = lua_absindex(L, mod);
    luaL_newmetatable(L, BT_STORAGE_MT);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__gc");
    lua_pushcfunction(L, l_close);
    lua_setfield(L, -2, "__close");
    lua_pushcfunction(L, l_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    lua_newtable(L);
    lua_getfield(L, mod, "meta_parse");   /* bt_open_meta ran first (lbt.c) */
    lua_pushcclosure(L, l_open, 1);
    lua_setfield(L, -2, "open");
    lua_setfield(L, mod, "storage");

    /* bt.fs: made by l_meta.c (bt_open_meta) when it runs first; created here
     * otherwise, and l_meta.c's bt_setfuncs_sub would then replace it, so lbt.c
     * must keep bt_open_meta before bt_open_storage (it does). */
    static const luaL_Reg fs_funcs[] = {
        {"write_atomic", l_fs_write_atomic}, {"fsync_dir", l_fs_fsync_dir},
        {"stat_ns", l_fs_stat_ns},           {"mkdir", l_fs_mkdir},
        {NULL, NULL},
    };
    if (lua_getfield(L, mod, "fs") != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, mod, "fs");
    }
    luaL_setfuncs(L, fs_funcs, 0);
    lua_pop(L, 1);

    static const luaL_Reg rl_methods[] = {
        {"take", l_rl_take},   {"wait", l_rl_wait},   {"spend", l_rl_spend},
        {"available", l_rl_available}, {"set", l_rl_set}, {"limits", l_rl_limits},
        {NULL, NULL},
    };
    luaL_newmetatable(L, BT_BUCKET_MT);
    luaL_newlib(L, rl_methods);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, l_rl_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_ratelimit);
    lua_setfield(L, mod, "ratelimit");
}
