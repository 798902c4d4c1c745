-- Magnet links end to end (BEP 9, BEP 10): the metadata fetched over ut_metadata from
-- bt-lua, aria2c, transmission and libtorrent seeds on 127.0.0.1, served by bt-lua, and
-- hostile metadata peers (spec/peers/meta_peer.lua). Every process is killed by its PID.
local H = require "helpers"
local S = require "swarm_helpers"
local T = require "tracker_helpers"
local bt = require "bt"

local PY = "/usr/bin/python3"
local have_lt = os.execute("env -u LD_PRELOAD " .. PY .. " -c 'import libtorrent' 2>/dev/null") == true


local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function same(a, b) assert.are.equal(S.sha256(a), S.sha256(b)) end

-- A payload whose torrent names an opentracker that is started with its info-hash.
-- Returns tmp, torrent, data, tracker (T.stop it), hex.
local function tracked_fixture(name, size, seed, log2)
  local tport = S.port()
  local url = "http://127.0.0.1:" .. tport .. "/announce"
  local tmp, torrent, data = S.fixture(name, size, seed, log2, url)
  local hex = S.info_hash_hex(torrent)
  return tmp, torrent, data, T.start_opentracker({ unhex(hex) }, tport), hex
end

-- Until the tracker counts a seed for hex (the seed announced), bounded. A scrape, not
-- an announce: a probe announcing would be a peer of the swarm itself.
local function wait_listed(tr, hex)
  local deadline = os.time() + 15
  while os.time() < deadline do
    local r = bt.tracker.scrape({ url = tr.url, info_hash = unhex(hex), peer_id = bt.peer_id() }, 2)
    if r and (r.complete or 0) > 0 then return true end
    S.sleep(0.2)
  end
  error("the seed never reached the tracker")
end

-- bt-lua run on a magnet link, in this process' environment; returns output, code.
local function run_magnet(uri, out, extra)
  return S.btlua(("run bt.policy.default %s -o %s --timeout 40 -q %s"):format(H.q(uri), H.q(out), extra or ""))
end

describe("magnet links: metadata from bt-lua", function()
  it("fetches it over ut_metadata, downloads, keeps it beside the resume data; a restart does not fetch it", function()
    local tmp, torrent, data = S.fixture("m.bin", 1024 * 1024 + 999, 41, 15)
    local hex = S.info_hash_hex(torrent)
    local pids = {}
    S.guard(tmp, pids, function()
      local port
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed", 40)
      local got, exts, fetching
      local _, st = S.download("magnet:?xt=urn:btih:" .. hex .. "&dn=m.bin", { dir = tmp .. "/out",
        peers = { "127.0.0.1:" .. port }, timeout = 20, on = {
          metadata = function(t, bytes) got, fetching = bytes, t.fetching end,
          peer_connect = function(_, peer) exts = exts or (peer.client and peer.extensions) end,
        } })
      assert.is_true(st.complete, tostring(st.error))
      assert.is_false(fetching)
      same(data, tmp .. "/out/m.bin")
      assert.are.same({ ut_metadata = 2, ut_pex = 1 }, exts)   -- the seed's BEP 10 handshake, read
      assert.are.equal(hex, assert(bt.meta_parse(got)).info_hash_hex)
      local saved = tmp .. "/out/.bt-lua/" .. hex .. ".torrent"
      assert.are.equal(got, H.readfile(saved))
      -- no peer at all: the kept metadata and the verified data are enough
      S.kill(pids[1])
      pids[1] = nil
      local t2, st2, s2 = S.download("magnet:?xt=urn:btih:" .. hex, { dir = tmp .. "/out", timeout = 2,
        keep = true })
      assert.is_true(st2.complete)
      assert.is_false(t2.fetching)
      assert.are.equal("m.bin", t2.name)
      s2:close()
    end)
  end)

  it("resumes a magnet download stopped after its metadata: the restart fetches nothing, keeps the pieces", function()
    local tmp, torrent, data = S.fixture("r.bin", 4 * 1024 * 1024 + 3, 67, 15)
    local hex = S.info_hash_hex(torrent)
    local pids = {}
    S.guard(tmp, pids, function()
      local port
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed", 60)
      local uri = "magnet:?xt=urn:btih:" .. hex .. "&x.pe=127.0.0.1:" .. port
      -- first run: stopped by hand once a few pieces are in (resume data is saved at close)
      local s = bt.session.new { port = 0, bind = "127.0.0.1", tick_ms = 50 }
      local t = s:add(uri, { dir = tmp .. "/out" })
      local pieces = 0
      s:on("piece", function(_, _, ok) if ok then pieces = pieces + 1 end; if pieces >= 8 then s:stop() end end)
      local t0 = s.core:now()
      s:run(function() return s.core:now() - t0 > 20 end)
      assert.is_false(t.fetching)
      assert.is_false(t.complete)
      local had = t.have:count()
      assert.is_true(had >= 8)
      s:close()
      -- second run: a torrent at once (the kept metadata), the pieces trusted, then the rest
      local fetched = false
      local s2 = bt.session.new { port = 0, bind = "127.0.0.1", tick_ms = 50 }
      local t2 = s2:add(uri, { dir = tmp .. "/out" })
      assert.is_false(t2.fetching)
      assert.is_true(t2.have:count() >= had)   -- kept: trusted from resume data, or hashed again at add
      local ri = s2:resume_info(t2)
      print(("\nresume: trusted %d of %d verified; %s"):format(ri.trusted, had, tostring(ri.reason)))
      s2:on("metadata", function() fetched = true end)
      s2:on("complete", function() s2:stop() end)
      t0 = s2.core:now()
      s2:run(function() return s2.core:now() - t0 > 20 end)
      assert.is_true(t2.complete)
      assert.is_false(fetched)
      s2:close()
      same(data, tmp .. "/out/r.bin")
    end)
  end)

  it("bt-lua info prints a magnet's metadata; a malformed link exits 2 at once", function()
    local tmp, torrent = S.fixture("i.bin", 300 * 1024, 43, 15)
    local hex = S.info_hash_hex(torrent)
    local pids = {}
    S.guard(tmp, pids, function()
      local port
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed", 30)
      local out, code = S.btlua(("info %s --timeout 15"):format(H.q("magnet:?xt=urn:btih:" .. H.base32(unhex(hex))
        .. "&x.pe=127.0.0.1:" .. port)))
      assert.are.equal(0, code, out)
      assert.matches("Name:%s+i%.bin", out)
      assert.matches("Info%-hash:%s+" .. hex, out)
      assert.matches("Pieces:%s+10 x 32%.00 KiB", out)
      out, code = S.btlua(("info %s --timeout 2"):format(H.q("magnet:?xt=urn:btih:" .. hex:sub(2))))
      assert.are.equal(2, code)
      assert.matches("bad magnet link: urn:btih: must be 40 hex digits or 32 base32", out)
      out, code = S.btlua(("info %s --timeout 1"):format(H.q("magnet:?xt=urn:btih:" .. string.rep("0", 40))))
      assert.are.equal(4, code)
      assert.matches("no metadata within 1 s", out)
    end)
  end)
end)

describe("magnet links: real seeds", function()
  it("aria2c seeds, found through opentracker (hex link, tr=); --save-torrent has the info-hash", function()
    local tmp, torrent, data, tr, hex = tracked_fixture("a.bin", 2 * 1024 * 1024 + 5, 47, 16)
    local pids = { after = { function() T.stop(tr) end } }
    S.guard(tmp, pids, function()
      pids[1] = S.aria2_seed(torrent, tmp .. "/seed")
      wait_listed(tr, hex)
      local uri = "magnet:?xt=urn:btih:" .. hex .. "&dn=a.bin&tr=" .. urlencode(tr.url)
      local out, code = run_magnet(uri, tmp .. "/out", "--save-torrent " .. H.q(tmp .. "/saved.torrent"))
      assert.are.equal(0, code, out)
      same(data, tmp .. "/out/a.bin")
      assert.are.equal(hex, S.info_hash_hex(tmp .. "/saved.torrent"))
    end)
  end)

  it("transmission seeds, dialed through x.pe (base32 link, tr= too)", function()
    local tmp, torrent, data, tr, hex = tracked_fixture("tr.bin", 1536 * 1024 + 77, 53, 16)
    local port = S.port()
    local pids = { after = { function() T.stop(tr) end } }
    pids[1] = S.spawn(("transmission-cli -g %s -w %s -p %d -et -M -v %s"):format(H.q(tmp .. "/conf"),
      H.q(tmp .. "/seed"), port, H.q(torrent)), tmp .. "/tr.log")
    S.guard(tmp, pids, function()
      assert.is_true(S.wait_port(port, 15))
      local uri = "magnet:?xt=urn:btih:" .. H.base32(unhex(hex)) .. "&tr=" .. urlencode(tr.url)
        .. "&x.pe=127.0.0.1:" .. port
      local out, code = run_magnet(uri, tmp .. "/out", "--save-torrent " .. H.q(tmp .. "/saved.torrent"))
      assert.are.equal(0, code, out)
      same(data, tmp .. "/out/tr.bin")
      assert.are.equal(hex, S.info_hash_hex(tmp .. "/saved.torrent"))
    end)
  end)

  local lt_it = have_lt and it or pending
  lt_it("libtorrent seeds, found through opentracker (base32 link, tr=)", function()
    local tmp, torrent, data, tr, hex = tracked_fixture("lt.bin", 2 * 1024 * 1024 + 11, 59, 15)
    local port = S.port()
    local pids = { after = { function() T.stop(tr) end } }
    pids[1] = S.spawn(("timeout 100 %s %s seed %s %s %s %d"):format(PY, H.q(H.root .. "/spec/lt_meta.py"),
      H.q(torrent), H.q(data), H.q(tmp .. "/ltseed"), port), tmp .. "/lt.log")
    S.guard(tmp, pids, function()
      local deadline = os.time() + 30
      while not S.read_or_empty(tmp .. "/lt.log"):find("ready") and os.time() < deadline do S.sleep(0.1) end
      assert.truthy(S.read_or_empty(tmp .. "/lt.log"):find("ready"), S.read_or_empty(tmp .. "/lt.log"))
      wait_listed(tr, hex)
      local uri = "magnet:?xt=urn:btih:" .. H.base32(unhex(hex)) .. "&tr=" .. urlencode(tr.url)
      local out, code = run_magnet(uri, tmp .. "/out", "--save-torrent " .. H.q(tmp .. "/saved.torrent"))
      assert.are.equal(0, code, out)
      same(data, tmp .. "/out/lt.bin")
      assert.are.equal(hex, S.info_hash_hex(tmp .. "/saved.torrent"))
    end)
  end)
end)
