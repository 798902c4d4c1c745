/* tracker_c_test.c: the C API of the tracker client as the engine uses it: many
 * announces in flight on one libev loop, cancel, free and announce from inside a
 * callback; the same for UDP against a tiny BEP 15 server on the same loop. Built and run by spec/tracker_spec.lua (with ASan+UBSan) against
 * spec/fake_tracker.lua:
 *     tracker_c_test BASE_URL
 * Prints one line per failed check and exits 1 if any failed, 0 otherwise.
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

/* ---- UDP: a BEP 15 server on the test's loop ---- */

typedef struct udp_server {
    ev_io io;
    int fd;
    uint16_t port;
    int connects, announces;
} udp_server;

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Connect: answered. Announce: answered (one peer) unless its URL data is "/silent". */
static void server_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    udp_server *sv = (udp_server *)w;
    uint8_t in[2048], out[64];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(sv->fd, in, sizeof in, 0, (struct sockaddr *)&from, &flen);
    if (n < 16)
        return;
    uint32_t action = (uint32_t)in[8] << 24 | (uint32_t)in[9] << 16 | (uint32_t)in[10] << 8 | in[11];
    memcpy(out + 4, in + 12, 4);   /* the transaction id */
    size_t k = 0;
    if (action == 0) {
        sv->connects++;
        put32(out, 0);
        memcpy(out + 8, "CONNID42", 8);
        k = 16;
    } else if (action == 1 && n >= 98) {
        sv->announces++;
        if (n >= 100 && in[98] == 2 && (size_t)n >= 100u + in[99] && in[99] == 7 && memcmp(in + 100, "/silent", 7) == 0)
            return;
        put32(out, 1);
        put32(out + 8, 600);
        put32(out + 12, 1);
        put32(out + 16, 2);
        memcpy(out + 20, "\x7f\0\0\x01\x1a\xe1", 6);
        k = 26;
    }
    if (k)
        sendto(sv->fd, out, k, 0, (struct sockaddr *)&from, flen);
}

static void server_start(struct ev_loop *loop, udp_server *sv)
{
    memset(sv, 0, sizeof *sv);
    sv->fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    CHECK(bind(sv->fd, (struct sockaddr *)&a, sizeof a) == 0, "bind");
    getsockname(sv->fd, (struct sockaddr *)&a, &alen);
    sv->port = ntohs(a.sin_port);
    ev_io_init(&sv->io, server_cb, sv->fd, EV_READ);
    ev_io_start(loop, &sv->io);
}

static void server_stop(struct ev_loop *loop, udp_server *sv)
{
    ev_io_stop(loop, &sv->io);
    close(sv->fd);
}

static bt_announce udp_req_for(const char *host, uint16_t port, const char *path, char *url, size_t urllen,
                               double timeout)
{
    bt_announce q = req_for("", url, urllen, timeout);
    snprintf(url, urllen, "udp://%s:%u%s", host, (unsigned)port, path);
    q.connect_timeout = 0.2;
    return q;
}

static void udp_concurrent(struct ev_loop *loop)
{
    udp_server sv;
    server_start(loop, &sv);
    bt_tracker *t = bt_tracker_new(loop);
    call c[3];
    char url[3][256];
    int id[3];
    memset(c, 0, sizeof c);
    static const char *paths[] = {"/a", "/silent", "/b"};
    for (int i = 0; i < 3; i++) {
        bt_announce q = udp_req_for("127.0.0.1", sv.port, paths[i], url[i], sizeof url[i], 2);
        id[i] = bt_tracker_announce(t, &q, on_result, &c[i]);
        CHECK(id[i] > 0, "udp announce %s: %s", paths[i], bt_tracker_error(t));
        CHECK(c[i].calls == 0, "no callback from inside bt_tracker_announce (udp)");
    }
    CHECK(bt_tracker_pending(t) == 3, "udp pending %u", bt_tracker_pending(t));
    CHECK(bt_tracker_cancel(t, id[1]) == 0, "udp cancel");
    CHECK(bt_tracker_cancel(t, id[1]) == -1, "udp cancel twice");
    run(loop, t, 5);
    CHECK(c[0].calls == 1 && c[0].ok && c[0].npeers == 1 && c[0].interval == 600, "udp /a: %s", c[0].error);
    CHECK(c[2].calls == 1 && c[2].ok, "udp /b: %s", c[2].error);
    CHECK(c[1].calls == 0, "a cancelled udp announce called back");
    int connects = sv.connects;
    /* a later announce reuses the connection id */
    bt_announce q = udp_req_for("127.0.0.1", sv.port, "/c", url[0], sizeof url[0], 2);
    memset(&c[0], 0, sizeof c[0]);
    CHECK(bt_tracker_announce(t, &q, on_result, &c[0]) > 0, "udp announce /c");
    run(loop, t, 5);
    CHECK(c[0].calls == 1 && c[0].ok, "udp /c: %s", c[0].error);
    CHECK(sv.connects == connects, "connection id not reused: %d connects, then %d", connects, sv.connects);
    bt_tracker_free(t);
    server_stop(loop, &sv);
}

static void udp_free_inside(struct ev_loop *loop)
{
    udp_server sv;
    server_start(loop, &sv);
    killer k = {bt_tracker_new(loop), 0};
    char u1[256], u2[256], u3[256];
    bt_announce qs = udp_req_for("127.0.0.1", sv.port, "/silent", u1, sizeof u1, 3);
    bt_announce qn = udp_req_for("localhost", sv.port, "/silent", u2, sizeof u2, 3);   /* a lookup */
    bt_announce qo = udp_req_for("127.0.0.1", sv.port, "/ok", u3, sizeof u3, 3);
    hang_calls = 0;
    CHECK(bt_tracker_announce(k.t, &qs, hang_cb, NULL) > 0, "udp announce silent");
    CHECK(bt_tracker_announce(k.t, &qn, hang_cb, NULL) > 0, "udp announce by name: %s", bt_tracker_error(k.t));
    CHECK(bt_tracker_announce(k.t, &qo, kill_cb, &k) > 0, "udp announce ok");
    ev_timer guard;
    ev_timer_init(&guard, guard_cb, 1.5, 0.);
    ev_timer_start(loop, &guard);
    while (k.calls == 0 && ev_is_active(&guard))
        ev_run(loop, EVRUN_ONCE);
    CHECK(k.calls == 1, "udp free callback ran %d times", k.calls);
    ev_run(loop, 0);   /* until the guard: nothing of the freed client may fire */
    CHECK(hang_calls == 0, "a freed udp client called back");
    server_stop(loop, &sv);

    /* A name lookup in flight when the client is freed (the orphan path). */
    bt_tracker *t = bt_tracker_new(loop);
    CHECK(bt_tracker_announce(t, &qn, hang_cb, NULL) > 0, "udp announce by name");
    bt_tracker_free(t);
    CHECK(hang_calls == 0, "a freed udp client called back");

    t = bt_tracker_new(loop);
    bt_announce bad = udp_req_for("127.0.0.1", 0, "/x", u1, sizeof u1, 1);
    CHECK(bt_tracker_announce(t, &bad, on_result, NULL) == -1, "udp port 0 accepted");
    CHECK(strncmp(bt_tracker_error(t), "invalid UDP tracker URL", 23) == 0, "error: %s", bt_tracker_error(t));
    CHECK(bt_tracker_scrape(t, &bad, on_result, NULL) == -1, "udp scrape port 0 accepted");
    bt_tracker_free(t);
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
    udp_concurrent(loop);
    udp_free_inside(loop);
    ev_loop_destroy(loop);
    curl_global_cleanup();
    return c_test_finish();
}
