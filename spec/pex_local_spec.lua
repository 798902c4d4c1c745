-- PEX (BEP 11) without other clients: the engine's side in C (spec/exchange_c_test.c:
-- who is told what, when, how much at once, what is refused), and a session fed
-- messages by a scripted peer in this process: how many of a 10,000-peer message
-- become candidates, and private torrents (BEP 27), which neither offer nor take PEX.
local H = require "helpers"
local S = require "swarm_helpers"
local bt = require "bt"
local socket = require "socket"
local session = require "bt.session"

describe("PEX", function()
  it("the engine's exchange (C, ASan+UBSan): told once a minute, 50 at a time, no local address afar", function()
    local exe = os.tmpname()
    local out, ok = H.build_c_test(exe, "spec/exchange_c_test.c csrc/engine/exchange.c csrc/engine/peer.c"
      .. " csrc/engine/throttle.c csrc/codec/*.c csrc/core/*.c csrc/storage/*.c -lev -lcrypto -lm")
    assert(ok, out)
    out, ok = H.run_c_test(exe)
    os.remove(exe)
    assert.are.equal("all passed\n", out)
    assert.is_true(ok)
  end)

  local tmp, torrent
  setup(function() tmp, torrent = S.fixture("pl.bin", 200 * 1024, 3, 15) end)
  teardown(function() H.rmtree(tmp) end)

  -- A scripted peer against session s (torrent t of info-hash ih), driven from the
  -- session's ticks: handshake, then `payloads` as ut_pex messages, one per 11 s
  -- (under the 10 s rule). Returns bt-lua's BEP 10 handshake, the pex events, the
  -- reason it was dropped (if it was).
  local function script(s, ih, payloads, secs)
    local c = socket.tcp()
    c:settimeout(2)
    assert(c:connect("127.0.0.1", s.port))
    local _, lport = c:getsockname()
    c:send(bt.wire.handshake{ info_hash = ih, peer_id = bt.peer_id(), extensions = true })
    c:settimeout(0)
    local dec = bt.wire.decoder{ handshake = true }
    local res = { events = {} }
    s:on("pex", function(_, from, added) res.events[#res.events + 1] = { from = from, n = #added, added = added } end)
    s:on("peer_disconnect", function(_, addr, why)
      if addr == "127.0.0.1:" .. lport then res.dropped = why end
    end)
    local t0, sent, next_at = s.core:now(), 0, 0
    s:on("tick", function(now)
      local data, _, partial = c:receive(65536)
      data = data or partial
      if data and #data > 0 then
        for _, m in ipairs(dec:feed(data) or {}) do
          if m.type == "extended" and m.id == 0 then res.hs = bt.wire.parse_ext_handshake(m.payload) end
        end
      end
      if res.hs and sent < #payloads and now >= next_at then
        sent = sent + 1
        next_at = now + 11
        c:settimeout(2)
        c:send(bt.wire.encode{ type = "extended", id = bt.wire.EXTENSIONS.ut_pex, payload = payloads[sent] })
        c:settimeout(0)
      end
    end)
    s:run(function() return s.core:now() - t0 > secs or (sent == #payloads and #res.events >= #payloads) end)
    c:close()
    return res
  end

  local function peers4(n, a)
    local out = {}
    for i = 1, n do out[i] = string.char(a or 127, 1, i >> 8 & 255, i & 255, 0, 1) end
    return table.concat(out)
  end

  it("takes the first 100 peers of a 10,000-peer message and offers ut_pex", function()
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
    local t = s:add(torrent, { dir = tmp .. "/seed", trackers = false })
    assert.is_true(t.complete)   -- a seed: it dials none of them
    local r = script(s, session.metainfo(torrent).info_hash, { bt.bencode{ added = peers4(10000) } }, 5)
    s:close()
    assert.are.equal(bt.wire.EXTENSIONS.ut_pex, r.hs and r.hs.m.ut_pex)
    assert.are.equal(1, #r.events)
    assert.are.equal(100, r.events[1].n)
    assert.are.equal("127.1.0.1:1", r.events[1].added[1])
    assert.is_nil(r.dropped)
  end)

  it("private torrents (BEP 27): no ut_pex offered, PEX messages ignored", function()
    local m = assert(bt.bdecode(H.readfile(torrent)))
    m.info.private = 1
    local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
    local bytes = bt.bencode(m)
    s:add({ bytes = bytes }, { storage = "memory", trackers = false })
    local r = script(s, session.metainfo({ bytes = bytes }).info_hash, { bt.bencode{ added = peers4(5) } }, 3)
    s:close()
    assert.is_truthy(r.hs, "no BEP 10 handshake from bt-lua")
    assert.is_nil(r.hs.m.ut_pex)
    assert.are.equal(0, #r.events)
    assert.is_nil(r.dropped)
  end)
end)
