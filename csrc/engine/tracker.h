/* tracker.h: the tracker client: HTTP(S) through libcurl's multi-socket interface
 * and UDP (BEP 15) on datagram sockets, both driven by libev watchers on the
 * caller's loop. No blocking call, no thread of ours. The request, the result and
 * the reply parsers are codec/tracker_parse.h and codec/udp_tracker.h.
 * Retry, back-off and announce scheduling are not here: the engine decides in Lua.
 * The client only reports what happened, once per announce.
 */
#ifndef BT_TRACKER_H
#define BT_TRACKER_H

#include "codec/tracker_parse.h"

struct ev_loop;

typedef struct bt_tracker bt_tracker;

/* Called exactly once per announce that was not cancelled, from the loop (never
 * from inside bt_tracker_announce). res is valid during the call only. The
 * callback may call bt_tracker_announce / bt_tracker_cancel on the same client,
 * and bt_tracker_free too. */
typedef void (*bt_announce_cb)(void *ud, int id, const bt_announce_result *res);

/* A client on `loop` (libev's default or another one). NULL if curl or memory fails. */
bt_tracker *bt_tracker_new(struct ev_loop *loop);
/* How long a UDP tracker's connection id is used (0 < seconds <= BT_UDP_CONN_TTL, BEP 15's
 * minute; shorter only for tests of the expiry). */
void bt_tracker_set_conn_ttl(bt_tracker *t, double seconds);
/* Cancels every pending announce without calling back, frees t. NULL is fine. */
void bt_tracker_free(bt_tracker *t);
/* Defaults for announces that give no timeout (seconds, > 0). */
void bt_tracker_set_timeouts(bt_tracker *t, double total, double connect);

/* Start an announce. Returns its id (> 0), or -1 with bt_tracker_error() set (bad
 * URL, out of memory, curl refused). */
int bt_tracker_announce(bt_tracker *t, const bt_announce *req, bt_announce_cb cb, void *ud);
/* The URL decides: http://, https:// or udp://host:port[/path] (the path and query
 * go in BEP 41's URL-data option). For UDP, req->connect_timeout, when set below
 * 15 s, is the first retransmit wait (then doubled, BEP 15), and req->timeout bounds
 * the whole exchange. */

/* Scrape one torrent (req->url is its announce URL, req->info_hash the torrent;
 * the other fields are unused but the timeouts). The result has complete,
 * incomplete, downloaded, or a failure reason. -1 with bt_tracker_error() when the
 * tracker has no scrape URL (HTTP: the path must end in /announce...). */
int bt_tracker_scrape(bt_tracker *t, const bt_announce *req, bt_announce_cb cb, void *ud);
/* Message of the last failed bt_tracker_announce or bt_tracker_scrape. */
const char *bt_tracker_error(const bt_tracker *t);
/* Cancel a pending announce: no callback will come. Returns 0, or -1 if the id is
 * unknown (already finished or cancelled). */
int bt_tracker_cancel(bt_tracker *t, int id);
/* Announces in flight. */
unsigned bt_tracker_pending(const bt_tracker *t);

#endif
