/* peer.h: one connection to a peer: the socket, buffered I/O, the handshake (and
 * the answering side of MSE), framing with codec/wire, the protocol state both
 * ways, our requests in flight (a ring) and the peer's requests of us (a queue
 * served from storage under the rate limits).
 *
 * A connection knows nothing of the swarm: it does not know which pieces we want,
 * who else is connected, or what a block is for. It reports what happened to its
 * owner through the callback table bt_peer_cb, declared here: the session owns a
 * connection until its handshake names a torrent, the torrent afterwards. Every
 * message it sends is built by codec/wire.
 *
 * Closing is always deferred: bt_peer_close marks the connection, stops its
 * watchers and tells the owner (who takes its requests and pieces out of its
 * books); the owner frees it with bt_peer_free once nothing on the stack can
 * still hold the pointer (the session's prepare watcher).
 */
#ifndef BT_PEER_H
#define BT_PEER_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec/mse.h"
#include "codec/wire.h"
#include "core/buf.h"
#include "core/ranges.h"
#include "core/ratelimit.h"
#include "engine/throttle.h"
#include "storage/storage.h"

/* Limits, each with its reason. */
#define BT_PEER_MAX_QUEUE     2000    /* our requests in flight to one peer: libtorrent's default reqq */
#define BT_PEER_READ_CHUNK    (256u * 1024)  /* one recv() takes up to 16 blocks at once */
#define BT_PEER_MAX_WBUF      (4u << 20)     /* queued output before the connection is dropped */
#define BT_PEER_UPLOAD_QUEUE  500     /* requests a peer may queue with us: our BEP 10 reqq. libtorrent's
                                         max_allowed_in_request_queue; aria2c ignores reqq and keeps
                                         more than 250 out (1 GiB to aria2c: 5.6 s at 500, 6.0 s at
                                         250, against libtorrent's seed 5.4-6.0 s) */
#define BT_PEER_UPLOAD_WATER  (256u * 1024)  /* serve more blocks only below this much queued output */
#define BT_PEER_UNSENT        512            /* blocks queued or sent and not yet acknowledged */
#define BT_PEER_MARKS         128     /* output delay: release marks per connection (2 KiB); when full
                                         the newest coalesce, so bytes are never released early */
#define BT_PEER_MSS           1448    /* output delay: bytes per TCP segment, for the loss draws */
#define BT_PEER_RTO           0.2     /* output delay: what a lost segment costs, Linux's minimum RTO */
#define BT_FAST_SET           4       /* BEP 6 allowed-fast pieces offered per IPv4 peer (libtorrent: 10;
                                         a few let a new peer start without an unchoke) */

typedef struct bt_peer bt_peer;

typedef enum { BT_PS_CONNECTING, BT_PS_HANDSHAKE, BT_PS_ACTIVE } bt_peer_state;

/* Where a peer's address came from: set by whoever made the connection (the dialer
 * from its caller, the listener: incoming). Policies and events see it as
 * peer.source; the names are the binding's (l_peer.c), in this order. */
typedef enum {
    BT_SRC_MANUAL, BT_SRC_TRACKER, BT_SRC_DHT, BT_SRC_PEX, BT_SRC_INCOMING, BT_SRC_COUNT
} bt_peer_source;

/* One request of ours in flight. piece == UINT32_MAX marks a slot freed out of order. */
typedef struct bt_req {
    uint32_t piece;
    uint32_t block;
    uint32_t ahead;      /* requests in flight before this one when it was sent */
    double sent;
} bt_req;

/* Shared by every connection of a session; outlives them. */
typedef struct bt_peer_env {
    struct ev_loop *loop;
    uint8_t peer_id[20];        /* ours */
    uint16_t port;              /* our listening port (0: none) */
    uint8_t ipv6[16];           /* an IPv6 address we accept connections at (BEP 7's "ipv6"), */
    bool has_ipv6;              /*   told to peers reached over IPv4; false: none known */
    uint32_t max_request;       /* largest block we serve; a larger request drops the peer */
    double connect_timeout, idle_timeout, keepalive;
    double send_timeout;      /* output waiting this long with nothing taken: the peer does not read */
    bt_throttle *throttle;
    bt_bucket *down, *up;       /* the session's limits */
    /* Lab mode (docs/lab.md "Network"): every byte sent is held `delay` seconds before
     * send(), and with probability `loss` per segment a batch waits BT_PEER_RTO more.
     * Both 0: off (no marks, no timer). */
    double delay, loss;
    uint64_t *loss_rng;         /* the loss draws' state (xorshift64), the owner's */
} bt_peer_env;

/* What a connection knows of its torrent once attached; owned by the torrent. */
typedef struct bt_peer_torrent {
    const uint8_t *info_hash;   /* 20 bytes */
    uint32_t npieces, piece_len;
    int64_t total;
    const bt_ranges *have;      /* our verified pieces: what we may serve */
    bt_storage *st;             /* where served blocks are read */
    bt_bucket *down, *up;       /* the torrent's limits */
    const uint8_t *info;        /* the raw info dictionary (BEP 9 metadata); NULL: not known yet */
    size_t info_len;
    bool priv;                  /* BEP 27 private: no ut_metadata offered (nor PEX, DHT) */
    bool no_meta;               /* a magnet's torrent before its metadata: npieces is not known, so
                                   piece messages (have, bitfield, requests, blocks...) are ignored */
} bt_peer_torrent;

/* Events from a connection to its owner. All are called on the loop thread from
 * the connection's I/O callbacks (or from bt_peer_close); none may free p. */
typedef struct bt_peer_cb {
    /* The peer's handshake arrived. Return 0 to go on, or -1 with *why set (static
     * text) to close. The session's version finds the torrent and attaches p to it
     * (which replaces p's callbacks); the torrent's checks bans and duplicates. */
    int  (*handshake)(void *ud, bt_peer *p, const bt_handshake *hs, const char **why);
    /* MSE: does the obfuscated info-hash in m name a torrent we serve? (mse.h) */
    bt_mse_lookup mse_skey;
    /* Handshakes done both ways: the connection is active. */
    void (*active)(void *ud, bt_peer *p);
    /* The peer's piece set: delta -1 just before a bitfield / have-all / have-none
     * replaces p->have, +1 just after. */
    void (*pieces)(void *ud, bt_peer *p, int delta);
    void (*have)(void *ud, bt_peer *p, uint32_t piece);   /* p->have already has it */
    /* A block arrived: geometry checked; requested says whether it was in our ring. */
    void (*block)(void *ud, bt_peer *p, uint32_t piece, uint32_t block, const uint8_t *data,
                  uint32_t len, bool requested);
    /* A request of ours left the ring without its block (reject, choke, close). */
    void (*release)(void *ud, bt_peer *p, uint32_t piece, uint32_t block);
    void (*choked)(void *ud, bt_peer *p, bool choking);          /* the peer (un)choked us */
    void (*interest)(void *ud, bt_peer *p, bool interested);     /* the peer's interest changed */
    void (*uploaded)(void *ud, bt_peer *p, uint32_t bytes);      /* blocks served (one call per batch) */
    void (*read_done)(void *ud, bt_peer *p);   /* every message of one read was handled */
    /* BEP 10: the peer's extension handshake was read (p->ext_ids, p->metadata_size,
     * p->client are set); may be NULL. */
    void (*ext_handshake)(void *ud, bt_peer *p);
    /* A message of one of our extensions (ext: enum bt_ext, by the id we gave it);
     * payload points into the read buffer, valid for the call; may be NULL. */
    void (*extension)(void *ud, bt_peer *p, int ext, const uint8_t *payload, size_t len);
    /* The connection is closing (p->closing is set, its ring is still full so the
     * owner can release it). why: static or owned by the caller until return. */
    void (*closing)(void *ud, bt_peer *p, const char *why);
} bt_peer_cb;

struct bt_peer {
    /* ---- the owner's: a list link and its per-peer books; this file never reads them ---- */
    bt_peer *next, *prev;
    struct bt_peer_sw {
        struct bt_torrent *t;     /* the torrent, once attached */
        bool seed;                /* has every piece: counted once in the picker's seeds */
        bool counted;             /* its pieces are in the torrent's availability counts */
        bool snubbed;             /* the timeout hook said so; cleared by the next block */
        bool needs_pick, pick_dry;  /* pick wanted / asked for nothing until news */
        bool want_unchoke;        /* scratch for a choke round */
        uint32_t queue_depth;     /* target pipeline, from the policy's queue_depth hook */
        uint32_t fails;           /* failed pieces this peer sent blocks of */
        uint64_t uploaded;        /* bytes of blocks we sent it */
        uint64_t *bits;           /* its pieces as a bitmap, kept while its ranges are fragmented */
        uint8_t md_out;           /* metadata fetch: ut_metadata requests out to it */
        double md_wait;           /* ... not asked before this time (it rejected one) */
        struct bt_pex_book *pex;  /* PEX: what it was told, when (engine/exchange.h); NULL: nothing yet */
    } sw;
    int href;                     /* the Lua binding's handle (registry ref), or -1 */

    /* ---- the connection's own ---- */
    const bt_peer_env *env;
    const bt_peer_torrent *tor;   /* NULL until attached */
    const bt_peer_cb *cb;
    void *ud;
    uint64_t uid;                 /* unique in the session: names the peer in events and bans */
    int fd;
    ev_io rw, ww;
    bt_peer_state state;
    bool incoming, hs_sent, closing, ext, fast;
    uint8_t source;                     /* bt_peer_source */
    bool choking, interested;           /* the peer's state toward us */
    bool am_choking, am_interested;     /* ours toward the peer */
    bool read_throttled;                /* read watcher stopped by the download limit */
    bool read_paused;                   /* read watcher stopped by the owner (bt_peer_pause) */
    bool mse_decided;                   /* incoming: plaintext handshake seen, or MSE finished */
    bt_mse *mse;                        /* incoming MSE handshake in progress, else NULL */
    struct sockaddr_storage addr;
    char address[64];                   /* "ip:port", "[ip]:port" */
    uint8_t peer_id[20];
    bt_ranges have;                     /* sized once attached */
    uint32_t allowed[BT_FAST_SET];      /* BEP 6 allowed-fast pieces we offered it */
    uint32_t nallowed;
    /* read side: one buffer, parsed in place, compacted after each read */
    uint8_t *rbuf;
    size_t rlen, rcap;
    bt_buf wbuf;
    /* our requests in flight: a ring, oldest at head */
    bt_req *q;
    uint32_t qhead, qcount, qcap, inflight;   /* inflight: live entries (qcount counts dead too) */
    uint32_t reqq;                      /* the peer's BEP 10 limit (BT_PEER_MAX_QUEUE if not told) */
    /* BEP 10, from its extension handshake: the id it wants each of our extensions sent
     * under (0: it has not got it), its metadata_size (-1: not told), its "v" */
    uint8_t ext_ids[BT_EXT_COUNT];
    bool ext_seen;                      /* its extension handshake arrived */
    uint16_t listen_port;               /* its "p": where it accepts connections (0: not told) */
    int64_t metadata_size;
    char client[BT_WIRE_MAX_CLIENT + 1];
    /* the peer's requests of us: a ring of BT_PEER_UPLOAD_QUEUE, made on first use */
    struct bt_ureq { uint32_t index, begin, length; } *uq;
    uint32_t uqhead, uqcount;
    /* blocks in wbuf or the kernel's send queue, not yet acknowledged: uploaded counts
     * a block once its last byte is acknowledged (end: its offset in our output stream) */
    struct bt_unsent { uint64_t end; uint32_t len; } unsent[BT_PEER_UNSENT];
    uint32_t unsent_head, unsent_count;
    uint64_t out_sent;                  /* bytes send() took, since the connection began */
    /* output delay (env->delay or env->loss > 0): stream offsets and when the bytes before them may be
     * sent, oldest at head (made on first use); released: bytes up to it may be sent;
     * marked: bytes up to it have a mark. The hold timer wakes the flush. */
    struct bt_mark { uint64_t end; double at; } *marks;
    uint32_t mark_head, mark_count;
    uint64_t released, marked;
    ev_timer hold;
    double last_drain;                  /* wbuf was empty or send() took something */
    /* time and meters */
    double connected_at, last_recv, last_send, last_block;
    double last_upload;                 /* a block of ours was last acknowledged (0: never) */
    double unchoked_at;                 /* we last unchoked it */
    uint64_t down_total, up_total, down_tick, up_tick;   /* bytes; *_tick since the last tick */
    double rate_down, rate_up;          /* bytes/s, smoothed over about 2 s */
    bt_bucket up_cap;                   /* the owner's limit on what we send this peer (rate 0: none) */
    double rtt, min_rtt;                /* request to block: smoothed (queueing included), lowest */
};

/* A connection on fd (connecting when outgoing, waiting for the handshake when
 * incoming), reporting to cb/ud. NULL: out of memory (fd is not closed). */
bt_peer *bt_peer_new(const bt_peer_env *env, int fd, bool incoming, const struct sockaddr *sa,
                     socklen_t salen, uint64_t uid, const bt_peer_cb *cb, void *ud);
/* Attach to a torrent: sizes p->have, and from now on reports go to cb/ud. */
int  bt_peer_bind(bt_peer *p, const bt_peer_torrent *tor, const bt_peer_cb *cb, void *ud);
void bt_peer_close(bt_peer *p, const char *why);   /* deferred free; idempotent */
void bt_peer_free(bt_peer *p);                     /* closes the socket and frees */

/* Seconds since it last took something of ours (a block acknowledged), or since we
 * unchoked it, or since it connected, whichever is latest. */
static inline double bt_peer_upload_idle(const bt_peer *p, double now)
{
    double last = p->last_upload > p->unchoked_at ? p->last_upload : p->unchoked_at;
    return now - (last > p->connected_at ? last : p->connected_at);
}

/* Per tick: meters, keep-alives, idle and connect timeouts. */
void bt_peer_tick(bt_peer *p, double now, double dt);
/* Restart a read the download limit stopped (from the throttle's retry). */
void bt_peer_unthrottle(bt_peer *p);
/* Stop reading (pause) or read again: the owner's back-pressure (TCP then slows the
 * sender). Independent of the download limit's throttling. */
void bt_peer_pause(bt_peer *p, bool pause);

/* Output: queued in the write buffer, sent by bt_peer_flush (once per loop iteration). */
void bt_peer_flush(bt_peer *p);
void bt_peer_send_handshake(bt_peer *p);           /* ours, for p->tor */
void bt_peer_send_pieces(bt_peer *p);              /* bitfield / have-all / have-none of p->tor->have */
void bt_peer_send_ext_handshake(bt_peer *p);
/* An extension message (ext: enum bt_ext) under the id the peer gave that extension;
 * false (nothing sent) when it has not got it. */
bool bt_peer_send_extended(bt_peer *p, int ext, const void *payload, size_t len);
void bt_peer_send_have(bt_peer *p, uint32_t piece);
void bt_peer_offer_fast(bt_peer *p);               /* BEP 6 allowed-fast set, the pieces of it we have */
void bt_peer_set_interested(bt_peer *p, bool interested);
/* Choke or unchoke it; returns true if that changed anything. A choke rejects the
 * queued requests (BEP 6; allowed-fast ones stay) or drops them. */
bool bt_peer_set_choke(bt_peer *p, bool choke);

/* Limit the blocks we send this peer to rate bytes/s (0: no limit of its own; the
 * session's and the torrent's limits apply either way). */
void bt_peer_set_upload_rate(bt_peer *p, double rate);

/* Our requests. */
int  bt_peer_request(bt_peer *p, uint32_t piece, uint32_t block);   /* 0, or -1 out of memory */
bool bt_peer_cancel(bt_peer *p, uint32_t piece, uint32_t block);    /* it was in flight: cancel sent */
bool bt_peer_asked(const bt_peer *p, uint32_t piece, uint32_t block);
const bt_req *bt_peer_oldest(const bt_peer *p);
/* Every request in flight leaves the ring (the owner hears each through release);
 * cancels are sent when the peer still holds them (not after a choke or close). */
void bt_peer_release_all(bt_peer *p, bool send_cancels);
/* Requests in flight oldest first: *i starts at 0; NULL at the end. */
const bt_req *bt_peer_next_req(const bt_peer *p, uint32_t *i);
/* When r's block should have come, in seconds after it was sent: the lowest round
 * trip seen, plus the blocks queued ahead of it (and its own) at the rate the peer
 * sends. HUGE_VAL while no rate has been measured. */
double bt_peer_expected(const bt_peer *p, const bt_req *r);

/* Serve queued requests while the output is short (the session's prepare watcher);
 * returns true when requests remain and the socket took everything (serve again soon). */
bool bt_peer_serve(bt_peer *p);

/* Geometry of the attached torrent: bytes of piece i (the last may be short), its
 * 16 KiB blocks, and the bytes of one block. i < npieces. */
static inline int64_t bt_piece_bytes(const bt_peer_torrent *g, uint32_t i)
{
    return i + 1 < g->npieces ? (int64_t)g->piece_len : g->total - (int64_t)g->piece_len * i;
}
static inline uint32_t bt_piece_blocks(const bt_peer_torrent *g, uint32_t i)
{
    return (uint32_t)((bt_piece_bytes(g, i) + BT_BLOCK_SIZE - 1) / BT_BLOCK_SIZE);
}
static inline uint32_t bt_block_bytes(const bt_peer_torrent *g, uint32_t i, uint32_t b)
{
    int64_t left = bt_piece_bytes(g, i) - (int64_t)b * BT_BLOCK_SIZE;
    return left >= BT_BLOCK_SIZE ? BT_BLOCK_SIZE : (uint32_t)left;
}

#endif
