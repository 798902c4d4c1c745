/* dht.h: a DHT node (BEP 5, IPv4) on the caller's libev loop: one UDP socket, the
 * routing table, lookups, the announce tokens, the peer store and the rate limits.
 * Messages are built and validated by codec/krpc.
 *
 * What it does by itself (mechanism): answers ping, find_node, get_peers and
 * announce_peer within its rate limits; keeps the routing table (k-buckets split
 * around our id; good / questionable / bad by BEP 5's 15-minute rules; one
 * replacement candidate per bucket; questionable nodes pinged, bad ones replaced;
 * a bucket silent for 15 minutes refreshed by a lookup; a lookup of our own id
 * while the table has fewer than k good nodes); rotates the token secret; expires
 * stored peers. What it is told (decisions, from Lua through the binding): which
 * nodes to bootstrap from, what to look up, what to announce, when.
 *
 * Results come back through bt_dht_cb.done, once per lookup or query, called from
 * the loop (the socket's or the timer's callback) after the datagram that ended it
 * was wholly handled. bt_dht_free may be called from inside done: the node is then
 * freed when the callback returns.
 */
#ifndef BT_DHT_H
#define BT_DHT_H

#include <ev.h>
#include <stdbool.h>
#include <stdint.h>

#include "codec/krpc.h"
#include "core/ratelimit.h"

/* Constants, each with its reason (BEP 5 unless said). */
#define BT_DHT_K              8       /* bucket size and nodes returned */
#define BT_DHT_ALPHA          3       /* queries in flight per lookup */
#define BT_DHT_GOOD_TIME      900.0   /* 15 min: a node heard from within this is good */
#define BT_DHT_BAD_FAILS      2       /* queries in a row without an answer: bad */
#define BT_DHT_QUERY_TIMEOUT  2.0     /* s before a query counts as failed (libtorrent: 2-3 s) */
#define BT_DHT_LOOKUP_TIME    30.0    /* s a lookup may take in all */
#define BT_DHT_LOOKUP_CANDS   32      /* closest candidates a lookup keeps */
#define BT_DHT_MAX_TXN        1024    /* queries in flight; more wait (the outgoing cap keeps it low) */
#define BT_DHT_TOKEN_ROTATE   300.0   /* s between secret rotations: a token lives 5-10 min */
#define BT_DHT_TOKEN_LEN      8
#define BT_DHT_PEER_TTL       1800.0  /* a stored peer expires after 30 min without re-announce */
#define BT_DHT_MAX_PEERS      2048    /* stored peers per info-hash (jech/dht's figure) */
#define BT_DHT_MAX_HASHES     16384   /* info-hashes stored (jech/dht's figure) */
#define BT_DHT_MAX_VALUES     100     /* values in one get_peers reply, before the size rule */
#define BT_DHT_AMPLIFY        4       /* a reply is at most this many times its query's bytes: DHT
                                         reflection was used for DDoS amplification (nodes and values
                                         are trimmed to fit) */
#define BT_DHT_ANSWER_RATE    500.0   /* queries answered per second, overall (default) */
#define BT_DHT_ANSWER_RATE_IP 20.0    /* ... and per source IP (libtorrent blocks at 5/s by default) */
#define BT_DHT_QUERY_RATE     250.0   /* queries we send per second (anacrolix's cap) */
#define BT_DHT_IP_SLOTS       1024    /* per-IP buckets kept (lossy: a new IP takes a slot over) */
#define BT_DHT_FOUND_MAX      2000    /* peers a lookup collects */
#define BT_DHT_READS_PER_WAKE 64      /* datagrams read per wake-up: the loop stays responsive */

typedef struct bt_dht bt_dht;

typedef enum { BT_DHT_QUERY = 0, BT_DHT_FIND_NODE, BT_DHT_GET_PEERS, BT_DHT_ANNOUNCE } bt_dht_kind;

typedef struct bt_dht_result {
    bt_dht_kind kind;
    const char *error;          /* NULL: done; "timeout" (a query), "no node answered" (a lookup) */
    const bt_krpc_msg *msg;     /* BT_DHT_QUERY: the reply or error reply (error NULL) */
    const uint8_t *peers;       /* npeers 6-byte compact peers found (get_peers, announce) */
    uint32_t npeers;
    const uint8_t *closest;     /* nclosest 26-byte compact nodes that answered, closest first */
    uint32_t nclosest;
    uint32_t replied;           /* nodes that answered the lookup */
    uint32_t announced;         /* announce_peer queries acknowledged */
} bt_dht_result;

typedef struct bt_dht_cb {
    void *ud;
    void (*done)(void *ud, int id, const bt_dht_result *r);
} bt_dht_cb;

typedef struct bt_dht_opts {
    const char *bind;           /* NULL: 0.0.0.0 */
    int port;                   /* 0: any free port */
    const uint8_t *id;          /* 20 bytes (from the state file), NULL: random */
    bool restrict_ips;          /* at most one routing-table entry per IP (libtorrent's
                                   dht_restrict_routing_ips); off for a DHT on one host */
    double answer_rate;         /* queries answered per second (0: BT_DHT_ANSWER_RATE) */
    double answer_rate_ip;      /* per source IP (0: BT_DHT_ANSWER_RATE_IP; < 0: no per-IP limit) */
    double query_rate;          /* queries sent per second (0: BT_DHT_QUERY_RATE) */
    double token_rotate;        /* s between secret rotations (0: BT_DHT_TOKEN_ROTATE) */
    double peer_ttl;            /* s a stored peer lives (0: BT_DHT_PEER_TTL) */
} bt_dht_opts;

typedef struct bt_dht_stats {
    uint32_t nodes, good, questionable, buckets, replacements;
    uint32_t lookups, inflight, hashes, stored_peers;
    uint64_t received, bad, queries, answered, dropped, unexpected, errors_sent;
    uint64_t sent, replies, timeouts, bytes_in, bytes_out;
} bt_dht_stats;

/* NULL with *err (static or errno text). */
bt_dht *bt_dht_new(struct ev_loop *loop, const bt_dht_opts *o, const bt_dht_cb *cb, const char **err);
void bt_dht_free(bt_dht *d);
uint16_t bt_dht_port(const bt_dht *d);
const uint8_t *bt_dht_id(const bt_dht *d);
void bt_dht_stats_get(const bt_dht *d, bt_dht_stats *st);

/* Bootstrap from ip:port (a dotted IPv4): asks it for the nodes near our id; its
 * answer puts it in the table. 0, or -1 with *err. */
int bt_dht_add_node(bt_dht *d, const char *ip, int port, const char **err);

/* A lookup for target (BT_DHT_FIND_NODE, BT_DHT_GET_PEERS, or BT_DHT_ANNOUNCE: get_peers,
 * then announce_peer with each closest node's token, for `port`, or implied_port when
 * port is 0). Returns its id (> 0) for done, or -1 with *err ("no DHT nodes" when the
 * table is empty). */
int bt_dht_lookup(bt_dht *d, bt_dht_kind kind, const uint8_t target[20], int port, const char **err);

/* One query to ip:port (q->tid and q->id are ours: filled here). Returns its id, or -1
 * with *err. done gets the reply message (pointers valid during the call only). */
int bt_dht_query(bt_dht *d, const char *ip, int port, bt_krpc_query *q, const char **err);

/* The good nodes, at most max, as 26-byte compact nodes into out; returns the count. */
uint32_t bt_dht_good_nodes(const bt_dht *d, uint8_t *out, uint32_t max);

#endif
