/* tracker.c: the tracker client. HTTP(S): libcurl's multi-socket interface driven
 * by libev watchers on the caller's loop (the pattern of curl's
 * docs/examples/evhiperfifo.c): curl tells us which sockets to watch and when to
 * wake it (socket and timer callbacks); libev tells curl when they are ready.
 * UDP (BEP 15): one connected, non-blocking datagram socket per request in flight
 * (the kernel then drops datagrams from any other address, and reports an ICMP
 * "port unreachable" as ECONNREFUSED), a retransmit timer and a deadline timer;
 * the packets are codec/udp_tracker.h. Host names are resolved with glibc's
 * getaddrinfo_a (its own thread), polled from a timer; numeric hosts directly.
 * Nothing blocks, no thread of ours.
 */
#define _GNU_SOURCE   /* getaddrinfo_a */
#include "engine/tracker.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>
#include <ev.h>

#include "codec/udp_tracker.h"

typedef struct request {
    struct request *next, *prev;
    struct bt_tracker *t;
    CURL *easy;
    int id;
    bt_announce_cb cb;
    void *ud;
    bt_buf body;
    int too_large;
    int scrape;             /* a scrape: the body is parsed for info_hash */
    uint8_t info_hash[20];
    double timeout;
    char errbuf[CURL_ERROR_SIZE];
} request;

typedef struct sockinfo {
    ev_io io;
    curl_socket_t fd;
    struct bt_tracker *t;
    struct sockinfo *next, *prev;   /* all of them, so none outlives the client */
} sockinfo;

/* A host name being resolved by getaddrinfo_a. Separate from its request: a lookup
 * glibc cannot cancel must stay valid until glibc is done with it (orphans). */
typedef struct lookup {
    struct gaicb cb;
    struct addrinfo hints;
    char host[BT_UDP_MAX_HOST + 1];
    char port[8];
    struct lookup *next;    /* in the orphan list */
} lookup;

/* Connection ids by tracker address, each used for at most conn_ttl (BT_UDP_CONN_TTL). */
#define CONN_CACHE 32
typedef struct conn_entry {
    struct sockaddr_storage addr;
    socklen_t alen;
    uint64_t id;
    ev_tstamp got;          /* 0: empty */
} conn_entry;

enum { U_RESOLVING, U_CONNECTING, U_REQUESTING };

typedef struct udp_req {
    struct udp_req *next, *prev;
    struct bt_tracker *t;
    int id;
    bt_announce_cb cb;
    void *ud;
    int scrape;
    bt_announce req;        /* url and tracker_id cleared: not kept */
    char urldata[BT_UDP_MAX_URLDATA];
    size_t urldata_len;
    struct sockaddr_storage addr;
    socklen_t alen;
    int family;             /* 4 or 6 */
    int fd;
    int state;
    uint32_t tid;
    uint64_t conn_id;
    int attempt;            /* retransmissions of the current packet */
    unsigned sent;          /* packets sent, for the timeout message */
    double first_timeout, timeout;
    lookup *lk;
    ev_io io;
    ev_timer retry, deadline, poll;
} udp_req;

struct bt_tracker {
    struct ev_loop *loop;
    udp_req *udps;          /* UDP requests in flight, doubly linked */
    conn_entry conns[CONN_CACHE];
    CURLM *multi;
    ev_timer timer;
    request *reqs;          /* in flight, doubly linked */
    sockinfo *socks;        /* watched sockets, doubly linked */
    unsigned pending;
    int next_id;
    double timeout, connect_timeout;
    double conn_ttl;        /* a UDP connection id is used this long (BT_UDP_CONN_TTL) */
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
    int pr = r->scrape ? bt_scrape_parse((const char *)r->body.data, r->body.len, r->info_hash, res)
                       : bt_tracker_parse((const char *)r->body.data, r->body.len, res);
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

void bt_tracker_set_conn_ttl(bt_tracker *t, double seconds)
{
    if (seconds > 0 && seconds <= BT_UDP_CONN_TTL)
        t->conn_ttl = seconds;
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
    t->conn_ttl = BT_UDP_CONN_TTL;
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

static void udp_drop(bt_tracker *t, udp_req *u);
static void reap_orphans(void);

static void really_free(bt_tracker *t)
{
    while (t->udps)
        udp_drop(t, t->udps);
    reap_orphans();
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

static int next_id(bt_tracker *t)
{
    int id = t->next_id;
    t->next_id = t->next_id == INT_MAX ? 1 : t->next_id + 1;
    return id;
}

static int udp_start(bt_tracker *t, const bt_announce *req, int scrape, bt_announce_cb cb, void *ud);

/* An HTTP(S) transfer of url (owned: freed here) for req. */
static int http_start(bt_tracker *t, bt_buf url, const bt_announce *req, int scrape, bt_announce_cb cb,
                      void *ud)
{
    request *r = calloc(1, sizeof *r);
    if (!r) {
        bt_buf_free(&url);
        return seterr(t, "out of memory");
    }
    r->t = t;
    r->scrape = scrape;
    memcpy(r->info_hash, req->info_hash, 20);
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
    r->id = next_id(t);
    r->next = t->reqs;
    if (t->reqs)
        t->reqs->prev = r;
    t->reqs = r;
    t->pending++;
    return r->id;
}

static int is_udp(const char *url) { return url && strncasecmp(url, "udp://", 6) == 0; }

int bt_tracker_announce(bt_tracker *t, const bt_announce *req, bt_announce_cb cb, void *ud)
{
    if (t->dead)
        return seterr(t, "tracker client is being freed");
    if (is_udp(req->url))
        return udp_start(t, req, 0, cb, ud);
    bt_buf url = {0};
    int ur = bt_announce_url(&url, req);
    if (ur < 0) {
        bt_buf_free(&url);
        return seterr(t, ur == -1 ? "out of memory" : "invalid announce URL or request");
    }
    return http_start(t, url, req, 0, cb, ud);
}

int bt_tracker_scrape(bt_tracker *t, const bt_announce *req, bt_announce_cb cb, void *ud)
{
    if (t->dead)
        return seterr(t, "tracker client is being freed");
    if (is_udp(req->url))
        return udp_start(t, req, 1, cb, ud);
    bt_buf url = {0};
    int ur = bt_scrape_url(&url, req->url, req->info_hash);
    if (ur < 0) {
        bt_buf_free(&url);
        return seterr(t, ur == -1 ? "out of memory"
                         : ur == -3 ? "no scrape URL (the announce URL's path does not end in /announce)"
                                    : "invalid announce URL");
    }
    return http_start(t, url, req, 1, cb, ud);
}

int bt_tracker_cancel(bt_tracker *t, int id)
{
    for (udp_req *u = t->udps; u; u = u->next)
        if (u->id == id) {
            udp_drop(t, u);
            return 0;
        }
    for (request *r = t->reqs; r; r = r->next)
        if (r->id == id) {
            curl_multi_remove_handle(t->multi, r->easy);
            unlink_request(t, r);
            free_request(r);
            return 0;
        }
    return -1;
}

/* ---- UDP trackers (BEP 15) ------------------------------------------------ */

/* Lookups glibc could not cancel: freed once glibc has finished with them. */
static lookup *orphans;

static void reap_orphans(void)
{
    for (lookup **pp = &orphans; *pp;) {
        lookup *l = *pp;
        if (gai_error(&l->cb) == EAI_INPROGRESS) {
            pp = &l->next;
            continue;
        }
        *pp = l->next;
        if (l->cb.ar_result)
            freeaddrinfo(l->cb.ar_result);
        free(l);
    }
}

static void drop_lookup(lookup *l)
{
    if (!l)
        return;
    int c = gai_cancel(&l->cb);
    if (c == EAI_NOTCANCELED || (c != EAI_CANCELED && c != EAI_ALLDONE && gai_error(&l->cb) == EAI_INPROGRESS)) {
        l->next = orphans;
        orphans = l;
        return;
    }
    if (l->cb.ar_result)
        freeaddrinfo(l->cb.ar_result);
    free(l);
}

static uint32_t random32(void)
{
    static uint32_t fallback = 0x9e3779b9u;
    uint32_t v;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) == (ssize_t)sizeof v)
        return v;
    fallback ^= fallback << 13;   /* only if the kernel's pool cannot be read */
    fallback ^= fallback >> 17;
    fallback ^= fallback << 5;
    return fallback ^ (uint32_t)(ev_time() * 1e6);
}

static conn_entry *conn_find(bt_tracker *t, const udp_req *u)
{
    for (int i = 0; i < CONN_CACHE; i++)
        if (t->conns[i].got > 0 && t->conns[i].alen == u->alen && memcmp(&t->conns[i].addr, &u->addr, u->alen) == 0)
            return &t->conns[i];
    return NULL;
}

static void conn_store(bt_tracker *t, const udp_req *u, uint64_t id)
{
    conn_entry *e = conn_find(t, u);
    if (!e) {   /* else the oldest (or an empty) slot */
        e = &t->conns[0];
        for (int i = 1; i < CONN_CACHE; i++)
            if (t->conns[i].got < e->got)
                e = &t->conns[i];
    }
    memcpy(&e->addr, &u->addr, u->alen);
    e->alen = u->alen;
    e->id = id;
    e->got = ev_now(t->loop);
}

/* A fresh connection id for u's tracker, or 0 with none (ids are random 64-bit
 * numbers: 0 is as unlikely as any other, and then we just connect again). */
static uint64_t conn_fresh(bt_tracker *t, const udp_req *u)
{
    conn_entry *e = conn_find(t, u);
    return e && ev_now(t->loop) - e->got < t->conn_ttl ? e->id : 0;
}

/* Unlink u and free everything it holds; no callback. */
static void udp_drop(bt_tracker *t, udp_req *u)
{
    if (u->prev)
        u->prev->next = u->next;
    else
        t->udps = u->next;
    if (u->next)
        u->next->prev = u->prev;
    t->pending--;
    ev_io_stop(t->loop, &u->io);
    ev_timer_stop(t->loop, &u->retry);
    ev_timer_stop(t->loop, &u->deadline);
    ev_timer_stop(t->loop, &u->poll);
    if (u->fd >= 0)
        close(u->fd);
    drop_lookup(u->lk);
    free(u);
}

/* Report res for u and free u. The callback may free t (depth is held by our caller). */
static void udp_finish(udp_req *u, bt_announce_result *res)
{
    bt_tracker *t = u->t;
    bt_announce_cb cb = u->cb;
    void *ud = u->ud;
    int id = u->id;
    udp_drop(t, u);
    if (cb)
        cb(ud, id, res);
    bt_announce_result_free(res);
}

static void udp_fail(udp_req *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void udp_fail(udp_req *u, const char *fmt, ...)
{
    bt_announce_result res;
    bt_announce_result_init(&res);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res.error, sizeof res.error, fmt, ap);
    va_end(ap);
    udp_finish(u, &res);
}

/* Send the packet of u's state with its current transaction id, and arm the
 * retransmit timer for first_timeout * 2^attempt. Returns 0, or -1 after u failed. */
static int udp_send(udp_req *u)
{
    bt_tracker *t = u->t;
    uint8_t pkt[BT_UDP_MAX_REQUEST];
    size_t n;
    if (u->state == U_CONNECTING) {
        bt_udp_connect_req(pkt, u->tid);
        n = 16;
    } else if (u->scrape) {
        bt_udp_scrape_req(pkt, u->conn_id, u->tid, u->req.info_hash);
        n = 36;
    } else {
        n = bt_udp_announce_req(pkt, u->conn_id, u->tid, &u->req, u->urldata, u->urldata_len);
    }
    if (n == 0) {
        udp_fail(u, "invalid announce request");
        return -1;
    }
    ssize_t w = send(u->fd, pkt, n, 0);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) {
        if (errno == ECONNREFUSED)
            udp_fail(u, "connection refused (UDP port unreachable)");
        else
            udp_fail(u, "cannot send: %s", strerror(errno));
        return -1;
    }
    u->sent++;   /* a datagram dropped for want of buffers is one lost packet: retried */
    double wait = u->first_timeout;
    for (int i = 0; i < u->attempt; i++)
        wait *= 2;
    ev_timer_stop(t->loop, &u->retry);
    ev_timer_set(&u->retry, wait, 0.);
    ev_timer_start(t->loop, &u->retry);
    return 0;
}

/* Start (or restart) the exchange: announce or scrape at once with a fresh
 * connection id, else connect first. Each new packet has a new random id. */
static int udp_begin(udp_req *u)
{
    u->attempt = 0;
    u->tid = random32();
    u->conn_id = conn_fresh(u->t, u);
    u->state = u->conn_id ? U_REQUESTING : U_CONNECTING;
    return udp_send(u);
}

static void udp_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    udp_req *u = w->data;
    bt_tracker *t = u->t;
    t->depth++;
    if (u->attempt >= BT_UDP_MAX_RETRIES) {
        udp_fail(u, "timeout: no answer to %u packets", u->sent);
    } else {
        u->attempt++;
        /* A retransmitted request keeps its transaction id (a late answer to the
         * first copy is as good), unless its connection id has aged out. */
        if (u->state == U_REQUESTING && !conn_fresh(t, u))
            udp_begin(u);
        else
            udp_send(u);
    }
    leave(t);
}

static void udp_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    udp_req *u = w->data;
    bt_tracker *t = u->t;
    t->depth++;
    udp_fail(u, "timeout after %g s (%u packets, no valid answer)", u->timeout, u->sent);
    leave(t);
}

static void udp_read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    udp_req *u = w->data;
    bt_tracker *t = u->t;
    t->depth++;
    static uint8_t buf[BT_UDP_MAX_REPLY];   /* the loop is single-threaded; parsed at once */
    /* Bounded: a flood of datagrams that are not ours cannot hold the loop. */
    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(u->fd, buf, sizeof buf, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                break;
            if (errno == ECONNREFUSED)
                udp_fail(u, "connection refused (UDP port unreachable)");
            else
                udp_fail(u, "cannot receive: %s", strerror(errno));
            break;
        }
        bt_announce_result res;
        uint64_t conn = 0;
        uint32_t want = u->state == U_CONNECTING ? BT_UDP_CONNECT : u->scrape ? BT_UDP_SCRAPE : BT_UDP_ANNOUNCE;
        int pr = bt_udp_parse_reply(buf, (size_t)n, want, u->tid, u->family, &res, &conn);
        if (pr == 1) {   /* another transaction's (a stale reply): keep waiting */
            bt_announce_result_free(&res);
            continue;
        }
        if (pr < 0 || res.failure_reason || u->state == U_REQUESTING) {
            udp_finish(u, &res);
            break;
        }
        bt_announce_result_free(&res);
        conn_store(t, u, conn);
        u->conn_id = conn;
        u->state = U_REQUESTING;
        u->attempt = 0;
        u->tid = random32();
        if (udp_send(u) < 0)
            break;
    }
    leave(t);
}

/* The address is known: open the socket and send the first packet. 0, or -1 after u failed. */
static int udp_open(udp_req *u)
{
    bt_tracker *t = u->t;
    int fam = u->addr.ss_family;
    u->family = fam == AF_INET6 ? 6 : 4;
    u->fd = socket(fam, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (u->fd < 0) {
        udp_fail(u, "cannot open a UDP socket: %s", strerror(errno));
        return -1;
    }
    if (connect(u->fd, (struct sockaddr *)&u->addr, u->alen) < 0) {
        udp_fail(u, "cannot connect: %s", strerror(errno));
        return -1;
    }
    ev_io_init(&u->io, udp_read_cb, u->fd, EV_READ);
    u->io.data = u;
    ev_io_start(t->loop, &u->io);
    return udp_begin(u);
}

/* The first IPv4 address of the lookup, else the first IPv6 one. IPv4 first: the engine
 * itself is IPv4 (it listens and dials on IPv4), and a name like localhost often lists ::1
 * first, where a tracker bound to 127.0.0.1 is unreachable (a fresh Debian 12 does). */
static int take_addr(udp_req *u, const struct addrinfo *list)
{
    const int fams[2] = { AF_INET, AF_INET6 };
    for (int f = 0; f < 2; f++)
        for (const struct addrinfo *ai = list; ai; ai = ai->ai_next)
            if (ai->ai_family == fams[f] && ai->ai_addrlen <= sizeof u->addr) {
                memcpy(&u->addr, ai->ai_addr, ai->ai_addrlen);
                u->alen = (socklen_t)ai->ai_addrlen;
                return 0;
            }
    return -1;
}

static void udp_poll_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    udp_req *u = w->data;
    bt_tracker *t = u->t;
    if (!u->lk) {   /* a numeric host: the address is ready */
        t->depth++;
        ev_timer_stop(t->loop, &u->poll);
        udp_open(u);
        leave(t);
        return;
    }
    int e = gai_error(&u->lk->cb);
    if (e == EAI_INPROGRESS)
        return;   /* the repeating timer polls again */
    t->depth++;
    ev_timer_stop(t->loop, &u->poll);
    if (e != 0)
        udp_fail(u, "cannot resolve host: %s: %s", u->lk->host, gai_strerror(e));
    else if (take_addr(u, u->lk->cb.ar_result) < 0)
        udp_fail(u, "cannot resolve host: %s: no IPv4 or IPv6 address", u->lk->host);
    else {
        drop_lookup(u->lk);
        u->lk = NULL;
        udp_open(u);
    }
    leave(t);
}

static int udp_start(bt_tracker *t, const bt_announce *req, int scrape, bt_announce_cb cb, void *ud)
{
    bt_udp_url url;
    if (bt_udp_parse_url(req->url, &url) < 0)
        return seterr(t, "invalid UDP tracker URL (udp://host:port[/path], path at most %d bytes)",
                      BT_UDP_MAX_URLDATA);
    if ((unsigned)req->event > BT_EVENT_STOPPED)
        return seterr(t, "invalid announce request");
    udp_req *u = calloc(1, sizeof *u);
    if (!u)
        return seterr(t, "out of memory");
    u->t = t;
    u->fd = -1;
    u->cb = cb;
    u->ud = ud;
    u->scrape = scrape;
    u->req = *req;
    u->req.url = NULL;
    u->req.tracker_id = NULL;   /* HTTP only */
    u->req.tracker_id_len = 0;
    memcpy(u->urldata, url.path, url.path_len);
    u->urldata_len = url.path_len;
    u->timeout = req->timeout > 0 ? req->timeout : t->timeout;
    /* BEP 15's first wait is 15 s; a caller may ask for a shorter one. */
    u->first_timeout = req->connect_timeout > 0 && req->connect_timeout < BT_UDP_TIMEOUT_BASE
                           ? req->connect_timeout : BT_UDP_TIMEOUT_BASE;
    ev_init(&u->io, udp_read_cb);
    ev_timer_init(&u->retry, udp_retry_cb, 0., 0.);
    ev_timer_init(&u->deadline, udp_deadline_cb, u->timeout, 0.);
    ev_timer_init(&u->poll, udp_poll_cb, 0.005, 0.02);
    u->retry.data = u->deadline.data = u->poll.data = u;
    u->id = next_id(t);
    u->next = t->udps;
    if (t->udps)
        t->udps->prev = u;
    t->udps = u;
    t->pending++;

    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, url.host, &a4) == 1) {
        struct sockaddr_in *sa = (struct sockaddr_in *)&u->addr;
        sa->sin_family = AF_INET;
        sa->sin_port = htons(url.port);
        sa->sin_addr = a4;
        u->alen = sizeof *sa;
    } else if (inet_pton(AF_INET6, url.host, &a6) == 1) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)&u->addr;
        sa->sin6_family = AF_INET6;
        sa->sin6_port = htons(url.port);
        sa->sin6_addr = a6;
        u->alen = sizeof *sa;
    } else {
        reap_orphans();
        lookup *l = calloc(1, sizeof *l);
        if (!l) {
            udp_drop(t, u);
            return seterr(t, "out of memory");
        }
        snprintf(l->host, sizeof l->host, "%s", url.host);
        snprintf(l->port, sizeof l->port, "%u", (unsigned)url.port);
        l->hints.ai_socktype = SOCK_DGRAM;
        l->hints.ai_family = AF_UNSPEC;
        l->cb.ar_name = l->host;
        l->cb.ar_service = l->port;
        l->cb.ar_request = &l->hints;
        struct gaicb *list[1] = {&l->cb};
        int e = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
        if (e != 0) {
            free(l);
            udp_drop(t, u);
            return seterr(t, "cannot resolve host: %s: %s", url.host, gai_strerror(e));
        }
        u->lk = l;
        u->state = U_RESOLVING;
        ev_timer_start(t->loop, &u->deadline);
        ev_timer_start(t->loop, &u->poll);
        return u->id;
    }
    /* The socket is opened from the loop: failures after the request was accepted
     * are reported through the callback, never from inside this call. */
    ev_timer_start(t->loop, &u->deadline);
    ev_timer_set(&u->poll, 0., 0.);
    u->state = U_RESOLVING;
    ev_timer_start(t->loop, &u->poll);
    return u->id;
}
