/* ratelimit.h: token buckets for upload/download rate limits. Pure C: no I/O,
 * no clock of its own (the caller passes `now`, so tests run on simulated time
 * and the engine uses its loop's ev_now()).
 *
 * A bucket fills at `rate` bytes per second up to `burst` bytes. The engine asks
 * before moving bytes: granted = bt_bucket_take(b, wanted); it moves at most
 * `granted` and, when that is 0, arms a timer for bt_bucket_wait(b, wanted).
 * rate == 0 means unlimited: every take is granted in full, every wait is 0.
 *
 * Chaining (a global bucket and a per-torrent one): bt_bucket_take_chain()
 * grants the minimum of what every bucket holds and takes that from each, so
 * neither limit is exceeded and no bucket pays for bytes that were not moved.
 *
 * Thread-safety: none; a bucket belongs to the loop thread.
 */
#ifndef BT_RATELIMIT_H
#define BT_RATELIMIT_H

#include <stdint.h>

/* Burst used when the caller gives 0 for a limited bucket: one second of
 * traffic, and at least one 16 KiB block plus its 13-byte header so a single
 * piece message can always be granted whole. */
#define BT_BUCKET_MIN_BURST (16384 + 13)
/* Byte counts are clamped to this (2^53: every integer up to it is exact in a
 * double, and a bucket never holds more than a few seconds of traffic). */
#define BT_BUCKET_MAX_BYTES 9007199254740992.0

typedef struct bt_bucket {
    double rate;     /* bytes per second; 0 = unlimited */
    double burst;    /* most tokens the bucket holds */
    double tokens;   /* may be negative after bt_bucket_spend (debt) */
    double last;     /* time of the last refill, seconds; < 0 before the first */
} bt_bucket;

/* rate and burst in bytes (negative or NaN are taken as 0). burst 0 with a rate
 * means max(rate, BT_BUCKET_MIN_BURST). The bucket starts full at its first
 * refill (a fresh torrent may send one burst at once). */
void bt_bucket_init(bt_bucket *b, double rate, double burst);
/* Change the limits, keeping the tokens (clamped to the new burst). */
void bt_bucket_set(bt_bucket *b, double rate, double burst);
/* Add rate * (now - last) tokens, up to burst. A clock going backwards adds
 * nothing (and does not move `last` back). */
void bt_bucket_refill(bt_bucket *b, double now);
/* Bytes that may be moved now: min(n, whole tokens), taken. n < 0 counts as 0. */
int64_t bt_bucket_take(bt_bucket *b, int64_t n);
/* Take n whatever the tokens (bytes already moved: protocol overhead, a read
 * that returned more); the tokens may go negative and later takes wait. */
void bt_bucket_spend(bt_bucket *b, int64_t n);
/* Seconds from the last refill until min(n, burst) tokens are there (n above
 * the burst can never be granted at once, so the caller takes in parts);
 * 0 if available now or unlimited. */
double bt_bucket_wait(const bt_bucket *b, int64_t n);
/* Whole tokens available now (INT64_MAX when unlimited; may be negative). */
int64_t bt_bucket_available(const bt_bucket *b);

/* The same over k buckets (NULL entries are skipped): grant the minimum, take
 * it from each; wait the longest. Refill each first. */
int64_t bt_bucket_take_chain(bt_bucket *const *bs, int k, int64_t n);
double  bt_bucket_wait_chain(bt_bucket *const *bs, int k, int64_t n);
void    bt_bucket_spend_chain(bt_bucket *const *bs, int k, int64_t n);
/* Give back n tokens taken but not used (a read that returned less than granted),
 * up to each bucket's burst. */
void    bt_bucket_refund_chain(bt_bucket *const *bs, int k, int64_t n);

#endif
