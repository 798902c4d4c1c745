/* tracker_c_test.c: the C API of the tracker client as the engine uses it: many
 * announces in flight on one libev loop, cancel, free and announce from inside a
 * callback. Built and run by spec/tracker_spec.lua (with ASan+UBSan) against
 * spec/fake_tracker.lua:
 *     tracker_c_test BASE_URL
 * Prints one line per failed check and exits 1 if any failed, 0 otherwise.
 */
#include <curl/curl.h>
#include <ev.h>
#include <stdio.h>
#include <string.h>

#include "engine/tracker.h"

#include "c_test.h"

static const char *base;

typedef struct call {
    int calls;
    int ok;
    char error[BT_TRACKER_ERRLEN];
    char failure[128];
    uint32_t npeers;
    int64_t interval;
} call;

static void record(call *c, const bt_announce_result *r)
{
    c->calls++;
    c->ok = r->ok;
    snprintf(c->error, sizeof c->error, "%s", r->error);
    snprintf(c->failure, sizeof c->failure, "%s", r->failure_reason ? r->failure_reason : "");
    c->npeers = r->npeers;
    c->interval = r->interval;
}

static void on_result(void *ud, int id, const bt_announce_result *r)
{
    (void)id;
    record(ud, r);
}

static bt_announce req_for(const char *path, char *url, size_t urllen, double timeout)
{
    bt_announce q;
    memset(&q, 0, sizeof q);
    snprintf(url, urllen, "%s%s", base, path);
    q.url = url;
    memset(q.info_hash, 0x11, 20);
    memcpy(q.peer_id, "-BL0100-ctestctestct", 20);
    q.port = 6881;
    q.numwant = -1;
    q.timeout = timeout;
    return q;
}

static void guard_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)w;
    (void)revents;
    ev_break(loop, EVBREAK_ALL);
}

/* Run until nothing is pending, bounded to `limit` seconds. */
static void run(struct ev_loop *loop, bt_tracker *t, double limit)
{
    ev_timer guard;
    ev_timer_init(&guard, guard_cb, limit, 0.);
    ev_timer_start(loop, &guard);
    while (bt_tracker_pending(t) > 0 && ev_is_active(&guard))
        ev_run(loop, EVRUN_ONCE);
    ev_timer_stop(loop, &guard);
}

static void concurrent(struct ev_loop *loop)
{
    bt_tracker *t = bt_tracker_new(loop);
    CHECK(t != NULL, "bt_tracker_new");
    static const char *paths[] = {"/dict", "/failure", "/peers6", "/hang", "/500", "/hang"};
    enum { N = 6 };
    call c[N];
    int id[N];
    char url[N][256];
    memset(c, 0, sizeof c);
    for (int i = 0; i < N; i++) {
        bt_announce q = req_for(paths[i], url[i], sizeof url[i], 0.8);
        id[i] = bt_tracker_announce(t, &q, on_result, &c[i]);
        CHECK(id[i] > 0, "announce %s: %s", paths[i], bt_tracker_error(t));
        CHECK(c[i].calls == 0, "no callback from inside bt_tracker_announce");
    }
    CHECK(bt_tracker_pending(t) == N, "pending %u", bt_tracker_pending(t));
    CHECK(bt_tracker_cancel(t, id[5]) == 0, "cancel");
    CHECK(bt_tracker_cancel(t, id[5]) == -1, "cancel twice");
    CHECK(bt_tracker_cancel(t, 999999) == -1, "cancel unknown");
    run(loop, t, 10);
    CHECK(bt_tracker_pending(t) == 0, "still pending: %u", bt_tracker_pending(t));
    for (int i = 0; i < 5; i++)
        CHECK(c[i].calls == 1, "%s: %d calls", paths[i], c[i].calls);
    CHECK(c[5].calls == 0, "cancelled announce called back");
    CHECK(c[0].ok && c[0].npeers == 3 && c[0].interval == 1800, "/dict: %s", c[0].error);
    CHECK(c[1].ok && strcmp(c[1].failure, "torrent not registered") == 0, "/failure");
    CHECK(c[2].ok && c[2].npeers == 3, "/peers6");
    CHECK(!c[3].ok && strncmp(c[3].error, "timeout after 0.8 s", 19) == 0, "/hang: %s", c[3].error);
    CHECK(!c[4].ok && strcmp(c[4].error, "HTTP 500") == 0, "/500: %s", c[4].error);
    for (int i = 1; i < N; i++)
        CHECK(id[i] != id[i - 1], "distinct ids");
    bt_tracker_free(t);
}

/* ---- free and re-announce from inside a callback ---- */

typedef struct chain {
    bt_tracker *t;
    int calls, second_calls, second_ok;
    char url[256];
} chain;

static void second_cb(void *ud, int id, const bt_announce_result *r)
{
    (void)id;
    chain *ch = ud;
    ch->second_calls++;
    ch->second_ok = r->ok && r->failure_reason != NULL;
}

static void first_cb(void *ud, int id, const bt_announce_result *r)
{
    (void)id;
    (void)r;
    chain *ch = ud;
    ch->calls++;
    bt_announce q = req_for("/failure", ch->url, sizeof ch->url, 2);
    int nid = bt_tracker_announce(ch->t, &q, second_cb, ch);
    CHECK(nid > 0, "announce from a callback: %s", bt_tracker_error(ch->t));
}

static void reannounce(struct ev_loop *loop)
{
    chain ch;
    memset(&ch, 0, sizeof ch);
    ch.t = bt_tracker_new(loop);
    char url[256];
    bt_announce q = req_for("/dict", url, sizeof url, 2);
    CHECK(bt_tracker_announce(ch.t, &q, first_cb, &ch) > 0, "announce");
    run(loop, ch.t, 10);
    CHECK(ch.calls == 1 && ch.second_calls == 1 && ch.second_ok, "chain %d %d %d", ch.calls,
          ch.second_calls, ch.second_ok);
    bt_tracker_free(ch.t);
}

typedef struct killer {
    bt_tracker *t;
    int calls;
} killer;

static int hang_calls;

static void hang_cb(void *ud, int id, const bt_announce_result *r)
{
    (void)ud;
    (void)id;
    (void)r;
    hang_calls++;
}

static void kill_cb(void *ud, int id, const bt_announce_result *r)
{
    (void)id;
    (void)r;
    killer *k = ud;
    k->calls++;
    bt_tracker_free(k->t);   /* with a /hang still in flight */
}

static void free_inside(struct ev_loop *loop)
{
    killer k = {bt_tracker_new(loop), 0};
    char u1[256], u2[256];
    bt_announce qh = req_for("/hang", u1, sizeof u1, 5);
    bt_announce qd = req_for("/dict", u2, sizeof u2, 5);
    CHECK(bt_tracker_announce(k.t, &qh, hang_cb, NULL) > 0, "announce hang");
    CHECK(bt_tracker_announce(k.t, &qd, kill_cb, &k) > 0, "announce dict");
    ev_timer guard;
    ev_timer_init(&guard, guard_cb, 1.5, 0.);
    ev_timer_start(loop, &guard);
    while (k.calls == 0 && ev_is_active(&guard))
        ev_run(loop, EVRUN_ONCE);
    CHECK(k.calls == 1, "free callback ran %d times", k.calls);
    /* The client is gone: the loop must hold no watcher of it any more. Let the
     * guard run out to be sure nothing fires into freed memory. */
    ev_run(loop, 0);
    CHECK(hang_calls == 0, "a freed client called back");
}

static void bad_requests(struct ev_loop *loop)
{
    bt_tracker *t = bt_tracker_new(loop);
    bt_announce q;
    memset(&q, 0, sizeof q);
    q.url = "ftp://example.org/announce";
    CHECK(bt_tracker_announce(t, &q, on_result, NULL) == -1, "ftp URL accepted");
    CHECK(strlen(bt_tracker_error(t)) > 0, "no error message");
    q.url = NULL;
    CHECK(bt_tracker_announce(t, &q, on_result, NULL) == -1, "NULL URL accepted");
    CHECK(bt_tracker_pending(t) == 0, "pending after failures");
    bt_tracker_free(t);
    bt_tracker_free(NULL);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s BASE_URL\n", argv[0]);
        return 2;
    }
    base = argv[1];
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    concurrent(loop);
    reannounce(loop);
    free_inside(loop);
    bad_requests(loop);
    ev_loop_destroy(loop);
    curl_global_cleanup();
    return c_test_finish();
}
