/* peer.c: one connection (peer.h). */
#define _GNU_SOURCE
#include "engine/peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/sockios.h>
#include <math.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec/mse.h"

#define MAX_MESSAGE_BUF (BT_PEER_READ_CHUNK + (2u << 20) + 64)  /* read chunk + largest bitfield we accept */
#define CLIENT_NAME "bt-lua"   /* BEP 10 "v" */

static double now_of(const bt_peer *p)
{
    return ev_now(p->env->loop);
}

static void read_watch(bt_peer *p);

/* ---- output: everything goes to wbuf through codec/wire, flushed once per loop iteration ---- */

static bool out_full(bt_peer *p, size_t more)
{
    if (p->closing)
        return true;
    if (p->wbuf.len + more > BT_PEER_MAX_WBUF) {
        bt_peer_close(p, "output buffer overflow");
        return true;
    }
    return false;
}

static void send_msg(bt_peer *p, const bt_msg *m)
{
    if (out_full(p, bt_wire_encoded_len(m)))
        return;
    if (bt_wire_append(&p->wbuf, m) != 0) {
        bt_peer_close(p, "out of memory");
        return;
    }
    p->last_send = now_of(p);
}

static void send_simple(bt_peer *p, int type)
{
    bt_msg m = { .type = type };
    send_msg(p, &m);
}

static void send_index(bt_peer *p, int type, uint32_t index)
{
    bt_msg m = { .type = type, .index = index };
    send_msg(p, &m);
}

static void send_block_msg(bt_peer *p, int type, uint32_t index, uint32_t begin, uint32_t length)
{
    if (out_full(p, 17))
        return;
    if (bt_wire_append_block(&p->wbuf, type, index, begin, length) != 0) {
        bt_peer_close(p, "out of memory");
        return;
    }
    p->last_send = now_of(p);
}

void bt_peer_send_handshake(bt_peer *p)
{
    if (p->hs_sent || out_full(p, BT_HANDSHAKE_LEN))
        return;
    uint8_t hs[BT_HANDSHAKE_LEN];
    bt_wire_our_handshake(p->tor->info_hash, p->env->peer_id, hs);
    if (bt_buf_append(&p->wbuf, hs, sizeof hs) != 0) {
        bt_peer_close(p, "out of memory");
        return;
    }
    p->hs_sent = true;
}

void bt_peer_send_pieces(bt_peer *p)
{
    /* BEP 3 allows a bitfield only as the first message, and BEP 6 peers (aria2c) drop a
     * connection whose have-all/have-none comes after another one: the caller sends this first. */
    const bt_ranges *have = p->tor->have;
    if (p->fast && bt_ranges_count(have) == 0) {
        send_simple(p, BT_MSG_HAVE_NONE);   /* BEP 6: one of bitfield/have all/have none is required */
    } else if (p->fast && bt_ranges_full(have)) {
        send_simple(p, BT_MSG_HAVE_ALL);
    } else if (bt_ranges_count(have) > 0) {
        size_t n = bt_ranges_wire_len(have);
        bt_msg m = { .type = BT_MSG_BITFIELD, .payload = NULL, .payload_len = n };
        size_t head = bt_wire_encoded_len(&m);
        if (out_full(p, head + n) || bt_buf_reserve(&p->wbuf, head + n) != 0) {
            if (!p->closing)
                bt_peer_close(p, "out of memory");
            return;
        }
        bt_wire_encode(&m, p->wbuf.data + p->wbuf.len, head);
        bt_ranges_to_wire(have, p->wbuf.data + p->wbuf.len + head);
        p->wbuf.len += head + n;
    }
}

void bt_peer_send_ext_handshake(bt_peer *p)
{
    if (!p->ext)
        return;
    /* BEP 10: how many requests we queue (reqq), our port and client name, the address
     * we see the peer at; BEP 9: ut_metadata and the size of what it serves, unless the
     * torrent is private (BEP 27: its metadata stays with those who have the .torrent) */
    bt_ext_hs h = { .port = p->env->port ? p->env->port : -1, .reqq = BT_PEER_UPLOAD_QUEUE,
                    .metadata_size = -1, .client = CLIENT_NAME };
    if (!p->tor->priv) {   /* BEP 27: nor PEX (BEP 11) */
        h.m[BT_EXT_UT_METADATA] = 1;
        h.m[BT_EXT_UT_PEX] = 1;
        if (p->tor->info)
            h.metadata_size = (int64_t)p->tor->info_len;
    }
    if (p->addr.ss_family == AF_INET) {
        memcpy(h.yourip, &((const struct sockaddr_in *)&p->addr)->sin_addr, 4);
        h.yourip_len = 4;
        /* BEP 7: over IPv4, where else it can reach us (over IPv6 it knows an address) */
        if (p->env->has_ipv6) {
            memcpy(h.ipv6, p->env->ipv6, 16);
            h.has_ipv6 = true;
        }
    } else if (p->addr.ss_family == AF_INET6) {
        memcpy(h.yourip, &((const struct sockaddr_in6 *)&p->addr)->sin6_addr, 16);
        h.yourip_len = 16;
    }
    bt_buf payload = { 0 };
    if (bt_wire_ext_handshake(&payload, &h) == 0) {
        bt_msg m = { .type = BT_MSG_EXTENDED, .ext_id = 0, .payload = payload.data,
                     .payload_len = payload.len };
        send_msg(p, &m);
    } else {
        bt_peer_close(p, "out of memory");
    }
    bt_buf_free(&payload);
}

bool bt_peer_send_extended(bt_peer *p, int ext, const void *payload, size_t len)
{
    if (ext < 0 || ext >= BT_EXT_COUNT || !p->ext_ids[ext])
        return false;
    bt_msg m = { .type = BT_MSG_EXTENDED, .ext_id = p->ext_ids[ext], .payload = payload,
                 .payload_len = len };
    send_msg(p, &m);
    return !p->closing;
}

void bt_peer_send_have(bt_peer *p, uint32_t piece)
{
    send_index(p, BT_MSG_HAVE, piece);
}

void bt_peer_offer_fast(bt_peer *p)
{
    p->nallowed = 0;
    if (!p->fast || p->addr.ss_family != AF_INET || p->tor->npieces == 0)
        return;
    uint32_t set[BT_FAST_SET];
    const struct sockaddr_in *a = (const struct sockaddr_in *)&p->addr;
    uint32_t n = bt_wire_fast_set((const uint8_t *)&a->sin_addr, p->tor->info_hash, p->tor->npieces,
                                  BT_FAST_SET, set);
    for (uint32_t j = 0; j < n; j++) {
        if (!bt_ranges_has(p->tor->have, set[j]))
            continue;
        send_index(p, BT_MSG_ALLOWED_FAST, set[j]);
        p->allowed[p->nallowed++] = set[j];
    }
}

static bool allowed_fast(const bt_peer *p, uint32_t piece)
{
    for (uint32_t j = 0; j < p->nallowed; j++)
        if (p->allowed[j] == piece)
            return true;
    return false;
}

void bt_peer_set_interested(bt_peer *p, bool interested)
{
    if (p->state != BT_PS_ACTIVE || p->closing || p->am_interested == interested)
        return;
    p->am_interested = interested;
    send_simple(p, interested ? BT_MSG_INTERESTED : BT_MSG_NOT_INTERESTED);
}

bool bt_peer_set_choke(bt_peer *p, bool choke)
{
    if (p->state != BT_PS_ACTIVE || p->closing || p->am_choking == choke)
        return false;
    p->am_choking = choke;
    if (!choke)
        p->unchoked_at = ev_now(p->env->loop);
    if (choke) {
        if (p->fast && p->uq) {
            /* BEP 6: queued requests are rejected explicitly, except allowed-fast ones */
            uint32_t keep = 0;
            for (uint32_t i = 0; i < p->uqcount; i++) {
                struct bt_ureq r = p->uq[(p->uqhead + i) % BT_PEER_UPLOAD_QUEUE];
                if (allowed_fast(p, r.index))
                    p->uq[(p->uqhead + keep++) % BT_PEER_UPLOAD_QUEUE] = r;
                else
                    send_block_msg(p, BT_MSG_REJECT, r.index, r.begin, r.length);
            }
            p->uqcount = keep;
        } else {
            p->uqcount = 0;   /* without BEP 6 a choke drops every queued request */
        }
    }
    send_simple(p, choke ? BT_MSG_CHOKE : BT_MSG_UNCHOKE);
    return true;
}

/* send() took n more bytes. */
static void sent(bt_peer *p, size_t n)
{
    p->out_sent += n;
    p->last_drain = now_of(p);
}

/* The blocks the peer has acknowledged count as uploaded: what left our buffer and
 * the kernel's send queue (SIOCOUTQ: bytes sent but not yet acked). A peer that asks
 * and never reads gets nothing counted once the windows close (on loopback the
 * kernel alone takes ~4 MiB of it: counted at send() that looked like an upload). */
static void credit_acked(bt_peer *p)
{
    if (p->unsent_count == 0)
        return;
    uint64_t acked = p->out_sent;
    int queued = 0;
    if (p->fd >= 0 && ioctl(p->fd, SIOCOUTQ, &queued) == 0 && queued > 0 && (uint64_t)queued <= acked)
        acked -= (uint64_t)queued;
    uint32_t up = 0;
    while (p->unsent_count > 0 && p->unsent[p->unsent_head].end <= acked) {
        up += p->unsent[p->unsent_head].len;
        p->unsent_head = (p->unsent_head + 1) % BT_PEER_UNSENT;
        p->unsent_count--;
    }
    if (up == 0)
        return;
    p->last_upload = ev_now(p->env->loop);
    p->up_total += up;
    p->up_tick += up;
    if (p->cb->uploaded)
        p->cb->uploaded(p->ud, p, up);
}

/* ---- lab mode's output delay and loss (env->delay or env->loss > 0) ---- */

/* A draw in [0, 1) from the session's loss state (xorshift64). */
static double loss_draw(const bt_peer_env *env)
{
    uint64_t x = *env->loss_rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *env->loss_rng = x;
    return (double)(x >> 11) / 9007199254740992.0;
}

/* The bytes queued since the last flush may go at now + delay, and one RTO later when a
 * segment of them is lost: what retransmitting it costs a TCP stream, everything after
 * it waiting in order (marks are released oldest first). Full ring: the newest mark
 * takes the new bytes and the later time, so no byte is released early. */
static int mark_output(bt_peer *p, uint64_t end, double now)
{
    const bt_peer_env *env = p->env;
    if (!p->marks && !(p->marks = malloc(BT_PEER_MARKS * sizeof *p->marks)))
        return -1;
    double at = now + env->delay;
    if (env->loss > 0) {
        double segs = ceil((double)(end - p->marked) / BT_PEER_MSS);
        if (loss_draw(env) >= pow(1 - env->loss, segs))
            at += BT_PEER_RTO;
    }
    if (p->mark_count == BT_PEER_MARKS) {
        struct bt_mark *last = &p->marks[(p->mark_head + p->mark_count - 1) % BT_PEER_MARKS];
        last->end = end;
        if (at > last->at)
            last->at = at;
    } else {
        p->marks[(p->mark_head + p->mark_count++) % BT_PEER_MARKS] = (struct bt_mark){ end, at };
    }
    p->marked = end;
    return 0;
}

/* Bytes at the front of wbuf that may be sent now; arms the hold timer for the rest. */
static size_t releasable(bt_peer *p)
{
    if (!(p->env->delay > 0 || p->env->loss > 0))
        return p->wbuf.len;
    double now = now_of(p);
    uint64_t end = p->out_sent + p->wbuf.len;
    if (end > p->marked && mark_output(p, end, now) != 0) {
        bt_peer_close(p, "out of memory");
        return 0;
    }
    while (p->mark_count > 0 && p->marks[p->mark_head].at <= now) {
        p->released = p->marks[p->mark_head].end;
        p->mark_head = (p->mark_head + 1) % BT_PEER_MARKS;
        p->mark_count--;
    }
    ev_timer_stop(p->env->loop, &p->hold);
    if (p->mark_count > 0) {
        ev_timer_set(&p->hold, p->marks[p->mark_head].at - now, 0);
        ev_timer_start(p->env->loop, &p->hold);
    }
    if (p->released <= p->out_sent) {
        p->last_drain = now;   /* held, not waiting on the peer: no send timeout */
        return 0;
    }
    return (size_t)(p->released - p->out_sent);
}

static void on_hold(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_peer_flush(w->data);
}

void bt_peer_flush(bt_peer *p)
{
    if (p->fd < 0 || p->closing || p->state == BT_PS_CONNECTING)
        return;
    size_t go = releasable(p);
    while (go > 0) {
        ssize_t r = send(p->fd, p->wbuf.data, go, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            bt_peer_close(p, strerror(errno));
            return;
        }
        bt_buf_consume(&p->wbuf, (size_t)r);
        sent(p, (size_t)r);
        go -= (size_t)r;
    }
    credit_acked(p);
    if (go > 0)
        ev_io_start(p->env->loop, &p->ww);
    else
        ev_io_stop(p->env->loop, &p->ww);
}

/* ---- our requests: a ring, oldest at head ---- */

static void ring_pop_dead(bt_peer *p)
{
    while (p->qcount > 0 && p->q[p->qhead].piece == UINT32_MAX) {
        p->qhead = (p->qhead + 1) % p->qcap;
        p->qcount--;
    }
}

/* Make room for one more entry: grow, or squeeze out dead entries. */
static int ring_room(bt_peer *p)
{
    if (p->qcount < p->qcap)
        return 0;
    if (p->inflight < p->qcount && p->qcap >= 2 * BT_PEER_MAX_QUEUE) {
        uint32_t k = 0;
        for (uint32_t i = 0; i < p->qcount; i++) {
            bt_req r = p->q[(p->qhead + i) % p->qcap];
            if (r.piece != UINT32_MAX)
                p->q[k++] = r;   /* k <= i: never overwrites an unread entry */
        }
        p->qhead = 0;
        p->qcount = k;
        return 0;
    }
    uint32_t ncap = p->qcap ? p->qcap * 2 : 64;
    bt_req *nq = malloc((size_t)ncap * sizeof *nq);
    if (!nq)
        return -1;
    for (uint32_t i = 0; i < p->qcount; i++)
        nq[i] = p->q[(p->qhead + i) % p->qcap];
    free(p->q);
    p->q = nq;
    p->qcap = ncap;
    p->qhead = 0;
    return 0;
}

/* Find and kill a live entry; returns its send time, or -1 if absent. Blocks come
 * back mostly in the order they were asked for: the search starts at the head. */
static double ring_take(bt_peer *p, uint32_t piece, uint32_t block)
{
    for (uint32_t i = 0; i < p->qcount; i++) {
        bt_req *r = &p->q[(p->qhead + i) % p->qcap];
        if (r->piece == piece && r->block == block) {
            double sent = r->sent;
            r->piece = UINT32_MAX;
            p->inflight--;
            ring_pop_dead(p);
            return sent;
        }
    }
    return -1;
}

bool bt_peer_asked(const bt_peer *p, uint32_t piece, uint32_t block)
{
    for (uint32_t i = 0; i < p->qcount; i++) {
        const bt_req *r = &p->q[(p->qhead + i) % p->qcap];
        if (r->piece == piece && r->block == block)
            return true;
    }
    return false;
}

int bt_peer_request(bt_peer *p, uint32_t piece, uint32_t block)
{
    if (ring_room(p))
        return -1;
    bt_req *r = &p->q[(p->qhead + p->qcount) % p->qcap];
    r->piece = piece;
    r->block = block;
    r->ahead = p->inflight;
    r->sent = now_of(p);
    p->qcount++;
    p->inflight++;
    send_block_msg(p, BT_MSG_REQUEST, piece, block * BT_BLOCK_SIZE, bt_block_bytes(p->tor, piece, block));
    return 0;
}

bool bt_peer_cancel(bt_peer *p, uint32_t piece, uint32_t block)
{
    if (ring_take(p, piece, block) < 0)
        return false;
    send_block_msg(p, BT_MSG_CANCEL, piece, block * BT_BLOCK_SIZE, bt_block_bytes(p->tor, piece, block));
    return true;
}

const bt_req *bt_peer_oldest(const bt_peer *p)
{
    uint32_t i = 0;
    return bt_peer_next_req(p, &i);
}

const bt_req *bt_peer_next_req(const bt_peer *p, uint32_t *i)
{
    while (*i < p->qcount) {
        const bt_req *r = &p->q[(p->qhead + *i) % p->qcap];
        (*i)++;
        if (r->piece != UINT32_MAX)
            return r;
    }
    return NULL;
}

double bt_peer_expected(const bt_peer *p, const bt_req *r)
{
    if (!(p->rate_down > 0))
        return HUGE_VAL;
    return (p->min_rtt > 0 ? p->min_rtt : 0) + (double)(r->ahead + 1) * BT_BLOCK_SIZE / p->rate_down;
}

void bt_peer_release_all(bt_peer *p, bool send_cancels)
{
    /* empty the ring first: the owner's release callback may look at it */
    uint32_t n = p->qcount, head = p->qhead, cap = p->qcap;
    bt_req *q = p->q;
    p->q = NULL;
    p->qcount = p->qhead = p->qcap = p->inflight = 0;
    for (uint32_t i = 0; i < n; i++) {
        bt_req r = q[(head + i) % cap];
        if (r.piece == UINT32_MAX)
            continue;
        if (send_cancels && p->tor)
            send_block_msg(p, BT_MSG_CANCEL, r.piece, r.block * BT_BLOCK_SIZE,
                           bt_block_bytes(p->tor, r.piece, r.block));
        if (p->cb->release)
            p->cb->release(p->ud, p, r.piece, r.block);
    }
    /* keep the array for the next requests unless one arrived meanwhile */
    if (!p->q) {
        p->q = q;
        p->qcap = cap;
    } else {
        free(q);
    }
}

/* ---- the peer's requests of us ---- */

/* A request that breaks the rules we announced (a piece we never said we have, a block
 * outside its piece or larger than env->max_request) drops the peer: nothing is read for
 * it. A request we merely will not serve now (we choke it: it may have crossed our
 * choke on the wire) is ignored, or rejected under BEP 6.
 * Returns 0, or -1 (peer closed). */
static int on_request(bt_peer *p, const bt_msg *m)
{
    const bt_peer_torrent *tor = p->tor;
    const char *bad = NULL;
    if (m->index >= tor->npieces || !bt_ranges_has(tor->have, m->index))
        bad = "requested a piece we do not have";
    else if (m->length == 0 || m->length > p->env->max_request)
        bad = "requested a block larger than we serve";
    else if ((int64_t)m->begin + m->length > bt_piece_bytes(tor, m->index))
        bad = "requested a block outside its piece";
    if (bad)
        return bt_peer_close(p, bad), -1;
    /* Past our reqq is refused, not punished: aria2c ignores reqq and keeps more than 250
     * requests out (dropping it for that made a 1 GiB upload take 125-245 s instead of
     * ~5 s). libtorrent refuses them too. The queue stays bounded either way. */
    if ((p->am_choking && !(p->fast && allowed_fast(p, m->index))) || p->uqcount >= BT_PEER_UPLOAD_QUEUE) {
        /* not served: BEP 3 lets us ignore it, BEP 6 wants a reject */
        if (p->fast)
            send_block_msg(p, BT_MSG_REJECT, m->index, m->begin, m->length);
        return 0;
    }
    if (!p->uq) {
        p->uq = malloc(BT_PEER_UPLOAD_QUEUE * sizeof *p->uq);
        if (!p->uq)
            return bt_peer_close(p, "out of memory"), -1;
    }
    struct bt_ureq *r = &p->uq[(p->uqhead + p->uqcount) % BT_PEER_UPLOAD_QUEUE];
    r->index = m->index;
    r->begin = m->begin;
    r->length = m->length;
    p->uqcount++;
    return 0;
}

/* The request leaves the queue at once, so the queue counts exactly the requests the peer
 * still waits for (what its reqq allowance is measured against). */
static void on_cancel(bt_peer *p, const bt_msg *m)
{
    for (uint32_t i = 0; i < p->uqcount; i++) {
        struct bt_ureq *r = &p->uq[(p->uqhead + i) % BT_PEER_UPLOAD_QUEUE];
        if (r->index == m->index && r->begin == m->begin && r->length == m->length) {
            for (uint32_t j = i; j + 1 < p->uqcount; j++)
                p->uq[(p->uqhead + j) % BT_PEER_UPLOAD_QUEUE] = p->uq[(p->uqhead + j + 1) % BT_PEER_UPLOAD_QUEUE];
            p->uqcount--;
            if (p->fast)
                send_block_msg(p, BT_MSG_REJECT, m->index, m->begin, m->length);   /* BEP 6: a cancel is answered */
            return;
        }
    }
}

/* While we upload to a peer, its requests must be acknowledged at once. Linux
 * delays the ACK of data received shortly after we sent some (its "pingpong"
 * mode, up to 40 ms, hoping to piggyback it), and a leecher whose socket holds
 * back small writes until they are acknowledged (libtorrent) then sits on up to
 * 250 requests while we sit idle with nothing to answer: measured with ss, the
 * leecher's Send-Q held 4304 bytes of requests for 20-40 ms at a time, and 256 MiB
 * took 1.3-1.4 s instead of 0.9 s. TCP_QUICKACK leaves that mode until the next
 * exchange, hence once per read. */
static void upload_quickack(bt_peer *p)
{
    if (p->am_choking && p->uqcount == 0)
        return;   /* not uploading: delayed ACKs are fine */
    int one = 1;
    setsockopt(p->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

/* Answer queued requests while the output buffer is short. */
static void serve_batch(bt_peer *p)
{
    const bt_peer_torrent *tor = p->tor;
    bt_bucket *bs[3] = { p->env->up, tor->up, &p->up_cap };
    double now = now_of(p);
    for (int i = 0; i < 3; i++)
        bt_bucket_refill(bs[i], now);
    /* while choking, a fast peer's queue holds only allowed-fast requests (set_choke and
     * on_request filter them), which BEP 6 lets us serve */
    while (p->uqcount > 0 && !p->closing && (!p->am_choking || p->fast) && p->wbuf.len < BT_PEER_UPLOAD_WATER) {
        struct bt_ureq r = p->uq[p->uqhead];
        /* Upload limit: a block goes whole or waits for the rate timer. A block
         * above the burst is sent once the bucket is full (the debt slows what follows).
         * Checked with bt_bucket_available, whose whole-token rounding is what a take
         * grants (bt_bucket_wait compares without it). */
        bt_msg m = { .type = BT_MSG_PIECE, .index = r.index, .begin = r.begin, .payload = NULL,
                     .payload_len = r.length };
        size_t head = bt_wire_encoded_len(&m);
        int64_t n = (int64_t)head + r.length;
        bool ok = true;
        for (int i = 0; i < 3; i++) {
            int64_t need = (double)n < bs[i]->burst ? n : (int64_t)bs[i]->burst;
            if (bt_bucket_available(bs[i]) < need)
                ok = false;
        }
        if (!ok) {
            bt_throttle_wait(p->env->throttle, bt_bucket_wait_chain(bs, 3, n));
            break;
        }
        if (out_full(p, (size_t)n) || p->unsent_count == BT_PEER_UNSENT)
            break;
        if (bt_buf_reserve(&p->wbuf, (size_t)n) != 0) {
            bt_peer_close(p, "out of memory");
            break;
        }
        uint8_t *w = p->wbuf.data + p->wbuf.len;
        bt_wire_encode(&m, w, head);
        if (bt_storage_read(tor->st, r.index, r.begin, w + head, r.length) != 0) {
            bt_peer_close(p, "cannot read a piece we have from disk");
            break;
        }
        bt_bucket_spend_chain(bs, 3, n);
        p->wbuf.len += (size_t)n;
        p->last_send = now;
        p->uqhead = (p->uqhead + 1) % BT_PEER_UPLOAD_QUEUE;
        p->uqcount--;
        p->unsent[(p->unsent_head + p->unsent_count) % BT_PEER_UNSENT] =
            (struct bt_unsent){ .end = p->out_sent + p->wbuf.len, .len = r.length };
        p->unsent_count++;
    }
}

void bt_peer_set_upload_rate(bt_peer *p, double rate)
{
    if (rate == p->up_cap.rate)
        return;
    bt_bucket_set(&p->up_cap, rate, 0);
    if (p->up_cap.tokens < 0)
        p->up_cap.tokens = 0;   /* a debt at the old rate is not carried into the new one */
}

/* Serve one batch (up to BT_PEER_UPLOAD_WATER) and send it at once. If the socket
 * took it all and requests remain, the write watcher wakes the loop right away for
 * the next batch: without it the seed slept until the leecher's next packet or the
 * tick (50-100 ms per 256 KiB at the end of a download, when the leecher has asked
 * for everything). Measured: serving 2 MiB per iteration instead was slower (lt leecher). */
bool bt_peer_serve(bt_peer *p)
{
    if (p->closing || p->state != BT_PS_ACTIVE)
        return false;
    uint32_t queued = p->uqcount;
    if (queued > 0)
        serve_batch(p);
    if (p->wbuf.len > 0)
        bt_peer_flush(p);
    if (!p->closing && p->wbuf.len == 0 && p->uqcount > 0 && p->uqcount < queued) {
        ev_io_start(p->env->loop, &p->ww);   /* writable now: served next iteration, after other peers */
        return true;
    }
    return false;
}

/* ---- incoming messages ---- */

static int on_block(bt_peer *p, const bt_msg *m)
{
    const bt_peer_torrent *tor = p->tor;
    uint32_t idx = m->index, len = (uint32_t)m->payload_len;
    if (idx >= tor->npieces || m->begin % BT_BLOCK_SIZE != 0)
        return bt_peer_close(p, "block not on a 16 KiB boundary or past the last piece"), -1;
    uint32_t b = m->begin / BT_BLOCK_SIZE;
    if (b >= bt_piece_blocks(tor, idx) || len != bt_block_bytes(tor, idx, b))
        return bt_peer_close(p, "block of the wrong length"), -1;
    double now = now_of(p);
    double sent = ring_take(p, idx, b);
    if (sent >= 0) {
        double sample = now - sent;
        p->rtt = p->rtt > 0 ? 0.9 * p->rtt + 0.1 * sample : sample;
        if (p->min_rtt <= 0 || sample < p->min_rtt)
            p->min_rtt = sample;
    }
    p->down_total += len;
    p->down_tick += len;
    p->last_block = now;
    p->cb->block(p->ud, p, idx, b, m->payload, len, sent >= 0);
    return p->closing ? -1 : 0;
}

static void on_extended_handshake(bt_peer *p, const uint8_t *d, size_t n)
{
    bt_ext_hs h;
    if (bt_wire_parse_ext_handshake(d, n, &h) != 0)
        return;   /* a broken extension handshake costs the peer its extensions, nothing else */
    /* BEP 10 allows a handshake to be sent again: each one replaces what it says */
    if (h.reqq >= 1)
        p->reqq = h.reqq > BT_PEER_MAX_QUEUE ? BT_PEER_MAX_QUEUE : (uint32_t)h.reqq;
    memcpy(p->ext_ids, h.m, sizeof p->ext_ids);
    if (h.port > 0)
        p->listen_port = (uint16_t)h.port;
    if (h.metadata_size >= 0)
        p->metadata_size = h.metadata_size;
    if (h.client)
        memcpy(p->client, h.client_buf, sizeof p->client);
    p->ext_seen = true;
    if (p->cb->ext_handshake)
        p->cb->ext_handshake(p->ud, p);
}

static int on_pieces_msg(bt_peer *p, const bt_msg *m)
{
    p->cb->pieces(p->ud, p, -1);
    int r = 0;
    if (m->type == BT_MSG_BITFIELD)
        r = bt_ranges_from_wire(&p->have, m->payload, m->payload_len);
    else if (m->type == BT_MSG_HAVE_ALL)
        r = bt_ranges_set_all(&p->have);
    else
        bt_ranges_clear_all(&p->have);
    if (r != 0) {
        bt_ranges_clear_all(&p->have);
        p->cb->pieces(p->ud, p, +1);
        return bt_peer_close(p, r == -2 ? "bitfield of the wrong length" : r == -1 ? "out of memory" : "bad bitfield"), -1;
    }
    p->cb->pieces(p->ud, p, +1);
    return p->closing ? -1 : 0;
}

static int on_message(bt_peer *p, const bt_msg *m)
{
    /* BEP 6: suggest, have all, have none, reject and allowed fast exist only when both
     * sides set the fast bit (we always do); from a peer that did not, the receiver must
     * close (libtorrent does too). Kept, such a peer's have-all counted it as a seed. */
    if (!p->fast && m->type >= BT_MSG_SUGGEST && m->type <= BT_MSG_ALLOWED_FAST)
        return bt_peer_close(p, "fast extension message without the fast extension"), -1;
    /* before the metadata, nothing about pieces can be checked or used: a bitfield's
     * length, a have's index. Peers send them anyway; they are dropped, and the
     * connections are made again once the metadata is in (torrent.c). */
    if (p->tor->no_meta && m->type != BT_MSG_EXTENDED && m->type >= BT_MSG_HAVE)
        return 0;
    switch (m->type) {
    case BT_MSG_KEEPALIVE:
        break;
    case BT_MSG_CHOKE:
        p->choking = true;
        bt_peer_release_all(p, false);   /* without BEP 6 a choke discards our requests */
        p->cb->choked(p->ud, p, true);
        break;
    case BT_MSG_UNCHOKE:
        p->choking = false;
        p->cb->choked(p->ud, p, false);
        break;
    case BT_MSG_INTERESTED:
    case BT_MSG_NOT_INTERESTED:
        p->interested = m->type == BT_MSG_INTERESTED;
        p->cb->interest(p->ud, p, p->interested);
        break;
    case BT_MSG_HAVE:
        if (m->index >= p->tor->npieces)
            return bt_peer_close(p, "have for a piece past the end"), -1;
        if (!bt_ranges_has(&p->have, m->index)) {
            if (bt_ranges_set(&p->have, m->index))
                return bt_peer_close(p, "out of memory"), -1;
            p->cb->have(p->ud, p, m->index);
        }
        break;
    case BT_MSG_BITFIELD:
    case BT_MSG_HAVE_ALL:
    case BT_MSG_HAVE_NONE:
        return on_pieces_msg(p, m);
    case BT_MSG_PIECE:
        return on_block(p, m);
    case BT_MSG_REQUEST:
        return on_request(p, m);
    case BT_MSG_CANCEL:
        on_cancel(p, m);
        break;
    case BT_MSG_REJECT:
        if (m->index < p->tor->npieces && ring_take(p, m->index, m->begin / BT_BLOCK_SIZE) >= 0)
            p->cb->release(p->ud, p, m->index, m->begin / BT_BLOCK_SIZE);
        break;
    case BT_MSG_EXTENDED:
        if (m->ext_id == 0) {
            on_extended_handshake(p, m->payload, m->payload_len);
        } else if (p->cb->extension) {
            int ext = bt_wire_ext_of(m->ext_id);
            if (ext >= 0)   /* ids we never gave out are ignored, as BEP 10 says */
                p->cb->extension(p->ud, p, ext, m->payload, m->payload_len);
        }
        break;
    default:
        break;   /* port, suggest, allowed fast, unknown ids: nothing to do */
    }
    return p->closing ? -1 : 0;
}

/* The handshake is in rbuf[0..68). Returns 0, or -1 (peer closed). */
static int on_handshake(bt_peer *p, const bt_handshake *hs)
{
    const char *why = NULL;
    if (p->tor && memcmp(p->tor->info_hash, hs->info_hash, 20) != 0)
        return bt_peer_close(p, "handshake with the wrong info-hash"), -1;
    /* incoming: the session finds the torrent and attaches us (our callbacks change) */
    if (p->cb->handshake(p->ud, p, hs, &why) != 0)
        return bt_peer_close(p, why ? why : "handshake refused"), -1;
    if (memcmp(hs->peer_id, p->env->peer_id, 20) == 0) {
        /* answer first, so the dialing side learns it too and does not retry blindly */
        bt_peer_send_handshake(p);
        bt_peer_flush(p);
        return bt_peer_close(p, "connected to ourselves"), -1;
    }
    memcpy(p->peer_id, hs->peer_id, 20);
    p->ext = (hs->reserved[BT_RESERVED_EXTENSION_BYTE] & BT_RESERVED_EXTENSION_BIT) != 0;
    p->fast = (hs->reserved[BT_RESERVED_FAST_BYTE] & BT_RESERVED_FAST_BIT) != 0;   /* we always offer it */
    bt_peer_send_handshake(p);
    p->state = BT_PS_ACTIVE;
    p->cb->active(p->ud, p);
    return p->closing ? -1 : 0;
}

/* An incoming connection that does not start with the plaintext handshake is an
 * MSE handshake (libtorrent and aria2c dial that way first, and retry in
 * plaintext only a second after we close). Answered here, selecting plaintext;
 * what follows it in rbuf is then the ordinary stream.
 * Returns 1: parse rbuf as usual; 0: wait for more input; -1: peer closed. */
static int mse_in(bt_peer *p)
{
    static const char proto[] = "\x13" "BitTorrent protocol";   /* 20 bytes and a NUL */
    const size_t plen = sizeof proto - 1;
    if (!p->mse) {
        size_t n = p->rlen < plen ? p->rlen : plen;
        if (memcmp(p->rbuf, proto, n) == 0) {
            p->mse_decided = n == plen;
            return 1;
        }
        p->mse = bt_mse_new();
        if (!p->mse)
            return bt_peer_close(p, "out of memory"), -1;
    }
    const uint8_t *out;
    size_t outlen, skip;
    bt_mse_status st = bt_mse_step(p->mse, p->rbuf, p->rlen, &out, &outlen, &skip, p->cb->mse_skey, p->ud);
    if (st == BT_MSE_FAIL)
        return bt_peer_close(p, bt_mse_error(p->mse)), -1;
    if (outlen > 0) {
        if (out_full(p, outlen))
            return -1;
        if (bt_buf_append(&p->wbuf, out, outlen) != 0)
            return bt_peer_close(p, "out of memory"), -1;
        bt_peer_flush(p);   /* the dialer waits for each step */
        if (p->closing)
            return -1;
    }
    if (st == BT_MSE_MORE)
        return 0;
    memmove(p->rbuf, p->rbuf + skip, p->rlen - skip);
    p->rlen -= skip;
    bt_mse_free(p->mse);
    p->mse = NULL;
    p->mse_decided = true;
    return 1;
}

/* Download limit: read only what the session's and the torrent's buckets grant;
 * when they grant nothing, stop reading until the throttle's retry (the kernel
 * buffer fills and TCP slows the sender down). Returns the bytes read, 0 when
 * nothing was read (throttled, or EAGAIN), -1 when the peer closed. */
static ssize_t read_some(bt_peer *p)
{
    bt_bucket *bs[2] = { p->env->down, p->tor ? p->tor->down : NULL };
    double now = now_of(p);
    bt_bucket_refill(bs[0], now);
    if (bs[1])
        bt_bucket_refill(bs[1], now);
    int64_t want = (int64_t)(p->rcap - p->rlen);
    int64_t granted = bt_bucket_take_chain(bs, 2, want);
    if (granted <= 0) {
        ev_io_stop(p->env->loop, &p->rw);
        p->read_throttled = true;
        /* wait for one block's worth, not for the whole read: waiting for a full
         * bucket loses the tokens that would arrive between full and the timer */
        bt_throttle_wait(p->env->throttle,
                         bt_bucket_wait_chain(bs, 2, want < BT_BUCKET_MIN_BURST ? want : BT_BUCKET_MIN_BURST));
        return 0;
    }
    ssize_t r = recv(p->fd, p->rbuf + p->rlen, (size_t)granted, 0);
    if (r > 0)
        upload_quickack(p);
    bt_bucket_refund_chain(bs, 2, granted - (r > 0 ? r : 0));   /* a short read is not traffic */
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return bt_peer_close(p, strerror(errno)), -1;
        return 0;
    }
    if (r == 0)
        return bt_peer_close(p, "connection closed by peer"), -1;
    p->rlen += (size_t)r;
    p->last_recv = now;
    return r;
}

/* Frame and handle every whole message in rbuf; keep the rest. */
static void parse_messages(bt_peer *p, size_t off)
{
    bt_wire_limits lim;
    bt_wire_limits_default(&lim);
    lim.max_bitfield = (uint32_t)bt_ranges_wire_len(&p->have);
    while (!p->closing && off < p->rlen) {
        bt_msg m;
        size_t used = 0;
        const char *err = NULL;
        int k = bt_wire_parse(p->rbuf + off, p->rlen - off, &lim, &m, &used, &err);
        if (k < 0) {
            bt_peer_close(p, err ? err : "bad message");
            return;
        }
        if (k == 0) {
            if (used > p->rcap) {   /* a message larger than the buffer: limits bound it */
                size_t ncap = used + BT_PEER_READ_CHUNK;
                if (ncap > MAX_MESSAGE_BUF) {
                    bt_peer_close(p, "message too large");
                    return;
                }
                memmove(p->rbuf, p->rbuf + off, p->rlen - off);
                p->rlen -= off;
                off = 0;
                uint8_t *nb = realloc(p->rbuf, ncap);
                if (!nb) {
                    bt_peer_close(p, "out of memory");
                    return;
                }
                p->rbuf = nb;
                p->rcap = ncap;
            }
            break;
        }
        if (on_message(p, &m) != 0)
            return;
        off += used;
    }
    if (off > 0) {
        memmove(p->rbuf, p->rbuf + off, p->rlen - off);
        p->rlen -= off;
    }
}

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_peer *p = w->data;
    if (p->closing)
        return;
    if (p->rcap - p->rlen == 0) {
        bt_peer_close(p, "message larger than the read buffer");
        return;
    }
    if (read_some(p) <= 0)
        return;
    if (p->state == BT_PS_HANDSHAKE && p->incoming && !p->mse_decided && mse_in(p) <= 0)
        return;
    size_t off = 0;
    if (p->state == BT_PS_HANDSHAKE) {
        bt_handshake hs;
        const char *err = NULL;
        int h = bt_wire_parse_handshake(p->rbuf, p->rlen, &hs, &err);
        if (h < 0) {
            bt_peer_close(p, err ? err : "bad handshake");
            return;
        }
        if (h == 0 || on_handshake(p, &hs) != 0)
            return;
        off = BT_HANDSHAKE_LEN;
    }
    parse_messages(p, off);
    if (!p->closing && p->cb->read_done)
        p->cb->read_done(p->ud, p);
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)revents;
    bt_peer *p = w->data;
    if (p->state == BT_PS_CONNECTING) {
        int e = 0;
        socklen_t el = sizeof e;
        getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &e, &el);
        if (e != 0) {
            bt_peer_close(p, strerror(e));
            return;
        }
        p->state = BT_PS_HANDSHAKE;
        (void)loop;
        read_watch(p);
    }
    bt_peer_flush(p);
}

/* The read watcher runs unless something holds it: the download limit or the owner. */
static void read_watch(bt_peer *p)
{
    if (p->closing || p->state == BT_PS_CONNECTING)
        return;
    if (p->read_throttled || p->read_paused)
        ev_io_stop(p->env->loop, &p->rw);
    else
        ev_io_start(p->env->loop, &p->rw);
}

void bt_peer_unthrottle(bt_peer *p)
{
    if (p->read_throttled) {
        p->read_throttled = false;
        read_watch(p);
    }
}

void bt_peer_pause(bt_peer *p, bool pause)
{
    if (p->read_paused != pause) {
        p->read_paused = pause;
        read_watch(p);
    }
}

/* ---- life cycle ---- */

bt_peer *bt_peer_new(const bt_peer_env *env, int fd, bool incoming, const struct sockaddr *sa,
                     socklen_t salen, uint64_t uid, const bt_peer_cb *cb, void *ud)
{
    bt_peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->rbuf = malloc(BT_PEER_READ_CHUNK);
    if (!p->rbuf) {
        free(p);
        return NULL;
    }
    p->env = env;
    p->cb = cb;
    p->ud = ud;
    p->uid = uid;
    p->fd = fd;
    p->href = -1;
    p->rcap = BT_PEER_READ_CHUNK;
    p->incoming = incoming;
    p->source = incoming ? BT_SRC_INCOMING : BT_SRC_MANUAL;   /* a dialer sets its own */
    p->state = incoming ? BT_PS_HANDSHAKE : BT_PS_CONNECTING;
    p->choking = p->am_choking = true;
    p->reqq = BT_PEER_MAX_QUEUE;
    p->metadata_size = -1;
    bt_bucket_init(&p->up_cap, 0, 0);
    double now = ev_now(env->loop);
    p->connected_at = p->last_recv = p->last_send = p->last_drain = now;
    memcpy(&p->addr, sa, salen < sizeof p->addr ? salen : sizeof p->addr);
    char ip[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        snprintf(p->address, sizeof p->address, "%s:%d", ip, ntohs(a->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        snprintf(p->address, sizeof p->address, "[%s]:%d", ip, ntohs(a->sin6_port));
    }
    ev_io_init(&p->rw, on_read, fd, EV_READ);
    ev_io_init(&p->ww, on_write, fd, EV_WRITE);
    ev_timer_init(&p->hold, on_hold, 0, 0);
    p->rw.data = p->ww.data = p->hold.data = p;
    /* incoming: wait for its handshake; outgoing: the connect completes when writable */
    ev_io_start(env->loop, incoming ? &p->rw : &p->ww);
    return p;
}

int bt_peer_bind(bt_peer *p, const bt_peer_torrent *tor, const bt_peer_cb *cb, void *ud)
{
    p->tor = tor;
    p->cb = cb;
    p->ud = ud;
    bt_ranges_init(&p->have, tor->npieces);
    return 0;
}

void bt_peer_close(bt_peer *p, const char *why)
{
    if (p->closing)
        return;
    credit_acked(p);   /* a leecher that got everything closes: its acks are in */
    p->closing = true;
    ev_io_stop(p->env->loop, &p->rw);
    ev_io_stop(p->env->loop, &p->ww);
    ev_timer_stop(p->env->loop, &p->hold);
    if (p->cb->closing)
        p->cb->closing(p->ud, p, why);
    bt_peer_release_all(p, false);
}

void bt_peer_free(bt_peer *p)
{
    ev_io_stop(p->env->loop, &p->rw);
    ev_io_stop(p->env->loop, &p->ww);
    ev_timer_stop(p->env->loop, &p->hold);
    if (p->fd >= 0)
        close(p->fd);
    bt_ranges_free(&p->have);
    bt_buf_free(&p->wbuf);
    bt_mse_free(p->mse);
    free(p->rbuf);
    free(p->q);
    free(p->uq);
    free(p->marks);
    free(p);
}

void bt_peer_tick(bt_peer *p, double now, double dt)
{
    const bt_peer_env *env = p->env;
    if (p->closing)
        return;
    if (p->state != BT_PS_ACTIVE) {
        if (now - p->connected_at > env->connect_timeout)
            bt_peer_close(p, p->state == BT_PS_CONNECTING ? "connect timed out" : "handshake timed out");
        return;
    }
    credit_acked(p);
    if (dt > 0) {
        /* EWMA with a time constant of about 2 s */
        double a = dt / 2.0 > 1 ? 1 : dt / 2.0;
        p->rate_down += a * ((double)p->down_tick / dt - p->rate_down);
        p->rate_up += a * ((double)p->up_tick / dt - p->rate_up);
        p->down_tick = p->up_tick = 0;
    }
    if (now - p->last_recv > env->idle_timeout) {
        bt_peer_close(p, "idle timeout");
        return;
    }
    if (p->wbuf.len == 0) {
        p->last_drain = now;
    } else if (now - p->last_drain > env->send_timeout) {
        /* it asks and never reads the answers: it holds our memory and an upload slot */
        bt_peer_close(p, "does not read what we send");
        return;
    }
    if (now - p->last_send > env->keepalive)
        send_simple(p, BT_MSG_KEEPALIVE);
}
