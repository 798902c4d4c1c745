/* l_tracker.h: what other binding files use of l_tracker.c. */
#ifndef BT_L_TRACKER_H
#define BT_L_TRACKER_H

#include <lua.h>

#include "lua/lutil.h"
#include "engine/tracker.h"

/* Push the table of a successful announce: failure_reason, warning_message,
 * tracker_id, interval, min_interval, complete, incomplete, http_status,
 * peers_dropped and peers, each peer as {ip=, port=} or, with peer_strings, as
 * "ip:port" ("[ip]:port" for IPv6), the form the session's Lua side dials.  [-0, +1, m] */
BT_HIDDEN void bt_ltracker_push_result(lua_State *L, const bt_announce_result *r, int peer_strings);

/* An announce's params table at idx into req (docs/api.md lists the fields):
 * peer_id defaults to `peer_id` when that is not NULL (else it is required), port
 * to `port`. String pointers stay valid while the table's fields are unchanged.
 * Raises an argument error naming the bad field.  [-0, +0, v] */
BT_HIDDEN void bt_ltracker_check_params(lua_State *L, int idx, bt_announce *req, const uint8_t *peer_id,
                                        int port);

BT_HIDDEN void bt_open_tracker(lua_State *L, int mod);

#endif
