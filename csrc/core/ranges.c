/* ranges.c: the sparse bitfield, a sorted array of disjoint, non-adjacent
 * half-open ranges (see ranges.h for the invariant).
 *
 * Modelled on CRoaring's run containers: a binary search finds the ranges an
 * operation touches, inserts merge with their neighbours, and appending past the
 * last range (the common case while a download fills in order) is O(1).
 * Every mutating function reserves the memory it needs before it changes
 * anything, so an out-of-memory return (-1) leaves the set as it was.
 */
#include "core/ranges.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* First capacity handed out: a torrent's "have" set is a handful of ranges most
 * of the time, so start small and let doubling take over. */
#define RANGES_MIN_CAP 4u

/* Below this distance (in ranges, 8 bytes each) the next probes of a search
 * are likely in cache already. Measured by bench/ranges_ref.c. */
#define PREFETCH_MIN 8u

/* Index of the first range whose end is > x, or n. A branch-free lower bound:
 * the answer always lies in [lo, lo + len]. The step is added through a mask
 * because gcc turns a ?: here into a branch, mispredicted half the time. */
static inline uint32_t first_end_after(const bt_range *r, uint32_t n, uint32_t x)
{
    if (n == 0 || r[0].end > x)
        return 0;   /* the first range: scans from the start cost no search (the engine
                       asks "a piece this peer has that we lack?" for every peer each tick) */
    uint32_t lo = 0, len = n;
    while (len > 1) {
        uint32_t half = len / 2;
        /* Fetch both places the next step may probe: on a set of 10^5 ranges
         * the search is a chain of cache misses, and this overlaps them. Not
         * once the probes are within a few cache lines: there it only costs. */
        uint32_t nh = (len - half) / 2;
        if (nh > PREFETCH_MIN) {
            __builtin_prefetch(&r[lo + nh - 1]);
            __builtin_prefetch(&r[lo + half + nh - 1]);
        }
        lo += half & (0u - (uint32_t)(r[lo + half - 1].end <= x));
        len -= half;
    }
    return lo + (r[lo].end <= x);
}

/* Index of the first range whose start is > x, or n. */
static inline uint32_t first_start_after(const bt_range *r, uint32_t n, uint32_t x)
{
    if (n == 0)
        return 0;
    uint32_t lo = 0, len = n;
    while (len > 1) {
        uint32_t half = len / 2;
        lo += half & (0u - (uint32_t)(r[lo + half - 1].start <= x));
        len -= half;
    }
    return lo + (r[lo].start <= x);
}

/* Make room for `need` ranges; geometric growth keeps appends amortized O(1).
 * The count of ranges never exceeds size/2 + 1 <= 2^30 + 1, so doubling a
 * uint32_t capacity cannot overflow before it stops being needed. */
static int reserve(bt_ranges *s, uint32_t need)
{
    if (need <= s->cap)
        return 0;
    uint64_t cap = s->cap ? (uint64_t)s->cap * 2 : RANGES_MIN_CAP;
    if (cap < need)
        cap = need;
    if (cap > UINT32_MAX)
        cap = UINT32_MAX;
    bt_range *r = realloc(s->r, (size_t)cap * sizeof *r);
    if (!r)
        return -1;
    s->r = r;
    s->cap = (uint32_t)cap;
    return 0;
}

void bt_ranges_init(bt_ranges *s, uint32_t size)
{
    s->r = NULL;
    s->n = s->cap = 0;
    s->size = size;
    s->count = 0;
}

void bt_ranges_free(bt_ranges *s)
{
    free(s->r);
    s->r = NULL;
    s->n = s->cap = 0;
    s->count = 0;
}

int bt_ranges_copy(bt_ranges *dst, const bt_ranges *src)
{
    if (dst == src)
        return 0;
    if (src->n > dst->cap) {
        bt_range *r = malloc((size_t)src->n * sizeof *r);
        if (!r)
            return -1;
        free(dst->r);
        dst->r = r;
        dst->cap = src->n;
    }
    if (src->n)
        memcpy(dst->r, src->r, (size_t)src->n * sizeof *src->r);
    dst->n = src->n;
    dst->size = src->size;
    dst->count = src->count;
    return 0;
}

int bt_ranges_set_range(bt_ranges *s, uint32_t a, uint32_t b)
{
    /* A bound past the universe is the caller's bug, but a range past size
     * would later make to_wire write past its buffer: refuse it here. */
    if (a > b || b > s->size)
        return -2;
    if (a == b)
        return 0;
    uint32_t n = s->n;
    /* Fast paths at the end of the array: append, or grow the last range. */
    if (n == 0 || a > s->r[n - 1].end) {
        if (reserve(s, n + 1))
            return -1;
        s->r[n].start = a;
        s->r[n].end = b;
        s->n = n + 1;
        s->count += b - a;
        return 0;
    }
    bt_range *r = s->r;
    if (a >= r[n - 1].start) {
        if (b > r[n - 1].end) {
            s->count += b - r[n - 1].end;
            r[n - 1].end = b;
        }
        return 0;
    }
    /* Ranges [lo, hi) overlap or touch [a, b) (end >= a and start <= b): they
     * all merge into one. */
    uint32_t lo = a ? first_end_after(r, n, a - 1) : 0;
    uint32_t hi = first_start_after(r, n, b);
    if (lo == hi) {
        if (reserve(s, n + 1))
            return -1;
        r = s->r;
        memmove(r + lo + 1, r + lo, (size_t)(n - lo) * sizeof *r);
        r[lo].start = a;
        r[lo].end = b;
        s->n = n + 1;
        s->count += b - a;
        return 0;
    }
    uint32_t ns = r[lo].start < a ? r[lo].start : a;
    uint32_t ne = r[hi - 1].end > b ? r[hi - 1].end : b;
    uint32_t removed = 0;
    for (uint32_t k = lo; k < hi; k++)
        removed += r[k].end - r[k].start;
    r[lo].start = ns;
    r[lo].end = ne;
    memmove(r + lo + 1, r + hi, (size_t)(n - hi) * sizeof *r);
    s->n = n - (hi - lo - 1);
    s->count += (ne - ns) - removed;
    return 0;
}

int bt_ranges_clear_range(bt_ranges *s, uint32_t a, uint32_t b)
{
    if (a > b || b > s->size)
        return -2;
    if (a == b || s->n == 0)
        return 0;
    uint32_t n = s->n;
    bt_range *r = s->r;
    /* Ranges [lo, hi) overlap [a, b): end > a and start < b. */
    uint32_t lo = first_end_after(r, n, a);
    uint32_t hi = first_start_after(r, n, b - 1);
    if (lo >= hi)
        return 0;
    uint32_t s0 = r[lo].start, e = r[hi - 1].end;
    uint32_t keep = (s0 < a) + (e > b);   /* pieces left of a and right of b */
    /* Clearing the middle of one range splits it: the only case that grows. */
    if (lo + keep > hi) {
        if (reserve(s, n + 1))
            return -1;
        r = s->r;
    }
    uint32_t removed = 0;
    for (uint32_t k = lo; k < hi; k++) {
        uint32_t x = r[k].start > a ? r[k].start : a;
        uint32_t y = r[k].end < b ? r[k].end : b;
        removed += y - x;
    }
    memmove(r + lo + keep, r + hi, (size_t)(n - hi) * sizeof *r);
    uint32_t w = lo;
    if (s0 < a) {
        r[w].start = s0;
        r[w].end = a;
        w++;
    }
    if (e > b) {
        r[w].start = b;
        r[w].end = e;
    }
    s->n = n - hi + lo + keep;
    s->count -= removed;
    return 0;
}

int bt_ranges_set(bt_ranges *s, uint32_t i)
{
    if (i >= s->size)   /* also keeps i + 1 from wrapping */
        return -2;
    return bt_ranges_set_range(s, i, i + 1);
}

int bt_ranges_clear(bt_ranges *s, uint32_t i)
{
    if (i >= s->size)
        return -2;
    return bt_ranges_clear_range(s, i, i + 1);
}

int bt_ranges_set_all(bt_ranges *s)
{
    if (s->size == 0) {
        s->n = 0;
        s->count = 0;
        return 0;
    }
    if (reserve(s, 1))
        return -1;
    s->r[0].start = 0;
    s->r[0].end = s->size;
    s->n = 1;
    s->count = s->size;
    return 0;
}

void bt_ranges_clear_all(bt_ranges *s)
{
    /* An empty set owns no memory, whatever it held before. */
    bt_ranges_free(s);
}

bool bt_ranges_has(const bt_ranges *s, uint32_t i)
{
    uint32_t k = first_end_after(s->r, s->n, i);
    return k < s->n && s->r[k].start <= i;
}

uint32_t bt_ranges_find(const bt_ranges *s, uint32_t i)
{
    return first_end_after(s->r, s->n, i);
}

uint32_t bt_ranges_find_from(const bt_ranges *s, uint32_t i, uint32_t hint)
{
    const bt_range *r = s->r;
    uint32_t n = s->n;
    if (hint >= n)
        return n == 0 || r[n - 1].end <= i ? n : first_end_after(r, n, i);
    if (r[hint].end > i)   /* the answer is hint, or before it */
        return hint == 0 || r[hint - 1].end <= i ? hint : first_end_after(r, hint, i);
    /* r[lo].end <= i: the answer is after lo; double the step until past it */
    uint32_t lo = hint, step = 1;
    while (lo + step < n && r[lo + step].end <= i) {
        lo += step;
        step *= 2;
    }
    uint32_t hi = lo + step < n ? lo + step : n;   /* r[hi].end > i, or hi == n */
    return lo + 1 + first_end_after(r + lo + 1, hi - lo - 1, i);
}

int64_t bt_ranges_next_set(const bt_ranges *s, uint32_t from)
{
    uint32_t k = first_end_after(s->r, s->n, from);
    if (k == s->n)
        return -1;
    return s->r[k].start > from ? s->r[k].start : from;
}

int64_t bt_ranges_next_clear(const bt_ranges *s, uint32_t from)
{
    if (from >= s->size)
        return -1;
    uint32_t k = first_end_after(s->r, s->n, from);
    /* Ranges never touch, so the end of the range holding `from` is clear
     * unless it is the end of the universe. */
    uint32_t c = (k < s->n && s->r[k].start <= from) ? s->r[k].end : from;
    return c < s->size ? (int64_t)c : -1;
}

/* The first index >= from set in a and, in b, set (b_set) or clear.
 * Alternate: the next index of a, then the next index of b of the wanted kind
 * from there; done when that is still inside the range of a. Every round moves
 * past at least one range of a or of b. */
static inline int64_t next_in_a_and_b(const bt_ranges *a, const bt_ranges *b, uint32_t from, int b_set)
{
    uint64_t i = from;
    while (i < a->size) {
        uint32_t k = first_end_after(a->r, a->n, (uint32_t)i);
        if (k == a->n)
            return -1;
        if (a->r[k].start > i)
            i = a->r[k].start;
        int64_t c = b_set ? bt_ranges_next_set(b, (uint32_t)i) : bt_ranges_next_clear(b, (uint32_t)i);
        if (c < 0)
            return -1;
        if ((uint64_t)c < a->r[k].end)
            return c;
        i = (uint64_t)c;
    }
    return -1;
}

int64_t bt_ranges_next_diff(const bt_ranges *a, const bt_ranges *b, uint32_t from)
{
    return next_in_a_and_b(a, b, from, 0);
}

int64_t bt_ranges_next_common(const bt_ranges *a, const bt_ranges *b, uint32_t from)
{
    return next_in_a_and_b(a, b, from, 1);
}

uint32_t bt_ranges_count_range(const bt_ranges *s, uint32_t a, uint32_t b)
{
    if (a >= b)
        return 0;
    uint64_t c = 0;
    for (uint32_t k = first_end_after(s->r, s->n, a); k < s->n && s->r[k].start < b; k++) {
        uint32_t x = s->r[k].start > a ? s->r[k].start : a;
        uint32_t y = s->r[k].end < b ? s->r[k].end : b;
        c += y - x;
    }
    return (uint32_t)c;
}

bool bt_ranges_equal(const bt_ranges *a, const bt_ranges *b)
{
    return a->size == b->size && a->n == b->n && a->count == b->count
        && (a->n == 0 || memcmp(a->r, b->r, (size_t)a->n * sizeof *a->r) == 0);
}

/* ---- binary operations ------------------------------------------------- */

/* The result of a merge is written into a buffer of `bound` ranges (an upper
 * bound on its length) and installed into `out` only at the end, so `out` is
 * unchanged when memory runs out. out's own buffer is reused when it is big
 * enough, which is safe because out aliases neither input.
 *
 * The loops are branch-free on purpose: on a fragmented set every comparison
 * is a coin toss, and a mispredicted branch per range cost 3x the time. They
 * write one slot past the last kept range and advance the output length by a
 * comparison result, so the buffer needs one spare slot: bound counts it. */
/* A result keeps up to this many unused slots (8 KiB): below that, shrinking
 * would only make the next operation into the same set malloc again. */
#define MERGE_SLACK 1024u

static bt_range *merge_begin(bt_ranges *out, uint64_t bound, bool *fresh)
{
    if (bound <= out->cap) {
        *fresh = false;
        return out->r;
    }
    *fresh = true;
    return malloc((size_t)bound * sizeof(bt_range));
}

static void merge_end(bt_ranges *out, bt_range *r, uint64_t bound, bool fresh,
                      uint32_t n, uint32_t size)
{
    if (fresh) {
        free(out->r);
        out->r = r;
        out->cap = (uint32_t)bound;
    }
    uint64_t count = 0;
    for (uint32_t k = 0; k < n; k++)
        count += r[k].end - r[k].start;
    out->n = n;
    out->count = (uint32_t)count;
    out->size = size;
    if (n == 0) {
        /* An empty result owns no memory. */
        free(out->r);
        out->r = NULL;
        out->cap = 0;
    } else if (fresh && n < out->cap / 4 && out->cap - n > MERGE_SLACK) {
        /* The bound overestimated a lot: give the slack back (best effort). */
        bt_range *t = realloc(out->r, (size_t)n * sizeof *t);
        if (t) {
            out->r = t;
            out->cap = n;
        }
    }
}

int bt_ranges_union(bt_ranges *out, const bt_ranges *a, const bt_ranges *b)
{
    uint32_t na = a->n, nb = b->n;
    if (na + (uint64_t)nb == 0) {
        bt_ranges_clear_all(out);
        out->size = a->size;
        return 0;
    }
    bool fresh;
    uint64_t bound = (uint64_t)na + nb;   /* every push may start a range */
    bt_range *o = merge_begin(out, bound, &fresh);
    if (!o)
        return -1;
    /* Indices, not pointers: an empty set's array is NULL, and NULL + 0 is
     * undefined behaviour. */
    const bt_range *x = a->r, *y = b->r;
    uint32_t i = 0, j = 0, n = 0;
    /* The range being built, [cs, ce), lives in registers; n ranges before it
     * are final. Going through o[n - 1] instead put a store-to-load round trip
     * on the critical path of every step. */
    uint32_t cs, ce;
    if (nb == 0 || (na && x[0].start <= y[0].start)) {
        cs = x[0].start, ce = x[0].end;
        i = 1;
    } else {
        cs = y[0].start, ce = y[0].end;
        j = 1;
    }
    while (i < na && j < nb) {
        /* Select with a mask: written as ?: gcc emits a branch here. */
        uint32_t xs = x[i].start, ys = y[j].start;
        uint32_t tx = xs <= ys, mask = 0u - tx;
        uint32_t s0 = (xs & mask) | (ys & ~mask);
        uint32_t e0 = (x[i].end & mask) | (y[j].end & ~mask);
        i += tx;
        j += 1 - tx;
        /* Tentatively store the current range: kept only if the next one does
         * not touch it. n <= i + j - 2 < bound, so the slot exists. */
        o[n].start = cs;
        o[n].end = ce;
        uint32_t merge = s0 <= ce, mm = 0u - merge;
        n += 1 - merge;
        uint32_t me = e0 > ce ? e0 : ce;
        cs = (cs & mm) | (s0 & ~mm);
        ce = (me & mm) | (e0 & ~mm);
    }
    /* One side is exhausted: the rest of the other may touch the current
     * range at its first element, then copies. */
    const bt_range *rest = i < na ? x : y;
    uint32_t k = i < na ? i : j, kend = i < na ? na : nb;
    for (; k < kend && rest[k].start <= ce; k++)
        if (rest[k].end > ce)
            ce = rest[k].end;
    o[n].start = cs;
    o[n].end = ce;
    n++;
    if (k < kend) {
        memcpy(o + n, rest + k, (size_t)(kend - k) * sizeof *o);
        n += kend - k;
    }
    merge_end(out, o, bound, fresh, n, a->size);
    return 0;
}

/* out = x op y where op is intersection, or x minus y when `complement`: then
 * the y ranges walked are the gaps of y, [0, y0.start), [y0.end, y1.start) ...
 * [ylast.end, size), some possibly empty. Two intersected range lists give
 * ranges that never touch, so nothing needs merging. */
static inline int intersect_gen(bt_ranges *out, const bt_ranges *a, const bt_ranges *b,
                                bool complement)
{
    uint32_t na = a->n, nb = b->n, size = a->size;
    uint32_t my = complement ? nb + 1 : nb;   /* ranges walked on b's side */
    if (na == 0 || my == 0) {
        bt_ranges_clear_all(out);
        out->size = size;
        return 0;
    }
    bool fresh;
    /* Each step writes a slot and advances i or j: at most na + my steps. */
    uint64_t bound = (uint64_t)na + my;
    bt_range *o = merge_begin(out, bound, &fresh);
    if (!o)
        return -1;
    const bt_range *x = a->r, *y = b->r;
    uint32_t i = 0, j = 0, n = 0;
    while (i < na && j < my) {
        uint32_t ys, ye;
        if (complement) {
            ys = j ? y[j - 1].end : 0;
            ye = j < nb ? y[j].start : size;
        } else {
            ys = y[j].start;
            ye = y[j].end;
        }
        uint32_t lo = x[i].start > ys ? x[i].start : ys;
        uint32_t hi = x[i].end < ye ? x[i].end : ye;
        o[n].start = lo;
        o[n].end = hi;
        n += lo < hi;
        bool ax = x[i].end <= ye;
        i += ax;
        j += !ax;
    }
    merge_end(out, o, bound, fresh, n, size);
    return 0;
}

int bt_ranges_intersect(bt_ranges *out, const bt_ranges *a, const bt_ranges *b)
{
    return intersect_gen(out, a, b, false);
}

int bt_ranges_diff(bt_ranges *out, const bt_ranges *a, const bt_ranges *b)
{
    return intersect_gen(out, a, b, true);
}

/* ---- wire format -------------------------------------------------------- */

/* Import writes the positions where a bit differs from the bit before it
 * (the first bit compares with a 0 before the start). Those positions,
 * in order, are start0, end0, start1, end1...: exactly the range array read
 * as uint32_t, so no branch decides whether a position opens or closes. */
_Static_assert(sizeof(bt_range) == 2 * sizeof(uint32_t)
               && offsetof(bt_range, end) == sizeof(uint32_t),
               "bt_range must be two packed uint32_t");

/* Transitions of 64 bits whose top bit is at index `base`. prev is the bit
 * before them (0 or 1). */
static inline uint64_t transitions(uint64_t w, uint64_t prev)
{
    return w ^ ((w >> 1) | (prev << 63));
}

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    return __builtin_bswap64(w);   /* high bit first on the wire: big-endian */
}

/* Skip 32-byte blocks that are all `fill` (0x00 outside a run, 0xFF inside):
 * they have no transition. The fast path for empty and complete stretches. */
static inline size_t skip_fill(const uint8_t *bits, size_t i, size_t len, uint64_t fill)
{
    while (i + 32 <= len) {
        uint64_t w0, w1, w2, w3;
        memcpy(&w0, bits + i, 8);
        memcpy(&w1, bits + i + 8, 8);
        memcpy(&w2, bits + i + 16, 8);
        memcpy(&w3, bits + i + 24, 8);
        if ((w0 ^ fill) | (w1 ^ fill) | (w2 ^ fill) | (w3 ^ fill))
            break;
        i += 32;
    }
    return i;
}

/* One pass over the bytes, counting (t == NULL) or writing transitions. */
static size_t scan_wire(const uint8_t *bits, size_t len, uint32_t *t)
{
    size_t m = 0, i = 0;
    uint64_t prev = 0;
    while (i + 8 <= len) {
        size_t j = skip_fill(bits, i, len, prev ? UINT64_MAX : 0);
        if (j != i) {
            i = j;
            continue;
        }
        uint64_t w = load_be64(bits + i);
        uint64_t x = transitions(w, prev);
        if (t) {
            uint32_t base = (uint32_t)(i * 8);
            while (x) {
                int p = __builtin_clzll(x);
                t[m++] = base + (uint32_t)p;
                x ^= UINT64_C(0x8000000000000000) >> p;
            }
        } else {
            m += (size_t)__builtin_popcountll(x);
        }
        prev = w & 1;
        i += 8;
    }
    for (; i < len; i++) {
        uint64_t w = (uint64_t)bits[i] << 56;
        uint64_t x = transitions(w, prev) & (UINT64_C(0xFF) << 56);
        if (t) {
            while (x) {
                int p = __builtin_clzll(x);
                t[m++] = (uint32_t)(i * 8) + (uint32_t)p;
                x ^= UINT64_C(0x8000000000000000) >> p;
            }
        } else {
            m += (size_t)__builtin_popcountll(x);
        }
        prev = (w >> 56) & 1;
    }
    /* A run still open ends with the bytes; spare bits are clear, so that
     * happens only when size is a multiple of 8, and len * 8 == size. */
    if (m & 1) {
        if (t)
            t[m] = (uint32_t)(len * 8);
        m++;
    }
    return m;
}

int bt_ranges_from_wire(bt_ranges *s, const uint8_t *bits, size_t len)
{
    if (len != bt_ranges_wire_len(s))
        return -2;
    uint32_t spare = (uint32_t)(len * 8 - s->size);   /* 0..7 */
    if (spare && (bits[len - 1] & ((1u << spare) - 1)))
        return -3;
    /* Two passes: counting first allocates exactly once, reuses s's array
     * when it is big enough, and leaves s untouched if malloc fails. */
    size_t m = scan_wire(bits, len, NULL);
    uint32_t n = (uint32_t)(m / 2);
    if (n == 0) {
        bt_ranges_clear_all(s);
        return 0;
    }
    bt_range *r = s->r;
    uint32_t cap = s->cap;
    if (n > cap) {
        r = malloc((size_t)n * sizeof *r);
        if (!r)
            return -1;
        cap = n;
    }
    scan_wire(bits, len, (uint32_t *)r);
    if (r != s->r)
        free(s->r);
    s->r = r;
    s->cap = cap;
    s->n = n;
    uint64_t count = 0;
    for (uint32_t k = 0; k < n; k++)
        count += r[k].end - r[k].start;
    s->count = (uint32_t)count;
    return 0;
}

void bt_ranges_to_wire(const bt_ranges *s, uint8_t *out)
{
    size_t len = bt_ranges_wire_len(s);
    if (len)
        memset(out, 0, len);
    for (uint32_t k = 0; k < s->n; k++) {
        uint32_t a = s->r[k].start, b = s->r[k].end - 1;   /* inclusive */
        uint32_t ab = a >> 3, bb = b >> 3;
        uint8_t head = (uint8_t)(0xFFu >> (a & 7));          /* bits a..7 of its byte */
        uint8_t tail = (uint8_t)(0xFFu << (7 - (b & 7)));    /* bits 0..b of its byte */
        if (ab == bb) {
            out[ab] |= head & tail;
        } else {
            out[ab] |= head;
            if (bb > ab + 1)
                memset(out + ab + 1, 0xFF, bb - ab - 1);
            out[bb] |= tail;
        }
    }
}

bool bt_ranges_check(const bt_ranges *s)
{
    if (s->n > s->cap || (s->n && !s->r) || s->count > s->size)
        return false;
    uint64_t count = 0;
    for (uint32_t k = 0; k < s->n; k++) {
        const bt_range *r = &s->r[k];
        if (r->start >= r->end || r->end > s->size)
            return false;
        if (k + 1 < s->n && r->end >= s->r[k + 1].start)
            return false;
        count += r->end - r->start;
    }
    return count == s->count;
}
