--- Benchmark: the engine. 1 GiB from one local libtorrent seed per torrent over
-- loopback, downloaded by `bt-lua run` (default policy) and, in the same run, by
-- libtorrent's own leecher and by aria2c (found through opentracker, since aria2c
-- cannot be handed a peer), and optionally by the reference build's `bt-lua run`
-- (the code before the change: bench/reflib.lua). Runs alternate between piece sizes
-- and clients (two shared cores are noisy). Prints wall seconds, CPU seconds
-- (user+sys, /usr/bin/time) per GiB, peak RSS, first to last byte and last byte to exit
-- (the tail), medians, with ratios and the issue's targets.
--   lua5.4 bench/engine_bench.lua [MiB] [runs] [--ref] [--pieces=16,1024] [--clients=btlua,ref,...]
-- MiB: payload size (default 1024); runs: runs of each client and piece size (default 5).
-- --pieces (env BT_BENCH_PIECES): piece sizes in KiB, comma-separated, powers of two
--   (mktorrent -l log2(bytes); below 32 KiB, which mktorrent 1.1 refuses, transmission-create
--   -s KiB); default 32,1024. With a small size and 1024 it prints each client's
--   CPU ratio small / 1 MiB (the issue's target for bt-lua with 32 KiB: at most 1.2).
-- --clients (env BT_BENCH_CLIENTS): any of btlua, ref, libtorrent, aria2c; default
--   btlua,libtorrent,aria2c. --ref (or env BT_BENCH_REF set) adds ref: the reference
--   revision's scripts/bt-lua with its own lua/ and build/ (BT_BENCH_REF, default the last
--   commit before the re-cut), built once under build/ref/. With btlua and ref it prints
--   wall, CPU and RSS ratios new/old per piece size.
--   Focused, quick: BT_BENCH_CLIENTS=btlua,ref lua5.4 bench/engine_bench.lua 256 3 --pieces=16,1024
-- env BT_BENCH_WARMUP (default 1): unmeasured downloads per torrent before the runs.
-- Medians; min, user and sys are printed too: sys time varies most between runs here.
-- Every client run is bounded (timeout 300 s; the libtorrent leecher gives up at 120 s).
-- Output goes to a fresh folder under BT_BENCH_DIR (default /tmp): the page cache of
-- this machine decides a good part of the numbers; /dev/shm takes the disk out.
-- First and last byte: the bench samples the loopback interface's received bytes every
-- 2 ms while a client runs (its seed sends nothing else); "transfer" is the first to the
-- last sample that grew by more than TRAFFIC_MIN bytes, "tail" the last byte to the
-- client's exit (for bt-lua: data and resume data durable). So that other programs'
-- loopback traffic does not count, the bench re-runs itself in a network namespace of its
-- own (`unshare -n`, root; else `unshare -rn`) unless BT_BENCH_NETNS=0; when neither
-- works it says so and counts every loopback byte of the machine.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local B = dofile(here .. "/benchlib.lua")   -- also points package.path/cpath at this checkout

-- a private network namespace (see the header), entered once by re-running this script
if not os.getenv("BT_BENCH_NETNS") then
  local function qq(x) return "'" .. tostring(x):gsub("'", "'\\''") .. "'" end
  local argv = { "lua5.4", qq(arg[0]) }
  for _, a in ipairs(arg) do argv[#argv + 1] = qq(a) end
  local inner = "ip link set lo up && BT_BENCH_NETNS=1 exec " .. table.concat(argv, " ")
  for _, u in ipairs { "unshare -n", "unshare -rn" } do
    if os.execute(u .. " true 2>/dev/null") then
      local ok, how, code = os.execute(u .. " sh -c " .. qq(inner))
      os.exit(ok and 0 or (how == "exit" and code or 1))
    end
  end
  io.stderr:write("engine bench: no private network namespace (unshare failed): first/last byte "
    .. "and tail count all loopback traffic of this machine\n")
end
local R = dofile(here .. "/reflib.lua")
local socket = require "socket"

local pos, flags = {}, {}
for _, a in ipairs(arg) do
  local k, v = a:match("^%-%-([%w-]+)=?(.*)$")
  if k then flags[k] = v else pos[#pos + 1] = a end
end
local MIB = tonumber(pos[1]) or 1024
local RUNS = tonumber(pos[2]) or 5
local base = os.getenv("BT_BENCH_DIR") or "/tmp"
local WARMUP = tonumber(os.getenv("BT_BENCH_WARMUP") or "1")

local function list(s)
  local out = {}
  for x in (s or ""):gmatch("[^,%s]+") do out[#out + 1] = x end
  return out
end
local PIECES_KIB = {}
for _, x in ipairs(list(flags.pieces or os.getenv("BT_BENCH_PIECES") or "32,1024")) do
  local kib = assert(tonumber(x), "--pieces: " .. x)
  local l = math.floor(math.log(kib * 1024, 2) + 0.5)
  assert(2 ^ l == kib * 1024 and l >= 14, "--pieces: " .. x .. " KiB is not a power of two >= 16")
  PIECES_KIB[#PIECES_KIB + 1] = kib
end
local want = {}
local clients_arg = flags.clients or os.getenv("BT_BENCH_CLIENTS") or "btlua,libtorrent,aria2c"
for _, c in ipairs(list(clients_arg)) do
  assert(({ btlua = 1, ref = 1, libtorrent = 1, aria2c = 1 })[c], "unknown client " .. c
    .. " (btlua, ref, libtorrent, aria2c)")
  want[c] = true
end
if flags.ref or os.getenv("BT_BENCH_REF") then want.ref = true end

local q, sh = B.q, B.sh
local spawn, kill, free_port, wait_port = B.spawn, B.kill, B.free_port, B.wait_port

-- Bytes received on the loopback interface so far (this namespace's: see the header).
local function lo_bytes()
  local f = io.open("/proc/self/net/dev", "rb")
  if not f then return 0 end
  local t = f:read("a")
  f:close()
  return tonumber(t:match("\n%s*lo:%s*(%d+)")) or 0
end
-- A sample that grew by more than this is payload (a 16 KiB block and its headers);
-- after the download only have, keep-alive and close messages of a few dozen bytes flow.
local TRAFFIC_MIN = 4096
local SAMPLE = 0.002   -- s between samples: the resolution of transfer and tail

-- Whether process `pid` is gone or a zombie (its parent, the spawning shell, is gone too
-- and PID 1 may not reap it).
local function exited(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "rb")
  if not f then return true end
  local st = f:read("a") or ""
  f:close()
  local state = st:match("^%d+ %b() (%a)")
  return state == nil or state == "Z" or state == "X"
end

-- Run `cmd` under /usr/bin/time in the background, sampling loopback traffic until it
-- exits. Returns { wall, cpu (user+sys), user, sys (s), rss (KiB), xfer (first to last
-- byte, s), tail (last byte to exit, s) }.
local function timed(cmd, scratch)
  local tf, log = scratch .. "/time.out", scratch .. "/client.log"
  os.remove(tf)
  local pid = spawn(("/usr/bin/time -o %s -f '__T %%e %%U %%S %%M' timeout -k 5 300 %s"):format(q(tf), cmd), log)
  local prev, first, last = lo_bytes(), nil, nil
  local t
  repeat
    socket.sleep(SAMPLE)
    t = socket.gettime()
    local b = lo_bytes()
    if b - prev > TRAFFIC_MIN then
      first = first or t - SAMPLE
      last = t
    end
    prev = b
  until exited(pid)
  local f = io.open(tf, "rb")
  local out = f and f:read("a") or ""
  if f then f:close() end
  local w, u, s, rss = out:match("__T ([%d.]+) ([%d.]+) ([%d.]+) (%d+)")
  if not w or out:find("Command exited with non%-zero status") then
    local lf = io.open(log, "rb")
    error("run failed:\n" .. out .. (lf and lf:read("a") or ""))
  end
  return { wall = tonumber(w), cpu = tonumber(u) + tonumber(s), user = tonumber(u), sys = tonumber(s),
           rss = tonumber(rss), xfer = first and last - first or 0 / 0, tail = last and t - last or 0 / 0 }
end

local cur = R.current()
local ref = want.ref and R.build() or nil

local dir = sh("mktemp -d " .. q(base .. "/bt-bench.XXXXXX")):gsub("%s+$", "")
local data = dir .. "/seed/payload.bin"
os.execute("mkdir -p " .. q(dir .. "/seed") .. " && chmod 755 " .. q(dir))
io.stderr:write(("engine bench: %d MiB payload in %s; pieces %s KiB; clients %s\n"):format(MIB, dir,
  table.concat(PIECES_KIB, ","), clients_arg .. (want.ref and not clients_arg:find("ref") and ",ref" or "")))
sh(("head -c %d /dev/urandom > %s"):format(MIB * 1048576, q(data)))
local tport = free_port()
local bt = require "bt"
local torrents = {}   -- one per piece size: { kib, path, meta, sport }
for _, kib in ipairs(PIECES_KIB) do
  local path = ("%s/p%d.torrent"):format(dir, kib)
  local l = math.floor(math.log(kib * 1024, 2) + 0.5)
  -- mktorrent (1.1) takes -l 15..28 only: 16 KiB pieces come from transmission-create
  local out, okc
  if l >= 15 then
    out, okc = sh(("mktorrent -l %d -a http://127.0.0.1:%d/announce -o %s %s"):format(l, tport, q(path), q(data)))
  else
    out, okc = sh(("transmission-create -s %d -t http://127.0.0.1:%d/announce -o %s %s"):format(kib, tport, q(path),
      q(data)))
  end
  if not okc then error("making the torrent failed:\n" .. out) end
  local f = assert(io.open(path, "rb"))
  local meta = assert(bt.meta_parse(f:read("a")))
  f:close()
  torrents[#torrents + 1] = { kib = kib, path = path, meta = meta }
end

local pids = {}
local ok, err = pcall(function()
  -- tracker for aria2c (whitelist read by user nobody)
  if want.aria2c then
    local wl = dir .. "/wl"
    local wf = assert(io.open(wl, "w"))
    for _, tor in ipairs(torrents) do wf:write(tor.meta.info_hash_hex, "\n") end
    wf:close()
    os.execute("chmod 644 " .. q(wl))
    pids[#pids + 1] = spawn(("opentracker -i 127.0.0.1 -p %d -P %d -w %s"):format(tport, tport, q(wl)))
    socket.sleep(1.5)
  end
  -- one libtorrent seed per torrent, all from the same payload
  for _, tor in ipairs(torrents) do
    tor.sport = free_port()
    pids[#pids + 1] = spawn(("/usr/bin/python3 %s seed %s %s %d"):format(q(here .. "/engine_lt.py"), q(tor.path),
      q(dir .. "/seed"), tor.sport))
  end
  for _, tor in ipairs(torrents) do
    wait_port(tor.sport)
    if want.aria2c then
      -- announce the seed to the tracker by hand: libtorrent only does it on its own schedule
      local http = require "socket.http"
      for _ = 1, 20 do
        local body = http.request(("http://127.0.0.1:%d/announce?info_hash=%s&peer_id=-LT0000-000000000000"
          .. "&port=%d&left=0&compact=1&event=started")
          :format(tport, tor.meta.info_hash_hex:gsub("%x%x", "%%%0"), tor.sport))
        if body and not body:find("failure", 1, true) then break end
        socket.sleep(0.3)
      end
    end
  end

  local function btlua(tree)
    return function(tor, out)
      return ("env %s lua5.4 %s run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers -q")
        :format(R.env(tree), q(tree.btlua), q(tor.path), q(out), tor.sport)
    end
  end
  local clients = {}
  if want.btlua then
    clients[#clients + 1] = { key = "btlua", name = "bt-lua run (" .. cur.label .. ")", cmd = btlua(cur) }
  end
  if want.ref then
    clients[#clients + 1] = { key = "ref", name = "bt-lua run (" .. ref.label .. ", ref)", cmd = btlua(ref) }
  end
  if want.libtorrent then
    clients[#clients + 1] = { key = "libtorrent", name = "libtorrent leecher (python3-libtorrent)",
      cmd = function(tor, out)
        return ("/usr/bin/python3 %s leech %s %s %d"):format(q(here .. "/engine_lt.py"), q(tor.path), q(out),
          tor.sport)
      end }
  end
  if want.aria2c then
    clients[#clients + 1] = { key = "aria2c", name = "aria2c", cmd = function(tor, out)
        return ("aria2c --seed-time=0 --enable-dht=false --bt-enable-lpd=false --enable-peer-exchange=false " ..
          "--file-allocation=none --console-log-level=warn --summary-interval=0 --listen-port=%d -d %s %s")
          :format(free_port(), q(out), q(tor.path)) end }
  end
  assert(#clients > 0, "no client selected")
  -- warm-up: a libtorrent seed in seed mode checks each piece the first time it sends
  -- it, and the payload must be in the page cache; the first download of each torrent
  -- pays for both, so one unmeasured download per torrent comes first
  for _ = 1, WARMUP do
    for _, tor in ipairs(torrents) do
      local out = dir .. "/out"
      os.execute("rm -rf " .. q(out))
      local x = timed(clients[1].cmd(tor, out), dir)
      io.stderr:write(("  warm-up %5d KiB %-40s wall %.2f s (not counted)\n"):format(tor.kib, clients[1].name, x.wall))
      os.execute("rm -rf " .. q(out))
    end
  end
  local FIELDS = { "wall", "cpu", "user", "sys", "rss", "xfer", "tail" }
  local results = {}   -- [key .. "@" .. kib] = { wall = {...}, cpu = {...}, ... one per run }
  for r = 1, RUNS do
    for _, tor in ipairs(torrents) do
      for j = 1, #clients do
        -- every other run in reverse order, so no client always follows the same one
        local c = clients[r % 2 == 1 and j or #clients + 1 - j]
        local out = dir .. "/out"
        os.execute("rm -rf " .. q(out))
        local x = timed(c.cmd(tor, out), dir)
        local got = sh("cmp " .. q(data) .. " " .. q(out .. "/payload.bin") .. " && echo same")
        if not got:find("same") then error(c.name .. ": output differs\n" .. got) end
        local k = c.key .. "@" .. tor.kib
        if not results[k] then
          results[k] = {}
          for _, f in ipairs(FIELDS) do results[k][f] = {} end
        end
        for _, f in ipairs(FIELDS) do table.insert(results[k][f], x[f]) end
        io.stderr:write(("  run %d %5d KiB %-40s wall %.2f s  transfer %.2f s  tail %.2f s  cpu %.2f s (user %.2f, "
          .. "sys %.2f)  peak RSS %d MiB\n")
          :format(r, tor.kib, c.name, x.wall, x.xfer, x.tail, x.cpu, x.user, x.sys, x.rss // 1024))
        os.execute("rm -rf " .. q(out))
      end
    end
  end
  local median = B.median
  local function range(t)
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(t) do lo, hi = math.min(lo, v), math.max(hi, v) end
    return lo, hi
  end
  local gib = MIB / 1024
  local m = {}
  for k, r in pairs(results) do
    m[k] = { wall = median(r.wall), cpu = median(r.cpu), cpu_gib = median(r.cpu) / gib, rss = median(r.rss) / 1024,
             user = median(r.user), sys = median(r.sys), xfer = median(r.xfer), tail = median(r.tail) }
    m[k].wall_lo, m[k].wall_hi = range(r.wall)
    m[k].cpu_lo, m[k].cpu_hi = range(r.cpu)
    m[k].tail_lo, m[k].tail_hi = range(r.tail)
  end
  print(("engine: %d MiB, one libtorrent seed per torrent on loopback, median of %d runs each (interleaved; "
    .. "transfer: first to last byte, tail: last byte to exit)"):format(MIB, RUNS))
  for _, tor in ipairs(torrents) do
    print(("  %d KiB pieces (%d pieces):"):format(tor.kib, tor.meta.num_pieces))
    for _, c in ipairs(clients) do
      local x = m[c.key .. "@" .. tor.kib]
      print(("    %-42s wall %6.2f s (%6.1f MiB/s; min %.2f, max %.2f)  transfer %5.2f s (%6.1f MiB/s)  "
        .. "tail %5.2f s (min %.2f, max %.2f)  cpu %5.2f s (%5.2f s/GiB; min %.2f, max %.2f; user %.2f, sys %.2f)  "
        .. "peak RSS %6.1f MiB")
        :format(c.name, x.wall, MIB / x.wall, x.wall_lo, x.wall_hi, x.xfer, MIB / x.xfer, x.tail, x.tail_lo, x.tail_hi,
          x.cpu, x.cpu_gib, x.cpu_lo, x.cpu_hi, x.user, x.sys, x.rss))
    end
  end
  local function have(key) for _, c in ipairs(clients) do if c.key == key then return true end end end
  -- the issue's piece-size target: CPU with small pieces at most 1.2x that with 1 MiB pieces
  local small, large = PIECES_KIB[1], PIECES_KIB[#PIECES_KIB]
  for _, kib in ipairs(PIECES_KIB) do
    small, large = math.min(small, kib), math.max(large, kib)
  end
  if small ~= large then
    print(("  CPU %d KiB / %d KiB pieces (same client, same run):"):format(small, large))
    for _, c in ipairs(clients) do
      local a, b = m[c.key .. "@" .. small], m[c.key .. "@" .. large]
      local target = ""
      if (c.key == "btlua" or c.key == "ref") and small <= 32 and large == 1024 then
        target = ("  target <= 1.2: %s"):format(a.cpu / b.cpu <= 1.2 and "met" or "NOT met")
      end
      print(("    %-42s %.2f  (min/min %.2f, user %.2f, wall %.2f)%s"):format(c.name, a.cpu / b.cpu,
        a.cpu_lo / b.cpu_lo, a.user / b.user, a.wall / b.wall, target))
    end
  end
  if have("btlua") and have("ref") then
    print(("  new / old (%s / %s; 1.00: the same):"):format(cur.label, ref.label))
    for _, kib in ipairs(PIECES_KIB) do
      local a, b = m["btlua@" .. kib], m["ref@" .. kib]
      print(("    %5d KiB pieces: wall %.2f  tail %.2f  cpu %.2f (min/min %.2f, user %.2f)  RSS %.2f"):format(kib,
        a.wall / b.wall, a.tail / b.tail, a.cpu / b.cpu, a.cpu_lo / b.cpu_lo, a.user / b.user, a.rss / b.rss))
    end
  end
  if have("btlua") then
    for _, other in ipairs { { "libtorrent", "libtorrent" }, { "aria2c", "aria2c" } } do
      if have(other[1]) then
        for _, kib in ipairs(PIECES_KIB) do
          local me, o = m["btlua@" .. kib], m[other[1] .. "@" .. kib]
          print(("  bt-lua / %-10s (%4d KiB pieces): wall %.2f  transfer %.2f  tail %+.2f s  cpu %.2f  RSS %.2f "
            .. "(below 1: bt-lua faster, cheaper, smaller)")
            :format(other[2], kib, me.wall / o.wall, me.xfer / o.xfer, me.tail - o.tail, me.cpu / o.cpu,
              me.rss / o.rss))
        end
      end
    end
    -- the issue's targets (1 GiB; 1 MiB pieces, and the smallest piece size against libtorrent)
    local me, lt, ar = m["btlua@1024"], m["libtorrent@1024"], m["aria2c@1024"]
    local function verdict(okv) return okv and "met" or "NOT met" end
    if me then
      print("  targets (1 MiB pieces):")
      if lt then
        print(("    wall throughput >= 1.2x libtorrent's: %.2fx  %s"):format(lt.wall / me.wall,
          verdict(lt.wall / me.wall >= 1.2)))
        print(("    tail within 0.2 s of libtorrent's: %+.2f s  %s"):format(me.tail - lt.tail,
          verdict(me.tail - lt.tail <= 0.2)))
      end
      if ar then
        print(("    CPU <= aria2c's (aim 0.75x): %.2fx  %s"):format(me.cpu / ar.cpu, verdict(me.cpu <= ar.cpu)))
      end
      print(("    peak RSS <= 64 MiB: %.1f MiB  %s"):format(me.rss, verdict(me.rss <= 64)))
    end
    if small ~= 1024 and m["btlua@" .. small] and m["libtorrent@" .. small] then
      local a, b = m["btlua@" .. small], m["libtorrent@" .. small]
      print(("  target (%d KiB pieces): wall throughput >= libtorrent's: %.2fx  %s"):format(small, b.wall / a.wall,
        verdict(b.wall / a.wall >= 1)))
    end
  end
end)
for _, pid in ipairs(pids) do kill(pid) end
os.execute("rm -rf " .. q(dir))
if not ok then io.stderr:write(tostring(err), "\n"); os.exit(1) end
