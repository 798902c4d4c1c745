-- The process under ThreadSanitizer (spec/tsan/storage_tsan.sh): download from aria2c
-- on `storage`, keep seeding until a full copy went out (or 40 s). No child processes.
local kind, torrent, out, aport, port = arg[1], arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
local session = require "bt.session"
local s = session.new{ port = port, bind = "127.0.0.1", tick_ms = 50 }
local t = s:add(torrent, { storage = kind, dir = out, peers = { "127.0.0.1:" .. aport }, trackers = false,
  seed = true, resume = false })
local t0 = s.core:now()
local total = t:stats().total_bytes
s:run(function() return (t.complete and t:stats().uploaded >= total) or s.core:now() - t0 > 40 end)
local ok = t.complete and t:stats().uploaded >= total
s:close()
os.exit(ok and 0 or 1)
