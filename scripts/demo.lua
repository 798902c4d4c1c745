--- make demo: a local swarm on 127.0.0.1 downloaded with examples/rarest_first.lua.
-- An opentracker, a libtorrent seed and two aria2c seeds (one throttled to 2 MiB/s)
-- share a 256 MiB payload; `bt-lua run` finds them through the tracker, shows its
-- progress line, and the result is compared byte for byte. Everything started here
-- is killed by PID at the end; every wait is bounded.
--   lua5.4 scripts/demo.lua [MiB]
local here = (arg and arg[0] or ""):match("^(.*)/scripts/[^/]*$") or "."
package.path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. package.path
package.cpath = here .. "/build/?.so;" .. package.cpath
local socket = require "socket"
local bt = require "bt"

local MIB = tonumber(arg[1]) or 256

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  p:close()
  return out
end
local function spawn(cmd)
  local p = io.popen("sh -c " .. q(cmd .. " >/dev/null 2>&1 & echo $!"))
  local pid = tonumber(p:read("l"))
  p:close()
  return pid
end
local function free_port()
  for _ = 1, 100 do
    local port = math.random(20000, 60000)
    local s = socket.bind("127.0.0.1", port)
    if s then s:close(); return port end
  end
  error("no free port")
end
local function wait_port(port)
  for _ = 1, 150 do
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect("127.0.0.1", port) then c:close(); return end
    c:close()
    socket.sleep(0.1)
  end
  error("nothing listens on " .. port)
end
local function say(...) io.stderr:write("demo: ", string.format(...), "\n") end

local dir = sh("mktemp -d /tmp/bt-demo.XXXXXX"):gsub("%s+$", "")
os.execute("chmod 755 " .. q(dir) .. " && mkdir -p " .. q(dir .. "/seed"))
local pids = {}
local ok, err = pcall(function()
  say("making a %d MiB payload and its torrent in %s", MIB, dir)
  sh(("head -c %d /dev/urandom > %s"):format(MIB * 1048576, q(dir .. "/seed/demo.bin")))
  local tport = free_port()
  local torrent = dir .. "/demo.torrent"
  sh(("mktorrent -l 18 -a http://127.0.0.1:%d/announce -o %s %s"):format(tport, q(torrent), q(dir .. "/seed/demo.bin")))
  local f = assert(io.open(torrent, "rb"))
  local meta = assert(bt.meta_parse(f:read("a")))
  f:close()

  local wl = dir .. "/whitelist"
  f = assert(io.open(wl, "w"))
  f:write(meta.info_hash_hex, "\n")
  f:close()
  os.execute("chmod 644 " .. q(wl))
  pids[#pids + 1] = spawn(("opentracker -i 127.0.0.1 -p %d -P %d -w %s"):format(tport, tport, q(wl)))
  local http = require "socket.http"
  local probe = ("http://127.0.0.1:%d/announce?info_hash=%s&peer_id=-DEMO00-000000000000&port=1&left=0&compact=1&event=stopped")
    :format(tport, meta.info_hash_hex:gsub("%x%x", "%%%0"))
  local ready = false
  for _ = 1, 75 do
    local body = http.request(probe)
    if body and not body:find("failure reason", 1, true) then ready = true; break end
    socket.sleep(0.2)
  end
  assert(ready, "opentracker never accepted the torrent")
  say("opentracker on port %d", tport)

  for i, limit in ipairs{ "0", "2M" } do
    local port = free_port()
    pids[#pids + 1] = spawn(("aria2c -V --seed-ratio=0.0 --enable-dht=false --bt-enable-lpd=false " ..
      "--enable-peer-exchange=false --max-upload-limit=%s --listen-port=%d --dht-listen-port=%d -d %s %s")
      :format(limit, port, free_port(), q(dir .. "/seed"), q(torrent)))
    wait_port(port)
    say("aria2c seed %d on port %d%s", i, port, limit ~= "0" and (" (upload limited to " .. limit .. "/s)") or "")
  end
  local lport = free_port()
  pids[#pids + 1] = spawn(("/usr/bin/python3 %s seed %s %s %d"):format(q(here .. "/bench/engine_lt.py"),
    q(torrent), q(dir .. "/seed"), lport))
  wait_port(lport)
  -- libtorrent announces on its own schedule; tell the tracker about it now
  http.request(("http://127.0.0.1:%d/announce?info_hash=%s&peer_id=-LT0000-000000000000&port=%d&left=0&compact=1&event=started")
    :format(tport, meta.info_hash_hex:gsub("%x%x", "%%%0"), lport))
  say("libtorrent seed on port %d", lport)

  say("bt-lua run examples/rarest_first.lua demo.torrent")
  local t0 = socket.gettime()
  local rc = os.execute(("lua5.4 %s run %s %s -o %s --timeout 30 --stats %s"):format(q(here .. "/scripts/bt-lua"),
    q(here .. "/examples/rarest_first.lua"), q(torrent), q(dir .. "/out"), q(dir .. "/stats.json")))
  local secs = socket.gettime() - t0
  assert(rc == true, "bt-lua run failed")
  local same = sh(("cmp %s %s && echo same"):format(q(dir .. "/seed/demo.bin"), q(dir .. "/out/demo.bin")))
  assert(same:find("same"), "the downloaded file differs")
  say("identical bytes; %d MiB in %.2f s (%.0f MiB/s) with the rarest-first example policy", MIB, secs, MIB / secs)
end)
for _, pid in ipairs(pids) do os.execute("kill " .. pid .. " 2>/dev/null") end
os.execute("rm -rf " .. q(dir))
if not ok then io.stderr:write("demo failed: ", tostring(err), "\n"); os.exit(1) end
