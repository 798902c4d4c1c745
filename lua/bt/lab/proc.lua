--- bt.lab.proc: child processes started in the background and stopped by their PID, for
-- the lab and for scripts/demo.lua's swarm. Each child runs under timeout(1), which ends
-- it by itself should the parent die without cleaning up (SIGKILL), and which runs it in
-- a process group of its own: the terminal's Ctrl-C reaches only the parent, which stops
-- its children in order (SIGTERM, then SIGKILL after a bounded wait).
--
--   local procs = proc.group()
--   local c = procs:spawn("seed", "lua5.4 x.lua", "/tmp/x.log", { lifetime = 300 })
--   procs:alive(c)  ...  procs:stop_all()   -- every exit code in c.code
local socket = require "socket"
local cjson = require "cjson"

local M = {}

-- timeout(1) turns our SIGTERM into a SIGKILL for the child after KILL_AFTER; we SIGKILL
-- timeout itself only if it still runs STOP_WAIT after the SIGTERM.
M.KILL_AFTER = 5
M.STOP_WAIT = M.KILL_AFTER + 3

function M.q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

--- Run a shell command for a foreign program (sha256sum, rm, gnuplot): the sanitizer
-- runtime that `make asan` preloads is for our module only; `ours` keeps it.
-- Returns the output (stderr too) and true on success.
function M.sh(cmd, ours)
  local p = io.popen((ours and "" or "env -u LD_PRELOAD ") .. "sh -c " .. M.q(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

function M.alive(pid)
  return os.execute("kill -0 " .. pid .. " 2>/dev/null") == true
end

--- A free TCP port on 127.0.0.1: bind port 0, read it back, release it. `taken` avoids
-- handing out one port twice before the children bind them.
function M.free_port(taken)
  for _ = 1, 50 do
    local srv = assert(socket.bind("127.0.0.1", 0))
    local _, port = srv:getsockname()
    srv:close()
    port = tonumber(port)
    if not taken[port] then taken[port] = true; return port end
  end
  error("no free port on 127.0.0.1", 0)
end

local G = {}
G.__index = G

function M.group()
  return setmetatable({ list = {} }, G)
end

--- Start `cmd` (a shell command line) in the background with stdout and stderr to `log`;
-- opts.lifetime bounds it (seconds), opts.env is a string of VAR=value assignments.
-- Returns its record {pid=, name=, log=}. pid is timeout's, which passes SIGTERM on and
-- exits with the child's code; a small shell stays behind on a pipe to report that code.
function G:spawn(name, cmd, log, opts)
  -- the shell's own stderr is muted: it would report a killed job ("Killed") on the terminal
  local line = ("exec 2>/dev/null; %s timeout -k %d %d %s >%s 2>&1 </dev/null & echo $!; wait $!; echo \"exit=$?\"")
    :format(opts.env or "", M.KILL_AFTER, math.ceil(opts.lifetime), cmd, M.q(log))
  local p = io.popen(line)
  local pid = tonumber(p:read("l"))
  if not pid then p:close(); error("could not start " .. name, 0) end
  local c = { pid = pid, name = name, log = log, pipe = p }
  self.list[#self.list + 1] = c
  return c
end

--- The exit code of a child that has ended (nil if its reporting shell was interrupted).
function G.finish(_, c)
  if c.pipe then
    local line = c.pipe:read("l")
    c.pipe:close()
    c.pipe = nil
    c.code = line and tonumber(line:match("^exit=(%d+)"))
  end
  c.stopped = true
  return c.code
end

function G.alive(_, c)
  return not c.stopped and M.alive(c.pid)
end

--- SIGTERM every child still running, wait for all of them (bounded), then SIGKILL
-- whatever is left; collect every exit code.
function G:stop_all()
  for _, c in ipairs(self.list) do
    if not c.stopped then os.execute("kill -TERM " .. c.pid .. " 2>/dev/null") end
  end
  local deadline = socket.gettime() + M.STOP_WAIT
  for _, c in ipairs(self.list) do
    while not c.stopped and M.alive(c.pid) and socket.gettime() < deadline do socket.sleep(0.05) end
    if not c.stopped and M.alive(c.pid) then os.execute("kill -KILL " .. c.pid .. " 2>/dev/null") end
    self:finish(c)
  end
end

--- A file of JSON lines that another process appends to, read incrementally:
-- r:poll(fn) calls fn(object) for each complete new line (a line being written is kept
-- for the next poll; a line that is not a JSON object is skipped).
function M.jsonl_reader(path)
  local r = { path = path, pos = 0, partial = "" }
  function r:poll(fn)
    local f = io.open(self.path, "rb")
    if not f then return end
    f:seek("set", self.pos)
    local chunk = f:read("a") or ""
    f:close()
    self.pos = self.pos + #chunk
    local data = self.partial .. chunk
    local consumed = 0
    for line, stop in data:gmatch("([^\n]*)\n()") do
      consumed = stop - 1
      local ok, obj = pcall(cjson.decode, line)
      if ok and type(obj) == "table" then fn(obj) end
    end
    self.partial = data:sub(consumed + 1)
  end
  return r
end

--- The last `n` lines of a file, indented for an error message.
function M.tail(path, n)
  local f = io.open(path, "rb")
  local text = f and f:read("a") or ""
  if f then f:close() end
  local lines = {}
  for line in text:gmatch("[^\n]*") do
    if line ~= "" then lines[#lines + 1] = line end
  end
  return table.concat(lines, "\n    ", math.max(1, #lines - n + 1))
end

return M
