/* bitset.c: see bitset.h. */
#include "core/bitset.h"

#include <stdlib.h>
#include <string.h>

static inline uint32_t ctz64(uint64_t w) { return (uint32_t)__builtin_ctzll(w); }

int bt_bitset_init(bt_bitset *b, uint32_t n)
{
    memset(b, 0, sizeof *b);
    b->n = n;
    uint32_t bits = n ? n : 1;
    size_t total = 0;
    do {
        b->words[b->ntiers] = (bits + 63) / 64;
        total += b->words[b->ntiers++];
        bits = (bits + 63) / 64;
    } while (bits > 1 && b->ntiers < BT_BITSET_TIERS);
    uint64_t *w = calloc(total, sizeof *w);
    if (!w) {
        memset(b, 0, sizeof *b);
        return -1;
    }
    for (uint32_t t = 0; t < b->ntiers; t++) {
        b->tier[t] = w;
        w += b->words[t];
    }
    return 0;
}

void bt_bitset_free(bt_bitset *b)
{
    free(b->tier[0]);
    memset(b, 0, sizeof *b);
}

void bt_bitset_set(bt_bitset *b, uint32_t i)
{
    if (bt_bitset_has(b, i) || i >= b->n)
        return;
    b->count++;
    for (uint32_t t = 0; t < b->ntiers; t++) {
        uint64_t *w = &b->tier[t][i >> 6];
        bool was_empty = *w == 0;
        *w |= 1ull << (i & 63);
        if (!was_empty)
            return;   /* the tiers above already know this word is in use */
        i >>= 6;
    }
}

void bt_bitset_clear(bt_bitset *b, uint32_t i)
{
    if (!bt_bitset_has(b, i))
        return;
    b->count--;
    for (uint32_t t = 0; t < b->ntiers; t++) {
        uint64_t *w = &b->tier[t][i >> 6];
        *w &= ~(1ull << (i & 63));
        if (*w != 0)
            return;
        i >>= 6;
    }
}

int64_t bt_bitset_next(const bt_bitset *b, uint32_t from, uint32_t limit)
{
    if (limit > b->n)
        limit = b->n;
    if (from >= limit || b->count == 0)
        return -1;
    uint32_t i = from, t = 0;
    for (;;) {
        uint32_t wi = i >> 6;
        if (wi >= b->words[t])
            return -1;
        uint64_t w = b->tier[t][wi] & (~0ull << (i & 63));
        if (w) {
            i = (wi << 6) | ctz64(w);
            break;
        }
        if (++t == b->ntiers)
            return -1;
        i = wi + 1;   /* the next word of tier t-1, as a bit of tier t */
    }
    while (t > 0) {
        t--;
        i = (i << 6) | ctz64(b->tier[t][i]);
    }
    return i < limit ? (int64_t)i : -1;
}

int64_t bt_bitset_next_in(const bt_bitset *b, uint32_t from, uint32_t limit, const bt_ranges *have,
                          uint32_t *hint)
{
    uint32_t pos = from;
    for (;;) {
        int64_t x = bt_bitset_next(b, pos, limit);
        if (x < 0)
            return -1;
        /* the peer's first index at or after x: x itself, or a jump over those it lacks */
        uint32_t k = bt_ranges_find_from(have, (uint32_t)x, *hint);
        *hint = k;
        if (k == have->n)
            return -1;
        if (have->r[k].start <= x)
            return x;
        pos = have->r[k].start;
    }
}

int64_t bt_bitset_next_and(const bt_bitset *b, uint32_t from, uint32_t limit, const uint64_t *mask)
{
    for (;;) {
        int64_t x = bt_bitset_next(b, from, limit);
        if (x < 0)
            return -1;
        uint32_t wi = (uint32_t)x >> 6;
        uint64_t w = b->tier[0][wi] & mask[wi] & (~0ull << (x & 63));
        if (w) {
            uint32_t r = (wi << 6) | ctz64(w);
            return r < limit ? (int64_t)r : -1;
        }
        if ((uint64_t)(wi + 1) * 64 >= limit)
            return -1;
        from = (wi + 1) * 64;   /* nothing of both in this word: the next one */
    }
}

uint64_t bt_bitset_memory(const bt_bitset *b)
{
    uint64_t w = 0;
    for (uint32_t t = 0; t < b->ntiers; t++)
        w += b->words[t];
    return w * 8;
}

bool bt_bitset_check(const bt_bitset *b)
{
    uint32_t c = 0;
    for (uint32_t w = 0; w < b->words[0]; w++)
        c += (uint32_t)__builtin_popcountll(b->tier[0][w]);
    if (c != b->count)
        return false;
    for (uint32_t t = 1; t < b->ntiers; t++)
        for (uint32_t w = 0; w < b->words[t - 1]; w++)
            if (((b->tier[t][w >> 6] >> (w & 63)) & 1) != (b->tier[t - 1][w] != 0))
                return false;
    return true;
}
