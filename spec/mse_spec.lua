-- Integration: a bt-lua seed answers the MSE (protocol encryption) handshake that
-- libtorrent and aria2c try first on every outgoing connection (csrc/mse.c). Each
-- leecher here is told to use ONLY the encrypted handshake, so it finishes only if
-- our answer is right; plaintext is what we select for the stream.
-- Every process is killed by PID, every wait bounded.
local H = require "helpers"
local S = require "swarm_helpers"
local T = require "tracker_helpers"
local bt = require "bt"
local socket = require "socket"

local PAYLOAD = 2 * 1024 * 1024 + 777
local LEECH_TIMEOUT = 40

local function same(a, b)
  assert.is_truthy(S.sha256(a))
  assert.are.equal(S.sha256(a), S.sha256(b))
end

describe("a bt-lua seed and MSE", function()
  it("serves a libtorrent leecher that allows only the encrypted handshake", function()
    local tmp, torrent = S.fixture("m.bin", PAYLOAD, 5, 16)
    -- out_enc_policy 0 = pe_forced: no plaintext fallback; allowed_enc_level 3 = both
    H.writefile(tmp .. "/leech.py", [[
import sys, time
import libtorrent as lt
s = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': False, 'enable_lsd': False,
                'enable_upnp': False, 'enable_natpmp': False, 'enable_outgoing_utp': False,
                'enable_incoming_utp': False, 'out_enc_policy': 0, 'in_enc_policy': 0,
                'allowed_enc_level': 3, 'alert_mask': 0})
h = s.add_torrent({'ti': lt.torrent_info(sys.argv[1]), 'save_path': sys.argv[2]})
t0 = time.time()
h.connect_peer(("127.0.0.1", int(sys.argv[3])))
while not h.status().is_seeding and time.time() < t0 + float(sys.argv[4]):
    time.sleep(0.01)
print("done" if h.status().is_seeding else "timeout", "%.2f" % (time.time() - t0), flush=True)
]])
    local pids, port = {}, nil
    S.guard(tmp, pids, function()
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed", 60)
      local out = H.sh(("timeout %d /usr/bin/python3 %s %s %s %d %d"):format(LEECH_TIMEOUT + 5,
        H.q(tmp .. "/leech.py"), H.q(torrent), H.q(tmp .. "/lt"), port, LEECH_TIMEOUT))
      assert.matches("^done", out)
      -- no second attempt: the encrypted one worked (a plaintext retry would be forbidden anyway)
      local secs = tonumber(out:match("done ([%d.]+)"))
      assert.is_true(secs < 5, "slow: " .. tostring(secs))
      same(tmp .. "/seed/m.bin", tmp .. "/lt/m.bin")
    end)
  end)

  it("serves aria2c with --bt-require-crypto", function()
    local tport = S.port()
    local tmp, torrent = S.fixture("a.bin", PAYLOAD, 6, 16, ("http://127.0.0.1:%d/announce"):format(tport))
    local tracker = T.start_opentracker({ bt.torrent.load(torrent).info_hash }, tport)
    local pids = { after = { function() T.stop(tracker) end } }
    S.guard(tmp, pids, function()
      pids[1] = S.bt_seed_tracked(torrent, tmp .. "/seed", 60)
      pids[2] = S.spawn(("aria2c --bt-require-crypto=true --seed-time=0 --enable-dht=false " ..
        "--bt-enable-lpd=false --enable-peer-exchange=false --file-allocation=none --listen-port=%d " ..
        "--bt-stop-timeout=%d -d %s %s"):format(S.port(), LEECH_TIMEOUT, H.q(tmp .. "/aria"), H.q(torrent)),
        tmp .. "/aria2.log")
      assert.is_true(S.wait_exit(pids[2], LEECH_TIMEOUT + 5), "aria2c did not finish")
      same(tmp .. "/seed/a.bin", tmp .. "/aria/a.bin")
    end)
  end)

  it("drops a connection that is neither a handshake nor MSE, and still serves after", function()
    local tmp, torrent = S.fixture("g.bin", 100000, 7, 15)
    local pids, port = {}, nil
    S.guard(tmp, pids, function()
      pids[1], port = S.bt_seed(torrent, tmp .. "/seed", 30)
      local function closed_after(bytes)
        local c = assert(socket.connect("127.0.0.1", port))
        c:settimeout(5)
        c:send(bytes)
        -- the seed answers a 96-byte key with its own (96-159 bytes), then must close
        local deadline = socket.gettime() + 5
        while socket.gettime() < deadline do
          local _, e, part = c:receive(4096)
          if e == "closed" then c:close(); return true end
          if e == "timeout" and (not part or #part == 0) then break end
        end
        c:close()
        return false
      end
      -- a DH key that is 0 (degenerate), then garbage with no sync mark within 512 bytes of pad
      assert.is_true(closed_after(("\0"):rep(96)), "degenerate key accepted")
      assert.is_true(closed_after(H.bytes(96 + 512 + 40, 3)), "no sync mark accepted")
      -- a plaintext handshake still works: the seed answers with its own
      local c = assert(socket.connect("127.0.0.1", port))
      c:settimeout(5)
      c:send("\19BitTorrent protocol" .. ("\0"):rep(8) .. bt.torrent.load(torrent).info_hash
        .. ("-XX0000-%012d"):format(1))
      local hs = c:receive(68)
      c:close()
      assert.are.equal("\19BitTorrent protocol", hs and hs:sub(1, 20))
    end)
  end)
end)
