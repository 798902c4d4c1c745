/* bitset.h: a set of indices [0, n) as a bitmap with summary tiers: tier 0 has one
 * bit per index, tier k one bit per word of tier k-1 (set when that word is not
 * zero). Setting, clearing and testing an index cost a few word operations, and so
 * does finding the next set index at or after a point, wherever it is: the
 * search climbs while the rest of a word is empty, then descends along the lowest
 * set bits (a 64-ary tree, 4 tiers for 16 M indices).
 *
 * The companion of core/ranges.h: ranges suit sets made of runs (a peer's pieces,
 * what we have), this suits sets scattered at random that change one index at a
 * time (the picker's availability levels, the pieces with a free block). Memory:
 * n/8 bytes and 1/64 of that for the tiers, allocated at init. Pure C.
 * Invariant (bt_bitset_check): each tier's bits match the words below; count is
 * the number of set bits of tier 0.
 */
#ifndef BT_BITSET_H
#define BT_BITSET_H

#include <stdbool.h>
#include <stdint.h>

#include "core/ranges.h"

#define BT_BITSET_TIERS 4   /* 64^4 = 16 M indices: codec/metainfo.h's piece limit */

typedef struct bt_bitset {
    uint32_t n;                        /* indices [0, n) */
    uint32_t count;                    /* set indices */
    uint32_t ntiers;
    uint32_t words[BT_BITSET_TIERS];   /* words per tier */
    uint64_t *tier[BT_BITSET_TIERS];   /* one allocation, tier[0] first */
} bt_bitset;

/* 0, or -1 out of memory (then the set is empty and owns nothing). n <= 2^24. */
int  bt_bitset_init(bt_bitset *b, uint32_t n);
void bt_bitset_free(bt_bitset *b);
/* Indices must be < n (the caller checks). No-ops when nothing changes. */
void bt_bitset_set(bt_bitset *b, uint32_t i);
void bt_bitset_clear(bt_bitset *b, uint32_t i);
static inline bool bt_bitset_has(const bt_bitset *b, uint32_t i)
{
    return i < b->n && ((b->tier[0][i >> 6] >> (i & 63)) & 1);
}
/* First set index in [from, limit), or -1. */
int64_t bt_bitset_next(const bt_bitset *b, uint32_t from, uint32_t limit);
/* First index in [from, limit) set here and in `have` (a peer's pieces), or -1.
 * *hint carries the position in have's ranges from one call to the next (start it
 * at 0): a scan whose `from` only grows then pays O(log distance) per step. */
int64_t bt_bitset_next_in(const bt_bitset *b, uint32_t from, uint32_t limit, const bt_ranges *have,
                          uint32_t *hint);
/* First index in [from, limit) set here and in `mask`, a plain bitmap of at least n
 * bits (bit i of word i/64): 64 indices per step. */
int64_t bt_bitset_next_and(const bt_bitset *b, uint32_t from, uint32_t limit, const uint64_t *mask);
uint64_t bt_bitset_memory(const bt_bitset *b);
bool bt_bitset_check(const bt_bitset *b);

#endif
