-- spec/peers/hostile.lua: scripted hostile peers (bt.wire + lua-socket) for
-- spec/hostile_spec.lua. Everything is on 127.0.0.1 and every wait is bounded: a
-- scenario ends in at most a few WAITs, and the script mode exits by itself.
--
-- Two kinds of scenario:
--   M.seed[NAME](ctx)   a leecher that abuses a bt-lua seed listening on ctx.port.
--                       Returns what it saw: closed (bt-lua closed the connection),
--                       secs (from the abuse to that close), works (a well-formed
--                       request sent after the abuse, on the same connection, got the
--                       right bytes), and counts particular to the scenario.
--   M.seeder[NAME]      a seed that abuses a bt-lua leecher dialing it: a table of
--                       callbacks driven by M.serve (one select loop, several hostile
--                       seeds at once), which records per connection what happened.
-- ctx = M.context(torrent_path, data_path, port). The spec judges the results.
--
-- Script mode, for the scenarios that wait for bt-lua's handshake timeout (run in the
-- background while other scenarios go on):
--   lua5.4 spec/peers/hostile.lua NAME TORRENT DATAFILE PORT
-- prints one line "closed=BOOL secs=N ..." (the result's fields).
local bt = require "bt"
local socket = require "socket"

local M = { seed = {}, seeder = {} }

M.BLOCK = 16384
M.WAIT = 10          -- seconds any single wait may take (a reply, a close)
M.SLOW_WAIT = 25     -- seconds a handshake-timeout scenario waits (bt-lua's timeout is 10 s)
M.FLOOD = 10000      -- messages in each flood

local function now() return socket.gettime() end
local function be32(n) return string.pack(">I4", n) end
-- A raw frame: length prefix, id and body, whatever the length says.
local function frame(len, id, body) return be32(len) .. string.char(id) .. (body or "") end
local function enc(msg) return bt.wire.encode(msg) end
-- n bytes of deterministic garbage (a failure reproduces): a 32-bit LCG's high bytes.
local function garbage(n, seed)
  local x, out = seed, {}
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    out[i] = string.char(x >> 16 & 0xff)
  end
  return table.concat(out)
end

local function readall(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- The torrent and its payload, for scenarios aimed at bt-lua on `port`.
function M.context(torrent, datafile, port)
  local m = assert(bt.torrent.load(readall(torrent)))
  return { port = port, meta = m, info_hash = m.info_hash, npieces = m.num_pieces,
    plen = m.piece_length, data = readall(datafile) }
end

local function piece_size(ctx, i)
  return i + 1 < ctx.npieces and ctx.plen or #ctx.data - ctx.plen * i
end

-- distinct peer ids, so that no scenario trips the duplicate-id check by accident
local id_seq = 0
function M.peer_id()
  id_seq = id_seq + 1
  return ("-HP0001-%04d%08d"):format(id_seq % 10000, math.random(0, 99999999))
end

-- A bitfield of `n` pieces, all set (spare bits clear unless `spare`).
local function full_bits(n, spare)
  local bytes = {}
  for i = 1, (n + 7) // 8 do bytes[i] = 0xff end
  local extra = #bytes * 8 - n
  if extra > 0 and not spare then bytes[#bytes] = (0xff << extra) & 0xff end
  return string.char(table.unpack(bytes))
end

-- A bitfield of `n` pieces holding those for which has(i) is true.
local function bits_of(n, has)
  local bytes = {}
  for i = 1, (n + 7) // 8 do bytes[i] = 0 end
  for i = 0, n - 1 do
    if has(i) then bytes[i // 8 + 1] = bytes[i // 8 + 1] | (0x80 >> (i % 8)) end
  end
  return string.char(table.unpack(bytes))
end
M.full_bits = full_bits

-- ---------------------------------------------------------------- a connection to bt-lua

local Conn = {}
Conn.__index = Conn

--- Dial bt-lua (ctx.port). Returns a connection, or nil and the error.
function M.dial(ctx)
  local sock = socket.tcp()
  sock:settimeout(M.WAIT)
  local ok, err = sock:connect("127.0.0.1", ctx.port)
  if not ok then sock:close(); return nil, err end
  sock:setoption("tcp-nodelay", true)
  local _, lport = sock:getsockname()
  return setmetatable({ ctx = ctx, sock = sock, lport = tonumber(lport), closed = false, unchoked = false, allowed = {},
    pieces = 0, good = 0, bad = 0, rejects = 0, msgs = 0, got = {},
    -- 128 KiB blocks parse, so an oversized answer would be seen rather than kill the decoder
    dec = bt.wire.decoder{ handshake = true, max_block = 131072 } }, Conn)
end

local function mark_closed(self, err)
  if not self.closed then
    self.closed, self.close_err, self.closed_at = true, err, now()
  end
end

--- Send bytes whole (bounded by WAIT). Returns true, or false once the connection failed.
function Conn:raw(bytes)
  if self.closed then return false end
  self.sock:settimeout(M.WAIT)
  local i = 1
  while i <= #bytes do
    local n, err = self.sock:send(bytes, i)
    if n then
      i = n + 1
    else
      if err == "timeout" then self.send_timeout = true end
      mark_closed(self, err)
      return false
    end
  end
  return true
end

function Conn:send(msg) return self:raw(enc(msg)) end

--- The bad part of a scenario: the clock for `secs` starts here.
function Conn:abuse(bytes)
  self.abused_at = now()
  return self:raw(bytes)
end

function Conn:feed(data)
  if self.dec_err then return end   -- e.g. bt-lua answered an MSE handshake: only closes matter now
  local msgs, err = self.dec:feed(data)
  if not msgs then self.dec_err = err; return end
  for _, m in ipairs(msgs) do
    self.msgs = self.msgs + 1
    local t = m.type
    if t == "handshake" then self.hs = m
    elseif t == "unchoke" then self.unchoked = true
    elseif t == "choke" then self.unchoked = false
    elseif t == "allowed_fast" then self.allowed[#self.allowed + 1] = m.index
    elseif t == "reject" then self.rejects = self.rejects + 1
    elseif t == "piece" then
      self.pieces = self.pieces + 1
      local off = m.index * self.ctx.plen + m.begin
      local key = m.index .. ":" .. m.begin
      if self.ctx.data:sub(off + 1, off + #m.block) == m.block then
        self.good = self.good + 1
        self.got[key] = true
      else
        self.bad = self.bad + 1
      end
    end
  end
end

--- Read and decode for up to `secs`, or until done(self) is true. Returns done's verdict.
function Conn:pump(secs, done)
  local deadline = now() + secs
  while not self.closed do
    if done and done(self) then return true end
    local left = deadline - now()
    if left <= 0 then break end
    local ready = socket.select({ self.sock }, nil, math.min(left, 0.1))
    if #ready > 0 then
      self.sock:settimeout(0)
      local data, err, partial = self.sock:receive(1 << 20)
      data = data or partial
      if data and #data > 0 then self:feed(data) end
      if err and err ~= "timeout" then mark_closed(self, err) end
    end
  end
  return done and done(self) or false
end

--- Send our handshake. opts: info_hash, peer_id, fast (default true), ext (BEP 10).
function Conn:handshake(opts)
  opts = opts or {}
  local fast = opts.fast ~= false
  self.fast = fast
  return self:raw(bt.wire.handshake{ info_hash = opts.info_hash or self.ctx.info_hash,
    peer_id = opts.peer_id or M.peer_id(), fast = fast, extensions = opts.ext })
end

--- Handshake and wait for bt-lua's opening messages (with fast: its allowed-fast set).
function Conn:ready(opts)
  self:handshake(opts)
  local fast = self.fast
  return self:pump(M.WAIT, function(c) return c.hs and (not fast or #c.allowed > 0) end)
end

--- Interested, then wait for the unchoke.
function Conn:unchoke()
  self:send{ type = "interested" }
  return self:pump(M.WAIT, function(c) return c.unchoked end)
end

local sentinel_seq = 0
--- A well-formed request on this connection: a block of an allowed-fast piece (served
-- while choked, BEP 6), or any piece once unchoked. True when its bytes arrive right.
function Conn:works()
  if self.closed then return false end
  local index
  if self.unchoked then index = 0 else index = self.allowed[1] end
  if not index then return false end
  sentinel_seq = sentinel_seq + 1
  local nblocks = (piece_size(self.ctx, index) + M.BLOCK - 1) // M.BLOCK
  local b = sentinel_seq % nblocks
  local len = math.min(M.BLOCK, piece_size(self.ctx, index) - b * M.BLOCK)
  local key = index .. ":" .. b * M.BLOCK
  self.got[key] = nil
  self:send{ type = "request", index = index, begin = b * M.BLOCK, length = len }
  return self:pump(M.WAIT, function(c) return c.got[key] end)
end

--- The usual ending: does the connection still answer a request? Fills the result.
function Conn:verdict(r)
  r = r or {}
  r.lport = self.lport   -- names this connection in bt-lua's log ("127.0.0.1:LPORT")
  r.works = self:works()
  if not r.works then self:pump(M.WAIT) end   -- not answered: wait (bounded) for the close
  r.closed = self.closed
  r.secs = self.closed and self.abused_at and self.closed_at - self.abused_at or nil
  r.close_err = self.close_err
  r.send_timeout = self.send_timeout
  r.pieces, r.rejects, r.bad = self.pieces, self.rejects, self.bad
  self.sock:close()
  return r
end

function Conn:close() self.sock:close() end

--- A fresh, well-behaved connection gets one block right: bt-lua still serves.
function M.sentinel(ctx)
  local c, err = M.dial(ctx)
  if not c then return false, "connect: " .. tostring(err) end
  if not c:ready() then c:close(); return false, "no handshake or allowed-fast set" end
  local ok = c:works()
  c:close()
  return ok, ok and "" or ("no block (closed=%s)"):format(tostring(c.closed))
end

-- Scenario shapes: handshake (fast unless hs.fast == false), the abuse, then verdict.
local function simple(bytes_of, hs)
  return function(ctx)
    local c = assert(M.dial(ctx))
    c:ready(hs)
    if hs and hs.unchoke then assert(c:unchoke(), "never unchoked") end
    c:abuse(type(bytes_of) == "function" and bytes_of(ctx, c) or bytes_of)
    return c:verdict()
  end
end

local S = M.seed

-- Length lies. Each scenario's comment says what bt-lua must do with it.

-- Dropped: a prefix of 2^32-1 is judged from its 4 bytes, nothing is buffered for it.
S.len_4g = simple(be32(0xffffffff) .. "\20")
-- Dropped: one byte past the overall cap (1 MiB + 16) for an id without a rule of its own.
S.len_above_max = simple(be32(1024 * 1024 + 17) .. "\99")
-- Ignored: an unknown id right at the cap (1 MiB + 16) is read whole and skipped.
S.len_at_max = simple(frame(1024 * 1024 + 16, 99, string.rep("u", 1024 * 1024 + 15)))
-- Dropped: a fixed-size message with the wrong length (a have of 4 bytes: its index cut).
S.len_short_have = simple(frame(4, 4, "\0\0\0"))
-- Dropped: a prefix promising 1000 bytes, 10 sent, then our side closes (half-close):
-- bt-lua sees the end of the stream inside a message and closes too.
function S.len_lie_then_close(ctx)
  local c = assert(M.dial(ctx))
  c:ready()
  c:abuse(frame(1001, 99, string.rep("x", 10)))
  c.sock:shutdown("send")
  c:pump(M.WAIT)
  return { closed = c.closed, secs = c.closed and c.closed_at - c.abused_at, works = false, lport = c.lport }
end
-- Dropped: a piece message with a block one byte over the 16 KiB limit (sent to a seed).
S.piece_oversized = simple(frame(9 + M.BLOCK + 1, 7, be32(0) .. be32(0) .. string.rep("p", M.BLOCK + 1)))
-- Ignored: unknown message ids (21..255, small payloads) are skipped (BEP 3 clients do).
S.unknown_ids = simple(function()
  local parts = {}
  for id = 21, 255 do parts[#parts + 1] = frame(1 + id % 7, id, string.rep("z", id % 7)) end
  return table.concat(parts)
end)

-- Haves and bitfields.

-- Dropped: a have for index == number of pieces.
S.have_past_end = simple(function(ctx) return enc{ type = "have", index = ctx.npieces } end)
-- Dropped: a have for index 2^32-1.
S.have_index_max = simple(enc{ type = "have", index = 0xffffffff })
-- Dropped: a bitfield one byte short.
S.bitfield_short = simple(function(ctx) return enc{ type = "bitfield", bits = full_bits(ctx.npieces):sub(2) } end)
-- Dropped: a bitfield one byte long (judged from its prefix: longer than this torrent's).
S.bitfield_long = simple(function(ctx) return enc{ type = "bitfield", bits = full_bits(ctx.npieces) .. "\0" } end)
-- Dropped: the spare bits past the last piece are set (BEP 3: they must be clear).
S.bitfield_spare_bits = simple(function(ctx) return enc{ type = "bitfield", bits = full_bits(ctx.npieces, true) } end)
-- Ignored: a second bitfield replaces the first (BEP 3 says it comes first only; a
-- replacement costs nothing to accept, libtorrent accepts it too).
S.bitfield_twice = simple(function(ctx)
  return enc{ type = "bitfield", bits = string.rep("\0", #full_bits(ctx.npieces)) }
    .. enc{ type = "bitfield", bits = full_bits(ctx.npieces) }
end)
-- Ignored: a bitfield after a have, likewise.
S.bitfield_after_have = simple(function(ctx)
  return enc{ type = "have", index = 1 } .. enc{ type = "bitfield", bits = full_bits(ctx.npieces) }
end)

-- Ignored: 10,000 haves (every piece, over and over; a seed has them all anyway).
S.have_flood = simple(function(ctx)
  local parts = {}
  for i = 0, M.FLOOD - 1 do parts[#parts + 1] = enc{ type = "have", index = i % ctx.npieces } end
  return table.concat(parts)
end)
-- Ignored: 1,000 bitfields, empty and full in turn (each one replaces the last).
S.bitfield_flood = simple(function(ctx)
  local empty, full = string.rep("\0", #full_bits(ctx.npieces)), full_bits(ctx.npieces)
  local parts = {}
  for i = 1, 1000 do parts[#parts + 1] = enc{ type = "bitfield", bits = i % 2 == 0 and full or empty } end
  return table.concat(parts)
end)

-- BEP 6 messages on a connection without the fast extension: BEP 6 says the receiver
-- MUST close (libtorrent does, for each of them). Dropped.
S.have_all_nofast = simple(enc{ type = "have_all" }, { fast = false })
S.have_none_nofast = simple(enc{ type = "have_none" }, { fast = false })
S.reject_nofast = simple(enc{ type = "reject", index = 0, begin = 0, length = M.BLOCK }, { fast = false })
S.suggest_nofast = simple(enc{ type = "suggest", index = 0 }, { fast = false })
S.allowed_fast_nofast = simple(enc{ type = "allowed_fast", index = 0 }, { fast = false })
-- Ignored: with the fast extension, reject / suggest / allowed-fast naming pieces past
-- the end, and rejects for requests we never sent (a seed sends none), mean nothing.
S.fast_bad_indices = simple(function(ctx)
  local parts = {}
  for _, i in ipairs{ ctx.npieces, ctx.npieces + 1, 0x7fffffff, 0xffffffff } do
    parts[#parts + 1] = enc{ type = "reject", index = i, begin = 0, length = M.BLOCK }
    parts[#parts + 1] = enc{ type = "suggest", index = i }
    parts[#parts + 1] = enc{ type = "allowed_fast", index = i }
  end
  return table.concat(parts)
end)
S.reject_never_sent = simple(function(ctx)
  local parts = {}
  for i = 0, ctx.npieces - 1 do parts[#parts + 1] = enc{ type = "reject", index = i, begin = 0, length = M.BLOCK } end
  return table.concat(parts)
end)

-- Requests.

-- Dropped: a request of length 0.
S.request_zero = simple(enc{ type = "request", index = 0, begin = 0, length = 0 })
-- Dropped: a request of 1 MiB (the seed serves 16 KiB blocks).
S.request_1mib = simple(enc{ type = "request", index = 0, begin = 0, length = 1024 * 1024 })
-- Dropped: a request running past the end of the (short) last piece.
S.request_past_end = simple(function(ctx)
  local last = ctx.npieces - 1
  return enc{ type = "request", index = last, begin = piece_size(ctx, last) - 1, length = 2 }
end)
-- Refused, kept: 10,000 requests at once from an unchoked fast peer. At most the 500 of
-- our reqq are queued; BEP 6 wants every request answered once, by its block or a reject.
function S.request_flood(ctx)
  local c = assert(M.dial(ctx))
  c:ready()
  assert(c:unchoke(), "never unchoked")
  local parts, per = {}, ctx.plen // M.BLOCK
  for i = 0, M.FLOOD - 1 do   -- full blocks of the full pieces, over and over
    local k = i % ((ctx.npieces - 1) * per)
    parts[#parts + 1] = enc{ type = "request", index = k // per, begin = k % per * M.BLOCK, length = M.BLOCK }
  end
  c:abuse(table.concat(parts))
  c:pump(M.WAIT * 2, function(x) return x.pieces + x.rejects >= M.FLOOD end)
  local r = { served = c.pieces, rejected = c.rejects, bad = c.bad }
  return c:verdict(r)
end
-- Refused, kept: requests while choked (not even interested) for pieces outside the
-- allowed-fast set: each is rejected (BEP 6), none served.
function S.request_choked(ctx)
  local c = assert(M.dial(ctx))
  c:ready()
  local allowed = {}
  for _, i in ipairs(c.allowed) do allowed[i] = true end
  local n, parts = 0, {}
  for i = 0, ctx.npieces - 2 do
    if not allowed[i] then
      n = n + 1
      parts[#parts + 1] = enc{ type = "request", index = i, begin = 0, length = M.BLOCK }
    end
  end
  c:abuse(table.concat(parts))
  c:pump(M.WAIT, function(x) return x.rejects >= n end)
  local r = { asked = n, served = c.pieces, rejected = c.rejects }
  return c:verdict(r)
end
-- Ignored: 10,000 cancels for blocks never requested (nothing to cancel, nothing sent back).
S.cancel_flood = simple(function(ctx)
  local parts = {}
  for i = 0, M.FLOOD - 1 do
    parts[#parts + 1] = enc{ type = "cancel", index = i % ctx.npieces, begin = (i % 4) * M.BLOCK, length = M.BLOCK }
  end
  return table.concat(parts)
end)

-- Ignored: a block nobody asked for, sent to a seed by a peer without the fast extension
-- (BEP 3 does not forbid it; the seed has the piece and throws the block away).
S.piece_unsolicited = simple(function(ctx)
  return enc{ type = "piece", index = 0, begin = 0, block = ctx.data:sub(1, M.BLOCK) }
end, { fast = false, unchoke = true })

-- Noise.

-- Ignored: 10,000 keep-alives in one burst.
S.keepalive_flood = simple(string.rep(be32(0), M.FLOOD))
-- Ignored: choke / unchoke flapped 10,000 times (our choking of a seed means nothing to it).
S.choke_flap = simple(string.rep(enc{ type = "choke" } .. enc{ type = "unchoke" }, M.FLOOD))
-- Ignored: interested / not interested flapped 10,000 times; each change may ask the
-- policy for a choke round, which the scheduler spaces out (BT_CHOKE_EXTRA_GAP).
S.interest_flap = simple(string.rep(enc{ type = "interested" } .. enc{ type = "not_interested" }, M.FLOOD))
-- Dropped: a port message (BEP 5) of the wrong length.
S.port_wrong_length = simple(frame(5, 9, "\26\225\0\0"))
-- Ignored: a well-formed port message for a DHT we do not run.
S.port_ok = simple(enc{ type = "port", port = 6881 })

-- BEP 10 extended messages (the handshake says we speak it).

-- Ignored: an extended handshake of exactly the 1 MiB limit (a valid dictionary).
S.ext_handshake_1mib = simple(function()
  local head = "d1:md3:fooi1ee1:x"
  local filler = 1024 * 1024 - #head - #"1234567:e"   -- a 7-digit string length
  local s = head .. filler .. ":" .. string.rep("b", filler) .. "e"
  assert(#s == 1024 * 1024)
  return enc{ type = "extended", id = 0, payload = s }
end, { ext = true })
-- Dropped: an extended payload one byte over the 1 MiB limit.
S.ext_over_limit = simple(function()
  return frame(2 + 1024 * 1024 + 1, 20, "\0" .. string.rep("e", 1024 * 1024 + 1))
end, { ext = true })
-- Ignored: a bencode bomb, 1 MiB of nested lists (past the 256 nesting limit): the
-- handshake is unreadable, which costs the peer its reqq and nothing else.
S.ext_bomb_nesting = simple(enc{ type = "extended", id = 0, payload = string.rep("l", 1024 * 1024) }, { ext = true })
-- Ignored: a dictionary holding a list of ~350,000 integers (the decoder's tokens for
-- one 1 MiB message are bounded by the message; freed once it is read).
S.ext_bomb_tokens = simple(function()
  local n = (1024 * 1024 - 16) // 3
  return enc{ type = "extended", id = 0, payload = "d1:l" .. "l" .. string.rep("i0e", n) .. "ee" }
end, { ext = true })
-- Ignored: extended messages with ids we never announced (1..255 but ours: ut_pex's
-- and ut_metadata's messages have their own scenarios).
S.ext_unknown_ids = simple(function()
  local parts, ours = {}, {}
  for _, id in pairs(bt.wire.EXTENSIONS) do ours[id] = true end
  for id = 1, 255 do
    if not ours[id] then parts[#parts + 1] = enc{ type = "extended", id = id, payload = "d1:xi" .. id .. "ee" } end
  end
  return table.concat(parts)
end, { ext = true })

-- PEX (BEP 11): ut_pex messages under the id bt-lua gave it in its BEP 10 handshake.
local function pex(payload) return enc{ type = "extended", id = bt.wire.EXTENSIONS.ut_pex, payload = payload } end
-- n IPv4 peers 1.x.y.z:6881 (not local: nothing is filtered), 6 bytes each.
local function peers4(n)
  local out = {}
  for i = 1, n do out[i] = string.char(1, i >> 16 & 255, i >> 8 & 255, i & 255, 0x1a, 0xe1) end
  return table.concat(out)
end
-- Ignored but for the first 100: 10,000 peers in one message of 60,000 bytes (under
-- the 64 KiB cap); the candidates they become are bounded too.
S.pex_10000_peers = simple(function() return pex(bt.bencode{ added = peers4(10000) }) end, { ext = true })
-- Dropped: 10,000 peers with their flags, 70,000 bytes: over the 64 KiB cap.
S.pex_over_64k = simple(function()
  return pex(bt.bencode{ added = peers4(10000), ["added.f"] = string.rep("", 10000) })
end, { ext = true })
-- Ignored: odd lengths: a partial entry after whole ones, flags that do not match,
-- an IPv6 list one byte short of an entry, a dropped list of 3 bytes, a wrong type.
S.pex_odd_lengths = simple(function()
  return pex(bt.bencode{ added = peers4(3) .. "", ["added.f"] = "", added6 = string.rep("", 17),
                         dropped = "abc", dropped6 = bt.list{ 1 } })
end, { ext = true })
-- Dropped: not bencode at all.
S.pex_garbage = simple(function() return pex("d5:added") end, { ext = true })
-- Dropped: a second message one second after the first (more than one in 10 s).
function S.pex_every_second(ctx)
  local c = assert(M.dial(ctx))
  c:ready{ ext = true }
  c:raw(pex(bt.bencode{ added = peers4(2) }))
  c:pump(1)
  c:abuse(pex(bt.bencode{ added = peers4(2) }))
  return c:verdict()
end

-- Handshakes.

-- Dropped at once: a handshake for a torrent bt-lua does not serve.
function S.wrong_info_hash(ctx)
  local c = assert(M.dial(ctx))
  c:abuse(bt.wire.handshake{ info_hash = string.rep("\171", 20), peer_id = M.peer_id() })
  return c:verdict()
end
-- Dropped: our handshake carries bt-lua's own peer id (learned from a first
-- connection): bt-lua answers its handshake, so a dialer learns it too, and closes.
function S.own_peer_id(ctx)
  local a = assert(M.dial(ctx))
  a:ready()
  local own = a.hs.peer_id
  a:close()
  local c = assert(M.dial(ctx))
  c.abused_at = now()
  c:handshake{ peer_id = own }
  c:pump(M.WAIT)
  return { closed = c.closed, secs = c.closed and c.closed_at - c.abused_at,
    answered = c.hs ~= nil and c.hs.peer_id == own, works = false, lport = c.lport }
end
-- The second is dropped, the first kept: two connections with the same peer id.
function S.same_peer_id(ctx)
  local id = M.peer_id()
  local a = assert(M.dial(ctx))
  a:ready{ peer_id = id }
  local b = assert(M.dial(ctx))
  b.abused_at = now()
  b:handshake{ peer_id = id }
  b:pump(M.WAIT)
  local r = { closed = b.closed, secs = b.closed and b.closed_at - b.abused_at, lport = b.lport }
  r.first_works = a:works()
  a:close()
  b:close()
  r.works = false
  return r
end
-- Kept: 1,000 connect-handshake-close cycles, one at a time; each one must get bt-lua's
-- handshake back (it is not refused for the connections that came before).
function S.reconnect_storm(ctx)
  local answered, t0 = 0, now()
  for _ = 1, 1000 do
    local c = M.dial(ctx)
    if c then
      c:handshake{ fast = false }
      if c:pump(M.WAIT, function(x) return x.hs ~= nil end) then answered = answered + 1 end
      c:close()
    end
  end
  return { cycles = 1000, answered = answered, secs = now() - t0, closed = false, works = answered == 1000 }
end
-- Dropped at once: 700 bytes of random garbage. Not a plaintext handshake, so bt-lua
-- takes it for MSE (BEP 8 encryption): no sync mark within the 96-byte key and 512 bytes
-- of padding it allows, and it closes.
function S.garbage_700(ctx)
  local c = assert(M.dial(ctx))
  c:abuse(garbage(700, 7))
  c:pump(M.WAIT)
  return { closed = c.closed, secs = c.closed and c.closed_at - c.abused_at, works = false, lport = c.lport }
end

-- Waiting for the handshake timeout (10 s in bt-lua seed): run by the spec in the
-- background, through the script mode below. Each is dropped by that timeout.
local function until_closed(c, secs)
  c:pump(secs)
  return { closed = c.closed, secs = c.closed and c.closed_at - c.abused_at, works = false, lport = c.lport }
end
-- A connection that never sends a byte.
function S.silent(ctx)
  local c = assert(M.dial(ctx))
  c.abused_at = now()
  return until_closed(c, M.SLOW_WAIT)
end
-- A handshake sent one byte per 0.5 s (68 bytes would take 34 s).
function S.handshake_drip(ctx)
  local c = assert(M.dial(ctx))
  local hs = bt.wire.handshake{ info_hash = ctx.info_hash, peer_id = M.peer_id() }
  c.abused_at = now()
  local sent = 0
  while sent < #hs and not c.closed and now() - c.abused_at < M.SLOW_WAIT do
    sent = sent + 1
    c:raw(hs:sub(sent, sent))
    c:pump(0.5)
  end
  local r = until_closed(c, M.SLOW_WAIT - (now() - c.abused_at))
  r.sent = sent
  return r
end
-- A handshake whose protocol string is wrong: taken for an MSE key exchange, which
-- waits for the rest of a 96-byte key that never comes.
function S.wrong_protocol(ctx)
  local c = assert(M.dial(ctx))
  local hs = bt.wire.handshake{ info_hash = ctx.info_hash, peer_id = M.peer_id() }
  c:abuse("\19BitTorrent protocoX" .. hs:sub(21))
  return until_closed(c, M.SLOW_WAIT)
end
-- 600 bytes of garbage: MSE again, still inside the padding it must allow.
function S.garbage_600(ctx)
  local c = assert(M.dial(ctx))
  c:abuse(garbage(600, 6))
  return until_closed(c, M.SLOW_WAIT)
end

-- ---------------------------------------------------------------- hostile seeds

-- Each M.seeder entry: { fast = bool, on_ready(cx) after handshake + bitfield + unchoke,
-- on_request(cx, index, begin, length) -> bytes to send }. cx = { conn record, ctx }.
-- A record per connection: requests, blocks (served), bad (bad messages sent), closed_by_peer,
-- closed_at, bad_at (time of the first bad message), after_bad (blocks requested and served
-- after the abuse on this connection).

local function block_of(ctx, index, begin, length)
  local off = index * ctx.plen + begin
  return ctx.data:sub(off + 1, off + length)
end

local function good_piece(cx, index, begin, length)
  cx.rec.blocks = cx.rec.blocks + 1
  if cx.rec.bad_at then cx.rec.after_bad = cx.rec.after_bad + 1 end
  return enc{ type = "piece", index = index, begin = begin, block = block_of(cx.ctx, index, begin, length) }
end

local function mark_bad(cx)
  cx.rec.bad = cx.rec.bad + 1
  cx.rec.bad_at = cx.rec.bad_at or now()
end

-- The seeds meant to be kept unchoke this much later than the others, so that the
-- leecher asks the bad ones first (it asks whoever unchokes it, and these two alone
-- would serve the whole torrent in a few milliseconds).
M.KEPT_DELAY = 1

-- Banned (with its fellows): every block it sends has one byte flipped, so every piece
-- it completes fails the hash check; two failures are a ban (BT_TORRENT_BAN_FAILS).
M.seeder.corrupt = { fast = true, on_request = function(cx, index, begin, length)
  local b = block_of(cx.ctx, index, begin, length)
  local k = length // 2 + 1
  b = b:sub(1, k - 1) .. string.char(b:byte(k) ~ 0x5a) .. b:sub(k + 1)
  mark_bad(cx)
  cx.rec.blocks = cx.rec.blocks + 1
  return enc{ type = "piece", index = index, begin = begin, block = b }
end }
-- Dropped: the first request is answered with a block at a begin offset one byte off the
-- 16 KiB grid (the rest of the block is right).
M.seeder.wrong_offset = { fast = true, on_request = function(cx, index, begin, length)
  if cx.rec.bad > 0 then return good_piece(cx, index, begin, length) end
  mark_bad(cx)
  return enc{ type = "piece", index = index, begin = begin + 1, block = block_of(cx.ctx, index, begin + 1, length) }
end }
-- Dropped: the first request is answered with a block one byte short.
M.seeder.wrong_size = { fast = true, on_request = function(cx, index, begin, length)
  if cx.rec.bad > 0 then return good_piece(cx, index, begin, length) end
  mark_bad(cx)
  return enc{ type = "piece", index = index, begin = begin, block = block_of(cx.ctx, index, begin, length - 1) }
end }
-- Kept: right after the unchoke it sends 32 blocks nobody asked for (right data), then
-- serves requests. Without BEP 6 (this seed does not set the bit) nothing forbids it;
-- the blocks count as waste, a piece in progress may keep them.
-- It has the even pieces only, the flapper the odd ones: the download needs both.
M.seeder.unsolicited = { fast = false, delay = M.KEPT_DELAY, has = function(i) return i % 2 == 0 end,
  on_ready = function(cx)
    local parts = {}
    for index = 0, cx.ctx.npieces - 1, 2 do
      local len = math.min(M.BLOCK, piece_size(cx.ctx, index))
      parts[#parts + 1] = enc{ type = "piece", index = index, begin = 0, block = block_of(cx.ctx, index, 0, len) }
    end
    mark_bad(cx)
    return table.concat(parts)
  end,
  on_request = good_piece }
-- Kept: right after its unchoke it flaps choke / unchoke 10,000 times (each choke
-- discards the requests in flight, BEP 3), ends unchoked and serves.
M.seeder.flapper = { fast = false, delay = M.KEPT_DELAY, has = function(i) return i % 2 == 1 end,
  on_ready = function(cx)
    mark_bad(cx)
    return string.rep(enc{ type = "choke" } .. enc{ type = "unchoke" }, M.FLOOD)
  end,
  on_request = good_piece }

--- Run hostile seeds until until() is true or `secs` pass. servers: list of
-- { mode = NAME, port = N [, host = "127.0.0.x"] } (listening on host:port, by default
-- 127.0.0.1). Each server gets
-- .conns, a list of connection records. tick(): called about every 0.1 s.
function M.serve(ctx, servers, secs, until_fn, tick)
  local deadline = now() + secs
  local socks, by_sock = {}, {}
  for _, sv in ipairs(servers) do
    sv.listener = assert(socket.bind(sv.host or "127.0.0.1", sv.port))
    sv.listener:settimeout(0)
    sv.conns = {}
    socks[#socks + 1] = sv.listener
    by_sock[sv.listener] = { server = sv }
  end
  local function send_all(cx, bytes)
    cx.sock:settimeout(M.WAIT)
    local ok = cx.sock:send(bytes)
    return ok ~= nil
  end
  local function close_cx(cx, by_peer)
    if cx.rec.closed_at then return end
    cx.rec.closed_at, cx.rec.closed_by_peer = now(), by_peer
    cx.sock:close()
    by_sock[cx.sock] = nil
    for i, s in ipairs(socks) do if s == cx.sock then table.remove(socks, i) break end end
  end
  local last_tick, pending = 0, {}
  while now() < deadline and not (until_fn and until_fn()) do
    local ready = socket.select(socks, nil, 0.05)
    for _, s in ipairs(ready) do
      local e = by_sock[s]
      if e and e.server and s == e.server.listener then
        local c = s:accept()
        if c then
          c:setoption("tcp-nodelay", true)
          local rec = { opened_at = now(), requests = 0, blocks = 0, bad = 0, after_bad = 0 }
          e.server.conns[#e.server.conns + 1] = rec
          local cx = { sock = c, rec = rec, ctx = ctx, mode = M.seeder[e.server.mode],
            dec = bt.wire.decoder{ handshake = true } }
          by_sock[c] = cx
          socks[#socks + 1] = c
        end
      elseif e then
        local cx = e
        cx.sock:settimeout(0)
        local data, err, partial = cx.sock:receive(1 << 20)
        data = data or partial
        local out = {}
        if data and #data > 0 then
          local msgs = cx.dec:feed(data)
          if not msgs then
            close_cx(cx, false)
            msgs = {}
          end
          for _, m in ipairs(msgs) do
            if m.type == "handshake" then
              out[#out + 1] = bt.wire.handshake{ info_hash = ctx.info_hash, peer_id = M.peer_id(), fast = cx.mode.fast }
              out[#out + 1] = enc{ type = "bitfield",
                bits = cx.mode.has and bits_of(ctx.npieces, cx.mode.has) or full_bits(ctx.npieces) }
              cx.unchoke_at = now() + (cx.mode.delay or 0)
              pending[#pending + 1] = cx
            elseif m.type == "request" then
              cx.rec.requests = cx.rec.requests + 1
              out[#out + 1] = cx.mode.on_request(cx, m.index, m.begin, m.length)
            end
          end
        end
        if #out > 0 and not cx.rec.closed_at and not send_all(cx, table.concat(out)) then close_cx(cx, true) end
        if err and err ~= "timeout" then close_cx(cx, true) end
      end
    end
    for i = #pending, 1, -1 do   -- unchoke (and the mode's opening) once its delay is over
      local cx = pending[i]
      if cx.rec.closed_at then
        table.remove(pending, i)
      elseif now() >= cx.unchoke_at then
        table.remove(pending, i)
        local out = enc{ type = "unchoke" } .. (cx.mode.on_ready and cx.mode.on_ready(cx) or "")
        if not send_all(cx, out) then close_cx(cx, true) end
      end
    end
    if tick and now() - last_tick >= 0.1 then last_tick = now(); tick() end
  end
  for s, e in pairs(by_sock) do
    if e.rec then close_cx(e, false) end
    s:close()
  end
end

-- ---------------------------------------------------------------- script mode

if arg and arg[0] and arg[0]:match("hostile%.lua$") and arg[1] then
  local name, torrent, datafile, port = arg[1], arg[2], arg[3], tonumber(arg[4])
  math.randomseed(port * 7919 + #name)
  local fn = assert(M.seed[name], "no scenario " .. tostring(name))
  local r = fn(M.context(torrent, datafile, port))
  local keys = {}
  for k in pairs(r) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = ("%s=%s"):format(k, tostring(r[k])) end
  print(table.concat(out, " "))
  os.exit(0)
end

return M
