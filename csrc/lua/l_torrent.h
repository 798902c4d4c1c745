/* l_torrent.h: bt.Torrent, a torrent of a session seen from Lua (l_torrent.c).
 *
 * A handle (one per torrent, kept alive by the registry while the torrent lives)
 * holds the torrent's pointer until the session frees the torrent; afterwards it
 * raises "torrent used after its session was closed". Its uservalue keeps the
 * metainfo alive (the engine reads it), the policy table, the policy's t.state and
 * the have view.
 */
#ifndef BT_L_TORRENT_H
#define BT_L_TORRENT_H

#include "engine/session.h"
#include "engine/torrent.h"
#include "lua/lutil.h"

#define BT_TORRENT_MT "bt.Torrent"

typedef struct ltorrent {
    bt_torrent *t;            /* NULL once the torrent is freed */
    bt_session *s;
    int self_ref;             /* the handle itself, pushed to hooks */
} ltorrent;

/* A new handle, bound to no torrent yet: meta at meta_idx and the policy table at
 * policy_idx are kept in its uservalue. bt_ltorrent_bind then ties it to its
 * torrent (t->lref is the handle: the engine's add sets it from bt_add_opts.lref
 * before the policy scheduler first looks at t).  [-0, +1, m] */
BT_HIDDEN ltorrent *bt_ltorrent_new(lua_State *L, bt_session *s, int meta_idx, int policy_idx);
BT_HIDDEN void bt_ltorrent_bind(ltorrent *lt, bt_torrent *t);
/* A handle that never got its torrent (the add failed): let it go.  [-0, +0, -] */
BT_HIDDEN void bt_ltorrent_drop(lua_State *L, ltorrent *lt);
BT_HIDDEN void bt_ltorrent_push(lua_State *L, const bt_torrent *t);   /* [-0, +1, -] */
/* The policy table of t's handle.  [-0, +1, -] */
BT_HIDDEN void bt_ltorrent_push_policy(lua_State *L, const bt_torrent *t);
BT_HIDDEN bt_torrent *bt_ltorrent_check(lua_State *L, int idx);        /* [-0, +0, v] */
/* The torrent is about to be freed: its handle goes stale.  [-0, +0, -] */
BT_HIDDEN void bt_ltorrent_gone(lua_State *L, bt_torrent *t);

/* A { down =, up = } limits table at idx (bytes/s, 0: unlimited, at most 2^40) into
 * rates[0] (down) and rates[1] (up); a missing field keeps its rate. For bt.Session
 * too.  [-0, +0, v] */
BT_HIDDEN void bt_ltorrent_check_limits(lua_State *L, int idx, double rates[2]);

BT_HIDDEN void bt_open_torrent(lua_State *L, int mod);

#endif
