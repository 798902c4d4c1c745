--- bt.policy.fake: a torrent and peers without sockets, to unit-test a policy.
--
-- Same fields, methods, results and errors as the engine's bt.Torrent / bt.Peer
-- (docs/policy.md), written naively in Lua: it is also the model the engine is
-- checked against (spec/fake_engine_spec.lua feeds one scenario to both and
-- compares their decisions). Ties between pieces of equal availability go in index
-- order from t.tie_start, as in the engine, where it differs per torrent; here it is
-- fake.torrent{ tie_start = } (default 0).
--
--   local fake = require "bt.policy.fake"
--   local t = fake.torrent{ pieces = 100, piece_length = 262144 }
--   local a = fake.peer(t, { have = "all", slots = 32 })
--   local b = fake.peer(t, { have = { 1, 2, 3 } })
--   policy.pick(t, a, a.slots)
--   -- a.sent: the requests made, in order: { {piece=, block=}, ... }
--   t:receive(a, 0)          -- every block of piece 0 arrived from a and it verified
--   t:advance(2)             -- two seconds pass (request ages, idle times)
local bt = require "bt"

local BLOCK = 16384
local MAX_QUEUE = 2000   -- the engine's cap on a peer's reqq
local F = {}

local T, P = {}, {}

local function blocks_of(t, i)
  local size = (i == t.pieces - 1) and (t.total_length - t.piece_length * (t.pieces - 1)) or t.piece_length
  return (size + BLOCK - 1) // BLOCK, size
end

-- n counts the arguments of the method's C form (self is #1); as in the engine,
-- whose methods are called with ':', the message numbers them without self.
local function argerror(n, fname, msg)
  error(("bad argument #%d to '%s' (%s)"):format(n - 1, fname, msg), 3)
end

local function check_piece(t, i, n, fname)
  if math.type(i) ~= "integer" or i < 0 or i >= t.pieces then
    argerror(n, fname, ("piece %s out of range (the torrent has %d pieces, 0-based)"):format(tostring(i), t.pieces))
  end
end

--- A read-only view of a set, like the engine's bt.RangesView: reads follow the
-- set as it changes; the methods that would change it raise.
local VIEW_READS = { "has", "count", "size", "full", "empty", "next_set", "next_clear", "next_diff",
                     "next_common", "union", "intersect", "diff", "copy", "to_wire", "ranges" }
local function view(set)
  local v = {}
  for _, m in ipairs(VIEW_READS) do
    v[m] = function(_, ...)
      local args = { ... }
      for k, a in ipairs(args) do if type(a) == "table" and a._set then args[k] = a._set end end
      return set[m](set, table.unpack(args))
    end
  end
  for _, m in ipairs({ "set", "clear", "set_range", "clear_range", "set_all", "clear_all" }) do
    v[m] = function()
      error("bt.RangesView: read-only view of the engine's set: use :copy() for a set you may change", 2)
    end
  end
  v._set = set
  return setmetatable(v, { __len = function() return set:count() end,
                           __tostring = function() return (tostring(set):gsub("^bt%.Ranges", "bt.RangesView")) end })
end

--- fake.torrent{ pieces =, piece_length = (default 256 KiB), total_length =,
--   have = {indices} | "all", endgame =, tie_start = (default 0), now = }
function F.torrent(o)
  local n = assert(o.pieces, "pieces")
  local t = setmetatable({
    pieces = n, piece_length = o.piece_length or 262144, state = {}, endgame = o.endgame or false,
    info_hash = o.info_hash or string.rep("0", 40), name = o.name or "fake", storage = "memory",
    stopped = false, error = nil, now = o.now or 0, tie_start = (o.tie_start or 0) % n,
    _have = bt.bitfield(n), _partial = {}, _seq = 0, _peers = {}, _limits = { down = 0, up = 0 },
    downloaded = 0, uploaded = 0, dup_bytes = 0, cancels = 0, connects = {}, connect_sources = {},
  }, T)
  t.total_length = o.total_length or t.pieces * t.piece_length
  if o.have == "all" then t._have:set_range(0, n) else
    for _, i in ipairs(o.have or {}) do t._have:set(i) end
  end
  t._view = view(t._have)
  return t
end

local function open_partials(t)
  local c = 0
  for _, pp in pairs(t._partial) do if pp.nfree > 0 then c = c + 1 end end
  return c
end

local function fresh(t, i) return not t._have:has(i) and t._partial[i] == nil end

T.__index = function(t, k)
  if k == "have" then return t._view end
  if k == "missing" then return t.pieces - t._have:count() end
  if k == "complete" then return t._have:full() end
  if k == "partials" then
    local c = 0
    for _ in pairs(t._partial) do c = c + 1 end
    return c
  end
  if k == "npeers" then
    local c = 0
    for _, p in ipairs(t._peers) do if rawget(p, "_alive") then c = c + 1 end end
    return c
  end
  if k == "unrequested" then
    local c = 0
    for i = 0, t.pieces - 1 do if fresh(t, i) then c = c + 1 end end
    return c + open_partials(t)
  end
  return T[k]
end

local function alive_peers(t)
  local out = {}
  for _, p in ipairs(t._peers) do if rawget(p, "_alive") then out[#out + 1] = p end end
  return out
end

function T:availability(i)
  check_piece(self, i, 2, "availability")
  local c = 0
  for _, p in ipairs(alive_peers(self)) do if p._f.have_set:has(i) then c = c + 1 end end
  return c
end

function T:has(i) check_piece(self, i, 2, "has"); return self._have:has(i) end
function T:blocks(i) check_piece(self, i, 2, "blocks"); return (blocks_of(self, i)) end
function T:piece_size(i) check_piece(self, i, 2, "piece_size"); return select(2, blocks_of(self, i)) end
function T:peers() return alive_peers(self) end

function T:next_missing(from)
  from = from or 0
  if math.type(from) ~= "integer" or from < 0 or from > self.pieces then
    argerror(2, "next_missing", ("from %s out of range [0, %d]"):format(tostring(from), self.pieces))
  end
  local i = self._have:next_clear(from)
  return i
end

--- Test helper: the fake clock moves on (request ages, idle, connected_for).
function T:advance(seconds) self.now = self.now + seconds end

-- peer may still ask for block b of piece i (dup: even if others were asked)
local function block_ok(t, peer, i, b, dup)
  local pp = t._partial[i]
  if pp and pp.got[b] then return false end
  if peer._f.asked[i .. ":" .. b] then return false end
  if pp and (pp.req[b] or 0) > 0 and not (dup or t.endgame) then return false end
  return true
end

local function requestable(t, peer, i, dup)
  if t._have:has(i) then return false end
  local pp = t._partial[i]
  if not pp then return true end
  if pp.nfree > 0 then return true end
  if not (dup or t.endgame) then return false end
  for b = 0, pp.nblocks - 1 do
    if not pp.got[b] and not peer._f.asked[i .. ":" .. b] then return true end
  end
  return false
end

local function slots_of(p)
  local f = p._f
  if f.choking then return 0 end
  local depth = math.min(f.queue_depth, f.reqq)
  return math.max(0, depth - f.inflight)
end

--- An iterator over `list` that, like the engine's, ends once the peer has no free
-- slot, after n pieces, and skips pieces `still` says are no longer wanted.
local function lazy(peer, list, n, still)
  local k, given = 0, 0
  n = n or math.huge
  return function()
    P.check_alive(peer)
    while true do
      if given >= n or slots_of(peer) == 0 then return nil end
      k = k + 1
      local i = list[k]
      if i == nil then return nil end
      if still(i) then
        given = given + 1
        return i
      end
    end
  end
end

local function check_iter(t, peer, n, fname)
  P.check_alive(peer)
  if peer.t ~= t then argerror(2, fname, "peer belongs to another torrent") end
  if n ~= nil and (math.type(n) ~= "integer" or n < 0) then argerror(3, fname, "count must be >= 0") end
end

local function by_availability(t, peer, common)
  local c, av = {}, {}
  for i = 0, t.pieces - 1 do
    if peer._f.have_set:has(i) and fresh(t, i) then
      c[#c + 1] = i
      av[i] = t:availability(i)
    end
  end
  local rot, n = t.tie_start, t.pieces
  table.sort(c, function(a, b)
    if av[a] ~= av[b] then
      if common then return av[a] > av[b] end
      return av[a] < av[b]
    end
    return (a - rot) % n < (b - rot) % n
  end)
  return c
end

--- Pieces nobody has started that the peer has, rarest first (ties by index from rot).
function T:rarest(peer, n)
  check_iter(self, peer, n, "rarest")
  return lazy(peer, by_availability(self, peer, false), n, function(i) return fresh(self, i) end)
end

--- The same, most common first.
function T:common(peer, n)
  check_iter(self, peer, n, "common")
  return lazy(peer, by_availability(self, peer, true), n, function(i) return fresh(self, i) end)
end

--- Started pieces the peer has with a block it may ask for: outside endgame those with
-- a block nobody was asked for, in index order, looked up at each step as the engine
-- walks its set; in endgame every one, oldest first, from a list taken at the start.
function T:partial(peer, n)
  check_iter(self, peer, n, "partial")
  if self.endgame then
    local list = {}
    for i in pairs(self._partial) do
      if peer._f.have_set:has(i) then list[#list + 1] = i end
    end
    table.sort(list, function(a, b) return self._partial[a].seq < self._partial[b].seq end)
    return lazy(peer, list, n, function(i) return requestable(self, peer, i, false) end)
  end
  local pos, given = 0, 0
  n = n or math.huge
  return function()
    P.check_alive(peer)
    if given >= n or slots_of(peer) == 0 then return nil end
    local best
    for i, pp in pairs(self._partial) do
      if i >= pos and pp.nfree > 0 and peer._f.have_set:has(i) and (not best or i < best) then best = i end
    end
    if not best then pos = self.pieces; return nil end
    pos, given = best + 1, given + 1
    return best
  end
end

--- Pieces in [from, to) the peer has, in index order, with a block it may ask for.
function T:wanted(peer, from, to)
  check_iter(self, peer, nil, "wanted")
  from, to = math.max(0, from or 0), math.min(to or self.pieces, self.pieces)
  local list = {}
  for i = from, to - 1 do
    if peer._f.have_set:has(i) and not self._have:has(i) then list[#list + 1] = i end
  end
  return lazy(peer, list, nil, function(i) return requestable(self, peer, i, false) end)
end

function T:stats()
  local st = { pieces = self.pieces, pieces_done = self._have:count(), total_bytes = self.total_length,
               downloaded = self.downloaded, uploaded = self.uploaded, dup_bytes = self.dup_bytes,
               cancels = self.cancels, failed_bytes = 0, rate_down = 0, rate_up = 0, peers = 0, peers_unchoking = 0,
               peers_unchoked = 0, inflight = 0, partials = self.partials, bans = 0,
               endgame = self.endgame, complete = self.complete }
  local have = 0
  for i = 0, self.pieces - 1 do if self._have:has(i) then have = have + select(2, blocks_of(self, i)) end end
  st.have_bytes = have
  for _, p in ipairs(alive_peers(self)) do
    local f = p._f
    st.peers = st.peers + 1
    if not f.choking then st.peers_unchoking = st.peers_unchoking + 1 end
    if not f.am_choking then st.peers_unchoked = st.peers_unchoked + 1 end
    st.rate_down, st.rate_up = st.rate_down + f.rate_down, st.rate_up + f.rate_up
    st.inflight = st.inflight + f.inflight
  end
  return st
end

local SOURCES = { manual = true, tracker = true, dht = true, pex = true }

--- No network: the address is recorded in t.connects, its source (default
-- "manual", as in the engine) in t.connect_sources.
function T:connect(host, port, source)
  source = source or "manual"
  if not SOURCES[source] then
    argerror(4, "connect", source == "incoming" and '"incoming" is for peers that dialed us'
      or ("invalid option '%s'"):format(tostring(source)))
  end
  self.connects[#self.connects + 1] = host .. ":" .. tostring(port)
  self.connect_sources[#self.connect_sources + 1] = source
  return true
end

function T:stop(reason)
  self.stopped = true
  if reason then rawset(self, "error", reason) end
end

function T.banned() return false end
function T:set_limits(l)
  if l.down then self._limits.down = l.down end
  if l.up then self._limits.up = l.up end
end
function T:limits() return { down = self._limits.down, up = self._limits.up } end

--- Test helper: every block of piece i arrived from peer and the piece verified.
function T:receive(peer, i)
  local _, size = blocks_of(self, i)
  self._have:set(i)
  self._partial[i] = nil
  self.downloaded = self.downloaded + size
  local f = peer._f
  f.downloaded, f.last_block = f.downloaded + size, self.now
  for _, q in ipairs(self._peers) do
    local qf = q._f
    for key in pairs(qf.asked) do
      if key:match("^(%d+):") == tostring(i) then qf.asked[key] = nil; qf.inflight = qf.inflight - 1 end
    end
  end
end

--- fake.peer(t, { have = "all" | {indices}, slots =, choking =, rate_down =, rate_up =, rtt =,
--   address =, snubbed =, am_interested =, idle =, upload_idle =, connected_for =, reqq =,
--   incoming =, source = })
-- slots sets the queue depth (the peer starts with nothing in flight); source defaults
-- to "incoming" for an incoming peer, else "manual".
function F.peer(t, o)
  o = o or {}
  local f = {
    address = o.address or ("10.0.0." .. (#t._peers + 1) .. ":6881"),
    id = o.id or string.rep("F", 20), choking = o.choking or false, interested = o.interested or false,
    am_choking = true, am_interested = o.am_interested or false, rate_down = o.rate_down or 0,
    rate_up = o.rate_up or 0, rtt = o.rtt or 0.05, min_rtt = o.min_rtt or o.rtt or 0.05, inflight = 0,
    snubbed = o.snubbed or false, seed = o.have == "all", incoming = o.incoming or false,
    source = o.source or (o.incoming and "incoming" or "manual"),
    downloaded = 0, uploaded = o.uploaded or 0, fails = 0, queue_depth = o.slots or 64, upload_rate = 0,
    reqq = o.reqq or MAX_QUEUE, have_set = bt.bitfield(t.pieces), asked = {}, order = {},
    connected_at = t.now - (o.connected_for or 600), last_block = o.idle and t.now - o.idle or nil,
    last_upload = o.upload_idle and t.now - o.upload_idle or nil,
  }
  if o.have == "all" then f.have_set:set_range(0, t.pieces) else
    for _, i in ipairs(o.have or {}) do f.have_set:set(i) end
  end
  f.have = view(f.have_set)
  local p = setmetatable({ t = t, sent = {}, _f = f, _alive = true }, P)
  t._peers[#t._peers + 1] = p
  return p
end

function P.check_alive(p)
  if not rawget(p, "_alive") then
    error(("bt.Peer: peer %s has disconnected (handle used after its peer left)"):format(p._f.address), 3)
  end
end

local COMPUTED = {
  slots = slots_of,
  idle = function(p) local f = p._f; return p.t.now - (f.last_block or f.connected_at) end,
  connected_for = function(p) return p.t.now - p._f.connected_at end,
  upload_idle = function(p) local f = p._f; return p.t.now - (f.last_upload or f.connected_at) end,
}

P.__index = function(p, k)
  if P[k] ~= nil then return P[k] end
  local f = rawget(p, "_f")
  if k == "address" then return f.address end
  if k == "alive" then return rawget(p, "_alive") end
  P.check_alive(p)
  if COMPUTED[k] then return COMPUTED[k](p) end
  if k == "have_set" or k == "asked" or k == "order" then return nil end
  return f[k]
end

--- Setting a field sets up a case (peer.rate_down = 1e6, peer.choking = true).
P.__newindex = function(p, k, v)
  if k == "slots" then p._f.queue_depth = v; return end
  p._f[k] = v
end

local function check_count(p, max, fname)
  if max == nil then return slots_of(p) end
  if math.type(max) ~= "integer" then argerror(3, fname, "number has no integer representation") end
  if max < 0 then argerror(3, fname, "count must be >= 0") end
  return max
end

local function check_slots(p, want)
  local slots = slots_of(p)
  if want > slots then
    error(("bt.Peer: %d requests asked of peer %s, which has %d free slots%s"):format(want, p._f.address, slots,
      p._f.choking and " (it is choking us)" or ""), 3)
  end
end

local function check_has(p, i)
  if not p._f.have_set:has(i) then error(("bt.Peer: peer %s lacks piece %d"):format(p._f.address, i), 3) end
end

local function partial_of(t, i)
  local pp = t._partial[i]
  if not pp then
    local nb = blocks_of(t, i)
    t._seq = t._seq + 1
    pp = { seq = t._seq, nblocks = nb, nfree = nb, req = {}, got = {} }
    t._partial[i] = pp
  end
  return pp
end

local function send(p, i, b)
  local t, f = p.t, p._f
  local pp = partial_of(t, i)
  if (pp.req[b] or 0) == 0 and not pp.got[b] then pp.nfree = pp.nfree - 1 end
  pp.req[b] = (pp.req[b] or 0) + 1
  f.seq = (f.seq or 0) + 1
  f.asked[i .. ":" .. b] = { sent = t.now, ahead = f.inflight, seq = f.seq }
  f.order[#f.order + 1] = { i, b, f.seq }
  p.sent[#p.sent + 1] = { piece = i, block = b }
  f.inflight = f.inflight + 1
  f.am_interested = true
end

local function release(t, i, b)
  local pp = t._partial[i]
  if not pp or (pp.req[b] or 0) == 0 then return end
  pp.req[b] = pp.req[b] - 1
  if pp.req[b] == 0 and not pp.got[b] then pp.nfree = pp.nfree + 1 end
end

local function request_blocks(p, i, max, dup, fname)
  P.check_alive(p)
  local t = p.t
  check_piece(t, i, 2, fname)
  max = check_count(p, max, fname)
  check_slots(p, max)
  check_has(p, i)
  if max == 0 or t._have:has(i) then return 0 end
  local pp = partial_of(t, i)
  local n = 0
  for b = 0, pp.nblocks - 1 do
    if n >= max or pp.nfree == 0 then break end
    if not pp.got[b] and (pp.req[b] or 0) == 0 then send(p, i, b); n = n + 1 end
  end
  if dup or t.endgame then
    for b = 0, pp.nblocks - 1 do
      if n >= max then break end
      if not pp.got[b] and not p._f.asked[i .. ":" .. b] then send(p, i, b); n = n + 1 end
    end
  end
  return n
end

function P:request_blocks(i, max) return request_blocks(self, i, max, false, "request_blocks") end

--- Requests of the pieces `iter` gives, each as request_blocks, until the peer has
-- no free slot, `max` were sent or iter ends.
function P:fill(iter, max)
  P.check_alive(self)
  if type(iter) ~= "function" then argerror(2, "fill", "function expected, got " .. type(iter)) end
  max = max or math.huge
  local sent = 0
  while sent < max and slots_of(self) > 0 do
    local i = iter()
    if i == nil then break end
    check_piece(self.t, i, 2, "fill")
    if not self._f.have_set:has(i) then
      error(("bt.Peer: peer %s lacks piece %d (given by the iterator)"):format(self._f.address, i), 2)
    end
    sent = sent + request_blocks(self, i, math.min(max - sent, slots_of(self)), false, "fill")
  end
  return sent
end
function P:duplicate_blocks(i, max) return request_blocks(self, i, max, true, "duplicate_blocks") end

function P:request(i, b)
  P.check_alive(self)
  local t = self.t
  check_piece(t, i, 2, "request")
  local nb = blocks_of(t, i)
  if math.type(b) ~= "integer" then argerror(3, "request", "number has no integer representation") end
  if b < 0 or b >= nb then
    error(("bt.Peer: block %d is past the end of piece %d (it has %d blocks, 0-based)"):format(b, i, nb), 2)
  end
  check_slots(self, 1)
  check_has(self, i)
  if t._have:has(i) or not block_ok(t, self, i, b, false) then return false end
  send(self, i, b)
  return true
end

function P:cancel(i, b)
  P.check_alive(self)
  check_piece(self.t, i, 2, "cancel")
  if math.type(b) ~= "integer" or b < 0 or b >= blocks_of(self.t, i) then
    argerror(3, "cancel", "block out of range")
  end
  local f, key = self._f, i .. ":" .. b
  if not f.asked[key] then return false end
  f.asked[key] = nil
  f.inflight = f.inflight - 1
  self.t.cancels = self.t.cancels + 1
  release(self.t, i, b)
  return true
end

-- every request back to the pool; a disconnect sends no cancel, cancel_all does
local function release_all(self)
  local f = self._f
  for _, r in ipairs(f.order) do
    local key = r[1] .. ":" .. r[2]
    local a = f.asked[key]
    if a and a.seq == r[3] then
      f.asked[key] = nil
      f.inflight = f.inflight - 1
      release(self.t, r[1], r[2])
    end
  end
  f.order = {}
end

function P:cancel_all()
  P.check_alive(self)
  self.t.cancels = self.t.cancels + self._f.inflight
  release_all(self)
end

function P:snub()
  self:cancel_all()
  self._f.snubbed = true
end

function P:has(i) P.check_alive(self); check_piece(self.t, i, 2, "has"); return self._f.have_set:has(i) end

--- peer:set_upload_rate(bytes_per_s): as the engine's, checked the same way; the fake
-- records it in peer.upload_rate (it moves no data).
function P:set_upload_rate(rate)
  P.check_alive(self)
  if type(rate) ~= "number" or not (rate >= 0 and rate <= 2 ^ 40) then
    error("bad argument #1 to 'set_upload_rate' (rate must be in [0, 2^40] bytes/s (0: no limit))", 2)
  end
  self._f.upload_rate = rate
end

function P:disconnect()
  P.check_alive(self)
  release_all(self)
  rawset(self, "_alive", false)
end

function P:requests()
  P.check_alive(self)
  local out, f, now = {}, self._f, self.t.now
  for _, r in ipairs(f.order) do
    local a = f.asked[r[1] .. ":" .. r[2]]
    if a and a.seq == r[3] then   -- a block cancelled and asked again is listed at its new place
      local expected = f.rate_down > 0 and (f.min_rtt + (a.ahead + 1) * BLOCK / f.rate_down) or math.huge
      out[#out + 1] = { piece = r[1], block = r[2], age = now - a.sent, expected = expected }
    end
  end
  return out
end

return F
