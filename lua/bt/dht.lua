--- bt.dht: the DHT's decisions (BEP 5). The C node (bt.dht_new, csrc/engine/dht.c)
-- answers queries, keeps its routing table and runs lookups; this file decides what it
-- is told: the nodes it bootstraps from (state file, --dht-node, the default list),
-- which torrents it looks up and announces, and how often, and when the state is saved.
--
--   local dht = require "bt.dht"
--   local node = dht.new(cs, { port = 6881, nodes = { "127.0.0.1:7000" }, state = "dht.state" })
--   node:add(info_hash, 6881, function(peers) ... end)   -- {"ip:port", ...}, each lookup
--   node:tick(now); node:stats(); node:close()
local core = require "bt.core"

local M = {}

-- A torrent's lookup (get_peers + announce_peer) is repeated every INTERVAL_WANT s while
-- it downloads and every INTERVAL_SEED s once complete (libtorrent announces every 15
-- min); RETRY s after a lookup could not start (empty table) or nobody answered;
-- RETRY_EMPTY s while a download's lookups find no peer (a swarm just starting), or
-- while no node took the announce (else a seed that announced into a table still
-- filling would stay unknown for 15 minutes).
M.INTERVAL_WANT, M.INTERVAL_SEED, M.RETRY, M.RETRY_EMPTY = 120, 900, 2, 10
-- The state file (id and good nodes) is saved every SAVE_INTERVAL s and at close.
M.SAVE_INTERVAL = 300
M.MAX_STATE = 65536   -- bytes: 2,000 nodes of 26 bytes, and room
M.STATE_VERSION = 1
-- Bootstrap nodes when neither the state file nor the caller gives any. None of them is
-- reachable from the test machines; BT_DHT_BOOTSTRAP (comma-separated host:port, empty
-- for none) replaces the list.
M.DEFAULT_BOOTSTRAP = { "router.bittorrent.com:6881", "router.utorrent.com:6881",
                        "dht.transmissionbt.com:6881" }

function M.bootstrap_list()
  local env = os.getenv("BT_DHT_BOOTSTRAP")
  if env == nil then return M.DEFAULT_BOOTSTRAP end
  local out = {}
  for hp in env:gmatch("[^,%s]+") do out[#out + 1] = hp end
  return out
end

local function hostport(s)
  local host, port = tostring(s):match("^([^:]+):(%d+)$")
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  return host, port
end

--- dht.load_state(path) -> { id = 20 bytes, nodes = { {host, port}, ... } } | nil, message
-- A missing file is nil, "missing"; a bad one is refused as a whole.
function M.load_state(path)
  local f = io.open(path, "rb")
  if not f then return nil, "missing" end
  local bytes = f:read(M.MAX_STATE + 1)
  f:close()
  if not bytes or #bytes > M.MAX_STATE then return nil, "state file too large" end
  local ok, d = pcall(core.bdecode, bytes)
  if not ok or type(d) ~= "table" then return nil, "state file is not bencoded" end
  if d.version ~= M.STATE_VERSION then return nil, "state file of another version" end
  if type(d.id) ~= "string" or #d.id ~= 20 then return nil, "state file without a 20-byte id" end
  if type(d.nodes) ~= "string" or #d.nodes % 26 ~= 0 then return nil, "state file's nodes are not 26-byte entries" end
  local nodes = {}
  for i = 1, #d.nodes, 26 do
    local a, b, c, e, port = string.unpack(">BBBBI2", d.nodes, i + 20)
    if port > 0 then nodes[#nodes + 1] = { host = ("%d.%d.%d.%d"):format(a, b, c, e), port = port } end
  end
  return { id = d.id, nodes = nodes }
end

--- dht.save_state(path, d): the node's id and good nodes, written atomically.
function M.save_state(path, d)
  local parts = {}
  for _, n in ipairs(d:good_nodes()) do
    local a, b, c, e = n.host:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    parts[#parts + 1] = n.id .. string.pack(">BBBBI2", tonumber(a), tonumber(b), tonumber(c), tonumber(e), n.port)
  end
  local dir = path:match("^(.*)/[^/]*$")
  if dir and dir ~= "" and not core.fs.stat(dir) then core.fs.mkdir(dir) end
  return core.fs.write_atomic(path, core.bencode{ version = M.STATE_VERSION, id = d:id(), nodes = table.concat(parts) })
end

local Node = {}
Node.__index = Node

--- dht.new(cs, opts) -> node | nil, message. cs: the bt.Session core (cs.core of
-- bt.session). opts: port (UDP; taken by another socket: any free port), bind, state
-- (path of the state file), nodes ({"host:port", ...}, bootstrapped from with the state
-- file's), bootstrap (the list used when there are no others; default
-- dht.bootstrap_list()), restrict_ips (default true), answer_rate, answer_rate_ip,
-- query_rate (see bt.dht_new in docs/api.md).
function M.new(cs, opts)
  opts = opts or {}
  local state, serr
  if opts.state then state, serr = M.load_state(opts.state) end
  local o = { bind = opts.bind ~= "0.0.0.0" and opts.bind or nil, port = opts.port or 0,
              id = state and state.id, restrict_ips = opts.restrict_ips,
              answer_rate = opts.answer_rate, answer_rate_ip = opts.answer_rate_ip, query_rate = opts.query_rate }
  local d, err = core.dht_new(cs, o)
  if not d and o.port ~= 0 then   -- the port number is taken for UDP: any other will do
    o.port = 0
    d, err = core.dht_new(cs, o)
  end
  if not d then return nil, err end
  local self = setmetatable({ d = d, torrents = {}, state = opts.state, saved = cs:now(), cs = cs,
                              state_error = serr ~= "missing" and serr or nil }, Node)
  local boot = {}
  for _, n in ipairs(state and state.nodes or {}) do boot[#boot + 1] = n end
  for _, hp in ipairs(opts.nodes or {}) do
    local host, port = hostport(hp)
    if not host then d:close() return nil, "bad DHT node '" .. tostring(hp) .. "' (HOST:PORT)" end
    boot[#boot + 1] = { host = host, port = port }
  end
  if #boot == 0 then
    for _, hp in ipairs(opts.bootstrap or M.bootstrap_list()) do
      local host, port = hostport(hp)
      if host then boot[#boot + 1] = { host = host, port = port } end
    end
  end
  for _, n in ipairs(boot) do self:add_node(n.host, n.port) end
  return self
end

--- node:add_node(host, port) -> true | nil, message (a name is resolved here, blocking).
function Node:add_node(host, port)
  if not host:match("^%d+%.%d+%.%d+%.%d+$") then
    local ok, sock = pcall(require, "socket")
    local ip = ok and sock.dns.toip(host)
    if not ip then return nil, "cannot resolve " .. host end
    host = ip
  end
  return self.d:add_node(host, port)
end

--- node:add(info_hash, port, on_peers [, complete_fn]): look up and announce a torrent
-- (port: the TCP port peers dial, 0 for implied_port). on_peers(peers) after each lookup
-- that found some; complete_fn() says whether it is complete (the interval).
function Node:add(info_hash, port, on_peers, complete_fn)
  self.torrents[info_hash] = { ih = info_hash, port = port, on_peers = on_peers, complete = complete_fn,
                               next_at = 0, lookups = 0, found = 0 }
end

function Node:remove(info_hash)
  self.torrents[info_hash] = nil
end

function Node:_lookup(rec, now)
  rec.next_at = math.huge   -- until its callback says when
  local id = self.d:lookup("announce", rec.ih, rec.port, function(res)
    if self.torrents[rec.ih] ~= rec then return end
    rec.lookups, rec.last = rec.lookups + 1, res
    local complete = rec.complete and rec.complete()
    local wait = complete and M.INTERVAL_SEED or M.INTERVAL_WANT
    if res.error then
      wait = M.RETRY
    elseif (#res.peers == 0 and not complete) or res.announced == 0 then
      wait = M.RETRY_EMPTY
    end
    rec.next_at = self.cs:now() + wait
    if #res.peers > 0 then
      rec.found = rec.found + #res.peers
      rec.on_peers(res.peers)
    end
  end)
  if not id then rec.next_at = now + M.RETRY end
end

--- node:tick(now): lookups that are due; the state file when due.
function Node:tick(now)
  if not self.d then return end
  for _, rec in pairs(self.torrents) do
    if now >= rec.next_at then self:_lookup(rec, now) end
  end
  if self.state and now - self.saved >= M.SAVE_INTERVAL then
    self.saved = now
    self:save()
  end
end

function Node:save()
  if not self.state then return true end
  local ok, err = M.save_state(self.state, self.d)
  if not ok then self.state_error = err end
  return ok, err
end

--- node:stats() -> the C node's stats plus port, id (hex) and the torrents' lookups.
function Node:stats()
  if not self.d then return nil end
  local st = self.d:stats()
  st.port, st.id = self.d:port(), (self.d:id():gsub(".", function(c) return ("%02x"):format(c:byte()) end))
  st.torrents, st.state_error = 0, self.state_error
  for _, rec in pairs(self.torrents) do
    st.torrents = st.torrents + 1
    st.torrent_lookups = (st.torrent_lookups or 0) + rec.lookups
    st.peers_found = (st.peers_found or 0) + rec.found
  end
  return st
end

--- node:close(): the state saved, the socket closed. Idempotent.
function Node:close()
  if not self.d then return end
  self:save()
  self.d:close()
  self.d = nil
end

return M
