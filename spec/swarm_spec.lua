-- Integration: real peers on 127.0.0.1 (aria2c, transmission, opentracker).
-- Payloads are a few MiB so the whole file stays well inside CI limits.
local H = require "helpers"
local S = require "swarm_helpers"
local T = require "tracker_helpers"
local bt = require "bt"

local function same(a, b)
  assert.is_truthy(S.sha256(a))
  assert.are.equal(S.sha256(a), S.sha256(b))
end

describe("download from an aria2c seed", function()
  local tmp, pid, port
  local torrent
  setup(function()
    tmp = H.tmpdir()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["payload.bin"] = 3 * 1024 * 1024 + 12345 }, 7)
    torrent = S.mktorrent(tmp .. "/seed/payload.bin", tmp .. "/p.torrent", 16)
    pid, port = S.aria2_seed(torrent, tmp .. "/seed")
  end)
  teardown(function()
    S.kill(pid)
    H.rmtree(tmp)
  end)

  it("the CLI with the default policy gets identical bytes and exits 0", function()
    local out, code = S.btlua(("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --timeout 20 --no-trackers "
      .. "--stats %s")
      :format(H.q(torrent), H.q(tmp .. "/cli"), port, H.q(tmp .. "/stats.json")))
    assert.are.equal(0, code, out)
    same(tmp .. "/seed/payload.bin", tmp .. "/cli/payload.bin")
    local stats = H.readfile(tmp .. "/stats.json")
    local last = stats:match("([^\n]+)\n$")
    local cjson = require "cjson"
    local o = cjson.decode(last)
    assert.are.equal(o.pieces, o.pieces_done)
    assert.are.equal(3 * 1024 * 1024 + 12345, o.have_bytes)
  end)

  for _, ex in ipairs{ "rarest_first", "sequential", "random", "endgame_tuned" } do
    it("examples/" .. ex .. ".lua downloads it", function()
      local dir = tmp .. "/ex-" .. ex
      local _, st = S.download(torrent, { dir = dir, policy = H.root .. "/examples/" .. ex .. ".lua",
        peers = { "127.0.0.1:" .. port }, trackers = false, timeout = 30 })
      assert.is_true(st.complete, tostring(st.error))
      same(tmp .. "/seed/payload.bin", dir .. "/payload.bin")
    end)
  end

  it("dials the seed over IPv6 loopback", function()
    local socket = require "socket"
    local probe = socket.tcp6 and socket.tcp6()
    local v6 = probe and probe:bind("::1", 0)
    if probe then probe:close() end
    if not v6 then
      print("\nno IPv6 loopback here: skipped")
      return
    end
    local dir = tmp .. "/v6"
    local _, st = S.download(torrent, { dir = dir, peers = { "[::1]:" .. port }, trackers = false })
    assert.is_true(st.complete, tostring(st.error))
    same(tmp .. "/seed/payload.bin", dir .. "/payload.bin")
  end)

  it("a second run finds the data on disk, hash-checks it, and is complete at once", function()
    local dir = tmp .. "/again"
    local _, st = S.download(torrent, { dir = dir, peers = { "127.0.0.1:" .. port }, trackers = false })
    assert.is_true(st.complete)
    local _, st2 = S.download(torrent, { dir = dir, peers = {}, trackers = false, timeout = 2 })
    assert.is_true(st2.complete)
    assert.are.equal(0, st2.downloaded)
    assert.are.equal(st2.pieces, st2.pieces_done)
  end)

  it("a corrupted piece on disk is found at start and fetched again", function()
    local dir = tmp .. "/fix"
    local _, st = S.download(torrent, { dir = dir, peers = { "127.0.0.1:" .. port }, trackers = false })
    assert.is_true(st.complete)
    local f = assert(io.open(dir .. "/payload.bin", "r+b"))
    f:seek("set", 70000)
    f:write("XXXXXXXX")
    f:close()
    local _, st2 = S.download(torrent, { dir = dir, peers = { "127.0.0.1:" .. port }, trackers = false })
    assert.is_true(st2.complete)
    assert.are.equal(65536, st2.downloaded)   -- exactly the one 64 KiB piece
    same(tmp .. "/seed/payload.bin", dir .. "/payload.bin")
  end)
end)

describe("torrent layouts against aria2c", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() H.rmtree(tmp) end)

  local function roundtrip(files, log2, target, transmission)
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", files, 3)
    local torrent = tmp .. "/t.torrent"
    if transmission then   -- mktorrent's smallest piece is 32 KiB
      local o, ok = H.sh(("transmission-create -s %d -o %s %s"):format(2 ^ log2 // 1024, H.q(torrent),
        H.q(tmp .. "/seed/" .. target)))
      assert(ok, o)
    else
      S.mktorrent(tmp .. "/seed/" .. target, torrent, log2)
    end
    local pid, port = S.aria2_seed(torrent, tmp .. "/seed")
    local ok, err = pcall(function()
      local _, st = S.download(torrent, { dir = tmp .. "/out", peers = { "127.0.0.1:" .. port },
        trackers = false, timeout = 30 })
      assert.is_true(st.complete, tostring(st.error))
      for name in pairs(files) do same(tmp .. "/seed/" .. name, tmp .. "/out/" .. name) end
    end)
    S.kill(pid)
    assert(ok, err)
  end

  it("multi-file with nested folders, a zero-length file and a short last piece", function()
    roundtrip({ ["dir/a.bin"] = 100000, ["dir/sub/b.bin"] = 333333, ["dir/sub/deeper/c.txt"] = "hello\n",
      ["dir/empty.txt"] = "", ["dir/z.bin"] = 65536 * 3 + 1 }, 15, "dir")
  end)

  it("16 KiB pieces (one block each)", function()
    roundtrip({ ["small.bin"] = 16384 * 50 + 100 }, 14, "small.bin", true)
  end)

  it("4 MiB pieces", function()
    roundtrip({ ["big.bin"] = 4 * 1024 * 1024 * 2 + 5000 }, 22, "big.bin")
  end)
end)

describe("trackers", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() H.rmtree(tmp) end)

  it("finds an aria2c seed through opentracker and announces started/completed/stopped", function()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["t.bin"] = 2 * 1024 * 1024 + 7 }, 11)
    -- the tracker port must be in the torrent: pick it first
    local tport = S.port()
    local torrent = S.mktorrent(tmp .. "/seed/t.bin", tmp .. "/t.torrent", 16,
      ("http://127.0.0.1:%d/announce"):format(tport))
    -- opentracker takes the port we chose (T.start_opentracker waits until it serves the hash)
    local tracker = T.start_opentracker({ bt.torrent.load(torrent).info_hash }, tport)
    local ok, err = pcall(function()
      local apid = S.aria2_seed(torrent, tmp .. "/seed")
      local events = {}
      local ok2, err2 = pcall(function()
        local _, st = S.download(torrent, { dir = tmp .. "/out", peers = {}, timeout = 40,
          on = { tracker = function(_, info) events[#events + 1] = info end } })
        assert.is_true(st.complete, tostring(st.error))
      end)
      S.kill(apid)
      assert(ok2, err2)
      same(tmp .. "/seed/t.bin", tmp .. "/out/t.bin")
      local seen = {}
      for _, e in ipairs(events) do if e.ok then seen[e.event or "none"] = true end end
      assert.is_true(seen.started, "no successful 'started' announce")
      assert.is_true(seen.completed, "no successful 'completed' announce")
    end)
    T.stop(tracker)
    assert(ok, err)
  end)

  it("a dead tracker is retried with back-off and never stops the download", function()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["d.bin"] = 1024 * 1024 }, 5)
    local dead = S.port()   -- nothing listens there
    local torrent = S.mktorrent(tmp .. "/seed/d.bin", tmp .. "/d.torrent", 15,
      ("http://127.0.0.1:%d/announce"):format(dead))
    local pid, port = S.aria2_seed(torrent, tmp .. "/seed")
    local events = {}
    local ok, err = pcall(function()
      local _, st = S.download(torrent, { dir = tmp .. "/out", peers = { "127.0.0.1:" .. port },
        timeout = 30, on = { tracker = function(_, info) events[#events + 1] = info end } })
      assert.is_true(st.complete, tostring(st.error))
    end)
    S.kill(pid)
    assert(ok, err)
    assert.is_true(#events >= 1)
    assert.is_false(events[1].ok)
    assert.is_truthy(events[1].retry_in or events[1].error)
  end)
end)

describe("misbehaving peers", function()
  local tmp, torrent, data, good, gport
  setup(function()
    tmp = H.tmpdir()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["f.bin"] = 4 * 1024 * 1024 + 5555 }, 9)
    data = tmp .. "/seed/f.bin"
    torrent = S.mktorrent(data, tmp .. "/f.torrent", 15)   -- 32 KiB pieces: 129, more than one pipeline
    good, gport = S.lua_seed("good", torrent, data)
  end)
  teardown(function()
    S.kill(good)
    H.rmtree(tmp)
  end)

  -- the bad seed is another host (bans are by host; the good seed is on 127.0.0.1)
  local function with_bad(mode, check, policy)
    local bad, bport = S.lua_seed(mode, torrent, data, nil, "127.0.0.2")
    local reasons = {}
    local ok, err = pcall(function()
      local t, st = S.download(torrent, { dir = tmp .. "/" .. mode, keep = true, timeout = 40, policy = policy,
        peers = { "127.0.0.2:" .. bport, "127.0.0.1:" .. gport }, trackers = false,
        on = { peer_disconnect = function(_, addr, why) reasons[#reasons + 1] = tostring(addr) .. " " .. why end } })
      assert.is_true(st.complete, tostring(st.error))
      assert.are.equal(S.sha256(data), S.sha256(tmp .. "/" .. mode .. "/f.bin"))
      check(t, st, "127.0.0.2:" .. bport, table.concat(reasons, "\n"))
    end)
    S.kill(bad)
    assert(ok, err)
  end

  it("corrupt blocks: pieces refused, fetched again, the bad peer banned", function()
    with_bad("corrupt", function(t, st, addr, reasons)
      assert.is_true(st.failed_bytes > 0)
      assert.is_true(t:banned(addr), reasons)
      assert.is_true(t:banned((addr:gsub(":%d+$", ":1"))), "a ban is for the host, any port")
      assert.matches(addr .. " banned", reasons)
      assert.is_false(t:banned("127.0.0.1:" .. gport))
    end)
  end)

  it("unchoke then stall: requests time out and move to the good peer", function()
    -- no endgame: only the timeout hook can get the stalled blocks back
    local default = require "bt.policy.default"
    local verdicts = {}
    local pol = {
      endgame = function() return false end,
      timeout = function(t, peer, req, stalled)
        local v = default.timeout(t, peer, req, stalled)
        if v ~= "keep" then verdicts[#verdicts + 1] = peer.address .. " " .. v end
        return v
      end,
    }
    with_bad("stall", function(_, st, addr)
      assert.is_true(st.seconds < 30)
      assert.is_true(#verdicts >= 1)
      assert.matches(addr .. " snub", verdicts[1])
    end, pol)
  end)

  it("an oversized message drops that peer, the download goes on", function()
    with_bad("oversized", function(_, _, addr, reasons)
      assert.matches(addr .. " [^\n]*limit", reasons)
    end)
  end)

  it("a peer that never unchokes and goes silent is dropped as idle", function()
    local bad, bport = S.lua_seed("choker", torrent, data)
    local reasons = {}
    local ok, err = pcall(function()
      local _, st = S.download(torrent, { dir = tmp .. "/idle", timeout = 4, idle_timeout = 1,
        peers = { "127.0.0.1:" .. bport }, trackers = false,
        on = { peer_disconnect = function(_, _, why) reasons[#reasons + 1] = why end } })
      assert.is_false(st.complete)
      assert.are.equal(0, st.downloaded)
      assert.matches("idle timeout", table.concat(reasons, ";"))
    end)
    S.kill(bad)
    assert(ok, err)
  end)

  it("keep-alives go out when we have nothing else to say", function()
    local bad, bport = S.lua_seed("kaclose", torrent, data)
    local reasons = {}
    local ok, err = pcall(function()
      S.download(torrent, { dir = tmp .. "/ka", timeout = 3, keepalive = 0.5,
        peers = { "127.0.0.1:" .. bport }, trackers = false,
        on = { peer_disconnect = function(_, _, why) reasons[#reasons + 1] = why end } })
      assert.matches("connection closed by peer", table.concat(reasons, ";"))
    end)
    S.kill(bad)
    assert(ok, err)
  end)

  it("a peer answering with random junk is dropped or banned; the download goes on", function()
    for _ = 1, 3 do   -- each round a fresh junk peer with other random choices
      with_bad("junk", function(_, st)
        assert.is_true(st.complete)
      end)
      os.execute("rm -rf " .. H.q(tmp .. "/junk"))
    end
  end)

  it("a wrong-length bitfield drops that peer, the download goes on", function()
    with_bad("badfield", function(_, _, addr, reasons)
      assert.matches(addr .. " [^\n]*bitfield", reasons)
    end)
  end)
end)

describe("transmission as a seed", function()
  it("is dialed (it ignores 127.x peers from trackers) and serves after its first unchoke", function()
    local tmp, torrent, data = S.fixture("tr.bin", 1536 * 1024 + 77, 13, 16)
    local port = S.port()
    local pids = { S.spawn(("transmission-cli -g %s -w %s -p %d -et -M -v %s"):format(H.q(tmp .. "/conf"),
      H.q(tmp .. "/seed"), port, H.q(torrent)), tmp .. "/tr.log") }
    S.guard(tmp, pids, function()
      assert.is_true(S.wait_port(port, 15))
      local _, st = S.download(torrent, { dir = tmp .. "/out", peers = { "127.0.0.1:" .. port },
        trackers = false, timeout = 40 })
      assert.is_true(st.complete, tostring(st.error))
      same(data, tmp .. "/out/tr.bin")
    end)
  end)
end)

describe("endgame with a slow seed", function()
  it("the default policy is not held up by a 20 KiB/s aria2c", function()
    local tmp, torrent, data = S.fixture("e.bin", 16 * 1024 * 1024 + 4321, 17, 16)
    local pids, fport, sport = {}, nil, nil
    S.guard(tmp, pids, function()
      pids[1], fport = S.aria2_seed(torrent, tmp .. "/seed")
      pids[2], sport = S.aria2_seed(torrent, tmp .. "/seed", { limit = "20K" })
      local _, alone = S.download(torrent, { dir = tmp .. "/alone", peers = { "127.0.0.1:" .. fport },
        trackers = false, timeout = 60 })
      assert.is_true(alone.complete)
      local _, both = S.download(torrent, { dir = tmp .. "/both",
        peers = { "127.0.0.1:" .. sport, "127.0.0.1:" .. fport }, trackers = false, timeout = 60 })
      assert.is_true(both.complete)
      print(("\nendgame: fast seed alone %.2f s; with a 20 KiB/s seed %.2f s; duplicate bytes %d")
        :format(alone.seconds, both.seconds, both.dup_bytes))
      same(data, tmp .. "/both/e.bin")
      -- half a second of slack: both runs include connection set-up at this small size
      assert.is_true(both.seconds < 2 * alone.seconds + 0.5,
        ("%.2f s with the slow seed vs %.2f s alone"):format(both.seconds, alone.seconds))
    end)
  end)
end)

describe("uploading", function()
  it("bt-lua seeds to bt-lua: interested peers are unchoked and served from disk", function()
    local tmp, torrent, data = S.fixture("u.bin", 1024 * 1024 + 333, 23, 15)
    local pids, port = {}, nil
    S.guard(tmp, pids, function()
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed")
      local _, st = S.download(torrent, { dir = tmp .. "/out", peers = { "127.0.0.1:" .. port },
        trackers = false, timeout = 30 })
      assert.is_true(st.complete, tostring(st.error))
      same(data, tmp .. "/out/u.bin")
    end)
  end)
end)

describe("the peer's reqq", function()
  it("caps the pipeline: a peer that allows 4 requests never sees a fifth", function()
    local tmp, torrent, data = S.fixture("r.bin", 300 * 1024 + 1, 29, 15)
    local pid, port = S.lua_seed("reqq4", torrent, data)
    local reasons = {}
    S.guard(tmp, { pid }, function()
      local _, st = S.download(torrent, { dir = tmp .. "/out", peers = { "127.0.0.1:" .. port },
        trackers = false, timeout = 30,
        on = { peer_disconnect = function(_, _, why)
          if why ~= "both sides are seeds" then reasons[#reasons + 1] = why end
        end } })
      assert.is_true(st.complete, table.concat(reasons, "; "))
      assert.are.equal(0, #reasons, table.concat(reasons, "; "))
    end)
  end)
end)

describe("examples/library.lua", function()
  it("downloads with require 'bt' and exits 0", function()
    local tmp, torrent, data = S.fixture("l.bin", 512 * 1024 + 9, 31, 15)
    local pid, port = S.lua_seed("good", torrent, data)
    S.guard(tmp, { pid }, function()
      local out, ok = H.sh_bt(("%s timeout 60 lua5.4 %s %s %s 127.0.0.1:%d"):format(H.lua_env(),
        H.q(H.root .. "/examples/library.lua"), H.q(torrent), H.q(tmp .. "/out"), port))
      assert.is_true(ok, out)
      assert.matches("complete: l.bin", out)
      same(data, tmp .. "/out/l.bin")
    end)
  end)
end)

describe("one session, several torrents", function()
  it("downloads two torrents from two seeds at once", function()
    local session = require "bt.session"
    local tmp = H.tmpdir()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["a.bin"] = 700 * 1024, ["b.bin"] = 900 * 1024 + 3 }, 37)
    local ta = S.mktorrent(tmp .. "/seed/a.bin", tmp .. "/a.torrent", 15)
    local tb = S.mktorrent(tmp .. "/seed/b.bin", tmp .. "/b.torrent", 16)
    local pa, porta = S.lua_seed("good", ta, tmp .. "/seed/a.bin")
    local pb, portb = S.lua_seed("good", tb, tmp .. "/seed/b.bin")
    S.guard(tmp, { pa, pb }, function()
      local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50 }
      local a = s:add(ta, { dir = tmp .. "/out", peers = { "127.0.0.1:" .. porta }, trackers = false })
      local b = s:add(tb, { dir = tmp .. "/out", peers = { "127.0.0.1:" .. portb },
        policy = H.root .. "/examples/sequential.lua", trackers = false })
      local done = 0
      s:on("complete", function() done = done + 1; if done == 2 then s:stop() end end)
      local t0 = s.core:now()
      s:run(function() return s.core:now() - t0 > 30 end)
      assert.is_true(a.complete)
      assert.is_true(b.complete)
      s:close()
      same(tmp .. "/seed/a.bin", tmp .. "/out/a.bin")
      same(tmp .. "/seed/b.bin", tmp .. "/out/b.bin")
    end)
  end)
end)

describe("a swarm through opentracker", function()
  it("a slow aria2c seed and three bt-lua leechers: everyone completes, leechers trade", function()
    local tport = S.port()
    local tmp, torrent, data = S.fixture("w.bin", 3 * 1024 * 1024 + 11, 41, 15,
      ("http://127.0.0.1:%d/announce"):format(tport))
    local tracker = T.start_opentracker({ bt.torrent.load(torrent).info_hash }, tport)
    local pids = { after = { function() T.stop(tracker) end } }
    S.guard(tmp, pids, function()
      -- 1 MiB/s: the seed alone would need 3 s per leecher; trading is faster
      pids[#pids + 1] = S.aria2_seed(torrent, tmp .. "/seed", { limit = "1M" })
      local leechers = {}
      for i = 1, 3 do
        local out = tmp .. "/l" .. i
        local p = io.popen(("lua5.4 %s run bt.policy.default %s -o %s --timeout 30 --tick-ms 50 -q "
          .. "--stats %s/stats%d.json 2>&1; echo \"__exit=$?\"")
          :format(H.q(H.root .. "/scripts/bt-lua"), H.q(torrent), H.q(out), tmp, i))
        leechers[i] = p
      end
      local uploaded = 0
      for i = 1, 3 do
        local o = leechers[i]:read("a")
        leechers[i]:close()
        assert.matches("__exit=0", o)
        same(data, tmp .. "/l" .. i .. "/w.bin")
        local stats = H.readfile(("%s/stats%d.json"):format(tmp, i))
        local last = require("cjson").decode(stats:match("([^\n]+)\n$"))
        uploaded = uploaded + (last.uploaded or 0)
      end
      assert.is_true(uploaded > 0, "the leechers never traded")
      print(("\nswarm: leechers uploaded %d bytes to each other"):format(uploaded))
    end)
  end)
end)
