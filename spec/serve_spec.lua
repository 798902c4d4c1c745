-- The seed's serving loop: a leecher that has queued many requests gets them answered
-- back to back, not one 256 KiB batch per tick (csrc/session.c, on_prepare). Before the
-- fix the seed served a batch, sent it whole and then slept until its next tick (50 ms in
-- spec/peers/btseed.lua) whenever the leecher had nothing more to say, which is the end
-- of every download. A raw leecher here (bt.wire + lua-socket) queues REQS requests in
-- one write and times the answers. Every process is killed by PID, every wait bounded.
local H = require "helpers"
local S = require "swarm_helpers"
local bt = require "bt"
local socket = require "socket"

local BLOCK = 16384
local REQS = 240            -- below the seed's reqq (250): all are queued at once
local BATCH = 256 * 1024    -- BT_SESS_UPLOAD_WATER: one batch per loop iteration
local TICK = 0.05           -- btseed.lua's tick_ms
-- Before the fix: (REQS * BLOCK / BATCH - 1) ticks = 14 * 50 ms = 0.7 s at least.
-- After: a few ms; the bound leaves room for a loaded machine and the sanitizer build.
local LIMIT = (REQS * BLOCK / BATCH - 1) * TICK / 2

describe("a bt-lua seed's serving loop", function()
  it("answers a full request queue without waiting for ticks", function()
    local tmp = H.tmpdir()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["q.bin"] = 4 * 1024 * 1024 }, 9)
    local torrent = S.mktorrent(tmp .. "/seed/q.bin", tmp .. "/t.torrent", 18)
    local m = bt.torrent.load(torrent)
    local pid
    local ok, err = pcall(function()
      local port
      pid, port = S.bt_seed(torrent, tmp .. "/seed", 30)
      local sock = assert(socket.connect("127.0.0.1", port))
      sock:send(bt.wire.handshake{ info_hash = m.info_hash, peer_id = "-BQ0001-" .. string.rep("5", 12) })
      local dec = bt.wire.decoder{ handshake = true }
      local unchoked, got, closed = false, 0, false
      local function pump(secs, done)
        local deadline = socket.gettime() + secs
        while socket.gettime() < deadline and not closed and not done() do
          sock:settimeout(0.01)
          local data, e, partial = sock:receive(1 << 20)
          data = data or partial
          if data and #data > 0 then
            for _, msg in ipairs(assert(dec:feed(data))) do
              if msg.type == "unchoke" then unchoked = true
              elseif msg.type == "piece" then got = got + 1 end
            end
          end
          closed = e == "closed"
        end
        return done()
      end
      sock:settimeout(5)
      sock:send(bt.wire.encode{ type = "interested" })
      assert.is_true(pump(10, function() return unchoked end), "never unchoked")
      local parts, per = {}, m.piece_length // BLOCK
      for i = 0, REQS - 1 do
        parts[#parts + 1] = bt.wire.encode{ type = "request", index = i // per, begin = (i % per) * BLOCK, length = BLOCK }
      end
      got = 0
      sock:settimeout(5)
      local t0 = socket.gettime()
      sock:send(table.concat(parts))   -- one write: the seed queues them all in one read
      assert.is_true(pump(10, function() return got >= REQS end), "served " .. got .. " of " .. REQS)
      local secs = socket.gettime() - t0
      sock:close()
      if os.getenv("BT_SPEC_VERBOSE") then
        print(("\n%d blocks in %.3f s (limit %.2f s)"):format(REQS, secs, LIMIT))
      end
      assert.is_true(secs < LIMIT, ("%d blocks took %.3f s: served per tick?"):format(REQS, secs))
    end)
    if pid then S.kill(pid) end
    H.rmtree(tmp)
    assert(ok, err)
  end)
end)
