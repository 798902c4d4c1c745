-- PEX (BEP 11, ut_pex) against libtorrent: bt-lua, told of one libtorrent peer only,
-- learns the others from it; libtorrent accepts bt-lua's messages (it dials a peer it
-- heard of only from bt-lua). Each libtorrent peer is on a 127.x host of its own.
local H = require "helpers"
local S = require "swarm_helpers"
local socket = require "socket"
local session = require "bt.session"

local PY = "/usr/bin/python3"
local LT = H.root .. "/spec/peers/lt_peer.py"

describe("PEX with libtorrent", function()
  local tmp, torrent, pids
  before_each(function()
    tmp, torrent = S.fixture("pex.bin", 4 * 1024 * 1024 + 3, 5, 16)
    pids = {}
  end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(tmp)
  end)

  -- a libtorrent peer on host:port; returns its log's path
  local function lt(mode, host, port, extra, dir)
    local log = ("%s/lt-%s-%d.log"):format(tmp, host, port)
    if dir then os.execute("mkdir -p " .. H.q(dir)) end
    pids[#pids + 1] = S.spawn(("exec %s %s %s %s %s %s:%d 80 %s"):format(PY, H.q(LT), mode, H.q(torrent),
      H.q(dir or (tmp .. "/seed")), host, port, extra or ""), log)
    assert(S.wait_port(port, 15, host), "libtorrent did not listen on " .. host .. ":" .. port)
    return log
  end

  -- the addresses a libtorrent peer's log says it was connected to, at any time
  local function lt_peers(log)
    local seen = {}
    for line in S.read_or_empty(log):gmatch("[^\n]+") do
      for a in line:gmatch("peers (.*)") do
        for addr in a:gmatch("%S+") do seen[addr:match("^(.*):%d+$") or addr] = true end
      end
    end
    return seen
  end

  it("learns the swarm from the one peer it was told of, and dials it (source pex)", function()
    local sp, p1, p2 = S.port(), S.port(), S.port()
    -- a slow seed: the leechers stay leechers (a libtorrent seed sends no PEX once
    -- its other peers finished and left it)
    local slog = lt("seed", "127.0.0.2", sp, "--up-limit 65536")
    lt("leech", "127.0.0.3", p1, "--connect 127.0.0.2:" .. sp, tmp .. "/l1")
    lt("leech", "127.0.0.4", p2, "--connect 127.0.0.2:" .. sp, tmp .. "/l2")
    -- the seed has both leechers before we come, and we are told only of leecher 1, which
    -- dialed the seed. Measured: the seed's first message to us (1 s after we connected)
    -- came empty in 5 of 7 runs (the leechers came 60 s later), while leecher 1's first
    -- one names the seed it dialed: 1.2 s in 3 of 3 runs. The 85 s bound covers the
    -- minute to libtorrent's next message anyway.
    local deadline = socket.gettime() + 15
    while not (lt_peers(slog)["127.0.0.3"] and lt_peers(slog)["127.0.0.4"]) and socket.gettime() < deadline do
      socket.sleep(0.2)
    end
    -- no listening socket: the libtorrent peers cannot dial us, so any connection to
    -- 127.0.0.3/4 is one we made from an address PEX gave us
    local s = session.new{ port = -1, tick_ms = 50 }
    local t = s:add(torrent, { dir = tmp .. "/got", peers = { "127.0.0.3:" .. p1 }, trackers = false })
    local told, via_pex = {}, {}
    s:on("pex", function(_, from, added)
      for _, a in ipairs(added) do told[a] = from end
    end)
    s:on("peer_connect", function(_, peer)
      if peer.address:match("^127%.0%.0%.[24]:") then via_pex[peer.address] = peer.source end
    end)
    local t0 = s.core:now()
    s:run(function() return next(via_pex) ~= nil or s.core:now() - t0 > 85 end)
    local waited = s.core:now() - t0
    s:close()
    local addr, source = next(via_pex)
    assert.is_truthy(addr, "no connection to a peer learned by PEX in 85 s; told: " .. H.q(next(told) or "nothing"))
    assert.are.equal("pex", source)
    assert.are.equal("127.0.0.3:" .. p1, told[addr])   -- the leecher told us of it
    print(("  first peer learned by PEX connected after %.1f s"):format(waited))
    assert.is_truthy(t)
  end)

  it("is accepted by libtorrent: it dials a peer it heard of only from bt-lua", function()
    local p1, px = S.port(), S.port()
    -- L1 has ut_pex; X has none (it tells nobody anything), and nobody tells X of L1
    local log1 = lt("leech", "127.0.0.3", p1, "", tmp .. "/l1")
    local logx = lt("leech", "127.0.0.4", px, "--no-pex", tmp .. "/lx")
    -- a slow seed, so that the leechers are still leechers (and want each other) when
    -- our first PEX message comes
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50, max_up = 65536 }
    local t = s:add(torrent, { dir = tmp .. "/seed", trackers = false })
    assert.is_true(t.complete)
    assert.is_true(t:connect("127.0.0.3", p1))
    assert.is_true(t:connect("127.0.0.4", px))
    local t0, met = s.core:now(), false
    s:run(function()
      met = lt_peers(log1)["127.0.0.4"] or lt_peers(logx)["127.0.0.3"]
      return met or s.core:now() - t0 > 30
    end)
    local waited = s.core:now() - t0
    s:close()
    assert.is_truthy(met, "libtorrent never connected to the peer bt-lua told it of; its log: "
      .. S.read_or_empty(log1))
    print(("  libtorrent dialed the peer from our PEX after %.1f s"):format(waited))
  end)
end)
