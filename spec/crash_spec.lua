-- Crash safety: a CLI download killed with SIGKILL at random moments and restarted must
-- end with byte-identical data. Only what reached the disk survives a SIGKILL; each restart
-- hash-checks the file and fetches the rest.
local H = require "helpers"
local S = require "swarm_helpers"

local PAYLOAD = 4 * 1024 * 1024 + 777 -- with the 300 KiB/s seed: ~14 s of transfer in all
local SEED_LIMIT = "300K"
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
    local tmp = H.tmpdir()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["c.bin"] = PAYLOAD }, 53)
    local torrent = S.mktorrent(tmp .. "/seed/c.bin", tmp .. "/c.torrent", 16)
    local seed, port
    local ok, err = pcall(function()
      seed, port = S.aria2_seed(torrent, tmp .. "/seed", { limit = SEED_LIMIT })
      math.randomseed(RANDOM_SEED)
      local cmd = function(i)
        return ("%s lua5.4 %s run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers -q --timeout 20 --stats %s")
          :format(H.lua_env(), H.q(H.root .. "/scripts/bt-lua"), H.q(torrent), H.q(tmp .. "/out"), port,
            H.q(("%s/stats%d.json"):format(tmp, i)))
      end
      local wall0 = require("socket").gettime()
      for i = 1, KILLS do
        local pid = S.spawn(cmd(i), ("%s/run%d.log"):format(tmp, i), true)
        local life = i == 1 and math.random() * FIRST_KILL_MAX or KILL_MIN + math.random() * (KILL_MAX - KILL_MIN)
        S.sleep(life)
        assert.is_true(S.alive(pid), ("run %d ended before its kill at %.2f s: %s"):format(i, life,
          H.readfile(("%s/run%d.log"):format(tmp, i)) .. tostring(H.readfile(("%s/stats%d.json"):format(tmp, i)))))
        os.execute("kill -9 " .. pid)
        S.wait_exit(pid, 5)
      end
      local out, code = S.btlua(cmd(KILLS + 1):gsub("^.-lua5%.4 %S+ ", "") .. " --timeout " .. FINAL_TIMEOUT)
      assert.are.equal(0, code, out)
      assert.are.equal(S.sha256(tmp .. "/seed/c.bin"), S.sha256(tmp .. "/out/c.bin"))
      local total = 0
      for i = 1, KILLS + 1 do
        local o = last_stats(("%s/stats%d.json"):format(tmp, i))
        total = total + (o and o.downloaded or 0)
      end
      -- killed runs lose up to a second of counting, so the sum is no bound; the last run must
      -- report the whole payload on disk, and some bytes must have come before it
      local final = assert(last_stats(("%s/stats%d.json"):format(tmp, KILLS + 1)))
      assert.are.equal(PAYLOAD, final.bytes)
      assert.is_true(total - final.downloaded > 0, "the killed runs downloaded nothing")
      print(("\ncrash: %d kills, %.1f s wall; downloaded %d bytes over all runs for a %d-byte payload (%.2fx; " ..
        "killed runs count up to their last once-a-second stats line)"):format(KILLS,
        require("socket").gettime() - wall0, total, PAYLOAD, total / PAYLOAD))
    end)
    S.kill(seed)
    H.rmtree(tmp)
    assert(ok, err)
  end)
end)
