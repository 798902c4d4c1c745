-- spec/peers/seed.lua: a small seeder in Lua (bt.wire + lua-socket) that can
-- misbehave on purpose. For tests only; listens on 127.0.0.1 (env SEED_HOST: another
-- 127.x address), exits by itself
-- after LIFETIME seconds so nothing outlives a spec.
--
--   lua5.4 spec/peers/seed.lua MODE PORT TORRENT DATAFILE
-- MODE: good      serve every request
--       corrupt   flip a byte in every block it sends
--       stall     unchoke, answer the first STALL_AFTER requests, then go silent
--       oversized send a message whose length prefix is far past any limit
--       badfield  send a bitfield one byte too long
--       choker    never unchoke (requests must not be sent; the peer stays)
--       kaclose   like choker, and close the connection when a keep-alive arrives
--       junk      answer each request with random, correctly framed messages of random ids,
--                 lengths and fields (pieces with wrong offsets, haves past the end...)
--       half      have a random half of the pieces (fixed by the port), serve only those
--       reqq4     announce reqq=4 (BEP 10), answer requests in batches every 50 ms, and
--                 drop the connection if more than 4 are ever outstanding
local bt = require "bt"
local socket = require "socket"

local mode, port, torrent, datafile = arg[1], tonumber(arg[2]), arg[3], arg[4]
local LIFETIME = tonumber(os.getenv("SEED_LIFETIME") or "60")
local STALL_AFTER = 8
local REQQ = 4

local function readall(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local m = assert(bt.meta_parse(readall(torrent)))
local data = readall(datafile)
local npieces = m.num_pieces or #m:info_value("pieces") // 20
local plen = m.piece_length

-- which pieces this seed claims: all, or (mode "half") a random half fixed by the port
local has = {}
do
  local x = port
  for i = 0, npieces - 1 do
    x = (x * 1103515245 + 12345) % 2147483648
    has[i] = mode ~= "half" or (x >> 16) % 2 == 0
  end
end

local function bitfield_bytes(extra)
  local n = (npieces + 7) // 8
  local bytes = {}
  for i = 1, n do bytes[i] = 0 end
  for i = 0, npieces - 1 do
    if has[i] then bytes[i // 8 + 1] = bytes[i // 8 + 1] | (0x80 >> (i % 8)) end
  end
  local s = string.char(table.unpack(bytes))
  return s .. string.rep("\0", extra or 0)
end

local srv = assert(socket.bind(os.getenv("SEED_HOST") or "127.0.0.1", port))
srv:settimeout(0)
local clients = {}
local deadline = socket.gettime() + LIFETIME
math.randomseed(tonumber(os.getenv("SEED_RANDOM") or "") or (os.time() * 65536 + port))   -- distinct peer ids
local my_id = "-LS0001-" .. string.format("%012d", math.random(0, 999999999))

local function send(c, s)
  local i = 1
  c.sock:settimeout(5)
  while i <= #s do
    local n, err, last = c.sock:send(s, i)
    if not n then
      if err ~= "timeout" then return false end
      i = last + 1
    else
      i = n + 1
    end
  end
  c.sock:settimeout(0)
  return true
end

local function on_msg(c, msg)
  if msg.type == "handshake" then
    if msg.info_hash ~= m.info_hash then return false end
    send(c, bt.wire.handshake{ info_hash = m.info_hash, peer_id = my_id, extensions = true })
    if mode == "oversized" then
      send(c, string.pack(">I4", 0x7fffff00) .. "\7")
      return true
    end
    if mode == "reqq4" then
      send(c, bt.wire.encode{ type = "extended", id = 0, payload = "d4:reqqi" .. REQQ .. "ee" })
    end
    send(c, bt.wire.encode{ type = "bitfield", bits = bitfield_bytes(mode == "badfield" and 1 or 0) })
    if mode ~= "choker" and mode ~= "kaclose" then send(c, bt.wire.encode{ type = "unchoke" }) end
  elseif msg.type == "keepalive" and mode == "kaclose" then
    return false
  elseif msg.type == "request" and mode == "junk" then
    local r = math.random(1, 6)
    local out
    if r == 1 then      -- a piece at a random place, of a random size
      local len = math.random(0, 16384)
      out = string.pack(">I4BI4I4", 9 + len, 7, math.random(0, npieces + 2), math.random(0, plen + 100)) ..
        string.rep("x", len)
    elseif r == 2 then  -- have, maybe past the end
      out = string.pack(">I4BI4", 5, 4, math.random(0, npieces * 2))
    elseif r == 3 then  -- any id with a random payload
      local len = math.random(0, 64)
      local bytes = {}
      for i = 1, len do bytes[i] = string.char(math.random(0, 255)) end
      out = string.pack(">I4B", 1 + len, math.random(0, 40)) .. table.concat(bytes)
    elseif r == 4 then  -- choke / unchoke flapping
      out = string.pack(">I4B", 1, math.random(0, 1))
    elseif r == 5 then  -- the right block with one byte flipped
      local off = msg.index * plen + msg.begin
      local block = data:sub(off + 1, off + msg.length)
      out = bt.wire.encode{ type = "piece", index = msg.index, begin = msg.begin,
        block = string.char((block:byte(1) + 1) % 256) .. block:sub(2) }
    else                -- an extended message with junk bencode
      out = string.pack(">I4BB", 2 + 5, 20, 0) .. "d1:x"
    end
    send(c, out)
  elseif msg.type == "request" and mode == "reqq4" then
    c.pending[#c.pending + 1] = msg
    if #c.pending > REQQ then
      io.stderr:write("reqq4: ", #c.pending, " requests outstanding\n")
      return false
    end
  elseif msg.type == "request" and not has[msg.index] then
    return false   -- asked for a piece it never announced: the engine broke the rules
  elseif msg.type == "request" then
    c.served = c.served + 1
    if mode == "stall" and c.served > STALL_AFTER then return true end
    if mode == "choker" then return true end
    local off = msg.index * plen + msg.begin
    local block = data:sub(off + 1, off + msg.length)
    if mode == "corrupt" then
      block = string.char((block:byte(1) + 1) % 256) .. block:sub(2)
    end
    send(c, bt.wire.encode{ type = "piece", index = msg.index, begin = msg.begin, block = block })
  end
  return true
end

while socket.gettime() < deadline do
  local conn = srv:accept()
  if conn then
    conn:settimeout(0)
    clients[#clients + 1] = { sock = conn, dec = bt.wire.decoder{ handshake = true }, served = 0,
      pending = {}, last_batch = socket.gettime() }
  end
  local socks = {}
  for _, c in ipairs(clients) do socks[#socks + 1] = c.sock end
  socks[#socks + 1] = srv
  local ready = socket.select(socks, nil, 0.05)
  for _, c in ipairs(clients) do   -- reqq4: answer what is pending every 50 ms
    if #c.pending > 0 and socket.gettime() - c.last_batch >= 0.05 then
      for _, r in ipairs(c.pending) do
        local off = r.index * plen + r.begin
        send(c, bt.wire.encode{ type = "piece", index = r.index, begin = r.begin,
          block = data:sub(off + 1, off + r.length) })
      end
      c.pending = {}
      c.last_batch = socket.gettime()
    end
  end
  for k = #clients, 1, -1 do
    local c = clients[k]
    if ready[c.sock] then
      local s, err, partial = c.sock:receive(65536)
      s = s or partial
      local keep = err ~= "closed"
      if s and #s > 0 then
        local msgs = c.dec:feed(s)
        if not msgs then keep = false else
          for _, msg in ipairs(msgs) do
            if not on_msg(c, msg) then keep = false; break end
          end
        end
      end
      if not keep then c.sock:close(); table.remove(clients, k) end
    end
  end
end
