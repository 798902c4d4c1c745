-- Integration: bt-lua as the uploader. Real leechers (aria2c, bt-lua's CLI) on
-- 127.0.0.1 fetch from a bt-lua seed; every process is killed by PID, every wait bounded.
local H = require "helpers"
local S = require "swarm_helpers"
local T = require "tracker_helpers"
local bt = require "bt"

local PAYLOAD = 3 * 1024 * 1024 + 4321 -- a short last piece on purpose
local LEECH_TIMEOUT = 40               -- seconds any leecher may take here

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

local function same(a, b)
  assert.is_truthy(S.sha256(a))
  assert.are.equal(S.sha256(a), S.sha256(b))
end

-- S.fixture whose torrent names an opentracker on a chosen port, and the tracker, stopped
-- by S.guard through pids.after. Returns tmp, torrent, the payload's path.
local function tracked_swarm(pids, name, seed, log2)
  local tport = S.port()
  local tmp, torrent, data = S.fixture(name, PAYLOAD, seed, log2 or 16, ("http://127.0.0.1:%d/announce"):format(tport))
  local tracker = T.start_opentracker({ bt.torrent.load(torrent).info_hash }, tport)
  pids.after = { function() T.stop(tracker) end }
  return tmp, torrent, data
end

-- transmission-cli leeching into tmp/<name>; it finishes by touching tmp/<name>.done.
-- transmission 3.00 drops 127.x peers handed out by trackers, so it must be dialed: an
-- incoming connection from loopback is accepted. Returns its pid, its port and the done file.
local function transmission_leech(tmp, name, torrent)
  local port = S.port()
  local conf, done = tmp .. "/" .. name .. ".conf", tmp .. "/" .. name .. ".done"
  os.execute("mkdir -p " .. H.q(tmp .. "/" .. name) .. " " .. H.q(conf))
  H.writefile(tmp .. "/" .. name .. ".sh", "#!/bin/sh\ntouch " .. H.q(done) .. "\n")
  os.execute("chmod 755 " .. H.q(tmp .. "/" .. name .. ".sh"))
  local pid = S.spawn(("transmission-cli -g %s -w %s -p %d -M -f %s %s"):format(H.q(conf),
    H.q(tmp .. "/" .. name), port, H.q(tmp .. "/" .. name .. ".sh"), H.q(torrent)), tmp .. "/" .. name .. ".log")
  -- not S.wait_port: transmission holds a probe that connects and hangs up against
  -- 127.0.0.1 and then never talks to the seed; look at the listening sockets instead
  local listening = false
  for _ = 1, 100 do
    if H.sh(("ss -Hltn 'sport = :%d'"):format(port)):find("LISTEN", 1, true) then listening = true; break end
    S.sleep(0.1)
  end
  assert.is_true(listening, "transmission did not listen")
  return pid, port, done
end

local function wait_file(path, secs)
  local deadline = os.time() + secs
  while os.time() < deadline and not exists(path) do S.sleep(0.2) end
  return exists(path)
end

describe("a bt-lua seed", function()
  it("serves aria2c (found through opentracker) byte-identical data", function()
    local pids = {}
    local tmp, torrent, data = tracked_swarm(pids, "a.bin", 11)
    S.guard(tmp, pids, function()
      pids[1] = S.bt_seed_tracked(torrent, tmp .. "/seed", 60)
      local t0 = os.time()
      pids[2] = S.aria2_leech(torrent, tmp .. "/aria")
      assert.is_true(S.wait_exit(pids[2], LEECH_TIMEOUT), "aria2c did not finish")
      print(("\naria2c from a bt-lua seed: ~%d s"):format(os.time() - t0))
      same(data, tmp .. "/aria/a.bin")
    end)
  end)

  it("one seed, bt-lua leechers with three policies, aria2c and transmission all complete", function()
    local pids, cli = {}, {}
    local tmp, torrent, data = tracked_swarm(pids, "w.bin", 23)
    S.guard(tmp, pids, function()
      -- aria2c and the bt-lua leechers find everyone through opentracker; transmission
      -- ignores loopback addresses from trackers, so the seed dials it
      local trport, trdone
      pids[3], trport, trdone = transmission_leech(tmp, "tr", torrent)
      pids[1] = S.bt_seed_tracked(torrent, tmp .. "/seed", 90, { "127.0.0.1:" .. trport })
      pids[2] = S.aria2_leech(torrent, tmp .. "/aria")
      local policies = { "bt.policy.default", H.root .. "/examples/rarest_first.lua",
        H.root .. "/examples/round_robin_choke.lua" }
      for i, pol in ipairs(policies) do
        cli[i] = io.popen(("lua5.4 %s run %s %s -o %s --timeout 30 --tick-ms 50 -q --bind 127.0.0.1 2>&1; "
          .. "echo \"__exit=$?\"")
          :format(H.q(H.root .. "/scripts/bt-lua"), H.q(pol), H.q(torrent), H.q(tmp .. "/l" .. i)))
      end
      for i = 1, #policies do
        local o = cli[i]:read("a")
        cli[i]:close()
        assert.matches("__exit=0", o)
        same(data, tmp .. "/l" .. i .. "/w.bin")
      end
      assert.is_true(S.wait_exit(pids[2], LEECH_TIMEOUT), "aria2c did not finish")
      same(data, tmp .. "/aria/w.bin")
      assert.is_true(wait_file(trdone, LEECH_TIMEOUT), "transmission never finished: " ..
        H.readfile(tmp .. "/tr.log"):sub(-800))
      same(data, tmp .. "/tr/w.bin")
    end)
  end)
end)

describe("a bt-lua seed facing bad requests (spec/peers/badreq.lua)", function()
  -- A request outside what we announced (a piece past the end, a block outside its piece,
  -- larger than max_request) breaks the protocol: the seed drops that peer and serves
  -- nothing of it. Requests sent while choked may have crossed our choke on the wire, and
  -- requests past our reqq of 500 come from real clients (aria2c ignores reqq): those are
  -- only refused, and the connection keeps working (the sentinel request is answered).
  local EXPECT = {
    past_end = { closed = true, served = 0 },
    past_piece = { closed = true, served = 0 },
    at_piece_end = { closed = true, served = 0 },
    past_last = { closed = true, served = 0 },
    oversized = { closed = true, served = 0 },              -- 16 KiB + 1 against the default
    oversized_128k = { closed = true, served = 0, size = 131073, max_request = 131072 },
    choked = { closed = false, served = 1 },                -- only the sentinel
    -- 700 requests against our reqq of 500: at least 500 served, and some refused (a few
    -- more than 500 when the seed serves between two reads of the flood)
    flood = { closed = false, min_served = 500, max_served = 699 },
    flood_ext = { closed = false, min_served = 500, max_served = 699 },   -- told reqq = 500
                                                            -- too (aria2c ignores reqq)
  }
  local MODES = { "past_end", "past_piece", "at_piece_end", "past_last", "oversized", "choked",
    "flood", "flood_ext" }
  it("drops rule breakers, refuses choked and flooding requests, while aria2c completes", function()
    local pids = {}
    -- 256 KiB pieces: room for a 128 KiB + 1 request inside one piece
    local tmp, torrent, data = tracked_swarm(pids, "b.bin", 31, 18)
    local function check(mode, port)
      local e = EXPECT[mode]
      local o = H.sh_bt(("timeout 30 env %s lua5.4 %s %s %s %d %d 2>&1"):format(H.lua_env(),
        H.q(H.root .. "/spec/peers/badreq.lua"), mode:gsub("_128k$", ""), H.q(torrent), port, e.size or 16385))
      local served, bad, closed, sentinel = o:match("served=(%d+) bad_served=(%d+) closed=(%a+) sentinel=(%a+)")
      assert.is_truthy(served, mode .. ": " .. o)
      assert.are.equal(0, tonumber(bad), mode .. " got a bad request served")
      assert.are.equal(tostring(e.closed), closed, mode .. ": closed")
      assert.are.equal(tostring(not e.closed), sentinel, mode .. ": sentinel answered")
      if e.served then assert.are.equal(e.served, tonumber(served), mode) end
      if e.min_served then
        assert.is_true(tonumber(served) >= e.min_served and tonumber(served) <= e.max_served,
          ("%s: %s served, expected %d to %d"):format(mode, served, e.min_served, e.max_served))
      end
    end
    S.guard(tmp, pids, function()
      local port
      pids[1], port = S.bt_seed_tracked(torrent, tmp .. "/seed", 90)
      -- slowed (about 30 s) so it is still downloading while the bad peers run one after
      -- the other (at 200K it finished first under the sanitizer build)
      pids[2] = S.aria2_leech(torrent, tmp .. "/aria", { limit = "100K" })
      for _, mode in ipairs(MODES) do check(mode, port) end
      assert.is_true(S.alive(pids[2]), "aria2c finished before the bad peers ran: not a concurrent test")
      assert.is_true(S.wait_exit(pids[2], LEECH_TIMEOUT), "aria2c did not finish")
      same(data, tmp .. "/aria/b.bin")
      -- a seed allowing 128 KiB blocks still drops a peer asking for one byte more
      local port2
      pids[3], port2 = S.bt_seed_tracked(torrent, tmp .. "/seed", 90, nil, { session = { max_request = 131072 } })
      check("oversized_128k", port2)
    end)
  end)
end)

describe("transmission-cli leeching from a bt-lua seed", function()
  -- transmission 3.00 drops 127.x peers handed out by trackers, so the seed dials it:
  -- an incoming connection from loopback is accepted.
  it("is dialed by the seed and gets byte-identical data", function()
    local tmp, torrent, data = S.fixture("t.bin", PAYLOAD, 37, 16)
    local pids = {}
    S.guard(tmp, pids, function()
      local tport, done
      pids[1], tport, done = transmission_leech(tmp, "tr", torrent)
      pids[2] = S.bt_seed_tracked(torrent, tmp .. "/seed", 60, { "127.0.0.1:" .. tport })
      local t0 = os.time()
      assert.is_true(wait_file(done, LEECH_TIMEOUT), "transmission never finished: " ..
        H.readfile(tmp .. "/tr.log"):sub(-800) .. H.sh("cat " .. H.q(tmp) .. "/btseed-*.log"))
      print(("\ntransmission-cli from a bt-lua seed: ~%d s"):format(os.time() - t0))
      same(data, tmp .. "/tr/t.bin")
    end)
  end)
end)

describe("a peer that requests and never reads", function()
  it("gets nothing counted as uploaded and is dropped once our output stops draining", function()
    local tmp, torrent = S.fixture("p.bin", 8 * 1024 * 1024, 3, 18)   -- 32 pieces of 256 KiB
    local session = require "bt.session"
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50, send_timeout = 2 }
    local t = s:add(torrent, { dir = tmp .. "/seed", trackers = false, seed = true })
    local why, uploaded_then
    s:on("peer_disconnect", function(_, _, reason)
      why = reason
      uploaded_then = t:stats().uploaded
    end)
    local script = H.q(H.root .. "/spec/peers/nonreader.lua")
    local pid = S.spawn(("%s lua5.4 %s %d %s 32 262144 30"):format(H.lua_env(), script, s.port,
      require("bt.torrent").load(torrent).info_hash_hex), tmp .. "/nonreader.log", true)   -- ours: under ASan too
    local t0 = s.core:now()
    s:run(function() return why ~= nil or s.core:now() - t0 > 20 end)
    local secs = s.core:now() - t0
    S.kill(pid)
    s:close()
    local log = S.read_or_empty(tmp .. "/nonreader.log")
    H.rmtree(tmp)
    assert.truthy(log:find("requested 400", 1, true), "the peer never got to ask: " .. log)
    assert.are.equal("does not read what we send", why)
    assert.is_true(secs < 12, ("dropped after %.1f s"):format(secs))
    -- 400 blocks asked (6.25 MiB); the kernel takes ~4 MiB on loopback before our own
    -- buffer stops draining: counted at send() that was "uploaded". Acknowledged: what
    -- its 4 KiB receive buffer and the windows let through.
    assert.is_true(uploaded_then < 1024 * 1024, ("counted %d bytes as uploaded"):format(uploaded_then))
  end)
end)

describe("slow readers that hold every upload slot", function()
  -- VmRSS of this process (the seed runs in it), bytes
  local function rss()
    local f = io.open("/proc/self/status")
    local kb = f and f:read("a"):match("VmRSS:%s*(%d+) kB")
    if f then f:close() end
    return (tonumber(kb) or 0) * 1024
  end

  it("cost a bounded amount each, and a real leecher is still served", function()
    local N = 6   -- more than the 5 upload slots (4 regular + 1 optimistic)
    local tmp, torrent, data = S.fixture("p.bin", 8 * 1024 * 1024, 9, 18)   -- 32 pieces of 256 KiB
    local session = require "bt.session"
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50 }   -- default send_timeout: 60 s
    local t = s:add(torrent, { dir = tmp .. "/seed", trackers = false, seed = true })
    local pids = { after = { function() s:close() end } }
    S.guard(tmp, pids, function()
      local before = rss()
      local script = H.q(H.root .. "/spec/peers/nonreader.lua")
      local hash = require("bt.torrent").load(torrent).info_hash_hex
      for i = 1, N do
        pids[i] = S.spawn(("%s lua5.4 %s %d %s 32 262144 40"):format(H.lua_env(), script, s.port, hash),
          tmp .. "/nonreader" .. i .. ".log", true)
      end
      local function asked()
        local n = 0
        for i = 1, N do
          if S.read_or_empty(tmp .. "/nonreader" .. i .. ".log"):find("requested 400", 1, true) then n = n + 1 end
        end
        return n
      end
      local t0 = s.core:now()
      s:run(function() return asked() >= 5 or s.core:now() - t0 > 15 end)
      assert.is_true(asked() >= 5, "the slow readers never got their slots")
      local h = S.start_btlua(tmp, ("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers -q")
        :format(H.q(torrent), H.q(tmp .. "/out"), s.port), 40)
      pids.leecher = h.pid
      t0 = s.core:now()
      s:run(function() return S.rc_of(h) ~= nil or s.core:now() - t0 > 35 end)
      local secs = s.core:now() - t0
      assert.are.equal(0, S.rc_of(h), "leecher: " .. S.read_or_empty(h.log))
      assert.are.equal(S.sha256(data), S.sha256(tmp .. "/out/p.bin"))
      -- each holds at most BT_PEER_MAX_WBUF (4 MiB) of our output plus its read buffer;
      -- the rest waits in the kernel, not in us
      local grown = rss() - before
      assert.is_true(grown < N * 5 * 1024 * 1024, ("RSS grew %.1f MiB"):format(grown / 2 ^ 20))
      assert.is_true(t.npeers >= N, "the slow readers were dropped: this test needs them held")
      print(("\nleecher done in %.1f s beside %d slow readers; seed RSS +%.1f MiB"):format(secs, N, grown / 2 ^ 20))
    end)
  end)
end)
