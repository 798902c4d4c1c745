/* krpc.h: the DHT's messages (BEP 5 KRPC over UDP), the pure part: one strict
 * parser that validates a whole datagram before any field is used, and the
 * builders of every query, reply and error we send. No I/O, no libev, no Lua;
 * fuzzed (fuzz/krpc_fuzz.c). The node that sends them is engine/dht.c.
 *
 * The parser checks, before the caller sees anything: the datagram's size, the
 * bencoding (strict: canonical integers, no duplicate keys, nothing trailing;
 * unsorted keys are accepted, as libtorrent does), the types of every field it
 * reads, 20-byte ids, targets and info-hashes, the transaction id's and token's
 * lengths, nodes as a whole number of 26-byte entries, nodes6 of 38-byte ones,
 * values as 6- or 18-byte strings, ports in 1..65535. Fields it does not know
 * are ignored (BEP 5 lets nodes add keys). Pointers in the result point into
 * the datagram, which must outlive it.
 */
#ifndef BT_KRPC_H
#define BT_KRPC_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Limits, each with its reason. */
#define BT_KRPC_MAX_DATAGRAM 4096   /* a KRPC message fits one unfragmented datagram (< 1,500 bytes in
                                       practice: libtorrent and jech/dht send at most ~1,400) */
#define BT_KRPC_MAX_TOKENS   600    /* bencode values: a reply with 100 values has ~110 */
#define BT_KRPC_MAX_TID      16     /* transaction ids are 2-4 bytes in practice */
#define BT_KRPC_MAX_TOKEN    64     /* announce tokens: libtorrent 4 bytes, jech 8, ours 8 */
#define BT_KRPC_MAX_VALUES   256    /* peers in one get_peers reply that we look at (a datagram of
                                       BT_KRPC_MAX_DATAGRAM bytes cannot hold more than ~400) */
#define BT_KRPC_MAX_ERRMSG   256    /* the text of an error reply we keep */
#define BT_KRPC_NODE_LEN     26     /* compact node: 20-byte id, 4-byte IPv4, 2-byte port */
#define BT_KRPC_NODE6_LEN    38     /* 20-byte id, 16-byte IPv6, port */

/* BEP 5's error codes. */
#define BT_KRPC_ERR_GENERIC  201
#define BT_KRPC_ERR_SERVER   202
#define BT_KRPC_ERR_PROTOCOL 203   /* malformed message, invalid arguments, a bad token (as libtorrent) */
#define BT_KRPC_ERR_METHOD   204

typedef enum { BT_KRPC_QUERY = 1, BT_KRPC_REPLY, BT_KRPC_ERROR } bt_krpc_type;

typedef enum {
    BT_KRPC_UNKNOWN = 0, BT_KRPC_PING, BT_KRPC_FIND_NODE, BT_KRPC_GET_PEERS, BT_KRPC_ANNOUNCE_PEER
} bt_krpc_method;

/* A parsed message. Which fields are set depends on the type and method:
 *   every query and reply: id (has_id; a query without one is refused)
 *   query find_node: target; get_peers: info_hash; announce_peer: info_hash, token, port
 *     (port is 0 when implied_port is 1), implied_port
 *   reply: any of nodes, nodes6, token, values (the caller knows what it asked)
 *   error: err_code, err_msg
 * A query with an unknown method is returned with method BT_KRPC_UNKNOWN (its
 * arguments unchecked but for the id), so that it can be answered with 204. */
typedef struct bt_krpc_msg {
    bt_krpc_type type;
    bt_krpc_method method;
    const uint8_t *tid;
    size_t tid_len;
    int has_id;
    const uint8_t *id;          /* 20 bytes */
    const uint8_t *target;      /* find_node's, 20 bytes */
    const uint8_t *info_hash;   /* get_peers' and announce_peer's, 20 bytes */
    const uint8_t *token;
    size_t token_len;
    uint16_t port;              /* announce_peer */
    int implied_port;           /* announce_peer: 1 = use the datagram's source port */
    const uint8_t *nodes;       /* nodes_len / 26 compact nodes */
    size_t nodes_len;
    const uint8_t *nodes6;
    size_t nodes6_len;
    const uint8_t *values[BT_KRPC_MAX_VALUES];   /* each 6 (IPv4) or 18 (IPv6) bytes */
    uint8_t value_len[BT_KRPC_MAX_VALUES];
    uint32_t nvalues;           /* those kept (at most BT_KRPC_MAX_VALUES; more are dropped) */
    int64_t err_code;
    char err_msg[BT_KRPC_MAX_ERRMSG + 1];
} bt_krpc_msg;

/* Parse p[0..n). Returns 0, or -1 with *err a static text ("datagram too large",
 * "not a dict", "bad transaction id", "missing id"...). When the message had a
 * usable transaction id before the error was found, m->tid/tid_len are still set
 * (and m->type when the 'y' was read), so that a bad query can be answered with
 * an error; otherwise m->tid is NULL. */
int bt_krpc_parse(const uint8_t *p, size_t n, bt_krpc_msg *m, const char **err);

/* Builders, each appends one whole message to b. Return 0, -1 out of memory.
 * `v` (client version, 4 bytes or NULL) is sent as BEP 5's "v". */
typedef struct bt_krpc_query {
    bt_krpc_method method;
    const uint8_t *tid;
    size_t tid_len;
    const uint8_t *id;          /* ours */
    const uint8_t *target;      /* find_node, and get_peers/announce_peer's info_hash */
    const uint8_t *token;
    size_t token_len;
    uint16_t port;
    int implied_port;
    const uint8_t *v;
} bt_krpc_query;
int bt_krpc_build_query(bt_buf *b, const bt_krpc_query *q);

/* A reply: id (ours), and optionally nodes (compact, a multiple of 26 bytes, NULL for
 * none), token, values (count of 6-byte compact peers). */
typedef struct bt_krpc_reply {
    const uint8_t *tid;
    size_t tid_len;
    const uint8_t *id;
    const uint8_t *nodes;
    size_t nodes_len;
    const uint8_t *token;
    size_t token_len;
    const uint8_t *values;      /* nvalues * 6 bytes */
    uint32_t nvalues;
    const uint8_t *v;
} bt_krpc_reply;
int bt_krpc_build_reply(bt_buf *b, const bt_krpc_reply *r);

int bt_krpc_build_error(bt_buf *b, const uint8_t *tid, size_t tid_len, int code, const char *msg);

/* The method's name ("ping", ...), "unknown" for BT_KRPC_UNKNOWN. */
const char *bt_krpc_method_name(bt_krpc_method m);

#endif
