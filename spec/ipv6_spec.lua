-- IPv6 (BEP 7): listening and dialing on ::1, addresses shown as [::1]:port, against
-- real clients: a download from a libtorrent seed on [::1], and a bt-lua seed on [::1]
-- serving aria2c. The machine's ::1 must work (checked first; pending otherwise).
local H = require "helpers"
local S = require "swarm_helpers"
local socket = require "socket"
local session = require "bt.session"
local bt = require "bt"

local PY = "/usr/bin/python3"

local function have_ipv6()
  local srv = socket.bind("::1", 0)
  if srv then srv:close() end
  return srv ~= nil
end

describe("IPv6", function()
  if not have_ipv6() then
    pending("::1 cannot be bound on this machine")
    return
  end
  local tmp, torrent, data
  setup(function()
    tmp, torrent, data = S.fixture("v6.bin", 3 * 1024 * 1024 + 5, 61, 16)
  end)
  teardown(function() H.rmtree(tmp) end)

  it("listens on every address given to bind, IPv4 and IPv6, on one port", function()
    local s = session.new{ port = 0, bind = "127.0.0.1,::1" }
    for _, host in ipairs{ "127.0.0.1", "::1" } do
      local c = socket.tcp()
      c:settimeout(1)
      assert.is_truthy(c:connect(host, s.port), host)
      c:close()
    end
    s:close()
    local v6 = session.new{ port = 0, bind = "::1" }
    local c = socket.tcp()
    c:settimeout(1)
    assert.is_nil(c:connect("127.0.0.1", v6.port))   -- ::1 alone is IPv6 only
    c:close()
    v6:close()
    assert.has_error(function() session.new{ port = 0, bind = "::1,bogus" } end,
      "bt.session: bind address is not a numeric IP address")
  end)

  it("the DHT (IPv4 only) takes the bind list's IPv4 address, and is left out, saying so, without one", function()
    local s = session.new{ port = 0, bind = "::1,127.0.0.1", dht = { bootstrap = {} } }
    assert.is_truthy(s.dht)
    assert.is_nil(s.warning)
    s:close()
    s = session.new{ port = 0, bind = "::1", dht = { bootstrap = {} } }
    assert.is_nil(s.dht)
    assert.are.equal("DHT off: it is IPv4 only, and bind ::1 has none", s.warning)
    s:close()
  end)

  -- 16 bytes of a textual IPv6 address
  local function pton6(a)
    local head, tail = a:match("^(.-)::(.*)$")
    local function groups(x)
      local g = {}
      for h in x:gmatch("[^:]+") do g[#g + 1] = tonumber(h, 16) end
      return g
    end
    local g = head and groups(head) or groups(a)
    if head then
      local t = groups(tail)
      for _ = 1, 8 - #g - #t do g[#g + 1] = 0 end
      for _, x in ipairs(t) do g[#g + 1] = x end
    end
    return string.pack(">I2I2I2I2I2I2I2I2", table.unpack(g))
  end

  -- bt-lua's BEP 10 handshake to a peer that reached it over IPv4, with bind `b`
  local function ext_hs_over_v4(b)
    local s = session.new{ port = 0, bind = b, tick_ms = 20 }
    local t = s:add(torrent, { dir = tmp .. "/seed", trackers = false })
    assert.is_true(t.complete)
    local c = socket.tcp()
    c:settimeout(2)
    assert(c:connect("127.0.0.1", s.port))
    c:send(bt.wire.handshake{ info_hash = session.metainfo(torrent).info_hash, peer_id = bt.peer_id(),
      extensions = true })
    c:settimeout(0)
    local dec, hs = bt.wire.decoder{ handshake = true }, nil
    s:on("tick", function()
      local got, _, partial = c:receive(65536)
      for _, m in ipairs(dec:feed(got or partial or "") or {}) do
        if m.type == "extended" and m.id == 0 then hs = bt.wire.parse_ext_handshake(m.payload) end
      end
    end)
    local t0 = s.core:now()
    s:run(function() return hs ~= nil or s.core:now() - t0 > 5 end)
    c:close()
    s:close()
    return assert(hs, "no BEP 10 handshake")
  end

  it("tells a peer reached over IPv4 the IPv6 address it listens at (BEP 10 ipv6), never ::1", function()
    assert.is_nil(ext_hs_over_v4("127.0.0.1,::1").ipv6)
    assert.is_nil(ext_hs_over_v4("127.0.0.1").ipv6)
    -- an address of this machine a peer elsewhere could reach (not loopback, not link-local)
    local addr = H.sh("ip -6 addr show scope global 2>/dev/null"):match("inet6 ([%x:]+)/")
    if not addr then
      pending("no global or unique-local IPv6 address on this machine")
      return
    end
    assert.are.equal(pton6(addr), ext_hs_over_v4("127.0.0.1," .. addr).ipv6)
  end)

  it("downloads from a libtorrent seed listening on [::1]", function()
    local pids = {}
    S.guard(nil, pids, function()
      local port = S.port()
      pids[1] = S.spawn(("exec %s %s seed %s %s [::1]:%d 60"):format(PY, H.q(H.root .. "/spec/peers/lt_peer.py"),
        H.q(torrent), H.q(tmp .. "/seed"), port), tmp .. "/lt-seed.log")
      assert(S.wait_port(port, 15, "::1"), "libtorrent did not listen on [::1]:" .. port)
      local addrs = {}
      local _, st = S.download(torrent, { dir = tmp .. "/got", peers = { "[::1]:" .. port }, trackers = false,
        timeout = 40, bind = "::1",
        on = { peer_connect = function(_, peer) addrs[#addrs + 1] = peer.address end } })
      assert.is_true(st.complete, "not complete: " .. tostring(st.error))
      assert.are.same({ "[::1]:" .. port }, addrs)
      assert.are.equal(S.sha256(data), S.sha256(tmp .. "/got/v6.bin"))
    end)
  end)

  it("seeds on [::1] to aria2c", function()
    local pids = {}
    S.guard(nil, pids, function()
      local aport, sport = S.port(), S.port()
      local out = tmp .. "/aria"
      os.execute("mkdir -p " .. H.q(out))
      pids[1] = S.spawn(("aria2c --seed-time=0 --enable-dht=false --enable-dht6=false --bt-enable-lpd=false " ..
        "--enable-peer-exchange=false --file-allocation=none --listen-port=%d --dht-listen-port=%d " ..
        "--bt-stop-timeout=40 -d %s %s"):format(aport, S.port(), H.q(out), H.q(torrent)), out .. ".log")
      assert(S.wait_port(aport, 15, "::1"), "aria2c did not listen on [::1]:" .. aport)
      -- the seed listens on ::1 only and dials aria2c there (aria2c cannot be handed a peer)
      local h = S.start_btlua(tmp, ("seed %s -d %s --bind ::1 --port %d --peer [::1]:%d --seed-time 45 -q"):format(
        H.q(torrent), H.q(tmp .. "/seed"), sport, aport), 50)
      pids[2] = h.pid
      assert.is_true(S.wait_exit(pids[1], 45), "aria2c did not finish: " .. S.read_or_empty(out .. ".log"))
      assert.are.equal(S.sha256(data), S.sha256(out .. "/v6.bin"),
        S.read_or_empty(out .. ".log"):sub(-1500) .. S.read_or_empty(h.log))
      assert.is_falsy(S.wait_port(sport, 0.3, "127.0.0.1"))   -- the seed never listened on IPv4
    end)
  end)
end)
