/* ranges_ref.c: bt ranges (csrc/ranges.c) against two plain bitmaps, measured
 * in the same run on the same data: a byte map (one byte per piece) and a bit
 * array (one bit per piece in 64-bit words, the representation of libtorrent's
 * and Transmission's bitfields).
 *
 * Scenarios on N = 1,000,000 pieces:
 *   fragmented: each piece set with probability 1/3 (about 296,000 ranges)
 *   nearly complete: every piece set but 300 random holes (301 ranges)
 * Output, one line per measurement, parsed by bench/ranges_bench.lua:
 *   OPS <scenario> <op> <impl> <ops per second>
 *   MEM <scenario> <impl> <bytes>
 * set and clear run 1,024 random operations per fresh copy of the scenario.
 * Usage: ranges_ref [seconds per measurement, default 0.04]
 */
#include "core/ranges.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define N 1000000   /* plain int: the preprocessor tests N % 64 */
#define HOLES 300u           /* holes of the nearly complete scenario */
#define POOL (1u << 16)      /* random indices, drawn before timing */
#define BATCH 256u           /* operations between two clock reads */

static double min_time = 0.04;
static volatile uint64_t sink;   /* keeps results alive against the optimizer */

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)        /* xorshift64*: fixed seed, same data every run */
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void report(const char *sc, const char *op, const char *impl, double ops)
{
    printf("OPS %s %s %s %.0f\n", sc, op, impl, ops);
    fflush(stdout);
}

/* Run BODY (which uses index k) in batches until min_time has passed. */
#define MEASURE(sc, op, impl, SETUP, BODY)                                   \
    do {                                                                     \
        SETUP;                                                               \
        uint64_t done_ = 0;                                                  \
        double t0_ = now(), el_;                                             \
        do {                                                                 \
            for (uint32_t b_ = 0; b_ < BATCH; b_++, done_++) {               \
                uint32_t k = (uint32_t)(done_ & (POOL - 1));                 \
                (void)k;                                                     \
                BODY;                                                        \
            }                                                                \
        } while ((el_ = now() - t0_) < min_time);                            \
        report(sc, op, impl, (double)done_ / el_);                           \
    } while (0)

/* For set and clear: runs of MUT_RUN operations, each on a fresh copy of the
 * scenario made outside the timed part, so the set measured stays the
 * scenario (40,000 random clears would turn "nearly complete" into
 * "fragmented"). */
#define MUT_RUN 1024u
#define MUT_ROUNDS 300u   /* bounds the untimed copying for the fast bitmaps */
#define MEASURE_MUT(sc, op, impl, RESET, BODY)                               \
    do {                                                                     \
        uint64_t done_ = 0;                                                  \
        double el_ = 0;                                                      \
        uint32_t rounds_ = 0;                                                \
        do {                                                                 \
            RESET;                                                           \
            rounds_++;                                                       \
            uint32_t off_ = (uint32_t)(rnd() % POOL);                        \
            double t0_ = now();                                              \
            for (uint32_t m_ = 0; m_ < MUT_RUN; m_++, done_++) {             \
                uint32_t k = (off_ + m_) & (POOL - 1);                       \
                BODY;                                                        \
            }                                                                \
            el_ += now() - t0_;                                              \
        } while (el_ < min_time && rounds_ < MUT_ROUNDS);                    \
        report(sc, op, impl, (double)done_ / el_);                           \
    } while (0)

/* Same, for operations over the whole set (count, union, wire), one per call. */
#define MEASURE_BIG(sc, op, impl, BODY)                                      \
    do {                                                                     \
        uint64_t done_ = 0;                                                  \
        double t0_ = now(), el_;                                             \
        do { BODY; done_++; } while ((el_ = now() - t0_) < min_time);        \
        report(sc, op, impl, (double)done_ / el_);                           \
    } while (0)

/* ---- the bit array: bit i is bit (63 - i % 64) of word i / 64, so a word
 * byte-swapped is 8 wire bytes. ---- */
#define WORDS ((N + 63) / 64)
static inline void ba_set(uint64_t *w, uint32_t i) { w[i >> 6] |= UINT64_C(1) << (63 - (i & 63)); }
static inline void ba_clear(uint64_t *w, uint32_t i) { w[i >> 6] &= ~(UINT64_C(1) << (63 - (i & 63))); }
static inline int ba_has(const uint64_t *w, uint32_t i) { return (w[i >> 6] >> (63 - (i & 63))) & 1; }

static int64_t ba_next_clear(const uint64_t *w, uint32_t from)
{
    if (from >= N)
        return -1;
    uint32_t k = from >> 6;
    uint64_t x = ~w[k] & (UINT64_MAX >> (from & 63));
    while (!x) {
        if (++k == WORDS)
            return -1;
        x = ~w[k];
    }
    uint32_t i = k * 64 + (uint32_t)__builtin_clzll(x);
    return i < N ? (int64_t)i : -1;
}

static uint64_t ba_count(const uint64_t *w)
{
    uint64_t c = 0;
    for (uint32_t k = 0; k < WORDS; k++)
        c += (uint64_t)__builtin_popcountll(w[k]);
    return c;
}

static void ba_to_wire(const uint64_t *w, uint8_t *out)
{
    uint32_t full = N / 64;
    for (uint32_t k = 0; k < full; k++) {
        uint64_t be = __builtin_bswap64(w[k]);
        memcpy(out + (size_t)k * 8, &be, 8);
    }
#if N % 64
    uint64_t be = __builtin_bswap64(w[full]);
    memcpy(out + (size_t)full * 8, &be, (N + 7) / 8 - (size_t)full * 8);
#endif
}

static void ba_from_wire(uint64_t *w, const uint8_t *in)
{
    uint32_t full = N / 64;
    for (uint32_t k = 0; k < full; k++) {
        uint64_t be;
        memcpy(&be, in + (size_t)k * 8, 8);
        w[k] = __builtin_bswap64(be);
    }
#if N % 64
    uint64_t be = 0;
    memcpy(&be, in + (size_t)full * 8, (N + 7) / 8 - (size_t)full * 8);
    w[full] = __builtin_bswap64(be);
#endif
}

/* ---- the byte map ---- */
static int64_t bm_next_clear(const uint8_t *m, uint32_t from)
{
    const uint8_t *p = memchr(m + from, 0, N - from);
    return p ? p - m : -1;
}

static uint64_t bm_count(const uint8_t *m)
{
    uint64_t c = 0;
    for (uint32_t i = 0; i < N; i++)
        c += m[i];
    return c;
}

static void bm_to_wire(const uint8_t *m, uint8_t *out)
{
    memset(out, 0, (N + 7) / 8);
    for (uint32_t i = 0; i < N; i++)
        out[i >> 3] |= (uint8_t)(m[i] << (7 - (i & 7)));
}

static void bm_from_wire(uint8_t *m, const uint8_t *in)
{
    for (uint32_t i = 0; i < N; i++)
        m[i] = (in[i >> 3] >> (7 - (i & 7))) & 1;
}

/* One scenario: the same set in the three representations, plus a second
 * set `o` (another draw of the same kind) for the binary operations. */
typedef struct {
    const char *name;
    uint8_t *bm, *obm;
    uint64_t *ba, *oba;
    bt_ranges rs, ors;
} scenario;

static void fill(scenario *sc, bool fragmented)
{
    for (int which = 0; which < 2; which++) {
        uint8_t *bm = which ? sc->obm : sc->bm;
        if (fragmented) {
            for (uint32_t i = 0; i < N; i++)
                bm[i] = rnd() % 3 == 0;
        } else {
            memset(bm, 1, N);
            for (uint32_t h = 0; h < HOLES; h++)
                bm[rnd() % N] = 0;
        }
        uint64_t *ba = which ? sc->oba : sc->ba;
        bt_ranges *rs = which ? &sc->ors : &sc->rs;
        memset(ba, 0, WORDS * 8);
        bt_ranges_init(rs, N);
        for (uint32_t i = 0; i < N; i++)
            if (bm[i]) {
                ba_set(ba, i);
                if (bt_ranges_set(rs, i)) {
                    fprintf(stderr, "ranges_ref: out of memory\n");
                    exit(1);
                }
            }
    }
}

static void run(scenario *sc, const uint32_t *pool)
{
    const char *s = sc->name;
    static uint8_t wbm[N], wire[(N + 7) / 8];
    static uint64_t wba[WORDS], oba[WORDS];
    bt_ranges w, out;
    bt_ranges_init(&w, N);
    bt_ranges_init(&out, N);

    printf("MEM %s ranges %zu\n", s, (size_t)sc->rs.cap * sizeof(bt_range) + sizeof(bt_ranges));
    printf("MEM %s bitarray %zu\n", s, (size_t)WORDS * 8);
    printf("MEM %s bytemap %zu\n", s, (size_t)N);
    printf("INFO %s ranges=%u count=%u\n", s, sc->rs.n, sc->rs.count);

    /* set / clear at random indices, each on a fresh copy of the scenario. */
    MEASURE_MUT(s, "set", "ranges", bt_ranges_copy(&w, &sc->rs), sink += (uint64_t)bt_ranges_set(&w, pool[k]));
    MEASURE_MUT(s, "set", "bitarray", memcpy(wba, sc->ba, sizeof wba), ba_set(wba, pool[k]));
    MEASURE_MUT(s, "set", "bytemap", memcpy(wbm, sc->bm, N), wbm[pool[k]] = 1);
    MEASURE_MUT(s, "clear", "ranges", bt_ranges_copy(&w, &sc->rs), sink += (uint64_t)bt_ranges_clear(&w, pool[k]));
    MEASURE_MUT(s, "clear", "bitarray", memcpy(wba, sc->ba, sizeof wba), ba_clear(wba, pool[k]));
    MEASURE_MUT(s, "clear", "bytemap", memcpy(wbm, sc->bm, N), wbm[pool[k]] = 0);
    sink += wba[pool[0] >> 6] + wbm[pool[0]];

    MEASURE(s, "has", "ranges", (void)0, sink += bt_ranges_has(&sc->rs, pool[k]));
    MEASURE(s, "has", "bitarray", (void)0, sink += (uint64_t)ba_has(sc->ba, pool[k]));
    MEASURE(s, "has", "bytemap", (void)0, sink += sc->bm[pool[k]]);

    MEASURE(s, "next_clear", "ranges", (void)0, sink += (uint64_t)bt_ranges_next_clear(&sc->rs, pool[k]));
    MEASURE(s, "next_clear", "bitarray", (void)0, sink += (uint64_t)ba_next_clear(sc->ba, pool[k]));
    MEASURE(s, "next_clear", "bytemap", (void)0, sink += (uint64_t)bm_next_clear(sc->bm, pool[k]));

    MEASURE_BIG(s, "count", "ranges", sink += bt_ranges_count(&sc->rs));
    MEASURE_BIG(s, "count", "bitarray", sink += ba_count(sc->ba));
    MEASURE_BIG(s, "count", "bytemap", sink += bm_count(sc->bm));

    MEASURE_BIG(s, "union", "ranges", sink += (uint64_t)bt_ranges_union(&out, &sc->rs, &sc->ors));
    MEASURE_BIG(s, "union", "bitarray", for (uint32_t i = 0; i < WORDS; i++) oba[i] = sc->ba[i] | sc->oba[i]; sink += oba[pool[done_ & (POOL - 1)] >> 6]);
    MEASURE_BIG(s, "union", "bytemap", for (uint32_t i = 0; i < N; i++) wbm[i] = sc->bm[i] | sc->obm[i]; sink += wbm[pool[done_ & (POOL - 1)]]);
    MEASURE_BIG(s, "intersect", "ranges", sink += (uint64_t)bt_ranges_intersect(&out, &sc->rs, &sc->ors));
    MEASURE_BIG(s, "intersect", "bitarray", for (uint32_t i = 0; i < WORDS; i++) oba[i] = sc->ba[i] & sc->oba[i]; sink += oba[pool[done_ & (POOL - 1)] >> 6]);
    MEASURE_BIG(s, "intersect", "bytemap", for (uint32_t i = 0; i < N; i++) wbm[i] = sc->bm[i] & sc->obm[i]; sink += wbm[pool[done_ & (POOL - 1)]]);

    MEASURE_BIG(s, "to_wire", "ranges", (bt_ranges_to_wire(&sc->rs, wire), sink += wire[pool[done_ & (POOL - 1)] >> 3]));
    MEASURE_BIG(s, "to_wire", "bitarray", (ba_to_wire(sc->ba, wire), sink += wire[pool[done_ & (POOL - 1)] >> 3]));
    MEASURE_BIG(s, "to_wire", "bytemap", (bm_to_wire(sc->bm, wire), sink += wire[pool[done_ & (POOL - 1)] >> 3]));
    /* wire now holds the scenario's bitfield: import it back. */
    MEASURE_BIG(s, "from_wire", "ranges", sink += (uint64_t)bt_ranges_from_wire(&w, wire, sizeof wire));
    MEASURE_BIG(s, "from_wire", "bitarray", (ba_from_wire(wba, wire), sink += wba[pool[done_ & (POOL - 1)] >> 6]));
    MEASURE_BIG(s, "from_wire", "bytemap", (bm_from_wire(wbm, wire), sink += wbm[pool[done_ & (POOL - 1)]]));
    if (!bt_ranges_equal(&w, &sc->rs)) {
        fprintf(stderr, "ranges_ref: wire round trip differs\n");
        exit(1);
    }
    bt_ranges_free(&w);
    bt_ranges_free(&out);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        min_time = atof(argv[1]);
    if (!(min_time > 0 && min_time < 10))
        min_time = 0.04;
    static uint32_t pool[POOL];
    for (uint32_t k = 0; k < POOL; k++)
        pool[k] = (uint32_t)(rnd() % N);
    const char *names[] = { "fragmented", "nearly_complete" };
    for (int f = 0; f < 2; f++) {
        scenario sc = { .name = names[f] };
        sc.bm = malloc(N);
        sc.obm = malloc(N);
        sc.ba = malloc(WORDS * 8);
        sc.oba = malloc(WORDS * 8);
        if (!sc.bm || !sc.obm || !sc.ba || !sc.oba) {
            fprintf(stderr, "ranges_ref: out of memory\n");
            return 1;
        }
        fill(&sc, f == 0);
        run(&sc, pool);
        bt_ranges_free(&sc.rs);
        bt_ranges_free(&sc.ors);
        free(sc.bm); free(sc.obm); free(sc.ba); free(sc.oba);
    }
    printf("SINK %llu\n", (unsigned long long)(sink & 1));
    return 0;
}
