-- spec/peers/holders.lua: N connections that hold a slot and give nothing (for
-- spec/admission_spec.lua). On 127.0.0.x only; it exits by itself after LIFETIME s.
--   lua5.4 spec/peers/holders.lua MODE PORT INFO_HASH_HEX N LIFETIME [SOURCE_IP]
-- MODE interested: each sends the handshake and interested, then a keep-alive every
--                  second, reads and discards everything, and never requests.
--      silent:     each connects and sends nothing; a connection the other side closes
--                  is opened again at once (a flood that keeps the handshake queue full).
-- SOURCE_IP (default 127.0.0.1): the address the connections come from (any 127.x).
-- Prints "open K" whenever the number of open connections changes, "reopened K" in
-- silent mode (total reconnections), and "closed K" for connections closed on it.
local bt = require "bt"
local socket = require "socket"

local mode, port, hash_hex = arg[1], tonumber(arg[2]), arg[3]
local n, lifetime, src = tonumber(arg[4]), tonumber(arg[5]), arg[6] or "127.0.0.1"
assert(mode == "interested" or mode == "silent", "mode: interested or silent")
local deadline = socket.gettime() + lifetime
local hash = hash_hex:gsub("..", function(h) return string.char(tonumber(h, 16)) end)

local function say(...) io.stdout:write(table.concat({ ... }, " "), "\n"); io.stdout:flush() end

local function open(k)
  local c = assert(socket.tcp())
  assert(c:bind(src, 0))
  c:settimeout(5)
  if not c:connect("127.0.0.1", port) then c:close(); return nil end
  if mode == "interested" then
    local id = ("-HO%03d-%04d%09d"):format(tonumber(src:match("(%d+)$")), k, os.time() % 1000000000)
    c:send(bt.wire.handshake{ info_hash = hash, peer_id = id } .. bt.wire.encode{ type = "interested" })
  end
  c:settimeout(0)
  return c
end

local conns, reopened, closed, last_open, last_reopened = {}, 0, 0, -1, 0
for k = 1, n do
  conns[k] = open(k) or false
  if mode == "interested" then socket.sleep(0.1) end   -- one handshake at a time, as one client would
end
local next_keepalive = socket.gettime() + 1
while socket.gettime() < deadline do
  local list = {}
  for k = 1, n do if conns[k] then list[#list + 1] = conns[k] end end
  local readable = socket.select(list, nil, 0.2)
  for _, c in ipairs(readable or {}) do
    local _, err, partial = c:receive(65536)
    if err == "closed" or (err ~= "timeout" and not partial) then
      for k = 1, n do
        if conns[k] == c then
          c:close()
          closed = closed + 1
          say("closed", closed)
          conns[k] = false
          if mode == "silent" then
            conns[k] = open(k) or false
            reopened = reopened + 1
          end
        end
      end
    end
  end
  if mode == "interested" and socket.gettime() >= next_keepalive then
    next_keepalive = socket.gettime() + 1
    for k = 1, n do if conns[k] then conns[k]:send(bt.wire.encode{ type = "keepalive" }) end end
  end
  local count = 0
  for k = 1, n do if conns[k] then count = count + 1 end end
  if count ~= last_open then say("open", count); last_open = count end
  if reopened ~= last_reopened then say("reopened", reopened); last_reopened = reopened end
end
for k = 1, n do if conns[k] then conns[k]:close() end end
