-- examples/library.lua: bt-lua as a library, no CLI.
--   lua5.4 examples/library.lua file.torrent [out-dir] [host:port ...]
-- Lua finds `bt` when it is installed (luarocks make); from a checkout, point it at the
-- checkout first (make env prints the two exports, and builds the module if needed):
--   eval "$(make -s env)"; lua5.4 examples/library.lua file.torrent
-- Downloads with the default policy, prints each verified piece, stops when done.
-- It listens on every address; env BT_BIND=127.0.0.1 keeps it to one (the specs do).
local bt = require "bt"
local session = bt.session

local torrent, dir = arg[1], arg[2] or "."
if not torrent then
  io.stderr:write("usage: lua5.4 examples/library.lua FILE.torrent [DIR] [HOST:PORT...]\n")
  os.exit(2)
end
local peers = { table.unpack(arg, 3) }

local s = session{ port = 0, bind = os.getenv("BT_BIND") }   -- any free port
local tor = s:add(torrent, { dir = dir, peers = peers,   -- trackers in the torrent are used too
                             policy = "bt.policy.default" })

s:on("piece", function(t, index, ok)
  io.write(("piece %d %s (%d left)\n"):format(index, ok and "verified" or "FAILED", t.missing))
end)
s:on("peer_connect", function(_t, peer) print("connected to " .. peer.address) end)
s:on("complete", function(t)
  print("complete: " .. t.name)
  s:stop()
end)
s:on("error", function(_t, message)
  io.stderr:write(message, "\n")
  s:stop()
end)

-- run until complete, or give up after 10 minutes
local start = os.time()
s:run(function() return os.time() - start > 600 end)
local ok = tor.complete
s:close()
os.exit(ok and 0 or 1)
