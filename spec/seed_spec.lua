--- Clean shutdown on SIGINT/SIGTERM, seeding (bt-lua run --seed, bt-lua seed) and
-- rate limits, through the real command line against real peers (aria2c) on 127.0.0.1.
-- Every process is started in the background, known by PID, and killed by PID.
local H = require "helpers"
local S = require "swarm_helpers"
local socket = require "socket"

-- How long a spec waits for a process to finish before failing (and killing it).
local EXIT_WAIT = 20

local start_btlua, read_or_empty = S.start_btlua, S.read_or_empty

--- Wait (bounded) for the process to end; returns its exit code (nil: still running,
-- then killed), and its log.
local function wait_exit(h, seconds)
  local deadline = socket.gettime() + (seconds or EXIT_WAIT)
  while socket.gettime() < deadline do
    local rc = S.rc_of(h)
    if rc then return rc, H.readfile(h.log) end
    socket.sleep(0.05)
  end
  S.kill(h.pid)
  return nil, H.readfile(h.log)
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

describe("bt-lua run: SIGTERM / SIGINT", function()
  local dir, pids = nil, {}
  before_each(function() dir = H.tmpdir(); pids = {} end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(dir)
  end)

  for _, sig in ipairs{ "TERM", "INT" } do
    it("SIG" .. sig .. " mid-download: exit 0, resume data written, a restart trusts its pieces", function()
      local size = 3 * 1024 * 1024
      os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/out"))
      S.make_files(dir .. "/seed", { ["payload.bin"] = size }, 7)
      local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 16)
      -- 300 KiB/s: ~10 s for the whole payload, so the signal lands mid-download
      local apid, aport = S.aria2_seed(torrent, dir .. "/seed", { limit = "300K" })
      pids[#pids + 1] = apid
      local h = start_btlua(dir, ("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers"):format(
        H.q(torrent), H.q(dir .. "/out"), aport))
      pids[#pids + 1] = h.pid
      -- wait until some data arrived (bounded), then signal by PID
      local deadline = socket.gettime() + 10
      local rpath = dir .. "/out/.bt-lua/" .. S.info_hash_hex(torrent) .. ".resume"
      while socket.gettime() < deadline do
        socket.sleep(0.2)
        local f = io.open(rpath)   -- saved every few seconds once pieces arrive
        if f then f:close(); break end
      end
      socket.sleep(0.5)
      os.execute("kill -" .. sig .. " " .. h.pid)
      local t0 = socket.gettime()
      local rc, log = wait_exit(h, 10)
      assert.are.equal(0, rc, "log: " .. tostring(log))
      assert.truthy(socket.gettime() - t0 < 5, "shutdown took too long")
      assert.truthy(log:find("interrupted by SIG" .. sig, 1, true), log)
      local resume = require "bt.resume"
      local session = require "bt.session"
      local m = assert(session.metainfo(torrent))
      local r = resume.load(rpath, m, dir .. "/out")
      assert.is_nil(r.reason, r.reason)
      local saved = r.have:count()
      assert.truthy(saved > 0 and saved < m.num_pieces, "pieces saved: " .. saved)
      -- the restart trusts exactly those pieces (no hash check) and has them
      local s = session.new{ port = -1 }
      local t = s:add(torrent, { dir = dir .. "/out", trackers = false })
      local info = s:resume_info(t)
      assert.are.equal(saved, info.trusted)
      assert.is_nil(info.reason)
      assert.are.equal(saved, t:stats().pieces_done)
      s:close()
    end)
  end
end)

--- aria2c downloading `torrent` into dir (it exits once done: --seed-time=0). Returns pid, port.
local function aria2_leech(torrent, dir, log)
  local port = S.port()
  local pid = S.spawn(("aria2c --seed-time=0 --enable-dht=false --bt-enable-lpd=false " ..
    "--enable-peer-exchange=false --listen-port=%d --dht-listen-port=%d -d %s %s"):format(
    port, S.port(), H.q(dir), H.q(torrent)), log)
  assert(S.wait_port(port, 15), "aria2c did not listen on " .. port)
  return pid, port
end

--- Wait (bounded) until path has `size` bytes and pid has exited.
local function wait_done(pid, path, size, seconds)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    if file_size(path) == size and not S.alive(pid) then return true end
    socket.sleep(0.2)
  end
  return false
end

describe("bt-lua seed", function()
  local dir, pids = nil, {}
  local size = 3 * 1024 * 1024 + 12345   -- a short last piece
  local torrent
  before_each(function()
    dir, torrent = S.fixture("payload.bin", size, 11, 16)
    pids = {}
    os.execute("mkdir -p " .. H.q(dir .. "/out"))
  end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(dir)
  end)

  it("aria2c downloads from it (sha256 equal); --seed-time ends it with exit 0", function()
    local apid, aport = aria2_leech(torrent, dir .. "/out", dir .. "/aria2.log")
    pids[#pids + 1] = apid
    local t0 = socket.gettime()
    local h = start_btlua(dir, ("seed %s --dir %s --peer 127.0.0.1:%d --no-trackers --bind 127.0.0.1 "
      .. "--seed-time 8"):format(
      H.q(torrent), H.q(dir .. "/seed"), aport))
    pids[#pids + 1] = h.pid
    assert.truthy(wait_done(apid, dir .. "/out/payload.bin", size, 20), "aria2c did not finish")
    assert.are.equal(S.sha256(dir .. "/seed/payload.bin"), S.sha256(dir .. "/out/payload.bin"))
    local rc, log = wait_exit(h, 15)
    local took = socket.gettime() - t0
    assert.are.equal(0, rc, "log: " .. tostring(log))
    assert.truthy(log:find("done seeding (time)", 1, true), log)
    assert.truthy(took >= 7.5 and took < 15, "seeded for " .. took .. " s")
  end)

  it("--ratio 1 ends it once a full copy is uploaded", function()
    local apid, aport = aria2_leech(torrent, dir .. "/out", dir .. "/aria2.log")
    pids[#pids + 1] = apid
    local h = start_btlua(dir, ("seed %s --dir %s --peer 127.0.0.1:%d --no-trackers --bind 127.0.0.1 "
      .. "--ratio 1 --seed-time 60"):format(
      H.q(torrent), H.q(dir .. "/seed"), aport))
    pids[#pids + 1] = h.pid
    local rc, log = wait_exit(h, 30)
    assert.are.equal(0, rc, "log: " .. tostring(log))
    assert.truthy(log:find("done seeding (ratio)", 1, true), log)
    assert.truthy(wait_done(apid, dir .. "/out/payload.bin", size, 10), "aria2c did not finish")
    assert.are.equal(S.sha256(dir .. "/seed/payload.bin"), S.sha256(dir .. "/out/payload.bin"))
  end)

  it("refuses incomplete data with a clear message and exit != 0, announcing nothing", function()
    -- flip one byte in the middle: that piece fails its hash check
    local f = assert(io.open(dir .. "/seed/payload.bin", "r+b"))
    f:seek("set", size // 2)
    local b = f:read(1)
    f:seek("set", size // 2)
    f:write(string.char((b:byte() + 1) % 256))
    f:close()
    local out, code = S.btlua(("seed %s --dir %s --seed-time 5"):format(H.q(torrent), H.q(dir .. "/seed")))
    assert.are_not.equal(0, code)
    assert.truthy(out:find("is incomplete: %d+ of %d+ pieces verified"), out)
    -- missing data altogether
    out, code = S.btlua(("seed %s --dir %s --seed-time 5"):format(H.q(torrent), H.q(dir .. "/out")))
    assert.are_not.equal(0, code)
    assert.truthy(out:find("incomplete: 0 of", 1, true), out)
  end)

  it("rejects a bad rate or ratio", function()
    local out, code = S.btlua(("seed %s --dir %s --max-up 12Q"):format(H.q(torrent), H.q(dir .. "/seed")))
    assert.are.equal(1, code)
    assert.truthy(out:find("--max-up must be a rate", 1, true), out)
    out, code = S.btlua(("seed %s --dir %s --ratio=-1"):format(H.q(torrent), H.q(dir .. "/seed")))
    assert.are.equal(1, code)
    assert.truthy(out:find("--ratio must be a number >= 0", 1, true), out)
    for _, req_size in ipairs{ "8K", "129K", "big" } do   -- below 16 KiB breaks every client
      out, code = S.btlua(("seed %s --dir %s --max-request %s"):format(H.q(torrent), H.q(dir .. "/seed"), req_size))
      assert.are.equal(1, code)
      assert.truthy(out:find("--max-request must be between 16K and 128K", 1, true), out)
    end
    assert.has_error(function() require("bt.session").new{ port = -1, max_request = 131073 } end,
      "bad argument #1 to 'session_new' (max_request must be in [16384, 131072] bytes)")
  end)
end)

describe("bt-lua run --seed", function()
  local dir, pids = nil, {}
  before_each(function() dir = H.tmpdir(); pids = {} end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(dir)
  end)

  it("downloads from aria2c, then seeds to another aria2c until --seed-time", function()
    local size = 2 * 1024 * 1024
    os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/mid") .. " " .. H.q(dir .. "/out"))
    S.make_files(dir .. "/seed", { ["payload.bin"] = size }, 5)
    local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 16)
    local spid, sport = S.aria2_seed(torrent, dir .. "/seed")
    pids[#pids + 1] = spid
    local lpid, lport = aria2_leech(torrent, dir .. "/out", dir .. "/aria2.log")
    pids[#pids + 1] = lpid
    -- the leecher is dialed too: it may take from both; --seed-time bounds the wait
    local h = start_btlua(dir, ("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --peer 127.0.0.1:%d " ..
      "--no-trackers --bind 127.0.0.1 --seed --seed-time 6"):format(H.q(torrent), H.q(dir .. "/mid"), sport, lport))
    pids[#pids + 1] = h.pid
    local rc, log = wait_exit(h, 30)
    assert.are.equal(0, rc, "log: " .. tostring(log))
    assert.truthy(log:find("done: ", 1, true), log)
    assert.truthy(log:find("done seeding (time)", 1, true), log)
    assert.are.equal(S.sha256(dir .. "/seed/payload.bin"), S.sha256(dir .. "/mid/payload.bin"))
    assert.truthy(wait_done(lpid, dir .. "/out/payload.bin", size, 10), "aria2c did not finish")
    assert.are.equal(S.sha256(dir .. "/seed/payload.bin"), S.sha256(dir .. "/out/payload.bin"))
  end)
end)

describe("rate limits", function()
  local dir, pids = nil, {}
  local size = 3 * 1024 * 1024
  local torrent
  before_each(function()
    dir, torrent = S.fixture("payload.bin", size, 3, 16)
    pids = {}
    os.execute("mkdir -p " .. H.q(dir .. "/out"))
  end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(dir)
  end)

  -- 3 MiB at 1 MiB/s with a quarter-second burst: ~2.75 s; unlimited it takes well
  -- under a second here. The bounds are generous: a functional check, not a benchmark.
  local function check_time(secs, what)
    if os.getenv("BT_SPEC_VERBOSE") then io.stderr:write(("\n%s: %.2f s\n"):format(what, secs)) end
    assert.truthy(secs >= 2.5 and secs < 6, what .. " took " .. secs .. " s")
  end

  it("bt-lua run --max-down 1M: 3 MiB take between 2.5 and 6 s", function()
    local apid, aport = S.aria2_seed(torrent, dir .. "/seed")
    pids[#pids + 1] = apid
    local t0 = socket.gettime()
    local out, code = S.btlua(("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers -q "
      .. "--max-down 1M"):format(
      H.q(torrent), H.q(dir .. "/out"), aport))
    local secs = socket.gettime() - t0
    assert.are.equal(0, code, out)
    assert.are.equal(S.sha256(dir .. "/seed/payload.bin"), S.sha256(dir .. "/out/payload.bin"))
    check_time(secs, "download")
  end)

  it("a file replaced by a folder mid-download is not reported done, nor claimed by resume data", function()
    local apid, aport = S.aria2_seed(torrent, dir .. "/seed")
    pids[#pids + 1] = apid
    local h = start_btlua(dir, ("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers --max-down 1M")
      :format(H.q(torrent), H.q(dir .. "/out"), aport), 30)
    pids[#pids + 1] = h.pid
    local file = dir .. "/out/payload.bin"
    local deadline = socket.gettime() + 10
    while file_size(file) == 0 and socket.gettime() < deadline do socket.sleep(0.05) end
    socket.sleep(0.5)   -- 1 MiB/s of 3 MiB: well before the end
    assert.is_nil(S.rc_of(h), "finished before the file could be replaced: " .. read_or_empty(h.log))
    assert.is_true(os.execute(("rm %s && mkdir %s"):format(H.q(file), H.q(file))) == true)
    local rc, log = wait_exit(h, 20)
    assert.are.equal(1, rc, log)
    assert.truthy(log:find("payload.bin was replaced while being written", 1, true), log)
    assert.falsy(log:find("done: ", 1, true), log)
    -- whatever resume data exists does not vouch for the pieces: a new run finds none
    os.execute("rmdir " .. H.q(file))
    local out, code = S.btlua(("run bt.policy.default %s -o %s --peer 127.0.0.1:1 --no-trackers --timeout 1")
      :format(H.q(torrent), H.q(dir .. "/out")))
    assert.are.equal(4, code, out)
    assert.falsy(out:find("100.0%%"), out)
  end)

  it("library: a torrent limit (t:set_limits) and a session limit (max_down) each hold", function()
    local apid, aport = S.aria2_seed(torrent, dir .. "/seed")
    pids[#pids + 1] = apid
    local session = require "bt.session"
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50 }
    local t = s:add(torrent, { dir = dir .. "/out", peers = { "127.0.0.1:" .. aport }, trackers = false })
    t:set_limits{ down = 1024 * 1024 }
    assert.are.same({ down = 1024 * 1024, up = 0 }, t:limits())
    s:on("complete", function() s:stop() end)
    local t0 = s.core:now()
    s:run(function() return s.core:now() - t0 > 15 end)
    local secs = s.core:now() - t0
    assert.truthy(t.complete)
    s:close()
    check_time(secs, "torrent-limited download")

    os.execute("rm -rf " .. H.q(dir .. "/out2"))
    s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50, max_down = 1024 * 1024 }
    assert.are.same({ down = 1024 * 1024, up = 0 }, s:limits())
    t = s:add(torrent, { dir = dir .. "/out2", peers = { "127.0.0.1:" .. aport }, trackers = false })
    s:on("complete", function() s:stop() end)
    t0 = s.core:now()
    s:run(function() return s.core:now() - t0 > 15 end)
    secs = s.core:now() - t0
    assert.truthy(t.complete)
    s:close()
    check_time(secs, "session-limited download")
    assert.are.equal(S.sha256(dir .. "/seed/payload.bin"), S.sha256(dir .. "/out2/payload.bin"))
  end)

  it("bt-lua seed --max-up 1M: aria2c's download takes between 2.5 and 6 s", function()
    local apid, aport = aria2_leech(torrent, dir .. "/out", dir .. "/aria2.log")
    pids[#pids + 1] = apid
    local t0 = socket.gettime()
    local h = start_btlua(dir, ("seed %s --dir %s --peer 127.0.0.1:%d --no-trackers --bind 127.0.0.1 "
      .. "--ratio 1 --seed-time 30 --max-up 1M"):format(
      H.q(torrent), H.q(dir .. "/seed"), aport))
    pids[#pids + 1] = h.pid
    -- --ratio 1: bt-lua exits once it uploaded a full copy (aria2c preallocates its
    -- file and lingers after finishing, so its side gives no clean end time)
    local rc, log = wait_exit(h, 20)
    local secs = socket.gettime() - t0
    assert.are.equal(0, rc, "log: " .. tostring(log))
    assert.truthy(log:find("done seeding (ratio)", 1, true), log)
    assert.truthy(wait_done(apid, dir .. "/out/payload.bin", size, 20), "aria2c did not finish")
    assert.are.equal(S.sha256(dir .. "/seed/payload.bin"), S.sha256(dir .. "/out/payload.bin"))
    check_time(secs, "upload")
  end)

  it("refuses bad limits", function()
    local session = require "bt.session"
    assert.has_error(function() session.new{ port = -1, max_down = -1 } end)
    local s = session.new{ port = -1 }
    assert.has_error(function() s:set_limits{ up = "fast" } end)
    assert.has_error(function() s:set_limits{ down = 0 / 0 } end)
    s:set_limits{ up = 500 * 1024 }
    assert.are.same({ down = 0, up = 500 * 1024 }, s:limits())
    s:close()
    assert.are.equal(512000, require("bt.cmd.seed").parse_rate("500K"))
    assert.are.equal(2097152, require("bt.cmd.seed").parse_rate("2M"))
    assert.are.equal(0, require("bt.cmd.seed").parse_rate("0"))
    assert.is_nil(require("bt.cmd.seed").parse_rate("-5"))
  end)
end)

describe("BEP 6 fast extension (a raw client against bt-lua seed)", function()
  local dir, pids = nil, {}
  before_each(function() dir = H.tmpdir(); pids = {} end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(dir)
  end)

  local function u32(s, i) return (string.unpack(">I4", s, i)) end

  --- BEP 6 canonical allowed-fast set (the reference algorithm from the BEP).
  local function canonical(ip, info_hash, npieces, k)
    local bt = require "bt"
    local a, b, c = ip:match("^(%d+)%.(%d+)%.(%d+)%.")
    local x = string.char(tonumber(a), tonumber(b), tonumber(c), 0) .. info_hash
    local set, seen = {}, {}
    while #set < k do
      x = bt.sha1(x)
      for i = 0, 4 do
        if #set >= k then break end
        local idx = u32(x, 4 * i + 1) % npieces
        if not seen[idx] then seen[idx] = true; set[#set + 1] = idx end
      end
    end
    return set
  end

  it("offers allowed-fast pieces, serves them while choked, rejects other requests", function()
    local size = 1024 * 1024   -- 32 pieces of 32 KiB
    os.execute("mkdir -p " .. H.q(dir .. "/seed"))
    S.make_files(dir .. "/seed", { ["payload.bin"] = size }, 9)
    local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 15)
    local bt = require "bt"
    local m = assert(bt.meta_parse(H.readfile(torrent)))
    local port = S.port()
    local h = start_btlua(dir, ("seed %s --dir %s --port %d --bind 127.0.0.1 --no-trackers --seed-time 20"):format(
      H.q(torrent), H.q(dir .. "/seed"), port))
    pids[#pids + 1] = h.pid
    assert.truthy(S.wait_port(port, 10), "bt-lua seed did not listen")
    local c = assert(socket.connect("127.0.0.1", port))
    c:settimeout(5)
    local reserved = string.rep("\0", 7) .. "\4"   -- fast only: no BEP 10
    assert(c:send("\19BitTorrent protocol" .. reserved .. m.info_hash .. "-XX0001-abcdefghijkl"))
    local hs = assert(c:receive(68))
    assert.are.equal(4, hs:byte(28) & 4, "bt-lua did not offer the fast extension")
    local function recv_msg()
      local len = u32(assert(c:receive(4)), 1)
      if len == 0 then return "keepalive" end
      local body = assert(c:receive(len))
      return body:byte(1), body
    end
    -- first a have-all (a seed with fast), then the allowed-fast set
    local allowed, got_have_all = {}, false
    local expected = canonical("127.0.0.1", m.info_hash, m.num_pieces, 4)
    for _ = 1, 20 do
      local id, body = recv_msg()
      if id == 14 then got_have_all = true end
      if id == 17 then allowed[#allowed + 1] = u32(body, 2) end
      if #allowed == #expected then break end
    end
    assert.truthy(got_have_all, "no have-all")
    assert.are.same(expected, allowed)
    local data = H.readfile(dir .. "/seed/payload.bin")
    -- not interested, so choked: a request outside the set is rejected explicitly
    local other = 0
    while other == allowed[1] or other == allowed[2] or other == allowed[3] or other == allowed[4] do
      other = other + 1
    end
    assert(c:send(string.pack(">I4BI4I4I4", 13, 6, other, 0, 16384)))
    local id, body = recv_msg()
    while id == "keepalive" or id == 5 or id == 14 or id == 17 do id, body = recv_msg() end
    assert.are.equal(16, id, "expected a reject")
    assert.are.same({ other, 0, 16384 }, { u32(body, 2), u32(body, 6), u32(body, 10) })
    -- an allowed-fast piece is served although we are choked
    assert(c:send(string.pack(">I4BI4I4I4", 13, 6, allowed[1], 16384, 16384)))
    id, body = recv_msg()
    while id == "keepalive" or id == 5 do id, body = recv_msg() end
    assert.are.equal(7, id, "expected a piece")
    assert.are.equal(allowed[1], u32(body, 2))
    assert.are.equal(16384, u32(body, 6))
    local off = allowed[1] * m.piece_length + 16384
    assert.truthy(body:sub(10) == data:sub(off + 1, off + 16384), "wrong block data")
    c:close()
  end)
end)

describe("announces of a seed (library, opentracker)", function()
  local T = require "tracker_helpers"
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("data complete at add: 'started' then 'stopped' at close, never 'completed'", function()
    os.execute("mkdir -p " .. H.q(dir .. "/seed"))
    S.make_files(dir .. "/seed", { ["t.bin"] = 512 * 1024 }, 13)
    local tport = S.port()
    local torrent = S.mktorrent(dir .. "/seed/t.bin", dir .. "/t.torrent", 16,
      ("http://127.0.0.1:%d/announce"):format(tport))
    local bt = require "bt"
    local tracker = T.start_opentracker({ bt.torrent.load(torrent).info_hash }, tport)
    local ok, err = pcall(function()
      local session = require "bt.session"
      local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50 }
      local events = {}
      s:on("tracker", function(_, info) events[#events + 1] = info end)
      local t = s:add(torrent, { dir = dir .. "/seed", seed = true })
      assert.is_true(t.complete)
      local t0 = s.core:now()
      s:run(function() return #events > 0 or s.core:now() - t0 > 10 end)
      s:close()   -- waits (at most session.STOPPED_WAIT) for "stopped" to go out
      local seen = {}
      for _, e in ipairs(events) do if e.ok then seen[e.event or "none"] = true end end
      assert.is_true(seen.started, "no successful 'started'")
      assert.is_true(seen.stopped, "no successful 'stopped'")
      assert.is_nil(seen.completed, "'completed' announced for data complete at add")
    end)
    T.stop(tracker)
    assert(ok, err)
  end)
end)
