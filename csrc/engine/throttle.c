/* throttle.c: see throttle.h. */
#include "engine/throttle.h"

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_throttle *th = w->data;
    th->retry(th->ud);
}

void bt_throttle_init(bt_throttle *th, struct ev_loop *loop, void (*retry)(void *ud), void *ud)
{
    th->loop = loop;
    th->retry = retry;
    th->ud = ud;
    ev_timer_init(&th->timer, on_timer, BT_RATE_MIN_WAIT, 0);
    th->timer.data = th;
}

void bt_throttle_wait(bt_throttle *th, double secs)
{
    if (!th->loop)
        return;
    if (!(secs >= BT_RATE_MIN_WAIT))
        secs = BT_RATE_MIN_WAIT;
    if (secs > BT_RATE_MAX_WAIT)
        secs = BT_RATE_MAX_WAIT;
    if (ev_is_active(&th->timer)) {
        if (ev_timer_remaining(th->loop, &th->timer) <= secs)
            return;   /* fires soon enough already */
        ev_timer_stop(th->loop, &th->timer);
    }
    ev_timer_set(&th->timer, secs, 0);
    ev_timer_start(th->loop, &th->timer);
}

void bt_throttle_stop(bt_throttle *th)
{
    if (th->loop)
        ev_timer_stop(th->loop, &th->timer);
}
