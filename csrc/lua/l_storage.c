/* l_storage.c: Lua binding of storage.h ("bt.Storage"), mainly for tests and
 * tools; the engine calls the C API directly.
 *
 * Conventions (as in l_meta.c): piece indices and byte offsets are 0-based (as
 * on the wire); misuse (a piece out of range, a block past the piece's end, a
 * closed storage) raises an argument error; runtime failure (I/O) returns
 * nil, message.
 */
#include <string.h>

#include "lua/l_meta.h"
#include "lua/l_ranges.h"
#include "lua/l_storage.h"
#include "storage/storage.h"

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
    return bt_push_fail(L, "%s", bt_storage_error(s));
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
            /* the arguments are read before bt_push_fail pushes: msg at -2, offset at -1 */
            return bt_push_fail(L, "bad torrent: %s at byte %I", lua_tostring(L, -2),
                                (LUAI_UACINT)lua_tointeger(L, -1));
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
    if (!u->s)
        return bt_push_fail(L, "%s", err);
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

/* A piece test of storage.h (1 matches, 0 does not, -1 error) as
 * true | false | nil, message. */
static int piece_test(lua_State *L, int (*test)(bt_storage *, uint32_t))
{
    bt_storage *s = check_open(L, 1)->s;
    uint32_t piece = check_piece(L, s, 2);
    int r = test(s, piece);
    if (r < 0)
        return fail(L, s);
    lua_pushboolean(L, r);
    return 1;
}

/* st:verify(piece) -> true | false | nil, message  [-0, +1|2, e] */
static int l_verify(lua_State *L) { return piece_test(L, bt_storage_verify); }

/* st:check_piece(piece) -> true | false | nil, message  [-0, +1|2, e]
 * One step of st:check(): skips missing files and holes without reading. */
static int l_check_piece(lua_State *L) { return piece_test(L, bt_storage_check_piece); }

/* What the progress callback needs: the Lua state, and the userdata, to see
 * whether the function closed the storage. */
typedef struct check_ctx {
    lua_State *L;
    lstorage *u;
} check_ctx;

/* The Lua progress function is at index 2. An error in it propagates (no C
 * resource is held across this call: the storage owns its buffers). The
 * function may close the storage: then the check stops at once, before
 * bt_storage_check_cb touches the freed storage again, and l_check raises. */
static int progress(void *ud, uint32_t done, uint32_t total)
{
    check_ctx *c = ud;
    lua_State *L = c->L;
    lua_pushvalue(L, 2);
    lua_pushinteger(L, done);
    lua_pushinteger(L, total);
    lua_call(L, 2, 1);
    int stop = lua_isboolean(L, -1) && !lua_toboolean(L, -1);
    lua_pop(L, 1);
    return stop || !c->u->s;
}

/* st:check([progress]) -> bt.Ranges | nil, message  [-0, +1|2, e]
 * Hash-checks what is on disk; the set holds the good pieces. progress(done,
 * total) is called after each piece; returning false stops: nil, "stopped".
 * Closing the storage from progress raises "closed bt.Storage during check". */
static int l_check(lua_State *L)
{
    lstorage *u = check_open(L, 1);
    bt_storage *s = u->s;
    int has_cb = !lua_isnoneornil(L, 2);
    if (has_cb)
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    bt_ranges *have = bt_lranges_push(L, bt_storage_num_pieces(s));
    check_ctx ctx = { L, u };
    int r = bt_storage_check_cb(s, have, has_cb ? progress : NULL, &ctx);
    if (!u->s)
        return luaL_error(L, "closed " BT_STORAGE_MT " during check");
    if (r < 0)
        return fail(L, s);
    if (r > 0)
        return bt_push_fail(L, "stopped");
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
}
