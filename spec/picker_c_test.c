/* picker_c_test.c: engine/picker.c against a naive model (seeded random
 * operations), plus bt_ranges_find_from against bt_ranges_find. Built and run by
 * spec/picker_spec.lua: picker_c_test SEED ROUNDS.
 *
 * The model keeps avail[] and a fresh flag per piece; the order a picker
 * iteration must give is the model's fresh pieces the peer has, sorted by
 * (availability, index rotated by rot) ascending, or by availability descending
 * for "most common". Pieces are removed as they are returned (as a pick starts
 * them), which must not change what comes after. */
#include <stdint.h>
#include <string.h>

#include "core/ranges.h"
#include "engine/picker.h"

#include "c_test.h"

static uint64_t rng;
static uint32_t rnd(uint32_t n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return n ? (uint32_t)((rng >> 33) % n) : 0;
}

typedef struct model {
    uint32_t n, rot;
    uint32_t *avail;
    uint8_t *fresh;
} model;

static model *sort_m;
static int by_rare(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (sort_m->avail[x] != sort_m->avail[y])
        return sort_m->avail[x] < sort_m->avail[y] ? -1 : 1;
    uint32_t rx = (x + sort_m->n - sort_m->rot) % sort_m->n, ry = (y + sort_m->n - sort_m->rot) % sort_m->n;
    return rx < ry ? -1 : rx > ry;
}
static int by_common(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (sort_m->avail[x] != sort_m->avail[y])
        return sort_m->avail[x] > sort_m->avail[y] ? -1 : 1;
    return by_rare(a, b);
}

static void random_set(bt_ranges *s, uint32_t n)
{
    bt_ranges_clear_all(s);
    uint32_t kind = rnd(4);
    if (kind == 0) {
        bt_ranges_set_all(s);
        return;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (kind == 1 ? rnd(2) : kind == 2 ? rnd(10) == 0 : (i / 7) % 2)
            bt_ranges_set(s, i);
    }
}

static void check_iteration(bt_picker *pk, model *m, const bt_ranges *have, bool counted, bool common, bool take)
{
    /* half the time the peer's set is given as a bitmap, as the engine does for fragmented sets */
    bool use_bits = have && rnd(2);
    uint64_t *bits = NULL;
    if (use_bits) {
        bits = calloc((m->n + 63) / 64, 8);
        for (uint32_t i = 0; i < m->n; i++)
            if (bt_ranges_has(have, i))
                bits[i / 64] |= 1ull << (i % 64);
    }
    uint32_t *want = malloc((m->n + 1) * sizeof *want), nw = 0;
    for (uint32_t i = 0; i < m->n; i++)
        if (m->fresh[i] && (!have || bt_ranges_has(have, i)))
            want[nw++] = i;
    sort_m = m;
    qsort(want, nw, sizeof *want, common ? by_common : by_rare);
    bt_pick_iter it;
    bt_picker_iter(pk, &it, common, counted);
    uint32_t k = 0;
    int64_t x;
    while ((x = bt_picker_next(pk, &it, use_bits ? NULL : have, use_bits ? bits : NULL)) >= 0) {
        CHECK(k < nw, "iteration gave more pieces than the model (%lld)", (long long)x);
        if (k >= nw)
            break;
        CHECK((uint32_t)x == want[k], "iteration %u: got piece %lld, model says %u (avail %u vs %u)", k,
              (long long)x, want[k], m->avail[x], m->avail[want[k]]);
        if ((uint32_t)x != want[k])
            break;
        k++;
        if (take && rnd(3)) {   /* started by the pick: leaves the picker (as the engine does: by
                                   the level the iteration gave it from, or the general way) */
            if (rnd(2))
                bt_picker_take(pk, (uint32_t)x, it.level);
            else
                bt_picker_remove(pk, (uint32_t)x);
            m->fresh[x] = 0;
        }
    }
    CHECK(x >= 0 || k == nw, "iteration stopped after %u of %u pieces", k, nw);
    free(want);
    free(bits);
}

static void run(uint64_t seed, uint32_t rounds)
{
    rng = seed;
    uint32_t n = 1 + rnd(rnd(2) ? 300 : 5000);
    model m = { n, rnd(n), calloc(n, 4), calloc(n, 1) };
    uint32_t *extra = calloc(n, 4);   /* avail from single incs, beyond the peers' sets */
    bt_picker pk;
    CHECK(bt_picker_init(&pk, n, m.rot) == 0, "init");
    bt_ranges peers[8];
    bool in[8] = { 0 };
    for (int p = 0; p < 8; p++)
        bt_ranges_init(&peers[p], n);
    for (uint32_t r = 0; r < rounds; r++) {
        uint32_t op = rnd(10), i = rnd(n);
        switch (op) {
        case 0: case 1:
            CHECK(bt_picker_add(&pk, i) == 0, "add");
            m.fresh[i] = 1;
            break;
        case 2:
            bt_picker_remove(&pk, i);
            m.fresh[i] = 0;
            break;
        case 3:
            CHECK(bt_picker_inc(&pk, i) == 0, "inc");
            m.avail[i]++;
            extra[i]++;
            break;
        case 4:   /* only what a single inc added: a peer's set stays counted */
            if (extra[i]) {
                bt_picker_dec(&pk, i);
                m.avail[i]--;
                extra[i]--;
            }
            break;
        case 5: case 6: {   /* a peer arrives with a set, or leaves */
            int p = (int)rnd(8);
            if (!in[p]) {
                random_set(&peers[p], n);
                CHECK(bt_picker_add_set(&pk, &peers[p], +1) == 0, "add_set");
                for (uint32_t k = 0; k < n; k++)
                    m.avail[k] += bt_ranges_has(&peers[p], k);
            } else {
                bt_picker_add_set(&pk, &peers[p], -1);
                for (uint32_t k = 0; k < n; k++)
                    m.avail[k] -= bt_ranges_has(&peers[p], k);
            }
            in[p] = !in[p];
            break;
        }
        default: {
            int p = (int)rnd(9);
            /* a peer that is not counted (left) still has its set: iterate without the shortcut */
            check_iteration(&pk, &m, p == 8 ? NULL : &peers[p], p < 8 && in[p], rnd(2), rnd(2));
            break;
        }
        }
        for (uint32_t k = 0; k < 3; k++) {
            uint32_t j = rnd(n);
            CHECK(bt_picker_fresh(&pk, j) == (m.fresh[j] != 0), "fresh(%u)", j);
            CHECK(pk.avail[j] == m.avail[j], "avail(%u) %u vs %u", j, pk.avail[j], m.avail[j]);
        }
        if (r % 64 == 0)
            CHECK(bt_picker_check(&pk), "invariant after round %u", r);
        if (failures > 20)
            break;
    }
    CHECK(bt_picker_check(&pk), "invariant at the end");
    uint32_t fresh = 0;
    for (uint32_t k = 0; k < n; k++)
        fresh += m.fresh[k];
    CHECK(pk.count == fresh, "count %u vs %u", pk.count, fresh);
    for (int p = 0; p < 8; p++)
        bt_ranges_free(&peers[p]);
    bt_picker_free(&pk);
    free(m.avail);
    free(m.fresh);
    free(extra);
}

static void check_find_from(uint64_t seed)
{
    rng = seed;
    bt_ranges s;
    bt_ranges_init(&s, 10000);
    random_set(&s, 10000);
    for (int k = 0; k < 20000; k++) {
        uint32_t i = rnd(10001), hint = rnd(s.n + 2);
        CHECK(bt_ranges_find_from(&s, i, hint) == bt_ranges_find(&s, i), "find_from(%u, hint %u)", i, hint);
    }
    bt_ranges_free(&s);
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    uint32_t rounds = argc > 2 ? (uint32_t)strtoul(argv[2], NULL, 10) : 2000;
    for (uint64_t k = 0; k < 12 && failures == 0; k++) {
        run(seed * 1000 + k, rounds);
        check_find_from(seed * 1000 + k);
    }
    return c_test_finish();
}
