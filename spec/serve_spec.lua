-- The seed's serving loop and unchoke timing. First: a leecher that has queued many requests gets them answered
-- back to back, not one 256 KiB batch per tick (csrc/session.c, on_prepare). Before the
-- fix the seed served a batch, sent it whole and then slept until its next tick (50 ms in
-- spec/peers/btseed.lua) whenever the leecher had nothing more to say, which is the end
-- of every download. A raw leecher here (bt.wire + lua-socket) queues REQS requests in
-- one write and times the answers. Every process is killed by PID, every wait bounded.
require "helpers"
local S = require "swarm_helpers"
local bt = require "bt"
local socket = require "socket"

local BLOCK = 16384
local REQS = 240            -- below the seed's reqq (500): all are queued at once
local BATCH = 256 * 1024    -- BT_SESS_UPLOAD_WATER: one batch per loop iteration
local TICK = 0.05           -- btseed.lua's tick_ms
-- Before the fix: (REQS * BLOCK / BATCH - 1) ticks = 14 * 50 ms = 0.7 s at least.
-- After: a few ms; the bound leaves room for a loaded machine and the sanitizer build.
local LIMIT = (REQS * BLOCK / BATCH - 1) * TICK / 2

-- A raw leecher on `port`: handshake sent; returns an object with pump(secs, done),
-- send(msg), close() and counters unchoked / got / closed.
local function raw_leecher(port, m, idbyte)
  local self = { unchoked = false, got = 0, closed = false }
  local sock = assert(socket.connect("127.0.0.1", port))
  sock:settimeout(5)
  sock:send(bt.wire.handshake{ info_hash = m.info_hash, peer_id = "-BQ0001-" .. string.rep(idbyte, 12) })
  local dec = bt.wire.decoder{ handshake = true }
  function self.pump(secs, done)
    local deadline = socket.gettime() + secs
    while socket.gettime() < deadline and not self.closed and not done() do
      sock:settimeout(0.01)
      local data, e, partial = sock:receive(1 << 20)
      data = data or partial
      if data and #data > 0 then
        for _, msg in ipairs(assert(dec:feed(data))) do
          if msg.type == "unchoke" then self.unchoked = true
          elseif msg.type == "piece" then self.got = self.got + 1 end
        end
      end
      self.closed = e == "closed"
    end
    return done()
  end
  function self.send(data)
    sock:settimeout(5)
    sock:send(data)
  end
  function self.close() sock:close() end
  return self
end

describe("a bt-lua seed's serving loop", function()
  it("answers a full request queue without waiting for ticks", function()
    local tmp, torrent = S.fixture("q.bin", 4 * 1024 * 1024, 9, 18)
    local m = bt.torrent.load(torrent)
    local pids, port = {}, nil
    S.guard(tmp, pids, function()
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed", 30)
      local l = raw_leecher(port, m, "5")
      l.send(bt.wire.encode{ type = "interested" })
      assert.is_true(l.pump(10, function() return l.unchoked end), "never unchoked")
      local parts, per = {}, m.piece_length // BLOCK
      for i = 0, REQS - 1 do
        parts[#parts + 1] = bt.wire.encode{ type = "request", index = i // per, begin = (i % per) * BLOCK,
          length = BLOCK }
      end
      local t0 = socket.gettime()
      l.send(table.concat(parts))   -- one write: the seed queues them all in one read
      assert.is_true(l.pump(10, function() return l.got >= REQS end), "served " .. l.got .. " of " .. REQS)
      local secs = socket.gettime() - t0
      l.close()
      if os.getenv("BT_SPEC_VERBOSE") then
        print(("\n%d blocks in %.3f s (limit %.2f s)"):format(REQS, secs, LIMIT))
      end
      assert.is_true(secs < LIMIT, ("%d blocks took %.3f s: served per tick?"):format(REQS, secs))
    end)
  end)

  it("unchokes a leecher that comes right after another one left", function()
    -- The policy's extra choke rounds run at most once a second (CHOKE_DIRTY_GAP in
    -- l_session.c). A round for the leaving leecher, with nobody waiting, made the next
    -- one wait up to that second for its unchoke (back-to-back downloads took 1.8 s
    -- instead of 1.0 s); a departure alone no longer asks for a round.
    local tmp, torrent = S.fixture("u.bin", 1024 * 1024, 10, 18)
    local m = bt.torrent.load(torrent)
    local pids, port = {}, nil
    S.guard(tmp, pids, function()
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed", 30)
      local a = raw_leecher(port, m, "6")
      a.send(bt.wire.encode{ type = "interested" })
      assert.is_true(a.pump(10, function() return a.unchoked end), "first leecher never unchoked")
      a.pump(1.2, function() return false end)   -- stay past the one-second gap, then leave
      a.close()
      socket.sleep(0.15)                          -- a few of the seed's 50 ms ticks
      local b = raw_leecher(port, m, "7")
      local t0 = socket.gettime()
      b.send(bt.wire.encode{ type = "interested" })
      assert.is_true(b.pump(10, function() return b.unchoked end), "second leecher never unchoked")
      local secs = socket.gettime() - t0
      b.close()
      if os.getenv("BT_SPEC_VERBOSE") then print(("\nsecond leecher unchoked after %.3f s"):format(secs)) end
      assert.is_true(secs < 0.5, ("second leecher waited %.3f s for its unchoke"):format(secs))
    end)
  end)
end)
