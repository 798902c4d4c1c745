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

#endif
