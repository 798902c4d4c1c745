-- The DHT node's table rules and the CLI around it, with fake nodes (luasocket UDP on
-- 127.0.0.1) that answer bt-lua's queries by hand.
local H = require "helpers"
local S = require "swarm_helpers"
local bt = require "bt.core"
local dht = require "bt.dht"
local socket = require "socket"

-- For a bt.session s: wait(start) calls start(k) and runs the loop until k(result) is called
-- (at most 5 s); returns the result.
local function waiter(s)
  return function(start)
    local res
    start(function(r) res = r end)
    local t0 = s.core:now()
    s:run(function() return res ~= nil or s.core:now() - t0 > 5 end)
    return res
  end
end

-- A fake node: a UDP socket that answers every query with its id.
local function fake(id)
  local u = assert(socket.udp())
  assert(u:setsockname("127.0.0.1", 0))
  u:settimeout(0)
  local f = { u = u, id = id, port = select(2, u:getsockname()), queries = 0 }
  function f.serve()
    while true do
      local m, ip, port = u:receivefrom()
      if not m then return end
      local tid = m:match("1:t(%d+):")
      if tid and m:find("1:y1:q", 1, true) then
        f.queries = f.queries + 1
        local t = m:match("1:t%d+:(" .. ("."):rep(tonumber(tid)) .. ")")
        u:sendto(("d1:rd2:id20:%se1:t%d:%s1:y1:re"):format(f.id, #t, t), ip, port)
      end
    end
  end
  function f.send(s, port) u:sendto(s, "127.0.0.1", port) end
  return f
end

describe("the DHT node's routing table", function()
  local cs, stop_at
  before_each(function()
    cs = bt.session_new({ port = -1, tick_ms = 20 }, function(kind, now)
      if kind == "tick" and stop_at and now > stop_at then cs:stop() end
    end)
  end)
  after_each(function() cs:close() end)

  local function run(fakes, secs)
    local deadline = socket.gettime() + (secs or 0.5)
    while socket.gettime() < deadline do
      stop_at = cs:now() + 0.02
      cs:run()
      for _, f in ipairs(fakes) do f.serve() end
    end
  end

  it("takes a node that answers, and drops it when its id changes for the same address", function()
    local d = assert(bt.dht_new(cs, { bind = "127.0.0.1" }))
    local f = fake(("A"):rep(20))
    assert(d:add_node("127.0.0.1", f.port))
    run({ f })
    assert.are.equal(1, d:stats().nodes)
    assert.are.equal(("A"):rep(20), d:good_nodes()[1].id)
    -- the same IP:port queries us with another id: poisoning, the entry goes
    f.send("d1:ad2:id20:" .. ("B"):rep(20) .. "e1:q4:ping1:t2:xx1:y1:qe", d:port())
    f.id = ("B"):rep(20)
    run({ f }, 0.2)
    assert.are.equal(0, d:stats().nodes)
  end)

  it("keeps one entry per IP unless restrict_ips is off", function()
    for _, restrict in ipairs({ true, false }) do
      local d = assert(bt.dht_new(cs, { bind = "127.0.0.1", restrict_ips = restrict, answer_rate_ip = -1 }))
      local fakes = {}
      for i = 1, 5 do
        fakes[i] = fake(string.char(i * 40) .. ("x"):rep(19))
        assert(d:add_node("127.0.0.1", fakes[i].port))
      end
      run(fakes)
      assert.are.equal(restrict and 1 or 5, d:stats().nodes)
      for _, f in ipairs(fakes) do f.u:close() end
      d:close()
    end
  end)

  it("splits the bucket holding its own id, and keeps 8 per bucket with a replacement candidate", function()
    local me = ("\0"):rep(20)
    local d = assert(bt.dht_new(cs, { bind = "127.0.0.1", id = me, restrict_ips = false, answer_rate_ip = -1 }))
    local fakes = {}
    -- 9 ids in the far half (first bit 1) and 6 near us (first byte 0x01..0x06)
    for i = 1, 9 do fakes[#fakes + 1] = fake(string.char(0x80 + i) .. ("f"):rep(19)) end
    for i = 1, 6 do fakes[#fakes + 1] = fake(string.char(i) .. ("n"):rep(19)) end
    for _, f in ipairs(fakes) do assert(d:add_node("127.0.0.1", f.port)) end
    run(fakes)
    local st = d:stats()
    assert.is_true(st.buckets >= 2)
    assert.are.equal(8 + 6, st.nodes)   -- the far bucket is full: its 9th is the candidate
    assert.are.equal(1, st.replacements)
    local far = 0
    for _, n in ipairs(d:good_nodes()) do if n.id:byte() >= 0x80 then far = far + 1 end end
    assert.are.equal(8, far)
  end)
end)

describe("the DHT state file", function()
  it("round-trips the id and the good nodes, and refuses a bad file as a whole", function()
    local tmp = H.tmpdir()
    S.guard(tmp, {}, function()
      local cs = bt.session_new({ port = -1 }, function() end)
      local d = assert(bt.dht_new(cs, { bind = "127.0.0.1" }))
      assert(dht.save_state(tmp .. "/sub/dht.state", d))
      local st = assert(dht.load_state(tmp .. "/sub/dht.state"))
      assert.are.equal(d:id(), st.id)
      assert.are.same({}, st.nodes)
      cs:close()
      H.writefile(tmp .. "/bad", "d2:id3:abc7:versioni1ee")
      local no, why = dht.load_state(tmp .. "/bad")
      assert.is_nil(no)
      assert.is_truthy(why:find("20%-byte id"))
      H.writefile(tmp .. "/bad", "garbage")
      assert.is_nil((dht.load_state(tmp .. "/bad")))
      assert.are.equal("missing", select(2, dht.load_state(tmp .. "/none")))
      -- a node started from the file takes its id
      local cs2 = bt.session_new({ port = -1 }, function() end)
      local node = assert(dht.new(cs2, { bind = "127.0.0.1", state = tmp .. "/sub/dht.state", bootstrap = {} }))
      assert.are.equal(st.id, node.d:id())
      node:close()
      cs2:close()
    end)
  end)
end)

describe("bt-lua dht", function()
  it("bootstraps from --dht-node, prints the table and finds a stored peer with --lookup", function()
    local tmp = H.tmpdir()
    local pids = {}
    S.guard(tmp, pids, function()
      local port = S.port()
      local a = S.start_btlua(tmp, ("dht --port %d --time 8"):format(port), 15)
      pids[1] = a.pid
      S.sleep(0.5)
      -- a peer for ih stored in that node (its token first), then `bt-lua dht --lookup` finds it
      local ih = ("\7"):rep(20)
      local s = require("bt.session").new({ port = -1 })
      local d = assert(bt.dht_new(s.core, { bind = "127.0.0.1", restrict_ips = false, answer_rate_ip = -1 }))
      local wait = waiter(s)
      local r0 = wait(function(k) d:query("127.0.0.1", port, "get_peers", { info_hash = ih }, k) end)
      assert.are.equal("r", r0.type)
      local r1 = wait(function(k)
        d:query("127.0.0.1", port, "announce_peer", { info_hash = ih, token = r0.token, port = 6000 }, k)
      end)
      assert.are.equal("r", r1.type)
      s:close()
      local out, code = S.btlua(("dht --dht-node 127.0.0.1:%d --time 2 --lookup %s"):format(port, ("07"):rep(20)))
      assert.are.equal(0, code, out)
      assert.is_truthy(out:find("table: 1 nodes", 1, true), out)
      assert.is_truthy(out:find("127.0.0.1:6000", 1, true), out)
      local json = S.btlua(("dht --dht-node 127.0.0.1:%d --time 1 --json"):format(port))
      local st = require("cjson").decode(json:match("{.*}"))
      assert.are.equal(1, st.good)
      -- no node answers: exit 4
      local _, code2 = S.btlua(("dht --dht-node 127.0.0.1:%d --time 1"):format(S.port()))
      assert.are.equal(4, code2)
    end)
  end)
end)

describe("the DHT node's timers (shortened)", function()
  it("accepts a token for one rotation of the secret, not two; forgets a peer after its ttl", function()
    local s = require("bt.session").new({ port = -1, tick_ms = 20 })
    local d = assert(bt.dht_new(s.core, { bind = "127.0.0.1", token_rotate = 1, peer_ttl = 2.5 }))
    local q = assert(bt.dht_new(s.core, { bind = "127.0.0.1" }))
    local wait = waiter(s)
    local function idle(secs)
      local t0 = s.core:now()
      s:run(function() return s.core:now() - t0 >= secs end)
    end
    local ih = ("\9"):rep(20)
    local function announce(token, port)
      return wait(function(k)
        q:query("127.0.0.1", d:port(), "announce_peer", { info_hash = ih, token = token, port = port }, k)
      end)
    end
    local function values()
      return wait(function(k) q:query("127.0.0.1", d:port(), "get_peers", { info_hash = ih }, k) end).values
    end
    local token = wait(function(k) q:query("127.0.0.1", d:port(), "get_peers", { info_hash = ih }, k) end).token
    local t0 = s.core:now()
    idle(1.3)   -- one rotation (the maintenance runs each second): the token is the previous secret's
    assert.are.equal("r", announce(token, 7001).type)
    local stored = s.core:now()
    assert.are.same({ "127.0.0.1:7001" }, values())
    -- two more rotations and it is refused (a loaded machine may run the maintenance late:
    -- try every 0.5 s, for 8 s at most)
    local r
    repeat
      idle(0.5)
      r = announce(token, 7002)
    until r.type == "e" or s.core:now() - t0 > 8
    assert.are.equal("e", r.type)
    assert.are.equal(203, r.code)
    assert.is_true(s.core:now() - t0 >= 2, "refused before two rotations")
    -- the peer stored expires after its ttl (2.5 s), not before
    local v
    repeat
      v = values()
      if #v > 0 then assert.is_true(s.core:now() - stored < 2.5 + 8, "never expired") end
      idle(0.25)
    until #v == 0
    assert.is_true(s.core:now() - stored >= 2.5, "expired before its ttl")
    s:close()
  end)
end)

describe("the DHT and the session", function()
  it("goes on without a DHT that cannot start, and says why", function()
    local s = require("bt.session").new({ port = 0, bind = "127.0.0.1", dht = { nodes = { "nonsense" } } })
    assert.is_nil(s.dht)
    assert.is_nil(s:dht_stats())
    assert.is_truthy(s.warning and s.warning:find("DHT off: bad DHT node 'nonsense'", 1, true), s.warning)
    s:close()
  end)

  it("never looks up a private torrent; --no-dht opens no UDP socket", function()
    local tmp = H.tmpdir()
    local pids = {}
    S.guard(tmp, pids, function()
      local data = ("p"):rep(40000)
      local pieces = bt.sha1(data:sub(1, 16384)) .. bt.sha1(data:sub(16385, 32768)) .. bt.sha1(data:sub(32769))
      local info = { name = "p.bin", ["piece length"] = 16384, length = #data, private = 1, pieces = pieces }
      H.writefile(tmp .. "/p.bin", data)
      local priv = tmp .. "/priv.torrent"
      H.writefile(priv, bt.bencode({ info = info }))
      info.private = nil
      local pub = tmp .. "/pub.torrent"
      H.writefile(pub, bt.bencode({ info = info }))
      local s = require("bt.session").new({ port = 0, bind = "127.0.0.1", dht = { bootstrap = {} } })
      s:add(priv, { dir = tmp, trackers = false, resume = false })
      assert.are.equal(0, s:dht_stats().torrents)
      s:add(pub, { dir = tmp .. "/x", trackers = false, resume = false })
      assert.are.equal(1, s:dht_stats().torrents)
      s:close()
      -- the CLI: with the DHT the UDP port of the listener's number is taken, with --no-dht it is free
      for _, flag in ipairs({ "", "--no-dht" }) do
        local port = S.port()
        local h = S.start_btlua(tmp, ("seed %s -d %s --port %d --dht-state %s %s -q"):format(H.q(pub), H.q(tmp),
          port, H.q(tmp .. "/st"), flag), 20)
        pids[#pids + 1] = h.pid
        assert(S.wait_port(port, 10), "bt-lua seed did not listen")
        local function free()
          local u = socket.udp()
          local ok = u:setsockname("127.0.0.1", port)
          u:close()
          return ok and true or false
        end
        -- the DHT's socket opens just after the TCP listener (later still under the
        -- sanitizer build): watch the port until it is taken, for 10 s with the DHT and
        -- 1.5 s without (where it must stay free)
        local deadline = socket.gettime() + (flag == "" and 10 or 1.5)
        local is_free = free()
        while is_free and socket.gettime() < deadline do S.sleep(0.1); is_free = free() end
        S.kill(h.pid)
        assert.are.equal(flag == "--no-dht", is_free, flag)
      end
    end)
  end)
end)
