-- Who gets a connection slot: eviction of useless peers when full, the per-host cap
-- and the handshake queue's timeout. A bt-lua seed in this process; hostile sockets
-- (spec/peers/holders.lua) and real leechers in others, all on 127.0.0.x, killed by PID.
local H = require "helpers"
local S = require "swarm_helpers"

local session = require "bt.session"

local function holders(mode, port, torrent, n, lifetime, log, src)
  local hash = require("bt.torrent").load(torrent).info_hash_hex
  return S.spawn(("%s lua5.4 %s %s %d %s %d %d %s"):format(H.lua_env(), H.q(H.root .. "/spec/peers/holders.lua"),
    mode, port, hash, n, lifetime, src or "127.0.0.1"), log, true)
end

-- The last "open K" (or "reopened K") the holders printed.
local function last_count(log, word)
  local k
  for v in S.read_or_empty(log):gmatch(word .. " (%d+)") do k = tonumber(v) end
  return k
end

local function seed_session(tmp, torrent, opts)
  opts.port, opts.bind, opts.tick_ms = 0, "127.0.0.1", 50
  local s = session.new(opts)
  local t = s:add(torrent, { dir = tmp .. "/seed", trackers = false, seed = true })
  local why = {}
  s:on("peer_disconnect", function(_, _, reason) why[reason] = (why[reason] or 0) + 1 end)
  return s, t, why
end

local function run_for(s, secs, until_fn)
  local t0 = s.core:now()
  s:run(function() return s.core:now() - t0 > secs or (until_fn and until_fn()) end)
  return s.core:now() - t0
end

-- A real leecher (`bt-lua run`, pids[2]) downloads from s; asserts it completed with the
-- payload's bytes. Returns its seconds, measured on s's clock.
local function leech(s, tmp, torrent, data, pids)
  local h = S.start_btlua(tmp, ("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers -q")
    :format(H.q(torrent), H.q(tmp .. "/out"), s.port), 40)
  pids[2] = h.pid
  local secs = run_for(s, 35, function() return S.rc_of(h) ~= nil end)
  assert.are.equal(0, S.rc_of(h), "leecher: " .. S.read_or_empty(h.log))
  assert.are.equal(S.sha256(data), S.sha256(tmp .. "/out/p.bin"))
  return secs
end

describe("a seed whose every slot is held by peers that take nothing", function()
  -- 8 of them: every upload slot (4 regular + 1 optimistic) is theirs too, and 32 pieces
  -- are more than the 4 allowed-fast ones a choked leecher may fetch
  it("evicts one of them for a real leecher, which gets a slot at once and completes", function()
    local tmp, torrent, data = S.fixture("p.bin", 2 * 1024 * 1024 + 77, 5, 16)
    local s, t, why = seed_session(tmp, torrent, { max_peers = 8, evict_idle = 2, max_per_ip = 0 })
    local pids = { after = { function() s:close() end } }
    S.guard(tmp, pids, function()
      pids[1] = holders("interested", s.port, torrent, 8, 40, tmp .. "/holders.log")
      run_for(s, 10, function() return t.npeers == 8 end)
      assert.are.equal(8, t.npeers)
      run_for(s, 2.5)   -- past evict_idle: they are idle now, not young
      assert.are.equal(5, t:stats().peers_unchoked)
      local secs = leech(s, tmp, torrent, data, pids)
      assert.is_true((why["evicted to make room for a new peer"] or 0) >= 1)
      assert.is_true(t.npeers <= 8)
      -- the slot: an extra choke round (an unchoked peer took nothing for 5 s), not the
      -- next 10 s round nor the 30 s optimistic turn
      assert.is_true(secs < 8, ("leecher took %.1f s"):format(secs))
      print(("\nleecher done %.1f s after it started, with every slot held"):format(secs))
    end)
  end)

  it("keeps them while they are young: a newcomer is refused", function()
    local tmp, torrent = S.fixture("p.bin", 256 * 1024, 6, 16)
    local s, t, why = seed_session(tmp, torrent, { max_peers = 2, evict_idle = 30, max_per_ip = 0 })
    local pids = { after = { function() s:close() end } }
    local log = tmp .. "/holders.log"
    S.guard(tmp, pids, function()
      pids[1] = holders("interested", s.port, torrent, 3, 20, log)
      run_for(s, 10, function() return last_count(log, "closed") == 1 end)
      run_for(s, 0.5)
      assert.are.equal(1, last_count(log, "closed"))
      assert.are.equal(2, last_count(log, "open"))
      assert.is_nil(why["evicted to make room for a new peer"])
      assert.are.equal(2, t.npeers)
    end)
  end)
end)

describe("strikes: hosts that wasted a slot", function()
  it("may not push others out, nor may a host that holds a slot already; a clean host may", function()
    local tmp, torrent = S.fixture("p.bin", 256 * 1024, 11, 16)
    local s, t, why = seed_session(tmp, torrent, { max_peers = 2, evict_idle = 2, max_per_ip = 8 })
    local evicted = {}
    s:on("peer_disconnect", function(_, addr, reason)
      if reason == "evicted to make room for a new peer" then evicted[#evicted + 1] = addr:match("^(.*):") end
    end)
    local pids = { after = { function() s:close() end } }
    local n = 0
    -- one interested connection from host `src`; returns its log
    local function one(src)
      n = n + 1
      local log = ("%s/h%d.log"):format(tmp, n)
      pids[n] = holders("interested", s.port, torrent, 1, 30, log, src)
      run_for(s, 5, function() return last_count(log, "open") ~= nil end)
      run_for(s, 0.5)
      return log
    end
    S.guard(tmp, pids, function()
      one("127.0.0.2")
      run_for(s, 0.3)
      one("127.0.0.3")
      assert.are.equal(2, t.npeers)
      run_for(s, 2.5)   -- both idle past evict_idle now
      local log = one("127.0.0.2")   -- its host holds a slot: it may not push the other host out
      assert.are.equal(1, last_count(log, "closed"), "a second connection of a host evicted someone")
      assert.are.equal(0, #evicted)
      log = one("127.0.0.4")         -- a clean host: the peer idle longest (127.0.0.2's) makes room
      assert.is_nil(last_count(log, "closed"))
      assert.are.same({ "127.0.0.2" }, evicted)
      log = one("127.0.0.2")         -- struck: no slot is free, and it may not push anyone out
      assert.are.equal(1, last_count(log, "closed"), "a struck host evicted someone")
      assert.are.equal(1, #evicted)
      run_for(s, 2.5)
      log = one("127.0.0.5")         -- another clean host may, once a peer is idle again
      assert.is_nil(last_count(log, "closed"))
      assert.are.equal(2, #evicted)
      assert.are.equal(2, t.npeers)
      assert.are.equal(2, why["evicted to make room for a new peer"])
    end)
  end)
end)

describe("the per-host cap", function()
  it("refuses a host's connections past max_per_ip, half of them in their handshake, not another host's", function()
    local tmp, torrent = S.fixture("p.bin", 256 * 1024, 7, 16)
    local s, t = seed_session(tmp, torrent, { max_peers = 20, max_per_ip = 4 })
    local pids = { after = { function() s:close() end } }
    S.guard(tmp, pids, function()
      -- silent ones stay in the handshake queue: 2 of the 4 a host may have
      pids[1] = holders("silent", s.port, torrent, 5, 20, tmp .. "/silent.log")
      run_for(s, 3, function() return (last_count(tmp .. "/silent.log", "reopened") or 0) >= 10 end)
      assert.is_true((last_count(tmp .. "/silent.log", "reopened") or 0) >= 10,
        "silent: the extra ones were not refused")
      S.kill(pids[1])
      -- handshaken ones count against the same host's cap
      pids[2] = holders("interested", s.port, torrent, 6, 20, tmp .. "/one.log")
      run_for(s, 5, function() return t.npeers >= 4 and last_count(tmp .. "/one.log", "open") == 4 end)
      assert.are.equal(4, t.npeers)
      assert.are.equal(4, last_count(tmp .. "/one.log", "open"))
      pids[3] = holders("interested", s.port, torrent, 3, 20, tmp .. "/two.log", "127.0.0.2")
      run_for(s, 5, function() return t.npeers == 7 and last_count(tmp .. "/two.log", "open") == 3 end)
      assert.are.equal(7, t.npeers)
      assert.are.equal(3, last_count(tmp .. "/two.log", "open"))
    end)
  end)
end)

describe("a handshake queue held by silent connections that reconnect at once", function()
  it("closes the oldest after the short timeout so a real leecher gets in", function()
    local tmp, torrent, data = S.fixture("p.bin", 512 * 1024 + 5, 8, 16)
    local s, t = seed_session(tmp, torrent, { max_peers = 20, max_per_ip = 0 })
    local max_pending = s.core:fd_budget().max_pending
    local pids = { after = { function() s:close() end } }
    S.guard(tmp, pids, function()
      pids[1] = holders("silent", s.port, torrent, max_pending + 8, 40, tmp .. "/silent.log")
      run_for(s, 5, function() return (last_count(tmp .. "/silent.log", "reopened") or 0) > 0 end)
      local secs = leech(s, tmp, torrent, data, pids)
      assert.is_true(t.npeers <= 1)
      print(("\nleecher done %.1f s after it started, %d silent sockets flooding the queue of %d")
        :format(secs, max_pending + 8, max_pending))
    end)
  end)
end)
