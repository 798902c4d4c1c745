-- End to end through the DHT alone, on 127.0.0.1: torrents whose only tracker is dead,
-- a DHT of libtorrent nodes (spec/peers/lt_dht.py). bt-lua downloads from a libtorrent
-- seed it found in the DHT; a libtorrent leecher downloads from a bt-lua seed it found
-- there; each with the .torrent file and with a magnet link holding only the info-hash
-- (the metadata then comes from the peer found, BEP 9).
local H = require "helpers"
local S = require "swarm_helpers"
local socket = require "socket"

local D = require "dht_helpers"

local function lt_node(tmp, pids, extra) return D.lt_node(tmp, pids, extra, 80) end

-- Three libtorrent DHT nodes that know each other; returns their ports and their logs.
local function lt_dht(tmp, pids, last_extra)
  local a, alog = lt_node(tmp, pids)
  local b, blog = lt_node(tmp, pids, "--node 127.0.0.1:" .. a)
  local c, clog = lt_node(tmp, pids, ("--node 127.0.0.1:%d --node 127.0.0.1:%d %s"):format(a, b, last_extra or ""))
  return { a, b, c }, { alog, blog, clog }
end

-- A bt-lua seed announcing itself in a 3-node libtorrent DHT, and a libtorrent leecher with
-- no tracker, given the .torrent (how = "torrent") or a magnet link ("magnet"), that must
-- find it there and download the payload identical.
local function lt_leeches_from_btlua(how, size, seedn)
  local tmp, pids = H.tmpdir(), {}
  S.guard(tmp, pids, function()
    S.make_files(tmp .. "/seed", { ["payload.bin"] = size }, seedn)
    local torrent = S.mktorrent(tmp .. "/seed/payload.bin", tmp .. "/p.torrent", 16)
    local ports, logs = lt_dht(tmp, pids)
    local port = S.port()
    local seed = S.start_btlua(tmp, ("seed %s -d %s --port %d --dht-node 127.0.0.1:%d -q"):format(
      H.q(torrent), H.q(tmp .. "/seed"), port, ports[1]), 80)
    pids[#pids + 1] = seed.pid
    assert(S.wait_port(port, 10), "bt-lua seed did not listen")
    -- the seed's announce reaches the libtorrent nodes first: a libtorrent torrent looks its
    -- peers up in the DHT when it starts and then only every 15 minutes, so a leecher started
    -- before the announce landed (a loaded machine) would wait past the test
    local line = "announced " .. S.info_hash_hex(torrent) .. " 127.0.0.1:" .. port
    local function landed()
      for _, l in ipairs(logs) do
        if S.read_or_empty(l):find(line, 1, true) then return true end
      end
    end
    local until_t = socket.gettime() + 20
    while socket.gettime() < until_t and not landed() do S.sleep(0.1) end
    assert.is_true(landed(), "no libtorrent node got the seed's announce:\n" .. S.read_or_empty(seed.log))
    os.execute("mkdir -p " .. H.q(tmp .. "/lt"))
    local what = how == "magnet" and ("--magnet " .. H.q("magnet:?xt=urn:btih:" .. S.info_hash_hex(torrent)))
      or ("--leech " .. H.q(torrent))
    local _, log = lt_node(tmp, pids, ("--node 127.0.0.1:%d %s %s"):format(ports[2], what, H.q(tmp .. "/lt")))
    local deadline = socket.gettime() + 60
    while socket.gettime() < deadline and not S.read_or_empty(log):find("finished", 1, true) do S.sleep(0.2) end
    assert.is_truthy(S.read_or_empty(log):find("finished", 1, true), "libtorrent did not finish:\n"
      .. S.read_or_empty(log):sub(-2000) .. "\nbt-lua:\n" .. S.read_or_empty(seed.log))
    assert.are.equal(S.sha256(tmp .. "/seed/payload.bin"), S.sha256(tmp .. "/lt/payload.bin"))
  end)
end

describe("DHT end to end", function()
  if not D.have_lt() then
    pending("python3-libtorrent is not installed for " .. D.PY)
    return
  end

  it("bt-lua run downloads a torrent with a dead tracker from a libtorrent seed found in the DHT", function()
    local tmp, pids = H.tmpdir(), {}
    S.guard(tmp, pids, function()
      S.make_files(tmp .. "/seed", { ["payload.bin"] = 3 * 1024 * 1024 + 1234 }, 21)
      local torrent = S.mktorrent(tmp .. "/seed/payload.bin", tmp .. "/p.torrent", 16)   -- tracker: a dead URL
      local ports = lt_dht(tmp, pids, ("--seed %s %s"):format(H.q(torrent), H.q(tmp .. "/seed")))
      local stats = tmp .. "/stats.json"
      local out, code = S.btlua(("run bt.policy.default %s -o %s --bind 127.0.0.1 --max-per-ip 0 --timeout 40 "
        .. "--dht-node 127.0.0.1:%d --stats %s -q"):format(H.q(torrent), H.q(tmp .. "/dl"), ports[1], H.q(stats)))
      assert.are.equal(0, code, out)
      assert.are.equal(S.sha256(tmp .. "/seed/payload.bin"), S.sha256(tmp .. "/dl/payload.bin"))
      local last
      for line in H.readfile(stats):gmatch("[^\n]+") do last = line end
      local st = require("cjson").decode(last)
      -- the seed may come either way: bt-lua's lookup finds it, or it finds bt-lua's announce
      -- first and dials in (both through the DHT: the torrent's tracker is dead)
      assert.is_true(st.dht.good >= 1 and st.dht.torrent_lookups >= 1, last)
      -- the state file: our id and the good nodes, for the next start
      local state = assert(require("bt.dht").load_state(tmp .. "/dl/.bt-lua/dht.state"))
      assert.are.equal(st.dht.id, (state.id:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)))
      assert.is_true(#state.nodes >= 1, "no node in the state file; last stats: " .. last)
      -- and a lookup alone (bt-lua dht --lookup) finds the libtorrent seed's listen port
      local lout = S.btlua(("dht --dht-node 127.0.0.1:%d --time 2 --lookup %s"):format(ports[1],
        S.info_hash_hex(torrent)))
      assert.is_truthy(lout:find("127.0.0.1:" .. ports[3], 1, true), lout)
    end)
  end)

  it("a bt-lua seed announces itself and a libtorrent leecher with no tracker finds it and downloads", function()
    lt_leeches_from_btlua("torrent", 2 * 1024 * 1024 + 77, 22)
  end)

  it("bt-lua run downloads 'magnet:?xt=urn:btih:HEX' with no tracker from a libtorrent seed found in the DHT",
    function()
    local tmp, pids = H.tmpdir(), {}
    S.guard(tmp, pids, function()
      S.make_files(tmp .. "/seed", { ["payload.bin"] = 2 * 1024 * 1024 + 4321 }, 23)
      local torrent = S.mktorrent(tmp .. "/seed/payload.bin", tmp .. "/p.torrent", 16)
      local ports = lt_dht(tmp, pids, ("--seed %s %s"):format(H.q(torrent), H.q(tmp .. "/seed")))
      local magnet = "magnet:?xt=urn:btih:" .. S.info_hash_hex(torrent)
      local out, code = S.btlua(("run bt.policy.default %s -o %s --bind 127.0.0.1 --max-per-ip 0 --timeout 40 "
        .. "--dht-node 127.0.0.1:%d -q"):format(H.q(magnet), H.q(tmp .. "/dl"), ports[1]))
      assert.are.equal(0, code, out)
      assert.are.equal(S.sha256(tmp .. "/seed/payload.bin"), S.sha256(tmp .. "/dl/payload.bin"))
    end)
  end)

  it("a libtorrent magnet leecher with no tracker finds a bt-lua seed in the DHT and downloads", function()
    lt_leeches_from_btlua("magnet", 1024 * 1024 + 99, 24)
  end)
end)
