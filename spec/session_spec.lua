-- The engine's contract with policies and callers: errors are caught and named,
-- handles are checked, the CLI fails with one clear message.
local H = require "helpers"
local S = require "swarm_helpers"
local session = require "bt.session"

describe("bt.session", function()
  local tmp, pid, port, torrent
  setup(function()
    tmp, torrent = S.fixture("s.bin", 2 * 1024 * 1024 + 99, 21, 15)   -- 32 KiB pieces
    pid, port = S.aria2_seed(torrent, tmp .. "/seed")
  end)
  teardown(function()
    S.kill(pid)
    H.rmtree(tmp)
  end)

  local n = 0
  local function dir() n = n + 1; return tmp .. "/out" .. n end
  local function peers() return { "127.0.0.1:" .. port } end

  it("listens on an ephemeral port and reports it", function()
    local s = session.new{ port = 0, bind = "127.0.0.1" }
    assert.is_true(s.port > 0)
    s:close()
    s:close()   -- idempotent
  end)

  -- A pick that asks for at most 10 of the 65 pieces, so the download cannot complete
  -- before a failure the spec provokes, however the verdicts are batched.
  local function ten_pieces()
    local started = {}
    return function(t, peer)
      for piece in t:rarest(peer) do
        if #started >= 10 then break end
        started[#started + 1] = piece
        peer:request_blocks(piece)
      end
      for piece in t:partial(peer) do peer:request_blocks(piece) end
    end
  end

  it("a policy that throws stops its torrent with file:line and a traceback; verified pieces stay", function()
    local pieces, pick = 0, ten_pieces()
    local pol = {
      on_piece = function(_, _, ok) if ok then pieces = pieces + 1 end end,
      pick = function(t, peer)
        if pieces >= 3 then error("boom from the policy") end
        pick(t, peer)
      end,
    }
    local d = dir()
    local t, st = S.download(torrent, { dir = d, policy = pol, peers = peers(), trackers = false, keep = true })
    assert.is_false(st.complete)
    assert.is_truthy(st.error)
    assert.matches("boom from the policy", st.error)
    assert.matches("session_spec.lua:%d+", st.error)
    assert.matches("traceback", st.error)
    assert.is_true(st.pieces_done >= 3)
    assert.is_true(t.stopped)
    -- the verified pieces are on disk: a restart finds them by hash check
    local _, st2 = S.download(torrent, { dir = d, peers = {}, trackers = false, timeout = 1 })
    assert.is_true(st2.pieces_done >= 3)
  end)

  it("a policy stuck in a loop is stopped by the count hook", function()
    local pol = { pick = function() while true do end end }
    local t0 = os.time()
    local _, st = S.download(torrent, { dir = dir(), policy = pol, peers = peers(), trackers = false,
      policy_time_limit = 0.5 })
    assert.matches("policy hook 'pick' ran longer than 0.5", st.error)
    assert.is_true(os.time() - t0 < 10)
  end)

  it("a policy that grows a table without bound is stopped by the memory limit; verified pieces stay", function()
    local pieces, hoard = 0, {}
    local pol = {
      on_piece = function(_, _, ok) if ok then pieces = pieces + 1 end end,
      pick = ten_pieces(),
      tick = function()
        if pieces < 3 then return end
        for _ = 1, 500 do hoard[#hoard + 1] = string.rep("x", 1000) .. #hoard end   -- ~0.5 MB a tick
      end,
    }
    -- the limit counts the whole Lua state, busted's included: 16 MiB above what it holds now
    collectgarbage("collect")
    local limit = math.floor(collectgarbage("count") * 1024) + 16 * 1024 * 1024
    local d = dir()
    local _, st = S.download(torrent, { dir = d, policy = pol, peers = peers(), trackers = false, keep = true,
      policy_memory_limit = limit })
    hoard = nil
    assert.matches("policy hook 'tick' left Lua holding more than %d+ MiB", st.error)
    assert.is_false(st.complete)
    assert.is_true(st.pieces_done >= 3)
    local _, st2 = S.download(torrent, { dir = d, peers = {}, trackers = false, timeout = 1 })
    assert.is_true(st2.pieces_done >= 3)
  end)

  it("impossible requests raise errors that name the mistake", function()
    local msgs = {}
    local function try(f, ...) local ok, e = pcall(f, ...); if not ok then msgs[#msgs + 1] = tostring(e) end end
    local pol = {
      pick = function(t, peer, slots)
        if #msgs > 0 then return require("bt.policy.default").pick(t, peer, slots) end
        try(peer.request_blocks, peer, t.pieces, 1)         -- past the last piece
        try(peer.request_blocks, peer, 0, slots + 1)        -- more than its slots
        try(peer.request, peer, 0, t:blocks(0))             -- block past the end
        try(peer.request_blocks, peer, -1, 1)
      end,
    }
    local _, st = S.download(torrent, { dir = dir(), policy = pol, peers = peers(), trackers = false })
    assert.is_true(st.complete)
    local all = table.concat(msgs, "\n")
    assert.matches("piece %d+ out of range", all)
    assert.matches("requests asked of peer 127%.0%.0%.1:%d+, which has %d+ free slots", all)
    assert.matches("block %d+ is past the end of piece 0", all)
  end)

  it("a peer handle used after its peer left raises a clear error", function()
    local kept, err1, err2, addr, alive
    local pol = {
      pick = function(t, peer, slots)
        if not kept then
          kept = peer
          peer:disconnect("test: drop the first peer")
          return
        end
        require("bt.policy.default").pick(t, peer, slots)
      end,
      tick = function()
        if kept and not err1 then
          alive = kept.alive
          addr = kept.address                           -- the address stays readable
          local ok, e = pcall(function() return kept.rate_down end)
          if not ok then err1 = tostring(e) end
          ok, e = pcall(kept.request_blocks, kept, 0, 1)
          if not ok then err2 = tostring(e) end
        end
      end,
    }
    local _, st = S.download(torrent, { dir = dir(), policy = pol, peers = peers(), trackers = false })
    assert.is_true(st.complete)   -- the session dialed the peer again after its back-off
    assert.is_false(alive)
    assert.matches("127%.0%.0%.1", addr)
    assert.matches("bt.Peer: peer 127%.0%.0%.1:%d+ has disconnected", err1)
    assert.matches("has disconnected", err2)
  end)

  it("peer fields and torrent primitives look right from inside a policy", function()
    local seen
    local pol = {
      pick = function(t, peer, slots)
        if not seen then
          seen = {
            pieces = t.pieces, missing = t.missing, have = t.have:count(), unreq = t.unrequested,
            avail = t:availability(0), choking = peer.choking, slots = peer.slots, nslots = slots,
            peer_have = peer.have:count(), seed = peer.seed, am_interested = peer.am_interested,
            npeers = #t:peers(), info_hash = t.info_hash,
          }
          local r = {}
          for p in t:rarest(peer, 5) do r[#r + 1] = p end
          seen.rarest = r
          local w = {}
          for p in t:wanted(peer, 10, 14) do w[#w + 1] = p end
          seen.wanted = w
        end
        require("bt.policy.default").pick(t, peer, slots)
      end,
    }
    local _, st = S.download(torrent, { dir = dir(), policy = pol, peers = peers(), trackers = false })
    assert.is_true(st.complete)
    assert.are.equal(st.pieces, seen.pieces)
    assert.are.equal(seen.pieces, seen.missing)
    assert.are.equal(0, seen.have)
    assert.are.equal(seen.pieces, seen.unreq)
    assert.are.equal(1, seen.avail)
    assert.is_false(seen.choking)
    assert.are.equal(seen.slots, seen.nslots)
    assert.are.equal(seen.pieces, seen.peer_have)
    assert.is_true(seen.seed)
    assert.are.equal(1, seen.npeers)
    assert.are.equal(5, #seen.rarest)
    assert.are.same({ 10, 11, 12, 13 }, seen.wanted)
    assert.are.equal(S.info_hash_hex(torrent), seen.info_hash)
  end)

  it("t.state belongs to the policy and persists between calls", function()
    local calls
    local pol = {
      tick = function(t) t.state.ticks = (t.state.ticks or 0) + 1 end,
      on_piece = function(t) calls = t.state end,
    }
    local _, st = S.download(torrent, { dir = dir(), policy = pol, peers = peers(), trackers = false })
    assert.is_true(st.complete)
    assert.is_table(calls)
  end)

  it("a connect that hangs times out after connect_timeout", function()
    local socket = require "socket"
    local hang_port = S.port()
    local srv = assert(socket.bind("127.0.0.1", hang_port, 0))   -- backlog 0, never accepting
    local fill = {}
    for i = 1, 4 do   -- fill the accept queue: further SYNs are dropped, connect() hangs
      fill[i] = socket.tcp()
      fill[i]:settimeout(0)
      fill[i]:connect("127.0.0.1", hang_port)
    end
    S.sleep(0.2)
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20, connect_timeout = 1 }
    s:add(torrent, { dir = dir(), peers = { "127.0.0.1:" .. hang_port }, trackers = false })
    local reasons = {}
    s:on("peer_disconnect", function(_, _, why) reasons[#reasons + 1] = why end)
    local t0 = s.core:now()
    s:run(function() return #reasons > 0 or s.core:now() - t0 > 5 end)
    local took = s.core:now() - t0
    s:close()
    for _, c in ipairs(fill) do c:close() end
    srv:close()
    assert.matches("timed out", table.concat(reasons, ";"))
    assert.is_true(took >= 0.9 and took < 3, "took " .. took)
  end)

  it("an unreachable peer is retried with back-off; the session stays up", function()
    local dead = S.port()
    local fails = 0
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
    local t = s:add(torrent, { dir = dir(), peers = { "127.0.0.1:" .. dead }, trackers = false })
    s:on("peer_disconnect", function() fails = fails + 1 end)
    local t0 = s.core:now()
    s:run(function() return s.core:now() - t0 > 2.5 end)
    assert.is_false(t.complete)
    s:close()
    -- base 2 s: a try at 0 s, the next at about 2 s, not one per tick
    assert.is_true(fails >= 1 and fails <= 3, "attempts: " .. fails)
  end)
end)

describe("bt-lua run failures", function()
  local tmp
  setup(function() tmp = H.tmpdir() end)
  teardown(function() H.rmtree(tmp) end)

  it("an unreadable torrent", function()
    local out, code = S.btlua("run bt.policy.default " .. tmp .. "/nope.torrent -o " .. tmp)
    assert.are.equal(2, code)
    assert.matches("cannot read torrent", out)
  end)

  it("an invalid torrent", function()
    H.writefile(tmp .. "/bad.torrent", "d4:infoi3ee")
    local out, code = S.btlua("run bt.policy.default " .. tmp .. "/bad.torrent -o " .. tmp)
    assert.are.equal(2, code)
    assert.matches("invalid torrent", out)
  end)

  it("a policy that does not load", function()
    S.make_files(tmp, { ["x.bin"] = 40000 })
    local torrent = S.mktorrent(tmp .. "/x.bin", tmp .. "/x.torrent", 15)
    H.writefile(tmp .. "/broken.lua", "return { pick = function( end }")
    local out, code = S.btlua("run " .. tmp .. "/broken.lua " .. torrent .. " -o " .. tmp .. "/o")
    assert.are.equal(3, code)
    assert.matches("policy failed to load", out)
    assert.matches("broken.lua:1", out)
    H.writefile(tmp .. "/notable.lua", "return 42")
    out, code = S.btlua("run " .. tmp .. "/notable.lua " .. torrent .. " -o " .. tmp .. "/o")
    assert.are.equal(3, code)
    assert.matches("must return a table", out)
  end)

  it("a failing tracker is reported once per distinct failure, not once per retry", function()
    local port = S.port()   -- nothing listens there
    S.make_files(tmp, { ["d.bin"] = 40000 })
    local torrent = S.mktorrent(tmp .. "/d.bin", tmp .. "/dead.torrent", 15,
      ("http://127.0.0.1:%d/announce"):format(port))
    -- retries at 5 s: two announces fail the same way within the 7 s
    local out, code = S.btlua(("run bt.policy.default %s -o %s/o3 --timeout 7"):format(torrent, tmp))
    assert.are.equal(4, code, out)
    local url = ("tracker http://127.0.0.1:%d/announce: "):format(port)
    local n = select(2, out:gsub(url:gsub("%p", "%%%0"), ""))
    assert.are.equal(1, n, out)
    assert.truthy(out:find("(retrying in 5 s)", 1, true), out)
    out = S.btlua(("run bt.policy.default %s -o %s/o3 --timeout 1 -q"):format(torrent, tmp))
    assert.falsy(out:find(url, 1, true), out)   -- -q: nothing but the final message
  end)

  it("--stats says how each tracker stands: its last failure, failures in a row, next try", function()
    local cjson = require "cjson"
    local port = S.port()   -- nothing listens there
    S.make_files(tmp, { ["d.bin"] = 40000 })
    local torrent = S.mktorrent(tmp .. "/d.bin", tmp .. "/dead2.torrent", 15,
      ("http://127.0.0.1:%d/announce"):format(port))
    local stats = tmp .. "/dead2.json"
    local out, code = S.btlua(("run bt.policy.default %s -o %s/o4 --timeout 2 -q --stats %s"):format(torrent, tmp,
      stats))
    assert.are.equal(4, code, out)
    local last
    for line in io.lines(stats) do last = cjson.decode(line) end
    local tr = last.trackers[("http://127.0.0.1:%d/announce"):format(port)]
    assert.is_table(tr, H.readfile(stats))
    assert.are.equal(1, tr.tier)
    assert.is_false(tr.ok)
    assert.truthy(tostring(tr.error):find("onnect", 1, true) or tostring(tr.error):find("refused", 1, true), tr.error)
    assert.is_true(tr.fails >= 1)
    assert.is_true(tr.next_in > 0 and tr.next_in <= 5)
  end)

  it("no peers reachable within --timeout", function()
    local torrent = tmp .. "/x.torrent"
    local out, code = S.btlua(("run bt.policy.default %s -o %s/o2 --timeout 1 --no-trackers --peer 127.0.0.1:%d -q")
      :format(torrent, tmp, S.port()))
    assert.are.equal(4, code)
    assert.matches("no peers reachable within 1 s", out)
  end)

  it("a policy that throws: exit 3 with the traceback", function()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["y.bin"] = 300000 })
    local torrent = S.mktorrent(tmp .. "/seed/y.bin", tmp .. "/y.torrent", 15)
    local pid, port = S.aria2_seed(torrent, tmp .. "/seed")
    H.writefile(tmp .. "/throws.lua", "return {\n  pick = function(t, peer, slots)\n    error('nope')\n  end,\n}\n")
    local out, code = S.btlua(("run %s/throws.lua %s -o %s/o3 --timeout 10 --no-trackers --peer 127.0.0.1:%d -q")
      :format(tmp, torrent, tmp, port))
    S.kill(pid)
    assert.are.equal(3, code)
    assert.matches("throws.lua:3: nope", out)
    assert.matches("stack traceback", out)
  end)
end)

describe("incoming connections", function()
  local socket = require "socket"
  local bt = require "bt"
  local tmp, torrent, m
  setup(function()
    tmp = H.tmpdir()
    S.make_files(tmp, { ["in.bin"] = 100000 })
    torrent = S.mktorrent(tmp .. "/in.bin", tmp .. "/in.torrent", 15)
    m = assert(bt.meta_parse(H.readfile(torrent)))
  end)
  teardown(function() H.rmtree(tmp) end)

  -- run the session for `secs` while `client` talks to it from a coroutine-free loop
  local function exchange(s, hs_hash)
    local c = assert(socket.tcp())
    c:settimeout(2)
    assert(c:connect("127.0.0.1", s.port))
    c:send(bt.wire.handshake{ info_hash = hs_hash, peer_id = "-XX0001-abcdefghijkl", extensions = true })
    c:settimeout(0)
    local got = ""
    local t0 = s.core:now()
    s:run(function()
      local d, err, part = c:receive(4096)
      got = got .. (d or part or "")
      return err == "closed" or #got >= 68 or s.core:now() - t0 > 2
    end)
    local _, err = c:receive(1)
    c:close()
    return got, err
  end

  it("answers a handshake for a torrent it serves, and drops one it does not", function()
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
    local connected = {}
    s:on("peer_connect", function(_, peer) connected[#connected + 1] = peer end)
    s:add(torrent, { dir = tmp .. "/o", trackers = false })
    local got = exchange(s, m.info_hash)
    assert.is_true(#got >= 68)
    local dec = bt.wire.decoder{ handshake = true }
    local msgs = assert(dec:feed(got))
    assert.are.equal("handshake", msgs[1].type)
    assert.are.equal(m.info_hash, msgs[1].info_hash)
    assert.are.equal(s.core:peer_id(), msgs[1].peer_id)
    assert.are.equal(1, #connected)
    assert.is_true(connected[1].incoming)
    local got2 = exchange(s, string.rep("\1", 20))
    assert.are.equal("", got2)   -- closed without a word
    s:close()
  end)

  it("refuses a flood of connections that never handshake, then times them out", function()
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20, connect_timeout = 1 }
    s:add(torrent, { dir = tmp .. "/flood", trackers = false })
    local socks = {}
    local t0 = s.core:now()
    for i = 1, 70 do   -- in steps, letting the session accept (its listen backlog is 64)
      local c = socket.tcp()
      c:settimeout(0)
      c:connect("127.0.0.1", s.port)
      socks[i] = c
      if i % 10 == 0 then
        local t1 = s.core:now()
        s:run(function() return s.core:now() - t1 > 0.03 end)
      end
    end
    s:run(function() return s.core:now() - t0 > 0.3 end)
    local closed_early = 0
    for i = 1, 70 do
      local _, err = socks[i]:receive(1)
      if err == "closed" then closed_early = closed_early + 1 end
    end
    assert.are.equal(6, closed_early)   -- 64 kept waiting for a handshake
    s:run(function() return s.core:now() - t0 > 2 end)
    local closed_late = 0
    for i = 1, 70 do
      local _, err = socks[i]:receive(1)
      if err == "closed" then closed_late = closed_late + 1 end
      socks[i]:close()
    end
    s:close()
    assert.are.equal(70, closed_late)   -- the handshake timeout got the rest
  end)

  it("drops a connection to itself", function()
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
    local t = s:add(torrent, { dir = tmp .. "/self", trackers = false })
    local reasons = {}
    s:on("peer_disconnect", function(_, _, why) reasons[#reasons + 1] = why end)
    assert.is_true(t:connect("127.0.0.1", s.port))
    local t0 = s.core:now()
    s:run(function() return #reasons >= 1 or s.core:now() - t0 > 3 end)
    s:close()
    assert.matches("ourselves", table.concat(reasons, ";"))
  end)
end)

describe("the C primitives against a naive model, inside a live download", function()
  it("rarest, wanted, partial and availability agree with loops over the peers", function()
    local tmp = H.tmpdir()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["m.bin"] = 3 * 1024 * 1024 + 17 }, 43)
    local data = tmp .. "/seed/m.bin"
    local torrent = S.mktorrent(data, tmp .. "/m.torrent", 15)   -- 97 pieces
    local pids, peers = {}, {}
    for i = 1, 3 do   -- three peers with different random halves, one full seed
      local pid, port = S.lua_seed(i < 3 and "half" or "good", torrent, data)
      pids[#pids + 1] = pid
      peers[#peers + 1] = "127.0.0.1:" .. port
    end
    local checks, problems = 0, {}
    local function check(cond, what) if not cond then problems[#problems + 1] = what end end
    local default = require "bt.policy.default"
    local pol = {
      pick = function(t, peer, slots)
        checks = checks + 1
        -- availability: count the connected peers that have each piece
        local list = t:peers()
        for i = 0, t.pieces - 1, 7 do
          local n = 0
          for _, q in ipairs(list) do if q:has(i) then n = n + 1 end end
          check(t:availability(i) == n, "availability of " .. i)
        end
        -- rarest: pieces the peer has, we lack, sorted by availability
        local last = -1
        for piece in t:rarest(peer, 10) do
          check(peer:has(piece) and not t:has(piece), "rarest gave an unusable piece " .. piece)
          local a = t:availability(piece)
          check(a >= last, "rarest out of order at " .. piece)
          last = a
        end
        -- wanted: in order, inside the window, usable
        local prev = 9
        for piece in t:wanted(peer, 10, 60) do
          check(piece > prev and piece < 60, "wanted out of order or range: " .. piece)
          check(peer:has(piece) and not t:has(piece), "wanted gave an unusable piece " .. piece)
          prev = piece
        end
        for piece in t:partial(peer) do
          check(peer:has(piece) and not t:has(piece), "partial gave an unusable piece " .. piece)
        end
        default.pick(t, peer, slots)
      end,
    }
    local ok, err = pcall(function()
      local _, st = S.download(torrent, { dir = tmp .. "/out", peers = peers, policy = pol,
        trackers = false, timeout = 30 })
      assert.is_true(st.complete, tostring(st.error))
      assert.are.equal(S.sha256(data), S.sha256(tmp .. "/out/m.bin"))
    end)
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(tmp)
    assert(ok, err)
    assert.is_true(checks > 3)
    assert.are.same({}, problems)
  end)
end)

describe("resume data", function()
  local tmp, pid, port, torrent
  setup(function()
    tmp, torrent = S.fixture("r.bin", 2 * 1024 * 1024 + 5, 47, 15)   -- 65 pieces
    pid, port = S.aria2_seed(torrent, tmp .. "/seed")
  end)
  teardown(function()
    S.kill(pid)
    H.rmtree(tmp)
  end)

  -- download the first `pieces` pieces (or all), then close (which saves)
  local function partial(dir, pieces)
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
    local pol = pieces < 65 and {
      pick = function(t, peer, slots)
        for piece in t:wanted(peer, 0, pieces) do
          slots = slots - peer:request_blocks(piece, slots)
          if slots == 0 then return end
        end
      end,
    } or nil
    local t = s:add(torrent, { dir = dir, peers = { "127.0.0.1:" .. port }, trackers = false, policy = pol })
    local t0 = s.core:now()
    s:run(function() return t.have:count() >= pieces or t.complete or s.core:now() - t0 > 20 end)
    local n = t.have:count()
    s:close()
    return n
  end

  local function reopen(dir)
    local s = session.new{ port = 0, bind = "127.0.0.1" }
    local t = s:add(torrent, { dir = dir, trackers = false })
    local info = s:resume_info(t)
    local have = t.have:copy()   -- t.have is a view of the engine's set: it goes with the session
    s:close()
    return info, have
  end

  it("a restart trusts the saved pieces without hashing them", function()
    local dir = tmp .. "/a"
    local n = partial(dir, 10)
    assert.are.equal(10, n)
    local info, have = reopen(dir)
    assert.is_nil(info.reason)
    assert.are.equal(n, info.trusted)
    assert.are.equal(n, have:count())
    -- proof that they were not hashed: change a trusted piece, keep size and mtime
    local first = have:next_set(0)
    local path = dir .. "/r.bin"
    os.execute(("cp -p %s %s.ref"):format(H.q(path), H.q(path)))
    local f = assert(io.open(path, "r+b"))
    f:seek("set", first * 32768 + 5)
    f:write("XYZ")
    f:close()
    os.execute(("touch -r %s.ref %s"):format(H.q(path), H.q(path)))
    local info2, have2 = reopen(dir)
    assert.are.equal(n, info2.trusted)
    assert.is_true(have2:has(first))   -- the documented limit: forged times are believed
  end)

  it("a file changed behind its back is hashed again, and the bad piece found", function()
    local dir = tmp .. "/b"
    local n = partial(dir, 10)
    local _, have = reopen(dir)
    local first = have:next_set(0)
    local f = assert(io.open(dir .. "/r.bin", "r+b"))
    f:seek("set", first * 32768 + 5)
    f:write("XYZ")
    f:close()
    os.execute("sleep 0.01; touch " .. H.q(dir .. "/r.bin"))
    local info, have2 = reopen(dir)
    assert.is_string(info.reason)
    assert.are.equal(0, info.trusted)
    assert.is_false(have2:has(first))
    assert.are.equal(n - 1, have2:count())
  end)

  it("a complete download is saved and found complete without hashing", function()
    local dir = tmp .. "/c"
    partial(dir, 65)
    local info, have = reopen(dir)
    assert.are.equal(65, info.trusted)
    assert.are.equal(65, have:count())
    local s = session.new{ port = -1 }
    local t = s:add(torrent, { dir = dir, trackers = false, resume = false })   -- opt out
    assert.are.equal(0, s:resume_info(t).trusted)
    assert.is_true(t.complete)                                               -- by hashing
    s:close()
  end)
end)
