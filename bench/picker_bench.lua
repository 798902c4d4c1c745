--- Benchmark: scale (the issue "Scale"). One torrent of 1,048,576 pieces on memory
-- storage and 200 idle peers on 127.0.0.1 (100 seeds, 100 with a random half of the
-- pieces), measured in bench/picker_driver.lua for the old code (the reference build,
-- bench/reflib.lua: env BT_BENCH_REF, default the last commit before the re-cut) and
-- for this checkout, runs alternating old/new. Prints, old and new side by side with
-- new/old: the default policy's pick for a peer with 64 free slots (median and p90 of
-- >= 1000 calls, process CPU from os.clock; wall from socket.gettime), the CPU of one
-- tick interval with every peer idle (median of 200), and RSS per piece and per peer.
-- Run `make` first (the new code is this checkout's build/bt/core.so; the old one is
-- built by reflib under build/ref/ on first use). About 3 minutes with the defaults.
--   lua5.4 bench/picker_bench.lua [runs=3] [plen=16384[,262144]] [driver keys...]
-- driver keys (bench/picker_driver.lua): pieces, seeds, halves, picks, per_tick, ticks,
-- tick_ms, rng, deadline, fresh, breakdown (1: also time t:partial and t:rarest alone;
-- this warms the caches for the pick that follows, so measure picks without it).
-- Targets for the new code: median pick <= 20 us, tick <= 1 ms.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local R = dofile(here .. "/reflib.lua")
local q = R.q

local runs, plens, pass = 3, { 16384 }, {}
for _, a in ipairs(arg) do
  local k, v = a:match("^(%w+)=(.+)$")
  if k == "runs" then runs = assert(tonumber(v), a)
  elseif k == "plen" then
    plens = {}
    for x in v:gmatch("[^,]+") do plens[#plens + 1] = assert(tonumber(x), a) end
  elseif k then pass[#pass + 1] = k .. "=" .. v
  else error("usage: picker_bench.lua [runs=N] [plen=L[,L...]] [key=value ...]") end
end

local old = R.build()
local new = R.current()
local versions = { old, new }

local function run_driver(x, plen)
  local log = os.tmpname()
  local cmd = ("%s timeout -k 5 500 lua5.4 %s plen=%d %s 2>%s"):format(R.env(x),
    q(R.root() .. "/bench/picker_driver.lua"), plen, table.concat(pass, " "), q(log))
  local p = io.popen("env -u LD_PRELOAD sh -c " .. q(cmd))
  local out = p:read("a")
  local ok = p:close()
  local f = io.open(log)
  local err = f and f:read("a") or ""
  if f then f:close() end
  os.remove(log)
  if not ok then error(("picker_driver (%s) failed:\n%s%s"):format(x.label, out, err)) end
  local r = {}
  for k, v in out:gmatch("RESULT (%S+) ([^\n]*)") do r[k] = tonumber(v) or v end
  return r
end

local median = dofile(here .. "/benchlib.lua").median

for _, plen in ipairs(plens) do
  local res = { {}, {} }
  for r = 1, runs do
    -- old, new, then new, old: neither always runs first (ABBA)
    for j = 1, 2 do
      local vi = r % 2 == 1 and j or 3 - j
      local x = versions[vi]
      local t = run_driver(x, plen)
      res[vi][#res[vi] + 1] = t
      io.stderr:write(("  run %d %-12s pick seed %7.1f us  half %7.1f us  fresh seed %7.1f us  half %7.1f us"
        .. "  tick %.3f ms  RSS/piece %.1f B  /peer %.0f B\n")
        :format(r, x.label, t.seed_cpu_med_us, t.half_cpu_med_us, t.fresh_seed_cpu_med_us or 0 / 0,
          t.fresh_half_cpu_med_us or 0 / 0, t.tick_cpu_med_ms, t.bytes_per_piece, t.bytes_per_peer))
    end
  end
  local function m(vi, key)
    local l = {}
    for _, t in ipairs(res[vi]) do if type(t[key]) == "number" then l[#l + 1] = t[key] end end
    return median(l)
  end
  local r1 = res[2][1]
  print(("picker: %d pieces of %d KiB (%d blocks each), %d peers (%d seeds, %d random halves), memory storage;"
    .. " median of %d runs each, old/new alternating (ABBA)"):format(r1.pieces, plen // 1024, plen // 16384, r1.peers,
    r1.seeds, r1.halves, runs))
  print(("  %-50s %14s %14s %9s  %s"):format("", old.label, new.label, "new/old", "target (new)"))
  local rows = {
    "pick after cancel_all (64 free slots, refilled from t:partial):",
    { "  seed peer, median (CPU us)", "seed_cpu_med_us", "%.1f", 20 },
    { "  seed peer, p90 (CPU us)", "seed_cpu_p90_us", "%.1f" },
    { "  seed peer, median (wall us)", "seed_wall_med_us", "%.1f" },
    { "  half peer, median (CPU us)", "half_cpu_med_us", "%.1f", 20 },
    { "  half peer, p90 (CPU us)", "half_cpu_p90_us", "%.1f" },
    { "  half peer, median (wall us)", "half_wall_med_us", "%.1f" },
    { "  requests per pick, seed", "seed_req_avg", "%.2f" },
    { "  requests per pick, half", "half_req_avg", "%.2f" },
    { "  picks measured per kind (per run)", "seed_n", "%d" },
    { "  pieces in progress (t.partials), mean", "seed_partials_avg", "%.0f" },
    { "  (breakdown=1) t:partial walk alone, seed (us)", "seed_iter_partial_med_us", "%.1f" },
    { "  (breakdown=1) t:rarest(peer, 65) alone, seed (us)", "seed_iter_rarest65_med_us", "%.1f" },
    { "  (breakdown=1) t:partial walk alone, half (us)", "half_iter_partial_med_us", "%.1f" },
    { "  (breakdown=1) t:rarest(peer, 65) alone, half (us)", "half_iter_rarest65_med_us", "%.1f" },
    "pick after a deeper pipeline (64 free slots, nothing to finish: t:rarest):",
    { "  seed peer, median (CPU us)", "fresh_seed_cpu_med_us", "%.1f", 20 },
    { "  seed peer, p90 (CPU us)", "fresh_seed_cpu_p90_us", "%.1f" },
    { "  half peer, median (CPU us)", "fresh_half_cpu_med_us", "%.1f", 20 },
    { "  half peer, p90 (CPU us)", "fresh_half_cpu_p90_us", "%.1f" },
    { "  requests per pick, seed", "fresh_seed_req_avg", "%.2f" },
    { "  requests per pick, half", "fresh_half_req_avg", "%.2f" },
    { "  picks measured per kind (per run)", "fresh_seed_n", "%d" },
    { "  pieces in progress (t.partials), mean", "fresh_seed_partials_avg", "%.0f" },
    { "  (breakdown=1) t:partial walk alone, seed (us)", "fresh_seed_iter_partial_med_us", "%.1f" },
    { "  (breakdown=1) t:rarest(peer, 65) alone, seed (us)", "fresh_seed_iter_rarest65_med_us", "%.1f" },
    { "  (breakdown=1) t:partial walk alone, half (us)", "fresh_half_iter_partial_med_us", "%.1f" },
    { "  (breakdown=1) t:rarest(peer, 65) alone, half (us)", "fresh_half_iter_rarest65_med_us", "%.1f" },
    "tick, all peers idle with full pipelines:",
    { "  CPU per tick interval, median (ms)", "tick_cpu_med_ms", "%.3f", 1 },
    { "  CPU per tick interval, p90 (ms)", "tick_cpu_p90_ms", "%.3f" },
    { "  ticks measured (per run)", "ticks", "%d" },
    { "  timeout() calls per tick", "timeouts_per_tick", "%.0f" },
    "memory (RSS):",
    { "  per piece (bytes)", "bytes_per_piece", "%.1f" },
    { "  per peer (bytes)", "bytes_per_peer", "%.0f" },
    { "    per seed peer (bytes)", "bytes_per_seed", "%.0f" },
    { "    per half peer (bytes)", "bytes_per_half", "%.0f" },
    { "  before s:add (MiB)", "rss_before_add", "%.1f", nil, 1 / 1048576 },
    { "  with all peers (MiB)", "rss_all_peers", "%.1f", nil, 1 / 1048576 },
  }
  for _, row in ipairs(rows) do
    if type(row) == "string" then print("  " .. row) goto next end
    local label, key, fmt, target, scale = row[1], row[2], row[3], row[4], row[5] or 1
    local a, b = m(1, key) * scale, m(2, key) * scale
    if a ~= a and b ~= b then goto next end   -- not measured in this run (breakdown rows)
    local tgt = ""
    if target then tgt = ("<= %g: %s"):format(target, b <= target and "met" or "NOT met") end
    local ratio = a ~= 0 and ("%9.2f"):format(b / a) or "        -"
    local fa = fmt == "%d" and ("%d"):format(math.floor(a)) or fmt:format(a)
    local fb = fmt == "%d" and ("%d"):format(math.floor(b)) or fmt:format(b)
    print(("  %-50s %14s %14s %s  %s"):format(label, fa, fb, ratio, tgt))
    ::next::
  end
  print(("  (pick: os.clock() around the default's pick; tick: os.clock() between consecutive tick events,"
    .. " tick_ms %s; policy API old: %s, new: %s)"):format(r1.tick_ms, res[1][1].api, res[2][1].api))
end
