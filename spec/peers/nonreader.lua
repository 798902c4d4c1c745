-- spec/peers/nonreader.lua: a peer that asks for blocks and never reads the answers
-- (for spec/upload_spec.lua). On 127.0.0.1 only; it exits by itself after LIFETIME s.
--   lua5.4 spec/peers/nonreader.lua PORT INFO_HASH_HEX PIECES PIECE_LENGTH LIFETIME
-- It sends the handshake and interested, reads until the seed unchokes it, then
-- requests every 16 KiB block of every piece (at most 400: under any reqq) and sleeps
-- with a 4 KiB receive buffer it never drains.
local bt = require "bt"
local socket = require "socket"

local port, hash_hex = tonumber(arg[1]), arg[2]
local pieces, plen, lifetime = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
local deadline = socket.gettime() + lifetime
local hash = hash_hex:gsub("..", function(h) return string.char(tonumber(h, 16)) end)

local c = assert(socket.tcp())
pcall(c.setoption, c, "recv-buffer-size", 4096)
c:settimeout(5)
assert(c:connect("127.0.0.1", port))
local _, lport = c:getsockname()   -- unique among concurrent nonreaders: several may run at once
local id = ("-NR0001-%012d"):format(tonumber(lport))
assert(c:send(bt.wire.handshake{ info_hash = hash, peer_id = id } .. bt.wire.encode{ type = "interested" }))
local dec = bt.wire.decoder{ handshake = true }
local unchoked = false
while not unchoked and socket.gettime() < deadline do
  c:settimeout(0.1)
  local data, err, partial = c:receive(65536)
  data = data or partial
  if data and #data > 0 then
    for _, msg in ipairs(assert(dec:feed(data))) do
      if msg.type == "unchoke" then unchoked = true end
    end
  end
  if err == "closed" then os.exit(1) end
end
local out, n = {}, 0
for i = 0, pieces - 1 do
  for begin = 0, plen - 1, 16384 do
    if n < 400 then
      out[#out + 1] = bt.wire.encode{ type = "request", index = i, begin = begin, length = 16384 }
      n = n + 1
    end
  end
end
c:settimeout(5)
assert(c:send(table.concat(out)))
io.stdout:write("requested ", n, "\n")
io.stdout:flush()
while socket.gettime() < deadline do socket.sleep(0.2) end
c:close()
