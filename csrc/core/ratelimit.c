/* ratelimit.c: token buckets (see ratelimit.h). */
#include "core/ratelimit.h"

#include <math.h>

/* A millionth of a byte: far below one byte, far above double rounding. */
#define BT_BUCKET_EPSILON 1e-6

static double clamp_bytes(double v)
{
    if (!(v > 0))   /* also NaN */
        return 0;
    return v > BT_BUCKET_MAX_BYTES ? BT_BUCKET_MAX_BYTES : v;
}

void bt_bucket_set(bt_bucket *b, double rate, double burst)
{
    b->rate = clamp_bytes(rate);
    burst = clamp_bytes(burst);
    if (burst == 0 && b->rate > 0)
        burst = b->rate > BT_BUCKET_MIN_BURST ? b->rate : BT_BUCKET_MIN_BURST;
    b->burst = burst;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
}

void bt_bucket_init(bt_bucket *b, double rate, double burst)
{
    b->tokens = 0;
    b->last = -1;
    bt_bucket_set(b, rate, burst);
    b->tokens = b->burst;
}

void bt_bucket_refill(bt_bucket *b, double now)
{
    if (!isfinite(now))
        return;
    if (b->last < 0 || now < b->last) {
        /* first refill: start counting from here (the bucket is already full);
         * clock went back: keep `last`, wait for the clock to catch up. */
        if (b->last < 0)
            b->last = now;
        return;
    }
    double t = b->tokens + b->rate * (now - b->last);
    b->tokens = t > b->burst ? b->burst : t;
    b->last = now;
}

int64_t bt_bucket_available(const bt_bucket *b)
{
    if (b->rate == 0)
        return INT64_MAX;
    /* The epsilon absorbs rounding in rate * dt: after waiting exactly
     * bt_bucket_wait() seconds, the bytes asked for are there. */
    return (int64_t)floor(b->tokens + BT_BUCKET_EPSILON);
}

int64_t bt_bucket_take(bt_bucket *b, int64_t n)
{
    if (n <= 0)
        return 0;
    if (b->rate == 0)
        return n;
    int64_t have = bt_bucket_available(b);
    int64_t g = have < n ? have : n;
    if (g <= 0)
        return 0;
    b->tokens -= (double)g;
    return g;
}

void bt_bucket_spend(bt_bucket *b, int64_t n)
{
    if (n <= 0 || b->rate == 0)
        return;
    /* clamped so the debt stays a finite, exactly representable number */
    b->tokens -= clamp_bytes((double)n);
    if (b->tokens < -BT_BUCKET_MAX_BYTES)
        b->tokens = -BT_BUCKET_MAX_BYTES;
}

double bt_bucket_wait(const bt_bucket *b, int64_t n)
{
    if (b->rate == 0 || n <= 0)
        return 0;
    double want = (double)n < b->burst ? (double)n : b->burst;
    /* whole tokens: take() grants floor(tokens) */
    double missing = want - b->tokens;
    if (missing <= 0)
        return 0;
    return missing / b->rate;
}

int64_t bt_bucket_take_chain(bt_bucket *const *bs, int k, int64_t n)
{
    if (n <= 0)
        return 0;
    int64_t g = n;
    for (int i = 0; i < k; i++) {
        if (!bs[i])
            continue;
        int64_t a = bt_bucket_available(bs[i]);
        if (a < g)
            g = a;
    }
    if (g <= 0)
        return 0;
    for (int i = 0; i < k; i++)
        if (bs[i])
            bt_bucket_take(bs[i], g);
    return g;
}

double bt_bucket_wait_chain(bt_bucket *const *bs, int k, int64_t n)
{
    double w = 0;
    for (int i = 0; i < k; i++) {
        if (!bs[i])
            continue;
        double x = bt_bucket_wait(bs[i], n);
        if (x > w)
            w = x;
    }
    return w;
}

void bt_bucket_spend_chain(bt_bucket *const *bs, int k, int64_t n)
{
    for (int i = 0; i < k; i++)
        if (bs[i])
            bt_bucket_spend(bs[i], n);
}

void bt_bucket_refund_chain(bt_bucket *const *bs, int k, int64_t n)
{
    if (n <= 0)
        return;
    for (int i = 0; i < k; i++) {
        if (!bs[i] || bs[i]->rate == 0)
            continue;
        bs[i]->tokens += clamp_bytes((double)n);
        if (bs[i]->tokens > bs[i]->burst)
            bs[i]->tokens = bs[i]->burst;
    }
}
