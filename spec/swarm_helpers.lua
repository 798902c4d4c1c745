--- Helpers for the engine's integration specs: payloads, torrents, real peers
-- (aria2c, transmission, opentracker) on 127.0.0.1, each started in the
-- background, remembered by PID and killed by PID. Every wait is bounded.
local H = require "helpers"
local socket = require "socket"

local S = {}

local next_port = 20000 + (tonumber(tostring(os.time()):sub(-3)) or 0) * 7 % 20000
--- A free TCP port on 127.0.0.1 (probed by binding it).
function S.port()
  for _ = 1, 200 do
    next_port = next_port + 1
    if next_port > 60000 then next_port = 20000 end
    local srv = socket.bind("127.0.0.1", next_port)
    if srv then srv:close(); return next_port end
  end
  error("no free port")
end

function S.sleep(s) socket.sleep(s) end

--- Deterministic pseudo-random bytes (so a failure can be reproduced).
function S.bytes(n, seed)
  local parts, x = {}, seed or 1
  local chunk = {}
  for i = 1, 4096 do
    x = (x * 1103515245 + 12345) % 2147483648
    chunk[i] = string.char(x % 251)
  end
  local c = table.concat(chunk)
  local reps = n // #c
  for i = 1, reps do parts[i] = c:sub(i % 97 + 1) .. c:sub(1, i % 97) end
  local s = table.concat(parts)
  return s .. c:sub(1, n - #s)
end

--- Write files under dir: spec is { ["name"] = size or content, ... }.
function S.make_files(dir, spec, seed)
  for name, v in pairs(spec) do
    local path = dir .. "/" .. name
    local parent = path:match("^(.*)/[^/]*$")
    os.execute("mkdir -p " .. H.q(parent))
    H.writefile(path, type(v) == "number" and S.bytes(v, seed) or v)
  end
end

--- mktorrent: target (file or folder), piece length as log2, output path.
function S.mktorrent(target, out, log2, tracker)
  local cmd = ("mktorrent -l %d -a %s -o %s %s"):format(log2 or 18,
    H.q(tracker or "http://127.0.0.1:1/announce"), H.q(out), H.q(target))
  local o, ok = H.sh(cmd)
  assert(ok, o)
  return out
end

--- A payload and its torrent in a new temporary folder: TMP/seed/NAME holding `size`
-- pseudo-random bytes (from `seed`) and TMP/NAME.torrent, with 2^log2-byte pieces
-- naming `tracker` (default: a dead URL). Returns tmp, the torrent's path, the payload's.
function S.fixture(name, size, seed, log2, tracker)
  local tmp = H.tmpdir()
  os.execute("mkdir -p " .. H.q(tmp .. "/seed"))
  S.make_files(tmp .. "/seed", { [name] = size }, seed)
  local data = tmp .. "/seed/" .. name
  return tmp, S.mktorrent(data, tmp .. "/" .. name .. ".torrent", log2, tracker), data
end

--- Run fn(), then whatever happened: kill every PID in `pids` (fn may add to it, in any
-- order), call every function in pids.after (e.g. stopping a tracker), remove tmp (when
-- given); then re-raise fn's error.
function S.guard(tmp, pids, fn)
  local ok, err = pcall(fn)
  for k, pid in pairs(pids) do
    if k ~= "after" then S.kill(pid) end
  end
  for _, f in ipairs(pids.after or {}) do f() end
  if tmp then H.rmtree(tmp) end
  if not ok then error(err, 0) end
end

--- Start a command in the background; returns its PID.
-- `ours` keeps the sanitizer runtime preloaded by `make asan` (a child that loads our
-- module needs it); foreign programs never get it.
function S.spawn(cmd, log, ours)
  local p = io.popen((ours and "" or "env -u LD_PRELOAD ") .. "sh -c " .. H.q(cmd .. " >" .. (log or "/dev/null") ..
    " 2>&1 & echo $!"))
  local pid = tonumber(p:read("l"))
  p:close()
  assert(pid, "could not start: " .. cmd)
  return pid
end

function S.kill(pid)
  if pid then os.execute("kill " .. pid .. " 2>/dev/null; sleep 0.1; kill -9 " .. pid .. " 2>/dev/null") end
end

--- The file's bytes, or "" when it cannot be read (yet).
function S.read_or_empty(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

--- Start bt-lua ARGS in the background, under timeout(1) when `secs` is given. Returns a
-- handle: pid (the lua5.4 process itself, which records its own PID before exec, so a
-- signal reaches bt-lua and not a shell), rcfile (written with the exit code when it
-- ends), log.
function S.start_btlua(dir, args, secs)
  local id = tostring(socket.gettime()):gsub("%.", "")
  local h = { pidfile = dir .. "/pid-" .. id, rcfile = dir .. "/rc-" .. id, log = dir .. "/log-" .. id }
  local inner = ("echo $$ > %s; exec env %s lua5.4 %s %s"):format(H.q(h.pidfile), H.lua_env(),
    H.q(H.root .. "/scripts/bt-lua"), args)
  local wrap = secs and ("timeout -k 1 %d "):format(secs) or ""
  S.spawn(("(%ssh -c %s; echo $? > %s)"):format(wrap, H.q(inner), H.q(h.rcfile)), h.log, true)
  local deadline = socket.gettime() + 5
  while socket.gettime() < deadline do
    local pid = tonumber(S.read_or_empty(h.pidfile):match("%d+"))
    if pid then h.pid = pid; return h end
    socket.sleep(0.05)
  end
  error("bt-lua did not start")
end

--- The exit code of a process started by S.start_btlua, or nil while it runs.
function S.rc_of(h)
  return tonumber(S.read_or_empty(h.rcfile):match("%d+"))
end

function S.alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

--- Wait (bounded) until something accepts on 127.0.0.1:port.
function S.wait_port(port, seconds, host)
  local deadline = socket.gettime() + (seconds or 10)
  while socket.gettime() < deadline do
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect(host or "127.0.0.1", port) then c:close(); return true end
    c:close()
    socket.sleep(0.1)
  end
  return false
end

--- aria2c seeding `torrent` from `dir`. Returns pid, port.
function S.aria2_seed(torrent, dir, opts)
  opts = opts or {}
  local port = S.port()
  local extra = opts.limit and (" --max-upload-limit=" .. opts.limit) or ""
  local pid = S.spawn(("aria2c -V --seed-ratio=0.0 --enable-dht=false --bt-enable-lpd=false " ..
    "--enable-peer-exchange=false --listen-port=%d --dht-listen-port=%d -d %s%s %s"):format(
    port, S.port(), H.q(dir), extra, H.q(torrent)), opts.log)
  assert(S.wait_port(port, 15), "aria2c did not listen on " .. port)
  return pid, port
end

--- Run bt-lua's CLI; returns output, exit code.
function S.btlua(args)
  local p = io.popen("lua5.4 " .. H.q(H.root .. "/scripts/bt-lua") .. " " .. args .. " 2>&1; echo \"__exit=$?\"")
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  return (out:gsub("__exit=%d+%s*$", "")), code
end

function S.sha256(path)
  local o = H.sh("sha256sum " .. H.q(path))
  return o:match("^(%x+)")
end

--- Download with the library API in this process. opts: policy, peers, timeout (s),
-- dir, bind (default 127.0.0.1), session options. Returns the torrent handle, the session's stats and the session.
function S.download(torrent, opts)
  local session = require "bt.session"
  local s = session.new{ port = 0, bind = opts.bind or "127.0.0.1", tick_ms = opts.tick_ms or 50,
    idle_timeout = opts.idle_timeout, connect_timeout = opts.connect_timeout,
    policy_time_limit = opts.policy_time_limit, policy_memory_limit = opts.policy_memory_limit,
    keepalive = opts.keepalive }
  local t = s:add(torrent, { dir = opts.dir, policy = opts.policy, peers = opts.peers,
    trackers = opts.trackers })
  local errors = {}
  s:on("error", function(_, msg) errors[#errors + 1] = msg; s:stop() end)
  s:on("complete", function() s:stop() end)
  for ev, fn in pairs(opts.on or {}) do s:on(ev, fn) end
  local t0 = s.core:now()
  local limit = opts.timeout or 30
  if not t.complete then
    s:run(function(ss) return ss.core:now() - t0 > limit end)
  end
  local st = t:stats()
  st.seconds = s.core:now() - t0
  st.complete = t.complete
  st.errors = errors
  st.error = t.error
  st.pieces = t.pieces
  if not opts.keep then s:close() end
  return t, st, s
end


--- The info-hash of a .torrent file, 40 hex digits.
function S.info_hash_hex(torrent)
  local bt = require "bt"
  local m = assert(bt.meta_parse(H.readfile(torrent)))
  return m.info_hash_hex
end

--- A misbehaving seed written in Lua (spec/peers/seed.lua), listening on host (default
-- 127.0.0.1; another 127.x is another host to bans and caps). Returns pid, port.
function S.lua_seed(mode, torrent, datafile, lifetime, host)
  local port = S.port()
  local env = ("%s SEED_LIFETIME=%d SEED_HOST=%s"):format(H.lua_env(), lifetime or 60, host or "127.0.0.1")
  local pid = S.spawn(("%s lua5.4 %s %s %d %s %s"):format(env, H.q(H.root .. "/spec/peers/seed.lua"), mode,
    port, H.q(torrent), H.q(datafile)), (torrent:match("^(.*)/") or ".") .. "/seed-" .. mode .. "-" .. port .. ".log",
    true)
  assert(S.wait_port(port, 10, host), "lua seed did not listen")
  return pid, port
end

--- bt-lua seeding `dir` (spec/peers/btseed.lua) in another process. Returns pid, port.
function S.bt_seed(torrent, dir, lifetime)
  local port = S.port()
  local env = H.lua_env()
  local pid = S.spawn(("%s lua5.4 %s %s %s %d %d"):format(env, H.q(H.root .. "/spec/peers/btseed.lua"),
    H.q(torrent), H.q(dir), port, lifetime or 60), (torrent:match("^(.*)/") or ".") .. "/btseed-" .. port .. ".log",
    true)
  assert(S.wait_port(port, 10), "bt-lua seed did not listen")
  return pid, port
end

--- bt-lua seeding `dir` AND announcing to the torrent's trackers (btseed.lua does not
-- announce; aria2c cannot be handed a peer, so it must learn the seed from a tracker).
-- The script is written next to the torrent. `peers` ({"host:port"}, optional): leechers
-- the seed dials itself (transmission ignores 127.x peers from trackers but accepts a
-- connection). Returns pid, port.
function S.bt_seed_tracked(torrent, dir, lifetime, peers, opts)
  opts = opts or {}
  local port = S.port()
  local extra = {}   -- opts.session: more numeric session options, e.g. { max_request = 131072 }
  for k, v in pairs(opts.session or {}) do extra[#extra + 1] = (", %s = %d"):format(k, v) end
  local base = (torrent:match("^(.*)/") or ".")
  local script = base .. "/btseed-tracked-" .. port .. ".lua"
  local quoted = {}
  for i, p in ipairs(peers or {}) do quoted[i] = ("%q"):format(p) end
  local plist = table.concat(quoted, ", ")
  H.writefile(script, ([[
local session = require "bt.session"
local s = session.new{ port = %d, bind = "127.0.0.1", tick_ms = 50%s }
local t = s:add(%q, { dir = %q })
assert(t.complete, "seed data is not complete")
-- a complete torrent does not dial its candidates: dial each leecher once, by hand
for _, hp in ipairs{ %s } do
  local host, port = hp:match("^(.*):(%%d+)$")
  t:connect(host, tonumber(port))
end
local t0 = s.core:now()
-- opts.report: a file kept holding the bytes uploaded so far (rewritten when it changes)
local report, last = %q, -1
s:run(function()
  local up = t:stats().uploaded
  if report ~= "" and up ~= last then
    local f = io.open(report .. ".tmp", "w")
    f:write(up, "\n")
    f:close()
    os.rename(report .. ".tmp", report)
    last = up
  end
  return s.core:now() - t0 > %d
end)
s:close()
]]):format(port, table.concat(extra), torrent, dir, plist, opts.report or "", lifetime or 60))
  local pid = S.spawn(("%s lua5.4 %s"):format(H.lua_env(), H.q(script)),
    base .. "/btseed-" .. port .. ".log", true)
  assert(S.wait_port(port, 10), "bt-lua seed did not listen")
  return pid, port
end

--- aria2c leeching `torrent` into `dir` in the background (finds peers via the tracker).
-- Returns pid, the path of its log.
function S.aria2_leech(torrent, dir, opts)
  opts = opts or {}
  local log = dir .. ".aria2.log"
  local extra = opts.limit and (" --max-download-limit=" .. opts.limit) or ""
  local pid = S.spawn(("aria2c --seed-time=0 --enable-dht=false --bt-enable-lpd=false " ..
    "--enable-peer-exchange=false --file-allocation=none --listen-port=%d --dht-listen-port=%d " ..
    "--bt-stop-timeout=%d -d %s%s %s"):format(S.port(), S.port(), opts.timeout or 40, H.q(dir),
    extra, H.q(torrent)), log)
  return pid, log
end

--- Wait (bounded) until a PID exits.
function S.wait_exit(pid, seconds)
  local deadline = socket.gettime() + (seconds or 30)
  while socket.gettime() < deadline do
    if not S.alive(pid) then return true end
    socket.sleep(0.1)
  end
  return false
end

return S
