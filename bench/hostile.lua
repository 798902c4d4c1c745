--- bench/hostile.lua: N hostile connections of one kind against 127.0.0.1:PORT, for
-- bench/load_bench.lua (spec/peers/holders.lua is the smaller one the admission spec uses).
--   lua5.4 bench/hostile.lua MODE PORT INFO_HASH_HEX N LIFETIME FIRST_HOST PER_HOST
-- MODE interested: handshake + interested, a keep-alive every KEEPALIVE s, reads and
--                  discards, never requests (holds a peer slot and wants an upload slot).
--      stalled:    handshake, then nothing ever again (reads and discards, so it sees a close).
--      silent:     connects and sends nothing (holds a place in the handshake queue).
--      reconnect:  connect, a handshake from every other one, close with a reset, again at
--                  once: each of the N slots reopens every pass over the slots.
-- A held connection (the first three) the other side closes is opened again after
-- REOPEN s, as a persistent client would: the pressure stays, without a busy loop.
-- Sources: connection k comes from host FIRST_HOST + (k-1) // PER_HOST, host h being
-- 127.1.(h // 250).(h % 250 + 1) (any 127/8 address is local on Linux); PER_HOST 0:
-- all from 127.0.0.1. N stays under ~1000: LuaSocket's select watches fds below 1024.
-- Prints one line a second and at the end, for the bench to read:
--   MODE open K opened A closed B failed C
-- (open now; connections opened; closed by the other side; connects that failed).
local bt = require "bt"
local socket = require "socket"

local mode, port, hash_hex = arg[1], tonumber(arg[2]), arg[3]
local n, lifetime = tonumber(arg[4]), tonumber(arg[5])
local first_host, per_host = tonumber(arg[6] or "0"), tonumber(arg[7] or "0")
local MODES = { interested = true, stalled = true, silent = true, reconnect = true }
assert(MODES[mode] and port and hash_hex and n and lifetime, "usage: MODE PORT HASH N LIFETIME FIRST_HOST PER_HOST")
assert(n <= 1000, "at most 1000 connections per process (select)")

local KEEPALIVE = 10       -- s between keep-alives of an idle-interested connection
local REOPEN = 1           -- s before a held connection closed on us is opened again
local CONNECT_TIMEOUT = 1  -- s; a SYN dropped on a full accept queue is resent after 1 s
local deadline = socket.gettime() + lifetime
local hash = hash_hex:gsub("..", function(h) return string.char(tonumber(h, 16)) end)

local function source(k)
  if per_host == 0 then return "127.0.0.1" end
  local h = first_host + (k - 1) // per_host
  return ("127.1.%d.%d"):format(h // 250, h % 250 + 1)
end

local opened, closed, failed, why = 0, 0, 0, {}
local function handshake(k)
  local id = ("-HX%s000-%06d%06d"):format(mode:sub(1, 1):upper(), k, opened % 1000000)
  return bt.wire.handshake{ info_hash = hash, peer_id = id }
end

local function open(k)
  local c = assert(socket.tcp())
  if mode == "reconnect" then c:setoption("linger", { on = true, timeout = 0 }) end  -- RST, no TIME_WAIT
  c:setoption("reuseaddr", true)
  local ok, err = c:bind(source(k), 0)
  if ok then
    c:settimeout(CONNECT_TIMEOUT)
    ok, err = c:connect("127.0.0.1", port)
  end
  if not ok then
    c:close()
    failed = failed + 1
    why[err] = (why[err] or 0) + 1
    return nil
  end
  opened = opened + 1
  if mode == "interested" then
    c:send(handshake(k) .. bt.wire.encode{ type = "interested" })
  elseif mode == "stalled" or (mode == "reconnect" and k % 2 == 1) then
    c:send(handshake(k))
  end
  c:settimeout(0)
  return c
end

local conns, retry_at = {}, {}   -- slot -> socket or false; slot -> time to reopen
local function report()
  local count = 0
  for k = 1, n do if conns[k] then count = count + 1 end end
  local errs = {}
  for e, c in pairs(why) do errs[#errs + 1] = ("%s: %d"):format(e, c) end
  io.stdout:write(("%s open %d opened %d closed %d failed %d (%s)\n"):format(mode, count, opened, closed, failed,
    table.concat(errs, ", ")))
  io.stdout:flush()
end

local next_report, next_keepalive = socket.gettime() + 1, socket.gettime() + KEEPALIVE
for k = 1, n do retry_at[k] = 0; conns[k] = false end
while socket.gettime() < deadline do
  local now = socket.gettime()
  if mode == "reconnect" then
    for k = 1, n do
      if conns[k] then conns[k]:close() end
      conns[k] = open(k) or false
    end
  else
    for k = 1, n do
      if not conns[k] and now >= retry_at[k] then
        conns[k] = open(k) or false
        if not conns[k] then retry_at[k] = now + REOPEN end
      end
    end
    local list, slot = {}, {}
    for k = 1, n do
      if conns[k] then list[#list + 1] = conns[k]; slot[conns[k]] = k end
    end
    local readable = socket.select(list, nil, 0.2)
    for _, c in ipairs(readable or {}) do
      local _, err, partial = c:receive(65536)
      if err == "closed" or (err ~= "timeout" and not partial) then
        local k = slot[c]
        c:close()
        closed = closed + 1
        conns[k], retry_at[k] = false, socket.gettime() + REOPEN
      end
    end
    if mode == "interested" and now >= next_keepalive then
      next_keepalive = now + KEEPALIVE
      for k = 1, n do if conns[k] then conns[k]:send(bt.wire.encode{ type = "keepalive" }) end end
    end
  end
  if now >= next_report then next_report = now + 1; report() end
end
report()
for k = 1, n do if conns[k] then conns[k]:close() end end
