/* peer.c: one connection: non-blocking buffered I/O, handshake, the message
 * loop, request bookkeeping and the per-block hot path.
 *
 * Closing is always deferred: bt_peer_close marks the peer and stops its
 * watchers; the session's prepare watcher frees it once nothing on the stack
 * can still hold the pointer (a read loop, a policy call-out).
 */
#define _GNU_SOURCE
#include "engine/session.h"
#include "engine/piece.h"
#include "codec/bencode.h"
#include "core/sha1.h"
#include "codec/mse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>

#define MAX_MESSAGE_BUF (BT_SESS_READ_CHUNK + (2u << 20) + 64)  /* read chunk + largest bitfield we accept */

static inline void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static double now_of(bt_peer *p)
{
    return ev_now(p->s->loop);
}

/* ---- output: everything goes to wbuf, flushed once per loop iteration ---- */

static uint8_t *wb_room(bt_peer *p, size_t n)
{
    if (p->closing || p->wbuf.len + n > BT_SESS_MAX_WBUF || bt_buf_reserve(&p->wbuf, n)) {
        if (!p->closing)
            bt_peer_close(p, "output buffer overflow");
        return NULL;
    }
    uint8_t *w = p->wbuf.data + p->wbuf.len;
    p->wbuf.len += n;
    p->last_send = now_of(p);
    return w;
}

static void send_simple(bt_peer *p, uint8_t id)
{
    uint8_t *w = wb_room(p, 5);
    if (w) {
        put32(w, 1);
        w[4] = id;
    }
}

static void send_have(bt_peer *p, uint32_t idx)
{
    uint8_t *w = wb_room(p, 9);
    if (w) {
        put32(w, 5);
        w[4] = BT_MSG_HAVE;
        put32(w + 5, idx);
    }
}

static void send_req(bt_peer *p, uint8_t id, uint32_t piece, uint32_t block)
{
    uint8_t *w = wb_room(p, 17);
    if (w) {
        put32(w, 13);
        w[4] = id;
        put32(w + 5, piece);
        put32(w + 9, block * BT_BLOCK_SIZE);
        put32(w + 13, bt_block_len(p->t, piece, block));
    }
}

static void send_handshake(bt_peer *p)
{
    bt_handshake hs;
    memset(&hs, 0, sizeof hs);
    hs.reserved[BT_RESERVED_EXTENSION_BYTE] |= BT_RESERVED_EXTENSION_BIT;
    hs.reserved[BT_RESERVED_FAST_BYTE] |= BT_RESERVED_FAST_BIT;
    memcpy(hs.info_hash, p->t->meta->info_hash, 20);
    memcpy(hs.peer_id, p->s->peer_id, 20);
    uint8_t *w = wb_room(p, BT_HANDSHAKE_LEN);
    if (w)
        bt_wire_write_handshake(&hs, w);
    p->hs_sent = true;
}

static void send_allowed_fast(bt_peer *p);
static bool allowed_fast(const bt_peer *p, uint32_t piece);
static void send_reject(bt_peer *p, uint32_t index, uint32_t begin, uint32_t length);

static void send_after_handshake(bt_peer *p)
{
    /* The piece set first: BEP 3 allows a bitfield only as the first message, and BEP 6
     * peers (aria2c) drop a connection whose have-all/have-none comes after another one. */
    bt_torrent *t = p->t;
    if (p->fast && bt_ranges_count(&t->have) == 0) {
        send_simple(p, BT_MSG_HAVE_NONE);   /* BEP 6: one of bitfield/have all/have none is required */
    } else if (p->fast && bt_ranges_full(&t->have)) {
        send_simple(p, BT_MSG_HAVE_ALL);
    } else if (bt_ranges_count(&t->have) > 0) {
        size_t n = bt_ranges_wire_len(&t->have);
        uint8_t *w = wb_room(p, 5 + n);
        if (w) {
            put32(w, (uint32_t)n + 1);
            w[4] = BT_MSG_BITFIELD;
            bt_ranges_to_wire(&t->have, w + 5);
        }
    }
    if (p->ext) {
        /* BEP 10: tell the peer how many requests we queue (reqq) and our client name. */
        char d[128];
        int n = snprintf(d, sizeof d, "d1:md6:ut_pexi0ee1:pi%ue4:reqqi%ue1:v6:bt-luae",
                         (unsigned)p->s->port, (unsigned)BT_SESS_UPLOAD_QUEUE);
        uint8_t *w = wb_room(p, 6 + (size_t)n);
        if (w) {
            put32(w, (uint32_t)n + 2);
            w[4] = BT_MSG_EXTENDED;
            w[5] = 0;
            memcpy(w + 6, d, (size_t)n);
        }
    }
    if (p->fast)
        send_allowed_fast(p);
}

/* BEP 6 canonical allowed-fast set for an IPv4 peer: SHA-1 chained from the
 * peer's /24 and the info-hash. Offered for the pieces of it we have. */
static void send_allowed_fast(bt_peer *p)
{
    bt_torrent *t = p->t;
    p->nallowed = 0;
    if (p->addr.ss_family != AF_INET || t->npieces == 0)
        return;
    uint32_t k = t->npieces < BT_FAST_SET ? t->npieces : BT_FAST_SET;
    uint8_t x[24];
    memcpy(x, &((struct sockaddr_in *)&p->addr)->sin_addr, 4);
    x[3] = 0;
    memcpy(x + 4, t->meta->info_hash, 20);
    uint8_t h[20];
    uint32_t set[BT_FAST_SET], n = 0;
    const uint8_t *in = x;
    size_t inlen = sizeof x;
    /* bounded: each round adds up to 5 indices; duplicates can only repeat so often */
    for (int round = 0; round < 64 && n < k; round++) {
        if (bt_sha1(in, inlen, h) != 0)
            return;
        in = h;
        inlen = sizeof h;
        uint8_t hcopy[20];
        memcpy(hcopy, h, 20);
        for (int i = 0; i < 5 && n < k; i++) {
            uint32_t y = ((uint32_t)hcopy[4 * i] << 24) | ((uint32_t)hcopy[4 * i + 1] << 16) |
                         ((uint32_t)hcopy[4 * i + 2] << 8) | hcopy[4 * i + 3];
            uint32_t idx = y % t->npieces;
            bool dup = false;
            for (uint32_t j = 0; j < n; j++)
                dup = dup || set[j] == idx;
            if (!dup)
                set[n++] = idx;
        }
    }
    for (uint32_t j = 0; j < n; j++) {
        if (!bt_ranges_has(&t->have, set[j]))
            continue;
        uint8_t *w = wb_room(p, 9);
        if (!w)
            return;
        put32(w, 5);
        w[4] = BT_MSG_ALLOWED_FAST;
        put32(w + 5, set[j]);
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

static void send_reject(bt_peer *p, uint32_t index, uint32_t begin, uint32_t length)
{
    uint8_t *w = wb_room(p, 17);
    if (!w)
        return;
    put32(w, 13);
    w[4] = BT_MSG_REJECT;
    put32(w + 5, index);
    put32(w + 9, begin);
    put32(w + 13, length);
}

void bt_peer_flush(bt_peer *p)
{
    if (p->fd < 0 || p->closing || p->state == BT_PS_CONNECTING)
        return;
    while (p->wbuf.len > 0) {
        ssize_t r = send(p->fd, p->wbuf.data, p->wbuf.len, MSG_NOSIGNAL);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            bt_peer_close(p, strerror(errno));
            return;
        }
        bt_buf_consume(&p->wbuf, (size_t)r);
    }
    if (p->wbuf.len > 0)
        ev_io_start(p->s->loop, &p->ww);
    else
        ev_io_stop(p->s->loop, &p->ww);
}

/* ---- requests ---- */

uint32_t bt_peer_slots(const bt_peer *p)
{
    if (p->state != BT_PS_ACTIVE || p->closing || p->choking)
        return 0;
    uint32_t depth = p->queue_depth;
    if (depth > p->reqq)
        depth = p->reqq;
    return depth > p->inflight ? depth - p->inflight : 0;
}

const bt_req *bt_peer_oldest(const bt_peer *p)
{
    for (uint32_t i = 0; i < p->qcount; i++) {
        const bt_req *r = &p->q[(p->qhead + i) % p->qcap];
        if (r->piece != UINT32_MAX)
            return r;
    }
    return NULL;
}

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
    if (p->inflight < p->qcount && p->qcap >= 2 * BT_SESS_MAX_QUEUE) {
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

static int ring_push(bt_peer *p, uint32_t piece, uint32_t block)
{
    if (ring_room(p))
        return -1;
    bt_req *r = &p->q[(p->qhead + p->qcount) % p->qcap];
    r->piece = piece;
    r->block = block;
    r->sent = now_of(p);
    p->qcount++;
    p->inflight++;
    return 0;
}

/* Find and kill a live entry; returns its send time, or -1 if absent. */
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

static bool ring_has(const bt_peer *p, uint32_t piece, uint32_t block)
{
    for (uint32_t i = 0; i < p->qcount; i++) {
        const bt_req *r = &p->q[(p->qhead + i) % p->qcap];
        if (r->piece == piece && r->block == block)
            return true;
    }
    return false;
}

/* The block's request is no longer in flight anywhere from this peer. */
static void release_block(bt_torrent *t, uint32_t piece, uint32_t block)
{
    bt_partial *pp = bt_partial_find(t, piece);
    if (!pp || pp->req[block] == 0)
        return;
    if (pp->req[block] < 255)
        pp->req[block]--;
    if (pp->req[block] == 0 && !pp->got[block])
        pp->nfree++;
}

static void ensure_interested(bt_peer *p)
{
    if (!p->am_interested) {
        p->am_interested = true;
        send_simple(p, BT_MSG_INTERESTED);
    }
}

static int send_one(bt_peer *p, bt_partial *pp, uint32_t b)
{
    if (ring_push(p, pp->piece, b))
        return -1;
    if (pp->req[b] == 0 && !pp->got[b])
        pp->nfree--;
    if (pp->req[b] < 255)
        pp->req[b]++;
    send_req(p, BT_MSG_REQUEST, pp->piece, b);
    return 0;
}

bool bt_piece_requestable(bt_torrent *t, bt_peer *p, uint32_t piece)
{
    if (bt_ranges_has(&t->have, piece))
        return false;
    bt_partial *pp = bt_partial_find(t, piece);
    if (!pp)
        return true;
    if (pp->nfree > 0)
        return true;
    if (!t->endgame)
        return false;
    for (uint32_t b = 0; b < pp->nblocks; b++)
        if (!pp->got[b] && !ring_has(p, piece, b))
            return true;
    return false;
}

uint32_t bt_peer_request_blocks(bt_peer *p, uint32_t piece, uint32_t max)
{
    bt_torrent *t = p->t;
    if (max == 0 || bt_ranges_has(&t->have, piece) || p->closing)
        return 0;
    bt_partial *pp = bt_partial_find(t, piece);
    if (!pp) {
        pp = bt_partial_get(t, piece);
        if (!pp)
            return 0;
    }
    ensure_interested(p);
    uint32_t n = 0;
    if (pp->nfree > 0) {
        for (uint32_t b = 0; b < pp->nblocks && n < max && pp->nfree > 0; b++) {
            if (pp->got[b] || pp->req[b] > 0)
                continue;
            if (send_one(p, pp, b))
                return n;
            n++;
        }
    }
    if (t->endgame) {
        for (uint32_t b = 0; b < pp->nblocks && n < max; b++) {
            if (pp->got[b] || ring_has(p, piece, b))
                continue;
            if (send_one(p, pp, b))
                return n;
            n++;
        }
    }
    return n;
}

int bt_peer_request_one(bt_peer *p, uint32_t piece, uint32_t block)
{
    bt_torrent *t = p->t;
    if (bt_ranges_has(&t->have, piece) || p->closing)
        return 0;
    bt_partial *pp = bt_partial_get(t, piece);
    if (!pp || pp->got[block] || ring_has(p, piece, block))
        return 0;
    if (pp->req[block] > 0 && !t->endgame)
        return 0;
    ensure_interested(p);
    return send_one(p, pp, block) == 0;
}

int bt_peer_cancel(bt_peer *p, uint32_t piece, uint32_t block)
{
    if (ring_take(p, piece, block) < 0)
        return 0;
    release_block(p->t, piece, block);
    send_req(p, BT_MSG_CANCEL, piece, block);
    return 1;
}

/* send_cancels: false when the peer already dropped them (choke, disconnect). */
static void release_all(bt_peer *p, bool send_cancels)
{
    for (uint32_t i = 0; i < p->qcount; i++) {
        bt_req *r = &p->q[(p->qhead + i) % p->qcap];
        if (r->piece == UINT32_MAX)
            continue;
        if (p->t)
            release_block(p->t, r->piece, r->block);
        if (send_cancels)
            send_req(p, BT_MSG_CANCEL, r->piece, r->block);
        r->piece = UINT32_MAX;
    }
    p->qcount = 0;
    p->qhead = 0;
    p->inflight = 0;
}

void bt_peer_cancel_all(bt_peer *p)
{
    release_all(p, true);
    if (p->t)
        for (bt_peer *q = p->t->peers; q; q = q->next)
            q->pick_dry = false;
}

/* ---- availability and interest ---- */

static void avail_add(bt_peer *p, int delta)
{
    bt_torrent *t = p->t;
    if (p->seed) {
        t->nseeds += (uint32_t)delta;
        return;
    }
    for (uint32_t i = 0; i < p->have.n; i++)
        for (uint32_t k = p->have.r[i].start; k < p->have.r[i].end; k++)
            t->avail[k] += (uint32_t)delta;
}

/* A peer that completes its set becomes a seed: counted once in nseeds. */
static void maybe_seed(bt_peer *p)
{
    if (!p->seed && bt_ranges_full(&p->have) && p->have.size > 0) {
        avail_add(p, -1);
        p->seed = true;
        avail_add(p, +1);
    }
}

void bt_peer_update_interest(bt_peer *p)
{
    bt_torrent *t = p->t;
    if (!t || p->state != BT_PS_ACTIVE || p->closing)
        return;
    bool want = false;
    for (uint32_t i = 0; i < p->have.n && !want; i++) {
        int64_t c = bt_ranges_next_clear(&t->have, p->have.r[i].start);
        want = c >= 0 && c < p->have.r[i].end;
    }
    if (want && !p->am_interested) {
        p->am_interested = true;
        send_simple(p, BT_MSG_INTERESTED);
    } else if (!want && p->am_interested && p->inflight == 0) {
        p->am_interested = false;
        send_simple(p, BT_MSG_NOT_INTERESTED);
    }
}


/* ---- uploading: unchoke up to BT_SESS_UPLOAD_SLOTS interested peers, serve from disk ---- */

void bt_peer_set_choke(bt_peer *p, bool choke)
{
    if (p->state != BT_PS_ACTIVE || p->closing)
        return;
    if (p->am_choking == choke)
        return;
    p->am_choking = choke;
    if (choke) {
        p->t->unchoked--;
        if (p->fast && p->uq) {
            /* BEP 6: queued requests are rejected explicitly, except allowed-fast ones */
            uint32_t keep = 0;
            for (uint32_t i = 0; i < p->uqcount; i++) {
                struct bt_ureq r = p->uq[(p->uqhead + i) % BT_SESS_UPLOAD_QUEUE];
                if (allowed_fast(p, r.index))
                    p->uq[(p->uqhead + keep++) % BT_SESS_UPLOAD_QUEUE] = r;
                else
                    send_reject(p, r.index, r.begin, r.length);
            }
            p->uqcount = keep;
        } else {
            p->uqcount = 0;   /* without BEP 6 a choke drops every queued request */
        }
    } else {
        p->t->unchoked++;
    }
    send_simple(p, choke ? BT_MSG_CHOKE : BT_MSG_UNCHOKE);
}

/* Fill free upload slots with interested peers (first come, first served). */
void bt_torrent_unchoke_some(bt_torrent *t)
{
    if (t->choke_by_policy) {   /* the policy decides, at its next round */
        /* Only when an interested peer waits for a slot. The binding runs these extra
         * rounds at most once a second (CHOKE_DIRTY_GAP, l_session.c), so a needless one
         * (a leecher that finished and left, with nobody waiting) made the next
         * leecher wait up to a second for its unchoke: measured, back-to-back 256 MiB
         * downloads by libtorrent took 1.8 s instead of 1.0 s. */
        for (bt_peer *q = t->peers; q; q = q->next)
            if (q->state == BT_PS_ACTIVE && !q->closing && q->interested && q->am_choking) {
                t->choke_dirty = true;
                break;
            }
        return;
    }
    if (bt_ranges_count(&t->have) == 0 || t->stopped)
        return;
    for (bt_peer *q = t->peers; q && t->unchoked < BT_SESS_UPLOAD_SLOTS; q = q->next)
        if (q->state == BT_PS_ACTIVE && !q->closing && q->interested && q->am_choking)
            bt_peer_set_choke(q, false);
}

/* A request that breaks the rules we announced (a piece we never said we have, a block
 * outside its piece or larger than s->max_request) drops the peer: nothing is read for
 * it. A request we merely will not serve now (we choke it: it may have crossed our
 * choke on the wire) is ignored, or rejected under BEP 6.
 * Returns 0, or -1 (peer closed). */
static int on_request(bt_peer *p, const bt_msg *m)
{
    bt_torrent *t = p->t;
    const char *bad = NULL;
    if (m->index >= t->npieces || !bt_ranges_has(&t->have, m->index))
        bad = "requested a piece we do not have";
    else if (m->length == 0 || m->length > p->s->max_request)
        bad = "requested a block larger than we serve";
    else if ((int64_t)m->begin + m->length > bt_piece_size(t, m->index))
        bad = "requested a block outside its piece";
    if (bad)
        return bt_peer_close(p, bad), -1;
    /* Past our reqq is refused, not punished: aria2c ignores reqq and keeps more than 250
     * requests out (dropping it for that made a 1 GiB upload take 125-245 s instead of
     * ~5 s). libtorrent refuses them too. The queue stays bounded either way. */
    if ((p->am_choking && !(p->fast && allowed_fast(p, m->index))) ||
        p->uqcount >= BT_SESS_UPLOAD_QUEUE) {
        /* not served: BEP 3 lets us ignore it, BEP 6 wants a reject */
        if (p->fast)
            send_reject(p, m->index, m->begin, m->length);
        return 0;
    }
    if (!p->uq) {
        p->uq = malloc(BT_SESS_UPLOAD_QUEUE * sizeof *p->uq);
        if (!p->uq)
            return bt_peer_close(p, "out of memory"), -1;
    }
    struct bt_ureq *r = &p->uq[(p->uqhead + p->uqcount) % BT_SESS_UPLOAD_QUEUE];
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
        struct bt_ureq *r = &p->uq[(p->uqhead + i) % BT_SESS_UPLOAD_QUEUE];
        if (r->index == m->index && r->begin == m->begin && r->length == m->length) {
            for (uint32_t j = i; j + 1 < p->uqcount; j++)
                p->uq[(p->uqhead + j) % BT_SESS_UPLOAD_QUEUE] = p->uq[(p->uqhead + j + 1) % BT_SESS_UPLOAD_QUEUE];
            p->uqcount--;
            if (p->fast)
                send_reject(p, m->index, m->begin, m->length);   /* BEP 6: a cancel is answered */
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

/* Answer queued requests while the output buffer is short. From the prepare watcher. */
void bt_peer_serve(bt_peer *p)
{
    bt_torrent *t = p->t;
    bt_bucket *bs[2] = { &p->s->up, &t->up };
    bt_rate_refill(p->s, bs[0]);
    bt_rate_refill(p->s, bs[1]);
    /* while choking, a fast peer's queue holds only allowed-fast requests (set_choke and
     * on_request filter them), which BEP 6 lets us serve */
    while (p->uqcount > 0 && !p->closing && (!p->am_choking || p->fast) && p->wbuf.len < BT_SESS_UPLOAD_WATER) {
        struct bt_ureq r = p->uq[p->uqhead];
        /* Upload limit: a block goes whole or waits for the rate timer. A block
         * above the burst is sent once the bucket is full (the debt slows what follows).
         * Checked with bt_bucket_available, whose whole-token rounding is what a take
         * grants (bt_bucket_wait compares without it). */
        int64_t n = 13 + (int64_t)r.length;
        bool ok = true;
        for (int i = 0; i < 2; i++) {
            int64_t need = (double)n < bs[i]->burst ? n : (int64_t)bs[i]->burst;
            if (bt_bucket_available(bs[i]) < need)
                ok = false;
        }
        if (!ok) {
            bt_sess_rate_wait(p->s, bt_bucket_wait_chain(bs, 2, n));
            return;
        }
        bt_bucket_spend_chain(bs, 2, n);
        p->uqhead = (p->uqhead + 1) % BT_SESS_UPLOAD_QUEUE;
        p->uqcount--;
        uint8_t *w = wb_room(p, 13 + (size_t)r.length);
        if (!w)
            return;
        put32(w, 9 + r.length);
        w[4] = BT_MSG_PIECE;
        put32(w + 5, r.index);
        put32(w + 9, r.begin);
        if (bt_storage_read(t->st, r.index, r.begin, w + 13, r.length) != 0) {
            p->wbuf.len -= 13 + (size_t)r.length;
            bt_peer_close(p, "cannot read a piece we have from disk");
            return;
        }
        p->up_total += r.length;
        p->up_tick += r.length;
        t->uploaded += r.length;
    }
}

/* ---- the block hot path ---- */

static void cancel_dups(bt_peer *from, uint32_t piece, uint32_t block, bt_partial *pp)
{
    for (bt_peer *q = from->t->peers; q && pp->req[block] > 0; q = q->next) {
        if (q == from || q->closing)
            continue;
        if (ring_take(q, piece, block) >= 0) {
            pp->req[block]--;
            send_req(q, BT_MSG_CANCEL, piece, block);
        }
    }
    pp->req[block] = 0;
}

static void ban(bt_torrent *t, bt_peer *p)
{
    if (t->nbans < BT_SESS_MAX_BANS) {
        char **nb = realloc(t->bans, (t->nbans + 1) * sizeof *nb);
        if (nb) {
            t->bans = nb;
            char *a = strdup(p->address);
            if (a)
                t->bans[t->nbans++] = a;
        }
    }
    bt_peer_close(p, "banned: sent data for two pieces that failed the hash check");
}

/* FNV-1a over 8-byte words: only run on failed pieces, so simple beats fast. */
static uint64_t block_sum(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    for (; i < n; i++)
        h = (h ^ d[i]) * 1099511628211ull;
    return h;
}

static void blame(bt_torrent *t, uint64_t who)
{
    bt_peer *q = bt_sess_peer(t->s, (uint32_t)who, (uint32_t)(who >> 32));
    if (q && q->t == t && ++q->fails >= BT_SESS_BAN_FAILS)
        ban(t, q);
}

static void suspect_free(bt_suspect *x)
{
    free(x->from);
    free(x->sum);
}

/* Remember a failed piece's senders and block sums (needs the piece buffer). */
static bool suspect_add(bt_torrent *t, bt_partial *pp)
{
    if (!pp->buf)
        return false;
    if (t->nsuspects == BT_SESS_MAX_SUSPECTS) {   /* forget the oldest */
        suspect_free(&t->suspects[0]);
        memmove(t->suspects, t->suspects + 1, (t->nsuspects - 1) * sizeof *t->suspects);
        t->nsuspects--;
    }
    if (!t->suspects) {
        t->suspects = calloc(BT_SESS_MAX_SUSPECTS, sizeof *t->suspects);
        if (!t->suspects)
            return false;
    }
    bt_suspect *x = &t->suspects[t->nsuspects];
    x->piece = pp->piece;
    x->nblocks = pp->nblocks;
    x->from = malloc(pp->nblocks * sizeof *x->from);
    x->sum = malloc(pp->nblocks * sizeof *x->sum);
    if (!x->from || !x->sum) {
        suspect_free(x);
        return false;
    }
    for (uint32_t b = 0; b < pp->nblocks; b++) {
        x->from[b] = pp->from[b];
        x->sum[b] = block_sum(pp->buf + (size_t)b * BT_BLOCK_SIZE, bt_block_len(t, pp->piece, b));
    }
    t->nsuspects++;
    return true;
}

/* The piece verified: blame the senders whose blocks differed in earlier failures. */
static void suspect_resolve(bt_torrent *t, bt_partial *pp)
{
    for (uint32_t k = 0; k < t->nsuspects;) {
        bt_suspect *x = &t->suspects[k];
        if (x->piece != pp->piece) {
            k++;
            continue;
        }
        if (pp->buf) {
            /* x->sum[b] becomes 0 where the block was right, 1 where it was wrong */
            for (uint32_t b = 0; b < x->nblocks; b++)
                x->sum[b] = block_sum(pp->buf + (size_t)b * BT_BLOCK_SIZE, bt_block_len(t, pp->piece, b)) != x->sum[b];
            for (uint32_t b = 0; b < x->nblocks; b++) {
                if (!x->sum[b])
                    continue;
                bool seen = false;   /* one failure per peer per piece */
                for (uint32_t c = 0; c < b && !seen; c++)
                    seen = x->sum[c] && x->from[c] == x->from[b];
                if (!seen)
                    blame(t, x->from[b]);
            }
        }
        suspect_free(x);
        memmove(x, x + 1, (t->nsuspects - k - 1) * sizeof *x);
        t->nsuspects--;
    }
}

/* The verdict on a piece: have it (and tell peers) or drop it and blame its senders. */
void bt_piece_finish(bt_torrent *t, bt_partial *pp, bool ok, int err)
{
    uint32_t idx = pp->piece;
    bt_session *s = t->s;
    /* the peer that completed the piece, if still here: named in the event */
    uint64_t last = pp->from[pp->nblocks ? pp->nblocks - 1 : 0];
    bt_peer *p = bt_sess_peer(s, (uint32_t)last, (uint32_t)(last >> 32));
    if (ok && err) {
        char msg[256];
        snprintf(msg, sizeof msg, "disk error writing piece %u: %s", idx, strerror(err));
        bt_partial_drop(t, pp, true);
        bt_torrent_stop(t, msg);
        return;
    }
    if (ok) {
        if (bt_ranges_set(&t->have, idx)) {
            bt_partial_drop(t, pp, true);
            bt_torrent_stop(t, "out of memory");
            return;
        }
        t->have_bytes += (uint64_t)bt_piece_size(t, idx);
        if (t->nsuspects)
            suspect_resolve(t, pp);
        bt_partial_drop(t, pp, false);
        for (bt_peer *q = t->peers; q; q = q->next)
            if (q->state == BT_PS_ACTIVE && !q->closing && !q->seed)
                send_have(q, idx);
        bt_sess_event(s, BT_EV_PIECE, t, idx, 1, p, NULL);
        if (t->unchoked < BT_SESS_UPLOAD_SLOTS)
            bt_torrent_unchoke_some(t);   /* something to offer now */
        if (bt_ranges_full(&t->have) && !t->complete) {
            t->complete = true;
            for (bt_peer *q = t->peers; q; q = q->next)
                if (q->seed && !q->closing)
                    bt_peer_close(q, "both sides are seeds");   /* nothing left to trade */
            bt_sess_event(s, BT_EV_COMPLETE, t, 0, 1, NULL, NULL);
        }
        return;
    }
    t->failed_bytes += (uint64_t)bt_piece_size(t, idx);
    bool several = false;
    for (uint32_t b = 1; b < pp->nblocks && !several; b++)
        several = pp->from[b] != pp->from[0];
    if (!several) {
        blame(t, pp->from[0]);   /* one sender: certainly its fault */
    } else if (!suspect_add(t, pp)) {
        /* cannot tell who: every distinct sender takes one failure */
        for (uint32_t b = 0; b < pp->nblocks; b++) {
            bool seen = false;
            for (uint32_t c = 0; c < b && !seen; c++)
                seen = pp->from[c] == pp->from[b];
            if (!seen)
                blame(t, pp->from[b]);
        }
    }
    bt_partial_drop(t, pp, true);
    for (bt_peer *q = t->peers; q; q = q->next)
        q->pick_dry = false;
    bt_sess_event(s, BT_EV_PIECE, t, idx, 0, p, NULL);
}

static void piece_done(bt_peer *p, bt_partial *pp)
{
    bt_torrent *t = p->t;
    if (pp->buf && t->s->worker) {
        bt_worker_submit(t->s->worker, pp);
        return;
    }
    bool ok = bt_partial_verify(t, pp);
    int err = 0;
    if (ok && bt_partial_flush(t, pp) != 0)
        err = errno ? errno : EIO;
    bt_piece_finish(t, pp, ok, err);
}

static int on_block(bt_peer *p, const bt_msg *m)
{
    bt_torrent *t = p->t;
    uint32_t idx = m->index, len = (uint32_t)m->payload_len;
    if (idx >= t->npieces || m->begin % BT_BLOCK_SIZE != 0)
        return bt_peer_close(p, "block not on a 16 KiB boundary or past the last piece"), -1;
    uint32_t b = m->begin / BT_BLOCK_SIZE;
    if (b >= bt_piece_nblocks(t, idx) || len != bt_block_len(t, idx, b))
        return bt_peer_close(p, "block of the wrong length"), -1;
    double now = now_of(p);
    double sent = ring_take(p, idx, b);
    if (sent >= 0) {
        double sample = now - sent;
        p->rtt = p->rtt > 0 ? 0.9 * p->rtt + 0.1 * sample : sample;
    }
    p->down_total += len;
    p->down_tick += len;
    p->last_block = now;
    p->snubbed = false;
    t->downloaded += len;
    bt_partial *pp = bt_partial_find(t, idx);
    if (!pp || pp->got[b]) {
        t->dup_bytes += len;
        if (pp && sent >= 0)
            release_block(t, idx, b);
        return 0;
    }
    if (sent >= 0) {
        if (pp->req[b] > 0 && pp->req[b] < 255)
            pp->req[b]--;
    } else if (pp->req[b] == 0) {
        pp->nfree--;   /* released earlier (choke, timeout): take it anyway */
    }
    if (pp->req[b] > 0)
        cancel_dups(p, idx, b, pp);
    if (bt_partial_store(t, pp, b, m->payload, len, t->s->scratch) != 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "disk error on piece %u: %s", idx, strerror(errno));
        bt_torrent_stop(t, msg);
        return -1;
    }
    pp->got[b] = 1;
    pp->nreceived++;
    pp->from[b] = (uint64_t)p->slot | (uint64_t)p->s->slots[p->slot].gen << 32;
    if (pp->nreceived == pp->nblocks)
        piece_done(p, pp);
    return 0;
}

/* ---- messages ---- */

static void on_extended_handshake(bt_peer *p, const uint8_t *d, size_t n)
{
    bt_bdoc doc = { 0 };
    bt_berr err;
    if (bt_bdecode(&doc, (const char *)d, n, BT_BDEC_ALLOW_UNSORTED, &err) != 0)
        return;   /* a broken extension handshake costs the peer its reqq, nothing else */
    if (bt_btype_of(&doc, 0) == BT_BDICT) {
        uint32_t v = bt_bdict_get(&doc, 0, "reqq");
        if (v && bt_btype_of(&doc, v) == BT_BINT) {
            int64_t q = bt_bint(&doc, v);
            if (q >= 1)
                p->reqq = q > BT_SESS_MAX_QUEUE ? BT_SESS_MAX_QUEUE : (uint32_t)q;
        }
    }
    bt_bdoc_free(&doc);
}

static int on_message(bt_peer *p, const bt_msg *m)
{
    bt_torrent *t = p->t;
    switch (m->type) {
    case BT_MSG_KEEPALIVE:
        break;
    case BT_MSG_CHOKE:
        p->choking = true;
        release_all(p, false);   /* without BEP 6 a choke discards our requests */
        for (bt_peer *q = t->peers; q; q = q->next)
            q->pick_dry = false;
        break;
    case BT_MSG_UNCHOKE:
        p->choking = false;
        p->pick_dry = false;
        break;
    case BT_MSG_INTERESTED:
        p->interested = true;
        bt_torrent_unchoke_some(t);
        break;
    case BT_MSG_NOT_INTERESTED:
        p->interested = false;
        if (!p->am_choking) {
            bt_peer_set_choke(p, true);
            bt_torrent_unchoke_some(t);
        }
        break;
    case BT_MSG_HAVE:
        if (m->index >= t->npieces)
            return bt_peer_close(p, "have for a piece past the end"), -1;
        if (!bt_ranges_has(&p->have, m->index)) {
            if (bt_ranges_set(&p->have, m->index))
                return bt_peer_close(p, "out of memory"), -1;
            if (!p->seed)
                t->avail[m->index]++;
            maybe_seed(p);
            p->pick_dry = false;
            if (!bt_ranges_has(&t->have, m->index))
                ensure_interested(p);
        }
        break;
    case BT_MSG_BITFIELD:
    case BT_MSG_HAVE_ALL:
    case BT_MSG_HAVE_NONE: {
        avail_add(p, -1);
        p->seed = false;
        int r = 0;
        if (m->type == BT_MSG_BITFIELD)
            r = bt_ranges_from_wire(&p->have, m->payload, m->payload_len);
        else if (m->type == BT_MSG_HAVE_ALL)
            bt_ranges_set_all(&p->have);
        else
            bt_ranges_clear_all(&p->have);
        if (r != 0) {
            bt_ranges_clear_all(&p->have);
            return bt_peer_close(p, r == -2 ? "bitfield of the wrong length" : "bad bitfield"), -1;
        }
        if (bt_ranges_full(&p->have) && p->have.size > 0)
            p->seed = true;
        avail_add(p, +1);
        p->pick_dry = false;
        bt_peer_update_interest(p);
        break;
    }
    case BT_MSG_PIECE:
        return on_block(p, m);
    case BT_MSG_REQUEST:
        return on_request(p, m);
    case BT_MSG_CANCEL:
        on_cancel(p, m);
        break;
    case BT_MSG_REJECT:
        if (ring_take(p, m->index, m->begin / BT_BLOCK_SIZE) >= 0 && m->index < t->npieces)
            release_block(t, m->index, m->begin / BT_BLOCK_SIZE);
        break;
    case BT_MSG_EXTENDED:
        if (m->ext_id == 0)
            on_extended_handshake(p, m->payload, m->payload_len);
        break;
    default:
        break;   /* port, suggest, allowed fast, unknown ids: nothing to do */
    }
    return 0;
}

/* The handshake is in rbuf[0..68). Returns 0, or -1 (peer closed). */
static int on_handshake(bt_peer *p, const bt_handshake *hs)
{
    bt_session *s = p->s;
    if (!p->t) {   /* incoming: the info-hash names the torrent */
        bt_torrent *t = s->torrents;
        while (t && (t->stopped || memcmp(t->meta->info_hash, hs->info_hash, 20) != 0))
            t = t->next;
        if (!t)
            return bt_peer_close(p, "handshake for a torrent we do not serve"), -1;
        if (t->npeers >= t->max_peers)
            return bt_peer_close(p, "too many peers"), -1;
        if (bt_torrent_banned(t, p->address))
            return bt_peer_close(p, "banned"), -1;
        bt_peer_attach(p, t);
    } else if (memcmp(p->t->meta->info_hash, hs->info_hash, 20) != 0) {
        return bt_peer_close(p, "handshake with the wrong info-hash"), -1;
    }
    if (memcmp(hs->peer_id, s->peer_id, 20) == 0) {
        /* answer first, so the dialing side learns it too and does not retry blindly */
        if (!p->hs_sent)
            send_handshake(p);
        bt_peer_flush(p);
        return bt_peer_close(p, "connected to ourselves"), -1;
    }
    for (bt_peer *q = p->t->peers; q; q = q->next)
        if (q != p && q->state == BT_PS_ACTIVE && !q->closing && memcmp(q->peer_id, hs->peer_id, 20) == 0)
            return bt_peer_close(p, "already connected to this peer id"), -1;
    memcpy(p->peer_id, hs->peer_id, 20);
    p->ext = (hs->reserved[BT_RESERVED_EXTENSION_BYTE] & BT_RESERVED_EXTENSION_BIT) != 0;
    p->fast = (hs->reserved[BT_RESERVED_FAST_BYTE] & BT_RESERVED_FAST_BIT) != 0;   /* we always offer it */
    if (!p->hs_sent)
        send_handshake(p);
    p->state = BT_PS_ACTIVE;
    send_after_handshake(p);
    bt_sess_event(s, BT_EV_PEER_CONNECT, p->t, 0, 1, p, p->address);
    return 0;
}

/* bt_mse_lookup: is the info-hash the dialer obfuscated one we serve? */
static int mse_lookup(void *ud, bt_mse *m)
{
    for (bt_torrent *t = ((bt_session *)ud)->torrents; t; t = t->next)
        if (!t->stopped && bt_mse_try_skey(m, t->meta->info_hash))
            return 1;
    return 0;
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
    bt_mse_status st = bt_mse_step(p->mse, p->rbuf, p->rlen, &out, &outlen, &skip, mse_lookup, p->s);
    if (st == BT_MSE_FAIL)
        return bt_peer_close(p, bt_mse_error(p->mse)), -1;
    if (outlen > 0) {
        uint8_t *w = wb_room(p, outlen);
        if (!w)
            return -1;
        memcpy(w, out, outlen);
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
    /* Download limit: read only what the session's and the torrent's buckets grant;
     * when they grant nothing, stop reading until the rate timer fires (the kernel
     * buffer fills and TCP slows the sender down). */
    bt_session *s = p->s;
    bt_bucket *bs[2] = { &s->down, p->t ? &p->t->down : NULL };
    bt_rate_refill(s, bs[0]);
    if (bs[1])
        bt_rate_refill(s, bs[1]);
    int64_t want = (int64_t)(p->rcap - p->rlen);
    int64_t granted = bt_bucket_take_chain(bs, 2, want);
    if (granted <= 0) {
        ev_io_stop(s->loop, &p->rw);
        p->read_throttled = true;
        /* wait for one block's worth, not for the whole read: waiting for a full
         * bucket loses the tokens that would arrive between full and the timer */
        bt_sess_rate_wait(s, bt_bucket_wait_chain(bs, 2, want < BT_BUCKET_MIN_BURST ? want : BT_BUCKET_MIN_BURST));
        return;
    }
    ssize_t r = recv(p->fd, p->rbuf + p->rlen, (size_t)granted, 0);
    if (r > 0)
        upload_quickack(p);
    bt_bucket_refund_chain(bs, 2, granted - (r > 0 ? r : 0));   /* a short read is not traffic */
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            bt_peer_close(p, strerror(errno));
        return;
    }
    if (r == 0) {
        bt_peer_close(p, "connection closed by peer");
        return;
    }
    p->rlen += (size_t)r;
    p->last_recv = now_of(p);
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
        if (h == 0)
            return;
        if (on_handshake(p, &hs) != 0)
            return;
        off = BT_HANDSHAKE_LEN;
    }
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
                size_t ncap = used + BT_SESS_READ_CHUNK;
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
    if (p->closing)
        return;
    if (off > 0) {
        memmove(p->rbuf, p->rbuf + off, p->rlen - off);
        p->rlen -= off;
    }
    /* Ask the policy once a quarter of the pipeline is free (or it ran dry): one
     * call then fills many slots, instead of one call per read. */
    uint32_t slots = bt_peer_slots(p);
    if (slots > 0 && !p->pick_dry && (slots >= p->queue_depth / 4 || p->inflight < 2))
        p->needs_pick = true;
}

static void on_write(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
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
        ev_io_start(p->s->loop, &p->rw);
    }
    bt_peer_flush(p);
}

bt_peer *bt_peer_new(bt_session *s, int fd, bool incoming, const struct sockaddr *sa, socklen_t salen)
{
    bt_peer *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->rbuf = malloc(BT_SESS_READ_CHUNK);
    if (!p->rbuf) {
        free(p);
        return NULL;
    }
    /* a handle slot: generation numbers make stale Lua handles detectable */
    uint32_t slot = s->nslots;
    for (uint32_t i = 0; i < s->nslots; i++) {
        uint32_t k = (s->free_slot_hint + i) % s->nslots;
        if (!s->slots[k].p) {
            slot = k;
            break;
        }
    }
    if (slot == s->nslots) {
        uint32_t ncap = s->nslots ? s->nslots * 2 : 64;
        bt_slot *ns = realloc(s->slots, ncap * sizeof *ns);
        if (!ns) {
            free(p->rbuf);
            free(p);
            return NULL;
        }
        memset(ns + s->nslots, 0, (ncap - s->nslots) * sizeof *ns);
        s->slots = ns;
        s->nslots = ncap;
    }
    s->slots[slot].p = p;
    s->slots[slot].gen++;
    s->free_slot_hint = slot + 1;
    p->slot = slot;
    p->s = s;
    p->fd = fd;
    p->rcap = BT_SESS_READ_CHUNK;
    p->incoming = incoming;
    p->state = incoming ? BT_PS_HANDSHAKE : BT_PS_CONNECTING;
    p->choking = p->am_choking = true;
    p->reqq = BT_SESS_MAX_QUEUE;
    p->queue_depth = 16;   /* until the first tick asks the policy */
    p->href = -1;
    double now = ev_now(s->loop);
    p->connected_at = p->last_recv = p->last_send = now;
    memcpy(&p->addr, sa, salen < sizeof p->addr ? salen : sizeof p->addr);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
        snprintf(p->address, sizeof p->address, "%s:%d", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
        snprintf(p->address, sizeof p->address, "[%s]:%d", ip, port);
    }
    ev_io_init(&p->rw, on_read, fd, EV_READ);
    ev_io_init(&p->ww, on_write, fd, EV_WRITE);
    p->rw.data = p->ww.data = p;
    if (incoming) {
        p->next = s->pending;
        if (s->pending)
            s->pending->prev = p;
        s->pending = p;
        s->npending++;
        ev_io_start(s->loop, &p->rw);
    } else {
        ev_io_start(s->loop, &p->ww);   /* connect completes when writable */
    }
    return p;
}

/* Move from the pending list into t->peers; sizes the have set. */
void bt_peer_attach(bt_peer *p, bt_torrent *t)
{
    bt_session *s = p->s;
    if (p->t == NULL && p->incoming) {   /* unlink from pending */
        if (p->prev)
            p->prev->next = p->next;
        else
            s->pending = p->next;
        if (p->next)
            p->next->prev = p->prev;
        s->npending--;
    }
    p->t = t;
    p->prev = NULL;
    p->next = t->peers;
    if (t->peers)
        t->peers->prev = p;
    t->peers = p;
    t->npeers++;
    bt_ranges_init(&p->have, t->npieces);
}

void bt_peer_close(bt_peer *p, const char *why)
{
    if (p->closing)
        return;
    p->closing = true;
    p->needs_pick = false;
    ev_io_stop(p->s->loop, &p->rw);
    ev_io_stop(p->s->loop, &p->ww);
    if (p->t) {
        release_all(p, false);
        /* a closing peer no longer counts: availability agrees with t:peers() at once */
        avail_add(p, -1);
        p->avail_gone = true;
        for (bt_peer *q = p->t->peers; q; q = q->next)
            q->pick_dry = false;
        bt_sess_event(p->s, BT_EV_PEER_DISCONNECT, p->t, 0, 0, p, why);
    }
}

/* Free a closed peer: only from the prepare watcher or session teardown. */
void bt_peer_free(bt_peer *p)
{
    bt_session *s = p->s;
    ev_io_stop(s->loop, &p->rw);
    ev_io_stop(s->loop, &p->ww);
    if (s->hooks.peer_gone)
        s->hooks.peer_gone(s->hooks.ud, p);
    bt_torrent *t = p->t;
    if (t) {
        release_all(p, false);
        if (!p->avail_gone)
            avail_add(p, -1);
        if (!p->am_choking)
            t->unchoked--;
        if (p->prev)
            p->prev->next = p->next;
        else
            t->peers = p->next;
        if (p->next)
            p->next->prev = p->prev;
        t->npeers--;
    } else {
        if (p->prev)
            p->prev->next = p->next;
        else if (s->pending == p)
            s->pending = p->next;
        if (p->next)
            p->next->prev = p->prev;
        s->npending--;
    }
    s->slots[p->slot].p = NULL;
    s->slots[p->slot].gen++;
    if (p->fd >= 0)
        close(p->fd);
    bt_ranges_free(&p->have);
    bt_buf_free(&p->wbuf);
    bt_mse_free(p->mse);
    free(p->rbuf);
    free(p->q);
    free(p->uq);
    free(p);
    if (t)
        bt_torrent_unchoke_some(t);   /* its upload slot goes to someone else */
}

/* Per tick: meters, keep-alives, idle and connect timeouts. */
void bt_peer_tick(bt_peer *p, double now, double dt)
{
    bt_session *s = p->s;
    if (p->closing)
        return;
    if (p->state != BT_PS_ACTIVE) {
        if (now - p->connected_at > s->connect_timeout)
            bt_peer_close(p, p->state == BT_PS_CONNECTING ? "connect timed out" : "handshake timed out");
        return;
    }
    if (dt > 0) {
        /* EWMA with a time constant of about 2 s */
        double a = dt / 2.0 > 1 ? 1 : dt / 2.0;
        p->rate_down += a * ((double)p->down_tick / dt - p->rate_down);
        p->rate_up += a * ((double)p->up_tick / dt - p->rate_up);
        p->down_tick = p->up_tick = 0;
    }
    if (now - p->last_recv > s->idle_timeout) {
        bt_peer_close(p, "idle timeout");
        return;
    }
    if (now - p->last_send > s->keepalive) {
        uint8_t *w = wb_room(p, 4);
        if (w)
            put32(w, 0);
    }
    if (!p->pick_dry && bt_peer_slots(p) > 0)
        p->needs_pick = true;
}
