--- Shared pieces of the bench/*_bench.lua scripts: module paths, timing,
-- temporary files and folders, running the reference programs.
-- A benchmark starts with
--   local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
--   package.path = here .. "/?.lua;" .. package.path
--   local B = require "benchlib"
-- and then finds `require "bt"` in the checkout it sits in, whether run by
-- `make bench` (which also sets LUA_PATH_5_4/LUA_CPATH_5_4) or by hand.
local B = {}

--- The bench/ folder of the running script.
B.here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = B.here .. "/?.lua;" .. B.here .. "/../lua/?.lua;" .. B.here .. "/../lua/?/init.lua;"
  .. package.path
package.cpath = B.here .. "/../build/?.so;" .. package.cpath

--- Where `make bench` put the reference programs (bench/*.c, bench/*.cpp).
B.bin = os.getenv("BT_BENCH_BIN") or (B.here .. "/../build/bench")

--- Clocks: CPU time of this process (for work done here only) and wall time
-- (for work that waits on the disk or on child processes).
B.cpu = os.clock
function B.wall()
  return require("socket").gettime()
end

--- The best (smallest) time of `runs` calls of f. opts.clock is B.cpu (default)
-- or B.wall; opts.collect runs a full GC before each run, so every run starts
-- from the same heap state.
function B.best_of(runs, f, opts)
  local clock = opts and opts.clock or B.cpu
  local collect = opts and opts.collect
  local best = math.huge
  for _ = 1, runs do
    if collect then collectgarbage("collect") end
    local t0 = clock()
    f()
    local t = clock() - t0
    if t < best then best = t end
  end
  return best
end

--- Average CPU seconds per call of f, calling it until `min_seconds` passed
-- (enough repetitions to smooth the clock's granularity).
function B.per_call(f, min_seconds)
  local reps, t0 = 0, os.clock()
  local t
  repeat
    f()
    reps = reps + 1
    t = os.clock() - t0
  until t >= min_seconds
  return t / reps
end

--- 10^6 bytes per second.
function B.mbps(bytes, secs) return bytes / secs / 1e6 end

--- Run a shell command (without the sanitizer runtime `make asan` may have
-- preloaded); returns its stdout+stderr and true/false.
function B.sh(cmd)
  local p = io.popen("env -u LD_PRELOAD sh -c '" .. cmd:gsub("'", "'\\''") .. "' 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

--- A fresh folder /tmp/bt-bench.XXXXXX, removed by B.rmtree.
function B.tmpdir()
  local dir = B.sh("mktemp -d /tmp/bt-bench.XXXXXX"):match("[^\n]+")
  assert(dir and dir:match("^/tmp/bt%-bench%.[%w]+$"), "mktemp failed")
  return dir
end

function B.rmtree(dir)
  assert(dir:match("^/tmp/bt%-bench%.[%w]+$"), "refusing to remove " .. dir)
  B.sh("rm -rf '" .. dir .. "'")
end

--- `data` in a new temporary file; returns its path (remove it with os.remove).
function B.tmpfile(data)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
  return path
end

--- Run the reference program B.bin/NAME with `args` (each shell-quoted);
-- returns its stdout, or nil and a message when it is missing.
function B.run_ref(name, ...)
  local exe = B.bin .. "/" .. name
  local probe = io.open(exe, "rb")
  if not probe then return nil, exe .. " not found (run `make bench`)" end
  probe:close()
  local cmd = { "'" .. exe:gsub("'", "'\\''") .. "'" }
  for _, a in ipairs({ ... }) do cmd[#cmd + 1] = "'" .. tostring(a):gsub("'", "'\\''") .. "'" end
  local p = assert(io.popen(table.concat(cmd, " ")))
  local out = p:read("a")
  p:close()
  return out
end

--- Processes for the benchmarks that run real peers (engine, upload): start one in the
-- background (its output to `log` or nowhere) and get its PID, kill it by PID, find a
-- free port on 127.0.0.1, wait (bounded: `tries` x 0.1 s, default 10 s) until a port accepts.
local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
B.q = q   --- shell-quote one argument
function B.spawn(cmd, log)
  local p = io.popen("sh -c " .. q(cmd .. " >" .. (log or "/dev/null") .. " 2>&1 & echo $!"))
  local pid = tonumber(p:read("l"))
  p:close()
  return assert(pid, "could not start " .. cmd)
end
function B.kill(pid) if pid then os.execute("kill " .. pid .. " 2>/dev/null") end end
function B.free_port()
  local socket = require "socket"
  for _ = 1, 100 do
    local port = math.random(20000, 60000)
    local s = socket.bind("127.0.0.1", port)
    if s then s:close(); return port end
  end
  error("no free port")
end
function B.wait_port(port, tries)
  local socket = require "socket"
  for _ = 1, tries or 100 do
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect("127.0.0.1", port) then c:close(); return true end
    c:close()
    socket.sleep(0.1)
  end
  error("nothing listens on " .. port)
end

--- The median of a list of numbers (NaN for an empty one); the list is not changed.
function B.median(t)
  local c = {}
  for i, v in ipairs(t) do c[i] = v end
  table.sort(c)
  local n = #c
  if n == 0 then return 0 / 0 end
  if n % 2 == 1 then return c[(n + 1) // 2] end
  return (c[n // 2] + c[n // 2 + 1]) / 2
end

return B
