/* torrent.h: one torrent's swarm and pieces.
 *
 * The torrent owns its connections once their handshake names it (it implements
 * peer.h's callbacks), the availability counts (engine/picker.h, fed by the peers'
 * have / bitfield / have-all / disconnect and by verified pieces), the pieces in
 * progress and the one piece lifecycle, all in this file:
 *
 *   block arrives (peer.c -> on_block here) -> stored in the piece's buffer, or
 *   written to storage when there is none -> last block: a job for the worker
 *   (engine/worker.h: hash, then write) -> verdict (on_verified here, on the
 *   loop thread) -> had: `have` to every peer, the picker and the interest
 *   updated, the event raised; failed: the piece back in the picker, its senders
 *   blamed (smart ban) -> events to the owner through bt_torrent_cb.
 *
 * Requests are made here too (bt_torrent_request_blocks...), for the policy
 * scheduler and the binding; each checks what the policy asked and returns an
 * error text instead of doing something impossible. Nothing here calls Lua or
 * knows of it; nothing here calls the session: the session hears of events
 * through the callback table below.
 */
#ifndef BT_TORRENT_H
#define BT_TORRENT_H

#include <stdbool.h>
#include <stdint.h>

#include "codec/metainfo.h"
#include "core/bitset.h"
#include "core/mem.h"
#include "core/ranges.h"
#include "core/ratelimit.h"
#include "engine/metadata.h"
#include "engine/exchange.h"
#include "engine/peer.h"
#include "engine/picker.h"
#include "engine/worker.h"
#include "storage/storage.h"

/* Limits, each with its reason. */
#define BT_TORRENT_MAX_PEERS   50      /* the common client default */
#define BT_TORRENT_BAN_FAILS   2       /* hash failures a peer may take part in before a ban */
#define BT_TORRENT_MAX_BANS    4096    /* banned addresses kept */
/* Peer turnover when every slot is taken (bt_torrent_make_room). A peer is kept while it
 * is young (it has not had a chance to show anything yet) or while payload flowed either
 * way recently; past that, the least useful goes to make room for a newcomer. Measured
 * before this: 50 sockets that only sent interested and keep-alives held every slot of a
 * seed, and a real leecher got 0 bytes in 60 s. */
#define BT_TORRENT_EVICT_IDLE  10.0    /* s without payload either way before a peer may be evicted;
                                          a third of it, a new peer is safe from eviction */
#define BT_TORRENT_IDLE_SLOT   5.0     /* s an unchoked peer may take nothing (nothing of ours acknowledged:
                                          it asks for nothing, or asks and does not read) before a waiting
                                          peer gets an extra choke round for its slot */
#define BT_TORRENT_MAX_SUSPECTS 64     /* failed pieces remembered to find the bad sender later */
#define BT_PMAP_MAX            (1u << 20)   /* pieces indexed directly: 8 MiB of pointers at most */
/* Pieces are assembled in memory and written with one pwrite once verified: measured
 * here, 16 KiB pwrites into a growing ext4 file cost ~24 us each (1.6 s/GiB) against
 * ~1 s/GiB for 1 MiB writes, and a failed piece never touches the disk. */
#define BT_PIECE_BUF_MAX       (16u << 20)    /* larger pieces go block by block to storage */
/* Memory for all piece buffers of a torrent (pieces being received and pieces with the
 * worker), at least BT_PIECE_BUF_MIN pieces' worth. Every buffer is kept for reuse until
 * the torrent goes: a fresh 1 MiB malloc is an mmap whose 256 pages fault and get zeroed
 * on first touch, about 0.3 s of system time per GiB. When the worker holds pieces and
 * less than BT_PIECE_BUF_SLACK pieces' worth is left, the torrent stops reading from its
 * peers until half of it is free or the worker is idle (TCP slows the sender): one read
 * seldom starts more than two pieces, and a piece that finds no buffer goes block by
 * block to storage from the loop thread, contending with the worker's writes to the same
 * file. Before: 256 MiB of buffers (64 MiB of them kept) and a stop at 32 MiB with the
 * worker; peak RSS 270 MiB when writes fell behind. The worker falls behind in bursts
 * on two shared cores, so the budget is the peak: 1 GiB downloads peaked at 45 MiB RSS
 * with 32 MiB, 29-31 MiB with 16 MiB, at the same speed. */
#define BT_PIECE_BUF_TOTAL     (16u << 20)
#define BT_PIECE_BUF_MIN       4
#define BT_PIECE_BUF_SLACK     2

typedef struct bt_torrent bt_torrent;

/* A piece in progress. One allocation holds the struct and its per-block arrays. */
typedef struct bt_partial {
    struct bt_partial *next, *prev;    /* t->partials, oldest first */
    bt_torrent *t;
    uint32_t piece;
    uint64_t seq;             /* creation order: "oldest first" */
    uint32_t nblocks;
    uint32_t nreceived;
    uint32_t nfree;           /* blocks neither requested nor received */
    bool open;                /* in t->open: a block nobody was asked for */
    bool verifying;           /* the job is with the worker */
    uint8_t *req;             /* per block: requests outstanding (saturates at 255) */
    uint8_t *got;             /* per block: 1 once stored */
    uint64_t *from;           /* per block: uid of its sender (for bans) */
    uint8_t *buf;             /* the whole piece in memory (NULL: blocks went to storage) */
    bt_job job;               /* hashing and writing (worker.h) */
} bt_partial;

/* A piece that failed with blocks from several peers: who sent which block and a
 * checksum of it. When the piece later verifies, the senders of blocks that differ
 * from the good copy are the guilty ones (libtorrent calls this smart ban). */
typedef struct bt_suspect {
    uint32_t piece, nblocks;
    uint64_t *from;
    uint64_t *sum;
} bt_suspect;

/* Events from a torrent to its owner (the session), on the loop thread. */
typedef struct bt_torrent_cb {
    void (*piece)(void *ud, bt_torrent *t, uint32_t piece, bool ok, uint64_t peer_uid);
    void (*complete)(void *ud, bt_torrent *t);
    void (*stopped)(void *ud, bt_torrent *t, const char *why);     /* an error stopped it */
    void (*peer_connect)(void *ud, bt_torrent *t, bt_peer *p);     /* active: handshakes done */
    void (*peer_disconnect)(void *ud, bt_torrent *t, bt_peer *p, const char *why);
    void (*peer_gone)(void *ud, bt_torrent *t, bt_peer *p);        /* about to be freed */
    /* a magnet's torrent: the metadata arrived and matched the info-hash (t->md.buf,
     * t->md.size); the owner validates it and calls bt_torrent_set_meta */
    void (*metadata)(void *ud, bt_torrent *t);
    /* PEX (BEP 11): p told us of these peers (checked by engine/exchange.c; valid for
     * the call). What to dial is the owner's decision. */
    void (*pex)(void *ud, bt_torrent *t, bt_peer *p, const bt_pex_addr *added, uint32_t n);
} bt_torrent_cb;

typedef enum { BT_STORE_DISK, BT_STORE_MEMORY } bt_store_kind;

typedef struct bt_torrent_opts {
    const bt_meta *meta;      /* must outlive the torrent; NULL: a magnet's torrent, which fetches
                                 its metadata (BEP 9) first: no pieces, no storage until then */
    const uint8_t *info_hash; /* meta NULL: the magnet's info-hash */
    bt_store_kind storage;
    const char *dir;          /* disk: files opened (created) under it; memory: unused */
    const char *load;         /* memory: fill from the files under this folder (opened read-only,
                                 nothing there changes); pieces that verify are had. NULL: empty */
    uint32_t max_peers;
    const bt_ranges *trust;   /* disk: pieces vouched for by resume data (had without hashing), or NULL */
    uint32_t rot;             /* tie-break start for the picker */
    uint32_t id;
    const bt_peer_env *env;
    bt_worker *worker;        /* NULL: pieces are verified inline */
    const bt_torrent_cb *cb;
    void *ud;
} bt_torrent_opts;

struct bt_torrent {
    /* ---- the owner's ---- */
    bt_torrent *next;
    void *lref;               /* the binding's handle */
    void *sched;              /* the policy scheduler's state (policy.h) */

    uint32_t id;
    const bt_torrent_cb *cb;
    void *ud;
    const bt_peer_env *env;
    bt_worker *worker;
    const bt_meta *meta;      /* NULL while fetching */
    uint8_t info_hash[20];
    bool fetching;            /* a magnet's torrent without its metadata yet (md below) */
    bt_mdfetch md;
    uint32_t npieces, piece_len;
    int64_t total;
    bt_peer_torrent pt;       /* what its connections see: geometry, have, storage, limits */
    bt_storage *st;           /* the pieces' bytes: disk or memory; the one I/O path */
    bool in_memory;
    char *dir;                /* disk: the download folder; memory: NULL */
    bt_ranges have;           /* verified pieces */
    bt_picker pk;             /* availability, and the pieces not started yet */
    bt_partial *partials, *partials_tail;
    uint32_t npartials;
    bt_bitset open;           /* pieces in progress with a block nobody was asked for */
    uint64_t partial_seq;
    bt_slab slab;             /* partial records of the common size (core/mem.h) */
    uint32_t slab_nblocks;    /* blocks of a full piece: the common size */
    bt_partial **pmap;        /* piece -> its partial, when npieces <= BT_PMAP_MAX (else NULL: list search) */
    bt_peer *peers;
    uint32_t npeers, max_peers;   /* attached connections (closing ones too, until freed) */
    uint32_t nclosing;        /* of those, closing */
    uint32_t unchoked;        /* peers we unchoke (upload slots in use) */
    uint32_t upload_slots;    /* how many the choke policy unchokes (extra rounds while fewer are) */
    double choke_interval;    /* s between choke rounds; 0: BT_CHOKE_INTERVAL (the policy's choke_interval) */
    bool choke_wanted;        /* an interested peer waits while slots are free: the scheduler runs a round soon */
    bool endgame, stopped, complete, checked;
    char *error;              /* why the torrent stopped (policy traceback...) */
    uint64_t downloaded, uploaded, dup_bytes, failed_bytes, have_bytes;
    uint64_t cancels;         /* cancel messages sent: endgame copies, timeouts, snubs */
    bt_bucket down, up;       /* this torrent's limits (rate 0: none), chained with the session's */
    uint32_t serve_rot;       /* which peer is served first (turns each iteration) */
    uint64_t bufmem;          /* bytes held by partial piece buffers */
    uint64_t backlog;         /* bytes of pieces with the worker */
    uint64_t bufcap;          /* BT_PIECE_BUF_TOTAL, or BT_PIECE_BUF_MIN pieces */
    bool reads_paused;        /* the peers' reads wait for the worker (BT_PIECE_BUF_SLACK) */
    uint8_t **pool;           /* spare piece buffers (piece_len bytes each) */
    uint32_t npool, poolcap;
    char **bans;
    uint32_t nbans;
    bt_suspect *suspects;     /* failed pieces with several senders, awaiting the good copy */
    uint32_t nsuspects;
};

/* A torrent: storage opened, existing data hash-checked (disk: what is in the files
 * and not trusted; memory: what `load` holds). NULL with a message in errbuf. */
bt_torrent *bt_torrent_new(const bt_torrent_opts *o, char *errbuf, size_t errlen);
/* A magnet's torrent gets its metadata: o->meta (its info-hash must be t's) and the
 * storage options, as for bt_torrent_new. Every connection is closed first (their
 * piece sets were not kept: "metadata received: reconnecting"), then storage is opened
 * and checked as for a new torrent. -1 with a message: t is unchanged (still fetching). */
int  bt_torrent_set_meta(bt_torrent *t, const bt_torrent_opts *o, char *errbuf, size_t errlen);
/* Drops every peer (peer_gone for each) and frees; the worker must have forgotten it. */
void bt_torrent_free(bt_torrent *t);
void bt_torrent_stop(bt_torrent *t, const char *why);   /* drops peers, keeps data; why NULL: no error */
int  bt_torrent_sync(bt_torrent *t, char *errbuf, size_t errlen);
void bt_torrent_set_limits(bt_torrent *t, double down, double up);

/* Connections. attach: a connection whose handshake named this torrent (incoming)
 * or that we dial for it; -1 with *why when it may not join (full, banned). */
int  bt_torrent_attach(bt_torrent *t, bt_peer *p, const char **why);
bool bt_torrent_banned(const bt_torrent *t, const char *address);
/* Live (not closing) peers: what max_peers bounds. */
static inline uint32_t bt_torrent_live_peers(const bt_torrent *t) { return t->npeers - t->nclosing; }
/* Room for one more peer: true if a slot is free, or after closing the least useful peer
 * (*evicted: that peer, still readable until freed; NULL when a slot was free; pass
 * evicted NULL to take a free slot only)
 * (BT_TORRENT_EVICT_IDLE: one connected for at least idle / 3 s with no payload either
 * way for idle s; a seed when we are one first, then peers neither side is interested
 * in, then the one idle longest). False when every peer is young or useful. */
bool bt_torrent_make_room(bt_torrent *t, double now, double idle, bt_peer **evicted);
/* Some peer we unchoke has taken nothing for BT_TORRENT_IDLE_SLOT s. */
bool bt_torrent_wasted_slot(const bt_torrent *t, double now);
bool bt_torrent_connected_to(const bt_torrent *t, const char *address);   /* an outgoing peer to it */
bt_peer *bt_torrent_peer_by_uid(const bt_torrent *t, uint64_t uid);
static inline bt_torrent *bt_peer_torrent_of(const bt_peer *p) { return p->sw.t; }

/* The loop's per-iteration work: serve every peer's queued requests (from a rotating
 * start, so that under an upload limit every peer gets its turn), then free the
 * closed peers (peer_gone first). */
void bt_torrent_serve(bt_torrent *t);
void bt_torrent_reap(bt_torrent *t);
/* Per tick: meters, keep-alives and timeouts of every peer, our interest. */
void bt_torrent_tick(bt_torrent *t, double now, double dt);

/* ---- for the policy scheduler and the binding ---- */

/* Free request slots: min(queue depth, the peer's reqq) minus in flight; 0 while it chokes us. */
uint32_t bt_torrent_slots(const bt_peer *p);
/* Pieces we lack with a block nobody was asked for: not started, or started with a free block. */
uint32_t bt_torrent_unrequested(const bt_torrent *t);
bt_partial *bt_torrent_partial(const bt_torrent *t, uint32_t piece);
/* piece has a block this peer may request now (free, or in endgame / with dup not yet asked of p) */
bool bt_torrent_requestable(const bt_torrent *t, const bt_peer *p, uint32_t piece, bool dup);

/* Requests. Each returns the number sent (>= 0), or one of these codes naming the
 * mistake (nothing was sent). dup: also blocks other peers were asked for (never
 * twice to the same peer), as endgame does. */
enum {
    BT_REQ_GONE = -1,    /* the peer has disconnected, or belongs to another torrent */
    BT_REQ_RANGE = -2,   /* piece out of range */
    BT_REQ_LACKS = -3,   /* the peer lacks the piece */
    BT_REQ_SLOTS = -4,   /* more requests than the peer has free slots */
    BT_REQ_BLOCK = -5,   /* block past the end of the piece */
    BT_REQ_NOMEM = -6,
};
int  bt_torrent_request_blocks(bt_torrent *t, bt_peer *p, uint32_t piece, uint32_t max, bool dup);
int  bt_torrent_request_one(bt_torrent *t, bt_peer *p, uint32_t piece, uint32_t block);
struct bt_piece_iter;
/* For the piece the iterator `it` (below) just gave for p: the checks it already made
 * are skipped; up to max blocks, within p's free slots. */
int  bt_torrent_request_given(bt_torrent *t, bt_peer *p, const struct bt_piece_iter *it, uint32_t piece,
                              uint32_t max);
bool bt_torrent_cancel(bt_torrent *t, bt_peer *p, uint32_t piece, uint32_t block);
void bt_torrent_cancel_all(bt_torrent *t, bt_peer *p);
void bt_torrent_set_endgame(bt_torrent *t, bool on);
/* Unchoke (false) or choke (true); keeps t->unchoked. */
void bt_torrent_set_choke(bt_torrent *t, bt_peer *p, bool choke);
/* A peer's requests are released and it is marked snubbed (the timeout hook's "snub"). */
void bt_torrent_snub(bt_torrent *t, bt_peer *p);

/* Iterators for pick. Each returns the next piece, or -1; all stop as soon as the
 * peer has no free slot. rarest/common: pieces not started yet that the peer has,
 * by availability (picker.h); partial: started pieces the peer has with a block it
 * may request: outside endgame those with a block nobody was asked for, in index
 * order; in endgame every started piece, oldest first (a snapshot taken at the
 * start into `list`, which must hold bt_torrent_partial_slots(t) entries);
 * wanted: pieces in [from, to) in index order that the peer has with a block it
 * may request. */
enum { BT_ITER_RAREST, BT_ITER_COMMON, BT_ITER_PARTIAL, BT_ITER_WANTED };
typedef struct bt_piece_iter {
    int kind;
    bt_pick_iter pk;          /* rarest, common */
    uint32_t pos, to;         /* wanted */
    uint32_t *list, n, i;     /* partial */
    uint32_t hint;            /* partial: position in the peer's ranges */
    bool snapshot;            /* partial: walk list (endgame), not t->open */
} bt_piece_iter;
uint32_t bt_torrent_partial_slots(const bt_torrent *t);
void     bt_torrent_iter(const bt_torrent *t, const bt_peer *p, bt_piece_iter *it, int kind, uint32_t from,
                         uint32_t to, uint32_t *list);
int64_t  bt_torrent_iter_next(const bt_torrent *t, const bt_peer *p, bt_piece_iter *it);

/* Bytes the torrent's bookkeeping holds per piece (picker, partial index) and per
 * peer (piece set, rings): for memory reports. */
uint64_t bt_torrent_memory(const bt_torrent *t);

#endif
