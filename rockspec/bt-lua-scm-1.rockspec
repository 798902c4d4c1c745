-- Installs the bt module (C core + Lua parts) and the bt-lua command.
-- LuaRocks here cannot reach a rocks server, so the only rock dependency is Lua itself;
-- the Debian packages lua-argparse, lua-cjson and lua-term provide the rest (`make deps`).
-- From a checkout: luarocks --lua-version=5.4 make rockspec/bt-lua-scm-1.rockspec
rockspec_format = "3.0"
package = "bt-lua"
version = "scm-1"
source = { url = "git+file:///dev/null" }  -- built from the checkout with `luarocks make`
description = {
  summary = "BitTorrent engine with a C core and Lua request strategies",
  detailed = [[
    A C core (bencode, peer wire, sparse bitfields, libev sockets, libcurl trackers)
    exported as the Lua 5.4 module `bt`; piece selection, endgame, timeouts and choking
    are replaceable Lua policies. `bt-lua run policy.lua file.torrent` downloads.
  ]],
  license = "MIT",
}
dependencies = { "lua >= 5.4" }
external_dependencies = {
  LIBEV = { header = "ev.h", library = "ev" },
  -- Debian puts curl.h under the multiarch include folder, which the compiler searches by itself.
  LIBCURL = { library = "curl" },
  OPENSSL = { header = "openssl/evp.h", library = "crypto" },
}
build = {
  type = "builtin",
  modules = {
    ["bt.core"] = {
      sources = {
        "csrc/core/bitset.c", "csrc/core/buf.c", "csrc/core/mem.c",
        "csrc/core/ranges.c", "csrc/core/ratelimit.c",
        "csrc/core/sha1.c",
        "csrc/codec/bencode.c", "csrc/codec/krpc.c", "csrc/codec/magnet.c", "csrc/codec/metainfo.c", "csrc/codec/mse.c",
        "csrc/codec/tracker_parse.c", "csrc/codec/udp_tracker.c", "csrc/codec/pex.c", "csrc/codec/wire.c",
        "csrc/storage/storage.c", "csrc/storage/storage_mem.c",
        "csrc/engine/dht.c", "csrc/engine/exchange.c", "csrc/engine/metadata.c", "csrc/engine/peer.c",
        "csrc/engine/picker.c", "csrc/engine/policy.c", "csrc/engine/session.c",
        "csrc/engine/throttle.c", "csrc/engine/torrent.c", "csrc/engine/tracker.c", "csrc/engine/worker.c",
        "csrc/lua/l_bencode.c", "csrc/lua/l_dht.c", "csrc/lua/l_fs.c", "csrc/lua/l_meta.c", "csrc/lua/l_peer.c",
        "csrc/lua/l_policy.c", "csrc/lua/l_ranges.c", "csrc/lua/l_ratelimit.c", "csrc/lua/l_session.c",
        "csrc/lua/l_storage.c", "csrc/lua/l_torrent.c", "csrc/lua/l_tracker.c", "csrc/lua/l_wire.c",
        "csrc/lua/lbt.c", "csrc/lua/lutil.c",
      },
      libraries = { "ev", "curl", "crypto" },
      incdirs = { "csrc", "$(LIBEV_INCDIR)", "$(OPENSSL_INCDIR)" },
      libdirs = { "$(LIBEV_LIBDIR)", "$(LIBCURL_LIBDIR)", "$(OPENSSL_LIBDIR)" },
    },
  },
  install = { bin = { ["bt-lua"] = "scripts/bt-lua" } },
}
