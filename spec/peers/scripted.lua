-- spec/peers/scripted.lua: N scripted peers for spec/fake_engine_spec.lua, in one
-- process (bt.wire + lua-socket). For tests only: every socket is on 127.0.0.1,
-- and it exits by itself after LIFETIME seconds or when its control connection
-- closes, so nothing outlives a spec.
--
--   lua5.4 spec/peers/scripted.lua ENGINE_PORT CONTROL_PORT INFO_HASH_HEX LIFETIME \
--          PEER_ID_HEX BITFIELD_HEX [PEER_ID_HEX BITFIELD_HEX ...]
--
-- It first connects to CONTROL_PORT (the spec listens there), then, one peer after
-- the other, dials ENGINE_PORT and sends the handshake (all reserved bits zero: no
-- BEP 6 or 10), the peer's bitfield and unchoke. After that the peers only read and
-- discard what the engine sends; they never send a block. On the control connection
-- the spec sends lines "close K" (K 1-based): peer K's connection is closed, and the
-- helper answers "closed K".
local bt = require "bt"
local socket = require "socket"

local engine_port, control_port = tonumber(arg[1]), tonumber(arg[2])
local info_hash_hex, lifetime = arg[3], tonumber(arg[4])
local deadline = socket.gettime() + lifetime

local function unhex(s)
  return (s:gsub("..", function(h) return string.char(tonumber(h, 16)) end))
end

local function send_all(sock, data)
  sock:settimeout(5)
  local i = 1
  while i <= #data do
    local n, err, last = sock:send(data, i)
    if n then
      i = n + 1
    elseif err == "timeout" then
      i = last + 1
    else
      return nil, err
    end
  end
  return true
end

local control = socket.tcp()
control:settimeout(5)
assert(control:connect("127.0.0.1", control_port))

local peers = {}   -- peers[k] = socket, or false once closed
for k = 1, (#arg - 4) // 2 do
  local id, bits = unhex(arg[3 + 2 * k]), unhex(arg[4 + 2 * k])
  local c = socket.tcp()
  c:settimeout(5)
  assert(c:connect("127.0.0.1", engine_port))
  assert(send_all(c, bt.wire.handshake{ info_hash = unhex(info_hash_hex), peer_id = id }
    .. bt.wire.encode{ type = "bitfield", bits = bits } .. bt.wire.encode{ type = "unchoke" }))
  c:settimeout(0)
  peers[k] = c
end
control:settimeout(0)

local pending = ""
while socket.gettime() < deadline do
  local watch = { control }
  for k = 1, #peers do if peers[k] then watch[#watch + 1] = peers[k] end end
  local ready = socket.select(watch, nil, 0.1)
  for _, sock in ipairs(ready) do
    if sock == control then
      local data, err, part = control:receive(4096)
      data = data or part
      if err == "closed" then os.exit(0) end
      pending = pending .. (data or "")
      for line in pending:gmatch("([^\n]*)\n") do
        local k = tonumber(line:match("^close (%d+)$"))
        if k and peers[k] then
          peers[k]:close()
          peers[k] = false
          assert(send_all(control, "closed " .. k .. "\n"))
          control:settimeout(0)
        end
      end
      pending = pending:match("[^\n]*$")
    else
      local _, err = sock:receive(65536)   -- discard whatever the engine sends
      if err == "closed" then
        for k = 1, #peers do if peers[k] == sock then peers[k] = false end end
        sock:close()
      end
    end
  end
end
os.exit(0)
