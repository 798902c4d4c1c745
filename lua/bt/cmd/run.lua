--- bt-lua run POLICY TORRENT|MAGNET: download a torrent with a Lua policy.
-- Exit 0 when every piece is downloaded and verified; otherwise one clear message
-- and a non-zero code: 2 bad torrent, 3 policy failed to load, threw or broke the
-- contract, 4 no peer reachable within --timeout, 6 no progress within
-- --stall-timeout while peers were connected, 1 anything else.
local cli = require "bt.cli"
local seedcmd = require "bt.cmd.seed"

local M = {}

M.EXIT_TORRENT, M.EXIT_POLICY, M.EXIT_NOPEERS, M.EXIT_STALLED =
  cli.EXIT_TORRENT, cli.EXIT_POLICY, cli.EXIT_NOPEERS, cli.EXIT_STALLED

function M.setup(cmd)
  cmd:argument("policy", "Policy script (.lua file) or module name (bt.policy.default).")
  cmd:argument("torrent", ".torrent file or magnet link (magnet:?xt=urn:btih:...) to download.")
  cmd:option("--save-torrent", "Write the .torrent to this file: for a magnet link, once its metadata "
    .. "has arrived from the peers and matched the info-hash (with the magnet's trackers).")
  cmd:option("-o --output", "Download folder.", ".")
  cmd:option("--storage", "disk: write the download under --output (with resume data). memory: "
    .. "hold the data in memory only (for experiments): nothing is created under --output, no resume "
    .. "data is read or written, and the data is gone when bt-lua exits (--seed serves it until then).", "disk")
    :choices{ "disk", "memory" }
  seedcmd.listen_options(cmd)
  cmd:option("--tick-ms", "Policy tick period in milliseconds.", "100")
  cmd:option("--timeout", "Give up when no peer is connected for this many seconds.", "60")
  cmd:option("--stall-timeout", "Give up when peers are connected but no block has arrived for this many "
    .. "seconds (a policy that requests nothing, peers that never unchoke us); 0: never.", "300")
  cmd:option("--policy-memory", "Stop the policy (exit 3) when Lua holds more than this after one of its "
    .. "hooks, even after a full collection (K/M/G; 0: no limit).", "1G")
  cmd:option("--stats", "Write one JSON object per second to this file: the fields of t:stats() "
    .. "(docs/policy.md), time, seconds since the start, trackers, and dht (the DHT node's "
    .. "stats, docs/api.md, or false).")
  cmd:option("--peer", "Dial this peer (HOST:PORT); may be repeated."):count("*")
  cmd:flag("--no-trackers", "Do not announce to the torrent's trackers.")
  seedcmd.dht_options(cmd)
  cmd:flag("--seed", "Keep seeding after the download completes (see --ratio, --seed-time).")
  seedcmd.seed_options(cmd)
  seedcmd.limit_options(cmd)
  cmd:flag("-q --quiet", "No progress output.")
end

local human = cli.human

local function eta(sec)
  if not sec or sec ~= sec or sec == math.huge or sec < 0 then return "--:--" end
  sec = math.floor(sec)
  if sec >= 3600 then return ("%d:%02d:%02d"):format(sec // 3600, sec % 3600 // 60, sec % 60) end
  return ("%02d:%02d"):format(sec // 60, sec % 60)
end

local function num(args, name)
  local v = tonumber(args[name])
  if not v then cli.fail("--" .. name:gsub("_", "-") .. " must be a number") end
  return v
end

function M.run(args)
  local session = require "bt.session"
  local policy = require "bt.policy"
  local m, terr
  if session.is_magnet(args.torrent) then
    -- a malformed link is refused here, before any socket exists
    local mg, merr = require("bt").magnet_parse(args.torrent)
    if not mg then cli.fail("bad magnet link: " .. merr, M.EXIT_TORRENT) end
    m = args.torrent
  else
    m, terr = session.metainfo(args.torrent)
    if not m then cli.fail(terr, M.EXIT_TORRENT) end
  end
  local function save_torrent(bytes)
    local f = io.open(args.save_torrent, "wb")
    if not (f and f:write(bytes) and f:close()) then cli.fail("cannot write " .. args.save_torrent) end
  end
  if args.save_torrent and type(m) ~= "string" then save_torrent(m:bytes()) end
  local ok, pol = pcall(policy.load, args.policy)
  if not ok then cli.fail("policy failed to load: " .. tostring(pol), M.EXIT_POLICY) end
  local tick_ms, timeout = num(args, "tick_ms"), num(args, "timeout")
  local stall = num(args, "stall_timeout")
  if stall < 0 then cli.fail("--stall-timeout must be >= 0") end
  -- signals: SIGINT/SIGTERM stop the loop; s:close() below then saves resume data
  -- and announces "stopped" (bounded by session.STOPPED_WAIT), and we exit 0.
  local ratio, stime = seedcmd.num(args, "ratio", 0), seedcmd.num(args, "seed_time", 0)
  local down, up = seedcmd.rate_option(args, "max_down"), seedcmd.rate_option(args, "max_up")
  local pmem = seedcmd.parse_rate(args.policy_memory)
  if not pmem or (pmem > 0 and pmem < 1024 * 1024) then
    cli.fail("--policy-memory must be a size like 512M (at least 1M), or 0")
  end
  local opts = seedcmd.listen_opts(args, args.storage == "disk" and args.output or nil)
  opts.tick_ms, opts.signals, opts.max_down, opts.max_up = tick_ms, true, down, up
  opts.max_request, opts.policy_memory_limit = seedcmd.request_option(args), pmem
  local s = session.new(opts)
  seedcmd.warn(s)
  local storage = args.storage   -- "disk" or "memory": argparse's choices
  local aok, t = pcall(s.add, s, m, { dir = storage == "disk" and args.output or nil, storage = storage,
    policy = pol, peers = args.peer, trackers = not args.no_trackers, seed = args.seed })
  if not aok then cli.fail((tostring(t):gsub("^[^:\n]+:%d+: ", ""))) end
  -- a magnet whose metadata an earlier run kept: a torrent at once, no metadata event
  if args.save_torrent and type(m) == "string" and not t.fetching then save_torrent(s.by_handle[t].meta:bytes()) end

  local failure, code
  s:on("error", function(_, msg)
    failure = msg
    code = msg:find("^policy") and M.EXIT_POLICY or msg:find("^metadata refused") and M.EXIT_TORRENT or 1
    s:stop()
  end)
  s:on("metadata", function(_, bytes)
    if args.save_torrent then save_torrent(bytes) end
    if not args.quiet then
      io.stderr:write(("metadata: %s (%d bytes) from the peers\n"):format(t.name or "?", #bytes))
    end
  end)
  local seeding = false   -- once seeding, a late "complete" event must not stop the loop
  s:on("complete", function() if not seeding then s:stop() end end)

  local isatty = false
  do
    local okt, term = pcall(require, "term")
    if okt and term.isatty then isatty = term.isatty(io.stderr) end
  end
  local quiet = args.quiet
  local statsf
  if args.stats then
    statsf = io.open(args.stats, "w")
    if not statsf then cli.fail("cannot write " .. args.stats) end
  end
  local cjson = statsf and require "cjson"

  local start = s.core:now()
  local last_peer_seen = start
  local last_progress, last_downloaded = start, -1   -- a block arrived
  local last_print, last_stats, last_draw = start, start, start
  -- rates shown are over the last RATE_WINDOW seconds of samples (the peers' own
  -- meters are smoothed for pipeline sizing and lag behind on short transfers)
  local RATE_WINDOW, DRAW_EVERY = 1.0, 0.25
  local samples = {}
  local function rates(now, st)
    samples[#samples + 1] = { now, st.downloaded, st.uploaded }
    while #samples > 2 and now - samples[2][1] >= RATE_WINDOW do table.remove(samples, 1) end
    local a = samples[1]
    local dt = now - a[1]
    if dt <= 0 then return st.rate_down, st.rate_up end
    return (st.downloaded - a[2]) / dt, (st.uploaded - a[3]) / dt
  end
  local function report(now, final)
    local st = t:stats()
    if st.peers > 0 then last_peer_seen = now end
    if st.downloaded ~= last_downloaded or st.peers == 0 then last_progress, last_downloaded = now, st.downloaded end
    if statsf and (now - last_stats >= 1 or final) then
      last_stats = now
      -- the line is t:stats(), field for field, the time and s:trackers(t) by URL (an object
      -- either way: cjson writes an empty table as {})
      st.time, st.trackers = now - start, {}
      for _, tr in ipairs(s:trackers(t)) do st.trackers[tr.url], tr.url = tr, nil end
      st.dht = s:dht_stats() or false
      statsf:write(cjson.encode(st), "\n")
      statsf:flush()
    end
    if quiet then return end
    local rdown, rup = rates(now, st)
    local pct = st.total_bytes > 0 and 100 * st.have_bytes / st.total_bytes or 100
    local left = st.total_bytes - st.have_bytes
    local line = ("%5.1f%%  %s/s down  %s/s up  %d peers  ETA %s"):format(pct, human(rdown),
      human(rup), st.peers, eta(rdown > 0 and left / rdown or nil))
    if isatty then
      if now - last_draw < DRAW_EVERY and not final then return end
      last_draw = now
      io.stderr:write("\r\27[K", line)
      if final then io.stderr:write("\n") end
    elseif now - last_print >= 5 or final then
      last_print = now
      io.stderr:write(line, "\n")
    end
  end

  if not quiet then
    seedcmd.report_trackers(s, function(msg)
      io.stderr:write(isatty and "\r\27[K" or "", msg, "\n")   -- the status line redraws below it
    end)
  end

  s:on("tick", function(now)
    report(now, false)
    if t.complete then return end
    if now - last_peer_seen > timeout then
      failure = ("no peers reachable within %g s"):format(timeout)
      code = M.EXIT_NOPEERS
      s:stop()
    elseif stall > 0 and now - last_progress > stall then
      local st = t:stats()
      local why
      if st.peers_unchoking == 0 then
        why = "no peer unchokes us"
      elseif st.inflight == 0 then
        why = ("policy '%s' requested nothing"):format(tostring(pol.name))
      else
        why = ("%d requests of policy '%s' got no answer"):format(st.inflight, tostring(pol.name))
      end
      failure = ("no block arrived for %g s with %d peer%s connected: %s (--stall-timeout)")
        :format(stall, st.peers, st.peers == 1 and "" or "s", why)
      code = M.EXIT_STALLED
      s:stop()
    end
  end)

  -- every way out: the stats file closed, then the session (resume data, "stopped")
  local function close_all()
    if statsf then statsf:close() end
    s:close()
  end

  if not t.complete then s:run() end
  local now = s.core:now()
  local sig = s:signal()
  if sig and not failure and not t.complete then
    report(now, true)
    close_all()
    if not quiet then
      io.stderr:write(("interrupted by %s: %s\n"):format(sig, storage == "memory"
        and "memory storage, nothing was saved" or "progress saved"))
    end
    return 0
  end
  if not failure and not t.complete then failure, code = t.error or "stopped before completion", 1 end
  if not failure then
    -- "done" means durable, and in the files named by the torrent: a path replaced
    -- (by a folder, another file) while we wrote through a cached descriptor fails here
    local synced, serr = t:sync()
    if not synced then failure, code = "download complete but not saved: " .. tostring(serr), 1 end
  end
  report(now, true)
  local st = t:stats()
  if failure then
    close_all()
    cli.fail(failure, code)
  end
  if not quiet then
    local secs = now - start
    io.stderr:write(("done: %s in %.2f s (%s/s), %s duplicate\n"):format(human(st.total_bytes), secs,
      human(secs > 0 and st.total_bytes / secs or 0), human(st.dup_bytes)))
  end
  if args.seed then
    seeding = true
    if not quiet then io.stderr:write("seeding\n") end
    local why = seedcmd.seed_until(s, t, { ratio = ratio, time = stime })
    local uploaded, serr = t:stats().uploaded, t.error
    if statsf then report(s.core:now(), true) end
    close_all()
    return seedcmd.seeding_done(why, serr, uploaded, quiet)
  end
  close_all()
  return 0
end

return M
