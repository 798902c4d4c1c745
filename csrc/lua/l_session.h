/* l_session.h: bt.Session, the engine seen from Lua (l_session.c).
 *
 * Lua usage (lua/bt/session.lua wraps this into the public bt.session):
 *   local cs = bt.session_new(opts, handler)   -- handler(kind, ...) gets ticks and events
 *   local t  = cs:add(meta, dir, policy, max_peers [, trust [, "disk"|"memory" [, load]]])
 *   cs:run(); cs:stop(); cs:close(); cs:port()
 */
#ifndef BT_L_SESSION_H
#define BT_L_SESSION_H

#include "lua/lutil.h"

BT_HIDDEN void bt_open_session(lua_State *L, int mod);

/* For objects that live on a session's loop (the DHT node, l_dht.c). */
struct bt_session;
/* The open bt.Session at idx (raises otherwise).  [-0, +0, e] */
BT_HIDDEN struct bt_session *bt_lsession_check(lua_State *L, int idx);
/* Call the function below nargs arguments on the main stack, as the session calls its
 * handler: an error stops the loop and run() raises it.  [-(nargs+1), +0, -] */
BT_HIDDEN void bt_lsession_call(struct bt_session *s, int nargs);
/* Objects attached to a session are closed before it (and its loop) is freed: each
 * embeds a bt_lchild whose close runs then (it must detach itself). */
typedef struct bt_lchild {
    void (*close)(struct bt_lchild *c);
    struct bt_lchild *next;
} bt_lchild;
BT_HIDDEN void bt_lsession_attach(struct bt_session *s, bt_lchild *c);
BT_HIDDEN void bt_lsession_detach(struct bt_session *s, bt_lchild *c);

#endif
