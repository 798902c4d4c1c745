--- Open-file limits (issue 9): a seed out of descriptors under a reconnect flood rests
-- its listener instead of spinning (accept4 failed with EMFILE, the level-triggered
-- listener fired again at once: 100 % of a core), and serves again once descriptors
-- are back; max_peers is clamped to what the limit allows, with a message.
-- Everything on 127.0.0.1; processes killed by PID; every wait bounded.
local H = require "helpers"
local S = require "swarm_helpers"
local socket = require "socket"

local read_or_empty = S.read_or_empty

--- utime + stime of a process, in clock ticks (/proc/PID/stat fields 14 and 15).
local function cpu_ticks(pid)
  local stat = read_or_empty("/proc/" .. pid .. "/stat")
  local rest = stat:match("%) (.*)$")   -- after the command name, which may hold spaces
  assert(rest, "no /proc/" .. pid .. "/stat")
  local f = {}
  for x in rest:gmatch("%S+") do f[#f + 1] = x end
  return tonumber(f[12]) + tonumber(f[13])   -- fields 14 and 15, counted from field 3
end

local function nfds(pid)
  local p = io.popen("ls /proc/" .. pid .. "/fd | wc -l")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

--- Hold up to `n` connections to port, closing the oldest and dialing again, for `secs`.
local function flood(port, n, secs)
  local open, t0 = {}, socket.gettime()
  while socket.gettime() - t0 < secs do
    local c = socket.tcp()
    c:settimeout(0)
    c:connect("127.0.0.1", port)
    open[#open + 1] = c
    if #open > n then table.remove(open, 1):close() end
    if #open % 20 == 0 then socket.sleep(0.002) end
  end
  for _, c in ipairs(open) do c:close() end
end

describe("open-file limits", function()
  local dir, pids
  before_each(function()
    dir, pids = H.tmpdir(), {}
  end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(dir)
  end)

  local function payload()
    os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/out"))
    S.make_files(dir .. "/seed", { ["p.bin"] = 512 * 1024 }, 9)
    return S.mktorrent(dir .. "/seed/p.bin", dir .. "/p.torrent", 15)
  end

  it("a seed out of descriptors under a reconnect flood does not spin, and serves once they are back", function()
    local torrent = payload()
    local port = S.port()
    local h = S.start_btlua(dir, ("seed %s --dir %s --port %d --no-trackers"):format(H.q(torrent),
      H.q(dir .. "/seed"), port), 60)
    pids[#pids + 1] = h.pid
    assert.is_true(S.wait_port(port, 10), "the seed never listened: " .. read_or_empty(h.log))
    -- leave it two spare descriptors: the flood's third connection finds none
    local soft = nfds(h.pid) + 2
    local hard = io.popen("prlimit --pid " .. h.pid .. " --nofile --noheadings --output HARD"):read("a"):match("%S+")
    assert.is_true(os.execute(("prlimit --pid %d --nofile=%d:%s"):format(h.pid, soft, hard)) == true)
    local c0, w0 = cpu_ticks(h.pid), socket.gettime()
    flood(port, 300, 3)
    local cpu = (cpu_ticks(h.pid) - c0) / 100   -- USER_HZ is 100 on Linux
    local wall = socket.gettime() - w0
    print(("fd: seed CPU %.2f s over a %.1f s flood with %d descriptors"):format(cpu, wall, soft))
    assert.is_nil(S.rc_of(h), "the seed died: " .. read_or_empty(h.log))
    -- a spin costs a whole core (about `wall` seconds); resting, a few wake-ups a second
    assert.is_true(cpu < wall / 4, ("seed used %.2f CPU-s in %.1f s"):format(cpu, wall))
    assert.is_true(os.execute(("prlimit --pid %d --nofile=%s:%s"):format(h.pid, hard, hard)) == true)
    local out, ok = H.sh_bt(("timeout 30 env %s lua5.4 %s run bt.policy.default %s -o %s --peer 127.0.0.1:%d "
      .. "--no-trackers -q --timeout 20"):format(H.lua_env(), H.q(H.root .. "/scripts/bt-lua"), H.q(torrent),
      H.q(dir .. "/out"), port))
    assert.is_true(ok, out .. read_or_empty(h.log))
    assert.are.equal(S.sha256(dir .. "/seed/p.bin"), S.sha256(dir .. "/out/p.bin"))
  end)

  it("max_peers above what the open-file limit allows is lowered, with a message", function()
    local torrent = payload()
    -- 64 descriptors: 24 kept for the process, a quarter of the other 40 for handshakes,
    -- 30 for peers (csrc/engine/session.c fd_budget)
    local out = H.sh_bt(("ulimit -n 64 && timeout 30 env %s lua5.4 %s run bt.policy.default %s -o %s "
      .. "--peer 127.0.0.1:%d --no-trackers -q --timeout 1 --max-peers 500"):format(H.lua_env(),
      H.q(H.root .. "/scripts/bt-lua"), H.q(torrent), H.q(dir .. "/out"), S.port()))
    assert.truthy(out:find("max_peers 500 lowered to 30: the open-file limit is 64 (ulimit -n)", 1, true), out)
    out = H.sh_bt(("ulimit -n 64 && timeout 30 env %s lua5.4 %s run bt.policy.default %s -o %s "
      .. "--peer 127.0.0.1:%d --no-trackers -q --timeout 1 --max-peers 30"):format(H.lua_env(),
      H.q(H.root .. "/scripts/bt-lua"), H.q(torrent), H.q(dir .. "/out"), S.port()))
    assert.falsy(out:find("lowered", 1, true), out)
  end)
end)
