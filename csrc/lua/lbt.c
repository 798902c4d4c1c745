/* lbt.c: luaopen_bt_core, the one exported symbol of the C module, at the top of
 * the binding layer: it calls each binding file's bt_open_<topic>, and nothing
 * calls it. lua/bt/init.lua (`require "bt"`) loads it and adds the Lua parts. */
#include <curl/curl.h>
#include <ev.h>
#include <openssl/crypto.h>

#include "lua/l_bencode.h"
#include "lua/l_dht.h"
#include "lua/l_fs.h"
#include "lua/l_meta.h"
#include "lua/l_peer.h"
#include "lua/l_ranges.h"
#include "lua/l_ratelimit.h"
#include "lua/l_session.h"
#include "lua/l_storage.h"
#include "lua/l_torrent.h"
#include "lua/l_tracker.h"
#include "lua/l_wire.h"
#include "lua/lutil.h"

#define BT_VERSION "0.2.0"

/* bt.versions() -> { bt =, lua =, libev =, libcurl =, openssl = }: what this process
 * runs with (the libraries' own answers at run time, not the headers').  [-0, +1, m] */
static int l_versions(lua_State *L)
{
    lua_createtable(L, 0, 5);
    lua_pushliteral(L, BT_VERSION);
    lua_setfield(L, -2, "bt");
    lua_pushliteral(L, LUA_RELEASE);   /* the headers'; a module loads only into its own 5.4 */
    lua_setfield(L, -2, "lua");
    lua_pushfstring(L, "%d.%d", ev_version_major(), ev_version_minor());
    lua_setfield(L, -2, "libev");
    const curl_version_info_data *c = curl_version_info(CURLVERSION_NOW);
    lua_pushfstring(L, "%s (%s)", c->version, c->ssl_version ? c->ssl_version : "no TLS");
    lua_setfield(L, -2, "libcurl");
    lua_pushstring(L, OpenSSL_version(OPENSSL_VERSION));
    lua_setfield(L, -2, "openssl");
    return 1;
}

__attribute__((visibility("default"))) int luaopen_bt_core(lua_State *L)
{
    lua_newtable(L);
    int mod = lua_gettop(L);
    bt_open_bencode(L, mod);
    bt_open_ranges(L, mod);
    bt_open_wire(L, mod);
    bt_open_meta(L, mod);
    bt_open_fs(L, mod);
    bt_open_ratelimit(L, mod);
    bt_open_storage(L, mod);
    bt_open_tracker(L, mod);
    bt_open_peer(L, mod);
    bt_open_torrent(L, mod);
    bt_open_session(L, mod);
    bt_open_dht(L, mod);
    lua_pushliteral(L, BT_VERSION);
    lua_setfield(L, mod, "version");
    lua_pushcfunction(L, l_versions);
    lua_setfield(L, mod, "versions");
    return 1;
}
