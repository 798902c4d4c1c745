/* session.c: the loop, the listener, the dialer, the prepare watcher and the tick
 * (session.h). */
#define _GNU_SOURCE
#include "engine/session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double bt_sess_now(const bt_session *s)
{
    return ev_now(s->loop);
}

/* ---- events ---- */

static void event_push(bt_session *s, bt_event_kind kind, bt_torrent *t, uint32_t piece, bool ok, uint64_t uid,
                       const char *text, const char *address)
{
    if (s->nevents >= BT_SESS_MAX_EVENTS)
        return;   /* nobody is draining events: drop rather than grow without bound */
    if (s->nevents == s->evcap) {
        uint32_t ncap = s->evcap ? s->evcap * 2 : 64;
        bt_event *ne = realloc(s->events, ncap * sizeof *ne);
        if (!ne)
            return;
        s->events = ne;
        s->evcap = ncap;
    }
    s->events[s->nevents++] = (bt_event){ .kind = kind, .t = t, .piece = piece, .ok = ok, .peer_uid = uid,
                                          .text = text ? strdup(text) : NULL,
                                          .address = address ? strdup(address) : NULL };
}

static void event_free(bt_event *ev)
{
    free(ev->text);
    free(ev->address);
    free(ev->addrs);
}

/* The policy scheduler first (on_piece, a new peer's queue depth), then the owner.
 * Events may queue more events (a handler stopping a torrent): bounded rounds. */
static void deliver_events(bt_session *s)
{
    for (int round = 0; round < 4 && s->nevents > 0; round++) {
        uint32_t n = s->nevents;
        bt_event *batch = malloc(n * sizeof *batch);
        if (!batch)
            return;
        memcpy(batch, s->events, n * sizeof *batch);
        s->nevents = 0;
        for (uint32_t i = 0; i < n; i++) {
            bt_event *ev = &batch[i];
            bt_torrent *t = ev->t;
            if (t) {
                bt_peer *p = ev->peer_uid ? bt_torrent_peer_by_uid(t, ev->peer_uid) : NULL;
                if (ev->kind == BT_EV_PIECE)
                    bt_policy_on_piece(t, ev->piece, ev->ok, p);
                else if (ev->kind == BT_EV_PEER_CONNECT && p)
                    bt_policy_on_connect(t, p);
                if (s->cb.event)
                    s->cb.event(s->cb.ud, ev);
            }
            event_free(ev);
        }
        free(batch);
    }
}

/* ---- what torrents report (torrent.h) ---- */

static void t_piece(void *ud, bt_torrent *t, uint32_t piece, bool ok, uint64_t uid)
{
    event_push(ud, BT_EV_PIECE, t, piece, ok, uid, NULL, NULL);
}

static void t_complete(void *ud, bt_torrent *t)
{
    event_push(ud, BT_EV_COMPLETE, t, 0, true, 0, NULL, NULL);
}

static void t_stopped(void *ud, bt_torrent *t, const char *why)
{
    event_push(ud, BT_EV_ERROR, t, 0, false, 0, why, NULL);
}

static void t_peer_connect(void *ud, bt_torrent *t, bt_peer *p)
{
    event_push(ud, BT_EV_PEER_CONNECT, t, 0, true, p->uid, NULL, p->address);
}

static void t_peer_disconnect(void *ud, bt_torrent *t, bt_peer *p, const char *why)
{
    event_push(ud, BT_EV_PEER_DISCONNECT, t, 0, false, p->uid, why, p->address);
}

static void t_pex(void *ud, bt_torrent *t, bt_peer *p, const bt_pex_addr *added, uint32_t n)
{
    bt_session *s = ud;
    bt_pex_addr *copy = malloc(n * sizeof *copy);
    if (!copy)
        return;
    memcpy(copy, added, n * sizeof *copy);
    uint32_t before = s->nevents;
    event_push(s, BT_EV_PEX, t, 0, true, p->uid, NULL, p->address);
    if (s->nevents == before) {   /* the queue is full: dropped */
        free(copy);
        return;
    }
    s->events[s->nevents - 1].addrs = copy;
    s->events[s->nevents - 1].naddrs = n;
}

static void t_peer_gone(void *ud, bt_torrent *t, bt_peer *p)
{
    (void)t;
    bt_session *s = ud;
    if (s->cb.peer_gone)
        s->cb.peer_gone(s->cb.ud, p);
}

static void t_metadata(void *ud, bt_torrent *t)
{
    event_push(ud, BT_EV_METADATA, t, 0, true, 0, NULL, NULL);
}

static const bt_torrent_cb SESSION_TORRENT_CB = {
    .piece = t_piece, .complete = t_complete, .stopped = t_stopped, .peer_connect = t_peer_connect,
    .peer_disconnect = t_peer_disconnect, .peer_gone = t_peer_gone, .metadata = t_metadata, .pex = t_pex,
};

/* ---- connections before their handshake names a torrent (peer.h) ---- */

static void pending_unlink(bt_session *s, bt_peer *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        s->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
    s->npending--;
}

/* Same host: the address without the port. */
static bool same_host(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                      16) == 0;
    return false;
}

/* Live connections with the host of sa, in their handshake or attached to any torrent;
 * *pending (if not NULL): those in their handshake. One linear scan: a few hundred
 * connections at most. */
static uint32_t conns_from(const bt_session *s, const struct sockaddr *sa, uint32_t *pending)
{
    uint32_t n = 0;
    for (const bt_peer *p = s->pending; p; p = p->next)
        n += !p->closing && same_host(sa, &p->addr);
    if (pending)
        *pending = n;
    for (const bt_torrent *t = s->torrents; t; t = t->next)
        for (const bt_peer *p = t->peers; p; p = p->next)
            n += !p->closing && same_host(sa, &p->addr);
    return n;
}

/* ---- strikes (session.h): hosts that wasted a slot may not push others out ---- */

/* The host of sa as 16 bytes (an IPv4 address in the first 4) and its family; 0: none. */
static int host_key(const struct sockaddr *sa, uint8_t key[16])
{
    memset(key, 0, 16);
    if (sa->sa_family == AF_INET)
        memcpy(key, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    else if (sa->sa_family == AF_INET6)
        memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
    else
        return 0;
    return sa->sa_family;
}

static struct bt_strike *strike_slot(const bt_session *s, const uint8_t key[16])
{
    uint64_t h = 1469598103934665603ull;   /* FNV-1a */
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return &s->strikes[h & (BT_SESS_STRIKES - 1)];
}

static void strike(bt_session *s, const struct sockaddr *sa)
{
    uint8_t key[16];
    int fam = host_key(sa, key);
    if (!s->strikes || !fam || !s->max_per_ip)
        return;
    struct bt_strike *x = strike_slot(s, key);
    memcpy(x->host, key, 16);
    x->fam = (uint8_t)fam;
    x->until = ev_now(s->loop) + BT_SESS_STRIKE_TIME;
}

static bool struck(const bt_session *s, const struct sockaddr *sa)
{
    uint8_t key[16];
    int fam = host_key(sa, key);
    if (!s->strikes || !fam)
        return false;
    const struct bt_strike *x = strike_slot(s, key);
    return x->fam == fam && memcmp(x->host, key, 16) == 0 && x->until > ev_now(s->loop);
}

/* A slot for a newcomer from sa in t: a free one, or one made by evicting a useless peer
 * if its host has not wasted a slot lately and holds no slot of t already (a host's
 * second connection does not push out somebody else's first). The evicted peer's host
 * gets a strike. max_per_ip 0 turns the host rules off (every peer of a loopback test
 * is one host). */
static bool make_room_for(bt_session *s, bt_torrent *t, const struct sockaddr *sa)
{
    bool may_evict = !struck(s, sa);
    for (const bt_peer *q = t->peers; may_evict && s->max_per_ip && q; q = q->next)
        if (!q->closing && same_host(sa, &q->addr))
            may_evict = false;
    bt_peer *victim = NULL;
    if (!bt_torrent_make_room(t, ev_now(s->loop), s->evict_idle, may_evict ? &victim : NULL))
        return false;
    if (victim)
        strike(s, (const struct sockaddr *)&victim->addr);
    return true;
}

static int p_handshake(void *ud, bt_peer *p, const bt_handshake *hs, const char **why)
{
    bt_session *s = ud;
    bt_torrent *t = s->torrents;
    while (t && (t->stopped || memcmp(t->info_hash, hs->info_hash, 20) != 0))
        t = t->next;
    if (!t) {
        *why = "handshake for a torrent we do not serve";
        return -1;
    }
    if (bt_torrent_banned(t, p->address)) {
        *why = "banned";
        return -1;
    }
    if (!make_room_for(s, t, (const struct sockaddr *)&p->addr)) {
        *why = "too many peers";
        return -1;
    }
    pending_unlink(s, p);
    if (bt_torrent_attach(t, p, why) != 0) {
        /* cannot happen after the checks above; keep it closing in the pending list */
        p->next = s->pending;
        if (s->pending)
            s->pending->prev = p;
        s->pending = p;
        s->npending++;
        return -1;
    }
    return p->cb->handshake(p->ud, p, hs, why);   /* the torrent's own checks */
}

/* MSE: is the obfuscated info-hash one we serve? */
static int p_mse_skey(void *ud, bt_mse *m)
{
    for (bt_torrent *t = ((bt_session *)ud)->torrents; t; t = t->next)
        if (!t->stopped && bt_mse_try_skey(m, t->info_hash))
            return 1;
    return 0;
}

static const bt_peer_cb SESSION_PEER_CB = {
    .handshake = p_handshake,
    .mse_skey = p_mse_skey,
};

/* ---- sockets ---- */

static void tune_socket(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* The handshake queue is full: its oldest connection makes room for the new one. A
 * real peer sends its handshake within a round trip of connecting, so sockets that
 * connect and stay silent (reconnecting as soon as they are closed) cannot hold the
 * queue: a newcomer is only pushed out by max_pending later arrivals. Refusing the
 * newcomer instead let 64 such sockets lock every peer out. */
static void pending_make_room(bt_session *s)
{
    bt_peer *old = NULL;
    for (bt_peer *p = s->pending; p; p = p->next)   /* newest first: the last live one is the oldest */
        if (!p->closing)
            old = p;
    if (!old)
        return;
    bt_peer_close(old, "handshake queue full: too slow to send a handshake");
    strike(s, (const struct sockaddr *)&old->addr);
    if (s->cb.peer_gone)
        s->cb.peer_gone(s->cb.ud, old);
    pending_unlink(s, old);
    bt_peer_free(old);
}

static void on_listen_rested(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    bt_session *s = w->data;
    for (uint32_t i = 0; i < s->nlisten; i++)
        ev_io_start(loop, &s->listen[i].w);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_session *s = w->data;
    for (int i = 0; i < 16; i++) {   /* a few per wake-up, so a flood cannot starve peers */
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(w->fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            /* Out of descriptors (or kernel memory) the connection stays in the backlog
             * and the level-triggered listener would fire again at once: a spin at 100 %
             * of a core. Rest it; the timer starts it again. */
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                for (uint32_t k = 0; k < s->nlisten; k++)
                    ev_io_stop(s->loop, &s->listen[k].w);
                ev_timer_set(&s->lpause, BT_SESS_ACCEPT_PAUSE, 0);
                ev_timer_start(s->loop, &s->lpause);
            }
            return;
        }
        /* Per host: at most max_per_ip connections, half of them in their handshake. */
        uint32_t hs = 0;
        if (s->max_per_ip && (conns_from(s, (struct sockaddr *)&sa, &hs) >= s->max_per_ip
                              || hs >= (s->max_per_ip + 1) / 2)) {
            close(fd);
            continue;
        }
        if (s->npending >= s->max_pending) {
            if (struck(s, (struct sockaddr *)&sa)) {   /* it wasted a place lately: no pushing out */
                close(fd);
                continue;
            }
            pending_make_room(s);
        }
        tune_socket(fd);
        bt_peer *p = bt_peer_new(&s->env, fd, true, (struct sockaddr *)&sa, sl, ++s->next_uid, &SESSION_PEER_CB, s);
        if (!p) {
            close(fd);
            continue;
        }
        p->next = s->pending;
        if (s->pending)
            s->pending->prev = p;
        s->pending = p;
        s->npending++;
    }
}

int bt_sess_connect(bt_session *s, bt_torrent *t, const char *host, int port, bt_peer_source source,
                    const char **err)
{
    if (t->stopped) {
        *err = "torrent is stopped";
        return -1;
    }
    if (port <= 0 || port > 65535) {
        *err = "port out of range";
        return -1;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    int fam;
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        fam = a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        fam = a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        sl = sizeof *a6;
    } else {
        *err = "not a numeric IP address";
        return -1;
    }
    char ip[INET6_ADDRSTRLEN], addr[64];   /* canonical, as peer.c writes p->address */
    inet_ntop(fam, fam == AF_INET ? (void *)&a4->sin_addr : (void *)&a6->sin6_addr, ip, sizeof ip);
    snprintf(addr, sizeof addr, fam == AF_INET6 ? "[%s]:%d" : "%s:%d", ip, port);
    if (bt_torrent_banned(t, addr)) {
        *err = "peer is banned";
        return -1;
    }
    if (bt_torrent_connected_to(t, addr)) {
        *err = "already connected";
        return -1;
    }
    if (s->max_per_ip && conns_from(s, (struct sockaddr *)&ss, NULL) >= s->max_per_ip) {
        *err = "too many connections to this address (max_per_ip)";
        return -1;
    }
    if (!make_room_for(s, t, (struct sockaddr *)&ss)) {
        *err = "too many peers";
        return -1;
    }
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = strerror(errno);
        return -1;
    }
    tune_socket(fd);
    if (connect(fd, (struct sockaddr *)&ss, sl) != 0 && errno != EINPROGRESS) {
        *err = strerror(errno);
        close(fd);
        return -1;
    }
    bt_peer *p = bt_peer_new(&s->env, fd, false, (struct sockaddr *)&ss, sl, ++s->next_uid, &SESSION_PEER_CB, s);
    if (!p) {
        close(fd);
        *err = "out of memory";
        return -1;
    }
    p->source = (uint8_t)source;
    if (bt_torrent_attach(t, p, err) != 0) {   /* checked above: cannot fail */
        bt_peer_free(p);
        return -1;
    }
    bt_peer_send_handshake(p);   /* queued now, flushed once the connect completes */
    return 0;
}

/* ---- the loop ---- */

/* Deliver queued events, run batched picks, serve and flush output, free closed peers. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_session *s = w->data;
    deliver_events(s);   /* first: on_piece may change what pick should do */
    for (bt_torrent *t = s->torrents; t; t = t->next)
        bt_policy_picks(t);
    deliver_events(s);   /* raised by the picks (a policy error) */
    for (bt_torrent *t = s->torrents; t; t = t->next)
        bt_torrent_serve(t);
    for (bt_torrent *t = s->torrents; t; t = t->next)
        bt_torrent_reap(t);
    for (bt_peer *p = s->pending, *n; p; p = n) {
        n = p->next;
        if (p->closing) {
            if (s->cb.peer_gone)
                s->cb.peer_gone(s->cb.ud, p);
            pending_unlink(s, p);
            bt_peer_free(p);
        } else if (p->wbuf.len > 0) {
            bt_peer_flush(p);
        }
    }
    if (s->stop)
        ev_break(s->loop, EVBREAK_ALL);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    bt_session *s = w->data;
    double now = ev_now(loop);
    double dt = s->last_tick > 0 ? now - s->last_tick : s->tick_s;
    s->last_tick = now;
    for (bt_torrent *t = s->torrents; t; t = t->next)
        bt_torrent_tick(t, now, dt);
    bool busy = 2 * s->npending > s->max_pending;   /* the queue is filling: a shorter timeout */
    for (bt_peer *p = s->pending; p; p = p->next) {
        if (busy && !p->closing && now - p->connected_at > BT_SESS_HS_BUSY_TIMEOUT)
            bt_peer_close(p, "handshake timed out (queue busy)");
        bt_peer_tick(p, now, dt);
    }
    for (bt_torrent *t = s->torrents; t; t = t->next)
        bt_policy_tick(t, now);
    if (s->cb.tick)
        s->cb.tick(s->cb.ud, now);
}

/* The throttle's retry: restart throttled reads (each asks the buckets again and
 * throttles itself again if they are still empty); queued uploads are retried by
 * the prepare watcher. */
static void on_retry(void *ud)
{
    bt_session *s = ud;
    for (bt_torrent *t = s->torrents; t; t = t->next)
        for (bt_peer *p = t->peers; p; p = p->next)
            bt_peer_unthrottle(p);
    for (bt_peer *p = s->pending; p; p = p->next)
        bt_peer_unthrottle(p);
}

static void bucket_limit(bt_bucket *b, double rate)
{
    if (!(rate > 0))
        rate = 0;
    bt_bucket_set(b, rate, rate > 0 ? rate * BT_RATE_BURST_S : 0);   /* at least one block: ratelimit.h */
    if (b->tokens > b->burst || rate == 0)
        b->tokens = b->burst;
}

void bt_sess_set_limits(bt_session *s, double down, double up)
{
    bucket_limit(&s->down, down);
    bucket_limit(&s->up, up);
    bt_throttle_wait(&s->throttle, 0);   /* a raised limit frees throttled peers now */
}

/* libev binds a signal to one loop per process: the session owning them. */
static bt_session *signal_owner;

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_session *s = w->data;
    s->got_signal = w->signum;
    bt_sess_stop(s);   /* the Lua side saves resume data and announces "stopped" */
}

/* One listening socket on a numeric address and port (0: any; *port gets the one
 * taken). Returns the descriptor, or -1 with *err (static or errno text); *absent is set
 * when the address family does not exist here (no IPv6). */
static int listen_one(const char *addr, uint16_t *port, bool *absent, const char **err)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    socklen_t sl;
    if (inet_pton(AF_INET, addr, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons(*port);
        sl = sizeof *a4;
    } else if (inet_pton(AF_INET6, addr, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons(*port);
        sl = sizeof *a6;
    } else {
        *err = "bind address is not a numeric IP address";
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *absent = errno == EAFNOSUPPORT;
        *err = strerror(errno);
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        *absent = e == EADDRNOTAVAIL || e == EAFNOSUPPORT;
        *err = strerror(e);
        close(fd);
        errno = e;
        return -1;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof got;
    getsockname(fd, (struct sockaddr *)&got, &gl);
    *port = ntohs(got.ss_family == AF_INET ? ((struct sockaddr_in *)&got)->sin_port
                                           : ((struct sockaddr_in6 *)&got)->sin6_port);
    return fd;
}

/* Listen on every address of the comma-separated list, all on one port (the first
 * socket picks it when port is 0). In the default list an address family the system
 * lacks is skipped; an address given explicitly must work. 0, -1 with *err, or 1: the
 * port drawn for port 0 is taken on a later address (the caller draws again). */
static int listen_list(bt_session *s, const char *list, int port, const char **err)
{
    bool dflt = !list || !*list;
    char buf[256];
    if (strlen(dflt ? BT_SESS_BIND_ALL : list) >= sizeof buf) {
        *err = "bind: address list too long";
        return -1;
    }
    strcpy(buf, dflt ? BT_SESS_BIND_ALL : list);
    uint16_t p = (uint16_t)port;
    char *save = NULL;
    for (char *a = strtok_r(buf, ", ", &save); a; a = strtok_r(NULL, ", ", &save)) {
        if (s->nlisten == BT_SESS_MAX_LISTEN) {
            *err = "bind: too many addresses (at most 4)";
            return -1;
        }
        bool absent = false;
        int fd = listen_one(a, &p, &absent, err);
        if (fd < 0) {
            if (dflt && absent)
                continue;
            if (errno == EADDRINUSE && port == 0 && s->nlisten > 0)
                return 1;   /* the port the first socket drew is taken on this address: draw again */
            return -1;
        }
        struct bt_listener *l = &s->listen[s->nlisten++];
        l->fd = fd;
        ev_io_init(&l->w, on_accept, fd, EV_READ);
        l->w.data = s;
        ev_io_start(s->loop, &l->w);
    }
    if (s->nlisten == 0) {
        *err = "bind: no address to listen on";
        return -1;
    }
    s->port = p;
    return 0;
}

static void listen_close(bt_session *s)
{
    for (uint32_t i = 0; i < s->nlisten; i++) {
        if (s->loop)
            ev_io_stop(s->loop, &s->listen[i].w);
        close(s->listen[i].fd);
    }
    s->nlisten = 0;
}

static int listen_on(bt_session *s, const char *list, int port, const char **err)
{
    for (int tries = 0; tries < 16; tries++) {
        int rc = listen_list(s, list, port, err);
        if (rc <= 0)
            return rc;
        listen_close(s);
    }
    *err = "bind: no free port on every address";
    return -1;
}

/* 2: global unicast (2000::/3), 1: another address a peer elsewhere may reach
 * (unique local), 0: none to tell (unspecified, loopback, link-local, v4-mapped). */
static int ipv6_rank(const struct in6_addr *a)
{
    const uint8_t *b = a->s6_addr;
    if (IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_LOOPBACK(a) || IN6_IS_ADDR_LINKLOCAL(a) ||
        IN6_IS_ADDR_V4MAPPED(a) || IN6_IS_ADDR_MULTICAST(a))
        return 0;
    return (b[0] & 0xe0) == 0x20 ? 2 : 1;
}

/* BEP 7's "ipv6": an IPv6 address we listen at, for peers that reached us over IPv4:
 * a listener's own address, or for one on :: the best of the interfaces'. */
static void find_ipv6(bt_session *s)
{
    int best = 0;
    for (uint32_t i = 0; i < s->nlisten; i++) {
        struct sockaddr_in6 a;
        socklen_t al = sizeof a;
        if (getsockname(s->listen[i].fd, (struct sockaddr *)&a, &al) != 0 || a.sin6_family != AF_INET6)
            continue;
        struct ifaddrs *ifs = NULL;
        if (!IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr)) {
            int r = ipv6_rank(&a.sin6_addr);
            if (r > best) {
                best = r;
                memcpy(s->env.ipv6, &a.sin6_addr, 16);
            }
        } else if (getifaddrs(&ifs) == 0) {
            for (const struct ifaddrs *f = ifs; f; f = f->ifa_next) {
                if (!f->ifa_addr || f->ifa_addr->sa_family != AF_INET6)
                    continue;
                const struct in6_addr *x = &((const struct sockaddr_in6 *)f->ifa_addr)->sin6_addr;
                int r = ipv6_rank(x);
                if (r > best) {
                    best = r;
                    memcpy(s->env.ipv6, x, 16);
                }
            }
            freeifaddrs(ifs);
        }
    }
    s->env.has_ipv6 = best > 0;
}

/* Azureus-style peer id: -BL0100- and 12 random printable characters. */
static void make_peer_id(uint8_t id[20])
{
    memcpy(id, "-BL0100-", 8);
    FILE *r = fopen("/dev/urandom", "rb");
    if (!r || fread(id + 8, 1, 12, r) != 12) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        srand((unsigned)(ts.tv_nsec ^ getpid()));
        for (int i = 8; i < 20; i++)
            id[i] = (uint8_t)rand();
    }
    if (r)
        fclose(r);
    for (int i = 8; i < 20; i++)   /* printable, as most clients do */
        id[i] = (uint8_t)("0123456789abcdefghijklmnopqrstuvwxyz"[id[i] % 36]);
}

/* Descriptors: raise the soft limit to the hard one (servers do; the soft default is
 * often 1024), then share it: BT_SESS_FD_RESERVE for the rest of the process, up to
 * a quarter of what is left for handshakes, the remainder for peers. max_peers (the
 * session's and each torrent's) is clamped to that; the caller reads fd_peers to say so. */
static void fd_budget(bt_session *s)
{
    struct rlimit rl;
    uint64_t soft = 1024;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            struct rlimit up = { rl.rlim_max, rl.rlim_max };
            if (setrlimit(RLIMIT_NOFILE, &up) == 0)
                rl.rlim_cur = rl.rlim_max;
        }
        soft = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : (uint64_t)rl.rlim_cur;
    }
    if (soft > UINT32_MAX)
        soft = UINT32_MAX;
    uint64_t avail = soft > BT_SESS_FD_RESERVE + 2 ? soft - BT_SESS_FD_RESERVE : 2;
    uint64_t pending = avail / 4 < BT_SESS_MAX_PENDING ? avail / 4 : BT_SESS_MAX_PENDING;
    if (pending < 1)
        pending = 1;
    s->fd_limit = (uint32_t)soft;
    s->max_pending = (uint32_t)pending;
    s->fd_peers = (uint32_t)(avail - pending);
    if (s->max_peers > s->fd_peers)
        s->max_peers = s->fd_peers;
}

int bt_sess_init(bt_session *s, const bt_sess_opts *o, const bt_sess_cb *cb, const bt_policy_ops *policy,
                 void *policy_ud, const char **err)
{
    memset(s, 0, sizeof *s);
    s->cb = *cb;
    s->policy = policy;
    s->policy_ud = policy_ud;
    s->tick_s = o->tick_s > 0 ? o->tick_s : 0.1;
    s->max_peers = o->max_peers ? o->max_peers : BT_TORRENT_MAX_PEERS;
    s->max_per_ip = o->max_per_ip >= 0 ? (uint32_t)o->max_per_ip : BT_SESS_MAX_PER_IP;
    s->evict_idle = o->evict_idle > 0 ? o->evict_idle : BT_TORRENT_EVICT_IDLE;
    s->udp_conn_ttl = o->udp_conn_ttl;
    fd_budget(s);
    s->loop = ev_loop_new(EVFLAG_AUTO);
    if (!s->loop) {
        *err = "cannot create the event loop";
        return -1;
    }
    s->strikes = calloc(BT_SESS_STRIKES, sizeof *s->strikes);   /* NULL: no strikes, no harm */
    bt_throttle_init(&s->throttle, s->loop, on_retry, s);
    ev_timer_init(&s->lpause, on_listen_rested, 0, 0);
    s->lpause.data = s;
    bt_bucket_init(&s->down, 0, 0);
    bt_bucket_init(&s->up, 0, 0);
    bucket_limit(&s->down, o->max_down);
    bucket_limit(&s->up, o->max_up);
    bt_peer_env *env = &s->env;
    env->loop = s->loop;
    if (o->peer_id)
        memcpy(env->peer_id, o->peer_id, 20);   /* the lab's, from its seed: tie-breaks follow it */
    else
        make_peer_id(env->peer_id);
    env->max_request = o->max_request ? o->max_request : BT_SESS_MAX_REQUEST;
    env->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : BT_SESS_CONNECT_TIMEOUT;
    env->idle_timeout = o->idle_timeout > 0 ? o->idle_timeout : BT_SESS_IDLE_TIMEOUT;
    env->send_timeout = o->send_timeout > 0 ? o->send_timeout : BT_SESS_SEND_TIMEOUT;
    env->keepalive = o->keepalive > 0 ? o->keepalive : BT_SESS_KEEPALIVE;
    env->throttle = &s->throttle;
    env->down = &s->down;
    env->up = &s->up;
    env->delay = o->delay > 0 && o->delay <= BT_SESS_MAX_DELAY ? o->delay : 0;
    env->loss = o->loss > 0 && o->loss <= BT_SESS_MAX_LOSS ? o->loss : 0;
    s->loss_rng = o->loss_seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    if (s->loss_rng == 0)
        s->loss_rng = 1;   /* xorshift's one stuck state */
    env->loss_rng = &s->loss_rng;
    if (o->port >= 0 && listen_on(s, o->bind, o->port, err) != 0) {
        bt_sess_free(s);
        return -1;
    }
    env->port = s->port;
    find_ipv6(s);
    s->worker = bt_worker_start(s->loop);   /* NULL (no thread): pieces are verified inline */
    ev_prepare_init(&s->prep, on_prepare);
    s->prep.data = s;
    ev_prepare_start(s->loop, &s->prep);
    ev_timer_init(&s->tickw, on_tick, s->tick_s, s->tick_s);
    s->tickw.data = s;
    ev_timer_start(s->loop, &s->tickw);
    if (o->signals) {
        if (signal_owner) {
            *err = "another session already handles SIGINT/SIGTERM";
            bt_sess_free(s);
            return -1;
        }
        ev_signal_init(&s->sigint_w, on_signal, SIGINT);
        s->sigint_w.data = s;
        ev_signal_start(s->loop, &s->sigint_w);
        ev_signal_init(&s->sigterm_w, on_signal, SIGTERM);
        s->sigterm_w.data = s;
        ev_signal_start(s->loop, &s->sigterm_w);
        s->signals = true;
        signal_owner = s;
    }
    return 0;
}

void bt_sess_run(bt_session *s)
{
    s->stop = false;
    s->running = true;
    ev_now_update(s->loop);
    ev_run(s->loop, 0);
    /* a stop from a tick or a handler leaves the loop before the next prepare: deliver what
     * is queued (a batch of pieces verified with the last one), so that no on_piece or event
     * is lost between t.complete becoming true and run returning */
    deliver_events(s);
    s->running = false;
}

void bt_sess_stop(bt_session *s)
{
    s->stop = true;
    if (s->loop)
        ev_break(s->loop, EVBREAK_ALL);
}

bt_tracker *bt_sess_tracker(bt_session *s)
{
    if (!s->tracker && (s->tracker = bt_tracker_new(s->loop)) && s->udp_conn_ttl > 0)
        bt_tracker_set_conn_ttl(s->tracker, s->udp_conn_ttl);
    return s->tracker;
}

/* The torrent options of an add (or of a magnet's metadata arriving). */
static bt_torrent_opts torrent_opts(bt_session *s, const bt_meta *m, const bt_add_opts *o, uint32_t id)
{
    /* tie-breaks start from the random part of our peer id: they differ between
     * clients, and need no entropy of their own */
    uint32_t r = 2166136261u;
    for (int i = 8; i < 20; i++)
        r = (r ^ s->env.peer_id[i]) * 16777619u;
    uint32_t want_peers = o->max_peers ? o->max_peers : s->max_peers;
    return (bt_torrent_opts){
        .meta = m, .info_hash = o->info_hash, .storage = o->storage, .dir = o->dir, .load = o->load,
        .max_peers = want_peers < s->fd_peers ? want_peers : s->fd_peers, .trust = o->trust,
        .rot = m && m->num_pieces ? (r ^ id) % m->num_pieces : 0, .id = id, .env = &s->env,
        .worker = s->worker, .cb = &SESSION_TORRENT_CB, .ud = s,
    };
}

static void forget_events(bt_session *s, const bt_torrent *t)
{
    for (uint32_t i = 0; i < s->nevents; i++)
        if (s->events[i].t == t)
            s->events[i].t = NULL;
}

bt_torrent *bt_sess_add(bt_session *s, const bt_meta *m, const bt_add_opts *o, char *errbuf, size_t errlen)
{
    uint32_t id = ++s->next_tid;
    bt_torrent_opts to = torrent_opts(s, m, o, id);
    bt_torrent *t = bt_torrent_new(&to, errbuf, errlen);
    if (!t)
        return NULL;
    t->upload_slots = o->upload_slots;
    t->choke_interval = o->choke_interval;
    t->lref = o->lref;
    /* a magnet's torrent has no policy until its metadata is in: nothing to pick */
    if (m && bt_policy_attach(t, s->policy, s->policy_ud, bt_sess_now(s)) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        forget_events(s, t);
        bt_torrent_free(t);
        return NULL;
    }
    t->next = s->torrents;
    s->torrents = t;
    return t;
}

int bt_sess_set_meta(bt_session *s, bt_torrent *t, const bt_meta *m, const bt_add_opts *o, char *errbuf,
                     size_t errlen)
{
    bt_torrent_opts to = torrent_opts(s, m, o, t->id);
    if (bt_torrent_set_meta(t, &to, errbuf, errlen) != 0)
        return -1;
    if (o->max_peers)
        t->max_peers = to.max_peers;
    if (bt_policy_attach(t, s->policy, s->policy_ud, bt_sess_now(s)) != 0) {
        snprintf(errbuf, errlen, "out of memory");
        bt_torrent_stop(t, "out of memory");
        return -1;
    }
    return 0;
}

static void torrent_remove(bt_session *s, bt_torrent *t)
{
    bt_worker_forget(s->worker, t);
    if (s->cb.torrent_gone)
        s->cb.torrent_gone(s->cb.ud, t);
    for (bt_torrent **pp = &s->torrents; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    bt_policy_detach(t);
    bt_torrent_free(t);   /* its peers' disconnects are queued as it goes */
    /* events still naming this torrent must not be delivered */
    for (uint32_t i = 0; i < s->nevents; i++)
        if (s->events[i].t == t)
            s->events[i].t = NULL;
}

void bt_sess_free(bt_session *s)
{
    while (s->torrents)
        torrent_remove(s, s->torrents);
    bt_worker_stop(s->worker);
    s->worker = NULL;
    while (s->pending) {
        bt_peer *p = s->pending;
        if (s->cb.peer_gone)
            s->cb.peer_gone(s->cb.ud, p);
        pending_unlink(s, p);
        bt_peer_free(p);
    }
    for (uint32_t i = 0; i < s->nevents; i++)
        event_free(&s->events[i]);
    free(s->events);
    free(s->strikes);
    s->strikes = NULL;
    s->events = NULL;
    s->nevents = 0;
    bt_tracker_free(s->tracker);   /* pending announces are dropped without callbacks */
    s->tracker = NULL;
    listen_close(s);
    if (s->loop) {
        ev_prepare_stop(s->loop, &s->prep);
        ev_timer_stop(s->loop, &s->tickw);
        ev_timer_stop(s->loop, &s->lpause);
        bt_throttle_stop(&s->throttle);
        if (s->signals) {
            /* Once a signal has stopped us the process is shutting down: a repeat of it
             * (timeout(1) sends SIGTERM to the child and to its group) must not take the
             * default action that ev_signal_stop restores, or it kills us before the exit
             * code is out. The signals stay blocked on this thread (the worker threads
             * block them from birth) from before the stop until they are ignored, so no
             * repeat finds the default action; one pending then is discarded. Without a
             * caught signal libev's restored default is what the caller expects. */
            sigset_t both, old;
            sigemptyset(&both);
            sigaddset(&both, SIGINT);
            sigaddset(&both, SIGTERM);
            if (s->got_signal)
                pthread_sigmask(SIG_BLOCK, &both, &old);
            ev_signal_stop(s->loop, &s->sigint_w);
            ev_signal_stop(s->loop, &s->sigterm_w);
            if (s->got_signal) {
                signal(SIGINT, SIG_IGN);
                signal(SIGTERM, SIG_IGN);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
            }
            s->signals = false;
            signal_owner = NULL;
        }
        ev_loop_destroy(s->loop);
        s->loop = NULL;
    }
}
