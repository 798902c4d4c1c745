--- The lab's output delay and loss (session options delay, loss, loss_seed; docs/lab.md
-- "Network"): a bt-lua seed in a process of its own and a bt-lua leecher in this one, both on
-- 127.0.0.1, with and without the delay. Every process is killed by PID, every wait bounded.
local H = require "helpers"
local S = require "swarm_helpers"
local session = require "bt.session"

-- A seed process: bt.session with the given delay and loss, seeding `dir` for at most 60 s.
local SEED = [[
local session = require "bt.session"
local port, torrent, dir, delay, loss = tonumber(arg[1]), arg[2], arg[3], tonumber(arg[4]), tonumber(arg[5])
local s = session.new{ port = port, bind = "127.0.0.1", max_per_ip = 0, delay = delay, loss = loss, loss_seed = 7 }
s:add(torrent, { dir = dir, trackers = false })
local t0 = os.time()
s:run(function() return os.time() - t0 > 60 end)
]]

local function start_seed(tmp, torrent, delay, loss)
  local script = tmp .. "/seed.lua"
  H.writefile(script, SEED)
  local port = S.port()
  local pid = S.spawn(("env %s lua5.4 %s %d %s %s %s %s"):format(H.lua_env(), H.q(script), port, H.q(torrent),
    H.q(tmp .. "/seed"), delay, loss), tmp .. "/seed-" .. port .. ".log", true)
  assert(S.wait_port(port, 15), "the seed did not listen")
  return pid, port
end

--- Download from the seed at port with this session's delay and loss; returns the seconds
-- to completion and the lowest request-to-block time seen on the connection.
local function leech(tmp, torrent, port, delay, loss)
  local dir = tmp .. "/out-" .. port
  os.execute("mkdir -p " .. H.q(dir))
  local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50, max_per_ip = 0, delay = delay, loss = loss,
                         loss_seed = 3 }
  local t = s:add(torrent, { dir = dir, trackers = false, peers = { "127.0.0.1:" .. port } })
  local t0 = s.core:now()
  local min_rtt
  local function read_rtt()
    for _, p in ipairs(t:peers()) do
      if p.min_rtt > 0 then min_rtt = p.min_rtt end
    end
  end
  s:on("tick", read_rtt)
  s:on("piece", read_rtt)   -- a download without delay may be over before the first tick
  s:run(function(ss) return t.complete or ss.core:now() - t0 > 40 end)
  local secs = s.core:now() - t0
  local complete = t.complete
  s:close()
  assert.is_true(complete, "the download did not complete in 40 s")
  return secs, min_rtt
end

describe("lab delay and loss", function()
  it("holds every byte sent for the delay: a request's round trip grows by twice the delay", function()
    local tmp, torrent = S.fixture("d.bin", 512 * 1024, 5, 15)
    local pids = {}
    S.guard(tmp, pids, function()
      local plain_pid, plain = start_seed(tmp, torrent, 0, 0)
      pids[#pids + 1] = plain_pid
      local slow_pid, slow = start_seed(tmp, torrent, 0.1, 0)
      pids[#pids + 1] = slow_pid
      local _, rtt0 = leech(tmp, torrent, plain, 0, 0)
      local _, rtt1 = leech(tmp, torrent, slow, 0.1, 0)
      assert.is_truthy(rtt0 and rtt1, "no round trip measured")
      if os.getenv("BT_SPEC_VERBOSE") then print(("min rtt %.4f s, with delay %.4f s"):format(rtt0, rtt1)) end
      -- nothing is released early (>= 2 x 0.1 s), and not much later (a loaded machine)
      assert.is_true(rtt0 < 0.05, "round trip without delay: " .. rtt0)
      assert.is_true(rtt1 >= 0.2 and rtt1 < 0.35, "round trip with 0.1 s each way: " .. rtt1)
      assert.is_true(rtt1 - rtt0 >= 0.19, ("difference %.3f s"):format(rtt1 - rtt0))
    end)
  end)

  it("loss slows a transfer: a lost segment costs a retransmission timeout", function()
    local tmp, torrent = S.fixture("l.bin", 2 * 1024 * 1024, 6, 16)
    local pids = {}
    S.guard(tmp, pids, function()
      local a_pid, a = start_seed(tmp, torrent, 0.01, 0)
      pids[#pids + 1] = a_pid
      local b_pid, b = start_seed(tmp, torrent, 0.01, 0.05)
      pids[#pids + 1] = b_pid
      local clean = leech(tmp, torrent, a, 0.01, 0)
      local lossy = leech(tmp, torrent, b, 0.01, 0.05)
      if os.getenv("BT_SPEC_VERBOSE") then print(("2 MiB: %.2f s, with loss %.2f s"):format(clean, lossy)) end
      assert.is_true(lossy > clean + 0.5, ("2 MiB: %.2f s without loss, %.2f s with 5 %% loss"):format(clean, lossy))
    end)
  end)

  it("refuses bad values", function()
    for _, o in ipairs{ { delay = -0.1 }, { delay = 2.5 }, { delay = 0 / 0 }, { loss = -0.01 }, { loss = 0.6 },
                        { loss = 0 / 0 }, { loss_seed = -1 } } do
      o.port = -1
      local ok, err = pcall(session.new, o)
      assert.is_false(ok)
      assert.matches("must be in", tostring(err))
    end
    local s = session.new{ port = -1, delay = 2, loss = 0.5 }   -- the bounds themselves are allowed
    s:close()
  end)
end)
