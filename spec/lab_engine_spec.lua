--- What the engine gives the lab: the output delay and loss (session options delay, loss,
-- loss_seed; docs/lab.md "Network") and a per-peer upload rate (peer:set_upload_rate,
-- docs/policy.md). A bt-lua seed in a process of its own and a bt-lua leecher in this one,
-- both on 127.0.0.1. Every process is killed by PID, every wait bounded.
local H = require "helpers"
local S = require "swarm_helpers"
local session = require "bt.session"

-- A seed process: bt.session with the given delay and loss (and policy), seeding `dir` for at most 60 s.
local SEED = [[
local session = require "bt.session"
local port, torrent, dir, delay, loss = tonumber(arg[1]), arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
local s = session.new{ port = port, bind = "127.0.0.1", max_per_ip = 0, delay = delay, loss = loss, loss_seed = 7 }
s:add(torrent, { dir = dir, trackers = false, policy = arg[6] })
local t0 = os.time()
s:run(function() return os.time() - t0 > 60 end)
]]

local function start_seed(tmp, torrent, delay, loss, policy)
  local script = tmp .. "/seed.lua"
  H.writefile(script, SEED)
  local port = S.port()
  local pid = S.spawn(("env %s lua5.4 %s %d %s %s %s %s %s"):format(H.lua_env(), H.q(script), port, H.q(torrent),
    H.q(tmp .. "/seed"), delay, loss, policy and H.q(policy) or ""), tmp .. "/seed-" .. port .. ".log", true)
  assert(S.wait_port(port, 15), "the seed did not listen")
  return pid, port
end

--- Download from the seed at port with this session's delay and loss; returns the seconds
-- to completion and the lowest request-to-block time seen on the connection.
-- max_down (bytes/s, nil: none) makes a download last past a few ticks.
local function leech(tmp, torrent, port, delay, loss, max_down)
  local dir = tmp .. "/out-" .. port
  os.execute("mkdir -p " .. H.q(dir))
  local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50, max_per_ip = 0, delay = delay, loss = loss,
                         loss_seed = 3 }
  local t = s:add(torrent, { dir = dir, trackers = false, peers = { "127.0.0.1:" .. port }, max_down = max_down })
  local t0 = s.core:now()
  local min_rtt
  local function read_rtt()
    for _, p in ipairs(t:peers()) do
      if p.min_rtt > 0 then min_rtt = p.min_rtt end
    end
  end
  s:on("tick", read_rtt)
  s:on("piece", read_rtt)
  s:run(function(ss) return t.complete or ss.core:now() - t0 > 40 end)
  local secs = s.core:now() - t0
  local complete = t.complete
  s:close()
  assert.is_true(complete, "the download did not complete in 40 s")
  return secs, min_rtt
end

--- For each of two settings ({delay =, loss =, policy =, max_down =}), a seed with it and a download
-- from that seed with the same delay and loss; returns {seconds, min_rtt} for each.
local function both(tmp, torrent, pids, first, second)
  local out = {}
  for i, c in ipairs{ first, second } do
    local pid, port = start_seed(tmp, torrent, c.delay or 0, c.loss or 0, c.policy)
    pids[#pids + 1] = pid
    out[i] = { leech(tmp, torrent, port, c.delay or 0, c.loss or 0, c.max_down) }
  end
  return out[1], out[2]
end

describe("lab delay and loss", function()
  it("holds every byte sent for the delay: a request's round trip grows by twice the delay", function()
    local tmp, torrent = S.fixture("d.bin", 512 * 1024, 5, 15)
    local pids = {}
    S.guard(tmp, pids, function()
      -- at 1 MiB/s the download lasts past a few ticks (unlimited, it can be over, its peer
      -- gone, before the first one); the first blocks come from the full bucket at once
      local plain, slow = both(tmp, torrent, pids, { max_down = 1048576 }, { delay = 0.1, max_down = 1048576 })
      local rtt0, rtt1 = plain[2], slow[2]
      assert.is_truthy(rtt0 and rtt1, "no round trip measured")
      if os.getenv("BT_SPEC_VERBOSE") then print(("min rtt %.4f s, with delay %.4f s"):format(rtt0, rtt1)) end
      -- nothing is released early (>= 2 x 0.1 s), and not much later (a loaded machine)
      assert.is_true(rtt0 < 0.05, "round trip without delay: " .. rtt0)
      assert.is_true(rtt1 >= 0.2 and rtt1 < 0.35, "round trip with 0.1 s each way: " .. rtt1)
      assert.is_true(rtt1 - rtt0 >= 0.15, ("difference %.3f s"):format(rtt1 - rtt0))   -- about 2 x 0.1 s
    end)
  end)

  it("loss slows a transfer: a lost segment costs a retransmission timeout", function()
    local tmp, torrent = S.fixture("l.bin", 2 * 1024 * 1024, 6, 16)
    local pids = {}
    S.guard(tmp, pids, function()
      local a, b = both(tmp, torrent, pids, { delay = 0.01 }, { delay = 0.01, loss = 0.05 })
      local clean, lossy = a[1], b[1]
      if os.getenv("BT_SPEC_VERBOSE") then print(("2 MiB: %.2f s, with loss %.2f s"):format(clean, lossy)) end
      assert.is_true(lossy > clean + 0.5, ("2 MiB: %.2f s without loss, %.2f s with 5 %% loss"):format(clean, lossy))
    end)
  end)

  it("refuses bad values", function()
    for _, o in ipairs{ { delay = -0.1 }, { delay = 2.5 }, { delay = 0 / 0 }, { loss = -0.01 }, { loss = 0.6 },
                        { loss = 0 / 0 }, { loss_seed = -1 } } do
      o.port = -1
      local ok, err = pcall(session.new, o)
      assert.is_false(ok)
      assert.matches("must be in", tostring(err))
    end
    local s = session.new{ port = -1, delay = 2, loss = 0.5 }   -- the bounds themselves are allowed
    s:close()
  end)

  it("takes a peer id of 20 bytes (the lab's, from its seed) and refuses any other", function()
    local s = session.new{ port = -1, peer_id = "-BL0100-00000000002a" }
    assert.are.equal("-BL0100-00000000002a", s.core:peer_id())
    s:close()
    -- (-9223372036854775807 would be 20 bytes as a string: a number is refused as such)
    for _, id in ipairs{ "-BL0100-0000000000", ("x"):rep(21), -9223372036854775807, true } do
      local ok, err = pcall(session.new, { port = -1, peer_id = id })
      assert.is_false(ok, tostring(id))
      assert.matches("peer_id must be a string of 20 bytes", tostring(err))
    end
    local a, b = session.new{ port = -1 }, session.new{ port = -1 }   -- without: random, and distinct
    assert.are_not.equal(a.core:peer_id(), b.core:peer_id())
    assert.matches("^%-BL0100%-", a.core:peer_id())
    a:close()
    b:close()
  end)
end)

-- A seed's choker that unchokes everyone, each at its own rate: CAP bytes/s (0: none).
local CAPPED = [[
local default = require "bt.policy.default"
return {
  name = "capped", pick = default.pick,
  choke = function(t, peers)
    for _, p in ipairs(peers) do p:set_upload_rate(CAP) end
    return peers
  end,
}
]]

describe("peer:set_upload_rate", function()
  it("limits what a seed sends one peer to that rate, and 0 lifts it", function()
    local size = 768 * 1024
    local tmp, torrent = S.fixture("r.bin", size, 8, 15)
    local pids = {}
    S.guard(tmp, pids, function()
      local function policy(cap)
        local path = ("%s/capped-%d.lua"):format(tmp, cap)
        H.writefile(path, (CAPPED:gsub("CAP", tostring(cap))))
        return path
      end
      local a, b = both(tmp, torrent, pids, { policy = policy(128 * 1024) }, { policy = policy(0) })
      local slow, fast = a[1], b[1]
      if os.getenv("BT_SPEC_VERBOSE") then
        print(("768 KiB: %.2f s at 128 KiB/s, %.2f s unlimited"):format(slow, fast))
      end
      -- the peer's bucket starts empty when the rate is set: 768 / 128 = 6 s, and the start-up
      assert.is_true(slow >= 5.5 and slow < 9, ("at 128 KiB/s: %.2f s"):format(slow))
      assert.is_true(fast < 3, ("unlimited: %.2f s"):format(fast))
    end)
  end)

  it("is checked the same way by the fake engine", function()
    local fake = require "bt.policy.fake"
    local t = fake.torrent{ pieces = 4, piece_length = 16384 }
    local p = fake.peer(t)
    assert.are.equal(0, p.upload_rate)
    p:set_upload_rate(65536)
    assert.are.equal(65536, p.upload_rate)
    assert.has_error(function() p:set_upload_rate(-1) end)
    assert.has_error(function() p:set_upload_rate(0 / 0) end)
    assert.has_error(function() p:set_upload_rate("fast") end)
  end)
end)

describe("examples/lab/bittyrant.lua (bt.policy.fake)", function()
  local policy = require "bt.policy"
  local fake = require "bt.policy.fake"
  local bittyrant = policy.load(H.root .. "/examples/lab/bittyrant.lua")

  it("unchokes the best return per byte first, pays each its price, within the upload capacity", function()
    local t = fake.torrent{ pieces = 64, piece_length = 65536, now = 100 }
    t:set_limits{ up = 40000 }
    -- a: sends us 64 KiB/s; b: 16 KiB/s; c, d: choke us. No `have` seen yet: every peer
    -- costs our equal split (40000 / 5) and is worth it unless it sends us more; all four
    -- fit, and the capacity left is shared in proportion (10000 each)
    local a = fake.peer(t, { rate_down = 65536 })
    local b = fake.peer(t, { rate_down = 16384 })
    local c = fake.peer(t, { choking = true })
    local d = fake.peer(t, { choking = true })
    local peers = { d, c, b, a }
    local out = bittyrant.choke(t, peers, 1, t.now)
    assert.are.equal(4, #out)
    assert.are.same({ a, b }, { out[1], out[2] })
    for _, p in ipairs(peers) do assert.are.equal(10000, p.upload_rate) end
    -- 4 s later: c announced 8 pieces (8 * 64 KiB / 4 s over 5 slots: 26214.4 bytes/s), d 4
    -- (13107.2), a and b none (the floor, 2048). Prices start at those estimates; c now
    -- unchokes us (30000 bytes/s, more than its price: it ranks above d); a, b and c fit
    -- in 40000, d does not
    for i = 0, 7 do c._f.have_set:set(i) end
    for i = 8, 11 do d._f.have_set:set(i) end
    c.choking, c.rate_down = false, 30000
    t:advance(4)
    out = bittyrant.choke(t, peers, 2, t.now)
    assert.are.same({ a, b, c }, out)
    assert.are.same({ 2048, 2048 }, { a.upload_rate, b.upload_rate })
    assert.is_true(math.abs(c.upload_rate - 26214.4) < 1e-6, c.upload_rate)
    -- c took its price and chokes us again: it costs 20 % more and is worth its estimate
    -- (17476: 8 pieces in 6 s); d, which now sends us 8 KiB/s for 13107, takes its place
    c.choking = true
    d.choking, d.rate_down = false, 8192
    t:advance(2)
    out = bittyrant.choke(t, peers, 3, t.now)
    assert.are.same({ a, b, d }, out)
    assert.is_true(math.abs(d.upload_rate - 13107.2) < 1e-6, d.upload_rate)
    -- d reciprocates three rounds in a row: its price falls by 10 %
    for r = 4, 6 do
      t:advance(2)
      out = bittyrant.choke(t, peers, r, t.now)
      assert.are.same({ a, b, d }, out)
    end
    assert.is_true(math.abs(d.upload_rate - 13107.2 * 0.9) < 1e-6, d.upload_rate)
    -- between rounds (an extra call 0.5 s later) nothing moves
    t:advance(0.5)
    bittyrant.choke(t, peers, 7, t.now)
    assert.is_true(math.abs(d.upload_rate - 13107.2 * 0.9) < 1e-6, d.upload_rate)
    assert.are.equal(2, bittyrant.choke_interval)
    -- complete: the caps are lifted, the default choker decides
    t.complete = true
    bittyrant.choke(t, peers, 8, t.now)
    for _, p in ipairs(peers) do assert.are.equal(0, p.upload_rate) end
  end)
end)
