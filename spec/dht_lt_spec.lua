-- The DHT against libtorrent's (python3-libtorrent 2.0.8, spec/peers/lt_dht.py), on
-- 127.0.0.1: bt-lua's queries answered by libtorrent, libtorrent's answered by bt-lua.
local H = require "helpers"
local S = require "swarm_helpers"
local bt = require "bt.core"

local D = require "dht_helpers"

local function socket_time() return require("socket").gettime() end
local function hex(s) return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end)) end

local lt_node = D.lt_node

-- A session (no listener) with one or more bt-lua DHT nodes; wait(fn) runs the loop
-- until fn's callback fires or `secs` pass, and returns the callback's arguments.
local function setup()
  local env = {}
  env.cs = bt.session_new({ port = -1, tick_ms = 50 }, function(kind, now)
    if kind == "tick" and env.stop_at and now > env.stop_at then env.cs:stop() end
  end)
  function env.node()
    return assert(bt.dht_new(env.cs, { bind = "127.0.0.1", restrict_ips = false, answer_rate_ip = -1 }))
  end
  function env.wait(start, secs)
    local res
    start(function(...) res = table.pack(...); env.cs:stop() end)
    env.stop_at = env.cs:now() + (secs or 5)
    env.cs:run()
    return res
  end
  function env.run_until(pred, secs)
    local deadline = socket_time() + secs
    while socket_time() < deadline do
      env.stop_at = env.cs:now() + 0.3
      env.cs:run()
      if pred() then return true end
    end
    return false
  end
  return env
end

describe("DHT interop with libtorrent", function()
  if not D.have_lt() then
    pending("python3-libtorrent is not installed for " .. D.PY)
    return
  end

  it("bt-lua pings, gets peers, announces and finds itself; a bad token gets 203", function()
    local tmp, pids = H.tmpdir(), {}
    S.guard(tmp, pids, function()
      local port, _, lt_id = lt_node(tmp, pids)
      local env = setup()
      local d = env.node()
      local r = env.wait(function(k) d:query("127.0.0.1", port, "ping", {}, k) end)
      assert.are.equal("r", r[1].type)
      assert.are.equal(lt_id, hex(r[1].id))
      local ih = S.bytes(20, 7)
      r = env.wait(function(k) d:query("127.0.0.1", port, "get_peers", { info_hash = ih }, k) end)
      assert.are.equal("r", r[1].type)
      assert.are.same({}, r[1].values)
      local token = assert(r[1].token)
      r = env.wait(function(k)
        d:query("127.0.0.1", port, "announce_peer", { info_hash = ih, token = token .. "x", port = 5555 }, k)
      end)
      assert.are.equal("e", r[1].type)
      assert.are.equal(203, r[1].code)
      r = env.wait(function(k)
        d:query("127.0.0.1", port, "announce_peer", { info_hash = ih, token = token, port = 5555 }, k)
      end)
      assert.are.equal("r", r[1].type)
      r = env.wait(function(k) d:query("127.0.0.1", port, "get_peers", { info_hash = ih }, k) end)
      assert.are.same({ "127.0.0.1:5555" }, r[1].values)
      -- implied_port: libtorrent takes the datagram's source port, our DHT port
      local ih2 = S.bytes(20, 8)
      r = env.wait(function(k) d:query("127.0.0.1", port, "get_peers", { info_hash = ih2 }, k) end)
      token = r[1].token
      r = env.wait(function(k)
        d:query("127.0.0.1", port, "announce_peer",
          { info_hash = ih2, token = token, port = 1, implied_port = true }, k)
      end)
      assert.are.equal("r", r[1].type)
      r = env.wait(function(k) d:query("127.0.0.1", port, "get_peers", { info_hash = ih2 }, k) end)
      assert.are.same({ "127.0.0.1:" .. d:port() }, r[1].values)
      env.cs:close()
    end)
  end)

  it("libtorrent lists bt-lua among its live nodes, announces to it with its token, finds what it stores",
    function()
    local tmp, pids = H.tmpdir(), {}
    S.guard(tmp, pids, function()
      S.make_files(tmp .. "/seed", { ["lt.bin"] = 100000 }, 3)
      local torrent = S.mktorrent(tmp .. "/seed/lt.bin", tmp .. "/lt.torrent", 15)
      local ih_lt = S.info_hash_hex(torrent):gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)
      local ih_bt = S.bytes(20, 12)
      local env = setup()
      local d, d2 = env.node(), env.node()
      -- libtorrent seeds a torrent (no reachable tracker): it announces it to the DHT itself
      local port, log = lt_node(tmp, pids, ("--node 127.0.0.1:%d --seed %s %s --get-peers %s"):format(
        d:port(), H.q(torrent), H.q(tmp .. "/seed"), hex(ih_bt)))
      assert(d:add_node("127.0.0.1", port))
      local me = hex(d:id())
      assert.is_true(env.run_until(function()
        for line in S.read_or_empty(log):gmatch("[^\n]+") do
          if line:match("^live") and line:find(me, 1, true) then return true end
        end
      end, 15), "bt-lua's id never among libtorrent's live nodes:\n" .. S.read_or_empty(log))
      -- libtorrent's dht_announce reached bt-lua: stored only with a token bt-lua issued
      assert.is_true(env.run_until(function() return d:stats().stored_peers >= 1 end, 15),
        "libtorrent's announce was not stored")
      assert.are.equal(0, d:stats().errors_sent)   -- no announce was refused for its token
      local r0 = env.wait(function(k) d2:query("127.0.0.1", d:port(), "get_peers", { info_hash = ih_lt }, k) end)
      assert.are.same({ "127.0.0.1:" .. port }, r0[1].values)   -- libtorrent's listen port
      -- d2 announces ih_bt (port 4444) into bt-lua's d; libtorrent's get_peers finds it
      assert(d2:add_node("127.0.0.1", d:port()))
      env.run_until(function() return d2:stats().good >= 1 end, 5)
      local r = env.wait(function(k) assert(d2:lookup("announce", ih_bt, 4444, k)) end, 10)
      assert.is_true(r[1].announced >= 1)
      assert.is_true(env.run_until(function()
        return S.read_or_empty(log):find("peers " .. hex(ih_bt) .. "[^\n]*127%.0%.0%.1:4444") ~= nil
      end, 15), "libtorrent's get_peers did not find the peer bt-lua stores:\n" .. S.read_or_empty(log))
      env.cs:close()
    end)
  end)
end)
