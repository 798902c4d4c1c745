-- UDP trackers (BEP 15 + BEP 41's URL data), scrape, and BEP 12 tiers in the session
-- (csrc/codec/udp_tracker.c, csrc/engine/tracker.c, lua/bt/session.lua).
local bt = require "bt"
local socket = require "socket"
local H = require "helpers"
local S = require "swarm_helpers"
local T = require "spec.tracker_helpers"

local IH = string.rep("\51", 20)
local TID = 0x0badcafe

local function params(url, extra)
  local p = { url = url, info_hash = IH, peer_id = bt.peer_id(), port = 6881, left = 1000,
              connect_timeout = 0.25 }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

describe("bt.tracker.udp_parse: every reply checked for length and action first", function()
  local function hdr(action, tid) return string.pack(">I4I4", action, tid or TID) end

  it("a connect reply gives the connection id", function()
    local r = assert(bt.tracker.udp_parse(hdr(0) .. "\1\2\3\4\5\6\7\8", "connect", TID))
    assert.are.equal("\1\2\3\4\5\6\7\8", r.connection_id)
  end)

  it("an announce reply: interval, leechers, seeders, 6-byte peers (18 over IPv6)", function()
    local body = hdr(1) .. string.pack(">I4I4I4", 1800, 3, 4) .. "\127\0\0\1\26\225" .. "\10\0\0\2\0\80"
    local r = assert(bt.tracker.udp_parse(body, "announce", TID))
    assert.are.same({ interval = 1800, incomplete = 3, complete = 4, peers_dropped = 0,
      peers = { { ip = "127.0.0.1", port = 6881 }, { ip = "10.0.0.2", port = 80 } } }, r)
    local six = hdr(1) .. string.pack(">I4I4I4", 60, 0, 1) .. string.rep("\0", 15) .. "\1\0\80"
    r = assert(bt.tracker.udp_parse(six, "announce", TID, 6))
    assert.are.same({ { ip = "::1", port = 80 } }, r.peers)
  end)

  it("trailing bytes are ignored: a partial peer, bytes past a scrape or connect reply", function()
    local r = assert(bt.tracker.udp_parse(hdr(1) .. string.pack(">I4I4I4", 5, 0, 0) .. "\1\2\3\4\0\9xyz",
      "announce", TID))
    assert.are.same({ { ip = "1.2.3.4", port = 9 } }, r.peers)
    r = assert(bt.tracker.udp_parse(hdr(2) .. string.pack(">I4I4I4", 5, 7, 6) .. "junk", "scrape", TID))
    assert.are.same({ complete = 5, downloaded = 7, incomplete = 6, peers_dropped = 0, peers = {} }, r)
    r = assert(bt.tracker.udp_parse(hdr(0) .. "12345678" .. "more", "connect", TID))
    assert.are.equal("12345678", r.connection_id)
  end)

  it("short replies are errors with their length", function()
    local cases = {
      { "", "announce", "^bad reply: 0 bytes, shorter than any UDP tracker reply %(8%)$" },
      { hdr(1):sub(1, 7), "announce", "^bad reply: 7 bytes, shorter than any" },
      { hdr(0) .. "1234567", "connect", "^bad reply: 15 bytes, shorter than a connect reply %(16%)$" },
      { hdr(1) .. "12345678901", "announce", "^bad reply: 19 bytes, shorter than an announce reply %(20%)$" },
      { hdr(2) .. "1234", "scrape", "^bad reply: 12 bytes, shorter than a scrape reply %(20%)$" },
    }
    for _, c in ipairs(cases) do
      local r, msg = bt.tracker.udp_parse(c[1], c[2], TID)
      assert.is_nil(r, c[3])
      assert.matches(c[3], msg)
    end
  end)

  it("a reply of the wrong action is an error; of another transaction, not ours", function()
    local r, msg = bt.tracker.udp_parse(hdr(2) .. string.rep("\0", 12), "announce", TID)
    assert.is_nil(r)
    assert.are.equal("bad reply: action 2 (scrape) to an announce request", msg)
    r, msg = bt.tracker.udp_parse(hdr(7) .. string.rep("\0", 12), "connect", TID)
    assert.is_nil(r)
    assert.matches("action 7 %(unknown%)", msg)
    assert.is_false(bt.tracker.udp_parse(hdr(1, TID + 1) .. string.rep("\0", 12), "announce", TID))
    assert.is_false(bt.tracker.udp_parse(hdr(1, TID + 1), "announce", TID))   -- even when short
  end)

  it("an error reply is a failure reason, cut at a NUL and at 1024 bytes", function()
    local r = assert(bt.tracker.udp_parse(hdr(3) .. "go away\0junk", "announce", TID))
    assert.are.equal("go away", r.failure_reason)
    r = assert(bt.tracker.udp_parse(hdr(3) .. string.rep("x", 5000), "connect", TID))
    assert.are.equal(1024, #r.failure_reason)
    r = assert(bt.tracker.udp_parse(hdr(3), "scrape", TID))
    assert.are.equal("", r.failure_reason)
  end)
end)

describe("UDP announces against a fake tracker", function()
  local port, pid, log
  lazy_setup(function()
    port = T.free_port()
    log = os.tmpname()
    pid = T.spawn("exec lua5.4 spec/fake_udp_tracker.lua " .. port .. " 120", log)
    -- UDP has no listen to wait for: ask until it answers
    local deadline = socket.gettime() + 5
    repeat
      local r = bt.tracker.announce(params(("udp://127.0.0.1:%d/ok"):format(port), { connect_timeout = 0.1 }), 0.3)
    until r or socket.gettime() > deadline
  end)
  lazy_teardown(function()
    T.kill(pid)
    os.remove(log)
  end)

  local function url(path) return ("udp://127.0.0.1:%d%s"):format(port, path) end
  local function ann(path, timeout, extra) return bt.tracker.announce(params(url(path), extra), timeout or 3) end

  it("sends every field in BEP 15's layout and the path as BEP 41 URL data", function()
    local r = assert(ann("/ok", 3, { event = "started", numwant = 50, left = 123456, port = 40123 }))
    assert.are.equal(1002, r.interval)        -- BEP 15's "started" is 2
    assert.are.equal(50, r.incomplete)        -- num_want echoed
    assert.are.equal(123456, r.complete)      -- left echoed
    assert.are.same({ { ip = "127.0.0.1", port = 40123 }, { ip = "10.0.0.2", port = 80 } }, r.peers)
    assert.are.equal(1001, assert(ann("/ok", 3, { event = "completed" })).interval)
    assert.are.equal(1003, assert(ann("/ok", 3, { event = "stopped" })).interval)
    assert.are.equal(1000, assert(ann("/ok", 3)).interval)
    -- a path with a query, longer than one option (255 bytes): several options, joined
    local long = "/ok?passkey=" .. string.rep("k", 400)
    assert(ann(long))
    r = assert(ann("/count"))
    assert.are.equal(#long, r.complete)
  end)

  it("trailing bytes after the peers are ignored", function()
    local r = assert(ann("/long"))
    assert.are.equal(2, #r.peers)
  end)

  it("over IPv6 (udp://[::1]:port): the reply's peers are 18 bytes each (BEP 15)", function()
    local sk = socket.udp6 and socket.udp6()
    if not (sk and sk:setsockname("::1", 0)) then
      pending("::1 cannot be bound here")
      return
    end
    sk:close()
    local r = assert(bt.tracker.announce(params(("udp://[::1]:%d/ok"):format(port), { port = 40124 }), 3))
    assert.are.same({ { ip = "::1", port = 40124 }, { ip = "2001:db8::2", port = 80 } }, r.peers)
  end)

  it("a short reply and a reply of the wrong action fail with the reason", function()
    local r, msg = ann("/short")
    assert.is_nil(r)
    assert.are.equal("bad reply: 12 bytes, shorter than an announce reply (20)", msg)
    r, msg = ann("/wrongaction")
    assert.is_nil(r)
    assert.are.equal("bad reply: action 2 (scrape) to an announce request", msg)
  end)

  it("a reply for another transaction is ignored: the right one is still taken", function()
    local r = assert(ann("/wrongtid"))
    assert.are.equal(1000, r.interval)
    local t0 = socket.gettime()
    local none, msg = ann("/wrongtid_only", 0.8)
    assert.is_nil(none)
    assert.matches("^timeout after 0.8 s", msg)
    assert.is_true(socket.gettime() - t0 < 2)
  end)

  it("an error reply is surfaced as failure_reason, like HTTP's", function()
    local r = assert(ann("/error"))
    assert.are.equal("go away", r.failure_reason)
    assert.are.same({}, r.peers)
  end)

  it("a reply after the timeout is not taken; the next announce is not confused by it", function()
    local r, msg = ann("/late", 1)
    assert.is_nil(r)
    assert.matches("^timeout after 1 s", msg)
    socket.sleep(0.7)   -- the late reply arrives now, at a closed socket
    r = assert(ann("/ok"))
    assert.are.equal(1000, r.interval)
  end)

  it("retransmits on the doubling schedule from the first timeout, bounded by the deadline", function()
    local before = assert(ann("/count")).interval
    local t0 = socket.gettime()
    -- a connect, then the announce at 0, 0.2, 0.6 and 1.4 s
    local r, msg = ann("/silent", 1.7, { connect_timeout = 0.2 })
    local dt = socket.gettime() - t0
    assert.is_nil(r)
    assert.matches("^timeout after 1.7 s %(5 packets", msg)
    assert.is_true(dt >= 1.65 and dt < 2.5, dt)
    assert.are.equal(before + 4, assert(ann("/count")).interval)
  end)

  it("scrape over UDP", function()
    local r = assert(bt.tracker.scrape(params(url("/ok")), 3))
    assert.are.equal(5, r.complete)
    assert.are.equal(7, r.downloaded)
    assert.are.equal(6, r.incomplete)
  end)

  -- Two announces from one session, the second `gap` s after the first answer: the
  -- connects the fake tracker saw for them (its /count probe itself makes one more).
  local function two_announces(opts, gap)
    local session = require "bt.session"
    local s = session.new(opts)
    local connects0 = assert(ann("/count")).incomplete
    local got = {}
    local function go()
      assert(s.core:announce({ url = url("/ok"), info_hash = IH, connect_timeout = 0.25, timeout = 3 },
        function(res, err) got[#got + 1] = res or err end))
    end
    go()
    local t0, again_at = s.core:now(), nil
    s:run(function()
      local now = s.core:now()
      if #got == 1 and not again_at then again_at = now + gap end
      if again_at and now >= again_at and #got == 1 and not got.again then got.again = true; go() end
      return #got >= 2 or now - t0 > 5
    end)
    s:close()
    assert.are.equal(2, #got)
    assert.is_table(got[1])
    assert.is_table(got[2])
    return assert(ann("/count")).incomplete - connects0 - 1
  end

  it("one session reuses its connection id (used for at most a minute)", function()
    assert.are.equal(1, two_announces({ port = 0, bind = "127.0.0.1", tick_ms = 20 }, 0))
  end)

  it("a connection id older than udp_conn_ttl is not used: a new connect first", function()
    -- 0.5 s after the first answer: past the 0.3 s lifetime
    assert.are.equal(2, two_announces({ port = 0, bind = "127.0.0.1", tick_ms = 20, udp_conn_ttl = 0.3 }, 0.5))
    local session = require "bt.session"
    assert.has_error(function() session.new{ port = -1, udp_conn_ttl = 61 } end)
    assert.has_error(function() session.new{ port = -1, udp_conn_ttl = 0 } end)
  end)

  it("bad udp:// URLs and a port nothing listens on", function()
    for _, u in ipairs({ "udp://127.0.0.1/ann", "udp://127.0.0.1:0/ann", "udp://127.0.0.1:99999",
                         "udp://:80/", "udp://[::1/a", "udp://h:1/" .. string.rep("a", 1100), "udp://a b:1/" }) do
      local r, msg = bt.tracker.announce(params(u), 1)
      assert.is_nil(r, u)
      assert.matches("^invalid UDP tracker URL", msg)
    end
    local r, msg = bt.tracker.announce(params(("udp://127.0.0.1:%d/announce"):format(T.free_port())), 2)
    assert.is_nil(r)
    assert.are.equal("connection refused (UDP port unreachable)", msg)
    r, msg = bt.tracker.announce(params("udp://name.invalid:6969/announce"), 3)
    assert.is_nil(r)
    assert.matches("^cannot resolve host: name.invalid", msg)
    r = assert(bt.tracker.announce(params(("udp://localhost:%d/ok"):format(port)), 3))   -- a name, resolved
    assert.are.equal(1000, r.interval)
  end)
end)

describe("HTTP scrape", function()
  it("the /announce -> /scrape rule", function()
    local r, msg = bt.tracker.scrape(params("http://127.0.0.1:1/tracker/ann"), 1)
    assert.is_nil(r)
    assert.matches("^no scrape URL", msg)
  end)
end)

describe("UDP and scrape against opentracker (-P)", function()
  local ot
  lazy_setup(function() ot = T.start_opentracker({ IH }) end)
  lazy_teardown(function() T.stop(ot) end)

  it("announce, re-announce, scrape over UDP; scrape over HTTP agrees", function()
    local u = ("udp://127.0.0.1:%d/announce"):format(ot.port)
    local a, b = bt.peer_id(), bt.peer_id()
    local r1 = assert(bt.tracker.announce(params(u, { peer_id = a, port = 41001, event = "started" }), 5))
    assert.is_nil(r1.failure_reason)
    assert.is_true(r1.interval > 0)
    local r2 = assert(bt.tracker.announce(params(u, { peer_id = b, port = 41002, left = 0, event = "started" }), 5))
    local seen = {}
    for _, p in ipairs(r2.peers) do seen[p.ip .. ":" .. p.port] = true end
    assert.is_true(seen["127.0.0.1:41001"], "b sees a")
    assert.are.equal(1, r2.complete)
    assert.are.equal(1, r2.incomplete)
    local r3 = assert(bt.tracker.announce(params(u, { peer_id = a, port = 41001 }), 5))   -- re-announce
    seen = {}
    for _, p in ipairs(r3.peers) do seen[p.ip .. ":" .. p.port] = true end
    assert.is_true(seen["127.0.0.1:41002"], "a sees b")
    assert(bt.tracker.announce(params(u, { peer_id = a, port = 41001, left = 0, event = "completed" }), 5))
    local s1 = assert(bt.tracker.scrape(params(u), 5))
    assert.are.equal(2, s1.complete)
    assert.are.equal(0, s1.incomplete)
    assert.are.equal(1, s1.downloaded)
    local s2 = assert(bt.tracker.scrape(params(ot.url), 5))
    assert.are.same({ s1.complete, s1.incomplete, s1.downloaded }, { s2.complete, s2.incomplete, s2.downloaded })
  end)

  it("bt-lua info --scrape prints seeders, leechers and completed per tracker", function()
    local dir = H.tmpdir()
    local data = dir .. "/x.bin"
    H.writefile(data, S.bytes(1000, 3))
    local m = bt.torrent.load(S.mktorrent(data, dir .. "/x.torrent", 15, ot.url))
    local ot2 = T.start_opentracker({ m.info_hash })
    local file = dir .. "/y.torrent"
    H.writefile(file, bt.torrent.create{ path = data, piece_length = 32768,
      announce_list = { { ("udp://127.0.0.1:%d/announce"):format(ot2.port) }, { ot2.url },
                        { "http://127.0.0.1:1/path" } } })
    assert(bt.tracker.announce(params(ot2.url, { info_hash = m.info_hash, left = 0, event = "started" }), 5))
    local out, code = S.btlua("info --scrape " .. H.q(file))
    T.stop(ot2)
    H.rmtree(dir)
    assert.are.equal(0, code, out)
    assert.matches(("tier 1: udp://127.0.0.1:%d/announce: 1 seeders, 0 leechers, 0 completed"):format(ot2.port), out,
      1, true)
    assert.matches(("tier 2: %s: 1 seeders, 0 leechers, 0 completed"):format(ot2.url), out, 1, true)
    assert.matches("tier 3: http://127.0.0.1:1/path: no scrape URL", out, 1, true)
  end)
end)

describe("BEP 12 tiers in the session", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() H.rmtree(tmp) end)

  it("the first tier dead, the second opentracker over UDP: the download completes", function()
    os.execute("mkdir -p " .. H.q(tmp .. "/seed"))
    local data = tmp .. "/seed/t.bin"
    H.writefile(data, S.bytes(300000, 9))
    local otport = T.free_port()
    local dead_udp, dead_http = T.free_port(), T.free_port()
    local tiers = { { ("udp://127.0.0.1:%d/announce"):format(dead_udp),
                      ("http://127.0.0.1:%d/announce"):format(dead_http) },
                    { ("udp://127.0.0.1:%d/announce"):format(otport) } }
    local torrent = tmp .. "/t.torrent"
    H.writefile(torrent, bt.torrent.create{ path = data, piece_length = 32768, announce_list = tiers })
    local ot = T.start_opentracker({ bt.torrent.load(torrent).info_hash }, otport)
    local pids = { after = { function() T.stop(ot) end } }
    S.guard(nil, pids, function()
      pids[#pids + 1] = S.bt_seed_tracked(torrent, tmp .. "/seed", 40)
      local events = {}
      local _, st, s = S.download(torrent, { dir = tmp .. "/out", timeout = 30, keep = true,
        on = { tracker = function(_, info) events[#events + 1] = info end } })
      assert.is_true(st.complete, "download did not complete")
      assert.are.equal(S.sha256(data), S.sha256(tmp .. "/out/t.bin"))
      local fails, answered = {}, nil
      for _, e in ipairs(events) do
        if e.ok and not answered then answered = e elseif not e.ok then fails[e.url] = e.tier end
      end
      assert.are.equal(1, fails[tiers[1][1]])
      assert.are.equal(1, fails[tiers[1][2]])
      assert.are.equal(2, answered.tier)
      assert.are.equal(tiers[2][1], answered.url)
      assert.are.equal("started", answered.event)
      local list = s:trackers(s:torrents_list()[1])
      assert.are.same({ 1, 1, 2 }, { list[1].tier, list[2].tier, list[3].tier })
      assert.is_true(list[3].ok)
      assert.is_true(list[3].answered)
      assert.is_nil(list[1].answered)
      s:close()
    end)
  end)

  it("a tracker that answers goes to the front of its tier; re-announce never before min interval", function()
    local session = require "bt.session"
    local f = T.start_fake()
    local dead = T.free_port()
    local data = tmp .. "/d.bin"
    H.writefile(data, S.bytes(1000, 1))
    local torrent = tmp .. "/d.torrent"
    local good = f.base .. "/fastmin"
    H.writefile(torrent, bt.torrent.create{ path = data, piece_length = 32768,
      announce_list = { { ("http://127.0.0.1:%d/announce"):format(dead), good } } })
    local old = session.ANNOUNCE_MIN
    session.ANNOUNCE_MIN = 0.5   -- the tracker's min interval (2 s) must rule, not our floor
    local ok, err = pcall(function()
      local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
      local at = {}
      s:on("tracker", function(_, info) if info.ok then at[#at + 1] = s.core:now() end end)
      local t = s:add(torrent, { dir = tmp .. "/o" })
      local t0 = s.core:now()
      s:run(function() return #at >= 3 or s.core:now() - t0 > 10 end)
      local list = s:trackers(t)
      s:close()   -- its "stopped" is one more answer, at once: an event, not a re-announce
      assert.is_true(#at >= 3)
      assert.are.equal(good, list[1].url)   -- moved to the front
      assert.is_true(list[1].ok)
      for i = 2, 3 do
        assert.is_true(at[i] - at[i - 1] >= 1.95, ("re-announce after %.2f s"):format(at[i] - at[i - 1]))
      end
    end)
    session.ANNOUNCE_MIN = old
    T.stop_fake(f)
    assert(ok, err)
  end)
end)
