/* session.c: the loop, the listener, outgoing connections, torrents, the
 * prepare watcher (batched call-outs, write flush, deferred frees) and the tick.
 */
#define _GNU_SOURCE
#include "engine/session.h"
#include "engine/piece.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

double bt_sess_now(bt_session *s)
{
    return ev_now(s->loop);
}

bt_peer *bt_sess_peer(bt_session *s, uint32_t slot, uint32_t gen)
{
    if (slot >= s->nslots || s->slots[slot].gen != gen)
        return NULL;
    bt_peer *p = s->slots[slot].p;
    return p && !p->closing ? p : NULL;
}

uint32_t bt_sess_peer_gen(bt_session *s, uint32_t slot)
{
    return slot < s->nslots ? s->slots[slot].gen : 0;
}

void bt_sess_event(bt_session *s, bt_event_kind kind, bt_torrent *t, uint32_t piece, int ok,
                   bt_peer *p, const char *text)
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
    bt_event *e = &s->events[s->nevents++];
    e->kind = kind;
    e->t = t;
    e->piece = piece;
    e->ok = ok;
    e->peer_slot = p ? p->slot : UINT32_MAX;
    e->peer_gen = p ? s->slots[p->slot].gen : 0;
    e->text = text ? strdup(text) : NULL;
}

static void tune_socket(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void on_accept(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_session *s = w->data;
    for (int i = 0; i < 16; i++) {   /* a few per wake-up, so a flood cannot starve peers */
        struct sockaddr_storage sa;
        socklen_t sl = sizeof sa;
        int fd = accept4(s->lfd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (s->npending >= BT_SESS_MAX_PENDING) {
            close(fd);
            continue;
        }
        tune_socket(fd);
        if (!bt_peer_new(s, fd, true, (struct sockaddr *)&sa, sl))
            close(fd);
    }
}

/* Events may queue more events (a handler stopping a torrent): bounded rounds. */
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
            if (s->hooks.event && (ev->t || ev->kind != BT_EV_PIECE))
                s->hooks.event(s->hooks.ud, ev);
            free(ev->text);
        }
        free(batch);
    }
}

/* Serve one batch (up to BT_SESS_UPLOAD_WATER) and send it at once. If the socket
 * took it all and requests remain, the write watcher wakes the loop right away for
 * the next batch: without it the seed slept until the leecher's next packet or the
 * tick (50-100 ms per 256 KiB at the end of a download, when the leecher has asked
 * for everything). Measured: serving 2 MiB per iteration instead was slower (lt leecher). */
static void serve_peer(struct ev_loop *loop, bt_peer *p)
{
    uint32_t queued = p->uqcount;
    if (queued > 0)
        bt_peer_serve(p);
    if (p->wbuf.len > 0)
        bt_peer_flush(p);
    if (!p->closing && p->wbuf.len == 0 && p->uqcount > 0 && p->uqcount < queued)
        ev_io_start(loop, &p->ww);   /* writable now: served next iteration, after other peers */
}

/* Deliver queued events, run batched picks, serve and flush output, free closed peers. */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_session *s = w->data;
    /* events first: on_piece may change what pick should do */
    deliver_events(s);
    for (bt_torrent *t = s->torrents; t; t = t->next) {
        if (t->stopped)
            continue;
        for (bt_peer *p = t->peers; p && !t->stopped; p = p->next) {
            if (!p->needs_pick || p->closing)
                continue;
            p->needs_pick = false;
            uint32_t slots = bt_peer_slots(p);
            if (slots == 0)
                continue;
            uint32_t before = p->inflight;
            if (s->hooks.pick && s->hooks.pick(s->hooks.ud, t, p, slots) != 0)
                break;
            if (p->inflight == before)
                p->pick_dry = true;   /* nothing to ask: wait for news (have, unchoke, tick) */
        }
    }
    deliver_events(s);   /* raised by the picks (a policy error) */
    for (bt_torrent *t = s->torrents; t; t = t->next) {
        /* Under an upload limit the first peer served takes what the bucket holds, and
         * new peers sit at the head of the list: start one peer further each iteration
         * so every peer gets its turn (the demo's leechers finished in the order they
         * connected before this). */
        uint32_t n = 0;
        for (bt_peer *p = t->peers; p; p = p->next)
            n++;
        if (n == 0)
            continue;
        uint32_t first = t->serve_rot++ % n, i = 0;
        bt_peer *start = t->peers;
        while (i++ < first)
            start = start->next;
        for (bt_peer *p = start; p; p = p->next)
            serve_peer(loop, p);
        for (bt_peer *p = t->peers; p != start; p = p->next)
            serve_peer(loop, p);
    }
    for (bt_torrent *t = s->torrents; t; t = t->next) {
        bt_peer *p = t->peers;
        while (p) {
            bt_peer *n = p->next;
            if (p->closing)
                bt_peer_free(p);
            p = n;
        }
    }
    bt_peer *p = s->pending;
    while (p) {
        bt_peer *n = p->next;
        if (p->closing)
            bt_peer_free(p);
        else if (p->wbuf.len > 0)
            bt_peer_flush(p);
        p = n;
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
    for (bt_torrent *t = s->torrents; t; t = t->next) {
        for (bt_peer *p = t->peers; p; p = p->next) {
            p->pick_dry = false;
            bt_peer_tick(p, now, dt);
            bt_peer_update_interest(p);
        }
    }
    for (bt_peer *p = s->pending; p; p = p->next)
        bt_peer_tick(p, now, dt);
    if (s->hooks.tick)
        s->hooks.tick(s->hooks.ud, now);
}

static double burst_of(double rate)
{
    return rate * BT_RATE_BURST_S;   /* bt_bucket_set raises it to one block at least */
}

static void bucket_limit(bt_bucket *b, double rate)
{
    if (!(rate > 0))
        rate = 0;
    bt_bucket_set(b, rate, rate > 0 ? burst_of(rate) : 0);
    if (b->tokens > b->burst || rate == 0)
        b->tokens = b->burst;
}

void bt_rate_refill(bt_session *s, bt_bucket *b)
{
    bt_bucket_refill(b, ev_now(s->loop));
}

void bt_sess_set_limits(bt_session *s, double down, double up)
{
    bucket_limit(&s->down, down);
    bucket_limit(&s->up, up);
    bt_sess_rate_wait(s, 0);   /* a raised limit frees throttled peers now */
}

void bt_torrent_set_limits(bt_torrent *t, double down, double up)
{
    bucket_limit(&t->down, down);
    bucket_limit(&t->up, up);
    bt_sess_rate_wait(t->s, 0);
}

static void unthrottle(struct ev_loop *loop, bt_peer *p)
{
    if (p->read_throttled && !p->closing) {
        p->read_throttled = false;
        ev_io_start(loop, &p->rw);
    }
}

static void on_rate(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)revents;
    bt_session *s = w->data;
    /* restart throttled reads: on_read asks the buckets again (and throttles again
     * if they are still empty); queued uploads are retried by the prepare watcher */
    for (bt_torrent *t = s->torrents; t; t = t->next)
        for (bt_peer *p = t->peers; p; p = p->next)
            unthrottle(loop, p);
    for (bt_peer *p = s->pending; p; p = p->next)
        unthrottle(loop, p);
}

void bt_sess_rate_wait(bt_session *s, double secs)
{
    if (!s->loop)
        return;
    if (!(secs >= BT_RATE_MIN_WAIT))
        secs = BT_RATE_MIN_WAIT;
    if (secs > BT_RATE_MAX_WAIT)
        secs = BT_RATE_MAX_WAIT;
    if (ev_is_active(&s->ratew)) {
        if (ev_timer_remaining(s->loop, &s->ratew) <= secs)
            return;   /* fires soon enough already */
        ev_timer_stop(s->loop, &s->ratew);
    }
    ev_timer_set(&s->ratew, secs, 0);
    ev_timer_start(s->loop, &s->ratew);
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

int bt_sess_init(bt_session *s, const bt_sess_opts *o, const bt_sess_hooks *h, const char **err)
{
    memset(s, 0, sizeof *s);
    s->lfd = -1;
    s->hooks = *h;
    s->tick_s = o->tick_s > 0 ? o->tick_s : 0.1;
    s->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : BT_SESS_CONNECT_TIMEOUT;
    s->idle_timeout = o->idle_timeout > 0 ? o->idle_timeout : BT_SESS_IDLE_TIMEOUT;
    s->keepalive = o->keepalive > 0 ? o->keepalive : BT_SESS_KEEPALIVE;
    s->max_peers = o->max_peers ? o->max_peers : BT_SESS_MAX_PEERS;
    s->max_request = o->max_request ? o->max_request : BT_SESS_MAX_REQUEST;
    s->scratch = malloc(BT_BLOCK_SIZE);
    s->loop = ev_loop_new(EVFLAG_AUTO);
    if (!s->loop || !s->scratch) {
        *err = "cannot create the event loop";
        free(s->scratch);
        return -1;
    }
    /* Azureus-style peer id: -BL0100- and 12 random bytes */
    memcpy(s->peer_id, "-BL0100-", 8);
    FILE *r = fopen("/dev/urandom", "rb");
    if (!r || fread(s->peer_id + 8, 1, 12, r) != 12) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        srand((unsigned)(ts.tv_nsec ^ getpid()));
        for (int i = 8; i < 20; i++)
            s->peer_id[i] = (uint8_t)rand();
    }
    if (r)
        fclose(r);
    for (int i = 8; i < 20; i++)   /* printable, as most clients do */
        s->peer_id[i] = (uint8_t)("0123456789abcdefghijklmnopqrstuvwxyz"[s->peer_id[i] % 36]);
    if (o->port >= 0) {
        struct sockaddr_in6 a6;
        struct sockaddr_in a4;
        memset(&a4, 0, sizeof a4);
        memset(&a6, 0, sizeof a6);
        const char *bind_to = o->bind ? o->bind : "0.0.0.0";
        int fam = AF_INET;
        if (inet_pton(AF_INET, bind_to, &a4.sin_addr) == 1) {
            a4.sin_family = AF_INET;
            a4.sin_port = htons((uint16_t)o->port);
        } else if (inet_pton(AF_INET6, bind_to, &a6.sin6_addr) == 1) {
            fam = AF_INET6;
            a6.sin6_family = AF_INET6;
            a6.sin6_port = htons((uint16_t)o->port);
        } else {
            *err = "bind address is not a numeric IP address";
            bt_sess_free(s);
            return -1;
        }
        s->lfd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (s->lfd >= 0)
            setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr *sa = fam == AF_INET ? (struct sockaddr *)&a4 : (struct sockaddr *)&a6;
        socklen_t sl = fam == AF_INET ? sizeof a4 : sizeof a6;
        if (s->lfd < 0 || bind(s->lfd, sa, sl) != 0 || listen(s->lfd, 64) != 0) {
            *err = strerror(errno);
            bt_sess_free(s);
            return -1;
        }
        struct sockaddr_storage got;
        socklen_t gl = sizeof got;
        getsockname(s->lfd, (struct sockaddr *)&got, &gl);
        s->port = fam == AF_INET ? ntohs(((struct sockaddr_in *)&got)->sin_port)
                                 : ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
        ev_io_init(&s->lw, on_accept, s->lfd, EV_READ);
        s->lw.data = s;
        ev_io_start(s->loop, &s->lw);
    }
    s->worker = bt_worker_start(s);   /* NULL (no thread): pieces are verified inline */
    ev_prepare_init(&s->prep, on_prepare);
    s->prep.data = s;
    ev_prepare_start(s->loop, &s->prep);
    ev_timer_init(&s->tickw, on_tick, s->tick_s, s->tick_s);
    s->tickw.data = s;
    ev_timer_start(s->loop, &s->tickw);
    ev_timer_init(&s->ratew, on_rate, BT_RATE_MIN_WAIT, 0);
    s->ratew.data = s;
    bt_bucket_init(&s->down, 0, 0);
    bt_bucket_init(&s->up, 0, 0);
    bucket_limit(&s->down, o->max_down);
    bucket_limit(&s->up, o->max_up);
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
    s->running = false;
}

void bt_sess_stop(bt_session *s)
{
    s->stop = true;
    if (s->loop)
        ev_break(s->loop, EVBREAK_ALL);
}

void bt_sess_free(bt_session *s)
{
    while (s->torrents)
        bt_torrent_free(s->torrents);
    bt_worker_stop(s->worker);
    s->worker = NULL;
    while (s->pending)
        bt_peer_free(s->pending);
    for (uint32_t i = 0; i < s->nevents; i++)
        free(s->events[i].text);
    free(s->events);
    s->events = NULL;
    s->nevents = 0;
    if (s->lfd >= 0) {
        if (s->loop)
            ev_io_stop(s->loop, &s->lw);
        close(s->lfd);
        s->lfd = -1;
    }
    if (s->loop) {
        ev_prepare_stop(s->loop, &s->prep);
        ev_timer_stop(s->loop, &s->tickw);
        ev_timer_stop(s->loop, &s->ratew);
        if (s->signals) {   /* libev restores the default action */
            ev_signal_stop(s->loop, &s->sigint_w);
            ev_signal_stop(s->loop, &s->sigterm_w);
            s->signals = false;
            signal_owner = NULL;
        }
        ev_loop_destroy(s->loop);
        s->loop = NULL;
    }
    free(s->slots);
    s->slots = NULL;
    s->nslots = 0;
    free(s->scratch);
    s->scratch = NULL;
}

/* ---- torrents ---- */

/* Memory storage filled from the files under dir (opened read-only): every piece
 * that verifies there is copied in and had. */
static int load_into_memory(bt_torrent *t, const char *dir, char *errbuf, size_t errlen)
{
    bt_storage *src = bt_storage_open_readonly(t->meta, dir, errbuf, errlen);
    if (!src)
        return -1;
    int rc = 0;
    for (uint32_t i = 0; i < t->npieces && rc == 0; i++) {
        int good = bt_storage_copy_piece(t->st, src, i);
        if (good < 0) {
            snprintf(errbuf, errlen, "loading piece %u from %s: %s", i, dir, bt_storage_error(t->st));
            rc = -1;
        } else if (good && bt_files_had(t, i) != 0) {
            snprintf(errbuf, errlen, "out of memory");
            rc = -1;
        }
    }
    bt_storage_close(src);
    return rc;
}

bt_torrent *bt_sess_add(bt_session *s, const bt_meta *m, const bt_add_opts *o, char *errbuf,
                        size_t errlen)
{
    bool mem = o->storage == BT_STORE_MEMORY;
    if (!mem && !o->dir) {
        snprintf(errbuf, errlen, "disk storage needs a folder");
        return NULL;
    }
    bt_torrent *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    t->s = s;
    bt_bucket_init(&t->down, 0, 0);   /* unlimited until set_limits */
    bt_bucket_init(&t->up, 0, 0);
    t->meta = m;
    t->id = ++s->next_tid;
    t->npieces = m->num_pieces;
    t->piece_len = (uint32_t)m->piece_length;
    t->total = m->total_length;
    /* from the random part of our peer id: differs between clients, no extra entropy needed */
    uint32_t r = 2166136261u;
    for (int i = 8; i < 20; i++)
        r = (r ^ s->peer_id[i]) * 16777619u;
    t->rot = t->npieces ? (r ^ t->id) % t->npieces : 0;
    t->max_peers = o->max_peers ? o->max_peers : s->max_peers;
    t->in_memory = mem;
    t->dir = mem ? NULL : strdup(o->dir);
    t->avail = calloc(t->npieces ? t->npieces : 1, sizeof *t->avail);
    if (t->npieces <= BT_PMAP_MAX)
        t->pmap = calloc(t->npieces ? t->npieces : 1, sizeof *t->pmap);   /* NULL: list search */
    bt_ranges_init(&t->have, t->npieces);
    bt_ranges_init(&t->unrequested, t->npieces);
    if ((!mem && !t->dir) || !t->avail) {
        snprintf(errbuf, errlen, "out of memory");
        goto fail;
    }
    bt_ranges_set_all(&t->unrequested);
    t->st = mem ? bt_storage_open_memory(m, errbuf, errlen) : bt_storage_open(m, o->dir, errbuf, errlen);
    if (!t->st)
        goto fail;
    const bt_ranges *trust = mem ? NULL : o->trust;   /* memory holds nothing from before */
    if (trust && trust->size == t->npieces && bt_ranges_count(trust) > 0) {
        if (bt_ranges_copy(&t->have, trust) != 0) {
            snprintf(errbuf, errlen, "out of memory");
            goto fail;
        }
        /* unrequested (all set above) = everything not trusted */
        for (uint32_t i = 0; i < trust->n; i++)
            if (bt_ranges_clear_range(&t->unrequested, trust->r[i].start, trust->r[i].end) != 0) {
                snprintf(errbuf, errlen, "out of memory");
                goto fail;
            }
        for (uint32_t i = 0; i < trust->n; i++)
            for (uint32_t k = trust->r[i].start; k < trust->r[i].end; k++)
                t->have_bytes += (uint64_t)bt_piece_size(t, k);
    }
    if (mem) {
        if (o->load && load_into_memory(t, o->load, errbuf, errlen) != 0)
            goto fail;
    } else if (bt_files_check(t, errbuf, errlen) != 0) {   /* hashes what is on disk and not trusted */
        goto fail;
    }
    t->checked = true;
    t->next = s->torrents;
    s->torrents = t;
    if (bt_ranges_full(&t->have)) {
        t->complete = true;
        bt_sess_event(s, BT_EV_COMPLETE, t, 0, 1, NULL, NULL);
    }
    return t;
fail:
    bt_storage_close(t->st);
    bt_ranges_free(&t->have);
    bt_ranges_free(&t->unrequested);
    free(t->avail);
    free(t->pmap);
    free(t->dir);
    free(t);
    return NULL;
}

void bt_torrent_stop(bt_torrent *t, const char *why)
{
    if (t->stopped)
        return;
    t->stopped = true;
    if (why) {
        free(t->error);
        t->error = strdup(why);
        bt_sess_event(t->s, BT_EV_ERROR, t, 0, 0, NULL, why);
    }
    for (bt_peer *p = t->peers; p; p = p->next)
        bt_peer_close(p, why ? why : "torrent stopped");
}

void bt_torrent_free(bt_torrent *t)
{
    bt_session *s = t->s;
    if (s->worker)
        bt_worker_forget(s->worker, t);
    t->stopped = true;   /* no unchoking or events while its peers go */
    while (t->peers)
        bt_peer_free(t->peers);
    for (bt_torrent **pp = &s->torrents; *pp; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    }
    /* events still naming this torrent must not be delivered */
    for (uint32_t i = 0; i < s->nevents; i++)
        if (s->events[i].t == t)
            s->events[i].t = NULL;
    while (t->partials)
        bt_partial_drop(t, t->partials, false);
    bt_storage_close(t->st);   /* the worker has forgotten t: no I/O is in flight */
    bt_ranges_free(&t->have);
    bt_ranges_free(&t->unrequested);
    for (uint32_t i = 0; i < t->nsuspects; i++) {
        free(t->suspects[i].from);
        free(t->suspects[i].sum);
    }
    free(t->suspects);
    for (uint32_t i = 0; i < t->npool; i++)
        free(t->pool[i]);
    free(t->pool);
    for (uint32_t i = 0; i < t->nbans; i++)
        free(t->bans[i]);
    free(t->bans);
    free(t->avail);
    free(t->pmap);
    free(t->dir);
    free(t->error);
    free(t);
}

bool bt_torrent_banned(bt_torrent *t, const char *address)
{
    for (uint32_t i = 0; i < t->nbans; i++)
        if (strcmp(t->bans[i], address) == 0)
            return true;
    return false;
}

int bt_torrent_connect(bt_torrent *t, const char *host, int port, const char **err)
{
    bt_session *s = t->s;
    if (t->stopped) {
        *err = "torrent is stopped";
        return -1;
    }
    if (t->npeers >= t->max_peers) {
        *err = "too many peers";
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
    char addr[64];
    snprintf(addr, sizeof addr, fam == AF_INET6 ? "[%s]:%d" : "%s:%d", host, port);
    if (bt_torrent_banned(t, addr)) {
        *err = "peer is banned";
        return -1;
    }
    for (bt_peer *p = t->peers; p; p = p->next) {
        if (!p->closing && !p->incoming && strcmp(p->address, addr) == 0) {
            *err = "already connected";
            return -1;
        }
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
    bt_peer *p = bt_peer_new(s, fd, false, (struct sockaddr *)&ss, sl);
    if (!p) {
        close(fd);
        *err = "out of memory";
        return -1;
    }
    bt_peer_attach(p, t);
    /* the handshake goes out as soon as the connect completes (queued now, flushed then) */
    {
        bt_handshake hs;
        memset(&hs, 0, sizeof hs);
        hs.reserved[BT_RESERVED_EXTENSION_BYTE] |= BT_RESERVED_EXTENSION_BIT;
        hs.reserved[BT_RESERVED_FAST_BYTE] |= BT_RESERVED_FAST_BIT;   /* BEP 6, as send_handshake */
        memcpy(hs.info_hash, t->meta->info_hash, 20);
        memcpy(hs.peer_id, s->peer_id, 20);
        if (bt_buf_reserve(&p->wbuf, BT_HANDSHAKE_LEN) == 0) {
            bt_wire_write_handshake(&hs, p->wbuf.data);
            p->wbuf.len = BT_HANDSHAKE_LEN;
            p->hs_sent = true;
        }
    }
    return 0;
}

int bt_torrent_sync(bt_torrent *t, char *errbuf, size_t errlen)
{
    if (bt_storage_sync(t->st) != 0) {   /* memory: nothing to do */
        snprintf(errbuf, errlen, "%s", bt_storage_error(t->st));
        return -1;
    }
    return 0;
}

uint32_t bt_torrent_unrequested(bt_torrent *t)
{
    uint32_t n = bt_ranges_count(&t->unrequested);
    for (bt_partial *p = t->partials; p; p = p->next)
        if (p->nfree > 0)
            n++;
    return n;
}
