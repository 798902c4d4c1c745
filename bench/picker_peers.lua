--- Many idle peers for bench/picker_bench.lua: opens TCP connections to a bt-lua
-- session on 127.0.0.1, sends the handshake (reserved bytes all zero: no BEP 6, no
-- BEP 10), a bitfield and `unchoke`, and then never sends a block. It keeps reading
-- (and discarding, after counting requests) what the engine sends, so the engine's
-- output never blocks, and sends a keep-alive every 30 s.
--   lua5.4 bench/picker_peers.lua PORT INFOHASH_HEX PIECES SEEDS HALVES RNG_SEED DEADLINE_S
-- Seeds have every piece. Halves have each piece with probability 1/2, drawn from
-- math.random seeded with RNG_SEED (so every run and every code version sees the same
-- swarm). The seeds connect first; once each seed has been sent a request (its bitfield
-- and unchoke were processed) it pauses 1 s and then connects the halves: the driver
-- measures memory between the two groups. Exits at DEADLINE_S or when the session
-- closes every connection. Progress goes to stderr. Plain luasocket: no bt module, so
-- it is the same program whatever code version the session runs.
local socket = require "socket"

local port, hash_hex = tonumber(arg[1]), arg[2]
local npieces, nseeds, nhalves = tonumber(arg[3]), tonumber(arg[4]), tonumber(arg[5])
local rng_seed, deadline_s = tonumber(arg[6]), tonumber(arg[7]) or 300
assert(port and hash_hex and #hash_hex == 40 and npieces and nseeds and nhalves and rng_seed,
  "usage: picker_peers.lua PORT INFOHASH_HEX PIECES SEEDS HALVES RNG_SEED [DEADLINE_S]")
local deadline = socket.gettime() + deadline_s
local info_hash = hash_hex:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)

local function log(fmt, ...) io.stderr:write(("[peers %.1f] " .. fmt .. "\n"):format(socket.gettime(), ...)) end

-- bitfields --------------------------------------------------------------------
local nbytes = (npieces + 7) // 8
local spare = nbytes * 8 - npieces          -- low bits of the last byte must be zero
local last_mask = (0xFF << spare) & 0xFF

local function fix_last(s)
  if spare == 0 then return s end
  return s:sub(1, -2) .. string.char(s:byte(-1) & last_mask)
end

local seed_field = fix_last(string.rep("\255", nbytes))

math.randomseed(rng_seed)
local function half_field()
  local parts, n = {}, 0
  for _ = 1, nbytes // 8 do       -- 64 random bits at a time: each piece with probability 1/2
    n = n + 1
    parts[n] = string.pack("<i8", math.random(0))
  end
  local rest = nbytes % 8
  if rest > 0 then parts[n + 1] = string.pack("<i8", math.random(0)):sub(1, rest) end
  return fix_last(table.concat(parts))
end

local function msg(id, payload)
  payload = payload or ""
  return string.pack(">I4", #payload + 1) .. string.char(id) .. payload
end

-- connections ------------------------------------------------------------------
local conns = {}          -- { sock, buf, got_hs, requests, cancels, kind, closed }
local by_sock = {}
local open = 0

local function send_all(c, data)
  c.sock:settimeout(10)
  local i = 1
  while i <= #data do
    local last, err, partial = c.sock:send(data, i)
    if not last then
      if err ~= "timeout" or socket.gettime() > deadline then return nil, err end
      i = partial + 1
    else
      i = last + 1
    end
  end
  c.sock:settimeout(0)
  return true
end

local function close(c, why)
  if c.closed then return end
  c.closed = true
  open = open - 1
  by_sock[c.sock] = nil
  c.sock:close()
  if why then log("peer %d (%s) closed: %s", c.i, c.kind, why) end
end

-- Read what is there; parse the engine's messages to count requests.
local function drain(c)
  while true do
    local data, err, partial = c.sock:receive(65536)
    data = data or partial
    if data and #data > 0 then c.buf = c.buf .. data end
    if err == "closed" then close(c, "by the session"); break end
    if not data or #data < 65536 then break end
  end
  local pos = 1
  if not c.got_hs then
    if #c.buf < 68 then return end
    c.got_hs, pos = true, 69
  end
  while #c.buf - pos + 1 >= 4 do
    local len = string.unpack(">I4", c.buf, pos)
    if #c.buf - pos + 1 < 4 + len then break end
    if len > 0 then
      local id = c.buf:byte(pos + 4)
      if id == 6 then c.requests = c.requests + 1 elseif id == 8 then c.cancels = c.cancels + 1 end
    end
    pos = pos + 4 + len
  end
  if pos > 1 then c.buf = c.buf:sub(pos) end
end

local function pump(timeout)
  local socks = {}
  for s in pairs(by_sock) do socks[#socks + 1] = s end
  if #socks == 0 then socket.sleep(timeout) return end
  local readable = socket.select(socks, nil, timeout)
  for _, s in ipairs(readable) do
    local c = by_sock[s]
    if c then drain(c) end
  end
end

-- Connect peers [from, to] of kind `kind`, a few at a time: the session holds at most
-- 64 incoming connections in their handshake, so wait for each batch's handshakes.
local function connect_group(from, to, kind)
  local BATCH = 16
  for b = from, to, BATCH do
    local batch = {}
    for i = b, math.min(to, b + BATCH - 1) do
      local sock = assert(socket.tcp())
      sock:settimeout(10)
      local ok, err = sock:connect("127.0.0.1", port)
      if not ok then error("peer " .. i .. ": connect: " .. tostring(err)) end
      sock:setoption("tcp-nodelay", true)
      local id = ("-PB0001-%012d"):format(i)
      local c = { i = i, sock = sock, buf = "", requests = 0, cancels = 0, kind = kind }
      conns[#conns + 1], by_sock[sock], open = c, c, open + 1
      sock:settimeout(0)
      assert(send_all(c, "\19BitTorrent protocol" .. string.rep("\0", 8) .. info_hash .. id))
      batch[#batch + 1] = c
    end
    for _, c in ipairs(batch) do
      while not c.got_hs and not c.closed do
        if socket.gettime() > deadline then error("deadline while waiting for handshakes") end
        pump(0.5)
      end
      if c.closed then error("peer " .. c.i .. " closed before its handshake") end
      local field = kind == "seed" and seed_field or half_field()
      assert(send_all(c, msg(5, field) .. msg(1)))   -- bitfield, unchoke
    end
  end
end

local function wait_requests(kind)
  local t0 = socket.gettime()
  while socket.gettime() - t0 < 60 and socket.gettime() < deadline do
    local waiting = 0
    for _, c in ipairs(conns) do
      if c.kind == kind and not c.closed and c.requests == 0 then waiting = waiting + 1 end
    end
    if waiting == 0 then return true end
    pump(0.2)
  end
  log("some %s peers got no request within 60 s", kind)
end

local t0 = socket.gettime()
connect_group(1, nseeds, "seed")
wait_requests("seed")
log("%d seeds connected and asked in %.2f s", nseeds, socket.gettime() - t0)
local p0 = socket.gettime()
while socket.gettime() - p0 < 1 do pump(0.1) end
t0 = socket.gettime()
connect_group(nseeds + 1, nseeds + nhalves, "half")
wait_requests("half")
log("%d halves connected and asked in %.2f s", nhalves, socket.gettime() - t0)
print("ready")
io.stdout:flush()

local last_ka = socket.gettime()
while open > 0 and socket.gettime() < deadline do
  pump(1)
  if socket.gettime() - last_ka >= 30 then
    last_ka = socket.gettime()
    for _, c in ipairs(conns) do if not c.closed then send_all(c, "\0\0\0\0") end end
  end
end
local req, can = 0, 0
for _, c in ipairs(conns) do req, can = req + c.requests, c.cancels + can end
log("done: %d connections open, %d requests and %d cancels received", open, req, can)
for _, c in ipairs(conns) do close(c) end
