/* ranges_fuzz.c: differential fuzzer for ranges.c against a byte-per-piece model.
 *
 * The input is a program: byte 0-1 pick the universe size (small, so the
 * fuzzer hits edges), then each 5-byte record is an operation with two
 * 16-bit operands. After every operation the set is compared exactly with the
 * model (invariant, count, and its ranges against the model's runs), the
 * out-of-range refusals are checked, and the queries are probed where the
 * operation may have moved an edge; binary operations compare their results
 * exactly with the model. At the end of the program every query is checked at
 * the positions where it can go wrong (edges(); up to FUZZ_END_POSITIONS of
 * them), the wire export and import round trip, and next_diff/next_common are
 * checked the same way.
 *
 * Why not check every query from every position after each operation (as
 * this file once did): that is O(n log n) to O(n^2) calls into ranges.c per
 * operation, and ran at 300-900 inputs/s, nearly all of it re-checking
 * queries on states no new code had reached. The exact comparison is O(n)
 * with no call into ranges.c, so a wrong mutation is still caught at the
 * operation that made it, before a later clear_all can hide it.
 * Built by `make fuzz` with libFuzzer; with -DRANGES_FUZZ_MAIN it is a plain
 * program running seeded random programs (quick check without clang):
 *   cc -DRANGES_FUZZ_MAIN -Icsrc fuzz/ranges_fuzz.c csrc/core/ranges.c
 */
#include "core/ranges.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small universes make collisions between ranges likely; 600 still crosses
 * several 64-bit words of the wire import. */
#define FUZZ_MAX_SIZE 600u
/* Operations per input. A wrong merge shows within a few operations of the
 * state that provokes it; longer programs cost time per run and add no new
 * states the mutator could not reach by splicing short ones. Inputs are
 * 2 + 5 * FUZZ_MAX_OPS bytes at most: fuzz/ranges_fuzz.options passes that
 * as -max_len so the mutator does not grow tails that are ignored. */
#define FUZZ_MAX_OPS 64u
/* The end of a program checks the queries at every position where they can
 * go wrong (edges()) up to this many; a fragmented set of 600 has about 600,
 * and checking them all cost most of the run. */
#define FUZZ_END_POSITIONS 96u
/* verify() checks count_range from each edge to this many edges further. */
#define FUZZ_COUNT_WINDOW 4u
/* A set of n indices has at most n/2 + 1 ranges. */
#define FUZZ_MAX_RUNS (FUZZ_MAX_SIZE / 2 + 1)

/* The model's loops are not instrumented for coverage: their counters and
 * comparisons would only reward inputs for the size of the universe, not for
 * reaching new code in ranges.c, and cost most of a run. noinline, since the
 * instrumentation runs after inlining and would reach them in the caller.
 * gcc (the quick mode) has no such instrumentation. */
#if defined(__clang__)
#define MODEL __attribute__((no_sanitize("coverage"), noinline))
#else
#define MODEL
#endif

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "ranges_fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

typedef struct { bt_ranges s; uint8_t m[FUZZ_MAX_SIZE]; } pair;

/* ---- the model -------------------------------------------------------- */

MODEL static uint32_t model_count(const uint8_t *m, uint32_t a, uint32_t b)
{
    uint32_t c = 0;
    for (uint32_t i = a; i < b; i++)
        c += m[i];
    return c;
}

/* First i >= from with m[i] == want, or -1. */
MODEL static int64_t model_next(const uint8_t *m, uint32_t n, uint32_t from, uint8_t want)
{
    for (uint32_t i = from; i < n; i++)
        if (m[i] == want)
            return i;
    return -1;
}

/* First i >= from set in m and, in q, set (q_set) or clear; or -1. */
MODEL static int64_t model_next2(const uint8_t *m, const uint8_t *q, uint32_t n, uint32_t from, int q_set)
{
    for (uint32_t i = from; i < n; i++)
        if (m[i] && q[i] == q_set)
            return i;
    return -1;
}

/* For every i in [0, n]: next_diff and next_common of m and q from i. */
MODEL static void model_next2_table(const uint8_t *m, const uint8_t *q, uint32_t n, int64_t *nd, int64_t *nb)
{
    nd[n] = nb[n] = -1;
    for (uint32_t i = n; i-- > 0;) {
        nd[i] = m[i] && !q[i] ? i : nd[i + 1];
        nb[i] = m[i] && q[i] ? i : nb[i + 1];
    }
}

/* out = m op q: union (0), intersection (1), difference (2). */
MODEL static void model_op(int op, const uint8_t *m, const uint8_t *q, uint32_t n, uint8_t *out)
{
    for (uint32_t i = 0; i < n; i++)
        out[i] = op == 0 ? (m[i] | q[i]) : op == 1 ? (m[i] & q[i]) : (m[i] & !q[i]);
}

/* The first range of s whose end is > i, or s->n: what bt_ranges_find answers. */
MODEL static uint32_t model_find(const bt_ranges *s, uint32_t i)
{
    uint32_t k = 0;
    while (k < s->n && s->r[k].end <= i)
        k++;
    return k;
}

/* The model's maximal runs of set indices: the only valid ranges array for it. */
MODEL static uint32_t model_runs(const uint8_t *m, uint32_t n, bt_range *out)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < n;) {
        if (!m[i]) { i++; continue; }
        uint32_t j = i;
        while (j < n && m[j])
            j++;
        out[k].start = i;
        out[k].end = j;
        k++;
        i = j;
    }
    return k;
}

/* ---- checks ----------------------------------------------------------- */

/* The set is exactly the model: invariant, count and every range. O(n). */
static void same(const bt_ranges *s, const uint8_t *m)
{
    bt_range want[FUZZ_MAX_RUNS];
    CHECK(bt_ranges_check(s));
    uint32_t k = model_runs(m, s->size, want);
    CHECK(s->n == k);
    CHECK(k == 0 || memcmp(s->r, want, k * sizeof *want) == 0);
    CHECK(s->count == model_count(m, 0, s->size));
}

/* The queries at one position i (any value: i may be past the universe). */
static void probe(const pair *p, uint32_t i)
{
    const bt_ranges *s = &p->s;
    uint32_t n = s->size;
    int in = i < n;
    CHECK(bt_ranges_has(s, i) == (in && p->m[i]));
    CHECK(bt_ranges_next_set(s, i) == (in ? model_next(p->m, n, i, 1) : -1));
    CHECK(bt_ranges_next_clear(s, i) == (in ? model_next(p->m, n, i, 0) : -1));
    /* find, straight and from hints before, at and after the answer (s is
     * already known to hold exactly the model's runs). */
    uint32_t k = model_find(s, i);
    CHECK(bt_ranges_find(s, i) == k);
    CHECK(bt_ranges_find_from(s, i, k / 2) == k);   /* gallops forward */
    CHECK(bt_ranges_find_from(s, i, k) == k);
    CHECK(bt_ranges_find_from(s, i, k + 1) == k);   /* searches before the hint */
    CHECK(bt_ranges_find_from(s, i, UINT32_MAX) == k);
}

/* Probes where an operation on [a, b) and x, y may have moved an edge. */
static void probes(const pair *p, uint32_t a, uint32_t b, uint32_t x, uint32_t y)
{
    uint32_t n = p->s.size;
    probe(p, a);
    probe(p, b);
    probe(p, a ? a - 1 : n + 1);
    probe(p, b ? b - 1 : n + 1);
    probe(p, x % (n + 2));
    CHECK(bt_ranges_count_range(&p->s, a, b) == model_count(p->m, a, b));
    /* A short count near a random place: a long one costs O(ranges). */
    uint32_t c = y % (n + 1), d = c + (x & 15) < n ? c + (x & 15) : n;
    CHECK(bt_ranges_count_range(&p->s, c, d) == model_count(p->m, c, d));
}

/* Positions where a query's answer or path can change: 0, n, and either side
 * of each edge of m's runs (and of m2's, if given). Between two of them every
 * query takes the same path through ranges.c and its answer moves with the
 * position, so checking there is checking everywhere; a small universe is
 * checked at every position anyway. Returns how many, in increasing order. */
MODEL static uint32_t edges(const uint8_t *m, const uint8_t *m2, uint32_t n, uint32_t *pos)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i <= n; i++) {
        /* A run starts or ends at t when m[t - 1] != m[t] (outside is clear). */
        int at = 0;
        for (uint32_t t = i; t <= i + 1 && !at; t++) {
            uint8_t l = t > 0 && t - 1 < n ? m[t - 1] : 0, r = t < n ? m[t] : 0;
            at = l != r;
            if (m2 && !at) {
                l = t > 0 && t - 1 < n ? m2[t - 1] : 0;
                r = t < n ? m2[t] : 0;
                at = l != r;
            }
        }
        if (n <= 64 || i == 0 || i + 1 >= n || at)
            pos[k++] = i;
    }
    return k;
}

/* Keep at most FUZZ_END_POSITIONS of the k positions: the first and last
 * thirds of that many, and a third spread over the middle from an offset the
 * input picks (salt), so that different inputs check different ones. */
MODEL static uint32_t thin(uint32_t *pos, uint32_t k, uint32_t salt)
{
    const uint32_t t = FUZZ_END_POSITIONS / 3;
    if (k <= FUZZ_END_POSITIONS)
        return k;
    uint32_t mid = k - 2 * t, stride = mid / t, o = t;
    for (uint32_t j = 0; j < t; j++)
        pos[o++] = pos[t + j * stride + salt % stride];
    for (uint32_t j = 0; j < t; j++)
        pos[o++] = pos[k - t + j];
    return o;
}

/* For every i in [0, n]: the first set and clear index >= i (or -1), and the
 * number of set indices below i. */
MODEL static void model_tables(const uint8_t *m, uint32_t n, int64_t *ns, int64_t *nc, uint32_t *pre)
{
    ns[n] = nc[n] = -1;
    for (uint32_t i = n; i-- > 0;) {
        ns[i] = m[i] ? i : ns[i + 1];
        nc[i] = m[i] ? nc[i + 1] : i;
    }
    pre[0] = 0;
    for (uint32_t i = 0; i < n; i++)
        pre[i + 1] = pre[i] + m[i];
}

/* Every query at the positions where it can go wrong (edges(), at most
 * FUZZ_END_POSITIONS of them) and the wire round trip: once a program, for
 * each set. */
static void verify(const pair *p, uint32_t salt)
{
    const bt_ranges *s = &p->s;
    uint32_t n = s->size;
    same(s, p->m);
    static uint32_t pos[FUZZ_MAX_SIZE + 1], pre[FUZZ_MAX_SIZE + 1];
    static int64_t ns[FUZZ_MAX_SIZE + 1], nc[FUZZ_MAX_SIZE + 1];
    uint32_t np = thin(pos, edges(p->m, NULL, n, pos), salt);
    model_tables(p->m, n, ns, nc, pre);
    CHECK(pre[n] == s->count);
    for (uint32_t k = 0; k < np; k++) {
        uint32_t i = pos[k];
        CHECK(bt_ranges_has(s, i) == (i < n && p->m[i]));
        CHECK(bt_ranges_next_set(s, i) == ns[i]);
        CHECK(bt_ranges_next_clear(s, i) == nc[i]);
    }
    /* count_range from each of those positions to the next few, and from 0
     * and up to n at a few of them. Every pair would be O(np^2) calls of
     * O(ranges) each; a count over many ranges sums the same steps as counts
     * over few, so a wrong step shows in a short window too. */
    for (uint32_t k = 0; k < np; k++) {
        uint32_t i = pos[k];
        for (uint32_t j = k; j < np && j <= k + FUZZ_COUNT_WINDOW; j++)
            CHECK(bt_ranges_count_range(s, i, pos[j]) == pre[pos[j]] - pre[i]);
        if (k % (np / 8 + 1) == 0 || k + 1 == np) {
            CHECK(bt_ranges_count_range(s, 0, i) == pre[i]);
            CHECK(bt_ranges_count_range(s, i, n) == pre[n] - pre[i]);
        }
    }
    uint8_t wire[(FUZZ_MAX_SIZE + 7) / 8 + 1];
    size_t len = bt_ranges_wire_len(s);
    CHECK(len == (n + 7) / 8);
    wire[len] = 0xA5;   /* export must not write past its length */
    bt_ranges_to_wire(s, wire);
    CHECK(wire[len] == 0xA5);
    for (uint32_t i = 0; i < len * 8; i++) {
        int bit = (wire[i / 8] >> (7 - i % 8)) & 1;
        CHECK(bit == (i < n ? p->m[i] : 0));
    }
    bt_ranges t;
    bt_ranges_init(&t, n);
    CHECK(bt_ranges_from_wire(&t, wire, len) == 0);
    CHECK(bt_ranges_equal(&t, s));
    bt_ranges_free(&t);
}

static void apply(pair *p, int op, uint32_t x, uint32_t y)
{
    uint32_t n = p->s.size;
    if (n == 0 && op < 4)
        op = 6;
    uint32_t a = x % (n + 1), b = y % (n + 1);
    if (a > b) { uint32_t t = a; a = b; b = t; }
    switch (op) {
    case 0:
        CHECK(bt_ranges_set(&p->s, x % n) == 0);
        p->m[x % n] = 1;
        break;
    case 1:
        CHECK(bt_ranges_clear(&p->s, x % n) == 0);
        p->m[x % n] = 0;
        break;
    case 2:
        CHECK(bt_ranges_set_range(&p->s, a, b) == 0);
        memset(p->m + a, 1, b - a);
        break;
    case 3:
        CHECK(bt_ranges_clear_range(&p->s, a, b) == 0);
        memset(p->m + a, 0, b - a);
        break;
    case 4:
        CHECK(bt_ranges_set_all(&p->s) == 0);
        memset(p->m, 1, n);
        break;
    case 5:
        bt_ranges_clear_all(&p->s);
        memset(p->m, 0, n);
        break;
    default:
        break;
    }
    /* Out-of-range arguments are refused with -2 and change nothing (the
     * caller compares with the model right after). */
    CHECK(bt_ranges_set(&p->s, n + (x & 3)) == -2);
    CHECK(bt_ranges_clear(&p->s, UINT32_MAX - (y & 3)) == -2);
    CHECK(bt_ranges_set_range(&p->s, a, n + 1 + (y & 7)) == -2);
    if (a < b)
        CHECK(bt_ranges_clear_range(&p->s, b, a) == -2);
}

/* Import arbitrary bytes; a wrong spare bit must be refused intact. */
static void import(pair *p, uint32_t x, uint32_t y)
{
    uint32_t n = p->s.size;
    uint8_t wire[(FUZZ_MAX_SIZE + 7) / 8];
    size_t wl = bt_ranges_wire_len(&p->s);
    for (size_t k = 0; k < wl; k++)
        wire[k] = (uint8_t)(x * 131 + y * 7 + k * (y | 1));
    bt_ranges before;
    bt_ranges_init(&before, 0);
    CHECK(bt_ranges_copy(&before, &p->s) == 0);
    int rc = bt_ranges_from_wire(&p->s, wire, wl);
    uint32_t spare = (uint32_t)(wl * 8 - n);
    if (spare && (wire[wl - 1] & ((1u << spare) - 1))) {
        CHECK(rc == -3);
        CHECK(bt_ranges_equal(&before, &p->s));
    } else {
        CHECK(rc == 0);
        for (uint32_t k = 0; k < n; k++)
            p->m[k] = (wire[k / 8] >> (7 - k % 8)) & 1;
    }
    if (wl)
        CHECK(bt_ranges_from_wire(&p->s, wire, wl - 1) == -2);
    CHECK(bt_ranges_from_wire(&p->s, wire, wl + 1) == -2);
    bt_ranges_free(&before);
}

/* next_diff / next_common against the model at i. */
static void probe2(const pair *p, const pair *q, uint32_t i)
{
    uint32_t n = p->s.size;
    CHECK(bt_ranges_next_diff(&p->s, &q->s, i) == (i < n ? model_next2(p->m, q->m, n, i, 0) : -1));
    CHECK(bt_ranges_next_common(&p->s, &q->s, i) == (i < n ? model_next2(p->m, q->m, n, i, 1) : -1));
}

/* Union, intersection and difference of p and q, each compared exactly with
 * the model and probed. With `full` (the end of a program), next_diff and
 * next_common at every edge of either set; otherwise (after each operation
 * 7) at the positions x and y point to. */
static void binops(const pair *p, const pair *q, uint32_t x, uint32_t y, int full)
{
    uint32_t n = p->s.size;
    if (full) {
        /* next_diff / next_common at every edge of either set, computed backwards. */
        static uint32_t pos[FUZZ_MAX_SIZE + 1];
        static int64_t nd[FUZZ_MAX_SIZE + 1], nb[FUZZ_MAX_SIZE + 1];
        uint32_t np = thin(pos, edges(p->m, q->m, n, pos), x);
        model_next2_table(p->m, q->m, n, nd, nb);
        for (uint32_t k = 0; k < np; k++) {
            CHECK(bt_ranges_next_diff(&p->s, &q->s, pos[k]) == nd[pos[k]]);
            CHECK(bt_ranges_next_common(&p->s, &q->s, pos[k]) == nb[pos[k]]);
        }
    } else {
        probe2(p, q, x % (n + 2));
        probe2(p, q, y % (n + 2));
        probe2(p, q, 0);
        probe2(q, p, x % (n + 2));
        probe2(q, p, 0);
    }
    bt_ranges o;
    pair want;
    for (int op = 0; op < 3; op++) {
        bt_ranges_init(&o, 0);
        /* Start from a non-empty out to check it is replaced, not merged. */
        if (op == 1)
            CHECK(bt_ranges_copy(&o, &q->s) == 0);
        int rc = op == 0 ? bt_ranges_union(&o, &p->s, &q->s)
               : op == 1 ? bt_ranges_intersect(&o, &p->s, &q->s)
                         : bt_ranges_diff(&o, &p->s, &q->s);
        CHECK(rc == 0);
        CHECK(o.size == n);
        want.s = o;
        model_op(op, p->m, q->m, n, want.m);
        same(&o, want.m);
        /* The queries on a result are the queries on any set (checked in
         * full on p and q): probed here. */
        probe(&want, x % (n + 2));
        probe(&want, y % (n + 2));
        bt_ranges_free(&o);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 2)
        return 0;
    uint32_t n = ((uint32_t)data[0] << 8 | data[1]) % (FUZZ_MAX_SIZE + 1);
    pair *ps = calloc(2, sizeof *ps);
    CHECK(ps);
    bt_ranges_init(&ps[0].s, n);
    bt_ranges_init(&ps[1].s, n);
    if (len > 2 + 5 * FUZZ_MAX_OPS)
        len = 2 + 5 * FUZZ_MAX_OPS;
    for (size_t i = 2; i + 5 <= len; i += 5) {
        const uint8_t *d = data + i;
        pair *p = &ps[d[0] >> 7];
        uint32_t x = (uint32_t)d[1] << 8 | d[2], y = (uint32_t)d[3] << 8 | d[4];
        int op = d[0] & 7;
        if (op == 7) {
            binops(&ps[0], &ps[1], x, y, 0);
            CHECK(bt_ranges_equal(&ps[0].s, &ps[1].s) == (memcmp(ps[0].m, ps[1].m, n) == 0));
            continue;
        }
        if (op == 6)
            import(p, x, y);
        else
            apply(p, op, x, y);
        same(&p->s, p->m);
        uint32_t a = x % (n + 1), b = y % (n + 1);
        if (a > b) { uint32_t t = a; a = b; b = t; }
        probes(p, a, b, x, y);
    }
    /* Any value that differs between inputs will do as the salt. */
    uint32_t salt = (uint32_t)len * 2654435761u ^ data[len - 1];
    verify(&ps[0], salt);
    verify(&ps[1], salt >> 8);
    binops(&ps[0], &ps[1], salt >> 16, 0, 1);
    bt_ranges_free(&ps[0].s);
    bt_ranges_free(&ps[1].s);
    free(ps);
    return 0;
}

#ifdef RANGES_FUZZ_MAIN
int main(int argc, char **argv)
{
    unsigned runs = argc > 1 ? (unsigned)atoi(argv[1]) : 20000;
    srand(12345);
    uint8_t buf[2 + 5 * FUZZ_MAX_OPS];
    for (unsigned r = 0; r < runs; r++) {
        size_t len = 2 + 5 * (size_t)(rand() % (FUZZ_MAX_OPS + 1));
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        /* Mostly tiny universes, where every edge case lives. */
        if (r % 3 == 0) buf[0] = 0, buf[1] = (uint8_t)(rand() % 20);
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("ranges_fuzz: %u random programs ok\n", runs);
    return 0;
}
#endif
