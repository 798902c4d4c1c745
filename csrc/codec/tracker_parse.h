/* tracker_parse.h: HTTP(S) tracker announces (BEP 3, 23 compact peers, 7 peers6),
 * the pure part: the announce request and result, the announce URL builder,
 * percent-encoding and the reply parser (tracker_parse.c). No I/O, no libev, no
 * curl; fuzzed. The client that sends announces is engine/tracker.h.
 */
#ifndef BT_TRACKER_PARSE_H
#define BT_TRACKER_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Limits, each with its reason. Tracker replies are hostile. */
#define BT_TRACKER_MAX_BODY        (2u << 20)  /* 2 MiB: 2000 peers in dict form are ~150 KiB */
#define BT_TRACKER_MAX_PEERS       2000        /* more is useless to one torrent; bounds memory */
#define BT_TRACKER_MAX_TOKENS      65536       /* bencode values in a reply: 2000 peers in dict form
                                                  take 7 each (14,000), the other keys a dozen;
                                                  bounds the token array to 1 MiB */
#define BT_TRACKER_MAX_MSG         1024        /* failure/warning text kept (longer is cut) */
#define BT_TRACKER_MAX_TRACKER_ID  256         /* a longer "tracker id" is ignored */
#define BT_TRACKER_MAX_URL         4096        /* announce URLs are short; bounds the request */
#define BT_TRACKER_MAX_REDIRECTS   3
#define BT_TRACKER_TIMEOUT         30.0        /* seconds for a whole announce (default) */
#define BT_TRACKER_CONNECT_TIMEOUT 10.0        /* seconds to connect (default) */
#define BT_TRACKER_USER_AGENT      "bt-lua/0.1"
#define BT_TRACKER_ERRLEN          256

typedef enum bt_announce_event {
    BT_EVENT_NONE = 0,
    BT_EVENT_STARTED,
    BT_EVENT_COMPLETED,
    BT_EVENT_STOPPED,
} bt_announce_event;

/* One announce. Strings are borrowed: they only need to live until
 * bt_tracker_announce returns (the client copies what it keeps). */
typedef struct bt_announce {
    const char *url;            /* http:// or https:// announce URL; may already hold a '?' query */
    uint8_t info_hash[20];
    uint8_t peer_id[20];
    uint16_t port;
    int64_t uploaded, downloaded, left;
    bt_announce_event event;
    int32_t numwant;            /* < 0: parameter omitted */
    uint32_t key;
    int has_key;                /* 0: parameter omitted */
    const char *tracker_id;     /* "trackerid" from an earlier reply; NULL: omitted */
    size_t tracker_id_len;
    double timeout;             /* seconds for the whole transfer; <= 0: the client's default */
    double connect_timeout;     /* seconds to connect; <= 0: the client's default */
} bt_announce;

typedef struct bt_peer_addr {
    uint8_t family;             /* 4 or 6 */
    uint8_t addr[16];           /* 4 bytes used for IPv4, network order */
    uint16_t port;              /* host order */
} bt_peer_addr;

typedef struct bt_announce_result {
    int ok;                     /* 1: the tracker gave a valid reply (it may still be a failure
                                   reason: the tracker refused the announce); 0: see error */
    char error[BT_TRACKER_ERRLEN]; /* when !ok: "connection refused", "timeout", "HTTP 500",
                                   "body too large", "bad reply: ..." */
    int http_status;            /* 0 when no HTTP reply was received */
    char *failure_reason;       /* NUL-terminated copies, NULL when absent; at most */
    char *warning_message;      /*   BT_TRACKER_MAX_MSG bytes (longer text is cut) */
    char *tracker_id;           /* binary-safe: tracker_id_len bytes (+ a NUL) */
    size_t tracker_id_len;
    int64_t interval;           /* seconds; -1 when absent */
    int64_t min_interval;       /* seconds; -1 when absent */
    int64_t complete;           /* seeders; -1 when absent */
    int64_t incomplete;         /* leechers; -1 when absent */
    int64_t downloaded;         /* scrape only: completed downloads; -1 when absent */
    bt_peer_addr *peers;        /* IPv4 and IPv6 peers, at most BT_TRACKER_MAX_PEERS */
    uint32_t npeers;
    uint32_t peers_dropped;     /* peers past the cap or with unparsable addresses */
} bt_announce_result;

/* Percent-encode n bytes: RFC 3986 unreserved bytes (A-Z a-z 0-9 - . _ ~) as they
 * are, every other byte as %XX. out must hold 3 * n + 1 bytes; NUL-terminated.
 * Returns the length written (without the NUL). */
size_t bt_url_escape(char *out, const void *in, size_t n);

/* Append the full announce URL (url + '?' or '&' + the query, compact=1 always) to
 * b. Returns 0, -1 out of memory, -2 invalid request (no url, URL too long). */
int bt_announce_url(bt_buf *b, const bt_announce *req);

/* Parse a reply body into out (zeroed first; counts set to -1). Returns 0 with
 * out->ok = 1, or -1 with out->ok = 0 and out->error set. Either way out may own
 * memory: release it with bt_announce_result_free. */
int  bt_tracker_parse(const char *body, size_t len, bt_announce_result *out);
void bt_announce_result_init(bt_announce_result *r);
void bt_announce_result_free(bt_announce_result *r);

/* r->error = the formatted message, r->ok = 0; returns -1 (for `return bt_announce_fail(...)`). */
int bt_announce_fail(bt_announce_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Append a peer to r (port 0 or past BT_TRACKER_MAX_PEERS: counted as dropped).
 * *cap is the allocated room, 0 at first. 0, or -1 out of memory (r->error set). */
int bt_announce_add_peer(bt_announce_result *r, uint32_t *cap, int family, const void *addr,
                         uint16_t port);

/* Scrape (BEP 48's URL rule, as BEP 3's convention has it): when the last path
 * component of an http(s) announce URL starts with "announce", the scrape URL is the
 * same with "scrape" in its place. Appends that URL with info_hash=<ih> to b.
 * Returns 0, -1 out of memory, -2 invalid URL, -3 the tracker has no scrape URL. */
int bt_scrape_url(bt_buf *b, const char *announce_url, const uint8_t info_hash[20]);
/* Parse a scrape reply for info_hash: complete, incomplete, downloaded (-1 when
 * absent), or a failure reason. Same contract as bt_tracker_parse; a reply that does
 * not name the torrent is an error ("torrent not in the scrape reply"). */
int bt_scrape_parse(const char *body, size_t len, const uint8_t info_hash[20], bt_announce_result *out);

#endif
