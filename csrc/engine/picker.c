/* picker.c: availability levels as 64-ary bitmap trees (picker.h). */
#include "engine/picker.h"

#include "core/mem.h"

#include <stdlib.h>
#include <string.h>

/* ---- the picker ---- */

int bt_picker_init(bt_picker *pk, uint32_t npieces, uint32_t rot)
{
    memset(pk, 0, sizeof *pk);
    pk->n = npieces;
    pk->rot = npieces ? rot % npieces : 0;
    pk->avail = calloc(npieces ? npieces : 1, sizeof *pk->avail);
    if (!pk->avail)
        return -1;
    bt_mem_huge(pk->avail, (size_t)npieces * sizeof *pk->avail);   /* read at random by picks (core/mem.h) */
    return 0;
}

void bt_picker_free(bt_picker *pk)
{
    for (uint32_t a = 0; a < pk->nlv; a++)
        bt_bitset_free(&pk->lv[a]);
    free(pk->lv);
    free(pk->avail);
    memset(pk, 0, sizeof *pk);
}

/* Levels [0, want) all exist afterwards; 0 or -1 (nothing changed). */
static int levels_reserve(bt_picker *pk, uint32_t want)
{
    if (want <= pk->nlv)
        return 0;
    if (want > pk->lvcap) {
        uint32_t cap = pk->lvcap ? pk->lvcap : 8;
        while (cap < want)
            cap *= 2;
        bt_bitset *nl = realloc(pk->lv, cap * sizeof *nl);
        if (!nl)
            return -1;
        pk->lv = nl;
        pk->lvcap = cap;
    }
    uint32_t got = pk->nlv;
    for (; got < want; got++) {
        if (bt_bitset_init(&pk->lv[got], pk->n) != 0) {
            while (got > pk->nlv)
                bt_bitset_free(&pk->lv[--got]);
            return -1;
        }
    }
    pk->nlv = want;
    return 0;
}

/* Free the empty levels at the top: levels above the highest fresh availability. */
static void levels_trim(bt_picker *pk)
{
    while (pk->nlv > 0 && pk->lv[pk->nlv - 1].count == 0)
        bt_bitset_free(&pk->lv[--pk->nlv]);
}

bool bt_picker_fresh(const bt_picker *pk, uint32_t i)
{
    if (i >= pk->n)
        return false;
    uint32_t a = pk->avail[i];
    return a < pk->nlv && bt_bitset_has(&pk->lv[a], i);
}

int bt_picker_add(bt_picker *pk, uint32_t i)
{
    if (i >= pk->n || bt_picker_fresh(pk, i))
        return 0;
    if (levels_reserve(pk, pk->avail[i] + 1) != 0)
        return -1;
    bt_bitset_set(&pk->lv[pk->avail[i]], i);
    pk->count++;
    return 0;
}

void bt_picker_remove(bt_picker *pk, uint32_t i)
{
    if (!bt_picker_fresh(pk, i))
        return;
    bt_bitset_clear(&pk->lv[pk->avail[i]], i);
    pk->count--;
    levels_trim(pk);
}

void bt_picker_take(bt_picker *pk, uint32_t i, uint32_t level)
{
    if (level >= pk->nlv || !bt_bitset_has(&pk->lv[level], i)) {
        bt_picker_remove(pk, i);   /* not where the iteration said: the general way */
        return;
    }
    bt_bitset_clear(&pk->lv[level], i);
    pk->count--;
    levels_trim(pk);
}

int bt_picker_inc(bt_picker *pk, uint32_t i)
{
    if (i >= pk->n)
        return 0;
    uint32_t a = pk->avail[i];
    if (a < pk->nlv && bt_bitset_has(&pk->lv[a], i)) {
        if (levels_reserve(pk, a + 2) != 0)
            return -1;
        bt_bitset_clear(&pk->lv[a], i);
        bt_bitset_set(&pk->lv[a + 1], i);
    }
    pk->avail[i] = a + 1;
    return 0;
}

void bt_picker_dec(bt_picker *pk, uint32_t i)
{
    if (i >= pk->n || pk->avail[i] == 0)
        return;
    uint32_t a = pk->avail[i];
    if (a < pk->nlv && bt_bitset_has(&pk->lv[a], i)) {
        bt_bitset_clear(&pk->lv[a], i);
        bt_bitset_set(&pk->lv[a - 1], i);   /* a - 1 < nlv: never allocates */
        pk->avail[i] = a - 1;
        levels_trim(pk);
        return;
    }
    pk->avail[i] = a - 1;
}

int bt_picker_add_set(bt_picker *pk, const bt_ranges *have, int delta)
{
    for (uint32_t r = 0; r < have->n; r++) {
        for (uint32_t k = have->r[r].start; k < have->r[r].end; k++) {
            if (delta < 0) {
                bt_picker_dec(pk, k);
            } else if (bt_picker_inc(pk, k) != 0) {
                /* undo [start of the set, k) so that nothing changed */
                for (uint32_t q = 0; q <= r; q++) {
                    uint32_t end = q == r ? k : have->r[q].end;
                    for (uint32_t j = have->r[q].start; j < end; j++)
                        bt_picker_dec(pk, j);
                }
                return -1;
            }
        }
    }
    return 0;
}

/* ---- iteration ---- */

static void level_start(const bt_picker *pk, bt_pick_iter *it)
{
    it->phase = 0;
    it->pos = pk->rot;
    it->hint = 0;
}

void bt_picker_iter(const bt_picker *pk, bt_pick_iter *it, bool most_common, bool counted)
{
    memset(it, 0, sizeof *it);
    it->common = most_common;
    it->counted = counted;
    it->done = pk->nlv == 0;
    it->level = most_common && pk->nlv ? pk->nlv - 1 : 0;
    level_start(pk, it);
}

/* The next piece of the current level the peer has, in [rot, n) then [0, rot). */
static int64_t scan_level(const bt_picker *pk, bt_pick_iter *it, const bt_ranges *have, const uint64_t *bits)
{
    const bt_bitset *l = &pk->lv[it->level];
    /* a counted peer has none of the pieces at availability 0: those are the seeds' only */
    if (l->count == 0 || ((have || bits) && it->counted && it->level == 0))
        return -1;
    while (it->phase < 2) {
        uint32_t limit = it->phase == 0 ? pk->n : pk->rot;
        int64_t x = bits ? bt_bitset_next_and(l, it->pos, limit, bits)
                  : have ? bt_bitset_next_in(l, it->pos, limit, have, &it->hint)
                         : bt_bitset_next(l, it->pos, limit);
        if (x >= 0) {
            it->pos = (uint32_t)x + 1;
            return x;
        }
        it->phase = it->phase == 0 && pk->rot > 0 ? 1 : 2;
        it->pos = 0;
        it->hint = 0;
    }
    return -1;
}

int64_t bt_picker_next(const bt_picker *pk, bt_pick_iter *it, const bt_ranges *have, const uint64_t *bits)
{
    while (!it->done) {
        if (it->level >= pk->nlv) {
            /* levels at the top were emptied and freed meanwhile */
            if (!it->common || pk->nlv == 0) {
                it->done = true;
                break;
            }
            it->level = pk->nlv - 1;
            level_start(pk, it);
        }
        int64_t x = scan_level(pk, it, have, bits);
        if (x >= 0)
            return x;
        if (it->common ? it->level == 0 : it->level + 1 >= pk->nlv) {
            it->done = true;
            break;
        }
        it->level += it->common ? -1u : 1u;
        level_start(pk, it);
    }
    return -1;
}

uint64_t bt_picker_memory(const bt_picker *pk)
{
    uint64_t n = (uint64_t)pk->n * sizeof *pk->avail + (uint64_t)pk->lvcap * sizeof *pk->lv;
    for (uint32_t a = 0; a < pk->nlv; a++)
        n += bt_bitset_memory(&pk->lv[a]);
    return n;
}

bool bt_picker_check(const bt_picker *pk)
{
    uint32_t fresh = 0;
    for (uint32_t a = 0; a < pk->nlv; a++) {
        const bt_bitset *l = &pk->lv[a];
        if (!bt_bitset_check(l))
            return false;
        for (uint32_t i = 0; i < pk->n; i++)
            if (bt_bitset_has(l, i) && pk->avail[i] != a)
                return false;
        fresh += l->count;
    }
    if (pk->nlv > 0 && pk->lv[pk->nlv - 1].count == 0)
        return false;
    return fresh == pk->count;
}
