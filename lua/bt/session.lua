--- bt.session: the engine's Lua side. The C core (bt.session_new) runs the loop,
-- the sockets and the per-block work; this file schedules trackers and peer
-- connections, loads policies and turns core events into user callbacks.
--
--   local session = require "bt.session"
--   local s = session{ port = 0, tick_ms = 100, max_peers = 50, max_down = 0, max_up = 0 }
--   local t = s:add("file.torrent", { dir = "out", policy = "examples/sequential.lua",
--                                     peers = { "127.0.0.1:6881" } })
--   local m = s:add("file.torrent", { storage = "memory" })   -- no files at all
--   s:on("complete", function(t) s:stop() end)
--   s:run()
local core = require "bt.core"
local policy = require "bt.policy"
local torrentmod = require "bt.torrent"

local M = {}

-- Peer connection back-off: RETRY_BASE * 2^(failures-1) seconds, at most RETRY_MAX.
M.RETRY_BASE, M.RETRY_MAX = 2, 300
-- Tracker: re-announce at the tracker's interval (clamped), back off on errors.
M.ANNOUNCE_MIN, M.ANNOUNCE_DEFAULT = 10, 1800
M.TRACKER_RETRY_BASE, M.TRACKER_RETRY_MAX = 5, 600
-- Connection attempts started per torrent per tick: spreads a big peer list over time.
M.CONNECTS_PER_TICK = 8
-- Peer addresses remembered per torrent (trackers may hand out thousands over a day).
M.MAX_CANDIDATES = 1000
-- Of those, what one source other than "manual" may hold: a peer feeding us bogus
-- addresses by PEX (100 every 10 s) or a DHT full of them cannot crowd out the
-- tracker's peers, nor the other way round.
M.MAX_PER_SOURCE = 500

M.EVENTS = { piece = true, complete = true, error = true, peer_connect = true,
             peer_disconnect = true, tracker = true, scrape = true, tick = true, metadata = true,
             pex = true }
-- What a magnet's torrent tells its trackers it has left before the size is known: not 0,
-- which would make it a seed (a tracker gives a seed no other seeds).
M.MAGNET_LEFT = 16384

--- bt.session.is_magnet(x): x is a magnet URI (a string starting "magnet:", any case).
function M.is_magnet(x)
  return type(x) == "string" and x:sub(1, 7):lower() == "magnet:"
end

--- bt.session.metadata_path(dir, info_hash_hex): where a magnet download keeps the
-- metadata it fetched, beside its resume data, so that a restart does not fetch it again.
function M.metadata_path(dir, hex)
  return dir .. "/.bt-lua/" .. hex:lower() .. ".torrent"
end

--- bt.session.torrent_bytes(info, trackers) -> the bytes of a .torrent: the raw info
-- dictionary (hashed as it is: never re-encoded) and the trackers (one tier each, in order).
function M.torrent_bytes(info, trackers)
  local out = { "d" }
  local function str(x) return #x .. ":" .. x end
  if trackers and #trackers > 0 then
    out[#out + 1] = "8:announce" .. str(trackers[1])
    out[#out + 1] = "13:announce-listl"
    for _, u in ipairs(trackers) do out[#out + 1] = "l" .. str(u) .. "e" end
    out[#out + 1] = "e"
  end
  out[#out + 1] = "4:info" .. info .. "e"
  return table.concat(out)
end

local Session = {}
Session.__index = Session

--- A torrent given as a path, raw bytes ({bytes=...}), a bt.Metainfo, or an
-- object carrying one in .meta. Returns the bt.Metainfo or nil, message.
function M.metainfo(x)
  if type(x) == "string" then
    return torrentmod.read(x)
  elseif type(x) == "table" then
    if x.bytes then return torrentmod.parse(x.bytes) end
    if x.meta then return x.meta end
  elseif type(x) == "userdata" then
    return x
  end
  return nil, "torrent must be a path, a bt.Metainfo or a table with .meta or .bytes"
end

local function parse_hostport(s)
  local host, port = s:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = s:match("^([^:]+):(%d+)$") end
  port = tonumber(port)
  if not host or not port or port < 1 or port > 65535 then return nil end
  return host, port
end
M.parse_hostport = parse_hostport

--- bt.session(opts): opts as bt.session_new's (docs/api.md), plus dht: true or a table of
-- bt.dht.new's options (nodes, state, port, restrict_ips...) for a DHT node on this loop.
function M.new(opts)
  opts = opts or {}
  local self = setmetatable({ handlers = {}, torrents = {}, by_handle = {} }, Session)
  local cs, err = core.session_new({
    port = opts.port or 0, bind = opts.bind, tick_ms = opts.tick_ms or 100,
    connect_timeout = opts.connect_timeout, idle_timeout = opts.idle_timeout, keepalive = opts.keepalive,
    send_timeout = opts.send_timeout,
    max_peers = opts.max_peers or 50, max_per_ip = opts.max_per_ip or tonumber(os.getenv("BT_MAX_PER_IP") or ""),
    evict_idle = opts.evict_idle, udp_conn_ttl = opts.udp_conn_ttl, policy_time_limit = opts.policy_time_limit,
    policy_memory_limit = opts.policy_memory_limit,
    signals = opts.signals, max_down = opts.max_down, max_up = opts.max_up,
    max_request = opts.max_request, delay = opts.delay, loss = opts.loss, loss_seed = opts.loss_seed,
    peer_id = opts.peer_id,
  }, function(kind, ...) return self:_dispatch(kind, ...) end)
  if not cs then error("bt.session: " .. tostring(err), 2) end
  self.core = cs
  self.port = cs:port()
  local dht_bind = opts.bind
  if opts.dht and dht_bind and dht_bind ~= "" then
    -- the DHT is IPv4 only (BEP 5; BEP 32 is not done): the bind list's first IPv4
    -- address, and none when the list has none (e.g. "::1": IPv6 only was asked for)
    dht_bind = nil
    for x in opts.bind:gmatch("[^,%s]+") do
      if x:match("^%d+%.%d+%.%d+%.%d+$") then dht_bind = x break end
    end
    if not dht_bind then self.dht_warning = "DHT off: it is IPv4 only, and bind " .. opts.bind .. " has none" end
  end
  if opts.dht and not self.dht_warning then   -- the DHT node (bt.dht): on the listener's port number by default
    local dopts = type(opts.dht) == "table" and opts.dht or {}
    if dopts.port == nil then dopts.port = self.port end
    if dopts.bind == nil then dopts.bind = dht_bind end
    local node, derr = require("bt.dht").new(cs, dopts)
    -- a DHT that cannot start (no socket) is no reason to stop: said once
    if not node then self.dht_warning = "DHT off: " .. tostring(derr):gsub("^DHT: ", "") end
    self.dht = node
  end
  -- every peer is a descriptor: the core raised the soft open-file limit to the hard
  -- one and clamps max_peers to what it allows; say so instead of failing later
  local want, fd = opts.max_peers or 50, cs:fd_budget()
  self.max_peers = math.min(want, fd.fd_peers)
  if want > fd.fd_peers then
    self.warning = ("max_peers %d lowered to %d: the open-file limit is %d (ulimit -n)")
      :format(want, fd.fd_peers, fd.fd_limit)
  end
  if self.dht_warning then self.warning = (self.warning and (self.warning .. "; ") or "") .. self.dht_warning end
  return self
end

--- s:on(event, fn): events piece(t, i, ok), complete(t), error(t, msg),
-- peer_connect(t, peer), peer_disconnect(t, address, reason), pex(t, from_address,
-- {"ip:port", ...}) (peers a peer told us of by BEP 11; each becomes a candidate
-- with source "pex"), tracker(t, info) (info:
-- url, tier, ok, event, peers, interval, min_interval, complete, incomplete, warning,
-- error, retry_in), scrape(t, info) (see s:scrape), tick(now).
function Session:on(event, fn)
  if not M.EVENTS[event] then error("bt.session: unknown event '" .. tostring(event) .. "'", 2) end
  local list = self.handlers[event] or {}
  list[#list + 1] = fn
  self.handlers[event] = list
  return self
end

function Session:_emit(event, ...)
  local list = self.handlers[event]
  if list then for _, fn in ipairs(list) do fn(...) end end
end

--- s:add(torrent, opts) -> bt.Torrent handle. opts: dir, policy (table, path or module
-- name), peers ({"host:port", ...}), max_peers, trackers (false: do not announce),
-- seed (true: keep dialing peers after completion, to upload to them), max_down and
-- max_up (this torrent's limits in bytes/s, 0: none; see s:set_limits),
-- resume (false: no resume data; default: <dir>/.bt-lua/<info-hash>.resume is read
-- at add, pieces it vouches for are not hashed, and it is saved every few seconds
-- while pieces arrive, on completion, on a policy error and at close),
-- storage ("disk", the default: files under dir; "memory": the data is held in
-- memory and nothing touches the file system: dir is not needed, and resume data
-- is neither read nor written), load (memory only: a folder whose files are read,
-- never written, and whose verified pieces are copied into memory, e.g. to seed
-- from memory). t.storage says which storage a torrent has. dht (false: this torrent
-- is not looked up in the session's DHT; private torrents never are).
function Session:add(torrent, opts)
  opts = opts or {}
  if M.is_magnet(torrent) then return self:_add_magnet(torrent, opts, 3) end
  local m, err = M.metainfo(torrent)
  if not m then error(err, 2) end
  local kind = opts.storage or "disk"
  if kind ~= "disk" and kind ~= "memory" then
    error("bt.session: storage must be \"disk\" or \"memory\", not " .. tostring(kind), 2)
  end
  if opts.load ~= nil and (kind ~= "memory" or type(opts.load) ~= "string") then
    error("bt.session: load (a folder) is only for storage = \"memory\"", 2)
  end
  local pol = policy.load(opts.policy)
  local memory = kind == "memory"
  local dir = not memory and (opts.dir or ".") or nil
  -- resume data (bt.resume): pieces it vouches for are not hashed again
  local resume, rpath, trust, rreason
  if opts.resume ~= false and not memory then
    local okr, mod = pcall(require, "bt.resume")
    if okr then
      resume, rpath = mod, mod.path(dir, m.info_hash_hex)
      pcall(mod.cleanup, rpath)
      local okl, r = pcall(mod.load, rpath, m, dir)
      if okl and r then trust, rreason = r.have, r.reason else rreason = tostring(r) end
    end
  end
  local t, aerr
  if opts._magnet_rec then
    t = opts._magnet_rec.t
    local okm, merr = t:set_meta(m, dir, opts.max_peers or self.max_peers, trust, kind, opts.load)
    if not okm then error("bt.session: " .. tostring(merr), 2) end
  else
    t, aerr = self.core:add(m, dir, pol, opts.max_peers or self.max_peers, trust, kind, opts.load)
    if not t then error("bt.session: " .. tostring(aerr), 2) end
  end
  if opts.max_down or opts.max_up then t:set_limits{ down = opts.max_down, up = opts.max_up } end
  -- complete_at_add: the data was all there; "completed" is announced only for a
  -- download that completes in this run (BEP 3). seed: keep dialing peers once complete.
  local rec = opts._magnet_rec or { t = t, candidates = {}, order = {}, by_source = {}, trackers = {} }
  rec.meta, rec.info_hash, rec.max_peers, rec.started = m, m.info_hash, opts.max_peers, self.core:now()
  rec.resume_reason, rec.trusted = rreason, trust and trust:count() or 0
  rec.complete_at_add, rec.seed = t.complete, opts.seed and true or false
  if resume then
    rec.saver = resume.saver{ path = rpath, torrent = m, dir = dir, sync = function() return t:sync() end }
  end
  if not opts._magnet_rec then
    self.torrents[#self.torrents + 1] = rec
    self.by_handle[t] = rec
  end
  for _, p in ipairs(opts.peers or {}) do self:add_peer(t, p) end
  if opts.trackers ~= false and not rec.ann then self:_setup_trackers(rec, M.tracker_tiers(m)) end
  if self.dht and m.private then
    self.dht:remove(m.info_hash)   -- BEP 27: a magnet's metadata said private: no more lookups
  elseif self.dht and opts.dht ~= false then
    self:_dht_add(t, m.info_hash)
  end
  self:_connect_some(rec, self.core:now())   -- dial and announce now, not a tick later
  self:_tracker_tick(rec, self.core:now())
  return t
end

-- A magnet link (BEP 9): parsed (a malformed one raises before the network is touched),
-- then, when an earlier run fetched the metadata (M.metadata_path), added as that
-- torrent; else a torrent that fetches its metadata from its peers (x.pe, opts.peers, the
-- trackers of tr) and becomes an ordinary torrent when it arrives (Session:_on_metadata).
function Session:_add_magnet(uri, opts, level)
  local mg, merr = core.magnet_parse(uri)
  if not mg then error("bt.session: bad magnet link: " .. merr, level) end
  local peers = {}
  for _, p in ipairs(mg.peers) do peers[#peers + 1] = p end
  for _, p in ipairs(opts.peers or {}) do peers[#peers + 1] = p end
  local kind = opts.storage or "disk"
  local memory = kind == "memory"
  local dir = not memory and (opts.dir or ".") or nil
  local tiers = {}
  for _, u in ipairs(mg.trackers) do tiers[#tiers + 1] = u end
  tiers = #tiers > 0 and { tiers } or {}
  local saved = not memory and opts.resume ~= false and not opts.fetch_only
    and torrentmod.read(M.metadata_path(dir, mg.info_hash_hex))
  if saved and saved.info_hash == mg.info_hash then
    local o = setmetatable({ peers = peers }, { __index = opts })
    local t = self:add(saved, o)
    local rec = self.by_handle[t]
    rec.magnet, rec.metadata_saved = mg, true
    if opts.trackers ~= false and #tiers > 0 and #rec.trackers == 0 then
      self:_setup_trackers(rec, tiers)
      self:_tracker_tick(rec, self.core:now())
    end
    return t
  end
  local pol = policy.load(opts.policy)
  local t, aerr = self.core:add(mg.info_hash, dir, pol, opts.max_peers or self.max_peers, nil, kind, nil)
  if not t then error("bt.session: " .. tostring(aerr), level) end
  local rec = { t = t, magnet = mg, info_hash = mg.info_hash, opts = opts, max_peers = opts.max_peers,
                candidates = {}, order = {}, by_source = {}, trackers = {}, started = self.core:now(), trusted = 0,
                seed = opts.seed and true or false }
  self.torrents[#self.torrents + 1] = rec
  self.by_handle[t] = rec
  for _, p in ipairs(peers) do self:add_peer(t, p) end
  if opts.trackers ~= false then self:_setup_trackers(rec, tiers) end
  -- whether it is private is known with the metadata (BEP 27: add() stops the lookups then)
  if self.dht and opts.dht ~= false then self:_dht_add(t, mg.info_hash) end
  self:_connect_some(rec, self.core:now())
  self:_tracker_tick(rec, self.core:now())
  return t
end

-- Look t up in the DHT and announce it there (BEP 5); peers found are dialed as "dht".
function Session:_dht_add(t, info_hash)
  self.dht:add(info_hash, self.port, function(peers)
    for _, p in ipairs(peers) do pcall(self.add_peer, self, t, p, "dht") end
  end, function() return t.complete end)
end

-- The metadata of a magnet's torrent arrived and matched its info-hash: the same checks
-- as a .torrent file (bt.torrent.parse: paths, sizes), then resume data, storage and the
-- policy as for any torrent; the metadata is kept beside the resume data. A refusal
-- stops the torrent with the reason (an "error" event).
function Session:_on_metadata(rec)
  local t = rec.t
  local bytes = M.torrent_bytes(assert(t:metadata()), rec.magnet.trackers)
  local m, err = torrentmod.parse(bytes)
  if m and m.info_hash ~= rec.info_hash then m, err = nil, "the metadata names another info-hash" end
  if not m then
    t:stop("metadata refused: " .. err)
    return
  end
  local opts = rec.opts
  if opts.fetch_only then
    rec.meta = m
    self:_emit("metadata", t, bytes, m)
    t:stop()
    return
  end
  -- its connections are closed by set_meta; peers that dialed us are dialed back at the
  -- port their BEP 10 handshake named (they would come back only at their own pace)
  local back = {}
  for _, peer in ipairs(t:peers()) do
    local host = peer.incoming and peer.listen_port and peer.address:match("^(.*):%d+$")
    if host then back[#back + 1] = host .. ":" .. peer.listen_port end
  end
  local o = setmetatable({ _magnet_rec = rec, peers = back }, { __index = opts })
  local ok, aerr = pcall(self.add, self, m, o)
  if not ok then
    t:stop("metadata refused: " .. tostring(aerr):gsub("^bt%.session: ", ""))
    return
  end
  rec.opts = nil
  if (opts.storage or "disk") == "disk" and opts.resume ~= false then
    local path = M.metadata_path(opts.dir or ".", m.info_hash_hex)
    local parent = path:match("^(.*)/[^/]+$")
    if not core.fs.stat(parent) then core.fs.mkdir(parent) end
    local wok, werr = core.fs.write_atomic(path, bytes)
    if wok then rec.metadata_saved = true else rec.resume_error = werr end
  end
  -- the peers were closed to be dialed again with the torrent's geometry: at once
  for _, c in ipairs(rec.order) do c.fails, c.next_try = 0, 0 end
  self:_emit("metadata", t, bytes, m)
end

--- s:start_trackers(t): announce to t's trackers (for a torrent added with
-- trackers = false, e.g. until its data is known to be complete). Idempotent.
function Session:start_trackers(t)
  local rec = self.by_handle[t]
  if not rec then error("bt.session: unknown torrent", 2) end
  if rec.ann then return end
  self:_setup_trackers(rec, rec.meta and M.tracker_tiers(rec.meta) or {})
  self:_tracker_tick(rec, self.core:now())
end

-- Where a candidate's address came from (peer.source); "incoming" is the listener's.
M.SOURCES = { manual = true, tracker = true, dht = true, pex = true }

--- s:add_peer(t, "host:port" [, source]): a candidate to dial (with back-off on
-- failure). source: where the address came from, "manual" (default), "tracker",
-- "dht" or "pex"; the connected peer shows it as peer.source. An address already a
-- candidate keeps its first source.
function Session:add_peer(t, hostport, source)
  local rec = self.by_handle[t]
  if not rec then error("bt.session: unknown torrent", 2) end
  source = source or "manual"
  if not M.SOURCES[source] then
    error("bt.session: peer source must be manual, tracker, dht or pex, not " .. tostring(source), 2)
  end
  local host, port = parse_hostport(hostport)
  if not host then error("bt.session: bad peer address '" .. tostring(hostport) .. "'", 0) end
  if not host:match("^[%d.]+$") and not host:find(":", 1, true) then
    -- a name (given by a user, never by a tracker): resolved once, here, blocking
    local ok, sock = pcall(require, "socket")
    local ip = ok and sock.dns.toip(host)
    if not ip then error("bt.session: cannot resolve peer host '" .. host .. "'", 0) end
    host = ip
  end
  local key = (host:find(":", 1, true) and ("[" .. host .. "]") or host) .. ":" .. port
  if rec.candidates[key] then return end
  if #rec.order >= M.MAX_CANDIDATES then return end
  local held = rec.by_source[source] or 0
  if source ~= "manual" and held >= M.MAX_PER_SOURCE then return end
  rec.by_source[source] = held + 1
  local c = { host = host, port = port, key = key, source = source, fails = 0, next_try = 0, connected = false }
  rec.candidates[key] = c
  rec.order[#rec.order + 1] = c
end

function Session:_connect_some(rec, now)
  local t = rec.t
  if t.stopped or (t.complete and not rec.seed) then return end
  -- full: one dial per tick, for which the core closes a peer that is of no use (or
  -- refuses, when every peer is young or exchanging data)
  local started, most = 0, t.npeers >= self.max_peers and 1 or M.CONNECTS_PER_TICK
  for _, c in ipairs(rec.order) do
    if started >= most then break end
    if not c.connected and not c.dialing and now >= c.next_try and not t:banned(c.key) then
      local ok, err = t:connect(c.host, c.port, c.source)
      if not ok and err == "too many peers" then break end   -- not the candidate's fault
      c.next_try = now + 1
      if ok then
        c.dialing = true
        started = started + 1
      else
        c.fails = c.fails + 1
        c.next_try = now + math.min(M.RETRY_MAX, M.RETRY_BASE * 2 ^ (c.fails - 1))
      end
    end
  end
end

function Session:_dispatch(kind, ...)
  if kind == "tick" then
    local now = ...
    for _, rec in ipairs(self.torrents) do
      self:_connect_some(rec, now)
      self:_tracker_tick(rec, now)
      if rec.saver and now - (rec.resume_checked or 0) >= M.RESUME_CHECK then
        rec.resume_checked = now
        self:_save_resume(rec, false, now)
      end
    end
    if self.dht then self.dht:tick(now) end
    self:_emit("tick", now)
    if self.until_fn and self.until_fn(self) then self.core:stop() end
  elseif kind == "peer_connect" then
    local t, peer = ...
    local rec = self.by_handle[t]
    local c = rec and rec.candidates[peer.address]
    if c then c.connected, c.dialing, c.fails = true, false, 0 end
    self:_emit("peer_connect", t, peer)
  elseif kind == "peer_disconnect" then
    local t, address, reason = ...
    local rec = self.by_handle[t]
    local c = rec and address and rec.candidates[address]
    if c then
      local now = self.core:now()
      c.fails = c.fails + 1
      c.connected, c.dialing = false, false
      c.next_try = now + math.min(M.RETRY_MAX, M.RETRY_BASE * 2 ^ (c.fails - 1))
      if reason == "connected to ourselves" then c.next_try = math.huge end   -- never again
      if reason == "metadata received: reconnecting" then c.fails, c.next_try = 0, now end
    end
    self:_emit("peer_disconnect", t, address, reason)
  elseif kind == "complete" then
    local t = ...
    local rec = self.by_handle[t]
    if rec then
      self:_save_resume(rec, true)
      if not rec.complete_at_add then self:_tracker_event(rec, "completed") end
    end
    self:_emit("complete", t)
  elseif kind == "error" then
    local t = ...
    local rec = self.by_handle[t]
    if rec then self:_save_resume(rec, true) end   -- a stopped torrent keeps its progress
    self:_emit("error", ...)
  elseif kind == "piece" then
    self:_emit("piece", ...)
  elseif kind == "metadata" then
    local rec = self.by_handle[(...)]
    if rec and rec.magnet and not rec.meta then self:_on_metadata(rec) end
  elseif kind == "pex" then
    -- BEP 11: dialed like tracker peers, within the peer limit (_connect_some)
    local t, from, added = ...
    for _, addr in ipairs(added) do pcall(self.add_peer, self, t, addr, "pex") end
    self:_emit("pex", t, from, added)
  end
end

-- How often the tick asks the resume saver (it saves at most every bt.resume.SAVE_INTERVAL).
M.RESUME_CHECK = 1

--- Save resume data: now (flush) or when due. Failures are kept in rec.resume_error:
-- resume data is an optimization, never a reason to stop a download.
-- A method like the other Session:_ helpers, though it needs nothing from self.
function Session:_save_resume(rec, flush, now)   -- luacheck: ignore 212/self
  if not rec.saver then return end
  local st = rec.t:stats()
  local extra = { uploaded = st.uploaded, downloaded = st.downloaded }
  local ok, r, err
  if flush then
    ok, r, err = pcall(rec.saver.flush, rec.saver, rec.t.have, extra)
  else
    ok, r, err = pcall(rec.saver.tick, rec.saver, now, rec.t.have, extra)
  end
  if not ok then rec.resume_error = tostring(r) elseif r == nil then rec.resume_error = err end
end

--- s:resume_info(t) -> { trusted = pieces taken from resume data at add, reason = why
-- not all could be trusted (nil when all was fine), error = last save failure }
function Session:resume_info(t)
  local rec = self.by_handle[t]
  if not rec then return nil end
  return { trusted = rec.trusted, reason = rec.resume_reason, error = rec.resume_error,
           saves = rec.saver and rec.saver.saves or 0 }
end

--- s:run([until_fn]): runs the loop until s:stop() or until_fn(s) returns true
-- (checked every tick). Raises an error thrown by an event handler.
function Session:run(until_fn)
  self.until_fn = until_fn
  self.running = true
  local ok, err = pcall(self.core.run, self.core)
  self.running = false
  if not ok then error(err, 0) end
  return true
end

function Session:stop()
  self.core:stop()
end

--- s:set_limits{ down = bytes/s, up = bytes/s } (0: unlimited; a missing field is kept).
-- A torrent has its own: t:set_limits{...}; both apply. s:limits() / t:limits() read them.
function Session:set_limits(l)
  self.core:set_limits(l)
end

function Session:limits()
  return self.core:limits()
end

--- s:signal() -> "SIGINT" | "SIGTERM" | nil: the signal that made run() return
-- (only with bt.session{ signals = true }, which one session per process may ask).
function Session:signal()
  return self.core:signal()
end

--- s:close(): announces "stopped" (best effort, not waited for), drops everything.
M.STOPPED_WAIT = 2   -- seconds close() waits for "stopped" announces to go out

function Session:close()
  if self.closed then return end
  self.closed = true
  local any = false
  for _, rec in ipairs(self.torrents) do
    if not rec.t.complete then self:_save_resume(rec, true) end   -- complete: saved then
    self:_tracker_event(rec, "stopped")
    for _, tr in ipairs(rec.trackers) do any = any or tr.pending end
  end
  if any and not self.running then
    local t0 = self.core:now()
    self.until_fn = function()
      if self.core:now() - t0 > M.STOPPED_WAIT then return true end
      for _, rec in ipairs(self.torrents) do
        for _, tr in ipairs(rec.trackers) do if tr.pending then return false end end
      end
      return true
    end
    pcall(self.core.run, self.core)
  end
  if self.dht then self.dht:close() end
  self.core:close()
end

--- s:dht_stats() -> the DHT node's stats (docs/api.md "DHT"), nil without a node.
function Session:dht_stats()
  return self.dht and self.dht:stats()
end

function Session:torrents_list()
  local out = {}
  for i, rec in ipairs(self.torrents) do out[i] = rec.t end
  return out
end

-- Trackers (BEP 12). The torrent's announce-list is kept in tiers, each shuffled
-- once at add. One announce is in flight per torrent at a time: it goes to the first
-- tracker of the first tier; a failure moves on to the next tracker of the tier at
-- once, then to the next tier; a tracker that answers is moved to the front of its
-- tier, and the next announce starts from the first tier again. When every tracker
-- failed, the walk starts over after a back-off (TRACKER_RETRY_BASE * 2^(rounds-1)
-- s, at most TRACKER_RETRY_MAX). Failures never stop the session.
-- Each tracker keeps its own events: "started" until it acknowledged one,
-- "completed" once (only to a tracker that saw our "started"), "stopped" at close to
-- every tracker that has us as started.
M.NUMWANT_MIN, M.NUMWANT_MAX = 50, 200   -- opentracker gives at most 200 peers

local function tracker_url_ok(u)
  return type(u) == "string" and (u:match("^[hH][tT][tT][pP][sS]?://") or u:match("^[uU][dD][pP]://")) ~= nil
end

--- bt.session.tracker_tiers(m) -> { {url, ...}, ... }: the tiers of a torrent's
-- announce-list (or its lone announce as one tier), http(s) and udp URLs only, each
-- URL once, empty tiers dropped; not shuffled.
local function tracker_tiers(m)
  local tiers, seen = {}, {}
  local function add(tier, u)
    if tracker_url_ok(u) and not seen[u] then
      seen[u] = true
      tier[#tier + 1] = u
    end
  end
  local ok, list = pcall(m.value, m, "announce-list")
  if ok and type(list) == "table" then
    for _, tl in ipairs(list) do
      if type(tl) == "table" then
        local tier = {}
        for _, u in ipairs(tl) do add(tier, u) end
        if #tier > 0 then tiers[#tiers + 1] = tier end
      end
    end
  end
  if #tiers == 0 then   -- BEP 12: announce is used only when there is no announce-list
    local ok2, one = pcall(m.value, m, "announce")
    local tier = {}
    if ok2 then add(tier, one) end
    if #tier > 0 then tiers[1] = tier end
  end
  return tiers
end
M.tracker_tiers = tracker_tiers

--- bt.session.tracker_urls(m) -> { url, ... }: every tracker URL, tier by tier.
function M.tracker_urls(m)
  local urls = {}
  for _, tier in ipairs(tracker_tiers(m)) do
    for _, u in ipairs(tier) do urls[#urls + 1] = u end
  end
  return urls
end

local function shuffle(list)
  for i = #list, 2, -1 do
    local j = math.random(i)
    list[i], list[j] = list[j], list[i]
  end
  return list
end

-- rec.tiers: { {tr, ...}, ... } in announce order; rec.trackers: every tr, flat (for
-- close and s:trackers); rec.ann: the walk (tier, pos, next_at, pending, rounds).
function Session:_setup_trackers(rec, tiers)   -- luacheck: ignore 212/self
  rec.tiers, rec.trackers = {}, {}
  for ti, urls in ipairs(tiers) do
    local tier = {}
    for _, url in ipairs(shuffle(urls)) do
      local tr = { url = url, tier = ti, fails = 0, event = "started", pending = false }
      tier[#tier + 1] = tr
      rec.trackers[#rec.trackers + 1] = tr
    end
    rec.tiers[ti] = tier
  end
  rec.ann = { tier = 1, pos = 1, next_at = 0, pending = false, rounds = 0 }
end

function Session:_numwant(rec)
  return math.max(M.NUMWANT_MIN, math.min(M.NUMWANT_MAX, rec.max_peers or self.max_peers))
end

-- Move the walk past the tracker that just failed: the next one of its tier, the
-- next tier, or (all failed) the first again after a back-off. Returns the wait.
local function advance(rec, now)
  local ann = rec.ann
  ann.pos = ann.pos + 1
  if ann.pos > #rec.tiers[ann.tier] then ann.tier, ann.pos = ann.tier + 1, 1 end
  if ann.tier > #rec.tiers then
    ann.tier, ann.pos, ann.rounds = 1, 1, ann.rounds + 1
    ann.next_at = now + math.min(M.TRACKER_RETRY_MAX, M.TRACKER_RETRY_BASE * 2 ^ (ann.rounds - 1))
  else
    ann.next_at = now   -- the next tracker at once (the next tick)
  end
  return ann.next_at - now
end

-- One announce to tr. walk: it is the walk's announce (a "stopped" is not).
function Session:_announce(rec, tr, event, now, walk)
  local t = rec.t
  local st = t:stats()
  local ann = rec.ann
  tr.pending = true
  tr.last_event = event
  if walk then ann.pending = true end
  local function failed(err, at)
    tr.fails, tr.ok, tr.error = tr.fails + 1, false, err
    local retry_in = walk and advance(rec, at) or nil
    self:_emit("tracker", t, { url = tr.url, tier = tr.tier, ok = false, error = err, event = event,
      retry_in = retry_in })
  end
  local id, err = self.core:announce({
    url = tr.url, info_hash = rec.info_hash, port = self.port,
    uploaded = st.uploaded, downloaded = st.downloaded,
    left = t.fetching and M.MAGNET_LEFT or st.total_bytes - st.have_bytes, event = event,
    numwant = event == "stopped" and 0 or self:_numwant(rec),
    tracker_id = tr.tracker_id,
  }, function(res, aerr)
    tr.pending = false
    if walk then ann.pending = false end
    local at = self.core:now()
    if not res or res.failure_reason then return failed(aerr or res.failure_reason, at) end
    tr.fails, tr.error, tr.ok, tr.peers = 0, nil, true, #(res.peers or {})
    if event == "started" or event == "completed" then tr.started = true end
    if event == "stopped" then tr.started = false end
    if tr.event == event then tr.event = nil end   -- "started"/"completed" are sent once
    if res.tracker_id then tr.tracker_id = res.tracker_id end
    local interval = res.interval or M.ANNOUNCE_DEFAULT
    if res.min_interval and res.min_interval > interval then interval = res.min_interval end
    if interval < M.ANNOUNCE_MIN then interval = M.ANNOUNCE_MIN end
    tr.interval, tr.min_interval = interval, res.min_interval
    if walk then
      -- BEP 12: the tracker that answered goes to the front of its tier, and the next
      -- announce starts from the first tier
      local tier = rec.tiers[tr.tier]
      for i, x in ipairs(tier) do
        if x == tr then table.remove(tier, i) break end
      end
      table.insert(tier, 1, tr)
      ann.tier, ann.pos, ann.rounds, ann.last = 1, 1, 0, tr
      ann.next_at = ann.urgent and at or at + interval
      ann.urgent = nil
    end
    for _, addr in ipairs(res.peers or {}) do pcall(self.add_peer, self, t, addr, "tracker") end
    self:_emit("tracker", t, { url = tr.url, tier = tr.tier, ok = true, event = event,
      peers = #(res.peers or {}), interval = interval, min_interval = res.min_interval,
      complete = res.complete, incomplete = res.incomplete, warning = res.warning_message })
  end)
  if not id then
    tr.pending = false
    if walk then ann.pending = false end
    failed(err, now)
  end
end

--- s:trackers(t) -> { {url, tier, ok, error, fails, peers, next_in, answered, interval,
-- min_interval}, ... }: each tracker of t tier by tier, in the order they are tried: ok
-- nil before its first reply, error its last failure (nil once it answered), fails in a
-- row, peers in its last good reply, next_in s to its next announce (only for the
-- tracker the next announce goes to, nil for the others and while an announce is in
-- flight), answered true for the tracker that answered the latest announce.
function Session:trackers(t)
  local rec = self.by_handle[t] or error("bt.session: not a torrent of this session", 2)
  local now, out = self.core:now(), {}
  local ann = rec.ann
  for ti, tier in ipairs(rec.tiers or {}) do
    for pos, tr in ipairs(tier) do
      local next_in
      if ann and ti == ann.tier and pos == ann.pos and not ann.pending then
        next_in = math.max(0, ann.next_at - now)
      end
      out[#out + 1] = { url = tr.url, tier = ti, ok = tr.ok, error = tr.error, fails = tr.fails,
        peers = tr.peers, next_in = next_in, interval = tr.interval, min_interval = tr.min_interval,
        answered = ann and ann.last == tr or nil }
    end
  end
  return out
end

function Session:_tracker_tick(rec, now)
  local ann = rec.ann
  if rec.t.stopped or not ann or ann.pending or now < ann.next_at then return end
  local tier = rec.tiers[ann.tier]
  local tr = tier and tier[ann.pos]
  if not tr then return end
  if tr.pending then return end   -- its "stopped" or an earlier announce is still out
  self:_announce(rec, tr, tr.event, now, true)
end

function Session:_tracker_event(rec, event)
  if event == "completed" then
    -- "completed" goes to the trackers that have us as started (BEP 3); a tracker that
    -- never acknowledged "started" gets its "started" with left = 0, which says as much
    for _, tr in ipairs(rec.trackers) do
      if tr.started then tr.event = "completed" end
    end
    local ann = rec.ann
    if ann then
      if ann.pending then ann.urgent = true else ann.tier, ann.pos, ann.next_at = 1, 1, 0 end
    end
  elseif event == "stopped" then
    for _, tr in ipairs(rec.trackers) do
      if tr.started and not tr.pending then
        pcall(self._announce, self, rec, tr, "stopped", self.core:now(), false)
      end
    end
  end
end

--- s:scrape(t [, fn]): ask every tracker of t for the swarm's counts (BEP 48 for
-- HTTP by the /announce -> /scrape rule, BEP 15 for UDP). Each answer comes as a
-- "scrape" event (t, info) and to fn(info): info = {url, tier, ok, complete
-- (seeders), incomplete (leechers), downloaded (completed), error}. Returns the
-- number of scrapes started (a tracker without a scrape URL reports an error).
function Session:scrape(t, fn)
  local rec = self.by_handle[t] or error("bt.session: not a torrent of this session", 2)
  local trackers = rec.trackers
  if #trackers == 0 then
    trackers = {}
    for ti, tier in ipairs(rec.meta and tracker_tiers(rec.meta) or {}) do
      for _, url in ipairs(tier) do trackers[#trackers + 1] = { url = url, tier = ti } end
    end
  end
  local started = 0
  for _, tr in ipairs(trackers) do
    local function report(info)
      info.url, info.tier = tr.url, tr.tier
      self:_emit("scrape", t, info)
      if fn then fn(info) end
    end
    local id, err = self.core:scrape({ url = tr.url, info_hash = rec.info_hash }, function(res, serr)
      if not res or res.failure_reason then
        report({ ok = false, error = serr or res.failure_reason })
      else
        report({ ok = true, complete = res.complete, incomplete = res.incomplete, downloaded = res.downloaded })
      end
    end)
    if id then started = started + 1 else report({ ok = false, error = err }) end
  end
  return started
end

M.Session = Session
return setmetatable(M, { __call = function(_, opts) return M.new(opts) end })
