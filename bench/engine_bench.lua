--- Benchmark: the engine. 1 GiB in 1 MiB pieces from one local libtorrent seed over
-- loopback, downloaded by `bt-lua run` (default policy) and, in the same run, by
-- libtorrent's own leecher and by aria2c (found through opentracker, since aria2c
-- cannot be handed a peer). Runs alternate between clients (two shared cores are
-- noisy). Prints wall seconds and CPU seconds (user+sys) per GiB, medians.
--   lua5.4 bench/engine_bench.lua [MiB] [runs]     (env BT_BENCH_DIR: scratch folder)
-- Output goes to a fresh folder under BT_BENCH_DIR (default /tmp): the page cache of
-- this machine decides a good part of the numbers; /dev/shm takes the disk out.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local root = here .. "/.."
local B = dofile(here .. "/benchlib.lua")   -- also points package.path/cpath at this checkout
local socket = require "socket"

local MIB = tonumber(arg[1]) or 1024
local RUNS = tonumber(arg[2]) or 3
local base = os.getenv("BT_BENCH_DIR") or "/tmp"

local q, sh = B.q, B.sh
local spawn, kill, free_port, wait_port = B.spawn, B.kill, B.free_port, B.wait_port

-- /usr/bin/time: wall, cpu (user+sys), user, sys seconds and peak RSS (KiB) of a command
local function timed(cmd)
  local out = sh("/usr/bin/time -f '__T %e %U %S %M' " .. cmd)
  local w, u, s, rss = out:match("__T ([%d.]+) ([%d.]+) ([%d.]+) (%d+)")
  if not w then error("run failed:\n" .. out) end
  return tonumber(w), tonumber(u) + tonumber(s), tonumber(u), tonumber(s), tonumber(rss)
end

local dir = sh("mktemp -d " .. q(base .. "/bt-bench.XXXXXX")):gsub("%s+$", "")
local data = dir .. "/seed/payload.bin"
os.execute("mkdir -p " .. q(dir .. "/seed") .. " && chmod 755 " .. q(dir))
io.stderr:write(("engine bench: %d MiB payload in %s\n"):format(MIB, dir))
sh(("head -c %d /dev/urandom > %s"):format(MIB * 1048576, q(data)))
local tport = free_port()
local torrent = dir .. "/p.torrent"
sh(("mktorrent -l 20 -a http://127.0.0.1:%d/announce -o %s %s"):format(tport, q(torrent), q(data)))
local bt = require "bt"
local f = assert(io.open(torrent, "rb"))
local meta = assert(bt.meta_parse(f:read("a")))
f:close()

local pids = {}
local ok, err = pcall(function()
  -- tracker for aria2c (whitelist read by user nobody)
  local wl = dir .. "/wl"
  local wf = assert(io.open(wl, "w"))
  wf:write(meta.info_hash_hex, "\n")
  wf:close()
  os.execute("chmod 644 " .. q(wl))
  pids[#pids + 1] = spawn(("opentracker -i 127.0.0.1 -p %d -P %d -w %s"):format(tport, tport, q(wl)))
  socket.sleep(1.5)
  local sport = free_port()
  pids[#pids + 1] = spawn(("/usr/bin/python3 %s seed %s %s %d"):format(q(here .. "/engine_lt.py"), q(torrent),
    q(dir .. "/seed"), sport))
  wait_port(sport)
  -- announce the seed to the tracker by hand: libtorrent only does it on its own schedule
  local http = require "socket.http"
  for _ = 1, 20 do
    local body = http.request(("http://127.0.0.1:%d/announce?info_hash=%s&peer_id=-LT0000-000000000000"
      .. "&port=%d&left=0&compact=1&event=started")
      :format(tport, meta.info_hash_hex:gsub("%x%x", "%%%0"), sport))
    if body and not body:find("failure", 1, true) then break end
    socket.sleep(0.3)
  end

  local clients = {
    { name = "bt-lua run (default policy)", cmd = function(out)
        return ("lua5.4 %s run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers -q")
          :format(q(root .. "/scripts/bt-lua"), q(torrent), q(out), sport) end },
    { name = "libtorrent leecher (python3-libtorrent)", cmd = function(out)
        return ("/usr/bin/python3 %s leech %s %s %d"):format(q(here .. "/engine_lt.py"), q(torrent), q(out), sport)
      end },
    { name = "aria2c", cmd = function(out)
        return ("aria2c --seed-time=0 --enable-dht=false --bt-enable-lpd=false --enable-peer-exchange=false " ..
          "--file-allocation=none --console-log-level=warn --summary-interval=0 --listen-port=%d -d %s %s")
          :format(free_port(), q(out), q(torrent)) end },
  }
  local results = {}
  for r = 1, RUNS do
    for _, c in ipairs(clients) do
      local out = dir .. "/out"
      os.execute("rm -rf " .. q(out))
      local wall, cpu, user, sys, rss = timed(c.cmd(out))
      local got = sh("cmp " .. q(data) .. " " .. q(out .. "/payload.bin") .. " && echo same")
      if not got:find("same") then error(c.name .. ": output differs\n" .. got) end
      results[c.name] = results[c.name] or { wall = {}, cpu = {}, rss = {} }
      table.insert(results[c.name].wall, wall)
      table.insert(results[c.name].cpu, cpu)
      table.insert(results[c.name].rss, rss)
      io.stderr:write(("  run %d %-42s wall %.2f s  cpu %.2f s (user %.2f, sys %.2f)  peak RSS %d MiB\n"):format(
        r, c.name, wall, cpu, user, sys, rss // 1024))
      os.execute("rm -rf " .. q(out))
    end
  end
  local function median(t)
    table.sort(t)
    return t[(#t + 1) // 2]
  end
  local gib = MIB / 1024
  print(("engine: %d MiB, 1 MiB pieces, one libtorrent seed on loopback, median of %d"):format(MIB, RUNS))
  local ref = {}
  for _, c in ipairs(clients) do
    local r = results[c.name]
    ref[c.name] = { wall = median(r.wall), cpu = median(r.cpu) / gib, rss = median(r.rss) / 1024 }
    print(("  %-42s wall %6.2f s  (%6.1f MiB/s)  cpu %5.2f s/GiB  peak RSS %6.1f MiB"):format(c.name,
      ref[c.name].wall, MIB / ref[c.name].wall, ref[c.name].cpu, ref[c.name].rss))
  end
  local me, lt, aria = ref[clients[1].name], ref[clients[2].name], ref[clients[3].name]
  print(("  bt-lua / libtorrent: wall %.2f  cpu %.2f  RSS %.2f (below 1: bt-lua faster, cheaper, smaller)")
    :format(me.wall / lt.wall, me.cpu / lt.cpu, me.rss / lt.rss))
  print(("  bt-lua / aria2c:     wall %.2f  cpu %.2f  RSS %.2f"):format(me.wall / aria.wall, me.cpu / aria.cpu,
    me.rss / aria.rss))
end)
for _, pid in ipairs(pids) do kill(pid) end
os.execute("rm -rf " .. q(dir))
if not ok then io.stderr:write(tostring(err), "\n"); os.exit(1) end
