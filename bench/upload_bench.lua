--- Benchmark: uploading. One payload (1 GiB by default, 1 MiB pieces) seeded over loopback
-- by bt-lua (spec/peers/btseed.lua: the library as a seed) and by libtorrent
-- (bench/engine_lt.py seed); each seed is downloaded from by libtorrent's leecher and by
-- aria2c, alternating, in the same run. Measures the leecher's wall time and the seed's
-- CPU seconds (utime+stime from /proc/PID/stat before and after) per GiB sent.
--   lua5.4 bench/upload_bench.lua [MiB] [runs]     (env BT_BENCH_DIR: scratch folder)
-- aria2c cannot be handed a peer: each seed gets its own torrent (same file, a different
-- `source` so a different info-hash) announced by hand to opentracker, so aria2c finds
-- exactly the seed under test.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local root = here .. "/.."
local B = dofile(here .. "/benchlib.lua")   -- also points package.path/cpath at this checkout
local socket = require "socket"

local MIB = tonumber(arg[1]) or 1024
local RUNS = tonumber(arg[2]) or 2
local base = os.getenv("BT_BENCH_DIR") or "/tmp"
local LEECH_LIMIT = 300          -- seconds any single download may take before we give up
local SEED_LIFETIME = 3600       -- btseed exits by itself after this; we kill it sooner
local LT_REF_CPU = 1.4           -- CPU-s/GiB of a libtorrent seed measured earlier (brief)

local q, sh = B.q, B.sh
local spawn, kill, free_port = B.spawn, B.kill, B.free_port
-- 30 s: the bt-lua seed hash-checks the payload first
local function wait_port(port) return B.wait_port(port, 300) end

local TICKS = tonumber(sh("getconf CLK_TCK"):match("%d+")) or 100
--- CPU seconds (user+system) a live process has used so far.
local function cpu_of(pid)
  local f = assert(io.open("/proc/" .. pid .. "/stat"), "process " .. pid .. " is gone")
  local s = f:read("a")
  f:close()
  -- fields after the ")" closing the command name; utime and stime are fields 14 and 15
  local rest = s:match("%) (.*)$")
  local fields = {}
  for w in rest:gmatch("%S+") do fields[#fields + 1] = w end
  return (tonumber(fields[12]) + tonumber(fields[13])) / TICKS
end

math.randomseed(os.time())
local dir = sh("mktemp -d " .. q(base .. "/bt-upbench.XXXXXX")):gsub("%s+$", "")
local data = dir .. "/seed/payload.bin"
os.execute("mkdir -p " .. q(dir .. "/seed") .. " && chmod 755 " .. q(dir))
io.stderr:write(("upload bench: %d MiB payload in %s\n"):format(MIB, dir))
sh(("head -c %d /dev/urandom > %s"):format(MIB * 1048576, q(data)))
local tport = free_port()
local bt = require "bt"
local function make_torrent(name)
  local path = dir .. "/" .. name .. ".torrent"
  sh(("mktorrent -l 20 -s %s -a http://127.0.0.1:%d/announce -o %s %s"):format(name, tport, q(path), q(data)))
  local f = assert(io.open(path, "rb"))
  local meta = assert(bt.meta_parse(f:read("a")))
  f:close()
  return path, meta.info_hash_hex
end

local pids = {}
local ok, err = pcall(function()
  local seeds = {
    { name = "bt-lua seed (btseed.lua)", tag = "btlua" },
    { name = "libtorrent seed (python3-libtorrent)", tag = "lt" },
  }
  local wl = {}
  for _, s in ipairs(seeds) do
    s.torrent, s.hash = make_torrent(s.tag)
    wl[#wl + 1] = s.hash
  end
  local wf = assert(io.open(dir .. "/wl", "w"))
  wf:write(table.concat(wl, "\n"), "\n")
  wf:close()
  os.execute("chmod 644 " .. q(dir .. "/wl"))
  pids[#pids + 1] = spawn(("opentracker -i 127.0.0.1 -p %d -P %d -w %s"):format(tport, tport, q(dir .. "/wl")))

  seeds[1].port = free_port()
  seeds[1].pid = spawn(("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s lua5.4 %s %s %s %d %d"):format(
    q(root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;"), q(root .. "/build/?.so;;"),
    q(root .. "/spec/peers/btseed.lua"), q(seeds[1].torrent), q(dir .. "/seed"), seeds[1].port, SEED_LIFETIME),
    dir .. "/btseed.log")
  pids[#pids + 1] = seeds[1].pid
  seeds[2].port = free_port()
  seeds[2].pid = spawn(("/usr/bin/python3 %s seed %s %s %d"):format(q(here .. "/engine_lt.py"),
    q(seeds[2].torrent), q(dir .. "/seed"), seeds[2].port))
  pids[#pids + 1] = seeds[2].pid
  for _, s in ipairs(seeds) do wait_port(s.port) end

  -- announce each seed for its own torrent (whitelist read a moment after start: retry)
  local http = require "socket.http"
  for _, s in ipairs(seeds) do
    local done = false
    for _ = 1, 30 do
      local body = http.request(("http://127.0.0.1:%d/announce?info_hash=%s&peer_id=-UB0000-%012d"
        .. "&port=%d&left=0&compact=1&event=started")
        :format(tport, s.hash:gsub("%x%x", "%%%0"), s.port, s.port))
      if body and not body:find("failure", 1, true) then done = true; break end
      socket.sleep(0.3)
    end
    assert(done, "opentracker never accepted " .. s.tag)
  end

  local leechers = {
    { name = "libtorrent leecher", cmd = function(s, out)
        return ("timeout %d /usr/bin/python3 %s leech %s %s %d"):format(LEECH_LIMIT, q(here .. "/engine_lt.py"),
          q(s.torrent), q(out), s.port) end },
    { name = "aria2c", cmd = function(s, out)
        return ("timeout %d aria2c --seed-time=0 --enable-dht=false --bt-enable-lpd=false " ..
          "--enable-peer-exchange=false --file-allocation=none --console-log-level=warn --summary-interval=0 " ..
          "--listen-port=%d -d %s %s")
          :format(LEECH_LIMIT, free_port(), q(out), q(s.torrent)) end },
  }
  -- warm-up, not counted: libtorrent's seed_mode hashes each piece on its first request (bt-lua
  -- hash-checked everything before it listened), and both then read from a warm page cache
  for _, s in ipairs(seeds) do
    local out = dir .. "/out"
    sh(leechers[1].cmd(s, out))
    os.execute("rm -rf " .. q(out))
  end
  local res = {}
  for r = 1, RUNS do
    for _, l in ipairs(leechers) do
      for _, s in ipairs(seeds) do
        local out = dir .. "/out"
        os.execute("rm -rf " .. q(out))
        local c0, t0 = cpu_of(s.pid), socket.gettime()
        sh(l.cmd(s, out))
        local wall, cpu = socket.gettime() - t0, cpu_of(s.pid) - c0
        local got = sh("cmp " .. q(data) .. " " .. q(out .. "/payload.bin") .. " && echo same")
        if not got:find("same") then error(l.name .. " from " .. s.name .. ": output differs\n" .. got) end
        local key = l.name .. " <- " .. s.name
        res[key] = res[key] or { wall = {}, cpu = {} }
        table.insert(res[key].wall, wall)
        table.insert(res[key].cpu, cpu)
        io.stderr:write(("  run %d %-60s wall %6.2f s  seed cpu %5.2f s\n"):format(r, key, wall, cpu))
        os.execute("rm -rf " .. q(out))
      end
    end
  end
  local function median(t)
    table.sort(t)
    return t[(#t + 1) // 2]
  end
  local gib = MIB / 1024
  print(("upload: %d MiB, 1 MiB pieces, loopback, median of %d; seed CPU = utime+stime of the seed process")
    :format(MIB, RUNS))
  for _, l in ipairs(leechers) do
    local m = {}
    for i, s in ipairs(seeds) do
      local r = res[l.name .. " <- " .. s.name]
      m[i] = { wall = median(r.wall), cpu = median(r.cpu) / gib }
      print(("  %-60s wall %6.2f s (%6.1f MiB/s)  seed cpu %5.2f s/GiB"):format(l.name .. " <- " .. s.name,
        m[i].wall, MIB / m[i].wall, m[i].cpu))
    end
    print(("  %s: bt-lua seed / libtorrent seed: wall %.2f  cpu %.2f (below 1: bt-lua faster, cheaper)")
      :format(l.name, m[1].wall / m[2].wall, m[1].cpu / m[2].cpu))
  end
  print(("  reference from the brief: a libtorrent seed ~%.1f CPU-s/GiB"):format(LT_REF_CPU))
end)
for _, pid in ipairs(pids) do kill(pid) end
os.execute("rm -rf " .. q(dir))
if not ok then io.stderr:write(tostring(err), "\n"); os.exit(1) end
