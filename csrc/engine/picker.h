/* picker.h: the pieces a torrent may still start, ordered by availability, kept up
 * to date by events so that "the rarest pieces this peer has" costs O(log n + k)
 * for k pieces instead of a pass over the pieces.
 *
 * State: avail[i] counts the connected peers that have piece i, seeds excluded
 * (a seed has everything: it is counted once in nseeds, so a seed arriving or
 * leaving costs O(1)). The *fresh* pieces (wanted, not had, not started: the ones
 * an iterator may offer) are kept in levels: level a holds the fresh pieces with
 * avail a, as a core/bitset.h (a bitmap with summary tiers), so moving a piece
 * from one level to the next and finding the next fresh piece at or after an
 * index are each a few word operations. Levels 0 .. nlv-1 all have their bitmap (so taking a piece down a
 * level never allocates, and a peer leaving cannot fail); nlv grows when a fresh
 * piece reaches a new availability and shrinks when the top levels empty. Memory:
 * n/8 bytes (plus 1/64 of that for the tiers) per level, and levels are at most
 * the highest availability of a fresh piece plus one, so at most the number of
 * connected non-seed peers plus one.
 *
 * Order: rarest first (lowest avail), ties in index order from `rot` (a start per
 * torrent: clients spread over different pieces while one client still writes
 * mostly in order), wrapping around. The "most common" order takes the levels
 * from the highest down, the same index order inside each.
 *
 * Invariant (bt_picker_check): a piece is set in exactly the level avail[i] if it
 * is fresh, in none otherwise; each level's count and summary tiers match its bits;
 * count is the number of fresh pieces. Pure C over core/ranges: no I/O.
 */
#ifndef BT_PICKER_H
#define BT_PICKER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/bitset.h"
#include "core/ranges.h"

typedef struct bt_picker {
    uint32_t n;             /* pieces */
    uint32_t rot;           /* tie-break start, < n (0 when n == 0) */
    uint32_t *avail;        /* per piece, seeds excluded */
    uint32_t nseeds;
    uint32_t count;         /* fresh pieces */
    bt_bitset *lv;          /* lv[a] for a < nlv: the fresh pieces with avail a */
    uint32_t nlv, lvcap;
} bt_picker;

/* 0, or -1 out of memory. No piece is fresh yet. */
int  bt_picker_init(bt_picker *pk, uint32_t npieces, uint32_t rot);
void bt_picker_free(bt_picker *pk);

/* Membership. add: piece i may be started (at start-up, or after a hash failure);
 * remove: it is had or started. Both are no-ops when nothing changes. add returns
 * -1 out of memory (a level's bitmap), picker unchanged. */
int  bt_picker_add(bt_picker *pk, uint32_t i);
void bt_picker_remove(bt_picker *pk, uint32_t i);
/* remove, for a piece an iteration just gave from `level` (it->level): that is where
 * it is, so its availability need not be read (one cache miss less per piece: with
 * small pieces a pick starts dozens, scattered over the torrent). */
void bt_picker_take(bt_picker *pk, uint32_t i, uint32_t level);
bool bt_picker_fresh(const bt_picker *pk, uint32_t i);

/* Availability: one peer more or less has piece i, or every piece of `have`
 * (a peer's bitfield arriving or leaving). Only increments can fail (-1, out of
 * memory for a new level), and then nothing changed: add_set undoes what it did. */
int  bt_picker_inc(bt_picker *pk, uint32_t i);
void bt_picker_dec(bt_picker *pk, uint32_t i);
int  bt_picker_add_set(bt_picker *pk, const bt_ranges *have, int delta);
static inline void bt_picker_seeds(bt_picker *pk, int delta) { pk->nseeds += (uint32_t)delta; }
static inline uint32_t bt_picker_avail(const bt_picker *pk, uint32_t i) { return pk->avail[i] + pk->nseeds; }

/* Iteration over the fresh pieces a peer has, in picking order. The iterator
 * survives changes to the picker between calls (the piece just returned being
 * started, above all): it never returns a piece twice, and returns each piece
 * that stays fresh and in its level from the start to the end at most once.
 * The peer's pieces: `bits` (a bitmap of n bits) when it has one, else `have`;
 * both NULL for a peer that has everything. */
typedef struct bt_pick_iter {
    uint32_t level;         /* current level */
    uint32_t pos;           /* next index to look at in this level */
    uint32_t hint;          /* index in the peer's ranges where the last lookup ended */
    uint8_t phase;          /* 0: [rot, n); 1: [0, rot); 2: level done */
    bool common;            /* most common first */
    bool counted;           /* the peer's pieces are in avail: it has none at level 0 */
    bool done;
} bt_pick_iter;

/* counted: the peer's pieces are counted in avail (a connected non-seed peer), so
 * the level of pieces nobody counted has (seeds' only) is skipped, not scanned. */
void    bt_picker_iter(const bt_picker *pk, bt_pick_iter *it, bool most_common, bool counted);
int64_t bt_picker_next(const bt_picker *pk, bt_pick_iter *it, const bt_ranges *have, const uint64_t *bits);

/* Bytes the picker holds (avail, flags and level bitmaps): for memory reports. */
uint64_t bt_picker_memory(const bt_picker *pk);
/* The invariant above holds (for specs; O(n * levels)). */
bool bt_picker_check(const bt_picker *pk);

#endif
