-- spec/peers/badreq.lua: a leecher in Lua (bt.wire + lua-socket) that sends a seed
-- requests it must not serve, then one well-formed "sentinel" request to see whether the
-- connection still works. For tests of the upload path only.
--
--   lua5.4 spec/peers/badreq.lua MODE TORRENT PORT [SIZE]
-- MODE: past_end     a piece past the end of the torrent
--       past_piece   begin+length past the end of a piece
--       at_piece_end begin at the end of a piece
--       past_last    past the end of the short last piece
--       oversized    a request for SIZE bytes (default 16 KiB + 1)
--       choked       requests sent before we are unchoked (we are not even interested yet)
--       flood        FLOOD requests at once, more than the seed's reqq of 500, from a peer
--                    that did not negotiate BEP 10 (so was never told the reqq)
--       flood_ext    the same after a BEP 10 handshake: the peer was told the reqq
-- Prints one line: "served=N bad_served=N closed=BOOL sentinel=BOOL" where served counts
-- every piece message, bad_served those matching a bad request, sentinel whether a
-- well-formed request sent last was answered (false when the seed closed first).
local bt = require "bt"
local socket = require "socket"

local mode, torrent, port, size = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4] or 16385)
local FLOOD = 700            -- well past the 500 requests the seed announces as reqq
local WAIT = 10              -- seconds any single wait may take
local QUIET = 1.5            -- seconds without a reply after which we call a request ignored
local BLOCK = 16384

local function readall(p)
  local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s
end
local m = assert(bt.torrent.load(readall(torrent)))
local npieces, plen = m.num_pieces, m.piece_length
local last = npieces - 1

local sock = assert(socket.connect("127.0.0.1", port))
sock:settimeout(5)
sock:send(bt.wire.handshake{ info_hash = m.info_hash, peer_id = "-BQ0001-" .. string.rep("7", 12),
  extensions = mode == "flood_ext" })
if mode == "flood_ext" then   -- BEP 10: an empty extension handshake is enough to be told reqq
  sock:send(bt.wire.encode{ type = "extended", id = 0, payload = "de" })
end
-- 128 KiB blocks parse, so an oversized answer would be seen rather than kill the decoder
local dec = bt.wire.decoder{ handshake = true, max_block = 131072 }

local state = { unchoked = false, closed = false, pieces = {} }
-- Read for up to `secs`, or until done() says so. Records every piece message.
local function pump(secs, done)
  local deadline = socket.gettime() + secs
  while socket.gettime() < deadline and not state.closed do
    if done and done() then return true end
    sock:settimeout(0.05)
    local data, err, partial = sock:receive(65536)
    data = data or partial
    if data and #data > 0 then
      local msgs, derr = dec:feed(data)
      assert(msgs, "decoder: " .. tostring(derr))
      for _, msg in ipairs(msgs) do
        if msg.type == "unchoke" then state.unchoked = true
        elseif msg.type == "choke" then state.unchoked = false
        elseif msg.type == "piece" then
          state.pieces[#state.pieces + 1] = { index = msg.index, begin = msg.begin, length = #msg.block }
        end
      end
    end
    if err == "closed" then state.closed = true end
  end
  return done and done() or false
end
local function send(msg)
  sock:settimeout(5)
  local ok, err = sock:send(bt.wire.encode(msg))
  if not ok and err == "closed" then state.closed = true end
end
local function request(index, begin, length)
  send{ type = "request", index = index, begin = begin, length = length }
end

pump(1)   -- handshake, extension handshake, bitfield
local bad = {}   -- requests that must not be served: "index:begin:length"
local function badreq(i, b, l) bad[#bad + 1] = ("%d:%d:%d"):format(i, b, l); request(i, b, l) end

if mode == "choked" then
  assert(not state.unchoked, "unchoked before we were interested: nothing to test")
  badreq(0, 0, BLOCK)
  badreq(1, BLOCK, BLOCK)
  pump(QUIET)
end
send{ type = "interested" }
assert(pump(WAIT, function() return state.unchoked end), "never unchoked")
local before = #state.pieces

if mode == "past_end" then
  badreq(npieces, 0, BLOCK)
  pump(QUIET)
elseif mode == "past_piece" then
  badreq(0, plen - BLOCK // 2, BLOCK)
  pump(QUIET)
elseif mode == "at_piece_end" then
  badreq(0, plen, BLOCK)
  pump(QUIET)
elseif mode == "past_last" then
  badreq(last, m:piece_size(last) - 1, 2)
  pump(QUIET)
elseif mode == "oversized" then
  badreq(0, 0, size)
  pump(QUIET)
elseif mode == "flood" or mode == "flood_ext" then
  local parts = {}
  local per = plen // BLOCK
  for i = 0, FLOOD - 1 do   -- valid blocks, repeated once the torrent runs out
    local k = i % (npieces * per)
    local idx, b = k // per, (k % per) * BLOCK
    if idx == last then idx, b = 0, 0 end
    parts[#parts + 1] = bt.wire.encode{ type = "request", index = idx, begin = b, length = BLOCK }
  end
  sock:settimeout(5)
  sock:send(table.concat(parts))   -- one write: the seed sees them all before it serves
  pump(WAIT, function() return #state.pieces - before >= FLOOD end)
  pump(QUIET)   -- anything late
end
local flood_served = #state.pieces - before
local flooding = mode == "flood" or mode == "flood_ext"

-- the sentinel: piece 0 begin 0 was never a bad request in any mode (except choked, below)
local sent_at = #state.pieces
if not state.closed then request(0, 2 * BLOCK, BLOCK) end
local sentinel = pump(WAIT, function()
  for i = sent_at + 1, #state.pieces do
    local p = state.pieces[i]
    if p.index == 0 and p.begin == 2 * BLOCK then return true end
  end
  return false
end)

local bad_served = 0
for _, p in ipairs(state.pieces) do
  for _, b in ipairs(bad) do
    if b == ("%d:%d:%d"):format(p.index, p.begin, p.length) then bad_served = bad_served + 1 end
  end
end
print(("served=%d bad_served=%d closed=%s sentinel=%s"):format(
  flooding and flood_served or #state.pieces, bad_served, tostring(state.closed), tostring(sentinel)))
sock:close()
