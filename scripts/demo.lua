--- make demo-swarm: a local swarm made of bt-lua alone, on 127.0.0.1 (`make demo` is now a lab run).
-- One `bt-lua seed` with a capped upload and one `bt-lua run --seed` leecher per
-- example policy; each leecher is handed (--peer) the seed and the leechers started before
-- it, so every pair is connected and, the seed's upload being capped, they must trade pieces
-- among themselves. No tracker.
-- While it runs: one progress line per leecher, read from its --stats JSON lines.
-- At the end: every download is checked byte for byte (sha256) against the payload,
-- and a table shows, per policy, the seconds to complete and the bytes downloaded,
-- duplicated and uploaded, all taken from the leechers' own stats.
-- Exit 0 when every leecher completed with identical data; 130 after Ctrl-C; 1 otherwise.
-- Everything it starts is stopped by PID (SIGTERM, then SIGKILL after a bounded wait)
-- and its temporary folder removed, also after a failure or Ctrl-C.
-- Env: DEMO_MB, the payload size in MiB (default 64); DEMO_SECONDS, the seconds the seed takes
-- to send one copy (default 15, 2 to 60; the demo lasts about twice that).
local root = arg[0]:match("^(.*)/scripts/[^/]*$") or "."
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = (os.getenv("BT_CPATH") or (root .. "/build/?.so")) .. ";" .. package.cpath
local socket = require "socket"
local okterm, term = pcall(require, "term")
local proc = require "bt.lab.proc"

-- The leechers, one per example policy (examples/<name>.lua).
local POLICIES = { "rarest_first", "sequential", "random", "endgame_tuned" }
local DEFAULT_MB = 64
-- The payload must fit the folder and the time budget of a demo.
local MAX_MB = 4096
-- The seed's upload is capped so that sending ONE copy takes this long: four leechers fed by the
-- seed alone would need four times as long, so most bytes must come from trading between
-- leechers, and the demo lasts about this long whatever DEMO_MB is.
local SEED_SECONDS = tonumber(os.getenv("DEMO_SECONDS") or 15)
if not SEED_SECONDS or SEED_SECONDS < 2 or SEED_SECONDS > 60 then
  io.stderr:write("demo: DEMO_SECONDS must be a number of seconds in [2, 60]\n")
  os.exit(2)
end
-- Each leecher's upload is capped at this fraction of the seed's: trading is then a scarce
-- resource too, so what a leecher holds (the order its policy fetches pieces in) can matter.
-- Without a cap every leecher finishes the moment the seed has sent the last piece once.
local LEECH_UP_FRACTION = 0.5
-- About this many pieces: enough that the policies' piece orders differ visibly, few enough
-- that the per-piece overhead stays small. Piece sizes are powers of two from 16 KiB to 4 MiB.
local TARGET_PIECES = 512
local MIN_PIECE, MAX_PIECE = 16 * 1024, 4 * 1024 * 1024
-- Bounds on every wait: the seed's hash check before it listens, the whole download,
-- and each process's exit after SIGTERM.
local SEED_LISTEN_WAIT = 60
local LEECHER_LISTEN_WAIT = 10
local SWARM_DEADLINE = 60 + 4 * SEED_SECONDS
-- Each child also runs under timeout(1), which ends it by itself should this script die
-- without cleaning up (SIGKILL): the deadline plus the time to verify and stop.
local CHILD_LIFETIME = SEED_LISTEN_WAIT + SWARM_DEADLINE + 60
-- Progress refresh: every second on a terminal; every few seconds in a log (make demo | cat).
local TTY_EVERY, PLAIN_EVERY = 1, 5
-- Lines of a child's log shown when it fails.
local LOG_TAIL = 15

local mib = tonumber(os.getenv("DEMO_MB") or DEFAULT_MB)
if not mib or mib <= 0 or mib > MAX_MB then
  io.stderr:write(("demo: DEMO_MB must be a number of MiB in (0, %d]\n"):format(MAX_MB))
  os.exit(2)
end
local size = math.floor(mib * 1024 * 1024)
local tty = okterm and term.isatty and term.isatty(io.stdout)

local q, sh = proc.q, proc.sh
local function say(fmt, ...) io.stdout:write("demo: ", fmt:format(...), "\n"); io.stdout:flush() end

local human = require("bt.cli").human
local tail, free_port, alive = proc.tail, proc.free_port, proc.alive

-- Every child, stopped by PID at the end (bt.lab.proc); c.code is its exit code then.
local procs = proc.group()
local children = procs.list
--- Start lua5.4 scripts/bt-lua ARGS in the background (bt.lab.proc: under timeout(1)).
local function spawn(name, args, log)
  return procs:spawn(name, ("lua5.4 %s %s"):format(q(root .. "/scripts/bt-lua"), args), log,
    { lifetime = CHILD_LIFETIME })
end
local function finish(c) return procs:finish(c) end
local function stop_all() procs:stop_all() end





local function wait_port(port, seconds)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    local c = socket.tcp()
    c:settimeout(0.2)
    local ok = c:connect("127.0.0.1", port)
    c:close()
    if ok then return true end
    socket.sleep(0.1)
  end
  return false
end



--- A leecher's --stats file, read incrementally: complete lines only (a line being
-- written is kept for the next read).
local function stats_reader(path)
  local r = { lines = proc.jsonl_reader(path), last = nil, done_at = nil }
  function r:poll()
    self.lines:poll(function(obj)
      if not tonumber(obj.total_bytes) then return end
      self.last = obj
      -- the first line with every byte verified: the time it completed (run.lua writes one
      -- at the moment of completion, from the leecher's own start)
      if not self.done_at and obj.total_bytes > 0 and obj.have_bytes >= obj.total_bytes then
        self.done_at = obj.time
      end
    end)
  end
  return r
end

-- cjson decodes every number as a float; byte counts are printed as integers
local function int(x) return ("%d"):format(math.floor(x)) end

local function bar(frac, width)
  local n = math.floor(frac * width + 0.5)
  return ("#"):rep(n) .. ("."):rep(width - n)
end

-- Progress lines stay under 80 columns: a wrapped line would break the redraw in place.
local BAR_WIDTH = 12
local function progress_line(l)
  local s = l.stats.last
  if not s then return ("  %-13s starting"):format(l.policy) end
  local frac = s.total_bytes > 0 and s.have_bytes / s.total_bytes or 1
  local tail_
  if l.stats.done_at then
    tail_ = ("done %5.1f s  %9s/s up %2d peers"):format(l.stats.done_at, human(s.rate_up), s.peers)
  else
    tail_ = ("%9s/s down %9s/s up %2d peers"):format(human(s.rate_down), human(s.rate_up), s.peers)
  end
  return ("  %-13s [%s] %5.1f%%  %s"):format(l.policy, bar(frac, BAR_WIDTH), 100 * frac, tail_)
end

local drawn = 0   -- lines of the last progress block on the terminal
local function draw(leechers, elapsed)
  local lines = { ("  %5.1f s"):format(elapsed) }
  for _, l in ipairs(leechers) do lines[#lines + 1] = progress_line(l) end
  if tty then
    if drawn > 0 then term.cursor.goup(io.stdout, drawn) end
    for _, line in ipairs(lines) do
      io.stdout:write("\r")
      term.cleareol(io.stdout)
      io.stdout:write(line, "\n")
    end
    drawn = #lines
  else
    io.stdout:write(table.concat(lines, "\n"), "\n")
  end
  io.stdout:flush()
end

local dir

local function main()
  local out = sh("mktemp -d /tmp/bt-demo.XXXXXX")
  dir = out:match("^(/tmp/bt%-demo%.[%w]+)")
  assert(dir, "mktemp failed: " .. out)
  local seed_dir = dir .. "/seed"
  local payload = seed_dir .. "/payload.bin"
  local torrent = dir .. "/payload.torrent"
  assert(os.execute("mkdir -p " .. q(seed_dir)))

  local piece = MIN_PIECE
  while piece < MAX_PIECE and size / piece > TARGET_PIECES do piece = piece * 2 end
  say("making a %s payload (%d pieces of %s) in %s", human(size), (size + piece - 1) // piece, human(piece), dir)
  local o, ok = sh(("head -c %d /dev/urandom > %s"):format(size, q(payload)))
  assert(ok, "could not write the payload: " .. o)
  -- no announce URL: every peer is given by --peer
  o, ok = sh(("lua5.4 %s create %s -o %s -l %d"):format(q(root .. "/scripts/bt-lua"), q(payload),
    q(torrent), piece), true)
  assert(ok, "bt-lua create failed: " .. o)
  local want = sh("sha256sum " .. q(payload)):match("^(%x+)")
  assert(want, "sha256sum failed")

  local taken = {}
  local seed_port = free_port(taken)
  local cap = math.max(MIN_PIECE, size // SEED_SECONDS)
  say("seed on 127.0.0.1:%d, upload capped at %s/s", seed_port, human(cap))
  local seed = spawn("seed", ("seed %s -d %s --bind 127.0.0.1 --port %d --no-trackers --no-dht --max-up %d"):format(
    q(torrent), q(seed_dir), seed_port, cap), dir .. "/seed.log")
  if not wait_port(seed_port, SEED_LISTEN_WAIT) then
    error(("the seed did not listen within %d s:\n    %s"):format(SEED_LISTEN_WAIT,
      tail(dir .. "/seed.log", LOG_TAIL)), 0)
  end

  -- The start order is shuffled each run, because it sways the results: a capped seed
  -- serves its newest peer first (the core walks its peer list from the head, where new
  -- peers go), so the last leecher to start gets most of the seed and finishes first, and
  -- the first one ends up holding nothing the others lack. No policy should always get the
  -- same place.
  local order = { table.unpack(POLICIES) }
  math.randomseed(os.time())
  for i = #order, 2, -1 do
    local j = math.random(i)
    order[i], order[j] = order[j], order[i]
  end
  local leech_cap = math.max(MIN_PIECE, math.floor(cap * LEECH_UP_FRACTION))
  local leechers = {}
  for i, policy in ipairs(order) do
    leechers[i] = { policy = policy, port = free_port(taken), out = ("%s/leech-%d-%s"):format(dir, i, policy) }
  end
  for i, l in ipairs(leechers) do
    -- each leecher dials the seed and the leechers started before it, which listen already:
    -- every pair is connected once, by the later one, with no dial to a port nobody listens
    -- on yet (refused, then retried with back-off, then refused as a duplicate peer id)
    local peers = { "--peer 127.0.0.1:" .. seed_port }
    for j = 1, i - 1 do peers[#peers + 1] = "--peer 127.0.0.1:" .. leechers[j].port end
    l.statsfile = l.out .. ".stats"
    l.stats = stats_reader(l.statsfile)
    -- --seed: a finished leecher keeps serving the others until it is stopped
    l.child = spawn(l.policy, ("run %s %s -o %s --bind 127.0.0.1 --port %d --no-trackers --no-dht --seed --max-up %d "
      .. "--stats %s %s"):format(
      q(root .. "/examples/" .. l.policy .. ".lua"), q(torrent), q(l.out), l.port, leech_cap, q(l.statsfile),
      table.concat(peers, " ")), l.out .. ".log")
    if not wait_port(l.port, LEECHER_LISTEN_WAIT) then
      error(("leecher %s did not listen within %d s:\n    %s"):format(l.policy, LEECHER_LISTEN_WAIT,
        tail(l.out .. ".log", LOG_TAIL)), 0)
    end
  end
  say("%d leechers, uploads capped at %s/s, each dialing the seed and those started", #leechers, human(leech_cap))
  say("before it; start order: %s", table.concat(order, ", "))

  local t0 = socket.gettime()
  local last_draw = -math.huge
  while true do
    local now = socket.gettime() - t0
    local all = true
    for _, l in ipairs(leechers) do
      l.stats:poll()
      if not l.stats.done_at then
        all = false
        if not alive(l.child.pid) then
          error(("leecher %s exited (code %s) before completing:\n    %s"):format(l.policy,
            tostring(finish(l.child)), tail(l.out .. ".log", LOG_TAIL)), 0)
        end
      end
    end
    if not all and not alive(seed.pid) then
      error(("the seed exited (code %s):\n    %s"):format(tostring(finish(seed)), tail(seed.log, LOG_TAIL)), 0)
    end
    if all or now - last_draw >= (tty and TTY_EVERY or PLAIN_EVERY) then
      draw(leechers, now)
      last_draw = now
    end
    if all then break end
    if now > SWARM_DEADLINE then error(("the swarm did not complete within %d s"):format(SWARM_DEADLINE), 0) end
    socket.sleep(0.25)
  end

  -- stop everyone first: each leecher writes a last stats line on SIGTERM, with every
  -- byte it uploaded while seeding for the others
  stop_all()
  for _, l in ipairs(leechers) do l.stats:poll() end
  -- bt-lua exits 0 on SIGTERM; anything else (a crash, a sanitizer report) is a failure
  for _, c in ipairs(children) do
    if c.code ~= 0 then
      error(("%s exited with code %s when stopped:\n    %s"):format(c.name, tostring(c.code), tail(c.log, LOG_TAIL)), 0)
    end
  end

  local bad = {}
  for _, l in ipairs(leechers) do
    local got = sh("sha256sum " .. q(l.out .. "/payload.bin")):match("^(%x+)")
    l.same = got == want
    if not l.same then bad[#bad + 1] = l.policy end
  end

  print()
  -- "started": the leecher's place in the start order, shown because it sways the results
  -- as much as the policy does (see the start order comment above)
  local fmt = "  %-14s %7s %9s %12s %11s %11s  %s"
  print(fmt:format("policy", "started", "seconds", "downloaded", "duplicate", "uploaded", "sha256"))
  local down_total, up_total = 0, 0
  for i, l in ipairs(leechers) do
    local s = l.stats.last
    down_total, up_total = down_total + s.downloaded, up_total + s.uploaded
    print(fmt:format(l.policy, i, ("%.2f"):format(l.stats.done_at), int(s.downloaded), int(s.dup_bytes),
      int(s.uploaded), l.same and "ok" or "DIFFERS"))
  end
  print()
  if #bad > 0 then error("downloads differ from the payload: " .. table.concat(bad, ", "), 0) end
  say("payload %d bytes, identical in every copy; the leechers downloaded %s", size, human(down_total))
  say("in all, %s (%.0f%%) of it from each other", human(up_total),
    down_total > 0 and 100 * up_total / down_total or 0)
end

-- Ctrl-C: the lua5.4 interpreter turns SIGINT into an "interrupted!" error in the running
-- code, which this pcall catches, so the children are still stopped and the folder removed.
-- (The children run under timeout(1), in their own process group: the terminal's SIGINT
-- reaches only this script.)
local ok, err = pcall(main)
if not ok and drawn > 0 and tty then io.stdout:write("\n") end
stop_all()
if dir then sh("rm -rf " .. q(dir)) end
if not ok then
  if tostring(err):match("interrupted!$") then
    io.stderr:write("demo: interrupted; stopped everything it started and removed its folder\n")
    os.exit(130)   -- the shell's code for a SIGINT
  end
  io.stderr:write("demo failed: ", tostring(err), "\n")
  os.exit(1)
end
say("stopped the seed and the leechers; removed %s", dir)
