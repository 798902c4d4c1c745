--- Helpers for the DHT specs that use libtorrent (python3-libtorrent 2.0, Debian's
-- /usr/bin/python3) through spec/peers/lt_dht.py. Every node is started in the
-- background, its PID put in `pids` (S.guard kills it) and bounded by timeout(1).
local H = require "helpers"
local S = require "swarm_helpers"
local socket = require "socket"

local D = {}

D.PY = "/usr/bin/python3"
D.HELPER = H.root .. "/spec/peers/lt_dht.py"

function D.have_lt()
  local _, ok = H.sh(D.PY .. " -c 'import libtorrent'")
  return ok
end

--- A libtorrent DHT node on 127.0.0.1 living at most `secs` (default 50) s, with the extra
-- lt_dht.py arguments; waits (bounded) for its "ready". Returns its port, log path, id (hex).
function D.lt_node(tmp, pids, extra, secs)
  local port = S.port()
  local log = tmp .. "/lt-" .. port .. ".log"
  secs = secs or 50
  pids[#pids + 1] = S.spawn(("timeout -k 1 %d %s %s %d --time %d %s"):format(secs + 10, D.PY, H.q(D.HELPER), port,
    secs, extra or ""), log)
  local deadline = socket.gettime() + 10
  while socket.gettime() < deadline do
    local id = S.read_or_empty(log):match("ready %d+ (%x+)")
    if id then return port, log, id end
    S.sleep(0.1)
  end
  error("libtorrent did not start: " .. S.read_or_empty(log))
end

return D
