-- peer.source: where a peer's address came from ("tracker", "dht", "pex", "incoming",
-- "manual"), as policies and events see it, in the engine and in the fake engine.
local H = require "helpers"
local S = require "swarm_helpers"
local T = require "tracker_helpers"
local bt = require "bt"
local socket = require "socket"
local session = require "bt.session"
local fake = require "bt.policy.fake"

describe("peer.source", function()
  local tmp, torrent, seed_pid, seed_port
  setup(function()
    tmp, torrent = S.fixture("src.bin", 300 * 1024, 7, 15)
    seed_pid, seed_port = S.bt_seed(torrent, tmp .. "/seed", 60)
  end)
  teardown(function()
    S.kill(seed_pid)
    H.rmtree(tmp)
  end)

  -- A leecher session in this process: the sources its policy's pick and its
  -- peer_connect event saw, by address, until one peer connected (bounded).
  local function leech(add_opts, after_add)
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
    local seen = { event = {}, pick = {} }
    add_opts.dir = tmp .. "/out" .. tostring(socket.gettime()):gsub("%.", "")
    add_opts.policy = { pick = function(_, peer) seen.pick[peer.address] = peer.source end }
    local t = s:add(add_opts.torrent or torrent, add_opts)
    s:on("peer_connect", function(_, peer) seen.event[peer.address] = peer.source end)
    if after_add then after_add(s, t) end
    local t0 = s.core:now()
    s:run(function() return next(seen.pick) ~= nil or s.core:now() - t0 > 10 end)
    s:close()
    return seen
  end

  local function seed_addr() return "127.0.0.1:" .. seed_port end

  it("is manual for peers given to s:add and by default to s:add_peer", function()
    local seen = leech({ peers = { seed_addr() }, trackers = false })
    assert.are.equal("manual", seen.event[seed_addr()])
    assert.are.equal("manual", seen.pick[seed_addr()])
  end)

  it("is what s:add_peer was told (dht, pex)", function()
    for _, src in ipairs{ "dht", "pex" } do
      local seen = leech({ trackers = false }, function(s, t) s:add_peer(t, seed_addr(), src) end)
      assert.are.equal(src, seen.event[seed_addr()])
      assert.are.equal(src, seen.pick[seed_addr()])
    end
  end)

  it("is tracker for peers from a tracker's reply", function()
    local ft = T.start_fake()
    local ok, err = pcall(function()
      -- the same info dictionary (so the same info-hash) announced to the fake tracker,
      -- which answers with the seed's address
      local m = assert(bt.bdecode(H.readfile(torrent)))
      m.announce = ft.base .. "/topeer?to=" .. seed_port
      local seen = leech({ torrent = { bytes = bt.bencode(m) } })
      assert.are.equal("tracker", seen.event[seed_addr()])
    end)
    T.stop_fake(ft)
    if not ok then error(err, 0) end
  end)

  it("is incoming for a peer that dialed us", function()
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
    local t = s:add(torrent, { dir = tmp .. "/seed", trackers = false })
    assert.is_true(t.complete)
    local got
    s:on("peer_connect", function(_, peer) got = peer.source end)
    local c = socket.tcp()
    c:settimeout(2)
    assert(c:connect("127.0.0.1", s.port))
    assert(c:send(bt.wire.handshake{ info_hash = S.info_hash_hex(torrent):gsub("%x%x",
      function(x) return string.char(tonumber(x, 16)) end), peer_id = bt.peer_id() }))
    local t0 = s.core:now()
    s:run(function() return got ~= nil or s.core:now() - t0 > 5 end)
    c:close()
    s:close()
    assert.are.equal("incoming", got)
  end)

  it("no source but manual holds more than MAX_PER_SOURCE of the candidates", function()
    local s = session.new{ port = 0, bind = "127.0.0.1" }
    local t = s:add(torrent, { dir = tmp .. "/seed", trackers = false })   -- complete: dials nobody
    local rec = s.by_handle[t]
    local function add(n, src, b)
      for i = 1, n do s:add_peer(t, ("127.%d.%d.%d:1"):format(b, i >> 8, i & 255), src) end
    end
    add(600, "pex", 10)
    add(300, "tracker", 20)
    add(300, "manual", 30)
    s:close()
    assert.are.same({ pex = session.MAX_PER_SOURCE, tracker = 300, manual = 200 }, rec.by_source)
    assert.are.equal(session.MAX_CANDIDATES, #rec.order)
  end)

  it("refuses an unknown source", function()
    local s = session.new{ port = 0, bind = "127.0.0.1" }
    local t = s:add(torrent, { dir = tmp .. "/seed", trackers = false })
    assert.has_error(function() s:add_peer(t, seed_addr(), "carrier pigeon") end,
      "bt.session: peer source must be manual, tracker, dht or pex, not carrier pigeon")
    assert.has_error(function() t:connect("127.0.0.1", 1, "incoming") end)
    assert.has_error(function() t:connect("127.0.0.1", 1, "nowhere") end)
    s:close()
  end)

  it("is in the fake engine too", function()
    local t = fake.torrent{ pieces = 4 }
    assert.are.equal("manual", fake.peer(t).source)
    assert.are.equal("pex", fake.peer(t, { source = "pex" }).source)
    assert.are.equal("incoming", fake.peer(t, { incoming = true }).source)
    assert.is_true(fake.peer(t, { incoming = true }).incoming)
    t:connect("10.0.0.9", 6881, "dht")
    assert.are.same({ "10.0.0.9:6881" }, t.connects)
    assert.are.equal("dht", t.connect_sources[1])
  end)
end)
