/* throttle.h: the one timer that retries what the rate limits held back.
 *
 * A connection whose read or upload the token buckets refused asks for a retry
 * with bt_throttle_wait(secs); the owner (the session) is called back once, when
 * the earliest asked-for time comes, and restarts every throttled connection
 * (each then asks the buckets again and throttles itself again if they are still
 * empty). Lower layers call downward into this file; the owner hears back
 * through the callback it gave bt_throttle_init.
 */
#ifndef BT_THROTTLE_H
#define BT_THROTTLE_H

#include <ev.h>

#define BT_RATE_MIN_WAIT 0.005   /* s: a throttled peer is retried no sooner (no busy loop) */
#define BT_RATE_MAX_WAIT 1.0     /* s: and no later, so a raised limit takes effect soon */

typedef struct bt_throttle {
    struct ev_loop *loop;
    ev_timer timer;
    void (*retry)(void *ud);   /* the owner restarts its throttled connections */
    void *ud;
} bt_throttle;

void bt_throttle_init(bt_throttle *th, struct ev_loop *loop, void (*retry)(void *ud), void *ud);
/* Fire within secs, clamped to [BT_RATE_MIN_WAIT, BT_RATE_MAX_WAIT]; an earlier
 * pending retry stands. */
void bt_throttle_wait(bt_throttle *th, double secs);
void bt_throttle_stop(bt_throttle *th);

#endif
