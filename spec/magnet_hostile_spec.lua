-- Hostile metadata exchange (BEP 9): peers that send ut_metadata pieces of the wrong size,
-- the wrong total size, data failing the info-hash, a metadata_size of 2^31 or rejects
-- (spec/peers/meta_peer.lua), and requests of ours from a raw socket (index 10^6, a
-- private torrent). Everything on 127.0.0.1; every process killed by its PID.
local H = require "helpers"
local S = require "swarm_helpers"
local bt = require "bt"
local socket = require "socket"

-- A torrent whose info dictionary is over 16 KiB (two metadata pieces): 400 files.
local function big_info_fixture(private)
  local tmp = H.tmpdir()
  local files = {}
  for i = 1, 400 do files[("content/file-with-a-rather-long-name-%04d.dat"):format(i)] = 100 + i end
  S.make_files(tmp .. "/seed", files, 61)
  local torrent = tmp .. "/c.torrent"
  local o, ok = H.sh(("mktorrent %s-l 15 -a http://127.0.0.1:1/announce -o %s %s"):format(private and "-p " or "",
    H.q(torrent), H.q(tmp .. "/seed/content")))
  assert(ok, o)
  local m = assert(bt.meta_parse(H.readfile(torrent)))
  assert(#m:info_bytes() > 16384 and #m:info_bytes() < 32768, #m:info_bytes())
  return tmp, torrent, m
end

-- On 127.0.0.2: bans are by host, and the good seeds are on 127.0.0.1.
local BAD_HOST = "127.0.0.2"
local function meta_peer(mode, torrent, tmp)
  local port = S.port()
  local log = tmp .. "/meta-" .. mode .. ".log"
  local pid = S.spawn(("%s lua5.4 %s %s %d %s 40 %s"):format(H.lua_env(), H.q(H.root .. "/spec/peers/meta_peer.lua"),
    mode, port, H.q(torrent), BAD_HOST), log, true)
  assert(S.wait_port(port, 10, BAD_HOST), "meta_peer did not listen")
  return pid, port, log
end

-- A magnet download in this process; on(s, t) registers handlers that may use the session.
-- Returns the torrent's stats (complete, error).
local function fetch(hex, dir, first_peer, on)
  local s = bt.session.new { port = 0, bind = "127.0.0.1", tick_ms = 50 }
  local t = s:add("magnet:?xt=urn:btih:" .. hex, { dir = dir, peers = { first_peer } })
  s:on("complete", function() s:stop() end)
  s:on("error", function() s:stop() end)
  on(s, t)
  local t0 = s.core:now()
  s:run(function() return s.core:now() - t0 > 30 end)
  local st = t:stats()
  st.complete, st.error = t.complete, t.error
  s:close()
  return st
end

local function same_tree(a, b)
  local o1 = H.sh("cd " .. H.q(a) .. " && find . -type f ! -path './.bt-lua/*' | sort | xargs sha256sum")
  local o2 = H.sh("cd " .. H.q(b) .. " && find . -type f ! -path './.bt-lua/*' | sort | xargs sha256sum")
  assert.are.equal(o1, o2)
end

describe("hostile metadata peers", function()
  local cases = {
    { "short", "ut_metadata: piece of the wrong size" },
    { "total", "ut_metadata: total_size is not the metadata_size being fetched" },
    { "corrupt", "banned: sent metadata that failed the info%-hash" },
    { "huge", "metadata_size above 8 MiB" },
  }
  for _, c in ipairs(cases) do
    local mode, reason = c[1], c[2]
    it(mode .. ": the peer is dropped, the metadata comes from a good seed", function()
      local tmp, torrent, m = big_info_fixture()
      local pids = {}
      S.guard(tmp, pids, function()
        local bad, good
        pids[1], bad = meta_peer(mode, torrent, tmp)
        pids[2], good = S.bt_seed(torrent, tmp .. "/seed", 40)
        local bad_addr = BAD_HOST .. ":" .. bad
        local why, banned
        -- the bad peer alone first; the good seed only once the bad one is gone
        local st = fetch(m.info_hash_hex, tmp .. "/out", bad_addr, function(s)
          s:on("peer_disconnect", function(t, addr, r)
            if addr == bad_addr and not why then
              why, banned = r, t:banned(bad_addr)
              s:add_peer(t, "127.0.0.1:" .. good)
            end
          end)
        end)
        assert.is_true(st.complete, tostring(st.error))
        assert.matches(reason, why)
        assert.are.equal(mode == "corrupt", banned)
        same_tree(tmp .. "/seed/content", tmp .. "/out/content")
      end)
    end)
  end

  it("reject: not asked again for a minute, the metadata comes from another peer", function()
    local tmp, torrent, m = big_info_fixture()
    local pids = {}
    S.guard(tmp, pids, function()
      local bad, good, log
      pids[1], bad, log = meta_peer("reject", torrent, tmp)
      pids[2], good = S.bt_seed(torrent, tmp .. "/seed", 40)
      local added, dropped = false, false
      local st = fetch(m.info_hash_hex, tmp .. "/out", BAD_HOST .. ":" .. bad, function(s, t)
        s:on("tick", function()
          if not added and S.read_or_empty(log):find("request") then
            added = true
            s:add_peer(t, "127.0.0.1:" .. good)
          end
        end)
        s:on("peer_disconnect", function(_, addr, r)
          if addr == BAD_HOST .. ":" .. bad and r ~= "metadata received: reconnecting" then dropped = r end
        end)
      end)
      assert.is_true(st.complete, tostring(st.error))
      assert.is_false(dropped)   -- a reject is an answer, not an offence
      assert.is_true(added)
      local _, n = S.read_or_empty(log):gsub("request", "")
      assert.is_true(n >= 1 and n <= 2, n .. " requests")   -- one round (2 out at most), then a minute's wait
      same_tree(tmp .. "/seed/content", tmp .. "/out/content")
    end)
  end)
end)

describe("metadata that matches its info-hash but not the rules", function()
  local function served(info, fn)
    local tmp = H.tmpdir()
    H.writefile(tmp .. "/t.info", info)
    local pids = {}
    S.guard(tmp, pids, function()
      local port
      pids[1], port = (function()
        local p = S.port()
        local pid = S.spawn(("%s lua5.4 %s good %d %s 30"):format(H.lua_env(),
          H.q(H.root .. "/spec/peers/meta_peer.lua"), p, H.q(tmp .. "/t.info")), tmp .. "/log", true)
        assert(S.wait_port(p, 10))
        return pid, p
      end)()
      fn(tmp, bt.sha1_hex(info), "127.0.0.1:" .. port)
    end)
  end
  local pieces = "6:pieces20:" .. string.rep("\1", 20)

  it("is refused with the .torrent check's reason: the torrent stops, nothing is created", function()
    served("d6:lengthi-5e4:name1:x12:piece lengthi16384e" .. pieces .. "e", function(tmp, hex, peer)
      local errors = {}
      local st = fetch(hex, tmp .. "/out", peer, function(s)
        s:on("error", function(_, msg) errors[#errors + 1] = msg end)
      end)
      assert.is_false(st.complete)
      assert.matches("^metadata refused: invalid torrent: ", st.error)
      assert.are.same({ st.error }, errors)
      assert.is_nil(bt.fs.stat(tmp .. "/out"))
    end)
  end)

  it("gets its paths made safe exactly as a .torrent file's", function()
    local info = "d5:filesld6:lengthi5e4:pathl2:..4:evileee4:name1:t12:piece lengthi16384e" .. pieces .. "e"
    served(info, function(tmp, hex, peer)
      local disk
      fetch(hex, tmp .. "/out", peer, function(s)
        s:on("metadata", function(t, _, m)
          disk = table.concat(m:file(1).disk_path, "/")
          t:stop()
          s:stop()
        end)
      end)
      assert.are.equal(table.concat(assert(bt.meta_parse("d4:info" .. info .. "e")):file(1).disk_path, "/"), disk)
      assert.is_nil(disk:find("..", 1, true))
    end)
  end)
end)

-- A raw BEP 10 peer against a bt-lua seed: its handshake, then messages until pred says stop.
local function raw_peer(port, m)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(5)
  c:send(bt.wire.handshake { info_hash = m.info_hash, peer_id = bt.peer_id(), extensions = true })
  c:send(bt.wire.encode { type = "extended", id = 0, payload = bt.wire.ext_handshake { m = { ut_metadata = true } } })
  local dec = bt.wire.decoder { handshake = true }
  local peer = { c = c }
  function peer.next_ext()
    local deadline = socket.gettime() + 10
    while socket.gettime() < deadline do
      local msg = table.remove(peer, 1)
      if msg then
        if msg.type == "extended" then return msg end
      else
        local data, err, part = c:receive(1)
        data = data or part
        if err == "closed" then return nil end
        if data and #data > 0 then
          for _, x in ipairs(assert(dec:feed(data))) do peer[#peer + 1] = x end
        end
      end
    end
  end
  function peer.request(piece)
    c:send(bt.wire.encode { type = "extended", id = 2,
      payload = ("d8:msg_typei0e5:piecei%dee"):format(piece) })
    return peer.next_ext()
  end
  return peer
end

describe("serving metadata", function()
  it("serves the info dictionary in 16 KiB pieces and rejects index 10^6", function()
    local tmp, torrent, m = big_info_fixture()
    local pids = {}
    S.guard(tmp, pids, function()
      local port
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed", 30)
      local p = raw_peer(port, m)
      local hs = assert(bt.wire.parse_ext_handshake(assert(p.next_ext()).payload))
      local info = m:info_bytes()
      assert.are.equal(2, hs.m.ut_metadata)
      assert.are.equal(#info, hs.metadata_size)
      assert.are.equal("bt-lua", hs.v)
      assert.are.equal("\127\0\0\1", hs.yourip)
      local r = p.request(1000000)
      assert.are.equal("d8:msg_typei2e5:piecei1000000ee", r.payload)
      local parts = {}
      for i = 0, 1 do
        local d = p.request(i).payload
        local head = ("d8:msg_typei1e5:piecei%de10:total_sizei%dee"):format(i, #info)
        assert.are.equal(head, d:sub(1, #head))
        parts[#parts + 1] = d:sub(#head + 1)
      end
      assert.are.equal(16384, #parts[1])
      assert.are.equal(info, table.concat(parts))
      assert.are.equal("d8:msg_typei2e5:piecei2ee", p.request(2).payload)   -- just past the end
      p.c:close()
    end)
  end)

  it("a private torrent (BEP 27) offers no ut_metadata and rejects requests", function()
    local tmp, torrent, m = big_info_fixture(true)
    local pids = {}
    S.guard(tmp, pids, function()
      local port
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed", 30)
      local p = raw_peer(port, m)
      local hs = assert(bt.wire.parse_ext_handshake(assert(p.next_ext()).payload))
      assert.is_nil(hs.m.ut_metadata)
      assert.is_nil(hs.metadata_size)
      assert.are.equal("d8:msg_typei2e5:piecei0ee", p.request(0).payload)
      p.c:close()
    end)
  end)
end)
