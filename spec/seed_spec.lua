--- Clean shutdown on SIGINT/SIGTERM, seeding (bt-lua run --seed, bt-lua seed) and
-- rate limits, through the real command line against real peers (aria2c) on 127.0.0.1.
-- Every process is started in the background, known by PID, and killed by PID.
local H = require "helpers"
local S = require "swarm_helpers"
local socket = require "socket"

-- How long a spec waits for a process to finish before failing (and killing it).
local EXIT_WAIT = 20

--- Start bt-lua ARGS in the background. Returns a handle: pid (the lua5.4 process
-- itself, which records its own PID before exec, so a signal reaches bt-lua and
-- not a shell), rcfile (written with the exit code when it ends), log.
local function start_btlua(dir, args)
  local id = tostring(socket.gettime()):gsub("%.", "")
  local h = { pidfile = dir .. "/pid-" .. id, rcfile = dir .. "/rc-" .. id, log = dir .. "/log-" .. id }
  local inner = ("echo $$ > %s; exec env %s lua5.4 %s %s"):format(H.q(h.pidfile), H.lua_env(),
    H.q(H.root .. "/scripts/bt-lua"), args)
  S.spawn(("(sh -c %s; echo $? > %s)"):format(H.q(inner), H.q(h.rcfile)), h.log, true)
  local deadline = socket.gettime() + 5
  while socket.gettime() < deadline do
    local f = io.open(h.pidfile)
    local pid = f and tonumber(f:read("l"))
    if f then f:close() end
    if pid then h.pid = pid; return h end
    socket.sleep(0.05)
  end
  error("bt-lua did not start")
end

--- Wait (bounded) for the process to end; returns its exit code (nil: still running,
-- then killed), and its log.
local function wait_exit(h, seconds)
  local deadline = socket.gettime() + (seconds or EXIT_WAIT)
  while socket.gettime() < deadline do
    local f = io.open(h.rcfile)
    local rc = f and tonumber(f:read("l"))
    if f then f:close() end
    if rc then return rc, H.readfile(h.log) end
    socket.sleep(0.05)
  end
  S.kill(h.pid)
  return nil, H.readfile(h.log)
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

describe("bt-lua run: SIGTERM / SIGINT", function()
  local dir, pids = nil, {}
  before_each(function() dir = H.tmpdir(); pids = {} end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(dir)
  end)

  for _, sig in ipairs{ "TERM", "INT" } do
    it("SIG" .. sig .. " mid-download: exit 0, resume data written, a restart trusts its pieces", function()
      local size = 3 * 1024 * 1024
      os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/out"))
      S.make_files(dir .. "/seed", { ["payload.bin"] = size }, 7)
      local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 16)
      -- 300 KiB/s: ~10 s for the whole payload, so the signal lands mid-download
      local apid, aport = S.aria2_seed(torrent, dir .. "/seed", { limit = "300K" })
      pids[#pids + 1] = apid
      local h = start_btlua(dir, ("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers"):format(
        H.q(torrent), H.q(dir .. "/out"), aport))
      pids[#pids + 1] = h.pid
      -- wait until some data arrived (bounded), then signal by PID
      local deadline = socket.gettime() + 10
      local rpath = dir .. "/out/.bt-lua/" .. S.info_hash_hex(torrent) .. ".resume"
      while socket.gettime() < deadline do
        socket.sleep(0.2)
        local f = io.open(rpath)   -- saved every few seconds once pieces arrive
        if f then f:close(); break end
      end
      socket.sleep(0.5)
      os.execute("kill -" .. sig .. " " .. h.pid)
      local t0 = socket.gettime()
      local rc, log = wait_exit(h, 10)
      assert.are.equal(0, rc, "log: " .. tostring(log))
      assert.truthy(socket.gettime() - t0 < 5, "shutdown took too long")
      assert.truthy(log:find("interrupted by SIG" .. sig, 1, true), log)
      local resume = require "bt.resume"
      local session = require "bt.session"
      local m = assert(session.metainfo(torrent))
      local r = resume.load(rpath, m, dir .. "/out")
      assert.is_nil(r.reason, r.reason)
      local saved = r.have:count()
      assert.truthy(saved > 0 and saved < m.num_pieces, "pieces saved: " .. saved)
      -- the restart trusts exactly those pieces (no hash check) and has them
      local s = session.new{ port = -1 }
      local t = s:add(torrent, { dir = dir .. "/out", trackers = false })
      local info = s:resume_info(t)
      assert.are.equal(saved, info.trusted)
      assert.is_nil(info.reason)
      assert.are.equal(saved, t:stats().pieces_done)
      s:close()
    end)
  end
end)
