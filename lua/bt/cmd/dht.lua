--- bt-lua dht: run a DHT node (BEP 5) for --time seconds, bootstrapping from
-- --dht-node and the state file, then print its routing table's size and health
-- (and, with --lookup HEX, the peers the DHT knows for that info-hash). Exit 0 when
-- the table holds a good node, 4 when no node answered.
local cli = require "bt.cli"
local seedcmd = require "bt.cmd.seed"

local M = {}

function M.setup(cmd)
  cmd:option("--port", "UDP port (0: any free port).", "0")
  cmd:option("--bind", "Address to listen on (default: env BT_BIND, else every address).",
    os.getenv("BT_BIND") or "0.0.0.0")
  seedcmd.dht_options(cmd, true)
  cmd:option("--time", "Seconds to run before printing.", "10")
  cmd:option("--lookup", "Also look up this info-hash (40 hex digits) and print the peers found.")
  cmd:flag("--json", "Print the stats as one JSON object.")
end

function M.run(args)
  local session = require "bt.session"
  local secs = tonumber(args.time)
  if not secs or secs <= 0 then cli.fail("--time must be a number > 0") end
  local port = tonumber(args.port)
  if not port or port < 0 or port > 65535 then cli.fail("--port must be in 0..65535") end
  local ih
  if args.lookup then
    if not args.lookup:match("^%x+$") or #args.lookup ~= 40 then cli.fail("--lookup takes 40 hex digits") end
    ih = args.lookup:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
  end
  local maxip = tonumber(os.getenv("BT_MAX_PER_IP") or "")
  local dopts = seedcmd.dht_opts(args, nil, maxip)
  dopts.port = port
  local ok, s = pcall(session.new, { port = -1, bind = args.bind, dht = dopts, signals = true })
  if not ok then cli.fail((tostring(s):gsub("^[^:\n]+:%d+: ", ""))) end
  if not s.dht then
    s:close()
    cli.fail(s.warning or "DHT off")
  end
  local found, looked
  local t0 = s.core:now()
  s:run(function()
    local now = s.core:now()
    if ih and not looked and now - t0 >= math.min(2, secs / 2) then
      looked = s.dht.d:lookup("get_peers", ih, 0, function(res) found = res end) or nil
    end
    return now - t0 >= secs and (not looked or found ~= nil)
  end)
  local st = s:dht_stats()
  s:close()
  if args.json then
    st.peers = found and found.peers or nil
    io.stdout:write(require("cjson").encode(st), "\n")
  else
    io.stdout:write(("node %s on UDP port %d\n"):format(st.id, st.port))
    io.stdout:write(("table: %d nodes in %d buckets: %d good, %d questionable, %d replacement candidates\n")
      :format(st.nodes, st.buckets, st.good, st.questionable, st.replacements))
    io.stdout:write(("traffic: %d received (%d bad, %d unexpected replies), %d queries answered of %d "
      .. "(%d dropped by the rate limits), %d sent, %d replies, %d timeouts\n"):format(st.received, st.bad,
      st.unexpected, st.answered, st.queries, st.dropped, st.sent, st.replies, st.timeouts))
    io.stdout:write(("store: %d info-hashes, %d peers\n"):format(st.hashes, st.stored_peers))
    if found then
      io.stdout:write(("lookup: %d nodes answered, %d peers%s\n"):format(found.replied, #found.peers,
        found.error and (" (" .. found.error .. ")") or ""))
      for _, p in ipairs(found.peers) do io.stdout:write("  ", p, "\n") end
    end
  end
  if st.good == 0 then return cli.EXIT_NOPEERS end
  return 0
end

return M
