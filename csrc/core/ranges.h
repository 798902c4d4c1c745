/* ranges.h: a set of piece indices stored as a sorted array of disjoint,
 * non-adjacent half-open ranges [start, end): the sparse bitfield.
 * An empty or a complete set is at most one range whatever the piece count.
 * Pure C: no I/O, no Lua. Invariant, checked by bt_ranges_check():
 *   r[i].start < r[i].end <= size, and r[i].end < r[i+1].start.
 */
#ifndef BT_RANGES_H
#define BT_RANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BT_RANGES_MAX_SIZE (1u << 31)  /* piece indices are 32-bit in the wire protocol */

typedef struct bt_range { uint32_t start, end; } bt_range;

typedef struct bt_ranges {
    bt_range *r;
    uint32_t n;      /* ranges in use */
    uint32_t cap;    /* ranges allocated */
    uint32_t size;   /* the universe: valid indices are [0, size) */
    uint32_t count;  /* number of set indices, kept up to date */
} bt_ranges;

/* Functions returning int give 0 on success, -1 when memory runs out (set
 * unchanged). Indices lie in [0, size) and bounds in [0, size]: the binding
 * checks them with a clear message; set/clear (and their _range forms) also
 * refuse anything else with -2, set unchanged, since a peer's piece index is
 * hostile input. Queries take any value: has() is false, next_* give -1. */
void bt_ranges_init(bt_ranges *s, uint32_t size);       /* empty set; allocates nothing */
void bt_ranges_free(bt_ranges *s);
int  bt_ranges_copy(bt_ranges *dst, const bt_ranges *src);  /* dst must be initialized */
int  bt_ranges_set(bt_ranges *s, uint32_t i);
int  bt_ranges_clear(bt_ranges *s, uint32_t i);
int  bt_ranges_set_range(bt_ranges *s, uint32_t a, uint32_t b);    /* [a, b) */
int  bt_ranges_clear_range(bt_ranges *s, uint32_t a, uint32_t b);
int  bt_ranges_set_all(bt_ranges *s);      /* one range [0, size); may allocate, so int */
void bt_ranges_clear_all(bt_ranges *s);    /* frees the array: an empty set owns nothing */
bool bt_ranges_has(const bt_ranges *s, uint32_t i);
/* Index in s->r of the first range whose end is > i: the range holding i, or
 * the first one after i; s->n if none. O(log n). For iterating from a point. */
uint32_t bt_ranges_find(const bt_ranges *s, uint32_t i);
/* The same answer, starting from range index `hint`: when the answer is at or
 * after it, found by galloping forward (O(log distance)), otherwise by the binary
 * search. For scans whose points only move forward (the piece picker). */
uint32_t bt_ranges_find_from(const bt_ranges *s, uint32_t i, uint32_t hint);
static inline uint32_t bt_ranges_count(const bt_ranges *s) { return s->count; }
static inline bool bt_ranges_full(const bt_ranges *s) { return s->count == s->size; }
/* out = a op b; a and b have the same size; out must be initialized and may alias neither. */
int  bt_ranges_union(bt_ranges *out, const bt_ranges *a, const bt_ranges *b);
int  bt_ranges_intersect(bt_ranges *out, const bt_ranges *a, const bt_ranges *b);
int  bt_ranges_diff(bt_ranges *out, const bt_ranges *a, const bt_ranges *b);   /* a \ b */
/* First set (clear) index >= from, or -1 if none. */
int64_t bt_ranges_next_set(const bt_ranges *s, uint32_t from);
int64_t bt_ranges_next_clear(const bt_ranges *s, uint32_t from);
/* First index >= from in a but not in b (a \ b), or in both (a & b); -1 if
 * none. No allocation; O(log n) per range of a or b skipped. For "does this
 * peer have a piece we lack" and "next piece this peer has that is wanted". */
int64_t bt_ranges_next_diff(const bt_ranges *a, const bt_ranges *b, uint32_t from);
int64_t bt_ranges_next_common(const bt_ranges *a, const bt_ranges *b, uint32_t from);
/* Number of set indices in [a, b), a <= b <= size. O(log n + ranges inside). */
uint32_t bt_ranges_count_range(const bt_ranges *s, uint32_t a, uint32_t b);
bool bt_ranges_equal(const bt_ranges *a, const bt_ranges *b);
/* Wire bitfield: ceil(size/8) bytes, high bit first. */
static inline size_t bt_ranges_wire_len(const bt_ranges *s) { return ((size_t)s->size + 7) / 8; }
/* Replace s's content. Returns 0, -1 out of memory, -2 wrong length, -3 spare bits set. */
int  bt_ranges_from_wire(bt_ranges *s, const uint8_t *bits, size_t len);
void bt_ranges_to_wire(const bt_ranges *s, uint8_t *out);   /* out has wire_len bytes */
bool bt_ranges_check(const bt_ranges *s);                   /* the invariant holds */

#endif
