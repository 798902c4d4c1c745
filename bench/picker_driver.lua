--- One measuring run for bench/picker_bench.lua: a bt-lua session with one torrent of
-- many pieces on memory storage and many idle peers (bench/picker_peers.lua, started
-- and killed here). It finds bt through LUA_PATH_5_4/LUA_CPATH_5_4 only, so the bench
-- runs this same file against the old and the new code.
--   lua5.4 bench/picker_driver.lua [key=value ...]
-- keys: pieces (1048576), plen (16384), seeds (100), halves (100), picks (1000: pick
-- calls measured per kind, seed and half), per_tick (10: peers given 64 free slots per
-- tick in the "picks" and "fresh" phases), ticks (200), tick_ms (20), rng (1: the
-- halves' RNG seed), deadline (400 s for the whole run), breakdown (1: before each measured
-- pick also time, untimed by the pick figures, a bare walk of t:partial(peer) and of
-- t:rarest(peer, 65), the two iterators the default's pick uses), fresh (200: picks per
-- kind measured in the "fresh" phase).
-- Prints `RESULT key value` lines (and progress on stderr).
--
-- Phases, in order: connect (memory), picks, settle, ticks, fresh.
--   memory: RSS (/proc/self/statm) before s:add, after it, after the seeds' bitfields
--     (the peers process pauses between the groups) and after all bitfields.
--   picks: the policy is the default one (random-first off), with queue_depth 64 and
--     timeout always "keep"; its tick calls peer:cancel_all() on `per_tick` peers (half
--     seeds, half halves, in turn), so the next tick gives each a pick with 64 free
--     slots. The pick wrapper times base.pick with os.clock() (process CPU) and
--     socket.gettime() (wall), and counts requests as peer.inflight after - before.
--   ticks: no more cancels; after the pipelines are full and quiet, the session's
--     `tick` event records os.clock() and socket.gettime() on `ticks`+1 consecutive
--     ticks: the CPU of the whole process between two tick events is what one tick
--     interval costs with every peer idle (the tick itself, plus whatever the loop did
--     between ticks: nothing else happens while the peers are idle). It starts 1.5 s
--     after the last cancel, so every peer's oldest request is past the core's 1 s and
--     each tick asks timeout() once per peer, as it would for idle peers forever.
--   fresh: picks with 64 free slots and no piece in progress to finish. A cancel_all
--     leaves the released pieces in progress with a free block, so the "picks" phase
--     measures the default's first step (t:partial refills them) and never reaches
--     t:rarest. Here the policy's tick instead raises the queue depth of `per_tick`
--     peers by 64 (applied at the next tick), so each gets a pick of 64 slots while no
--     partial piece has a free block: t:partial finds nothing and t:rarest does the work.
--     Each such pick starts 64 new pieces (with 16 KiB pieces), so t.partials grows
--     during this phase (its mean is printed). A peer's depth stops at its reqq (500),
--     so each peer gives at most 7 such picks: `fresh` needs seeds and halves of at
--     least fresh / 7 each, or the phase runs into the deadline.
local bt = require "bt"
local socket = require "socket"

local opt = { pieces = 1048576, plen = 16384, seeds = 100, halves = 100, picks = 1000, per_tick = 10,
              ticks = 200, tick_ms = 20, rng = 1, deadline = 400, breakdown = 0, fresh = 200 }
for _, a in ipairs(arg) do
  local k, v = a:match("^(%w+)=(.+)$")
  if not k or opt[k] == nil then error("unknown argument " .. a) end
  opt[k] = tonumber(v)
end
local here = (arg[0] or ""):match("^(.*)/[^/]*$") or "."
local npeers = opt.seeds + opt.halves

local function log(fmt, ...) io.stderr:write(("[driver] " .. fmt .. "\n"):format(...)) end
local function result(k, v) print(("RESULT %s %s"):format(k, tostring(v))) end

local PAGE = tonumber(io.popen("getconf PAGESIZE"):read("l")) or 4096
local function rss()
  collectgarbage("collect")
  collectgarbage("collect")
  local f = assert(io.open("/proc/self/statm"))
  local _, res = f:read("n", "n")
  f:close()
  return res * PAGE
end

-- the torrent, in memory ------------------------------------------------------------
local meta
do
  local bytes = bt.bencode({ info = { name = "picker-bench", ["piece length"] = opt.plen,
    length = opt.plen * opt.pieces, pieces = string.rep("\0", 20 * opt.pieces) } })
  local err
  meta, err = bt.meta_parse(bytes)
  assert(meta, err)
end
assert(meta.num_pieces == opt.pieces, "meta_parse: wrong piece count")

-- the policy --------------------------------------------------------------------------
local D = require "bt.policy.default"
local pol, base_pick, api
if type(D.with) == "function" then            -- new API: a policy table from the default
  api = "with"
  pol = D.with { RANDOM_FIRST = 0 }
  base_pick = pol.pick
else                                           -- old API: module fields
  api = "module field"
  D.RANDOM_FIRST = 0
  pol = {}
  base_pick = D.pick
end
assert(type(base_pick) == "function", "the default policy has no pick")

local phase = "connect"
local clock, wall = os.clock, socket.gettime
local function new_samples()
  return { cpu = {}, wall = {}, req = 0, slots_other = 0, partials = 0,
           it_partial = {}, it_rarest = {}, n_partial = 0 }
end
-- picks: after cancel_all (phase "picks"); fresh: after a deeper pipeline (phase "fresh")
local samples = { picks = { seed = new_samples(), half = new_samples() },
                  fresh = { seed = new_samples(), half = new_samples() } }
local other_picks = 0     -- picks outside the measuring phases (after the initial fill)
local waiting = {}        -- addresses of the peers given 64 free slots, awaiting their pick
                          -- (by address: a handle need not be the same object each call)
local depth = {}          -- phase "fresh": queue depth per address (default 64)

pol.name = "picker_bench"
pol.pick = function(t, peer, slots)
  local measuring = phase == "picks" or phase == "fresh"
  local key = measuring and peer.address
  if not (key and waiting[key]) then
    if not measuring and phase ~= "connect" then other_picks = other_picks + 1 end
    return base_pick(t, peer, slots)
  end
  waiting[key] = nil
  local kind = peer.seed and "seed" or "half"
  local s = samples[phase][kind]
  if opt.breakdown == 1 then
    local c0, n = clock(), 0
    for _ in t:partial(peer) do n = n + 1 end
    local c1 = clock()
    for _ in t:rarest(peer, 65) do end
    local c2 = clock()
    s.it_partial[#s.it_partial + 1], s.it_rarest[#s.it_rarest + 1] = c1 - c0, c2 - c1
    s.n_partial = s.n_partial + n
  end
  s.partials = s.partials + t.partials
  local before = peer.inflight
  local w0, c0 = wall(), clock()
  base_pick(t, peer, slots)
  local c1, w1 = clock(), wall()
  s.cpu[#s.cpu + 1] = c1 - c0
  s.wall[#s.wall + 1] = w1 - w0
  s.req = s.req + (peer.inflight - before)
  if slots ~= 64 then s.slots_other = s.slots_other + 1 end
end
pol.queue_depth = function(_, peer)
  if phase == "fresh" then return depth[peer.address] or 64 end
  return 64
end
local timeouts = 0        -- timeout hook calls (counted in the tick phase)
pol.timeout = function() timeouts = timeouts + 1; return "keep" end

local seeds, halves = {}, {}     -- peer handles, filled when all are connected
local turn = 0
pol.tick = function()
  if phase ~= "picks" and phase ~= "fresh" then return end
  for k = 1, opt.per_tick do
    turn = turn + 1
    local list = (k % 2 == 1) and seeds or halves
    local p = list[(turn // 2) % #list + 1]
    local a = p.alive and p.address
    if a and not waiting[a] then
      if phase == "picks" then
        p:cancel_all()                          -- all its requests back: 64 free slots
      else
        depth[a] = (depth[a] or 64) + 64        -- 64 more slots, applied next tick
      end
      waiting[a] = true
    end
  end
end

-- the session ------------------------------------------------------------------------
local s = bt.session { port = 0, bind = "127.0.0.1", tick_ms = opt.tick_ms, max_peers = npeers + 50 }
local rss0 = rss()
local t = s:add(meta, { storage = "memory", policy = pol, trackers = false, peers = {}, max_peers = npeers + 50 })
local rss1 = rss()
log("torrent added: %d pieces of %d bytes, api %s", opt.pieces, opt.plen, api)

local peers_pid
do
  local cmd = ("lua5.4 %s %d %s %d %d %d %d %d"):format(here .. "/picker_peers.lua", s.port, meta.info_hash_hex,
    opt.pieces, opt.seeds, opt.halves, opt.rng, opt.deadline + 30)
  local p = io.popen("sh -c '" .. cmd .. " >/dev/null 2>&1 & echo $!'")
  peers_pid = tonumber(p:read("l"))
  p:close()
  assert(peers_pid, "could not start picker_peers.lua")
end

local t_start = wall()
local rss_seeds, rss2
local settle_ticks, quiet, picks_end, timeouts_ticks = 0, 0, nil, nil
local tick_cpu, tick_wall = {}, {}
local failure

local function census()
  local n_seed, n_half, full = 0, 0, 0
  local ps = t:peers()
  for _, p in ipairs(ps) do
    if p.alive and not p.choking then
      if p.seed then n_seed = n_seed + 1 else n_half = n_half + 1 end
      if p.inflight == 64 then full = full + 1 end
    end
  end
  return n_seed, n_half, full, ps
end

s:on("tick", function()
  if phase == "ticks" then
    tick_cpu[#tick_cpu + 1] = clock()
    tick_wall[#tick_wall + 1] = wall()
    if #tick_cpu > opt.ticks then phase, timeouts_ticks = "fresh", timeouts end
    return
  end
  if wall() - t_start > opt.deadline then failure = "deadline in phase " .. phase; s:stop() return end
  if phase == "connect" then
    local n_seed, n_half, full, ps = census()
    if not rss_seeds and n_seed == opt.seeds and n_half == 0 and full == opt.seeds then
      rss_seeds = rss()
      log("%d seeds in after %.1f s", n_seed, wall() - t_start)
    end
    if n_seed == opt.seeds and n_half == opt.halves and full == npeers then
      rss2 = rss()
      log("%d peers in, pipelines full, after %.1f s", npeers, wall() - t_start)
      for _, p in ipairs(ps) do
        if p.seed then seeds[#seeds + 1] = p else halves[#halves + 1] = p end
      end
      phase = "picks"
    end
  elseif phase == "picks" then
    if #samples.picks.seed.cpu >= opt.picks and #samples.picks.half.cpu >= opt.picks then
      log("picks measured after %.1f s", wall() - t_start)
      phase, picks_end = "settle", wall()
    end
  elseif phase == "settle" then
    -- wait until every peer's pipeline is full again and no pick ran for 5 ticks
    settle_ticks = settle_ticks + 1
    local _, _, full = census()
    if full == npeers and other_picks == 0 then quiet = quiet + 1 else quiet = 0 end
    other_picks = 0
    -- and until every request is older than the core's 1 s before timeout() is asked,
    -- so each measured tick is the steady state: one timeout call per peer
    if quiet >= 5 and wall() - picks_end > 1.5 then phase, timeouts = "ticks", 0 end
    if settle_ticks > 500 then failure = "pipelines did not settle"; s:stop() end
  elseif phase == "fresh" then
    if #samples.fresh.seed.cpu >= opt.fresh and #samples.fresh.half.cpu >= opt.fresh then
      log("fresh picks measured after %.1f s", wall() - t_start)
      phase = "done"
      s:stop()
    end
  end
end)
s:on("peer_disconnect", function(_, address, reason)
  if phase ~= "done" then failure = ("peer %s left: %s"):format(address, reason); s:stop() end
end)

local ok, err = pcall(s.run, s)
os.execute("kill " .. peers_pid .. " 2>/dev/null")
pcall(s.close, s)
if not ok then failure = tostring(err) end
if failure then io.stderr:write("picker_driver: ", failure, "\n"); os.exit(1) end

-- results -----------------------------------------------------------------------------
local function pct(list, p)
  local c = {}
  for i, v in ipairs(list) do c[i] = v end
  table.sort(c)
  return c[math.max(1, math.ceil(#c * p))]
end
result("api", api)
result("pieces", opt.pieces)
result("plen", opt.plen)
result("peers", npeers)
result("seeds", opt.seeds)
result("halves", opt.halves)
result("tick_ms", opt.tick_ms)
for _, mode in ipairs { "picks", "fresh" } do
  local prefix = mode == "picks" and "" or "fresh_"
  for _, kind in ipairs { "seed", "half" } do
    local sm, k = samples[mode][kind], prefix .. kind
    result(k .. "_n", #sm.cpu)
    result(k .. "_cpu_med_us", pct(sm.cpu, 0.5) * 1e6)
    result(k .. "_cpu_p90_us", pct(sm.cpu, 0.9) * 1e6)
    result(k .. "_wall_med_us", pct(sm.wall, 0.5) * 1e6)
    result(k .. "_wall_p90_us", pct(sm.wall, 0.9) * 1e6)
    result(k .. "_req_avg", sm.req / #sm.cpu)
    result(k .. "_slots_not_64", sm.slots_other)
    result(k .. "_partials_avg", sm.partials / #sm.cpu)
    if opt.breakdown == 1 then
      result(k .. "_iter_partial_med_us", pct(sm.it_partial, 0.5) * 1e6)
      result(k .. "_iter_partial_yield_avg", sm.n_partial / #sm.cpu)
      result(k .. "_iter_rarest65_med_us", pct(sm.it_rarest, 0.5) * 1e6)
    end
  end
end
local dc, dw = {}, {}
for i = 2, #tick_cpu do
  dc[#dc + 1] = tick_cpu[i] - tick_cpu[i - 1]
  dw[#dw + 1] = tick_wall[i] - tick_wall[i - 1]
end
result("ticks", #dc)
result("tick_cpu_med_ms", pct(dc, 0.5) * 1e3)
result("tick_cpu_p90_ms", pct(dc, 0.9) * 1e3)
result("tick_cpu_mean_ms", (tick_cpu[#tick_cpu] - tick_cpu[1]) / #dc * 1e3)
result("tick_wall_med_ms", pct(dw, 0.5) * 1e3)
result("timeouts_per_tick", timeouts_ticks / (#dc + 1))
result("rss_before_add", rss0)
result("rss_after_add", rss1)
result("rss_seeds", rss_seeds or "nan")
result("rss_all_peers", rss2)
result("bytes_per_piece", (rss1 - rss0) / opt.pieces)
result("bytes_per_peer", (rss2 - rss1) / npeers)
if rss_seeds then
  result("bytes_per_seed", (rss_seeds - rss1) / opt.seeds)
  result("bytes_per_half", (rss2 - rss_seeds) / opt.halves)
end
