/* udp_tracker.h: UDP tracker packets (BEP 15, with BEP 41's URL-data option), the
 * pure part: the udp:// URL, the connect, announce and scrape requests, and one
 * parser for every reply. No I/O, no libev; fuzzed (fuzz/udp_tracker_fuzz.c).
 * The client that sends them on the loop is engine/tracker.c.
 *
 * Every reply is checked for its length and action before a field is read; a
 * reply for another transaction is "not ours" (the caller keeps waiting), and
 * bytes past what the action defines are ignored.
 */
#ifndef BT_UDP_TRACKER_H
#define BT_UDP_TRACKER_H

#include <stddef.h>
#include <stdint.h>

#include "codec/tracker_parse.h"

#define BT_UDP_PROTOCOL_ID   0x41727101980ULL  /* the connect request's magic (BEP 15) */
#define BT_UDP_CONNECT       0u
#define BT_UDP_ANNOUNCE      1u
#define BT_UDP_SCRAPE        2u
#define BT_UDP_ERROR         3u

/* Limits and timing, each with its reason. */
#define BT_UDP_CONN_TTL      60.0   /* a connection id is used for at most a minute (BEP 15) */
#define BT_UDP_TIMEOUT_BASE  15.0   /* BEP 15: retransmit after 15 * 2^n s ... */
#define BT_UDP_MAX_RETRIES   8      /*   ... n <= 8 (3840 s) */
#define BT_UDP_MAX_HOST      255    /* a DNS name is at most 253 bytes */
#define BT_UDP_MAX_URLDATA   1024   /* BEP 41 path+query sent; longer URLs are refused */
#define BT_UDP_MAX_REQUEST   (98 + (BT_UDP_MAX_URLDATA / 255 + 1) * 257)
#define BT_UDP_MAX_REPLY     65536  /* a datagram cannot be larger; peers are capped anyway */

/* udp://host:port[/path][?query]. host is a name, a dotted IPv4 or a [bracketed]
 * IPv6 address (brackets removed). path points into the URL: path and query as
 * BEP 41 sends them (empty when the URL has none). */
typedef struct bt_udp_url {
    char host[BT_UDP_MAX_HOST + 1];
    uint16_t port;
    const char *path;
    size_t path_len;
} bt_udp_url;

/* 0, or -2 invalid URL (not udp://, no port or port 0, host or path too long,
 * a space, control byte or '#'). */
int bt_udp_parse_url(const char *url, bt_udp_url *out);

/* The connect request: 16 bytes written to out. */
void bt_udp_connect_req(uint8_t out[16], uint32_t tid);

/* The announce request (98 bytes) followed by BEP 41 URL-data options carrying
 * urldata (none when n == 0), into out (room BT_UDP_MAX_REQUEST). Returns its length,
 * or 0 when the request is invalid (event out of range, urldata too long). */
size_t bt_udp_announce_req(uint8_t *out, uint64_t conn_id, uint32_t tid, const bt_announce *req,
                           const char *urldata, size_t n);

/* A scrape request for one torrent: 36 bytes written to out. */
void bt_udp_scrape_req(uint8_t out[36], uint64_t conn_id, uint32_t tid, const uint8_t info_hash[20]);

/* The reply p[0..n) to a request of action `want` (CONNECT, ANNOUNCE or SCRAPE) with
 * transaction id tid. family (4 or 6) is the tracker's address family: an announce
 * reply over IPv6 carries 18-byte peers (BEP 15). res is initialised first.
 * Returns:
 *    1  not ours (another transaction id): ignore it, keep waiting;
 *    0  res->ok = 1: a connect reply (*conn_id set), an announce reply (interval,
 *       incomplete = leechers, complete = seeders, peers), a scrape reply (complete,
 *       downloaded, incomplete) or an error reply (failure_reason, like HTTP's);
 *   -1  a bad reply: res->ok = 0 and res->error says why.
 * Either way res may own memory: bt_announce_result_free. */
int bt_udp_parse_reply(const uint8_t *p, size_t n, uint32_t want, uint32_t tid, int family,
                       bt_announce_result *res, uint64_t *conn_id);

#endif
