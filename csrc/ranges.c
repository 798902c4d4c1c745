/* ranges.c: the sparse bitfield, a sorted array of disjoint, non-adjacent
 * half-open ranges (see ranges.h for the invariant).
 *
 * Modelled on CRoaring's run containers: a binary search finds the ranges an
 * operation touches, inserts merge with their neighbours, and appending past the
 * last range (the common case while a download fills in order) is O(1).
 * Every mutating function reserves the memory it needs before it changes
 * anything, so an out-of-memory return (-1) leaves the set as it was.
 */
#include "ranges.h"

#include <stdlib.h>
#include <string.h>

/* First capacity handed out: a torrent's "have" set is a handful of ranges most
 * of the time, so start small and let doubling take over. */
#define RANGES_MIN_CAP 4u

/* Index of the first range whose end is > x, or n. Branch-free lower bound:
 * the search answer always lies in [base, base + len]. */
static inline uint32_t first_end_after(const bt_range *r, uint32_t n, uint32_t x)
{
    if (n == 0)
        return 0;
    const bt_range *base = r;
    uint32_t len = n;
    while (len > 1) {
        uint32_t half = len / 2;
        base = (base[half - 1].end > x) ? base : base + half;
        len -= half;
    }
    return (uint32_t)(base - r) + (base->end <= x);
}

/* Index of the first range whose start is > x, or n. */
static inline uint32_t first_start_after(const bt_range *r, uint32_t n, uint32_t x)
{
    if (n == 0)
        return 0;
    const bt_range *base = r;
    uint32_t len = n;
    while (len > 1) {
        uint32_t half = len / 2;
        base = (base[half - 1].start > x) ? base : base + half;
        len -= half;
    }
    return (uint32_t)(base - r) + (base->start <= x);
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
    if (a >= b)
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
    if (a >= b || s->n == 0)
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
    return bt_ranges_set_range(s, i, i + 1);
}

int bt_ranges_clear(bt_ranges *s, uint32_t i)
{
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

bool bt_ranges_equal(const bt_ranges *a, const bt_ranges *b)
{
    return a->size == b->size && a->n == b->n && a->count == b->count
        && (a->n == 0 || memcmp(a->r, b->r, (size_t)a->n * sizeof *a->r) == 0);
}

/* ---- binary operations ------------------------------------------------- */

/* The result of a merge is written into a buffer of `bound` ranges (an upper
 * bound on its length) and installed into `out` only at the end, so `out` is
 * unchanged when memory runs out. out's own buffer is reused when it is big
 * enough, which is safe because out aliases neither input. */
typedef struct {
    bt_range *r;
    uint32_t n, cap, count;
    bool fresh;   /* r was malloc'ed here, not out->r */
} merge_out;

static int merge_begin(merge_out *m, bt_ranges *out, uint64_t bound)
{
    m->n = 0;
    m->count = 0;
    if (bound <= out->cap) {
        m->r = out->r;
        m->cap = out->cap;
        m->fresh = false;
        return 0;
    }
    m->r = malloc((size_t)bound * sizeof *m->r);
    if (!m->r)
        return -1;
    m->cap = (uint32_t)bound;
    m->fresh = true;
    return 0;
}

/* Append [a, b) (a < b, a >= the last end), merging with the last range when
 * they touch. */
static inline void merge_push(merge_out *m, uint32_t a, uint32_t b)
{
    if (m->n && m->r[m->n - 1].end >= a) {
        if (b > m->r[m->n - 1].end) {
            m->count += b - m->r[m->n - 1].end;
            m->r[m->n - 1].end = b;
        }
        return;
    }
    m->r[m->n].start = a;
    m->r[m->n].end = b;
    m->n++;
    m->count += b - a;
}

static void merge_end(merge_out *m, bt_ranges *out, uint32_t size)
{
    if (m->fresh) {
        free(out->r);
        out->r = m->r;
        out->cap = m->cap;
    }
    out->n = m->n;
    out->count = m->count;
    out->size = size;
    if (out->n == 0) {
        /* An empty result owns no memory. */
        free(out->r);
        out->r = NULL;
        out->cap = 0;
    } else if (m->fresh && out->n < out->cap / 2) {
        /* The bound overestimated a lot: give the slack back (best effort). */
        bt_range *r = realloc(out->r, (size_t)out->n * sizeof *r);
        if (r) {
            out->r = r;
            out->cap = out->n;
        }
    }
}

int bt_ranges_union(bt_ranges *out, const bt_ranges *a, const bt_ranges *b)
{
    merge_out m;
    if (merge_begin(&m, out, (uint64_t)a->n + b->n))
        return -1;
    /* Indices, not pointers: an empty set's array is NULL, and NULL + 0 is
     * undefined behaviour. */
    const bt_range *x = a->r, *y = b->r;
    uint32_t i = 0, j = 0, na = a->n, nb = b->n;
    while (i < na && j < nb) {
        if (x[i].start <= y[j].start) {
            merge_push(&m, x[i].start, x[i].end);
            i++;
        } else {
            merge_push(&m, y[j].start, y[j].end);
            j++;
        }
    }
    for (; i < na; i++)
        merge_push(&m, x[i].start, x[i].end);
    for (; j < nb; j++)
        merge_push(&m, y[j].start, y[j].end);
    merge_end(&m, out, a->size);
    return 0;
}

int bt_ranges_intersect(bt_ranges *out, const bt_ranges *a, const bt_ranges *b)
{
    merge_out m;
    /* Each output range ends where an input range ends: at most na + nb. */
    if (merge_begin(&m, out, (uint64_t)a->n + b->n))
        return -1;
    const bt_range *x = a->r, *y = b->r;
    uint32_t i = 0, j = 0, na = a->n, nb = b->n;
    while (i < na && j < nb) {
        uint32_t lo = x[i].start > y[j].start ? x[i].start : y[j].start;
        uint32_t hi = x[i].end < y[j].end ? x[i].end : y[j].end;
        if (lo < hi)
            merge_push(&m, lo, hi);
        if (x[i].end < y[j].end)
            i++;
        else
            j++;
    }
    merge_end(&m, out, a->size);
    return 0;
}

int bt_ranges_diff(bt_ranges *out, const bt_ranges *a, const bt_ranges *b)
{
    merge_out m;
    /* Each b range splits at most one a range in two: at most na + nb. */
    if (merge_begin(&m, out, (uint64_t)a->n + b->n))
        return -1;
    const bt_range *x = a->r, *y = b->r;
    uint32_t j = 0, na = a->n, nb = b->n;
    for (uint32_t i = 0; i < na; i++) {
        uint32_t cur = x[i].start, end = x[i].end;
        while (j < nb && y[j].end <= cur)
            j++;
        /* Cut every b range that starts inside what is left of x[i]; the last
         * one may reach into x[i + 1], so j stays on it. */
        for (uint32_t k = j; k < nb && y[k].start < end; k++) {
            if (y[k].start > cur)
                merge_push(&m, cur, y[k].start);
            if (y[k].end > cur)
                cur = y[k].end;
            if (cur >= end)
                break;
        }
        if (cur < end)
            merge_push(&m, cur, end);
    }
    merge_end(&m, out, a->size);
    return 0;
}

/* ---- wire format -------------------------------------------------------- */

/* A growing array for import; installed into the set only on success. */
typedef struct {
    bt_range *r;
    uint32_t n, cap, count;
} build;

static int build_push(build *bd, uint32_t a, uint32_t b)
{
    if (bd->n == bd->cap) {
        uint64_t cap = bd->cap ? (uint64_t)bd->cap * 2 : RANGES_MIN_CAP;
        bt_range *r = realloc(bd->r, (size_t)cap * sizeof *r);
        if (!r)
            return -1;
        bd->r = r;
        bd->cap = (uint32_t)cap;
    }
    bd->r[bd->n].start = a;
    bd->r[bd->n].end = b;
    bd->n++;
    bd->count += b - a;
    return 0;
}

/* Walk the transitions (bit differs from the previous bit) in the bits of w
 * selected by mask (the top 8 for a single byte), MSB first; `base` is the index of w's top bit. Words that are all
 * ones inside a run or all zeros outside one have no transition and cost one
 * test: that is the fast path for 0x00 and 0xFF bytes. */
static inline int scan_word(build *bd, uint64_t w, uint64_t mask, uint32_t base,
                            uint32_t *st, uint32_t *start)
{
    uint64_t t = (w ^ ((w >> 1) | ((uint64_t)*st << 63))) & mask;
    while (t) {
        int p = __builtin_clzll(t);
        uint32_t idx = base + (uint32_t)p;
        if (*st) {
            if (build_push(bd, *start, idx))
                return -1;
        } else {
            *start = idx;
        }
        *st ^= 1;
        t &= ~(UINT64_C(1) << (63 - p));
    }
    return 0;
}

int bt_ranges_from_wire(bt_ranges *s, const uint8_t *bits, size_t len)
{
    if (len != bt_ranges_wire_len(s))
        return -2;
    uint32_t spare = (uint32_t)(len * 8 - s->size);   /* 0..7 */
    if (spare && (bits[len - 1] & ((1u << spare) - 1)))
        return -3;
    build bd = { NULL, 0, 0, 0 };
    uint32_t st = 0, start = 0;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, bits + i, 8);
        w = __builtin_bswap64(w);   /* high bit first on the wire: big-endian */
        if (scan_word(&bd, w, UINT64_MAX, (uint32_t)(i * 8), &st, &start))
            goto oom;
    }
    for (; i < len; i++)
        if (scan_word(&bd, (uint64_t)bits[i] << 56, UINT64_C(0xFF) << 56, (uint32_t)(i * 8), &st, &start))
            goto oom;
    /* A run still open ends at the last byte's end; spare bits are clear, so
     * that is only reached when size is a multiple of 8 and equals len * 8. */
    if (st && build_push(&bd, start, (uint32_t)(len * 8)))
        goto oom;
    free(s->r);
    s->r = bd.r;
    s->n = bd.n;
    s->cap = bd.cap;
    s->count = bd.count;
    return 0;
oom:
    free(bd.r);
    return -1;
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
