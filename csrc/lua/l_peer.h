/* l_peer.h: bt.Peer, a peer of a torrent seen from Lua (l_peer.c).
 *
 * A handle holds the peer's pointer until the engine frees the peer, which calls
 * bt_lpeer_gone first: from then on the handle raises "peer ... has disconnected"
 * (peer.alive and peer.address stay readable). One handle per peer, made on first
 * use and kept in the registry (p->href) until the peer goes.
 */
#ifndef BT_L_PEER_H
#define BT_L_PEER_H

#include <stdint.h>

#include "engine/peer.h"
#include "lua/lutil.h"

#define BT_PEER_MT "bt.Peer"

/* peer.source's names, indexed by bt_peer_source, NULL-terminated (luaL_checkoption). */
BT_HIDDEN extern const char *const BT_PEER_SOURCES[BT_SRC_COUNT + 1];

typedef struct lpeer {
    bt_peer *p;               /* NULL once the peer is gone */
    char address[64];
} lpeer;

/* The peer's handle.  [-0, +1, m] */
BT_HIDDEN void bt_lpeer_push(lua_State *L, bt_peer *p);
/* The live peer behind the handle at idx, or an error naming it.  [-0, +0, v] */
BT_HIDDEN bt_peer *bt_lpeer_check(lua_State *L, int idx);
/* The handle at idx, or NULL if it is not a bt.Peer.  [-0, +0, -] */
BT_HIDDEN lpeer *bt_lpeer_test(lua_State *L, int idx);
/* The peer is about to be freed: its handle goes stale.  [-0, +0, -] */
BT_HIDDEN void bt_lpeer_gone(lua_State *L, bt_peer *p);
/* A piece index argument checked against the torrent's piece count.  [-0, +0, v] */
BT_HIDDEN uint32_t bt_lpiece_check(lua_State *L, uint32_t npieces, int arg);

BT_HIDDEN void bt_open_peer(lua_State *L, int mod);

#endif
