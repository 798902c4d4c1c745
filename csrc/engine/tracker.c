/* tracker.c: the HTTP(S) tracker client. libcurl's multi-socket interface driven
 * by libev watchers on the caller's loop (the pattern of curl's
 * docs/examples/evhiperfifo.c): curl tells us which sockets to watch and when to
 * wake it (socket and timer callbacks); libev tells curl when they are ready.
 * Nothing blocks, no thread of ours (curl's resolver may use its own).
 */
#include "engine/tracker.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <ev.h>

typedef struct request {
    struct request *next, *prev;
    struct bt_tracker *t;
    CURL *easy;
    int id;
    bt_announce_cb cb;
    void *ud;
    bt_buf body;
    int too_large;
    double timeout;
    char errbuf[CURL_ERROR_SIZE];
} request;

typedef struct sockinfo {
    ev_io io;
    curl_socket_t fd;
    struct bt_tracker *t;
    struct sockinfo *next, *prev;   /* all of them, so none outlives the client */
} sockinfo;

struct bt_tracker {
    struct ev_loop *loop;
    CURLM *multi;
    ev_timer timer;
    request *reqs;          /* in flight, doubly linked */
    sockinfo *socks;        /* watched sockets, doubly linked */
    unsigned pending;
    int next_id;
    double timeout, connect_timeout;
    int depth;              /* > 0 while our libev callbacks run (user callbacks inside) */
    int dead;               /* bt_tracker_free was called from a user callback */
    char err[BT_TRACKER_ERRLEN];
};

static void free_request(request *r)
{
    if (!r)
        return;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    bt_buf_free(&r->body);
    free(r);
}

static void unlink_request(bt_tracker *t, request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        t->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
    t->pending--;
}

/* Turn a finished transfer into a result. */
static void finish(request *r, CURLcode code, bt_announce_result *res)
{
    long status = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (r->too_large) {
        bt_announce_result_init(res);
        res->http_status = (int)status;
        snprintf(res->error, sizeof res->error, "body too large (over %u bytes)",
                 BT_TRACKER_MAX_BODY);
        return;
    }
    if (code != CURLE_OK) {
        bt_announce_result_init(res);
        res->http_status = (int)status;
        long oserr = 0;
        curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
        const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
        if (code == CURLE_OPERATION_TIMEDOUT)
            snprintf(res->error, sizeof res->error, "timeout after %g s: %.200s", r->timeout, detail);
        else if (code == CURLE_COULDNT_CONNECT && oserr == ECONNREFUSED)
            snprintf(res->error, sizeof res->error, "connection refused: %.200s", detail);
        else if (code == CURLE_COULDNT_CONNECT)
            snprintf(res->error, sizeof res->error, "cannot connect: %.200s", detail);
        else if (code == CURLE_COULDNT_RESOLVE_HOST)
            snprintf(res->error, sizeof res->error, "cannot resolve host: %.200s", detail);
        else if (code == CURLE_TOO_MANY_REDIRECTS)
            snprintf(res->error, sizeof res->error, "too many redirects (over %d)",
                     BT_TRACKER_MAX_REDIRECTS);
        else if (code == CURLE_UNSUPPORTED_PROTOCOL)   /* the URL itself was checked: a redirect */
            snprintf(res->error, sizeof res->error, "redirect to a non-HTTP URL refused: %.200s", detail);
        else if (code == CURLE_PEER_FAILED_VERIFICATION)
            snprintf(res->error, sizeof res->error, "TLS certificate not trusted: %.200s", detail);
        else if (code == CURLE_FILESIZE_EXCEEDED)
            snprintf(res->error, sizeof res->error, "body too large (over %u bytes)",
                     BT_TRACKER_MAX_BODY);
        else
            snprintf(res->error, sizeof res->error, "%s", detail);
        return;
    }
    int pr = bt_tracker_parse((const char *)r->body.data, r->body.len, res);
    res->http_status = (int)status;
    if (status != 200) {
        /* A tracker may refuse with an error status and a bencoded reason: keep
         * the reason, it says more than the status. Anything else is an error. */
        if (pr == 0 && res->failure_reason)
            return;
        bt_announce_result_free(res);
        bt_announce_result_init(res);
        res->http_status = (int)status;
        snprintf(res->error, sizeof res->error, "HTTP %ld", status);
    }
}

/* Report finished transfers. User callbacks may free t (then t->dead is set and
 * the outermost libev callback frees it), cancel or start announces. */
static void check_multi_info(bt_tracker *t)
{
    CURLMsg *msg;
    int left;
    while (!t->dead && (msg = curl_multi_info_read(t->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        request *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        CURLcode code = msg->data.result;
        if (!r)
            continue;
        bt_announce_result res;
        finish(r, code, &res);
        curl_multi_remove_handle(t->multi, r->easy);
        unlink_request(t, r);
        if (r->cb)
            r->cb(r->ud, r->id, &res);
        bt_announce_result_free(&res);
        free_request(r);
    }
}

static void really_free(bt_tracker *t);

static void leave(bt_tracker *t)
{
    if (--t->depth == 0 && t->dead)
        really_free(t);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_tracker *t = w->data;
    int running;
    t->depth++;
    curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(t);
    leave(t);
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    sockinfo *si = w->data;
    bt_tracker *t = si->t;
    int action = (revents & EV_READ ? CURL_CSELECT_IN : 0) | (revents & EV_WRITE ? CURL_CSELECT_OUT : 0);
    int running;
    t->depth++;
    curl_multi_socket_action(t->multi, w->fd, action, &running);
    check_multi_info(t);
    /* No "stop the timer when nothing runs" here (evhiperfifo does it): a
     * callback may just have started an announce whose timer curl armed. curl
     * disarms the timer itself through multi_timer_cb(-1). */
    leave(t);
}

/* CURLMOPT_TIMERFUNCTION: curl wants to be woken after timeout_ms (-1: never).
 * It must not call curl back from here, so even 0 goes through the loop. */
static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    bt_tracker *t = userp;
    ev_timer_stop(t->loop, &t->timer);
    if (timeout_ms >= 0) {
        ev_timer_set(&t->timer, (double)timeout_ms / 1000.0, 0.);
        ev_timer_start(t->loop, &t->timer);
    }
    return 0;
}

static void drop_sock(bt_tracker *t, sockinfo *si)
{
    ev_io_stop(t->loop, &si->io);
    if (si->prev)
        si->prev->next = si->next;
    else
        t->socks = si->next;
    if (si->next)
        si->next->prev = si->prev;
    free(si);
}

/* CURLMOPT_SOCKETFUNCTION: watch, re-watch or forget a socket. */
static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *sockp)
{
    (void)e;
    bt_tracker *t = userp;
    sockinfo *si = sockp;
    if (what == CURL_POLL_REMOVE) {
        if (si) {
            curl_multi_assign(t->multi, s, NULL);
            drop_sock(t, si);
        }
        return 0;
    }
    if (!si) {
        si = calloc(1, sizeof *si);
        if (!si)
            return -1;   /* curl fails the transfer */
        si->fd = s;
        si->t = t;
        si->next = t->socks;
        if (t->socks)
            t->socks->prev = si;
        t->socks = si;
        curl_multi_assign(t->multi, s, si);
    } else {
        ev_io_stop(t->loop, &si->io);
    }
    int kind = (what & CURL_POLL_IN ? EV_READ : 0) | (what & CURL_POLL_OUT ? EV_WRITE : 0);
    ev_io_init(&si->io, io_cb, s, kind);
    si->io.data = si;
    ev_io_start(t->loop, &si->io);
    return 0;
}

/* The body cap is enforced here, on decoded bytes (a gzip bomb stops too):
 * returning less than given makes curl abort with CURLE_WRITE_ERROR. */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userp)
{
    request *r = userp;
    size_t n = size * nmemb;
    if (n > BT_TRACKER_MAX_BODY - r->body.len) {
        r->too_large = 1;
        return 0;
    }
    if (bt_buf_append(&r->body, ptr, n) < 0)
        return 0;
    return n;
}

bt_tracker *bt_tracker_new(struct ev_loop *loop)
{
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return NULL;
        curl_ready = 1;
    }
    bt_tracker *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->loop = loop;
    t->next_id = 1;
    t->timeout = BT_TRACKER_TIMEOUT;
    t->connect_timeout = BT_TRACKER_CONNECT_TIMEOUT;
    t->multi = curl_multi_init();
    if (!t->multi) {
        free(t);
        return NULL;
    }
    ev_timer_init(&t->timer, timer_cb, 0., 0.);
    t->timer.data = t;
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    return t;
}

static void really_free(bt_tracker *t)
{
    while (t->reqs) {
        request *r = t->reqs;
        curl_multi_remove_handle(t->multi, r->easy);
        unlink_request(t, r);
        free_request(r);
    }
    /* curl_multi_cleanup closes the cached connections; whether it reports
     * their sockets through sock_cb depends on the curl version, so whatever
     * watcher is left is stopped and freed here. */
    curl_multi_cleanup(t->multi);
    while (t->socks)
        drop_sock(t, t->socks);
    ev_timer_stop(t->loop, &t->timer);
    free(t);
}

void bt_tracker_free(bt_tracker *t)
{
    if (!t)
        return;
    if (t->depth > 0) {   /* inside our own callback: finish it first */
        t->dead = 1;
        return;
    }
    really_free(t);
}

void bt_tracker_set_timeouts(bt_tracker *t, double total, double connect)
{
    if (total > 0)
        t->timeout = total;
    if (connect > 0)
        t->connect_timeout = connect;
}

const char *bt_tracker_error(const bt_tracker *t) { return t->err; }
unsigned bt_tracker_pending(const bt_tracker *t) { return t->pending; }

static int seterr(bt_tracker *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int seterr(bt_tracker *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
    return -1;
}

static long ms(double s)
{
    double v = s * 1000.0;
    return v < 1 ? 1 : v > (double)LONG_MAX / 2 ? LONG_MAX / 2 : (long)v;
}

int bt_tracker_announce(bt_tracker *t, const bt_announce *req, bt_announce_cb cb, void *ud)
{
    if (t->dead)
        return seterr(t, "tracker client is being freed");
    bt_buf url = {0};
    int ur = bt_announce_url(&url, req);
    if (ur < 0) {
        bt_buf_free(&url);
        return seterr(t, ur == -1 ? "out of memory" : "invalid announce URL or request");
    }
    request *r = calloc(1, sizeof *r);
    if (!r) {
        bt_buf_free(&url);
        return seterr(t, "out of memory");
    }
    r->t = t;
    r->cb = cb;
    r->ud = ud;
    r->timeout = req->timeout > 0 ? req->timeout : t->timeout;
    double cto = req->connect_timeout > 0 ? req->connect_timeout : t->connect_timeout;
    r->easy = curl_easy_init();
    if (!r->easy) {
        bt_buf_free(&url);
        free(r);
        return seterr(t, "curl_easy_init failed");
    }
    CURL *e = r->easy;
    CURLcode c = curl_easy_setopt(e, CURLOPT_URL, (const char *)url.data);
    bt_buf_free(&url);   /* curl copies the string */
    /* Trackers are http(s) only; a redirect to file:// or anything else fails. */
    if (c == CURLE_OK)
        c = curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c == CURLE_OK)
        c = curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (c != CURLE_OK) {
        free_request(r);
        return seterr(t, "curl refused the URL: %s", curl_easy_strerror(c));
    }
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, (long)BT_TRACKER_MAX_REDIRECTS);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, ms(r->timeout));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, ms(cto));
    curl_easy_setopt(e, CURLOPT_USERAGENT, BT_TRACKER_USER_AGENT);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");   /* whatever curl can decode */
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)BT_TRACKER_MAX_BODY);
    /* Certificate checks stay on (curl's default, the system store). */
    if (curl_multi_add_handle(t->multi, e) != CURLM_OK) {
        free_request(r);
        return seterr(t, "curl_multi_add_handle failed");
    }
    r->id = t->next_id;
    t->next_id = t->next_id == INT_MAX ? 1 : t->next_id + 1;
    r->next = t->reqs;
    if (t->reqs)
        t->reqs->prev = r;
    t->reqs = r;
    t->pending++;
    return r->id;
}

int bt_tracker_cancel(bt_tracker *t, int id)
{
    for (request *r = t->reqs; r; r = r->next)
        if (r->id == id) {
            curl_multi_remove_handle(t->multi, r->easy);
            unlink_request(t, r);
            free_request(r);
            return 0;
        }
    return -1;
}
