/* session.h: the top of the engine. One libev loop owns every socket, torrent and
 * peer: the listener, the dialer, the torrents, the connections still in their
 * handshake, the event queue, the worker thread, the rate limits, the tick and
 * the prepare watcher that runs once per loop iteration, signals, and the tracker
 * client on the same loop.
 *
 * It calls downward only: torrents (torrent.h), connections (peer.h), the policy
 * scheduler (policy.h), the worker. Torrents and connections report to it through
 * the callback tables they declare; it reports to its owner (the Lua binding)
 * through bt_sess_cb, declared here. Events are queued as they happen and
 * delivered from the prepare watcher, never while a read buffer is half parsed.
 */
#ifndef BT_SESSION_H
#define BT_SESSION_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec/metainfo.h"
#include "core/ranges.h"
#include "core/ratelimit.h"
#include "engine/peer.h"
#include "engine/policy.h"
#include "engine/throttle.h"
#include "engine/torrent.h"
#include "engine/tracker.h"
#include "engine/worker.h"

/* Limits and defaults, each with its reason. */
#define BT_SESS_CONNECT_TIMEOUT 10.0   /* seconds for TCP connect + handshake */
#define BT_SESS_KEEPALIVE      90.0    /* BEP 3: peers drop after 2 min of silence */
#define BT_SESS_IDLE_TIMEOUT   180.0   /* we drop a peer silent for this long */
#define BT_SESS_MAX_PENDING    64      /* incoming connections still in their handshake: each holds a
                                          read buffer, so a flood of idle sockets is refused */
#define BT_SESS_FD_RESERVE     24      /* descriptors kept for everything but peers: the listener,
                                          * epoll, eventfds, files being written, tracker sockets */
#define BT_SESS_MAX_PER_IP     8       /* connections with one host (half of them in their handshake):
                                          libtorrent allows one per torrent by default; a few more let
                                          clients behind one NAT in. Loopback tests lift it (0: none) */
#define BT_SESS_HS_BUSY_TIMEOUT 2.0    /* s an incoming connection may take to handshake while the queue
                                          is more than half full (a real peer needs one round trip);
                                          when it is full, the oldest makes room for a new one */
/* Strikes: a host whose connection was evicted (it held a slot and exchanged nothing) or
 * pushed out of a full handshake queue may take a free slot for a while, but may not
 * push anyone out. Without them, under 1,000 hostile sockets from 125 hosts coming back
 * at ~500/s, every slot that turned over went to a hostile newcomer and a real leecher
 * never got in. Kept in a lossy table: a collision forgets an older strike. */
#define BT_SESS_STRIKES        4096    /* hosts remembered (a power of two) */
#define BT_SESS_STRIKE_TIME    120.0   /* s a strike lasts */
#define BT_SESS_SEND_TIMEOUT   60.0    /* s of output not taken before the peer is dropped */
#define BT_SESS_MAX_DELAY      2.0     /* lab delay: 2 s one way, far beyond any path; held output
                                          stays far below the send and idle timeouts */
#define BT_SESS_MAX_LOSS       0.5     /* lab loss: past half of the segments nothing flows anyway */
#define BT_SESS_MAX_LISTEN     4       /* listening sockets: "0.0.0.0,::" by default, a few addresses given */
#define BT_SESS_ACCEPT_PAUSE   0.1     /* s the listener rests when accept4 finds no descriptor */
#define BT_SESS_MAX_REQUEST    (16u * 1024)  /* largest block served by default: what every client
                                                asks for; a session may raise it to BT_WIRE_MAX_BLOCK */
#define BT_SESS_MAX_EVENTS     65536   /* queued events before new ones are dropped */
/* Rate limits: a bucket holds a quarter second of traffic (at least one block,
 * BT_BUCKET_MIN_BURST): small enough that a limited transfer is smooth from its
 * start, large enough that one read still takes several blocks at 1 MiB/s. */
#define BT_RATE_BURST_S        0.25

typedef struct bt_session bt_session;

/* Events for the owner, queued by the engine and delivered from the prepare watcher. */
typedef enum {
    BT_EV_PIECE, BT_EV_COMPLETE, BT_EV_ERROR, BT_EV_PEER_CONNECT, BT_EV_PEER_DISCONNECT,
    BT_EV_METADATA,           /* a magnet's torrent has its metadata (t->md.buf), checked */
    BT_EV_PEX                 /* a peer told us of others (addrs) */
} bt_event_kind;

typedef struct bt_event {
    bt_event_kind kind;
    bt_torrent *t;                  /* NULL once the torrent is gone */
    uint32_t piece;
    bool ok;
    uint64_t peer_uid;              /* the peer involved (0: none; may be gone by delivery) */
    char *text;                     /* malloc'ed: address of a departed peer, reason, message */
    char *address;                  /* malloc'ed: the peer's address (disconnect, pex) */
    bt_pex_addr *addrs;             /* malloc'ed: pex */
    uint32_t naddrs;
} bt_event;

/* From the session to its owner. */
typedef struct bt_sess_cb {
    void *ud;
    void (*event)(void *ud, const bt_event *ev);    /* after the policy scheduler saw it */
    void (*tick)(void *ud, double now);             /* after every torrent's tick */
    void (*peer_gone)(void *ud, bt_peer *p);        /* a connection is about to be freed */
    void (*torrent_gone)(void *ud, bt_torrent *t);  /* a torrent is about to be freed */
} bt_sess_cb;

struct bt_session {
    struct ev_loop *loop;
    bt_sess_cb cb;
    const bt_policy_ops *policy;
    void *policy_ud;
    bt_peer_env env;          /* what every connection shares */
    bt_throttle throttle;
    bt_bucket down, up;       /* session-wide limits (rate 0: none) */
    uint64_t loss_rng;        /* env.loss's draws */
    struct bt_listener { int fd; ev_io w; } listen[BT_SESS_MAX_LISTEN];   /* fd -1: unused */
    uint32_t nlisten;
    ev_timer lpause;          /* the listeners rest after accept4 ran out of descriptors */
    ev_prepare prep;
    ev_timer tickw;
    uint16_t port;
    double tick_s, last_tick;
    uint32_t max_peers;
    uint32_t fd_limit;        /* RLIMIT_NOFILE's soft limit, raised to the hard one at init */
    uint32_t fd_peers;        /* peers the descriptors allow per torrent (max_peers is clamped to it) */
    uint32_t max_pending;     /* handshakes in progress: BT_SESS_MAX_PENDING, or fewer descriptors */
    uint32_t max_per_ip;      /* connections with one host (0: no cap) */
    struct bt_strike { uint8_t host[16]; uint8_t fam; double until; } *strikes;   /* BT_SESS_STRIKES */
    double evict_idle;        /* bt_torrent_make_room's idle (BT_TORRENT_EVICT_IDLE) */
    double udp_conn_ttl;      /* the tracker client's UDP connection-id lifetime (0: BT_UDP_CONN_TTL) */
    bt_torrent *torrents;
    uint32_t next_tid;
    uint64_t next_uid;
    bt_peer *pending;         /* incoming peers before their handshake names a torrent */
    uint32_t npending;
    bt_event *events;
    uint32_t nevents, evcap;
    bool running, stop;
    bt_worker *worker;        /* NULL: pieces are verified on the loop thread */
    bt_tracker *tracker;      /* HTTP announces on this loop, made on first use */
    ev_signal sigint_w, sigterm_w;
    bool signals;             /* the two watchers above are started */
    int got_signal;           /* last SIGINT/SIGTERM received (0: none); run() returned for it */
};

/* Every address of both stacks: IPv4 and IPv6 on separate sockets (the IPv6 one
 * IPV6_V6ONLY, so IPv4 peers never appear as ::ffff:a.b.c.d); "::" is left out
 * where the system has no IPv6. */
#define BT_SESS_BIND_ALL "0.0.0.0,::"

typedef struct bt_sess_opts {
    const char *bind;         /* listen addresses, numeric, comma-separated (at most BT_SESS_MAX_LISTEN);
                                 NULL or "": BT_SESS_BIND_ALL */
    int port;                 /* 0: ephemeral; -1: do not listen */
    double tick_s, connect_timeout, idle_timeout, keepalive, send_timeout;
    double evict_idle;        /* s without payload before a peer may make room for another (0: default) */
    double udp_conn_ttl;      /* s a UDP tracker's connection id is used (0: BEP 15's minute; shorter for tests) */
    uint32_t max_peers;
    int max_per_ip;           /* connections with one host: -1 BT_SESS_MAX_PER_IP, 0 no cap */
    double max_down, max_up;  /* bytes/s, 0: unlimited */
    uint32_t max_request;     /* largest block we serve (0: BT_SESS_MAX_REQUEST) */
    bool signals;             /* catch SIGINT/SIGTERM: stop the loop, note the signal (one session per process) */
    double delay, loss;       /* lab mode: output held delay s (0: off, at most BT_SESS_MAX_DELAY); loss per
                                 segment in [0, BT_SESS_MAX_LOSS] costs BT_PEER_RTO (peer.h) */
    uint64_t loss_seed;       /* the loss draws' seed */
    const uint8_t *peer_id;   /* 20 bytes, or NULL: -BL0100- and 12 random characters */
} bt_sess_opts;

/* Session. Returns 0, or -1 with *err (static or errno text). `policy` is how the
 * scheduler calls hooks (the binding's). */
int  bt_sess_init(bt_session *s, const bt_sess_opts *o, const bt_sess_cb *cb, const bt_policy_ops *policy,
                  void *policy_ud, const char **err);
void bt_sess_free(bt_session *s);
void bt_sess_run(bt_session *s);      /* until bt_sess_stop */
void bt_sess_stop(bt_session *s);
double bt_sess_now(const bt_session *s);
void bt_sess_set_limits(bt_session *s, double down, double up);
/* The tracker client on this loop (made on first use); NULL out of memory. */
bt_tracker *bt_sess_tracker(bt_session *s);

typedef struct bt_add_opts {
    bt_store_kind storage;
    const char *dir;
    const char *load;
    uint32_t max_peers;       /* 0: the session's */
    const bt_ranges *trust;
    uint32_t upload_slots;    /* how many peers the policy's choke hook unchokes */
    double choke_interval;    /* s between choke rounds (0: the engine's BT_CHOKE_INTERVAL) */
    void *lref;               /* the owner's handle, set before the policy scheduler looks at t */
    const uint8_t *info_hash; /* a magnet's (bt_sess_add with m NULL) */
} bt_add_opts;

/* A torrent (torrent.h: storage opened, data checked), scheduled by the policy.
 * NULL with a message in errbuf. */
bt_torrent *bt_sess_add(bt_session *s, const bt_meta *m, const bt_add_opts *o, char *errbuf, size_t errlen);
/* m NULL: a magnet's torrent (o->info_hash): it fetches its metadata from its peers
 * (BT_EV_METADATA when it has it), with no storage and no policy until the owner gives
 * it the validated metadata with bt_sess_set_meta (the same options as an add). */
int bt_sess_set_meta(bt_session *s, bt_torrent *t, const bt_meta *m, const bt_add_opts *o, char *errbuf,
                     size_t errlen);
/* Dial host:port (numeric IPv4/IPv6) for t; source (bt_peer_source) says where the
 * address came from. Returns 0 or -1 with *err. */
int bt_sess_connect(bt_session *s, bt_torrent *t, const char *host, int port, bt_peer_source source,
                    const char **err);

#endif
