/* l_ranges.c: the bt.Ranges userdata, a set of piece indices (ranges.c), and
 * bt.RangesView, a read-only view of a set the engine owns (t.have, peer.have).
 *
 * Indices are 0-based, as piece indices are on the wire. The bt_ranges struct
 * lives inside the userdata; its range array is malloc'ed by ranges.c and freed
 * by __gc. Misuse (bad index, size mismatch) raises an argument error; a wire
 * bitfield that does not fit returns nil, message.
 *
 * A view holds no set: it holds its owner (a torrent or peer handle, as its
 * uservalue) and a function that finds the owner's set each time a method runs,
 * so reading one costs no copy, it always shows the set as it is now, and using
 * it after its owner is gone raises the owner's error. Every read-only method of
 * bt.Ranges works on a view and takes a view wherever it takes a set; the
 * methods that change a set raise ("read-only view: use :copy()").
 */
#include "lua/l_ranges.h"

#include <string.h>

#define BT_RANGES_VIEW_MT "bt.RangesView"

typedef struct lview {
    bt_lranges_resolve resolve;
} lview;

/* __tostring lists at most this many ranges: a fragmented set of a million
 * pieces must not print megabytes into a log line. */
#define TOSTRING_MAX_RANGES 16

bt_ranges *bt_lranges_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, BT_RANGES_MT);
}

const bt_ranges *bt_lranges_read(lua_State *L, int idx)
{
    bt_ranges *s = luaL_testudata(L, idx, BT_RANGES_MT);
    if (s)
        return s;
    lview *v = luaL_testudata(L, idx, BT_RANGES_VIEW_MT);
    if (!v)
        luaL_typeerror(L, idx, BT_RANGES_MT);
    idx = lua_absindex(L, idx);
    lua_getiuservalue(L, idx, 1);
    const bt_ranges *r = v->resolve(L, lua_gettop(L));   /* raises if the owner is gone */
    lua_pop(L, 1);
    return r;
}

void bt_lranges_push_view(lua_State *L, int owner, bt_lranges_resolve resolve)
{
    owner = lua_absindex(L, owner);
    lview *v = lua_newuserdatauv(L, sizeof *v, 1);
    v->resolve = resolve;
    lua_pushvalue(L, owner);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, BT_RANGES_VIEW_MT);
}

bt_ranges *bt_lranges_push(lua_State *L, uint32_t size)
{
    bt_ranges *s = lua_newuserdatauv(L, sizeof *s, 0);
    bt_ranges_init(s, size);
    luaL_setmetatable(L, BT_RANGES_MT);
    return s;
}

/* Out of memory inside ranges.c: the set is unchanged and every array is owned
 * by some userdata, so raising is safe. */
static int oom(lua_State *L)
{
    return luaL_error(L, BT_RANGES_MT ": not enough memory");
}

/* An index of a piece: [0, size). */
static uint32_t check_index(lua_State *L, const bt_ranges *s, int arg)
{
    lua_Integer i = luaL_checkinteger(L, arg);
    if (i < 0 || i >= (lua_Integer)s->size)
        luaL_argerror(L, arg, lua_pushfstring(L, "index %I out of range [0, %I)",
                                              (LUAI_UACINT)i, (LUAI_UACINT)s->size));
    return (uint32_t)i;
}

/* A bound of a half-open range or a starting point: [0, size]. */
static uint32_t check_bound(lua_State *L, const bt_ranges *s, int arg)
{
    lua_Integer i = luaL_checkinteger(L, arg);
    if (i < 0 || i > (lua_Integer)s->size)
        luaL_argerror(L, arg, lua_pushfstring(L, "index %I out of range [0, %I]",
                                              (LUAI_UACINT)i, (LUAI_UACINT)s->size));
    return (uint32_t)i;
}

static uint32_t check_size(lua_State *L, int arg)
{
    lua_Integer n = luaL_checkinteger(L, arg);
    if (n < 0 || n > (lua_Integer)BT_RANGES_MAX_SIZE)
        luaL_argerror(L, arg, lua_pushfstring(L, "size %I out of range [0, %I]",
                                              (LUAI_UACINT)n, (LUAI_UACINT)BT_RANGES_MAX_SIZE));
    return (uint32_t)n;
}

/* bt.bitfield(n) -> empty set of n pieces.  [-0, +1, v] */
static int l_bitfield(lua_State *L)
{
    uint32_t n = check_size(L, 1);
    bt_lranges_push(L, n);
    return 1;
}

/* bt.bitfield_from_wire(bytes, n) -> set | nil, message.  [-0, +1|2, v]
 * bytes: a BitTorrent bitfield message payload, ceil(n/8) bytes, high bit first. */
static int l_from_wire(lua_State *L)
{
    size_t len;
    const char *bytes = luaL_checklstring(L, 1, &len);
    uint32_t n = check_size(L, 2);
    bt_ranges *s = bt_lranges_push(L, n);
    int rc = bt_ranges_from_wire(s, (const uint8_t *)bytes, len);
    if (rc == 0)
        return 1;
    if (rc == -1)
        return oom(L);
    lua_pushnil(L);
    if (rc == -2)
        lua_pushfstring(L, "bitfield of %I bytes, expected %I for %I pieces",
                        (LUAI_UACINT)len, (LUAI_UACINT)bt_ranges_wire_len(s), (LUAI_UACINT)n);
    else
        lua_pushfstring(L, "bitfield has spare bits set after the last piece (%I pieces)",
                        (LUAI_UACINT)n);
    return 2;
}

/* s:set(i), s:clear(i)  [-0, +0, v] */
static int m_set(lua_State *L)
{
    bt_ranges *s = bt_lranges_check(L, 1);
    if (bt_ranges_set(s, check_index(L, s, 2)))
        return oom(L);
    return 0;
}

static int m_clear(lua_State *L)
{
    bt_ranges *s = bt_lranges_check(L, 1);
    if (bt_ranges_clear(s, check_index(L, s, 2)))
        return oom(L);
    return 0;
}

/* The half-open range [a, b) of arguments 2 and 3; a == b is an empty range. */
static void check_range(lua_State *L, const bt_ranges *s, uint32_t *a, uint32_t *b)
{
    *a = check_bound(L, s, 2);
    *b = check_bound(L, s, 3);
    if (*a > *b)
        luaL_argerror(L, 3, lua_pushfstring(L, "range [%I, %I) is reversed",
                                            (LUAI_UACINT)*a, (LUAI_UACINT)*b));
}

/* s:set_range(a, b), s:clear_range(a, b): the half-open range [a, b).  [-0, +0, v] */
static int range_op(lua_State *L, int (*op)(bt_ranges *, uint32_t, uint32_t))
{
    bt_ranges *s = bt_lranges_check(L, 1);
    uint32_t a, b;
    check_range(L, s, &a, &b);
    if (op(s, a, b))   /* only -1: check_range kept the bounds in [0, size] */
        return oom(L);
    return 0;
}

static int m_set_range(lua_State *L) { return range_op(L, bt_ranges_set_range); }
static int m_clear_range(lua_State *L) { return range_op(L, bt_ranges_clear_range); }

/* s:set_all(), s:clear_all()  [-0, +0, m] */
static int m_set_all(lua_State *L)
{
    if (bt_ranges_set_all(bt_lranges_check(L, 1)))
        return oom(L);
    return 0;
}

static int m_clear_all(lua_State *L)
{
    bt_ranges_clear_all(bt_lranges_check(L, 1));
    return 0;
}

/* s:has(i) -> boolean  [-0, +1, v] */
static int m_has(lua_State *L)
{
    const bt_ranges *s = bt_lranges_read(L, 1);
    lua_pushboolean(L, bt_ranges_has(s, check_index(L, s, 2)));
    return 1;
}

/* s:count([a, b]) -> number of set pieces, in [a, b) when given; #s is
 * s:count(). s:size() -> n.  [-0, +1, v] */
static int m_count(lua_State *L)
{
    const bt_ranges *s = bt_lranges_read(L, 1);
    if (lua_isnoneornil(L, 2) && lua_isnoneornil(L, 3)) {
        lua_pushinteger(L, bt_ranges_count(s));
        return 1;
    }
    uint32_t a, b;
    check_range(L, s, &a, &b);
    lua_pushinteger(L, bt_ranges_count_range(s, a, b));
    return 1;
}

/* __len gets (s, s) as arguments: s:count() whatever the second. */
static int m_len(lua_State *L)
{
    lua_pushinteger(L, bt_ranges_count(bt_lranges_read(L, 1)));
    return 1;
}

static int m_size(lua_State *L)
{
    lua_pushinteger(L, bt_lranges_read(L, 1)->size);
    return 1;
}

/* s:full(), s:empty() -> boolean (a set of 0 pieces is both).  [-0, +1, -] */
static int m_full(lua_State *L)
{
    lua_pushboolean(L, bt_ranges_full(bt_lranges_read(L, 1)));
    return 1;
}

static int m_empty(lua_State *L)
{
    lua_pushboolean(L, bt_lranges_read(L, 1)->count == 0);
    return 1;
}

static int push_index(lua_State *L, int64_t i)
{
    if (i < 0)
        lua_pushnil(L);
    else
        lua_pushinteger(L, (lua_Integer)i);
    return 1;
}

/* s:next_set([from]), s:next_clear([from]) -> first set (clear) index >= from,
 * or nil. from defaults to 0 and may equal size (then nil).  [-0, +1, v] */
static int next_op(lua_State *L, int64_t (*op)(const bt_ranges *, uint32_t))
{
    const bt_ranges *s = bt_lranges_read(L, 1);
    uint32_t from = lua_isnoneornil(L, 2) ? 0 : check_bound(L, s, 2);
    return push_index(L, op(s, from));
}

static int m_next_set(lua_State *L) { return next_op(L, bt_ranges_next_set); }
static int m_next_clear(lua_State *L) { return next_op(L, bt_ranges_next_clear); }

/* The other set of a two-set method: same size, else an argument error. */
static const bt_ranges *check_other(lua_State *L, const bt_ranges *a, int arg)
{
    const bt_ranges *b = bt_lranges_read(L, arg);
    if (a->size != b->size)
        luaL_argerror(L, arg, lua_pushfstring(L, "size %I differs from %I",
                                              (LUAI_UACINT)b->size, (LUAI_UACINT)a->size));
    return b;
}

/* s:next_diff(o[, from]) -> first index >= from in s but not in o, or nil;
 * s:next_common(o[, from]) -> first index >= from in both, or nil. No new set
 * is built: "does this peer have a piece we lack" is peer:next_diff(have).
 * [-0, +1, v] */
static int next2_op(lua_State *L, int64_t (*op)(const bt_ranges *, const bt_ranges *, uint32_t))
{
    const bt_ranges *a = bt_lranges_read(L, 1);
    const bt_ranges *b = check_other(L, a, 2);
    uint32_t from = lua_isnoneornil(L, 3) ? 0 : check_bound(L, a, 3);
    return push_index(L, op(a, b, from));
}

static int m_next_diff(lua_State *L) { return next2_op(L, bt_ranges_next_diff); }
static int m_next_common(lua_State *L) { return next2_op(L, bt_ranges_next_common); }

/* s:union(o), s:intersect(o), s:diff(o) -> new set (diff is s minus o).
 * Both sets must have the same size.  [-0, +1, v] */
static int binop(lua_State *L, int (*op)(bt_ranges *, const bt_ranges *, const bt_ranges *))
{
    const bt_ranges *a = bt_lranges_read(L, 1);
    const bt_ranges *b = check_other(L, a, 2);
    bt_ranges *out = bt_lranges_push(L, a->size);
    if (op(out, a, b))
        return oom(L);
    return 1;
}

static int m_union(lua_State *L) { return binop(L, bt_ranges_union); }
static int m_intersect(lua_State *L) { return binop(L, bt_ranges_intersect); }
static int m_diff(lua_State *L) { return binop(L, bt_ranges_diff); }

/* s:copy() -> new equal set  [-0, +1, m] */
static int m_copy(lua_State *L)
{
    const bt_ranges *s = bt_lranges_read(L, 1);
    bt_ranges *c = bt_lranges_push(L, s->size);
    if (bt_ranges_copy(c, s))
        return oom(L);
    return 1;
}

/* s:to_wire() -> bytes: the bitfield message payload, ceil(size/8) bytes, high
 * bit first, spare bits clear.  [-0, +1, m] */
static int m_to_wire(lua_State *L)
{
    const bt_ranges *s = bt_lranges_read(L, 1);
    size_t len = bt_ranges_wire_len(s);
    luaL_Buffer b;
    /* Lua owns the buffer: nothing to free if it raises. */
    char *p = luaL_buffinitsize(L, &b, len);
    bt_ranges_to_wire(s, (uint8_t *)p);
    luaL_pushresultsize(&b, len);
    return 1;
}

/* Iterator of s:ranges(): upvalues are the set, the position reached so far and
 * a hint of the next range's index. The set may change during the loop: the
 * hint is only used while it is still right, else a binary search finds the
 * first range ending after the position. */
static int ranges_iter(lua_State *L)
{
    const bt_ranges *s = bt_lranges_read(L, lua_upvalueindex(1));
    uint32_t pos = (uint32_t)lua_tointeger(L, lua_upvalueindex(2));
    uint32_t k = (uint32_t)lua_tointeger(L, lua_upvalueindex(3));
    if (!(k < s->n && s->r[k].end > pos && (k == 0 || s->r[k - 1].end <= pos)))
        k = bt_ranges_find(s, pos);
    if (k >= s->n)
        return 0;
    uint32_t a = s->r[k].start > pos ? s->r[k].start : pos, b = s->r[k].end;
    lua_pushinteger(L, b);
    lua_replace(L, lua_upvalueindex(2));
    lua_pushinteger(L, k + 1);
    lua_replace(L, lua_upvalueindex(3));
    lua_pushinteger(L, a);
    lua_pushinteger(L, b);
    return 2;
}

/* for a, b in s:ranges([from]) do ... end: the set as half-open ranges [a, b),
 * in order; with from, only the part at or after from (the first range may be
 * cut to start at from).  [-0, +1, v] */
static int m_ranges(lua_State *L)
{
    const bt_ranges *s = bt_lranges_read(L, 1);
    uint32_t from = lua_isnoneornil(L, 2) ? 0 : check_bound(L, s, 2);
    lua_settop(L, 1);
    lua_pushinteger(L, from);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, ranges_iter, 3);
    return 1;
}

/* s == o: same size and same pieces.  [-0, +1, -] */
static bool is_set(lua_State *L, int idx)
{
    return luaL_testudata(L, idx, BT_RANGES_MT) || luaL_testudata(L, idx, BT_RANGES_VIEW_MT);
}

static int m_eq(lua_State *L)
{
    bool both = is_set(L, 1) && is_set(L, 2);
    lua_pushboolean(L, both && bt_ranges_equal(bt_lranges_read(L, 1), bt_lranges_read(L, 2)));
    return 1;
}

/* tostring(s) -> "bt.Ranges(100: [0,10) [20,21))", the first
 * TOSTRING_MAX_RANGES ranges then "... (N ranges)".  [-0, +1, m] */
static int m_tostring(lua_State *L)
{
    const bt_ranges *s = bt_lranges_read(L, 1);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushfstring(L, "%s(%I:", luaL_testudata(L, 1, BT_RANGES_MT) ? BT_RANGES_MT : BT_RANGES_VIEW_MT,
                    (LUAI_UACINT)s->size);
    luaL_addvalue(&b);
    if (s->n == 0)
        luaL_addstring(&b, " empty");
    for (uint32_t k = 0; k < s->n && k < TOSTRING_MAX_RANGES; k++) {
        lua_pushfstring(L, " [%I,%I)", (LUAI_UACINT)s->r[k].start, (LUAI_UACINT)s->r[k].end);
        luaL_addvalue(&b);
    }
    if (s->n > TOSTRING_MAX_RANGES) {
        lua_pushfstring(L, " ... (%I ranges)", (LUAI_UACINT)s->n);
        luaL_addvalue(&b);
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return 1;
}

static int m_gc(lua_State *L)
{
    bt_ranges_free(bt_lranges_check(L, 1));
    return 0;
}

/* A view refuses to change: the set is the engine's. */
static int m_read_only(lua_State *L)
{
    return luaL_error(L, BT_RANGES_VIEW_MT ": read-only view of the engine's set: use :copy() for a set you may change");
}

static const luaL_Reg methods[] = {
    { "set", m_set },
    { "clear", m_clear },
    { "set_range", m_set_range },
    { "clear_range", m_clear_range },
    { "set_all", m_set_all },
    { "clear_all", m_clear_all },
    { "has", m_has },
    { "count", m_count },
    { "size", m_size },
    { "full", m_full },
    { "empty", m_empty },
    { "next_set", m_next_set },
    { "next_clear", m_next_clear },
    { "next_diff", m_next_diff },
    { "next_common", m_next_common },
    { "union", m_union },
    { "intersect", m_intersect },
    { "diff", m_diff },
    { "copy", m_copy },
    { "to_wire", m_to_wire },
    { "ranges", m_ranges },
    { NULL, NULL },
};

static const luaL_Reg meta[] = {
    { "__len", m_len },
    { "__eq", m_eq },
    { "__tostring", m_tostring },
    { "__gc", m_gc },
    { NULL, NULL },
};

static const char *const MUTATORS[] = { "set", "clear", "set_range", "clear_range", "set_all", "clear_all", NULL };

void bt_open_ranges(lua_State *L, int mod)
{
    mod = lua_absindex(L, mod);
    luaL_newmetatable(L, BT_RANGES_MT);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    /* the view: the same methods, the mutators replaced; no __gc (it owns nothing) */
    luaL_newmetatable(L, BT_RANGES_VIEW_MT);
    for (const luaL_Reg *r = meta; r->name; r++) {
        if (strcmp(r->name, "__gc") == 0)
            continue;
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -2, r->name);
    }
    luaL_newlib(L, methods);
    for (int i = 0; MUTATORS[i]; i++) {
        lua_pushcfunction(L, m_read_only);
        lua_setfield(L, -2, MUTATORS[i]);
    }
    lua_setfield(L, -2, "__index");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_bitfield);
    lua_setfield(L, mod, "bitfield");
    lua_pushcfunction(L, l_from_wire);
    lua_setfield(L, mod, "bitfield_from_wire");
}
