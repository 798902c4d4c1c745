--- bt-lua seed TORRENT --dir DIR: verify a torrent's data (resume data, else a hash
-- check) and seed it until --ratio or --seed-time is reached, or SIGINT/SIGTERM.
-- --storage memory: the data is read from DIR once, verified and served from memory.
-- Exit 0 then; 2 bad torrent; 5 the data is incomplete (nothing is seeded); 1 other.
-- M.seed_until is shared with `bt-lua run --seed`.
local cli = require "bt.cli"

local M = {}

M.EXIT_TORRENT, M.EXIT_INCOMPLETE = cli.EXIT_TORRENT, cli.EXIT_INCOMPLETE
-- How often the progress line is printed when stderr is not a terminal (seconds).
M.PRINT_EVERY = 5

--- Parse a rate: bytes/s as a number with an optional K/M/G suffix (powers of
-- 1024, "k"/"KiB" too). 0 means unlimited. Returns the integer or nil.
function M.parse_rate(v)
  if v == nil then return 0 end
  local n, suf = tostring(v):match("^%s*(%d+%.?%d*)%s*([kKmMgG]?)[iI]?[bB]?%s*$")
  n = tonumber(n)
  if not n then return nil end
  local mul = ({ [""] = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3 })[suf:lower()]
  local r = math.floor(n * mul)
  if r > 2 ^ 40 then return nil end   -- a terabyte per second is a typo
  return r
end

function M.rate_option(args, name)
  local r = M.parse_rate(args[name])
  if not r then cli.fail("--" .. name:gsub("_", "-") .. " must be a rate like 500K or 2M (bytes/s)") end
  return r
end

local function num(args, name, min)
  if args[name] == nil then return nil end
  local v = tonumber(args[name])
  if not v or (min and v < min) then
    cli.fail("--" .. name:gsub("_", "-") .. " must be a number" .. (min and (" >= " .. min) or ""))
  end
  return v
end
M.num = num

--- Listening options shared by run and seed.
function M.listen_options(cmd)
  cmd:option("--port", "Port to listen on (0: any free port).", "0")
  cmd:option("--bind", "Addresses to listen on, IPv4 or IPv6, comma-separated (127.0.0.1,::1); "
    .. "default: env BT_BIND, else every address of both stacks (0.0.0.0,::; IPv6 where the system has it).",
    os.getenv("BT_BIND"))
  cmd:option("--max-peers", "Most peers at once (lowered, with a message, to what the open-file limit allows).", "50")
  cmd:option("--max-per-ip", "Most connections with one host, half of them still in their handshake; "
    .. "0 turns the per-host rules off (default: env BT_MAX_PER_IP, else 8).", os.getenv("BT_MAX_PER_IP") or "8")
end

--- The listen options as bt.session options; dir: where the DHT's state file goes by default.
function M.listen_opts(args, dir)
  local o = { port = num(args, "port", 0), bind = args.bind, max_peers = num(args, "max_peers", 1),
    max_per_ip = num(args, "max_per_ip", 0) }
  o.dht = M.dht_opts(args, dir, o.max_per_ip)
  return o
end

--- DHT options shared by run, seed and dht.
function M.dht_options(cmd, no_flag)
  if not no_flag then
    cmd:flag("--no-dht", "No DHT node (BEP 5). Private torrents never use the DHT.")
  end
  cmd:option("--dht-node", "Bootstrap the DHT from this node (HOST:PORT); may be repeated. Without "
    .. "one and without a state file: env BT_DHT_BOOTSTRAP (comma-separated) or the public routers."):count("*")
  cmd:option("--dht-state", "The DHT's state file (node id and good nodes), read at start and written "
    .. "atomically every 5 min and at exit (default: FOLDER/.bt-lua/dht.state).")
end

--- The DHT options as bt.session's `dht` (false: none). --max-per-ip 0 turns the DHT's
-- per-host rules off too: one routing-table entry per IP, the per-IP answer rate.
function M.dht_opts(args, dir, max_per_ip)
  if args.no_dht then return false end
  local loopback = max_per_ip == 0
  return { nodes = args.dht_node, state = args.dht_state or (dir and (dir .. "/.bt-lua/dht.state")),
           restrict_ips = not loopback, answer_rate_ip = loopback and -1 or nil }
end

--- The session's warning (max_peers lowered to the open-file limit), for run and seed.
function M.warn(s)
  if s.warning then io.stderr:write("bt-lua: ", s.warning, "\n") end
end

--- Seeding options shared by run and seed.
function M.seed_options(cmd)
  cmd:option("--ratio", "Stop seeding once uploaded / total size reaches this.")
  cmd:option("--seed-time", "Stop seeding after this many seconds.")
end

function M.limit_options(cmd)
  cmd:option("--max-down", "Download limit in bytes/s (500K, 2M; 0: none).", "0")
  cmd:option("--max-up", "Upload limit in bytes/s (500K, 2M; 0: none).", "0")
  cmd:option("--max-request", "Largest block served to a peer, 16K to 128K; a peer asking for more "
    .. "is disconnected.", "16K")
end

--- --max-request in bytes, checked against the range the session accepts.
function M.request_option(args)
  local r = M.parse_rate(args.max_request)
  if not r or r < 16384 or r > 131072 then cli.fail("--max-request must be between 16K and 128K") end
  return r
end

--- Tell the user about tracker failures: each distinct failure of a tracker once (a
-- tracker retrying with the same error says nothing new), and its recovery once.
-- The text comes from the tracker: control bytes are escaped.
function M.report_trackers(s, write)
  local printable = require("bt.cmd.info").printable
  local last = {}   -- url -> the last failure shown, false once it answered again
  s:on("tracker", function(_, info)
    local url = printable(tostring(info.url))
    if info.ok then
      if last[url] then write(("tracker %s: answered again (%d peers)"):format(url, info.peers or 0)) end
      last[url] = false
      return
    end
    local why = printable(tostring(info.error or "failed"))
    -- the same failure again, told apart only by numbers ("after 0 ms", "after 6 ms": libcurl)
    local key = why:gsub("%d+", "#")
    if last[url] == key then return end
    last[url] = key
    write(("tracker %s: %s%s"):format(url, why,
      info.retry_in and (" (retrying in %d s)"):format(math.floor(info.retry_in + 0.5)) or ""))
  end)
end

--- Run the session while t seeds: until uploaded/total >= ratio, `time` seconds
-- have passed, a signal, or t stops. Returns why it ended ("ratio", "time",
-- "SIGINT", "SIGTERM", "stopped" or "error").
function M.seed_until(s, t, opts)
  if s:signal() then return s:signal() end   -- asked to stop before seeding began
  local t0 = s.core:now()
  local why
  local total = t:stats().total_bytes
  local function done()
    local st = t:stats()
    if opts.ratio and total > 0 and st.uploaded / total >= opts.ratio then why = "ratio"; return true end
    if opts.time and s.core:now() - t0 >= opts.time then why = "time"; return true end
    if t.stopped then why = "stopped"; return true end
    return false
  end
  if not done() then s:run(done) end
  why = why or s:signal() or (t.error and "error") or "stopped"
  return why
end

--- The end of seeding (after s:close()), for run and seed: fail when the torrent
-- stopped or failed, else say why it ended. Returns the exit code, 0.
function M.seeding_done(why, err, uploaded, quiet)
  if why == "error" or why == "stopped" then cli.fail("seeding stopped: " .. tostring(err or why), 1) end
  if not quiet then io.stderr:write(("done seeding (%s): uploaded %s\n"):format(why, cli.human(uploaded))) end
  return 0
end

function M.setup(cmd)
  cmd:argument("torrent", ".torrent file to seed.")
  cmd:option("-d --dir", "Folder holding the torrent's data.", ".")
  cmd:option("--storage", "disk: serve from the files in --dir. memory: read the files in --dir "
    .. "once (never written), verify them, hold the data in memory and serve from there.", "disk")
    :choices{ "disk", "memory" }
  M.listen_options(cmd)
  cmd:option("--peer", "Dial this peer (HOST:PORT); may be repeated."):count("*")
  cmd:flag("--no-trackers", "Do not announce to the torrent's trackers.")
  M.dht_options(cmd)
  M.seed_options(cmd)
  M.limit_options(cmd)
  cmd:flag("-q --quiet", "No progress output.")
end

local human = cli.human

function M.run(args)
  local session = require "bt.session"
  local m, terr = session.metainfo(args.torrent)
  if not m then cli.fail(terr, M.EXIT_TORRENT) end
  local ratio, stime = num(args, "ratio", 0), num(args, "seed_time", 0)
  local down, up = M.rate_option(args, "max_down"), M.rate_option(args, "max_up")
  local storage = args.storage   -- "disk" or "memory": argparse's choices
  local opts = M.listen_opts(args, storage == "disk" and args.dir or nil)
  opts.signals, opts.max_down, opts.max_up, opts.max_request = true, down, up, M.request_option(args)
  local s = session.new(opts)
  M.warn(s)
  if not args.quiet then M.report_trackers(s, function(msg) io.stderr:write(msg, "\n") end) end
  -- trackers only once the data is known complete: an incomplete copy announces nothing
  local add = { storage = storage, peers = args.peer, seed = true, trackers = false }
  if storage == "memory" then add.load = args.dir else add.dir = args.dir end
  local aok, t = pcall(s.add, s, m, add)
  if not aok then
    s:close()
    cli.fail((tostring(t):gsub("^[^:\n]+:%d+: ", "")))
  end
  if not t.complete then
    local st = t:stats()
    s:close()
    cli.fail(("data in %s is incomplete: %d of %d pieces verified; nothing to seed"):format(
      args.dir, st.pieces_done, st.pieces), M.EXIT_INCOMPLETE)
  end
  if not args.no_trackers then s:start_trackers(t) end
  if not args.quiet then
    io.stderr:write(("seeding %s (%s) from %s on port %d\n"):format(t.name, human(t:stats().total_bytes),
      storage == "memory" and ("memory (loaded from " .. args.dir .. ")") or args.dir, s.port))
    local last = s.core:now()
    s:on("tick", function(now)
      if now - last < M.PRINT_EVERY then return end
      last = now
      local st = t:stats()
      io.stderr:write(("uploaded %s, %d peers\n"):format(human(st.uploaded), st.peers))
    end)
  end
  local why = M.seed_until(s, t, { ratio = ratio, time = stime })
  local uploaded, err = t:stats().uploaded, t.error
  s:close()
  return M.seeding_done(why, err, uploaded, args.quiet)
end

return M
