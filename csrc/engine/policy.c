/* policy.c: the policy scheduler (policy.h). */
#define _GNU_SOURCE
#include "engine/policy.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const bt_hook_names[BT_NHOOKS] = {
    [BT_HOOK_PICK] = "pick", [BT_HOOK_TICK] = "tick", [BT_HOOK_ENDGAME] = "endgame",
    [BT_HOOK_TIMEOUT] = "timeout", [BT_HOOK_ON_PIECE] = "on_piece", [BT_HOOK_QUEUE_DEPTH] = "queue_depth",
    [BT_HOOK_CHOKE] = "choke",
};

typedef struct bt_sched {
    const bt_policy_ops *ops;
    void *ud;
    bool has[BT_NHOOKS];
    int depth;                /* hook calls in progress */
    uint32_t round;           /* choke rounds so far */
    double next_choke, last_round;
    bt_peer **scratch;        /* the choke round's peer array */
    uint32_t scratch_cap;
} bt_sched;

int bt_policy_attach(bt_torrent *t, const bt_policy_ops *ops, void *ud, double now)
{
    bt_sched *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->ops = ops;
    s->ud = ud;
    for (int h = 0; h < BT_NHOOKS; h++)
        s->has[h] = ops->has(ud, t, (bt_hook)h);
    s->next_choke = now;   /* the first round at the first tick */
    s->last_round = -INFINITY;
    t->sched = s;
    return 0;
}

void bt_policy_detach(bt_torrent *t)
{
    bt_sched *s = t->sched;
    if (!s)
        return;
    free(s->scratch);
    free(s);
    t->sched = NULL;
}

bool bt_policy_in_hook(const bt_torrent *t)
{
    const bt_sched *s = t->sched;
    return s && s->depth > 0;
}

void bt_value_describe(const bt_value *v, char *out, size_t n)
{
    switch (v->type) {
    case BT_V_NOTHING: snprintf(out, n, "nothing"); break;
    case BT_V_NIL: snprintf(out, n, "nil"); break;
    case BT_V_BOOLEAN: snprintf(out, n, "a boolean (%s)", v->b ? "true" : "false"); break;
    case BT_V_INTEGER: snprintf(out, n, "a number (%lld)", (long long)v->i); break;
    case BT_V_FLOAT: snprintf(out, n, "a number (%.14g)", v->f); break;
    case BT_V_STRING: snprintf(out, n, v->len >= sizeof v->s ? "a string (\"%s...\")" : "a string (\"%s\")", v->s); break;
    case BT_V_PEER: snprintf(out, n, "a bt.Peer (%s)", v->address); break;
    case BT_V_ARRAY: snprintf(out, n, "a table"); break;
    default: snprintf(out, n, "a %s", v->tname ? v->tname : "value"); break;
    }
}

/* Stop t with a message about hook h (printf-style). */
static void fail(bt_torrent *t, bt_hook h, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(bt_torrent *t, bt_hook h, const char *fmt, ...)
{
    char msg[512];
    int n = snprintf(msg, sizeof msg, "policy hook '%s' ", bt_hook_names[h]);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
    va_end(ap);
    bt_torrent_stop(t, msg);
}

/* Call hook h; 0 with *res filled, -1 when it failed (t is stopped). */
static int call(bt_torrent *t, bt_hook h, const bt_hook_args *a, bt_value *res)
{
    bt_sched *s = t->sched;
    const char *err = NULL;
    int nres = 0;
    s->depth++;
    int rc = s->ops->call(s->ud, t, h, a, res, &nres, &err);
    s->depth--;
    if (rc != 0) {
        /* the whole message with its traceback: it may be long */
        const char *e = err ? err : "error";
        size_t n = strlen(e) + 64;
        char *msg = malloc(n);
        if (msg)
            snprintf(msg, n, "policy hook '%s' failed: %s", bt_hook_names[h], e);
        bt_torrent_stop(t, msg ? msg : "policy hook failed");
        free(msg);
        return -1;
    }
    if (nres > 1 && h != BT_HOOK_PICK && h != BT_HOOK_TICK && h != BT_HOOK_ON_PIECE) {
        fail(t, h, "returned %d values; it returns one", nres);
        return -1;
    }
    return t->stopped ? -1 : 0;   /* the hook may have stopped its torrent */
}

/* Hooks that act through the API and return nothing. */
static int call_void(bt_torrent *t, bt_hook h, const bt_hook_args *a)
{
    bt_value v;
    if (call(t, h, a, &v) != 0)
        return -1;
    if (v.type != BT_V_NOTHING && v.type != BT_V_NIL) {
        char d[128];
        bt_value_describe(&v, d, sizeof d);
        fail(t, h, "returned %s; it returns nothing (it acts through the torrent and peer methods)", d);
        return -1;
    }
    return 0;
}

/* v is exactly the string lit (an embedded NUL does not pass for its end) */
static bool is_string(const bt_value *v, const char *lit)
{
    return v->type == BT_V_STRING && v->len == strlen(lit) && strcmp(v->s, lit) == 0;
}

static bool as_integer(const bt_value *v, int64_t *out)
{
    if (v->type == BT_V_INTEGER) {
        *out = v->i;
        return true;
    }
    if (v->type == BT_V_FLOAT && v->f == floor(v->f) && fabs(v->f) < 9007199254740992.0) {
        *out = (int64_t)v->f;
        return true;
    }
    return false;
}

/* ---- the tick ---- */

static void timeouts(bt_torrent *t, double now)
{
    for (bt_peer *p = t->peers; p && !t->stopped; p = p->next) {
        if (p->closing)
            continue;
        const bt_req *r = bt_peer_oldest(p);
        if (!r)
            continue;
        double since = r->sent > p->last_block ? r->sent : p->last_block;
        double stalled = now - since;
        if (stalled < BT_TIMEOUT_MIN_STALL)
            continue;
        uint32_t piece = r->piece, block = r->block;
        bt_hook_args a = { .peer = p, .piece = piece, .block = block, .age = now - r->sent,
                           .expected = bt_peer_expected(p, r), .stalled = stalled, .now = now };
        bt_value v;
        if (call(t, BT_HOOK_TIMEOUT, &a, &v) != 0)
            return;
        if (v.type == BT_V_NOTHING || v.type == BT_V_NIL)
            continue;   /* keep */
        if (is_string(&v, "keep"))
            continue;
        if (is_string(&v, "cancel")) {
            if (!p->closing)
                bt_torrent_cancel(t, p, piece, block);
        } else if (is_string(&v, "snub")) {
            if (!p->closing)
                bt_torrent_snub(t, p);
        } else {
            bool old = is_string(&v, "reassign");
            char d[128];
            bt_value_describe(&v, d, sizeof d);
            fail(t, BT_HOOK_TIMEOUT, "returned %s, not \"keep\", \"cancel\" or \"snub\" (or nothing: keep)%s",
                 d, old ? "; \"reassign\" is called \"snub\" since policy API v2" : "");
            return;
        }
    }
}

static int queue_depth(bt_torrent *t, bt_peer *p)
{
    bt_hook_args a = { .peer = p };
    bt_value v;
    if (call(t, BT_HOOK_QUEUE_DEPTH, &a, &v) != 0)
        return -1;
    int64_t n;
    if (!as_integer(&v, &n) || n < 1 || n > BT_QUEUE_DEPTH_MAX) {
        char d[128];
        bt_value_describe(&v, d, sizeof d);
        fail(t, BT_HOOK_QUEUE_DEPTH, "returned %s, not an integer from 1 to %u", d, (unsigned)BT_QUEUE_DEPTH_MAX);
        return -1;
    }
    p->sw.queue_depth = (uint32_t)n;   /* bt_torrent_slots caps it at the peer's reqq */
    return 0;
}

static void endgame(bt_torrent *t)
{
    bt_hook_args a = { 0 };
    bt_value v;
    if (call(t, BT_HOOK_ENDGAME, &a, &v) != 0)
        return;
    if (v.type != BT_V_BOOLEAN) {
        char d[128];
        bt_value_describe(&v, d, sizeof d);
        fail(t, BT_HOOK_ENDGAME, "returned %s, not a boolean", d);
        return;
    }
    bt_torrent_set_endgame(t, v.b);
}

/* choke(t, peers, round, now) -> the peers to unchoke; every other peer is choked. */
static void choke_round(bt_torrent *t, double now)
{
    bt_sched *s = t->sched;
    s->next_choke = now + (t->choke_interval > 0 ? t->choke_interval : BT_CHOKE_INTERVAL);
    s->last_round = now;
    t->choke_wanted = false;
    s->round++;
    uint32_t n = 0;
    for (bt_peer *p = t->peers; p; p = p->next) {
        p->sw.want_unchoke = false;
        n += p->state == BT_PS_ACTIVE && !p->closing && p->interested;
    }
    if (n > s->scratch_cap) {
        bt_peer **ns = realloc(s->scratch, n * sizeof *ns);
        if (!ns) {
            bt_torrent_stop(t, "out of memory");
            return;
        }
        s->scratch = ns;
        s->scratch_cap = n;
    }
    n = 0;
    for (bt_peer *p = t->peers; p; p = p->next)
        if (p->state == BT_PS_ACTIVE && !p->closing && p->interested)
            s->scratch[n++] = p;
    bt_hook_args a = { .peers = s->scratch, .npeers = n, .round = s->round, .now = now };
    bt_value v;
    if (call(t, BT_HOOK_CHOKE, &a, &v) != 0)
        return;
    if (v.type == BT_V_ARRAY) {
        for (uint32_t i = 0; i < v.nelems; i++) {
            const bt_value *e = &v.elems[i];
            char d[128];
            bt_value_describe(e, d, sizeof d);
            if (e->type != BT_V_PEER) {
                fail(t, BT_HOOK_CHOKE, "returned element %u, %s, not a bt.Peer", i + 1, d);
                return;
            }
            if (e->peer && e->peer->sw.t != t) {
                fail(t, BT_HOOK_CHOKE, "returned element %u, %s, a peer of another torrent", i + 1, d);
                return;
            }
            if (e->peer)
                e->peer->sw.want_unchoke = true;   /* a peer that has left is skipped */
        }
    } else if (v.type != BT_V_NOTHING && v.type != BT_V_NIL) {
        char d[128];
        bt_value_describe(&v, d, sizeof d);
        fail(t, BT_HOOK_CHOKE, "returned %s, not an array of bt.Peer (or nothing: choke everyone)", d);
        return;
    }
    /* we have nothing to offer: keep everyone choked */
    bool empty = bt_ranges_count(&t->have) == 0;
    for (bt_peer *p = t->peers; p; p = p->next)
        if (p->state == BT_PS_ACTIVE && !p->closing)
            bt_torrent_set_choke(t, p, empty || !p->sw.want_unchoke);
}

static void maybe_choke(bt_torrent *t, double now)
{
    bt_sched *s = t->sched;
    if (t->stopped || !s->has[BT_HOOK_CHOKE])
        return;
    /* a peer waits for a slot: an extra round if one is free or one is wasted on a peer
     * that takes nothing (sockets that say interested and never request held every slot) */
    if (now >= s->next_choke ||
        (t->choke_wanted && now >= s->last_round + BT_CHOKE_EXTRA_GAP
         && (t->unchoked < t->upload_slots || bt_torrent_wasted_slot(t, now))))
        choke_round(t, now);
}

void bt_policy_tick(bt_torrent *t, double now)
{
    bt_sched *s = t->sched;
    if (!s || t->stopped)
        return;
    if (!t->complete) {
        if (s->has[BT_HOOK_TIMEOUT])
            timeouts(t, now);
        if (s->has[BT_HOOK_QUEUE_DEPTH])
            for (bt_peer *p = t->peers; p && !t->stopped; p = p->next)
                if (!p->closing && p->state == BT_PS_ACTIVE && queue_depth(t, p) != 0)
                    return;
        if (!t->stopped && s->has[BT_HOOK_ENDGAME])
            endgame(t);
    }
    maybe_choke(t, now);
    if (!t->stopped && s->has[BT_HOOK_TICK]) {
        bt_hook_args a = { .now = now };
        call_void(t, BT_HOOK_TICK, &a);
    }
}

/* ---- each loop iteration ---- */

void bt_policy_picks(bt_torrent *t)
{
    bt_sched *s = t->sched;
    if (!s || t->stopped || t->complete || !s->has[BT_HOOK_PICK])
        return;
    for (bt_peer *p = t->peers; p && !t->stopped; p = p->next) {
        if (!p->sw.needs_pick || p->closing)
            continue;
        p->sw.needs_pick = false;
        uint32_t slots = bt_torrent_slots(p);
        if (slots == 0)
            continue;
        uint32_t before = p->inflight;
        bt_hook_args a = { .peer = p, .slots = slots };
        if (call_void(t, BT_HOOK_PICK, &a) != 0)
            return;
        if (p->inflight == before)
            p->sw.pick_dry = true;   /* nothing to ask: wait for news (have, unchoke, tick) */
    }
}

void bt_policy_on_piece(bt_torrent *t, uint32_t piece, bool ok, bt_peer *p)
{
    bt_sched *s = t->sched;
    if (!s || t->stopped || !s->has[BT_HOOK_ON_PIECE])
        return;
    bt_hook_args a = { .peer = p, .piece = piece, .ok = ok };
    call_void(t, BT_HOOK_ON_PIECE, &a);
}

void bt_policy_on_connect(bt_torrent *t, bt_peer *p)
{
    bt_sched *s = t->sched;
    if (!s)
        return;   /* a magnet's torrent before its metadata: no policy yet */
    /* the first pipeline depth comes from the policy too, before the first pick */
    if (s && !t->stopped && !t->complete && s->has[BT_HOOK_QUEUE_DEPTH] && !p->closing)
        queue_depth(t, p);
}
