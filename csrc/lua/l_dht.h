/* l_dht.h: bt.Dht, the DHT node (engine/dht.h) seen from Lua (l_dht.c).
 *
 * Lua usage (lua/bt/dht.lua wraps this for bt.session):
 *   local d = bt.dht_new(cs, { port = cs:port(), bind = "127.0.0.1" })
 *   d:add_node("127.0.0.1", 6881)
 *   d:lookup("announce", info_hash, port, function(res) ... res.peers ... end)
 *   d:stats(); d:good_nodes(); d:close()
 */
#ifndef BT_L_DHT_H
#define BT_L_DHT_H

#include "lua/lutil.h"

BT_HIDDEN void bt_open_dht(lua_State *L, int mod);

#endif
