-- spec/peers/btseed.lua: bt-lua itself as a seed, for tests of our upload path.
--   lua5.4 spec/peers/btseed.lua TORRENT DIR PORT [LIFETIME]
-- The data must already be in DIR (it is hash-checked at start). Exits after
-- LIFETIME seconds (default 60) so it never outlives a spec.
local session = require "bt.session"
local torrent, dir, port, lifetime = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4] or "60")
local s = session.new{ port = port, bind = "127.0.0.1", tick_ms = 50 }
local t = s:add(torrent, { dir = dir, trackers = false })
assert(t.complete, "btseed: data in " .. dir .. " is not complete")
-- why peers leave, for the log the caller keeps (a slow upload is easier to explain)
s:on("peer_disconnect", function(_, addr, why) io.stderr:write("btseed: ", tostring(addr), " left: ", why, "\n") end)
local t0 = s.core:now()
s:run(function() return s.core:now() - t0 > lifetime end)
s:close()
