--- Helpers for the tracker specs: free ports, a real opentracker, the fake HTTP
-- tracker (spec/fake_tracker.lua). Everything listens on 127.0.0.1, is started
-- in the background with its PID recorded, and is stopped by that PID.
local socket = require "socket"
local H = require "helpers"
local S = require "swarm_helpers"

local T = {}

-- One set of process and port helpers for every integration spec: swarm_helpers' (ports
-- are scanned upwards, so a port a test just released is not handed out again at once;
-- kill escalates to SIGKILL).
T.free_port, T.spawn, T.kill, T.sleep, T.wait_port = S.port, S.spawn, S.kill, S.sleep, S.wait_port

--- opentracker on 127.0.0.1 serving the given info-hashes (raw 20-byte strings).
-- Returns {pid=, port=, url=, dir=}. The whitelist is read by user nobody a moment
-- after start: folder and file are world-readable, and we probe with announces
-- until the reply has no failure reason (bounded to ~10 s). The probe uses a
-- torrent of its own (T.PROBE_HASH, added to the whitelist) so it leaves no peer
-- in the caller's swarms, and no event: opentracker answers a "stopped" without
-- looking at the whitelist.
T.PROBE_HASH = string.rep("\255", 20)

-- `port` may be given when a torrent must name the tracker's URL before it starts.
function T.start_opentracker(hashes, port)
  local bt = require "bt"
  local dir = H.tmpdir()
  H.sh("chmod 755 " .. H.q(dir))
  local hex = {}
  for i, h in ipairs(hashes) do hex[i] = (h:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
  hex[#hex + 1] = string.rep("ff", 20)
  H.writefile(dir .. "/whitelist", table.concat(hex, "\n") .. "\n")
  H.sh("chmod 644 " .. H.q(dir .. "/whitelist"))
  port = port or T.free_port()
  local pid = T.spawn(string.format("cd %s && exec opentracker -i 127.0.0.1 -p %d -P %d -w %s",
    H.q(dir), port, port, H.q(dir .. "/whitelist")), dir .. "/log")
  local o = { pid = pid, port = port, dir = dir, url = "http://127.0.0.1:" .. port .. "/announce" }
  local deadline = socket.gettime() + 10
  local probe_id = bt.peer_id()
  while true do
    local r = bt.tracker.announce({ url = o.url, info_hash = T.PROBE_HASH, peer_id = probe_id,
                                    port = 1 }, 1)
    if r and not r.failure_reason then break end
    if socket.gettime() > deadline then
      T.stop(o)
      error("opentracker did not come up: " .. tostring(r and r.failure_reason))
    end
    socket.sleep(0.1)
  end
  return o
end

function T.stop(o)
  if not o then return end
  T.kill(o.pid)
  if o.dir then H.rmtree(o.dir) end
end

--- The fake tracker (spec/fake_tracker.lua) on a free port: {pid=, port=, base=}.
function T.start_fake()
  local port = T.free_port()
  local log = os.tmpname()
  local pid = T.spawn("exec lua5.4 spec/fake_tracker.lua " .. port .. " 120", log)
  local f = { pid = pid, port = port, base = "http://127.0.0.1:" .. port, log = log }
  if not T.wait_port(port, 5) then
    T.kill(pid)
    error("fake tracker did not start: " .. H.readfile(log))
  end
  return f
end

function T.stop_fake(f)
  if not f then return end
  T.kill(f.pid)
  os.remove(f.log)
end

return T
