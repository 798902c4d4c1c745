/* torrent.c: one torrent's swarm and the piece lifecycle (torrent.h). */
#define _GNU_SOURCE
#include "engine/torrent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_QUEUE_DEPTH 16   /* until the policy's queue_depth hook answers */

/* ---- geometry ---- */

static inline int64_t piece_bytes(const bt_torrent *t, uint32_t i) { return bt_piece_bytes(&t->pt, i); }
static inline uint32_t block_bytes(const bt_torrent *t, uint32_t i, uint32_t b) { return bt_block_bytes(&t->pt, i, b); }

/* ---- partials ---- */

bt_partial *bt_torrent_partial(const bt_torrent *t, uint32_t piece)
{
    if (t->pmap)   /* every received block looks its piece up: O(1) when we can */
        return piece < t->npieces ? t->pmap[piece] : NULL;
    for (bt_partial *p = t->partials; p; p = p->next)
        if (p->piece == piece)
            return p;
    return NULL;
}

/* Keep t->open (pieces in progress with a free block) in step with nfree. */
static void open_update(bt_torrent *t, bt_partial *pp)
{
    bool want = pp->nfree > 0 && !pp->verifying;
    if (want == pp->open)
        return;
    if (want)
        bt_bitset_set(&t->open, pp->piece);
    else
        bt_bitset_clear(&t->open, pp->piece);
    pp->open = want;
}

static void job_done(bt_job *j);

static size_t partial_size(uint32_t nb)
{
    return sizeof(bt_partial) + (size_t)nb * (sizeof(uint64_t) + 2);
}

/* A new partial for a piece that has none (a fresh one); it leaves the picker.
 * Records of the common size come from t->slab (core/mem.h: with small pieces a
 * pick starts dozens of them), the last piece's from calloc. NULL out of memory. */
static bt_partial *partial_new(bt_torrent *t, uint32_t piece, uint32_t level)
{
    uint32_t nb = bt_piece_blocks(&t->pt, piece);
    bt_partial *pp;
    pp = nb == t->slab_nblocks ? bt_slab_alloc(&t->slab) : calloc(1, partial_size(nb));
    if (!pp)
        return NULL;
    pp->from = (uint64_t *)(pp + 1);
    pp->req = (uint8_t *)(pp->from + nb);
    pp->got = pp->req + nb;
    pp->t = t;
    pp->piece = piece;
    pp->seq = ++t->partial_seq;
    pp->nblocks = pp->nfree = nb;
    pp->job.owner = t;
    pp->job.done = job_done;
    if (level != UINT32_MAX)
        bt_picker_take(&t->pk, piece, level);
    else
        bt_picker_remove(&t->pk, piece);
    if (t->pmap)
        t->pmap[piece] = pp;
    pp->prev = t->partials_tail;
    if (t->partials_tail)
        t->partials_tail->next = pp;
    else
        t->partials = pp;
    t->partials_tail = pp;
    t->npartials++;
    open_update(t, pp);
    return pp;
}

static void buf_release(bt_torrent *t, bt_partial *pp)
{
    if (!pp->buf)
        return;
    t->bufmem -= (uint64_t)t->piece_len;
    if (t->npool < t->poolcap)
        t->pool[t->npool++] = pp->buf;
    else
        free(pp->buf);
    pp->buf = NULL;
}

/* Unlink and free; back_to_picker: the piece may be started again (hash failure). */
static void partial_drop(bt_torrent *t, bt_partial *pp, bool back_to_picker)
{
    pp->nfree = 0;
    open_update(t, pp);
    if (pp->prev)
        pp->prev->next = pp->next;
    else
        t->partials = pp->next;
    if (pp->next)
        pp->next->prev = pp->prev;
    else
        t->partials_tail = pp->prev;
    t->npartials--;
    if (t->pmap)
        t->pmap[pp->piece] = NULL;
    if (back_to_picker)
        bt_picker_add(&t->pk, pp->piece);   /* out of memory leaves it unpickable until restart */
    buf_release(t, pp);
    if (pp->nblocks == t->slab_nblocks)
        bt_slab_put(&t->slab, pp);
    else
        free(pp);
}

/* The buffer a piece is assembled in: from the pool, within the budget (bufcap); NULL
 * when the piece is too large or the budget is spent (blocks then go to storage). */
static uint8_t *buf_get(bt_torrent *t)
{
    if (t->piece_len > BT_PIECE_BUF_MAX)
        return NULL;
    if (!t->pool) {   /* every buffer is piece_len bytes, so any spare fits any piece */
        t->bufcap = BT_PIECE_BUF_TOTAL;
        if (t->bufcap < (uint64_t)BT_PIECE_BUF_MIN * t->piece_len)
            t->bufcap = (uint64_t)BT_PIECE_BUF_MIN * t->piece_len;
        t->poolcap = (uint32_t)(t->bufcap / t->piece_len);
        t->pool = calloc(t->poolcap, sizeof *t->pool);
        if (!t->pool)
            return NULL;
    }
    if (t->bufmem + t->piece_len > t->bufcap)
        return NULL;
    /* aligned, so that the worker's write of the piece can go around the page cache */
    size_t align = BT_STORAGE_DIRECT_ALIGN;
    uint8_t *b = t->npool > 0 ? t->pool[--t->npool]
                              : aligned_alloc(align, ((size_t)t->piece_len + align - 1) / align * align);
    if (b)
        t->bufmem += t->piece_len;
    return b;
}

/* ---- availability and interest ---- */

static void count_peer(bt_torrent *t, bt_peer *p, int delta)
{
    if (delta < 0) {
        if (!p->sw.counted)
            return;
        if (p->sw.seed)
            bt_picker_seeds(&t->pk, -1);
        else
            bt_picker_add_set(&t->pk, &p->have, -1);
        p->sw.counted = p->sw.seed = false;
        return;
    }
    if (p->sw.counted)
        return;
    p->sw.seed = p->have.size > 0 && bt_ranges_full(&p->have);
    if (p->sw.seed)
        bt_picker_seeds(&t->pk, +1);
    else if (bt_picker_add_set(&t->pk, &p->have, +1) != 0) {
        p->sw.seed = false;
        bt_peer_close(p, "out of memory");
        return;
    }
    p->sw.counted = true;
}

/* A peer whose set is fragmented (more runs than a bitmap has words: a random
 * half of a million pieces is 250,000 runs) also gets a bitmap of it, so the pick
 * iterators test its pieces 64 at a time instead of searching its runs. */
static void peer_bits_drop(bt_peer *p)
{
    free(p->sw.bits);
    p->sw.bits = NULL;
}

static void peer_bits_sync(bt_torrent *t, bt_peer *p)
{
    if (p->sw.bits || p->sw.seed || (uint64_t)p->have.n * 64 <= t->npieces)
        return;
    uint64_t *b = calloc((t->npieces + 63) / 64, sizeof *b);
    if (!b)
        return;   /* the iterators search the ranges instead */
    for (uint32_t r = 0; r < p->have.n; r++)
        for (uint32_t k = p->have.r[r].start; k < p->have.r[r].end; k++)
            b[k >> 6] |= 1ull << (k & 63);
    p->sw.bits = b;
}

static void all_undry(bt_torrent *t)
{
    for (bt_peer *q = t->peers; q; q = q->next)
        q->sw.pick_dry = false;
}

/* We want something of p's: interested; nothing and nothing in flight: not. */
static void update_interest(bt_torrent *t, bt_peer *p)
{
    if (p->state != BT_PS_ACTIVE || p->closing)
        return;
    bool want = bt_ranges_next_diff(&p->have, &t->have, 0) >= 0;
    if (want)
        bt_peer_set_interested(p, true);
    else if (p->inflight == 0)
        bt_peer_set_interested(p, false);
}

/* An interested peer waits for an upload slot while some are free: the policy's choke
 * hook is asked again soon (the scheduler bounds how often). Only then: an extra round
 * with nobody waiting (a leecher that finished and left) made the next leecher wait up
 * to the round gap for its unchoke: measured, back-to-back 256 MiB downloads by
 * libtorrent took 1.8 s instead of 1.0 s. */
static void want_round(bt_torrent *t)
{
    if (t->stopped)
        return;
    for (bt_peer *q = t->peers; q; q = q->next)
        if (q->state == BT_PS_ACTIVE && !q->closing && q->interested && q->am_choking) {
            t->choke_wanted = true;
            return;
        }
}

/* ---- smart ban ---- */

/* Bytes of "ip:port" / "[ip]:port" before the port: the host a ban is for. */
static size_t host_len(const char *address)
{
    const char *colon = strrchr(address, ':');
    return colon ? (size_t)(colon - address) : strlen(address);
}

static void ban(bt_torrent *t, bt_peer *p, const char *why)
{
    if (t->nbans < BT_TORRENT_MAX_BANS) {
        char **nb = realloc(t->bans, (t->nbans + 1) * sizeof *nb);
        if (nb) {
            t->bans = nb;
            char *a = strndup(p->address, host_len(p->address));
            if (a)
                t->bans[t->nbans++] = a;
        }
    }
    bt_peer_close(p, why);
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

bt_peer *bt_torrent_peer_by_uid(const bt_torrent *t, uint64_t uid)
{
    for (bt_peer *q = t->peers; q; q = q->next)
        if (q->uid == uid && !q->closing)
            return q;
    return NULL;
}

static void blame(bt_torrent *t, uint64_t who)
{
    bt_peer *q = bt_torrent_peer_by_uid(t, who);
    if (q && ++q->sw.fails >= BT_TORRENT_BAN_FAILS)
        ban(t, q, "banned: sent data for two pieces that failed the hash check");
}

/* Every distinct sender of blocks [0, n) named in from[] takes one failure. */
static void blame_all(bt_torrent *t, const uint64_t *from, uint32_t n, const uint64_t *wrong)
{
    for (uint32_t b = 0; b < n; b++) {
        if (wrong && !wrong[b])
            continue;
        bool seen = false;   /* one failure per peer per piece */
        for (uint32_t c = 0; c < b && !seen; c++)
            seen = (!wrong || wrong[c]) && from[c] == from[b];
        if (!seen)
            blame(t, from[b]);
    }
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
    if (t->nsuspects == BT_TORRENT_MAX_SUSPECTS) {   /* forget the oldest */
        suspect_free(&t->suspects[0]);
        memmove(t->suspects, t->suspects + 1, (t->nsuspects - 1) * sizeof *t->suspects);
        t->nsuspects--;
    }
    if (!t->suspects) {
        t->suspects = calloc(BT_TORRENT_MAX_SUSPECTS, sizeof *t->suspects);
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
        x->sum[b] = block_sum(pp->buf + (size_t)b * BT_BLOCK_SIZE, block_bytes(t, pp->piece, b));
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
                x->sum[b] = block_sum(pp->buf + (size_t)b * BT_BLOCK_SIZE, block_bytes(t, pp->piece, b)) != x->sum[b];
            blame_all(t, x->from, x->nblocks, x->sum);
        }
        suspect_free(x);
        memmove(x, x + 1, (t->nsuspects - k - 1) * sizeof *x);
        t->nsuspects--;
    }
}

/* ---- the piece lifecycle ---- */

/* The verdict, on the loop thread: have the piece (and tell everyone) or put it back
 * and blame its senders. */
static void piece_verdict(bt_torrent *t, bt_partial *pp, bool ok, int err)
{
    uint32_t idx = pp->piece;
    uint64_t last = pp->from[pp->nblocks ? pp->nblocks - 1 : 0];   /* named in the event */
    pp->verifying = false;
    if (ok && err) {
        char msg[256];
        snprintf(msg, sizeof msg, "disk error writing piece %u: %s", idx, strerror(err));
        partial_drop(t, pp, true);
        bt_torrent_stop(t, msg);
        return;
    }
    if (ok) {
        if (bt_ranges_set(&t->have, idx)) {
            partial_drop(t, pp, true);
            bt_torrent_stop(t, "out of memory");
            return;
        }
        t->have_bytes += (uint64_t)piece_bytes(t, idx);
        if (t->nsuspects)
            suspect_resolve(t, pp);
        partial_drop(t, pp, false);
        for (bt_peer *q = t->peers; q; q = q->next)
            if (q->state == BT_PS_ACTIVE && !q->closing && !q->sw.seed)
                bt_peer_send_have(q, idx);
        t->cb->piece(t->ud, t, idx, true, last);
        if (t->unchoked < t->upload_slots)
            want_round(t);   /* something to offer now */
        if (bt_ranges_full(&t->have) && !t->complete) {
            t->complete = true;
            for (bt_peer *q = t->peers; q; q = q->next)
                if (q->sw.seed && !q->closing)
                    bt_peer_close(q, "both sides are seeds");   /* nothing left to trade */
            t->cb->complete(t->ud, t);
        }
        return;
    }
    t->failed_bytes += (uint64_t)piece_bytes(t, idx);
    bool several = false;
    for (uint32_t b = 1; b < pp->nblocks && !several; b++)
        several = pp->from[b] != pp->from[0];
    if (!several)
        blame(t, pp->from[0]);   /* one sender: certainly its fault */
    else if (!suspect_add(t, pp))
        blame_all(t, pp->from, pp->nblocks, NULL);   /* cannot tell who: each sender takes one */
    partial_drop(t, pp, true);
    all_undry(t);
    t->cb->piece(t->ud, t, idx, false, last);
}

static void pause_reads(bt_torrent *t, bool pause)
{
    t->reads_paused = pause;
    for (bt_peer *q = t->peers; q; q = q->next)
        bt_peer_pause(q, pause);
}

/* Reads stop when the buffers are nearly spent and the worker will give some back, and
 * go on when half of them are free, or nothing is left at the worker (waiting would
 * never end: blocks go to storage then). The gap between the two marks spares a stop
 * and a start (two epoll_ctl per peer) for every piece. Pieces too large for a buffer
 * (no pool, no budget) never stop the reads: their blocks are on disk already. */
static void buf_pressure(bt_torrent *t)
{
    if (!t->reads_paused && t->pool && t->backlog > 0 &&
        t->bufmem + (uint64_t)BT_PIECE_BUF_SLACK * t->piece_len > t->bufcap)
        pause_reads(t, true);
    else if (t->reads_paused && (t->backlog == 0 || t->bufmem <= t->bufcap / 2))
        pause_reads(t, false);
}

static void job_done(bt_job *j)
{
    bt_partial *pp = (bt_partial *)((char *)j - offsetof(bt_partial, job));
    bt_torrent *t = pp->t;
    if (t->worker)
        t->backlog -= j->size;
    piece_verdict(t, pp, j->ok, j->err);   /* gives the buffer back */
    if (t->worker)
        buf_pressure(t);
}

/* Every block is in: hash (and write) it on the worker, or inline without one. */
static void piece_complete(bt_torrent *t, bt_partial *pp)
{
    pp->verifying = true;
    open_update(t, pp);
    bt_job *j = &pp->job;
    j->st = t->st;
    j->piece = pp->piece;
    j->size = (uint64_t)piece_bytes(t, pp->piece);
    j->hash = t->meta->pieces + (size_t)pp->piece * 20;
    j->buf = pp->buf;
    if (t->worker) {
        t->backlog += j->size;
        buf_pressure(t);
    }
    bt_worker_submit(t->worker, j);
}

/* Store block b: into the piece's buffer (taken on the first block), else straight
 * to storage. Returns 0 or -1 (storage error, errno set). */
static int block_store(bt_torrent *t, bt_partial *pp, uint32_t b, const uint8_t *data, uint32_t len)
{
    if (!pp->buf && pp->nreceived == 0)
        pp->buf = buf_get(t);
    if (pp->buf) {
        memcpy(pp->buf + (size_t)b * BT_BLOCK_SIZE, data, len);
        return 0;
    }
    return bt_storage_write(t->st, pp->piece, b * BT_BLOCK_SIZE, data, len);
}

/* A block's request is no longer in flight from one peer. */
static void release_block(bt_torrent *t, uint32_t piece, uint32_t block)
{
    bt_partial *pp = bt_torrent_partial(t, piece);
    if (!pp || block >= pp->nblocks || pp->req[block] == 0)
        return;
    if (pp->req[block] < 255)
        pp->req[block]--;
    if (pp->req[block] == 0 && !pp->got[block]) {
        pp->nfree++;
        open_update(t, pp);
    }
}

/* In endgame (or after duplicate requests) the block was asked of others too: cancel theirs. */
static void cancel_dups(bt_torrent *t, bt_peer *from, bt_partial *pp, uint32_t block)
{
    for (bt_peer *q = t->peers; q && pp->req[block] > 0; q = q->next) {
        if (q == from || q->closing)
            continue;
        if (bt_peer_cancel(q, pp->piece, block)) {
            pp->req[block]--;
            t->cancels++;
        }
    }
    pp->req[block] = 0;
}

static void on_block(void *ud, bt_peer *p, uint32_t piece, uint32_t b, const uint8_t *data, uint32_t len,
                     bool requested)
{
    bt_torrent *t = ud;
    p->sw.snubbed = false;
    t->downloaded += len;
    bt_partial *pp = bt_torrent_partial(t, piece);
    if (!pp || pp->got[b]) {
        t->dup_bytes += len;
        if (pp && requested)
            release_block(t, piece, b);
        return;
    }
    if (requested) {
        if (pp->req[b] > 0 && pp->req[b] < 255)
            pp->req[b]--;
    } else if (pp->req[b] == 0) {
        pp->nfree--;   /* released earlier (choke, timeout): take it anyway */
        open_update(t, pp);
    }
    if (pp->req[b] > 0)
        cancel_dups(t, p, pp, b);
    if (block_store(t, pp, b, data, len) != 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "disk error on piece %u: %s", piece, strerror(errno));
        bt_torrent_stop(t, msg);
        return;
    }
    pp->got[b] = 1;
    pp->nreceived++;
    pp->from[b] = p->uid;
    if (pp->nreceived == pp->nblocks)
        piece_complete(t, pp);
}

/* ---- the connections' callbacks (peer.h) ---- */

static int on_handshake(void *ud, bt_peer *p, const bt_handshake *hs, const char **why)
{
    bt_torrent *t = ud;
    for (bt_peer *q = t->peers; q; q = q->next)
        if (q != p && q->state == BT_PS_ACTIVE && !q->closing && memcmp(q->peer_id, hs->peer_id, 20) == 0) {
            *why = "already connected to this peer id";
            return -1;
        }
    return 0;
}

static void on_active(void *ud, bt_peer *p)
{
    bt_torrent *t = ud;
    bt_peer_send_pieces(p);   /* first: see bt_peer_send_pieces */
    bt_peer_send_ext_handshake(p);
    bt_peer_offer_fast(p);
    if (!p->closing)
        t->cb->peer_connect(t->ud, t, p);
}

static void on_pieces(void *ud, bt_peer *p, int delta)
{
    bt_torrent *t = ud;
    count_peer(t, p, delta);
    if (delta < 0) {
        peer_bits_drop(p);
        return;
    }
    peer_bits_sync(t, p);
    p->sw.pick_dry = false;
    update_interest(t, p);
}

static void on_have(void *ud, bt_peer *p, uint32_t piece)
{
    bt_torrent *t = ud;
    if (p->sw.counted && !p->sw.seed) {
        if (bt_ranges_full(&p->have)) {   /* it became a seed: counted once from now on */
            bt_ranges_clear(&p->have, piece);
            count_peer(t, p, -1);
            bt_ranges_set(&p->have, piece);   /* the bit was there a moment ago: no allocation */
            count_peer(t, p, +1);
        } else if (bt_picker_inc(&t->pk, piece) != 0) {
            bt_peer_close(p, "out of memory");
            return;
        }
    }
    if (p->sw.bits)
        p->sw.bits[piece >> 6] |= 1ull << (piece & 63);
    if (p->sw.seed)
        peer_bits_drop(p);
    else
        peer_bits_sync(t, p);
    p->sw.pick_dry = false;
    if (!bt_ranges_has(&t->have, piece))
        bt_peer_set_interested(p, true);
}

static void on_release(void *ud, bt_peer *p, uint32_t piece, uint32_t block)
{
    (void)p;
    release_block(ud, piece, block);
}

static void on_choked(void *ud, bt_peer *p, bool choking)
{
    bt_torrent *t = ud;
    if (choking)
        all_undry(t);   /* its requests are free for others */
    else
        p->sw.pick_dry = false;
}

static void on_interest(void *ud, bt_peer *p, bool interested)
{
    bt_torrent *t = ud;
    if (!interested && !p->am_choking)
        bt_torrent_set_choke(t, p, true);
    want_round(t);
}

static void on_uploaded(void *ud, bt_peer *p, uint32_t bytes)
{
    bt_torrent *t = ud;
    t->uploaded += bytes;
    p->sw.uploaded += bytes;
}

/* Ask the policy once a quarter of the pipeline is free (or it ran dry): one
 * call then fills many slots, instead of one call per read. */
static void on_read_done(void *ud, bt_peer *p)
{
    (void)ud;
    uint32_t slots = bt_torrent_slots(p);
    if (slots > 0 && !p->sw.pick_dry && (slots >= p->sw.queue_depth / 4 || p->inflight < 2))
        p->sw.needs_pick = true;
}

static void on_closing(void *ud, bt_peer *p, const char *why)
{
    bt_torrent *t = ud;
    t->nclosing++;
    p->sw.needs_pick = false;
    if (t->fetching)
        bt_md_release(&t->md, p->uid);
    /* a closing peer no longer counts: availability agrees with t:peers(). A stopped
     * torrent picks nothing more, so its counts are left as they are: taking back 200
     * peers' sets of a million pieces one by one costs seconds at a stop or a close. */
    if (t->stopped)
        p->sw.counted = false;
    else
        count_peer(t, p, -1);
    all_undry(t);
    t->cb->peer_disconnect(t->ud, t, p, why);
}

/* ---- BEP 9: metadata, served from the raw info dictionary or fetched ---- */

static void send_utm(bt_peer *p, int type, uint32_t piece, int64_t total, const uint8_t *data, size_t len)
{
    bt_buf b = { 0 };
    if (bt_wire_ut_metadata(&b, type, piece, total, data, len) != 0)
        bt_peer_close(p, "out of memory");
    else
        bt_peer_send_extended(p, BT_EXT_UT_METADATA, b.data, b.len);
    bt_buf_free(&b);
}

/* The size to fetch, when none is chosen yet: the metadata_size most connected peers
 * announce (a lone liar does not decide it), within BT_MD_MAX_SIZE. */
static uint32_t md_choose_size(const bt_torrent *t)
{
    uint32_t best = 0, votes = 0;
    for (const bt_peer *p = t->peers; p; p = p->next) {
        if (p->closing || !p->ext_ids[BT_EXT_UT_METADATA] || p->metadata_size < 1 ||
            p->metadata_size > BT_MD_MAX_SIZE)
            continue;
        uint32_t n = 0;
        for (const bt_peer *q = t->peers; q; q = q->next)
            n += !q->closing && q->ext_ids[BT_EXT_UT_METADATA] && q->metadata_size == p->metadata_size;
        if (n > votes) {
            votes = n;
            best = (uint32_t)p->metadata_size;
        }
    }
    return best;
}

/* Ask p for metadata pieces while it has fewer than BT_MD_PER_PEER out. */
static void md_ask(bt_torrent *t, bt_peer *p, double now)
{
    bt_mdfetch *f = &t->md;
    if (!t->fetching || t->stopped || f->done || p->closing || p->state != BT_PS_ACTIVE ||
        !p->ext_ids[BT_EXT_UT_METADATA] || now < p->sw.md_wait)
        return;
    if (f->size == 0) {
        uint32_t size = md_choose_size(t);
        if (size == 0 || bt_md_start(f, size, now) != 0)
            return;
    }
    if (p->metadata_size >= 0 && p->metadata_size != f->size)
        return;   /* it has another size in mind: what it would send cannot fit */
    while (p->sw.md_out < BT_MD_PER_PEER && !p->closing) {
        uint64_t was;
        int64_t piece = bt_md_pick(f, now, &was);
        if (piece < 0)
            return;
        if (was == p->uid)
            return;   /* its own late piece: somebody else should get it */
        bt_peer *late = was ? bt_torrent_peer_by_uid(t, was) : NULL;
        if (late && late->sw.md_out > 0)
            late->sw.md_out--;
        bt_md_asked(f, (uint32_t)piece, p->uid, now);
        p->sw.md_out++;
        send_utm(p, BT_UTM_REQUEST, (uint32_t)piece, 0, NULL, 0);
    }
}

static void md_data(bt_torrent *t, bt_peer *p, const bt_utm *u, double now)
{
    bt_mdfetch *f = &t->md;
    if (!t->fetching || f->size == 0 || f->done)
        return;   /* nothing asked, or all had: a late answer */
    if (u->total_size != f->size)
        {
        bt_peer_close(p, "ut_metadata: total_size is not the metadata_size being fetched");
        return;
    }
    if (u->piece >= f->npieces)
        {
        bt_peer_close(p, "ut_metadata: piece past the end of the metadata");
        return;
    }
    if (u->len != bt_md_piece_len(f, u->piece))
        {
        bt_peer_close(p, "ut_metadata: piece of the wrong size");
        return;
    }
    if (f->pc[u->piece].state == BT_MD_ASKED && f->pc[u->piece].from == p->uid && p->sw.md_out > 0)
        p->sw.md_out--;
    int r = bt_md_got(f, u->piece, u->data, p->uid, now);
    if (r == 2) {
        t->cb->metadata(t->ud, t);
        return;
    }
    if (r == -1) {
        /* the whole failed the info-hash: whoever sent any of it is not asked again */
        uint64_t who[64];
        uint32_t n = bt_md_senders(f, who, 64);
        bt_md_reset(f);
        for (uint32_t i = 0; i < n; i++) {
            bt_peer *q = bt_torrent_peer_by_uid(t, who[i]);
            if (q && !q->closing)
                ban(t, q, "banned: sent metadata that failed the info-hash");
        }
        for (bt_peer *q = t->peers; q; q = q->next)
            q->sw.md_out = 0;
        return;
    }
    md_ask(t, p, now);
}

static void on_ext_handshake(void *ud, bt_peer *p)
{
    bt_torrent *t = ud;
    if (!t->fetching)
        return;
    if (p->metadata_size > BT_MD_MAX_SIZE)
        {
        bt_peer_close(p, "metadata_size above 8 MiB (the limit, aria2's)");
        return;
    }
    md_ask(t, p, ev_now(t->env->loop));
}

/* A ut_metadata message (BEP 9): a request served from the raw info dictionary, data
 * and rejects for the fetch. */
static void on_metadata_msg(bt_torrent *t, bt_peer *p, const uint8_t *d, size_t n)
{
    bt_utm u;
    const char *err;
    int rc = bt_wire_parse_ut_metadata(d, n, &u, &err);
    if (rc < 0) {
        bt_peer_close(p, err);
        return;
    }
    if (rc > 0)
        return;   /* a msg_type we do not know: BEP 9 says ignore it */
    double now = ev_now(t->env->loop);
    switch (u.type) {
    case BT_UTM_REQUEST: {
        /* BEP 27: a private torrent's metadata is not served (nor offered: peer.c) */
        const bt_peer_torrent *g = &t->pt;
        if (g->info && !g->priv && (uint64_t)u.piece * BT_UTM_PIECE < g->info_len) {
            size_t off = (size_t)u.piece * BT_UTM_PIECE, len = g->info_len - off;
            send_utm(p, BT_UTM_DATA, u.piece, (int64_t)g->info_len, g->info + off,
                     len > BT_UTM_PIECE ? BT_UTM_PIECE : len);
        } else {
            send_utm(p, BT_UTM_REJECT, u.piece, 0, NULL, 0);
        }
        break;
    }
    case BT_UTM_DATA:
        md_data(t, p, &u, now);
        break;
    case BT_UTM_REJECT:
        if (t->fetching) {
            /* libtorrent waits a minute before asking a peer that rejected again */
            p->sw.md_wait = now + BT_MD_REJECT_WAIT;
            p->sw.md_out = 0;
            bt_md_release(&t->md, p->uid);
            for (bt_peer *q = t->peers; q; q = q->next)
                md_ask(t, q, now);
        }
        break;
    }
}

/* A PEX message (BEP 11): checked and passed on (engine/exchange.h); private torrents
 * offer none (BEP 27), so a PEX message for one is ignored. */
static void on_pex_msg(bt_torrent *t, bt_peer *p, const uint8_t *payload, size_t len)
{
    if (t->pt.priv || !t->cb->pex)
        return;
    bt_pex_addr got[BT_PEX_MAX_TAKE];
    const char *why = NULL;
    int n = bt_pex_receive(p, payload, len, ev_now(p->env->loop), got, BT_PEX_MAX_TAKE, &why);
    if (n < 0)
        bt_peer_close(p, why);
    else if (n > 0)
        t->cb->pex(t->ud, t, p, got, (uint32_t)n);
}

/* A message of one of our BEP 10 extensions, by the id we gave it. */
static void on_extension(void *ud, bt_peer *p, int ext, const uint8_t *payload, size_t len)
{
    bt_torrent *t = ud;
    if (ext == BT_EXT_UT_METADATA)
        on_metadata_msg(t, p, payload, len);
    else if (ext == BT_EXT_UT_PEX)
        on_pex_msg(t, p, payload, len);
}

static const bt_peer_cb TORRENT_PEER_CB = {
    .handshake = on_handshake,
    .active = on_active,
    .pieces = on_pieces,
    .have = on_have,
    .block = on_block,
    .release = on_release,
    .choked = on_choked,
    .interest = on_interest,
    .uploaded = on_uploaded,
    .read_done = on_read_done,
    .ext_handshake = on_ext_handshake,
    .extension = on_extension,
    .closing = on_closing,
};

int bt_torrent_attach(bt_torrent *t, bt_peer *p, const char **why)
{
    if (t->stopped) {
        *why = "torrent is stopped";
        return -1;
    }
    if (bt_torrent_live_peers(t) >= t->max_peers) {
        *why = "too many peers";
        return -1;
    }
    if (bt_torrent_banned(t, p->address)) {
        *why = "banned";
        return -1;
    }
    bt_peer_bind(p, &t->pt, &TORRENT_PEER_CB, t);
    if (t->reads_paused)
        bt_peer_pause(p, true);
    p->sw.t = t;
    p->sw.queue_depth = INITIAL_QUEUE_DEPTH;
    p->sw.counted = !t->fetching;   /* an empty set: have messages may come without a bitfield */
    p->prev = NULL;
    p->next = t->peers;
    if (t->peers)
        t->peers->prev = p;
    t->peers = p;
    t->npeers++;
    return 0;
}

/* How little we would lose by dropping p (higher: evict first), or -1: keep it. */
static double evict_score(const bt_torrent *t, const bt_peer *p, double now, double min_idle)
{
    if (p->closing || now - p->connected_at < min_idle / 3)
        return -1;
    double last = p->last_block > p->last_upload ? p->last_block : p->last_upload;
    double idle = now - (last > 0 ? last : p->connected_at);
    if (p->state == BT_PS_ACTIVE && idle < min_idle)
        return -1;
    double score = idle;   /* idle longest first */
    if (t->complete && p->sw.seed)
        score += 2e9;      /* two seeds have nothing to give each other */
    else if (!p->interested && !p->am_interested)
        score += 1e9;      /* neither side wants anything */
    return score;
}

bool bt_torrent_make_room(bt_torrent *t, double now, double idle, bt_peer **evicted)
{
    if (bt_torrent_live_peers(t) < t->max_peers) {
        if (evicted)
            *evicted = NULL;
        return true;
    }
    if (!evicted)
        return false;
    bt_peer *victim = NULL;
    double best = -1;
    for (bt_peer *p = t->peers; p; p = p->next) {
        double sc = evict_score(t, p, now, idle);
        if (sc > best) {
            best = sc;
            victim = p;
        }
    }
    if (!victim)
        return false;
    bt_peer_close(victim, "evicted to make room for a new peer");
    *evicted = victim;
    return true;
}

bool bt_torrent_wasted_slot(const bt_torrent *t, double now)
{
    for (const bt_peer *p = t->peers; p; p = p->next) {
        /* requests queued or not: nothing of ours acknowledged is nothing taken */
        if (p->state == BT_PS_ACTIVE && !p->closing && !p->am_choking
            && bt_peer_upload_idle(p, now) >= BT_TORRENT_IDLE_SLOT)
            return true;
    }
    return false;
}

/* Bans are by host, not by address: a banned peer dialing in again comes from another port. */
bool bt_torrent_banned(const bt_torrent *t, const char *address)
{
    size_t n = host_len(address);
    for (uint32_t i = 0; i < t->nbans; i++)
        if (strlen(t->bans[i]) == n && memcmp(t->bans[i], address, n) == 0)
            return true;
    return false;
}

bool bt_torrent_connected_to(const bt_torrent *t, const char *address)
{
    for (bt_peer *p = t->peers; p; p = p->next)
        if (!p->closing && !p->incoming && strcmp(p->address, address) == 0)
            return true;
    return false;
}

/* ---- the loop's work ---- */

void bt_torrent_serve(bt_torrent *t)
{
    /* Under an upload limit the first peer served takes what the bucket holds, and
     * new peers sit at the head of the list: start one peer further each iteration
     * so every peer gets its turn (the demo's leechers finished in the order they
     * connected before this). */
    if (t->npeers == 0)
        return;
    uint32_t first = t->serve_rot++ % t->npeers, i = 0;
    bt_peer *start = t->peers;
    while (start && i++ < first)
        start = start->next;
    for (bt_peer *p = start; p; p = p->next)
        bt_peer_serve(p);
    for (bt_peer *p = t->peers; p != start; p = p->next)
        bt_peer_serve(p);
}

static void peer_unlink(bt_torrent *t, bt_peer *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else
        t->peers = p->next;
    if (p->next)
        p->next->prev = p->prev;
    t->npeers--;
    if (p->closing)
        t->nclosing--;
    if (!p->am_choking && p->state == BT_PS_ACTIVE)
        t->unchoked--;
}

static void peer_reap(bt_torrent *t, bt_peer *p)
{
    if (!p->closing)
        bt_peer_close(p, "torrent removed");
    t->cb->peer_gone(t->ud, t, p);
    peer_unlink(t, p);
    peer_bits_drop(p);
    bt_pex_forget(p);
    bt_peer_free(p);
}

void bt_torrent_reap(bt_torrent *t)
{
    bool gone = false;
    for (bt_peer *p = t->peers, *n; p; p = n) {
        n = p->next;
        if (p->closing) {
            peer_reap(t, p);
            gone = true;
        }
    }
    if (gone)
        want_round(t);   /* its upload slot goes to someone else */
}

void bt_torrent_tick(bt_torrent *t, double now, double dt)
{
    if (t->fetching) {
        /* a size nobody delivers pieces of (a liar's, or peers gone): choose again */
        if (t->md.size && !t->md.done && now - t->md.progress_at > BT_MD_STALL) {
            bt_md_reset(&t->md);
            for (bt_peer *p = t->peers; p; p = p->next)
                p->sw.md_out = 0;
        }
        for (bt_peer *p = t->peers; p; p = p->next) {
            bt_peer_tick(p, now, dt);
            md_ask(t, p, now);
        }
        return;
    }
    for (bt_peer *p = t->peers; p; p = p->next) {
        p->sw.pick_dry = false;
        bt_peer_tick(p, now, dt);
        update_interest(t, p);
        if (bt_torrent_slots(p) > 0)
            p->sw.needs_pick = true;
    }
    if (!t->pt.priv && !t->stopped)
        bt_pex_tick(t->peers, now);
}

/* ---- requests ---- */

uint32_t bt_torrent_slots(const bt_peer *p)
{
    if (p->state != BT_PS_ACTIVE || p->closing || p->choking)
        return 0;
    uint32_t depth = p->sw.queue_depth;
    if (depth > p->reqq)
        depth = p->reqq;
    return depth > p->inflight ? depth - p->inflight : 0;
}

uint32_t bt_torrent_unrequested(const bt_torrent *t)
{
    return t->pk.count + t->open.count;
}

bool bt_torrent_requestable(const bt_torrent *t, const bt_peer *p, uint32_t piece, bool dup)
{
    if (piece >= t->npieces || bt_ranges_has(&t->have, piece))
        return false;
    const bt_partial *pp = bt_torrent_partial(t, piece);
    if (!pp)
        return bt_picker_fresh(&t->pk, piece);
    if (pp->verifying)
        return false;
    if (pp->nfree > 0)
        return true;
    if (!dup && !t->endgame)
        return false;
    for (uint32_t b = 0; b < pp->nblocks; b++)
        if (!pp->got[b] && !bt_peer_asked(p, piece, b))
            return true;
    return false;
}

static int send_one(bt_torrent *t, bt_peer *p, bt_partial *pp, uint32_t b)
{
    if (bt_peer_request(p, pp->piece, b) != 0)
        return -1;
    if (pp->req[b] == 0 && !pp->got[b]) {
        pp->nfree--;
        open_update(t, pp);
    }
    if (pp->req[b] < 255)
        pp->req[b]++;
    return 0;
}

/* The checks every request makes: 0 when it may go ahead, else a BT_REQ_ code. */
static int request_check(const bt_torrent *t, const bt_peer *p, uint32_t piece, uint32_t want)
{
    if (p->closing || p->sw.t != t)
        return BT_REQ_GONE;
    if (piece >= t->npieces)
        return BT_REQ_RANGE;
    if (want > bt_torrent_slots(p))
        return BT_REQ_SLOTS;
    if (!bt_ranges_has(&p->have, piece))
        return BT_REQ_LACKS;
    return 0;
}

/* Up to max blocks of piece, once the checks passed. */
static int request_blocks(bt_torrent *t, bt_peer *p, uint32_t piece, uint32_t max, bool dup)
{
    bt_partial *pp = bt_torrent_partial(t, piece);
    if (!pp) {
        if (!bt_picker_fresh(&t->pk, piece))
            return 0;   /* had (or not wanted) */
        if (!(pp = partial_new(t, piece, UINT32_MAX)))
            return BT_REQ_NOMEM;
    } else if (pp->verifying) {
        return 0;
    }
    bt_peer_set_interested(p, true);
    uint32_t n = 0;
    for (uint32_t b = 0; b < pp->nblocks && n < max && pp->nfree > 0; b++) {
        if (pp->got[b] || pp->req[b] > 0)
            continue;
        if (send_one(t, p, pp, b))
            return (int)n;
        n++;
    }
    if (dup || t->endgame) {
        for (uint32_t b = 0; b < pp->nblocks && n < max; b++) {
            if (pp->got[b] || bt_peer_asked(p, piece, b))
                continue;
            if (send_one(t, p, pp, b))
                return (int)n;
            n++;
        }
    }
    return (int)n;
}

int bt_torrent_request_blocks(bt_torrent *t, bt_peer *p, uint32_t piece, uint32_t max, bool dup)
{
    int rc = request_check(t, p, piece, max);
    if (rc != 0)
        return rc;
    return max == 0 ? 0 : request_blocks(t, p, piece, max, dup);
}

int bt_torrent_request_given(bt_torrent *t, bt_peer *p, const bt_piece_iter *it, uint32_t piece, uint32_t max)
{
    uint32_t slots = bt_torrent_slots(p);
    if (max > slots)
        max = slots;
    if (it->kind != BT_ITER_RAREST && it->kind != BT_ITER_COMMON)
        return request_blocks(t, p, piece, max, false);
    /* rarest / common gave it from level it->pk.level: not started, so no partial to
     * look up, and its level is known (cache misses spared: with 16 KiB pieces a pick
     * starts dozens, scattered over the torrent) */
    bt_partial *pp = partial_new(t, piece, it->pk.level);
    if (!pp)
        return BT_REQ_NOMEM;
    bt_peer_set_interested(p, true);
    uint32_t n = 0;
    for (uint32_t b = 0; b < pp->nblocks && n < max; b++, n++)
        if (send_one(t, p, pp, b))
            break;
    return (int)n;
}

int bt_torrent_request_one(bt_torrent *t, bt_peer *p, uint32_t piece, uint32_t block)
{
    if (piece < t->npieces && block >= bt_piece_blocks(&t->pt, piece))
        return BT_REQ_BLOCK;
    int rc = request_check(t, p, piece, 1);
    if (rc != 0)
        return rc;
    if (bt_ranges_has(&t->have, piece))
        return 0;
    bt_partial *pp = bt_torrent_partial(t, piece);
    if (pp && (pp->verifying || pp->got[block] || bt_peer_asked(p, piece, block) ||
               (pp->req[block] > 0 && !t->endgame)))
        return 0;
    if (!pp && !bt_picker_fresh(&t->pk, piece))
        return 0;
    if (!pp && !(pp = partial_new(t, piece, UINT32_MAX)))
        return BT_REQ_NOMEM;
    bt_peer_set_interested(p, true);
    return send_one(t, p, pp, block) == 0 ? 1 : 0;
}

bool bt_torrent_cancel(bt_torrent *t, bt_peer *p, uint32_t piece, uint32_t block)
{
    if (!bt_peer_cancel(p, piece, block))
        return false;
    t->cancels++;
    release_block(t, piece, block);
    return true;
}

void bt_torrent_cancel_all(bt_torrent *t, bt_peer *p)
{
    t->cancels += p->inflight;
    bt_peer_release_all(p, true);   /* each comes back through on_release */
    all_undry(t);
}

void bt_torrent_snub(bt_torrent *t, bt_peer *p)
{
    bt_torrent_cancel_all(t, p);
    p->sw.snubbed = true;
}

void bt_torrent_set_endgame(bt_torrent *t, bool on)
{
    if (on == t->endgame)
        return;
    t->endgame = on;
    all_undry(t);
}

void bt_torrent_set_choke(bt_torrent *t, bt_peer *p, bool choke)
{
    if (bt_peer_set_choke(p, choke))
        t->unchoked += choke ? -1u : 1u;
}

/* ---- iterators ---- */

uint32_t bt_torrent_partial_slots(const bt_torrent *t)
{
    return t->endgame ? t->npartials : 0;
}

void bt_torrent_iter(const bt_torrent *t, const bt_peer *p, bt_piece_iter *it, int kind, uint32_t from,
                     uint32_t to, uint32_t *list)
{
    memset(it, 0, sizeof *it);
    it->kind = kind;
    if (kind == BT_ITER_RAREST || kind == BT_ITER_COMMON) {
        bt_picker_iter(&t->pk, &it->pk, kind == BT_ITER_COMMON, p->sw.counted && !p->sw.seed);
    } else if (kind == BT_ITER_PARTIAL) {
        it->list = list;   /* endgame: a snapshot; otherwise t->open is walked as it is */
        it->snapshot = t->endgame;
        if (t->endgame)
            for (const bt_partial *pp = t->partials; pp; pp = pp->next)
                if (bt_ranges_has(&p->have, pp->piece))
                    list[it->n++] = pp->piece;
    } else {
        it->pos = from;
        it->to = to < t->npieces ? to : t->npieces;
    }
}

int64_t bt_torrent_iter_next(const bt_torrent *t, const bt_peer *p, bt_piece_iter *it)
{
    if (bt_torrent_slots(p) == 0)
        return -1;
    switch (it->kind) {
    case BT_ITER_RAREST:
    case BT_ITER_COMMON:
        return bt_picker_next(&t->pk, &it->pk, p->sw.seed || p->sw.bits ? NULL : &p->have,
                              p->sw.seed ? NULL : p->sw.bits);
    case BT_ITER_PARTIAL:
        if (it->snapshot) {
            while (it->i < it->n) {
                uint32_t piece = it->list[it->i++];
                if (bt_torrent_requestable(t, p, piece, false))
                    return piece;
            }
            return -1;
        }
        while (it->pos < t->npieces) {
            /* the next piece with a free block that the peer has */
            int64_t k = p->sw.seed   ? bt_bitset_next(&t->open, it->pos, t->npieces)
                      : p->sw.bits ? bt_bitset_next_and(&t->open, it->pos, t->npieces, p->sw.bits)
                                   : bt_bitset_next_in(&t->open, it->pos, t->npieces, &p->have, &it->hint);
            if (k < 0)
                break;
            it->pos = (uint32_t)k + 1;
            if (bt_torrent_requestable(t, p, (uint32_t)k, false))
                return k;
        }
        it->pos = t->npieces;
        return -1;
    default:
        while (it->pos < it->to) {
            /* the peer's next piece that we lack */
            int64_t k = bt_ranges_next_diff(&p->have, &t->have, it->pos);
            if (k < 0 || k >= it->to)
                break;
            it->pos = (uint32_t)k + 1;
            if (bt_torrent_requestable(t, p, (uint32_t)k, false))
                return k;
        }
        it->pos = it->to;
        return -1;
    }
}

/* ---- life cycle ---- */

static void set_limit(bt_bucket *b, double rate)
{
    if (!(rate > 0))
        rate = 0;
    /* a bucket holds a quarter second of traffic: smooth from the start, still several
     * blocks per read at 1 MiB/s (bt_bucket_set raises it to one block at least) */
    bt_bucket_set(b, rate, rate > 0 ? rate * 0.25 : 0);
    if (b->tokens > b->burst || rate == 0)
        b->tokens = b->burst;
}

void bt_torrent_set_limits(bt_torrent *t, double down, double up)
{
    set_limit(&t->down, down);
    set_limit(&t->up, up);
    bt_throttle_wait(t->env->throttle, 0);   /* a raised limit frees throttled peers now */
}

/* Piece i is had from the start (trusted, found on disk, loaded): counted, not pickable. */
static int had_at_start(bt_torrent *t, uint32_t i)
{
    if (bt_ranges_set(&t->have, i))
        return -1;
    t->have_bytes += (uint64_t)piece_bytes(t, i);
    return 0;
}

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
        } else if (good && had_at_start(t, i) != 0) {
            snprintf(errbuf, errlen, "out of memory");
            rc = -1;
        }
    }
    bt_storage_close(src);
    return rc;
}

/* Hash-check what the storage holds, except pieces already had (trusted from
 * resume data). The storage skips without reading what cannot be good: spans of
 * files that were missing or too short when opened (among them files it just
 * created), and holes (compared with the hash of zeros). */
static int check_files(bt_torrent *t, char *errbuf, size_t errlen)
{
    for (uint32_t i = 0; i < t->npieces; i++) {
        if (bt_ranges_has(&t->have, i))
            continue;
        int good = bt_storage_check_piece(t->st, i);
        if (good < 0) {
            snprintf(errbuf, errlen, "checking piece %u: %s", i, bt_storage_error(t->st));
            return -1;
        }
        if (good && had_at_start(t, i) != 0) {
            snprintf(errbuf, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

static void torrent_release(bt_torrent *t)
{
    while (t->partials)
        partial_drop(t, t->partials, false);
    bt_slab_free(&t->slab);
    bt_storage_close(t->st);
    bt_ranges_free(&t->have);
    bt_bitset_free(&t->open);
    bt_picker_free(&t->pk);
    for (uint32_t i = 0; i < t->nsuspects; i++)
        suspect_free(&t->suspects[i]);
    free(t->suspects);
    for (uint32_t i = 0; i < t->npool; i++)
        free(t->pool[i]);
    free(t->pool);
    for (uint32_t i = 0; i < t->nbans; i++)
        free(t->bans[i]);
    free(t->bans);
    free(t->pmap);
    free(t->dir);
    free(t->error);
    bt_md_free(&t->md);
    free(t);
}

/* What a torrent has once its metadata is known: geometry, piece sets, picker,
 * storage, the start-up check. Used by bt_torrent_new and, for a magnet's torrent,
 * bt_torrent_set_meta. -1 with a message; what was made is freed by torrent_release
 * (or undone by the caller). */
static int load_meta(bt_torrent *t, const bt_torrent_opts *o, char *errbuf, size_t errlen)
{
    const bt_meta *m = o->meta;
    bool mem = o->storage == BT_STORE_MEMORY;
    t->meta = m;
    memcpy(t->info_hash, m->info_hash, 20);
    t->npieces = m->num_pieces;
    t->piece_len = (uint32_t)m->piece_length;
    t->total = m->total_length;
    t->in_memory = mem;
    bt_ranges_free(&t->have);
    bt_ranges_init(&t->have, t->npieces);
    int pk = bt_picker_init(&t->pk, t->npieces, o->rot);
    if (pk == 0)
        pk = bt_bitset_init(&t->open, t->npieces);
    t->dir = mem ? NULL : strdup(o->dir);
    if (t->npieces <= BT_PMAP_MAX)
        t->pmap = calloc(t->npieces ? t->npieces : 1, sizeof *t->pmap);   /* NULL: list search */
    if (t->pmap)   /* read at random by every pick and every block (core/mem.h) */
        bt_mem_huge(t->pmap, (size_t)t->npieces * sizeof *t->pmap);
    if (pk != 0 || (!mem && !t->dir)) {
        snprintf(errbuf, errlen, "out of memory");
        return -1;
    }
    t->st = mem ? bt_storage_open_memory(m, errbuf, errlen) : bt_storage_open(m, o->dir, errbuf, errlen);
    if (!t->st)
        return -1;
    t->slab_nblocks = t->npieces ? bt_piece_blocks(&(bt_peer_torrent){ .npieces = t->npieces,
        .piece_len = t->piece_len, .total = t->total }, 0) : 0;
    bt_slab_init(&t->slab, partial_size(t->slab_nblocks));
    t->pt = (bt_peer_torrent){ .info_hash = t->info_hash, .npieces = t->npieces, .piece_len = t->piece_len,
                               .total = t->total, .have = &t->have, .st = t->st, .down = &t->down,
                               .up = &t->up,
                               .info = (const uint8_t *)m->doc.buf + m->doc.tok[m->info_tok].start,
                               .info_len = m->doc.tok[m->info_tok].end - m->doc.tok[m->info_tok].start,
                               .priv = m->is_private != 0 };
    const bt_ranges *trust = mem ? NULL : o->trust;   /* memory holds nothing from before */
    if (trust && trust->size == t->npieces) {
        for (uint32_t r = 0; r < trust->n; r++)
            for (uint32_t k = trust->r[r].start; k < trust->r[r].end; k++)
                if (had_at_start(t, k) != 0) {
                    snprintf(errbuf, errlen, "out of memory");
                    return -1;
                }
    }
    int rc = 0;
    if (mem)
        rc = o->load ? load_into_memory(t, o->load, errbuf, errlen) : 0;
    else
        rc = check_files(t, errbuf, errlen);   /* hashes what is on disk and not trusted */
    for (uint32_t i = 0; i < t->npieces && rc == 0; i++)
        if (!bt_ranges_has(&t->have, i) && bt_picker_add(&t->pk, i) != 0) {
            snprintf(errbuf, errlen, "out of memory");
            rc = -1;
        }
    if (rc != 0)
        return -1;
    t->checked = true;
    if (bt_ranges_full(&t->have)) {
        t->complete = true;
        t->cb->complete(t->ud, t);
    }
    return 0;
}

bt_torrent *bt_torrent_new(const bt_torrent_opts *o, char *errbuf, size_t errlen)
{
    bool mem = o->storage == BT_STORE_MEMORY;
    if (!mem && !o->dir) {
        snprintf(errbuf, errlen, "disk storage needs a folder");
        return NULL;
    }
    if (!o->meta && !o->info_hash) {
        snprintf(errbuf, errlen, "a torrent needs its metadata or an info-hash");
        return NULL;
    }
    bt_torrent *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(errbuf, errlen, "out of memory");
        return NULL;
    }
    t->id = o->id;
    t->cb = o->cb;
    t->ud = o->ud;
    t->env = o->env;
    t->worker = o->worker;
    t->max_peers = o->max_peers ? o->max_peers : BT_TORRENT_MAX_PEERS;
    t->upload_slots = 5;
    bt_bucket_init(&t->down, 0, 0);   /* unlimited until set_limits */
    bt_bucket_init(&t->up, 0, 0);
    if (!o->meta) {
        /* a magnet's: peers come and give the metadata; everything else waits for it */
        t->fetching = true;
        memcpy(t->info_hash, o->info_hash, 20);
        bt_md_init(&t->md, o->info_hash);
        bt_ranges_init(&t->have, 0);
        t->pt = (bt_peer_torrent){ .info_hash = t->info_hash, .have = &t->have, .down = &t->down,
                                   .up = &t->up, .no_meta = true };
        return t;
    }
    if (load_meta(t, o, errbuf, errlen) != 0) {
        torrent_release(t);
        return NULL;
    }
    return t;
}

int bt_torrent_set_meta(bt_torrent *t, const bt_torrent_opts *o, char *errbuf, size_t errlen)
{
    if (!t->fetching || t->stopped) {
        snprintf(errbuf, errlen, t->stopped ? "the torrent is stopped" : "the torrent has its metadata");
        return -1;
    }
    if (memcmp(o->meta->info_hash, t->info_hash, 20) != 0) {
        snprintf(errbuf, errlen, "the metadata is another torrent's (its info-hash differs)");
        return -1;
    }
    if (o->storage != BT_STORE_MEMORY && !o->dir) {
        snprintf(errbuf, errlen, "disk storage needs a folder");
        return -1;
    }
    for (bt_peer *p = t->peers; p; p = p->next)
        bt_peer_close(p, "metadata received: reconnecting");
    t->fetching = false;
    if (load_meta(t, o, errbuf, errlen) != 0) {
        /* back to fetching, with nothing of the failed attempt left */
        bt_storage_close(t->st);
        t->st = NULL;
        bt_picker_free(&t->pk);
        memset(&t->pk, 0, sizeof t->pk);
        bt_bitset_free(&t->open);
        memset(&t->open, 0, sizeof t->open);
        free(t->pmap);
        t->pmap = NULL;
        free(t->dir);
        t->dir = NULL;
        bt_ranges_free(&t->have);
        bt_ranges_init(&t->have, 0);
        t->meta = NULL;
        t->npieces = t->piece_len = 0;
        t->total = 0;
        t->fetching = true;
        t->pt = (bt_peer_torrent){ .info_hash = t->info_hash, .have = &t->have, .down = &t->down,
                                   .up = &t->up, .no_meta = true };
        return -1;
    }
    bt_md_free(&t->md);
    return 0;
}

void bt_torrent_stop(bt_torrent *t, const char *why)
{
    if (t->stopped)
        return;
    t->stopped = true;
    if (why) {
        free(t->error);
        t->error = strdup(why);
        t->cb->stopped(t->ud, t, why);
    }
    for (bt_peer *p = t->peers; p; p = p->next)
        bt_peer_close(p, why ? why : "torrent stopped");
}

void bt_torrent_free(bt_torrent *t)
{
    t->stopped = true;   /* no unchoking or events while its peers go */
    while (t->peers)
        peer_reap(t, t->peers);
    torrent_release(t);
}

int bt_torrent_sync(bt_torrent *t, char *errbuf, size_t errlen)
{
    if (!t->st)
        return 0;   /* a magnet's torrent before its metadata: no storage yet */
    if (bt_storage_sync(t->st) != 0) {   /* memory: nothing to do */
        snprintf(errbuf, errlen, "%s", bt_storage_error(t->st));
        return -1;
    }
    return 0;
}

uint64_t bt_torrent_memory(const bt_torrent *t)
{
    uint64_t n = sizeof *t + bt_picker_memory(&t->pk) + bt_bitset_memory(&t->open) +
                 (uint64_t)t->have.cap * sizeof(bt_range);
    if (t->pmap)
        n += (uint64_t)t->npieces * sizeof *t->pmap;
    for (const bt_peer *p = t->peers; p; p = p->next)
        n += sizeof *p + (uint64_t)p->have.cap * sizeof(bt_range) + p->rcap + p->wbuf.cap +
             (p->sw.bits ? (uint64_t)(t->npieces + 63) / 64 * 8 : 0) +
             (uint64_t)p->qcap * sizeof(bt_req) + (p->uq ? BT_PEER_UPLOAD_QUEUE * sizeof *p->uq : 0);
    n += t->slab.bytes;   /* the records of the common size, in use or kept */
    for (const bt_partial *pp = t->partials; pp; pp = pp->next)
        n += (pp->nblocks == t->slab_nblocks ? 0 : partial_size(pp->nblocks)) + (pp->buf ? t->piece_len : 0);
    return n;
}
