--- bt.policy.fake: a torrent and peers without sockets, to unit-test a policy.
--
-- Same fields, methods and errors as the engine's bt.Torrent / bt.Peer, written
-- naively in Lua (it is also the model the C primitives are checked against).
--
--   local fake = require "bt.policy.fake"
--   local t = fake.torrent{ pieces = 100, piece_length = 262144 }
--   local a = fake.peer(t, { have = "all", slots = 32 })
--   local b = fake.peer(t, { have = { 1, 2, 3 } })
--   policy.pick(t, a, a.slots)
--   -- a.sent: the requests made, in order: { {piece=, block=}, ... }
--   t:receive(a, 0)          -- pretend every block of piece 0 arrived and verified
local bt = require "bt"

local BLOCK = 16384
local F = {}

local T, P = {}, {}

local function blocks_of(t, i)
  local size = (i == t.pieces - 1) and (t.total_length - t.piece_length * (t.pieces - 1)) or t.piece_length
  return (size + BLOCK - 1) // BLOCK, size
end

local function check_piece(t, i, what)
  if math.type(i) ~= "integer" or i < 0 or i >= t.pieces then
    error(("bad argument (%s): piece %s out of range (the torrent has %d pieces, 0-based)")
      :format(what or "piece", tostring(i), t.pieces), 3)
  end
end

--- fake.torrent{ pieces =, piece_length = (default 256 KiB), total_length =, have = {indices} | "all" }
function F.torrent(o)
  local n = assert(o.pieces, "pieces")
  local t = setmetatable({
    pieces = n, piece_length = o.piece_length or 262144, state = {}, endgame = o.endgame or false,
    _have = bt.bitfield(n), _req = {}, _got = {}, _peers = {}, info_hash = o.info_hash or string.rep("0", 40),
  }, T)
  t.total_length = o.total_length or t.pieces * t.piece_length
  if o.have == "all" then t._have:set_range(0, n) else
    for _, i in ipairs(o.have or {}) do t._have:set(i) end
  end
  return t
end

T.__index = function(t, k)
  if k == "have" then return t._have:copy() end
  if k == "missing" then return t.pieces - t._have:count() end
  if k == "unrequested" then
    local c = 0
    for i = 0, t.pieces - 1 do
      if not t._have:has(i) then
        local nb = blocks_of(t, i)
        local req, got = t._req[i], t._got[i]
        for b = 0, nb - 1 do
          if not (req and req[b]) and not (got and got[b]) then c = c + 1; break end
        end
      end
    end
    return c
  end
  return T[k]
end

function T:availability(i)
  check_piece(self, i)
  local c = 0
  for _, p in ipairs(self._peers) do if p._have:has(i) then c = c + 1 end end
  return c
end

function T:has(i) check_piece(self, i); return self._have:has(i) end
function T:blocks(i) check_piece(self, i); return (blocks_of(self, i)) end
function T:piece_size(i) check_piece(self, i); return select(2, blocks_of(self, i)) end
function T:peers() local out = {}; for i, p in ipairs(self._peers) do out[i] = p end; return out end

local function started(t, i) return t._req[i] ~= nil or t._got[i] ~= nil end

-- a block this peer may still ask for
local function requestable_block(t, peer, i, b)
  local req, got = t._req[i], t._got[i]
  if got and got[b] then return false end
  if peer._asked[i .. ":" .. b] then return false end
  if req and req[b] and not t.endgame then return false end
  return true
end

local function requestable(t, peer, i)
  if t._have:has(i) then return false end
  for b = 0, blocks_of(t, i) - 1 do
    if requestable_block(t, peer, i, b) then return true end
  end
  return false
end

local function iter(list)
  local k = 0
  return function() k = k + 1; return list[k] end
end

--- Pieces nobody asked for yet that peer has and we lack, rarest first (ties by index).
function T:rarest(peer, n)
  local c = {}
  for i = 0, self.pieces - 1 do
    if peer._have:has(i) and not self._have:has(i) and not started(self, i) then c[#c + 1] = i end
  end
  table.sort(c, function(a, b)
    local x, y = self:availability(a), self:availability(b)
    if x ~= y then return x < y end
    return a < b
  end)
  local out = {}
  for k = 1, math.min(n, #c) do out[k] = c[k] end
  return iter(out)
end

--- Started pieces the peer has with a block it may still ask for (oldest first).
function T:partial(peer)
  local out = {}
  for _, i in ipairs(self._order or {}) do
    if peer._have:has(i) and started(self, i) and requestable(self, peer, i) then out[#out + 1] = i end
  end
  return iter(out)
end

function T:wanted(peer, from, to)
  from, to = from or 0, math.min(to or self.pieces, self.pieces)
  local out = {}
  for i = math.max(0, from), to - 1 do
    if peer._have:has(i) and requestable(self, peer, i) then out[#out + 1] = i end
  end
  return iter(out)
end

--- Test helper: every block of piece i arrived from peer and the piece verified.
function T:receive(peer, i)
  self._have:set(i)
  self._req[i], self._got[i] = nil, nil
  for k = #peer.sent, 1, -1 do
    if peer.sent[k].piece == i then
      peer._asked[i .. ":" .. peer.sent[k].block] = nil
      peer.inflight = peer.inflight - 1
    end
  end
end

--- fake.peer(t, { have = "all" | {indices}, slots =, choking =, rate_down =, rate_up =, rtt =,
--   address =, snubbed =, am_interested =, idle =, connected_for = })
function F.peer(t, o)
  o = o or {}
  local p = setmetatable({
    t = t, _have = bt.bitfield(t.pieces), _asked = {}, sent = {},
    address = o.address or ("10.0.0." .. (#t._peers + 1) .. ":6881"),
    id = o.id or string.rep("F", 20), choking = o.choking or false, interested = false,
    am_choking = true, am_interested = o.am_interested or false, rate_down = o.rate_down or 0,
    rate_up = o.rate_up or 0, rtt = o.rtt or 0.05, inflight = 0, snubbed = o.snubbed or false,
    seed = o.have == "all", idle = o.idle or 0, connected_for = o.connected_for or 600,
    queue_depth = o.slots or 64, reqq = 2000, alive = true,
  }, P)
  if o.have == "all" then p._have:set_range(0, t.pieces) else
    for _, i in ipairs(o.have or {}) do p._have:set(i) end
  end
  t._peers[#t._peers + 1] = p
  return p
end

P.__index = function(p, k)
  if k == "have" then return p._have:copy() end
  if k == "slots" then
    if p.choking then return 0 end
    return math.max(0, p.queue_depth - p.inflight)
  end
  return P[k]
end

local function check_slots(p, want)
  local slots = p.slots
  if want > slots then
    error(("bt.Peer: %d requests asked of peer %s, which has %d free slots%s"):format(want, p.address, slots,
      p.choking and " (it is choking us)" or ""), 3)
  end
end

local function send(p, i, b)
  local t = p.t
  t._req[i] = t._req[i] or {}
  t._req[i][b] = (t._req[i][b] or 0) + 1
  t._order = t._order or {}
  local known = false
  for _, x in ipairs(t._order) do if x == i then known = true end end
  if not known then t._order[#t._order + 1] = i end
  p._asked[i .. ":" .. b] = true
  p.sent[#p.sent + 1] = { piece = i, block = b }
  p.inflight = p.inflight + 1
  p.am_interested = true
end

function P:request_blocks(i, max)
  check_piece(self.t, i)
  check_slots(self, max)
  if not self._have:has(i) then error(("bt.Peer: peer %s lacks piece %d"):format(self.address, i), 2) end
  if self.t._have:has(i) then return 0 end
  local n = 0
  for b = 0, blocks_of(self.t, i) - 1 do
    if n >= max then break end
    if requestable_block(self.t, self, i, b) then send(self, i, b); n = n + 1 end
  end
  return n
end

function P:request(i, b)
  check_piece(self.t, i)
  local nb = blocks_of(self.t, i)
  if math.type(b) ~= "integer" or b < 0 or b >= nb then
    error(("bt.Peer: block %s is past the end of piece %d (it has %d blocks, 0-based)"):format(tostring(b), i, nb), 2)
  end
  check_slots(self, 1)
  if not self._have:has(i) then error(("bt.Peer: peer %s lacks piece %d"):format(self.address, i), 2) end
  if self.t._have:has(i) or not requestable_block(self.t, self, i, b) then return false end
  send(self, i, b)
  return true
end

function P:cancel(i, b)
  local key = i .. ":" .. b
  if not self._asked[key] then return false end
  self._asked[key] = nil
  self.inflight = self.inflight - 1
  local r = self.t._req[i]
  if r and r[b] then r[b] = r[b] > 1 and r[b] - 1 or nil end
  return true
end

function P:has(i) check_piece(self.t, i); return self._have:has(i) end
function P:disconnect() self.alive = false end
function P:requests()
  local out = {}
  for _, r in ipairs(self.sent) do
    if self._asked[r.piece .. ":" .. r.block] then out[#out + 1] = { piece = r.piece, block = r.block, age = 0 } end
  end
  return out
end

return F
