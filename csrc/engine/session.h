/* session.h: the download engine. One libev loop owns every socket, torrent
 * and peer. No Lua here: decisions are asked through the bt_sess_hooks
 * function pointers (implemented by l_session.c), and only from the loop's
 * prepare watcher or tick timer, never while a read buffer is half parsed.
 *
 * Hot path per received block, all in C: parse in place (bt_wire_parse), find
 * the request in the peer's ring, pwrite straight from the read buffer, feed
 * SHA-1 when the block is the next in order, verify at the end of the piece.
 */
#ifndef BT_SESSION_H
#define BT_SESSION_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "codec/metainfo.h"
#include "core/ranges.h"
#include "core/ratelimit.h"
#include "codec/wire.h"

/* Limits and defaults, each with its reason. */
#define BT_SESS_MAX_QUEUE      2000    /* requests in flight per peer: libtorrent's default reqq */
#define BT_SESS_MIN_QUEUE      2       /* below this a pipeline cannot hide one round trip */
#define BT_SESS_READ_CHUNK     (256u * 1024)  /* one read() takes up to 16 blocks at once */
#define BT_SESS_MAX_PEERS      50      /* per torrent, the common client default */
#define BT_SESS_CONNECT_TIMEOUT 10.0   /* seconds for TCP connect + handshake */
#define BT_SESS_KEEPALIVE      90.0    /* BEP 3: peers drop after 2 min of silence */
#define BT_SESS_IDLE_TIMEOUT   180.0   /* we drop a peer silent for this long */
#define BT_SESS_BAN_FAILS      2       /* hash failures a peer may take part in before a ban */
#define BT_SESS_MAX_WBUF       (4u << 20)  /* queued output per peer before we stop adding */
#define BT_SESS_MAX_BANS       4096    /* banned addresses kept per torrent */
#define BT_PMAP_MAX            (1u << 20)   /* pieces indexed directly: 8 MiB of pointers at most */
#define BT_SESS_MAX_PENDING    64      /* incoming connections still in their handshake: each holds a
                                          read buffer, so a flood of idle sockets is refused */
#define BT_SESS_MAX_SUSPECTS   64      /* failed pieces remembered to find the bad sender later */
#define BT_SESS_UPLOAD_SLOTS   5       /* peers unchoked per torrent: the usual client default, four by
                                          rate plus one optimistic (the default choke policy's) */
#define BT_SESS_UPLOAD_QUEUE   500     /* requests a peer may queue with us: our BEP 10 reqq. libtorrent's
                                          max_allowed_in_request_queue; aria2c ignores reqq and
                                          keeps more than 250 out (1 GiB to aria2c: 5.6 s at 500,
                                          6.0 s at 250, against libtorrent's seed 5.4-6.0 s) */
#define BT_SESS_MAX_REQUEST    (16u * 1024)  /* largest block served by default: what every client
                                                asks for; a session may raise it to BT_WIRE_MAX_BLOCK */
#define BT_SESS_UPLOAD_WATER   (256u * 1024)  /* serve more blocks only below this much queued output */
/* Rate limits: a bucket holds a quarter second of traffic (at least one block,
 * BT_BUCKET_MIN_BURST): small enough that a limited transfer is smooth from its
 * start, large enough that one read still takes several blocks at 1 MiB/s. */
#define BT_RATE_BURST_S        0.25
#define BT_RATE_MIN_WAIT       0.005   /* s: a throttled peer is retried no sooner (no busy loop) */
#define BT_RATE_MAX_WAIT       1.0     /* s: and no later, so a raised limit takes effect soon */
#define BT_FAST_SET            4       /* BEP 6 allowed-fast pieces offered per peer (libtorrent: 10;
                                          a few let a new peer start without an unchoke) */
#define BT_SESS_MAX_EVENTS     65536   /* queued events before the oldest piece events drop */
/* Pieces are assembled in memory and written with one pwrite once verified: measured
 * here, 16 KiB pwrites into a growing ext4 file cost ~24 us each (1.6 s/GiB) against
 * ~1 s/GiB for 1 MiB writes, and a failed piece never touches the disk. */
#define BT_PIECE_BUF_MAX       (16u << 20)    /* larger pieces go block by block to disk */
#define BT_PIECE_BUF_TOTAL     (256u << 20)   /* memory for all piece buffers of a torrent */
/* Freed piece buffers are kept for reuse: a fresh 1 MiB malloc is an mmap whose 256
 * pages fault and get zeroed on first touch, about 0.3 s of system time per GiB. */
#define BT_PIECE_POOL_BYTES    (64u << 20)

typedef struct bt_session bt_session;
typedef struct bt_torrent bt_torrent;
typedef struct bt_peer bt_peer;

typedef enum { BT_PS_CONNECTING, BT_PS_HANDSHAKE, BT_PS_ACTIVE, BT_PS_CLOSED } bt_peer_state;

/* One request in flight. piece == UINT32_MAX marks a slot freed out of order. */
typedef struct bt_req {
    uint32_t piece;
    uint32_t block;
    double sent;
} bt_req;

struct bt_peer {
    bt_session *s;
    bt_torrent *t;            /* NULL until an incoming handshake names the torrent */
    bt_peer *next, *prev;     /* in t->peers (or s->pending for unattached incoming) */
    uint32_t slot;            /* handle index in s->slots */
    int fd;
    ev_io rw, ww;
    bt_peer_state state;
    bool incoming, hs_sent, closing, needs_pick, pick_dry, ext, seed;
    bool choking, interested;           /* the peer's state toward us */
    bool am_choking, am_interested;     /* ours toward the peer */
    bool snubbed;
    bool want_unchoke;                  /* scratch for a choke round */
    bool avail_gone;                    /* its pieces were taken out of the availability counts */
    bool fast;                          /* BEP 6 negotiated: rejects are explicit */
    uint32_t allowed[BT_FAST_SET];      /* BEP 6 allowed-fast pieces we offered it */
    uint32_t nallowed;
    bool read_throttled;                /* read watcher stopped by the download limit; the rate timer restarts it */
    bool mse_decided;                   /* incoming: plaintext handshake seen, or MSE finished */
    struct bt_mse *mse;                 /* incoming MSE handshake in progress (mse.h), else NULL */
    struct sockaddr_storage addr;
    char address[64];                   /* "ip:port" for messages and bans */
    uint8_t peer_id[20];
    bt_ranges have;
    /* read side: one buffer, parsed in place, compacted after each read */
    uint8_t *rbuf;
    size_t rlen, rcap;
    bt_buf wbuf;
    /* requests in flight: a ring, oldest at head */
    bt_req *q;
    uint32_t qhead, qcount, qcap, inflight;  /* inflight: live entries (qcount counts dead too) */
    uint32_t queue_depth;     /* target, set by the policy's queue_depth hook each tick */
    uint32_t reqq;            /* the peer's BEP 10 limit (BT_SESS_MAX_QUEUE if not told) */
    /* time */
    double connected_at, last_recv, last_send, last_block;
    /* meters: bytes since last tick, and smoothed rates in bytes/s */
    uint64_t down_total, up_total, down_tick, up_tick;
    double rate_down, rate_up, rtt;
    uint32_t fails;           /* failed pieces this peer sent blocks of */
    /* requests the peer made of us: a ring of BT_SESS_UPLOAD_QUEUE, made on first use */
    struct bt_ureq { uint32_t index, begin, length; } *uq;
    uint32_t uqhead, uqcount;
    uint32_t last_piece_hint; /* partial cache key */
    void *lref;               /* binding's handle (opaque) */
    int href;                 /* binding: registry ref of the Lua handle, or -1 */
};

/* A piece being downloaded. */
typedef struct bt_partial {
    struct bt_partial *next;
    struct bt_partial *qnext; /* in the worker's lists while verifying */
    bt_torrent *t;
    uint32_t piece;
    uint32_t nblocks;
    uint32_t nreceived;
    uint32_t hashed;          /* blocks [0, hashed) were fed to sha */
    uint32_t nfree;           /* blocks neither requested nor received */
    uint8_t *req;             /* per block: requests outstanding (saturates at 255) */
    uint8_t *got;             /* per block: 1 once written */
    uint64_t *from;           /* per block: slot | generation << 32 of its sender (for bans) */
    void *sha;                /* EVP_MD_CTX */
    uint8_t *buf;             /* the whole piece in memory (NULL: blocks go straight to disk) */
    bool verifying;           /* handed to the worker: hashing and writing off the loop */
    bool job_ok;              /* worker's answer: hash matched */
    int job_err;              /* worker's answer: errno of a failed write, 0 */
} bt_partial;

typedef struct bt_worker bt_worker;

/* A piece that failed with blocks from several peers: who sent which block and a
 * checksum of it. When the piece later verifies, the senders of blocks that differ
 * from the good copy are the guilty ones (libtorrent calls this smart ban). */
typedef struct bt_suspect {
    uint32_t piece, nblocks;
    uint64_t *from;
    uint64_t *sum;
} bt_suspect;

/* Events for the Lua side, queued by C and delivered from the prepare watcher. */
typedef enum {
    BT_EV_PIECE, BT_EV_COMPLETE, BT_EV_ERROR, BT_EV_PEER_CONNECT, BT_EV_PEER_DISCONNECT
} bt_event_kind;

typedef struct bt_event {
    bt_event_kind kind;
    bt_torrent *t;
    uint32_t piece;
    int ok;
    uint32_t peer_slot, peer_gen;   /* the peer involved (may be gone by delivery) */
    char *text;                     /* malloc'ed: address / reason / message */
} bt_event;

struct bt_torrent {
    bt_session *s;
    bt_torrent *next;
    uint32_t id;
    const bt_meta *meta;      /* owned by the binding (kept alive by a Lua ref) */
    uint32_t npieces;
    uint32_t piece_len;
    uint32_t rot;             /* random start for index-order tie-breaks (rarest) */
    int64_t total;
    struct bt_storage *st;    /* the pieces' bytes (storage.h): disk or memory; the one I/O path */
    bool in_memory;           /* st is the memory backend: no file is touched */
    char *dir;                /* disk: the download folder; memory: NULL */
    bt_ranges have;           /* verified pieces */
    bt_ranges unrequested;    /* not had and no partial state */
    uint32_t *avail;          /* peers having each piece, seeds excluded */
    uint32_t nseeds;          /* peers that have everything: counted once here */
    bt_partial *partials;
    uint32_t npartials;
    bt_partial **pmap;        /* piece -> its partial, when npieces <= BT_PMAP_MAX (else NULL: list search) */
    bt_peer *peers;
    uint32_t npeers, max_peers;
    uint32_t unchoked;        /* peers we unchoke (upload slots in use) */
    bool choke_by_policy;     /* the policy has a choke hook: it decides every round */
    bool choke_dirty;         /* a peer became interested or left: run a round soon */
    uint32_t choke_round;
    double next_choke;
    bool endgame, stopped, complete, checked;
    char *error;              /* why the torrent stopped (policy traceback...) */
    uint64_t downloaded, uploaded, wasted, dup_bytes, failed_bytes;
    uint64_t have_bytes;
    bt_bucket down, up;       /* this torrent's limits (rate 0: none), chained with the session's */
    uint32_t serve_rot;       /* which peer the prepare watcher serves first (turns each iteration) */
    uint64_t bufmem;          /* bytes held by partial piece buffers */
    uint8_t **pool;           /* spare piece buffers (piece_len bytes each) */
    uint32_t npool, poolcap;
    char **bans;
    uint32_t nbans;
    struct bt_suspect *suspects;   /* failed pieces with several senders, awaiting the good copy */
    uint32_t nsuspects;
    void *lref;               /* binding data */
};

typedef struct bt_sess_hooks {
    void *ud;
    /* peer has free slots; returns 0, or -1 when the torrent must stop (policy error) */
    int (*pick)(void *ud, bt_torrent *t, bt_peer *p, uint32_t slots);
    /* once per tick after the C bookkeeping */
    void (*tick)(void *ud, double now);
    /* deliver one event (the binding frees nothing: the session frees ev->text) */
    void (*event)(void *ud, const bt_event *ev);
    /* a peer handle is going away */
    void (*peer_gone)(void *ud, bt_peer *p);
} bt_sess_hooks;

typedef struct bt_slot { bt_peer *p; uint32_t gen; } bt_slot;

struct bt_session {
    struct ev_loop *loop;
    bt_sess_hooks hooks;
    int lfd;
    ev_io lw;
    ev_prepare prep;
    ev_timer tickw;
    uint16_t port;
    uint8_t peer_id[20];
    double tick_s, connect_timeout, idle_timeout, keepalive, last_tick;
    uint32_t max_peers;
    uint32_t max_request;     /* largest block we serve: a larger request drops the peer */
    bt_torrent *torrents;
    uint32_t next_tid;
    bt_peer *pending;         /* incoming peers before their handshake names a torrent */
    uint32_t npending;
    bt_slot *slots;
    uint32_t nslots, free_slot_hint;
    bt_event *events;
    uint32_t nevents, evcap;
    bool running, stop, in_callout;
    uint8_t *scratch;         /* one block for hashing read-back and serving */
    bt_worker *worker;        /* NULL: pieces are verified on the loop thread */
    bt_bucket down, up;       /* session-wide limits (rate 0: none) */
    ev_timer ratew;           /* retries throttled reads and uploads */
    ev_signal sigint_w, sigterm_w;
    bool signals;             /* the two watchers above are started */
    int got_signal;           /* last SIGINT/SIGTERM received (0: none); run() returned for it */
};

typedef struct bt_sess_opts {
    const char *bind;         /* listen address, NULL: 0.0.0.0 */
    int port;                 /* 0: ephemeral; -1: do not listen */
    double tick_s, connect_timeout, idle_timeout, keepalive;
    uint32_t max_peers;
    double max_down, max_up;  /* bytes/s, 0: unlimited */
    uint32_t max_request;     /* largest block we serve (0: BT_SESS_MAX_REQUEST) */
    bool signals;             /* catch SIGINT/SIGTERM: stop the loop, note the signal (one session per process) */
} bt_sess_opts;

/* Session. Return 0, or -1 with *err (static or errno text). */
int  bt_sess_init(bt_session *s, const bt_sess_opts *o, const bt_sess_hooks *h, const char **err);
void bt_sess_free(bt_session *s);
void bt_sess_run(bt_session *s);      /* until bt_sess_stop */
void bt_sess_stop(bt_session *s);
double bt_sess_now(bt_session *s);

/* Rate limits in bytes/s (0: unlimited): the session's, or a torrent's. */
void bt_sess_set_limits(bt_session *s, double down, double up);
void bt_torrent_set_limits(bt_torrent *t, double down, double up);
/* Arm the rate timer to fire within `secs` (clamped to the BT_RATE_*_WAIT bounds). */
void bt_sess_rate_wait(bt_session *s, double secs);
/* Refill a session's or torrent's bucket to the loop's now. */
void bt_rate_refill(bt_session *s, bt_bucket *b);

/* Where a torrent's bytes live (storage.h backends). */
typedef enum { BT_STORE_DISK, BT_STORE_MEMORY } bt_store_kind;

typedef struct bt_add_opts {
    bt_store_kind storage;
    const char *dir;          /* disk: files opened (created) under it; memory: unused */
    const char *load;         /* memory: fill from the files under this folder (opened read-only,
                                 nothing there changes); pieces that verify are had. NULL: empty */
    uint32_t max_peers;       /* 0: the session's */
    const bt_ranges *trust;   /* disk: pieces vouched for by resume data (had without hashing), or NULL */
} bt_add_opts;

/* Torrent: storage opened, existing data hash-checked (disk: what is in the files
 * and not trusted; memory: what `load` holds). */
bt_torrent *bt_sess_add(bt_session *s, const bt_meta *m, const bt_add_opts *o, char *errbuf,
                        size_t errlen);
/* fsync every file of the torrent (resume data may then vouch for what is had). */
int bt_torrent_sync(bt_torrent *t, char *errbuf, size_t errlen);
void bt_torrent_stop(bt_torrent *t, const char *why);   /* drops peers, keeps data */
void bt_torrent_free(bt_torrent *t);                    /* unlinks from the session */

/* Dial host:port (numeric IPv4/IPv6). Returns 0 or -1 with *err. */
int bt_torrent_connect(bt_torrent *t, const char *host, int port, const char **err);
bool bt_torrent_banned(bt_torrent *t, const char *address);

/* Policy primitives (the binding validates arguments before calling). */
uint32_t bt_piece_nblocks(const bt_torrent *t, uint32_t piece);
uint32_t bt_block_len(const bt_torrent *t, uint32_t piece, uint32_t block);
int64_t  bt_piece_size(const bt_torrent *t, uint32_t piece);
uint32_t bt_avail(const bt_torrent *t, uint32_t piece);
bt_partial *bt_partial_find(bt_torrent *t, uint32_t piece);
/* true if piece has a block this peer could request now (free, or in endgame not yet asked by p) */
bool bt_piece_requestable(bt_torrent *t, bt_peer *p, uint32_t piece);
/* Fill up to max requests on piece; returns count sent. The caller checked slots. */
uint32_t bt_peer_request_blocks(bt_peer *p, uint32_t piece, uint32_t max);
/* One block; returns 1 sent, 0 not requestable (had, received, already asked). */
int bt_peer_request_one(bt_peer *p, uint32_t piece, uint32_t block);
int bt_peer_cancel(bt_peer *p, uint32_t piece, uint32_t block);   /* 1 if it was in flight */
void bt_peer_cancel_all(bt_peer *p);                              /* release every request */
void bt_peer_close(bt_peer *p, const char *why);   /* deferred when inside a call-out */
void bt_peer_set_choke(bt_peer *p, bool choke);
uint32_t bt_peer_slots(const bt_peer *p);
/* Oldest live request, or NULL */
const bt_req *bt_peer_oldest(const bt_peer *p);
/* Count of pieces we lack with a requestable block (unrequested pieces + partials with free blocks). */
uint32_t bt_torrent_unrequested(bt_torrent *t);

/* Handles: slot + generation. */
bt_peer *bt_sess_peer(bt_session *s, uint32_t slot, uint32_t gen);
uint32_t bt_sess_peer_gen(bt_session *s, uint32_t slot);

#endif
