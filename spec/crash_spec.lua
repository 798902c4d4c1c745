-- Crash safety: a CLI download killed with SIGKILL at random moments and restarted must
-- end with byte-identical data. Only what reached the disk survives a SIGKILL; each restart
-- hash-checks the file and fetches the rest.
local H = require "helpers"
local S = require "swarm_helpers"

local PAYLOAD = 4 * 1024 * 1024 + 777 -- with the 300 KiB/s seed: ~14 s of transfer in all
local SEED_LIMIT = 300 * 1024         -- bytes/s the seed may send
local KILLS = 10
local RANDOM_SEED = 20261126          -- fixed: a failure can be replayed
local FIRST_KILL_MAX = 2.0            -- seconds: the brief wants the first kill early
local KILL_MIN, KILL_MAX = 0.3, 2.0   -- seconds each run lives before its SIGKILL
local FINAL_TIMEOUT = 40              -- seconds the last, uninterrupted run may take

local function last_stats(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local line = s:match("([^\n]+)\n?$")
  if not line then return nil end
  local ok, o = pcall(require("cjson").decode, line)
  return ok and o or nil   -- a SIGKILL may cut the last line short
end

describe("SIGKILL at random moments", function()
  it("ten kills and restarts, then completion with byte-identical data", function()
    local tmp, torrent, data = S.fixture("c.bin", PAYLOAD, 53, 16)
    local pids = {}
    S.guard(tmp, pids, function()
      -- a bt-lua seed: it counts exactly what it sent, so the test can tell what the kills cost
      local port
      pids.seed, port = S.bt_seed_tracked(torrent, tmp .. "/seed", 120, nil,
        { session = { max_up = SEED_LIMIT }, report = tmp .. "/sent" })
      math.randomseed(RANDOM_SEED)
      local cmd = function(i)
        return ("%s lua5.4 %s run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers -q --timeout 20 "
          .. "--stats %s")
          :format(H.lua_env(), H.q(H.root .. "/scripts/bt-lua"), H.q(torrent), H.q(tmp .. "/out"), port,
            H.q(("%s/stats%d.json"):format(tmp, i)))
      end
      local wall0 = require("socket").gettime()
      for i = 1, KILLS do
        local pid = S.spawn(cmd(i), ("%s/run%d.log"):format(tmp, i), true)
        pids.run = pid
        local life = i == 1 and math.random() * FIRST_KILL_MAX or KILL_MIN + math.random() * (KILL_MAX - KILL_MIN)
        S.sleep(life)
        assert.is_true(S.alive(pid), ("run %d ended before its kill at %.2f s: %s"):format(i, life,
          H.readfile(("%s/run%d.log"):format(tmp, i)) .. tostring(H.readfile(("%s/stats%d.json"):format(tmp, i)))))
        os.execute("kill -9 " .. pid)
        S.wait_exit(pid, 5)
      end
      local out, code = S.btlua(cmd(KILLS + 1):gsub("^.-lua5%.4 %S+ ", "") .. " --timeout " .. FINAL_TIMEOUT)
      assert.are.equal(0, code, out)
      assert.are.equal(S.sha256(data), S.sha256(tmp .. "/out/c.bin"))
      -- every byte of the payload crossed the wire at least once, so the seed sent at least
      -- the payload; what it sent beyond is what the kills cost (blocks of pieces that were
      -- not yet verified and written when the process died, and what sat in socket buffers)
      local final = assert(last_stats(("%s/stats%d.json"):format(tmp, KILLS + 1)))
      assert.are.equal(PAYLOAD, final.have_bytes)
      local sent
      for _ = 1, 20 do   -- the seed rewrites the file each tick: give it a moment to settle
        sent = tonumber(H.readfile(tmp .. "/sent") or "")
        S.sleep(0.2)
        if sent and sent == tonumber(H.readfile(tmp .. "/sent") or "") then break end
      end
      assert.is_truthy(sent, "the seed never reported what it sent")
      assert.is_true(sent >= PAYLOAD, ("the seed sent %d bytes, less than the payload"):format(sent))
      assert.is_true(final.downloaded < PAYLOAD, "the last run downloaded everything: the killed runs saved nothing")
      print(("\ncrash: %d kills, %.1f s wall; the seed sent %d bytes over all runs for a %d-byte payload (%.2fx); " ..
        "the last run downloaded %d"):format(KILLS, require("socket").gettime() - wall0, sent, PAYLOAD,
        sent / PAYLOAD, final.downloaded))
    end)
  end)
end)
