/* picker.c: availability levels as 64-ary bitmap trees (picker.h). */
#include "engine/picker.h"

#include <stdlib.h>
#include <string.h>

static inline uint32_t ctz64(uint64_t w) { return (uint32_t)__builtin_ctzll(w); }
static inline uint32_t popcount64(uint64_t w) { return (uint32_t)__builtin_popcountll(w); }

/* ---- one level: a bitmap of n bits with summary tiers ---- */

static void level_free(bt_level *l)
{
    free(l->tier[0]);   /* one allocation holds every tier */
    memset(l, 0, sizeof *l);
}

static int level_alloc(const bt_picker *pk, bt_level *l)
{
    size_t total = 0;
    for (uint32_t t = 0; t < pk->ntiers; t++)
        total += pk->words[t];
    uint64_t *w = calloc(total ? total : 1, sizeof *w);
    if (!w)
        return -1;
    memset(l, 0, sizeof *l);
    for (uint32_t t = 0; t < pk->ntiers; t++) {
        l->tier[t] = w;
        w += pk->words[t];
    }
    return 0;
}

static inline bool level_bit(const bt_level *l, uint32_t i)
{
    return (l->tier[0][i >> 6] >> (i & 63)) & 1;
}

static void level_set(const bt_picker *pk, bt_level *l, uint32_t i)
{
    l->count++;
    for (uint32_t t = 0; t < pk->ntiers; t++) {
        uint64_t *w = &l->tier[t][i >> 6];
        bool was_empty = *w == 0;
        *w |= 1ull << (i & 63);
        if (!was_empty)
            return;   /* the tiers above already know this word is in use */
        i >>= 6;
    }
}

static void level_clear(const bt_picker *pk, bt_level *l, uint32_t i)
{
    l->count--;
    for (uint32_t t = 0; t < pk->ntiers; t++) {
        uint64_t *w = &l->tier[t][i >> 6];
        *w &= ~(1ull << (i & 63));
        if (*w != 0)
            return;
        i >>= 6;
    }
}

/* First set bit >= from and < limit, or -1. Climbs while the rest of a word is
 * empty, then descends along the lowest set bits. */
static int64_t level_next(const bt_picker *pk, const bt_level *l, uint32_t from, uint32_t limit)
{
    if (from >= limit || l->count == 0)
        return -1;
    uint32_t i = from, t = 0;
    for (;;) {
        uint32_t wi = i >> 6;
        if (wi >= pk->words[t])
            return -1;
        uint64_t w = l->tier[t][wi] & (~0ull << (i & 63));
        if (w) {
            i = (wi << 6) | ctz64(w);
            break;
        }
        if (++t == pk->ntiers)
            return -1;
        i = wi + 1;   /* the next word of tier t-1, as a bit of tier t */
    }
    while (t > 0) {
        t--;
        i = (i << 6) | ctz64(l->tier[t][i]);
    }
    return i < limit ? (int64_t)i : -1;
}

/* ---- the picker ---- */

int bt_picker_init(bt_picker *pk, uint32_t npieces, uint32_t rot)
{
    memset(pk, 0, sizeof *pk);
    pk->n = npieces;
    pk->rot = npieces ? rot % npieces : 0;
    uint32_t bits = npieces ? npieces : 1;
    do {
        pk->words[pk->ntiers++] = (bits + 63) / 64;
        bits = (bits + 63) / 64;
    } while (bits > 1 && pk->ntiers < BT_PICKER_TIERS);
    pk->avail = calloc(npieces ? npieces : 1, sizeof *pk->avail);
    return pk->avail ? 0 : -1;
}

void bt_picker_free(bt_picker *pk)
{
    for (uint32_t a = 0; a < pk->nlv; a++)
        level_free(&pk->lv[a]);
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
        bt_level *nl = realloc(pk->lv, cap * sizeof *nl);
        if (!nl)
            return -1;
        pk->lv = nl;
        pk->lvcap = cap;
    }
    uint32_t got = pk->nlv;
    for (; got < want; got++) {
        if (level_alloc(pk, &pk->lv[got]) != 0) {
            while (got > pk->nlv)
                level_free(&pk->lv[--got]);
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
        level_free(&pk->lv[--pk->nlv]);
}

bool bt_picker_fresh(const bt_picker *pk, uint32_t i)
{
    if (i >= pk->n)
        return false;
    uint32_t a = pk->avail[i];
    return a < pk->nlv && level_bit(&pk->lv[a], i);
}

int bt_picker_add(bt_picker *pk, uint32_t i)
{
    if (i >= pk->n || bt_picker_fresh(pk, i))
        return 0;
    if (levels_reserve(pk, pk->avail[i] + 1) != 0)
        return -1;
    level_set(pk, &pk->lv[pk->avail[i]], i);
    pk->count++;
    return 0;
}

void bt_picker_remove(bt_picker *pk, uint32_t i)
{
    if (!bt_picker_fresh(pk, i))
        return;
    level_clear(pk, &pk->lv[pk->avail[i]], i);
    pk->count--;
    levels_trim(pk);
}

int bt_picker_inc(bt_picker *pk, uint32_t i)
{
    if (i >= pk->n)
        return 0;
    uint32_t a = pk->avail[i];
    if (a < pk->nlv && level_bit(&pk->lv[a], i)) {
        if (levels_reserve(pk, a + 2) != 0)
            return -1;
        level_clear(pk, &pk->lv[a], i);
        level_set(pk, &pk->lv[a + 1], i);
    }
    pk->avail[i] = a + 1;
    return 0;
}

void bt_picker_dec(bt_picker *pk, uint32_t i)
{
    if (i >= pk->n || pk->avail[i] == 0)
        return;
    uint32_t a = pk->avail[i];
    if (a < pk->nlv && level_bit(&pk->lv[a], i)) {
        level_clear(pk, &pk->lv[a], i);
        level_set(pk, &pk->lv[a - 1], i);   /* a - 1 < nlv: never allocates */
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
static int64_t scan_level(const bt_picker *pk, bt_pick_iter *it, const bt_ranges *have)
{
    const bt_level *l = &pk->lv[it->level];
    /* a counted peer has none of the pieces at availability 0: those are the seeds' only */
    if (l->count == 0 || (have && it->counted && it->level == 0))
        return -1;
    while (it->phase < 2) {
        uint32_t limit = it->phase == 0 ? pk->n : pk->rot;
        int64_t x = level_next(pk, l, it->pos, limit);
        if (x >= 0 && have) {
            /* the peer's first piece at or after x: x itself, or a jump over those it lacks */
            uint32_t k = bt_ranges_find_from(have, (uint32_t)x, it->hint);
            it->hint = k;
            int64_t y = k == have->n ? -1 : have->r[k].start > x ? have->r[k].start : x;
            if (y != x) {
                it->pos = y < 0 || y >= limit ? limit : (uint32_t)y;
                continue;
            }
        }
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

int64_t bt_picker_next(const bt_picker *pk, bt_pick_iter *it, const bt_ranges *have)
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
        int64_t x = scan_level(pk, it, have);
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
    uint64_t words = 0;
    for (uint32_t t = 0; t < pk->ntiers; t++)
        words += pk->words[t];
    return (uint64_t)pk->n * sizeof *pk->avail + (uint64_t)pk->nlv * words * 8 +
           (uint64_t)pk->lvcap * sizeof *pk->lv;
}

bool bt_picker_check(const bt_picker *pk)
{
    uint32_t fresh = 0;
    for (uint32_t a = 0; a < pk->nlv; a++) {
        const bt_level *l = &pk->lv[a];
        uint32_t c = 0;
        for (uint32_t w = 0; w < pk->words[0]; w++)
            c += popcount64(l->tier[0][w]);
        if (c != l->count)
            return false;
        for (uint32_t t = 1; t < pk->ntiers; t++)
            for (uint32_t w = 0; w < pk->words[t - 1]; w++)
                if (((l->tier[t][w >> 6] >> (w & 63)) & 1) != (l->tier[t - 1][w] != 0))
                    return false;
        for (uint32_t i = 0; i < pk->n; i++)
            if (level_bit(l, i) && pk->avail[i] != a)
                return false;
        fresh += c;
    }
    if (pk->nlv > 0 && pk->lv[pk->nlv - 1].count == 0)
        return false;
    return fresh == pk->count;
}
