--- bt.lab.runner: run a checked scenario (bt.lab.scenario) for real: one process per peer
-- (bt.lab.worker: a bt.session on 127.0.0.1, the torrent in memory), wired directly (each
-- newcomer dials every peer present), seeds first, leechers at their planned join times.
-- While a run lasts it reads every worker's events file, keeps the copies of each piece
-- among the peers present, and samples the swarm every SAMPLE_EVERY seconds.
--
--   local runner = require "bt.lab.runner"
--   local records = runner.run(sc, { runs = 3, seed = 1, dir = tmp, progress = print })
--
-- Returns the records of every run (kinds "run", "leecher", "sample"; docs/lab.md), in
-- run order. Raises on a failure; everything it started is stopped first, whatever
-- ended it (an error, or Ctrl-C: lua5.4 turns SIGINT into an "interrupted!" error).
local cjson = require "cjson"
local socket = require "socket"
local bt = require "bt"
local proc = require "bt.lab.proc"
local scenario = require "bt.lab.scenario"

local M = {}

M.SAMPLE_EVERY = 1        -- seconds between swarm samples
M.POLL = 0.1              -- seconds between reads of the events files
M.SEED_WAIT = 60          -- seconds for the seeds to verify their data and listen
M.ALIVE_EVERY = 2         -- seconds between checks that every worker still runs
M.LOG_TAIL = 12           -- lines of a failed worker's log in the error
M.LEAVE_WAIT = 5          -- seconds the run waits, once all are done, for leechers leaving by themselves
-- Seconds past the time limit a worker may live before timeout(1) ends it by itself.
M.LIFETIME_SLACK = 30

local function writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- Where this checkout's (or installation's) Lua modules and C module are, for the
-- workers: the same bt as the runner's.
local function module_env()
  local here = assert(package.searchpath("bt.lab.runner", package.path))
  local lua_dir = here:match("^(.*)/bt/lab/runner%.lua$")
  local cpath = os.getenv("BT_CPATH")
  if not cpath then
    local so = assert(package.searchpath("bt.core", package.cpath), "bt.core not found on package.cpath")
    cpath = so:match("^(.*)/bt/core%.so$") .. "/?.so"
  end
  return ("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s"):format(
    proc.q(lua_dir .. "/?.lua;" .. lua_dir .. "/?/init.lua;;"), proc.q(cpath .. ";;"))
end

local WORKER = "lua5.4 -e 'os.exit(require(\"bt.lab.worker\").main(os.getenv(\"BT_LAB_CONFIG\")))'"


local function basename(p)
  if not p then return "default" end
  return (p:match("([^/]+)%.lua$") or p)
end

--- Make the payload and its torrent once for all runs: random bytes (the content does not
-- matter; the seed is for the schedule), no announce URL (the peers are wired directly).
function M.prepare(sc, dir)
  local data = dir .. "/data"
  assert(os.execute("mkdir -p " .. proc.q(data)))
  local payload = data .. "/payload.bin"
  local out, ok = proc.sh(("head -c %d /dev/urandom > %s"):format(sc.size, proc.q(payload)))
  if not ok then error("could not write the payload: " .. out, 0) end
  local bytes, err = bt.torrent.create{ path = payload, piece_length = sc.piece, created_by = "bt-lua lab" }
  if not bytes then error("could not make the torrent: " .. tostring(err), 0) end
  local torrent = dir .. "/payload.torrent"
  writefile(torrent, bytes)
  return { data = data, torrent = torrent }
end

--- One run of one mix with one seed. ctx: dir, torrent, data, env, label, progress.
local function run_one(sc, mix, seed, index, ctx)
  local plan = scenario.plan(sc, mix, seed)
  local rdir = ("%s/run%d-%s"):format(ctx.dir, index, mix.name)
  assert(os.execute("mkdir -p " .. proc.q(rdir)))
  local procs = proc.group()
  ctx.procs = procs
  local taken = {}
  local n = sc.pieces
  local counts = {}                 -- copies of each piece among the leechers present
  for i = 0, n - 1 do counts[i] = 0 end
  local seeds_present = 0
  local peers = {}                  -- every planned peer, seeds first
  for _, p in ipairs(plan.seeds) do peers[#peers + 1] = { plan = p } end
  for _, p in ipairs(plan.leechers) do peers[#peers + 1] = { plan = p } end
  local seed_addrs = {}
  for _, pr in ipairs(peers) do
    pr.port = proc.free_port(taken)
    pr.addr = "127.0.0.1:" .. pr.port
    pr.events = ("%s/%s.events"):format(rdir, pr.plan.id)
    pr.reader = proc.jsonl_reader(pr.events)
    pr.have, pr.npieces, pr.piece_times, pr.head = {}, 0, {}, 0
    if pr.plan.role == "seed" then seed_addrs[#seed_addrs + 1] = pr.addr end
  end
  local in_order = math.max(1, math.ceil(sc.in_order * n))
  local t0 = socket.gettime()       -- reset when the seeds are up
  local lifetime = M.SEED_WAIT + sc.time_limit + M.LIFETIME_SLACK

  local function start(pr, dial)
    local cfg = { role = pr.plan.role, torrent = ctx.torrent, data = ctx.data, policy = pr.plan.policy,
                  port = pr.port, peers = dial, seeds = seed_addrs, up = pr.plan.up, down = pr.plan.down,
                  rand = pr.plan.rand, delay = pr.plan.latency, loss = pr.plan.loss, max_peers = sc.max_peers,
                  leave = pr.plan.leave, stay = pr.plan.stay,
                  deadline = (pr.plan.role == "seed" and socket.gettime() + M.SEED_WAIT or t0) + sc.time_limit + 1,
                  events = pr.events }
    local cfgpath = ("%s/%s.json"):format(rdir, pr.plan.id)
    writefile(cfgpath, cjson.encode(cfg))
    pr.child = procs:spawn(pr.plan.id, WORKER, ("%s/%s.log"):format(rdir, pr.plan.id),
      { lifetime = lifetime, env = ctx.env .. " BT_LAB_CONFIG=" .. proc.q(cfgpath) })
    writefile(("%s/%s.pid"):format(rdir, pr.plan.id), pr.child.pid .. "\n")   -- for a look from outside
    pr.started = true
  end

  local function handle(pr, ev)
    local t = (tonumber(ev.t) or socket.gettime()) - t0
    if ev.e == "up" then
      pr.up, pr.join_t = true, t
      if pr.plan.role == "seed" then seeds_present = seeds_present + 1 end
    elseif ev.e == "piece" then
      local i = math.tointeger(ev.i)
      if i and i >= 0 and i < n and not pr.have[i] and not pr.left then
        pr.have[i] = true
        pr.npieces = pr.npieces + 1
        counts[i] = counts[i] + 1
        pr.piece_times[#pr.piece_times + 1] = t
        pr.first_piece = pr.first_piece or t
        while pr.have[pr.head] do pr.head = pr.head + 1 end
        if not pr.first_in_order and pr.head >= in_order then pr.first_in_order = t end
      end
    elseif ev.e == "done" then
      pr.done_t = pr.done_t or t
    elseif ev.e == "stat" then
      pr.stat = ev
    elseif ev.e == "leave" and not pr.left then
      pr.left, pr.left_t, pr.why, pr.error = true, t, ev.why, ev.error ~= cjson.null and ev.error or nil
      if pr.plan.role == "seed" then
        if pr.up then seeds_present = seeds_present - 1 end
      else
        for i in pairs(pr.have) do counts[i] = counts[i] - 1 end
      end
    end
  end

  local function poll()
    for _, pr in ipairs(peers) do
      if pr.started then pr.reader:poll(function(ev) handle(pr, ev) end) end
    end
  end

  local function check_alive()
    for _, pr in ipairs(peers) do
      if pr.started and not pr.left and not procs:alive(pr.child) then
        poll()
        if not pr.left then
          error(("%s: peer %s exited (code %s) without leaving:\n    %s"):format(ctx.label, pr.plan.id,
            tostring(procs:finish(pr.child)), proc.tail(pr.child.log, M.LOG_TAIL)), 0)
        end
      end
    end
  end

  -- seeds first: each verifies its copy, then listens
  for _, pr in ipairs(peers) do
    if pr.plan.role == "seed" then start(pr, {}) end
  end
  local wait_until = socket.gettime() + M.SEED_WAIT
  while true do
    poll()
    local up = 0
    for _, pr in ipairs(peers) do
      if pr.plan.role == "seed" and pr.up then up = up + 1 end
      if pr.plan.role == "seed" and pr.left then
        error(("%s: seed %s failed: %s"):format(ctx.label, pr.plan.id, tostring(pr.error or pr.why)), 0)
      end
    end
    if up == #plan.seeds then break end
    if socket.gettime() > wait_until then
      error(("%s: the seeds were not up within %d s"):format(ctx.label, M.SEED_WAIT), 0)
    end
    check_alive()
    socket.sleep(M.POLL)
  end
  t0 = socket.gettime()
  for _, pr in ipairs(peers) do if pr.plan.role == "seed" then pr.join_t = 0 end end

  local samples = {}
  local next_sample, next_alive, next_progress = 0, M.ALIVE_EVERY, 0
  local last_seed_up, last_sample_t = 0, nil
  local nextl = #plan.seeds + 1      -- the next leecher to start, in join order
  local nleech = #plan.leechers
  local function seeds_uploaded()
    local s = 0
    for _, pr in ipairs(peers) do
      if pr.plan.role == "seed" and pr.stat then s = s + (tonumber(pr.stat.up) or 0) end
    end
    return s
  end
  local function sample(now)
    local zero, one, two, lo, hi, sum = 0, 0, 0, math.huge, 0, 0
    for i = 0, n - 1 do
      local c = counts[i] + seeds_present
      if c == 0 then zero = zero + 1 elseif c == 1 then one = one + 1 else two = two + 1 end
      if c < lo then lo = c end
      if c > hi then hi = c end
      sum = sum + c
    end
    local present, incomplete, cap, unlimited = 0, 0, 0, false
    for _, pr in ipairs(peers) do
      if pr.up and not pr.left then
        present = present + 1
        if pr.plan.role == "seed" then
          cap = cap + pr.plan.up
          if pr.plan.up == 0 then unlimited = true end
        elseif not pr.done_t then
          incomplete = incomplete + 1
        end
      end
    end
    local up = seeds_uploaded()
    local rate = last_sample_t and (up - last_seed_up) / math.max(1e-3, now - last_sample_t) or 0
    last_seed_up, last_sample_t = up, now
    samples[#samples + 1] = { kind = "sample", t = now, present = present, incomplete = incomplete,
      zero = zero, one = one, two_plus = two, min = lo, mean = sum / n, max = hi,
      seed_up = rate, seed_capacity = (not unlimited) and cap or cjson.null }
  end

  local ended_by = "all left"
  while true do
    local now = socket.gettime() - t0
    while nextl <= #peers and peers[nextl].plan.join <= now do
      local dial = {}
      for _, pr in ipairs(peers) do
        if pr.started and not pr.left then dial[#dial + 1] = pr.addr end
      end
      start(peers[nextl], dial)
      nextl = nextl + 1
    end
    poll()
    local finished, left = 0, 0
    for _, pr in ipairs(peers) do
      if pr.plan.role == "leecher" then
        if pr.done_t then finished = finished + 1 end
        if pr.left then left = left + 1 end
      end
    end
    if now >= next_sample then sample(now); next_sample = next_sample + M.SAMPLE_EVERY end
    if ctx.progress and now >= next_progress then
      ctx.progress(("%s: %d/%d leechers done, %d left, %.0f s"):format(ctx.label, finished, nleech, left, now))
      next_progress = now + 1
    end
    if left == nleech then break end
    -- leechers that stay seeding forever: the run ends once every one has finished
    if nextl > #peers and finished == nleech then ended_by = "all done"; break end
    if now >= sc.time_limit then ended_by = "time limit"; break end
    -- no seed left, nobody left to join, and a piece nobody present holds: no leecher
    -- still downloading can ever finish, waiting for the time limit would show nothing more
    if seeds_present == 0 and nextl > #peers and finished < nleech then
      local lost = false
      for i = 0, n - 1 do if counts[i] == 0 then lost = true; break end end
      if lost then ended_by = "pieces lost"; break end
    end
    if now >= next_alive then check_alive(); next_alive = now + M.ALIVE_EVERY end
    socket.sleep(M.POLL)
  end
  local duration = socket.gettime() - t0
  sample(duration)
  -- a leecher that just finished and does not stay is on its way out: let it go by itself
  -- (bounded), since a SIGTERM that lands after its session has closed kills it (143)
  local leave_by = socket.gettime() + M.LEAVE_WAIT
  local function leaving()
    for _, pr in ipairs(peers) do
      if pr.started and not pr.left and pr.done_t and pr.plan.stay ~= true and (pr.plan.stay or 0) == 0
        and procs:alive(pr.child) then return true end
    end
  end
  while leaving() and socket.gettime() < leave_by do socket.sleep(M.POLL); poll() end
  procs:stop_all()
  poll()
  ctx.procs = nil
  for _, pr in ipairs(peers) do
    if pr.started and pr.child.code ~= 0 then
      error(("%s: peer %s exited with code %s (the run ended at %.1f s: %s):\n    %s"):format(ctx.label, pr.plan.id,
        tostring(pr.child.code), duration, ended_by, proc.tail(pr.child.log, M.LOG_TAIL)), 0)
    end
    if pr.why == "error" then
      error(("%s: peer %s stopped: %s"):format(ctx.label, pr.plan.id, tostring(pr.error)), 0)
    end
  end

  -- records
  local seed_up = seeds_uploaded()
  local recs = {}
  local run_rec = { kind = "run", run = index, seed = seed, mix = mix.name, duration = duration, ended_by = ended_by,
                    leechers = nleech, finished = 0, unfinished = 0, seeds_uploaded = seed_up,
                    seed_copies = seed_up / sc.size, leechers_downloaded = 0, leechers_uploaded = 0, dup = 0,
                    size = sc.size, pieces = n, in_order_pieces = in_order }
  recs[1] = run_rec
  for _, pr in ipairs(peers) do
    local p = pr.plan
    if p.role == "leecher" then
      local st = pr.stat or {}
      local join = pr.join_t or p.join
      local rec = { kind = "leecher", run = index, seed = seed, mix = mix.name, group = p.group,
        policy = basename(p.policy), id = p.id, up_cap = p.up, down_cap = p.down, planned_join = p.join,
        latency = p.latency, loss = p.loss,
        join = pr.join_t or cjson.null, started = pr.started or false,
        done = pr.done_t or cjson.null, completion = pr.done_t and (pr.done_t - join) or cjson.null,
        unfinished = not pr.done_t, pieces = pr.npieces,
        down = tonumber(st.down) or 0, up = tonumber(st.up) or 0, dup = tonumber(st.dup) or 0,
        cancels = tonumber(st.cancels) or 0, have = tonumber(st.have) or 0,
        first_piece = pr.first_piece and (pr.first_piece - join) or cjson.null,
        first_in_order = pr.first_in_order and (pr.first_in_order - join) or cjson.null,
        from_seeds = tonumber(st.from_seeds) or 0,
        seed_share = seed_up > 0 and (tonumber(st.from_seeds) or 0) / seed_up or 0,
        left = pr.why or cjson.null, piece_times = pr.piece_times }
      recs[#recs + 1] = rec
      if pr.done_t then run_rec.finished = run_rec.finished + 1 else run_rec.unfinished = run_rec.unfinished + 1 end
      run_rec.leechers_downloaded = run_rec.leechers_downloaded + rec.down
      run_rec.leechers_uploaded = run_rec.leechers_uploaded + rec.up
      run_rec.dup = run_rec.dup + rec.dup
    end
  end
  for _, s in ipairs(samples) do
    s.run, s.seed, s.mix = index, seed, mix.name
    recs[#recs + 1] = s
  end
  return recs
end

--- Run every mix `runs` times: repetition r uses seed + r - 1 for every mix, and the mixes
-- alternate within a repetition (the machine's drift then falls on all of them alike).
-- opts: runs, seed, dir (a scratch folder), progress (fn(line)), on_run (fn(records)).
function M.run(sc, opts)
  local files = M.prepare(sc, opts.dir)
  local ctx = { dir = opts.dir, torrent = files.torrent, data = files.data, env = module_env(),
                progress = opts.progress }
  local all = {}
  local total = opts.runs * #sc.mixes
  local ok, err = pcall(function()
    local index = 0
    for r = 1, opts.runs do
      for _, mix in ipairs(sc.mixes) do
        index = index + 1
        ctx.label = ("run %d/%d (%s, seed %d)"):format(index, total, mix.name, opts.seed + r - 1)
        local recs = run_one(sc, mix, opts.seed + r - 1, index, ctx)
        for _, rec in ipairs(recs) do all[#all + 1] = rec end
        if opts.on_run then opts.on_run(recs) end
      end
    end
  end)
  if ctx.procs then ctx.procs:stop_all() end
  if not ok then error(err, 0) end
  return all
end

return M
