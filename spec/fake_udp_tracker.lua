-- A fake UDP tracker (BEP 15) for spec/udp_tracker_spec.lua, run as a child process:
--   lua5.4 spec/fake_udp_tracker.lua PORT [LIFETIME]
-- Connect requests are answered correctly; announce replies are chosen by the
-- announce's BEP 41 URL-data path (so the client's option is tested by every
-- case). It stops by itself after LIFETIME seconds so a crashed run leaves nothing.
--   /ok           interval 1000 + BEP 15 event, leechers = num_want, seeders = left,
--                 peers 127.0.0.1:<the request's port> and 10.0.0.2:80; over IPv6 (the
--                 same port on ::1) [::1]:<the request's port> and [2001:db8::2]:80
--   /long         the /ok reply plus 3 trailing bytes
--   /short        12 bytes of an announce reply
--   /wrongaction  a scrape reply to the announce
--   /wrongtid     a reply for another transaction, then the right one
--   /wrongtid_only  replies for other transactions only
--   /late         the /ok reply 1.5 s late
--   /error        an error reply "go away"
--   /silent       nothing (counted)
--   /count        interval = announces seen on /silent, leechers = connects seen,
--                 seeders = the last announce's URL-data length
-- A scrape is answered seeders 5, completed 7, leechers 6.
local socket = require "socket"

local port = assert(tonumber(arg[1]), "usage: fake_udp_tracker.lua PORT [LIFETIME]")
local LIFETIME = tonumber(arg[2]) or 120

local udp = assert(socket.udp())
assert(udp:setsockname("127.0.0.1", port))
udp:settimeout(0)
-- the same port on ::1 too, where the system has IPv6: announces over IPv6 get 18-byte peers
local udp6 = socket.udp6 and socket.udp6()
if udp6 and not udp6:setsockname("::1", port) then udp6:close(); udp6 = nil end
if udp6 then udp6:settimeout(0) end
local socks = { udp, udp6 }

local queue = {}   -- { at, data, ip, port }
local silent, connects, last_urldata = 0, 0, 0

local function send(data, ip, p, delay)
  queue[#queue + 1] = { at = socket.gettime() + (delay or 0), data = data, ip = ip, port = p,
                        sock = ip:find(":", 1, true) and udp6 or udp }
end

-- BEP 41 options after the 98-byte request: 0 ends, 1 is a no-op, 2 carries URL data.
local function urldata(pkt)
  local out, i = {}, 99
  while i <= #pkt do
    local kind = pkt:byte(i)
    if kind == 0 then break end
    if kind == 1 then
      i = i + 1
    else
      local len = pkt:byte(i + 1) or 0
      if kind == 2 then out[#out + 1] = pkt:sub(i + 2, i + 1 + len) end
      i = i + 2 + len
    end
  end
  return table.concat(out)
end

local function announce_reply(tid, pkt, v6)
  local left = string.unpack(">i8", pkt, 65)
  local event = string.unpack(">I4", pkt, 81)
  local numwant = string.unpack(">i4", pkt, 93)
  local rport = string.unpack(">I2", pkt, 97)
  local head = string.pack(">I4I4I4I4I4", 1, tid, 1000 + event, numwant & 0xffffffff, left & 0xffffffff)
  if v6 then   -- [::1]:<the request's port> and [2001:db8::2]:80
    return head .. string.rep("\0", 15) .. "\1" .. string.pack(">I2", rport)
      .. "\32\1\13\184" .. string.rep("\0", 11) .. "\2" .. string.char(0, 80)
  end
  return head .. string.char(127, 0, 0, 1) .. string.pack(">I2", rport) .. string.char(10, 0, 0, 2, 0, 80)
end

local deadline = socket.gettime() + LIFETIME
local function serve(pkt, ip, p)
  if pkt and #pkt >= 16 then
    local action, tid = string.unpack(">I4I4", pkt, 9)
    if action == 0 and #pkt >= 16 then
      connects = connects + 1
      send(string.pack(">I4I4I8", 0, tid, 0x0102030405060708 + connects), ip, p)
    elseif action == 2 and #pkt >= 36 then
      send(string.pack(">I4I4I4I4I4", 2, tid, 5, 7, 6), ip, p)
    elseif action == 1 and #pkt >= 98 then
      local path = urldata(pkt)
      local ok = announce_reply(tid, pkt, ip:find(":", 1, true) ~= nil)
      if path == "/ok" or path:match("^/ok%?") then
        send(ok, ip, p)
      elseif path == "/long" then
        send(ok .. "xyz", ip, p)
      elseif path == "/short" then
        send(ok:sub(1, 12), ip, p)
      elseif path == "/wrongaction" then
        send(string.pack(">I4I4I4I4I4", 2, tid, 1, 2, 3), ip, p)
      elseif path == "/wrongtid" then
        send(string.pack(">I4I4", 1, (tid + 1) & 0xffffffff) .. ok:sub(9), ip, p)
        send(ok, ip, p, 0.05)
      elseif path == "/wrongtid_only" then
        send(string.pack(">I4I4", 1, (tid + 1) & 0xffffffff) .. ok:sub(9), ip, p)
      elseif path == "/late" then
        send(ok, ip, p, 1.5)
      elseif path == "/error" then
        send(string.pack(">I4I4", 3, tid) .. "go away", ip, p)
      elseif path == "/silent" then
        silent = silent + 1
      elseif path == "/count" then
        send(string.pack(">I4I4I4I4I4", 1, tid, silent, connects, last_urldata), ip, p)
        path = nil
      else
        send(string.pack(">I4I4", 3, tid) .. "no route " .. path, ip, p)
      end
      if path then last_urldata = #path end
    end
  end
end

while socket.gettime() < deadline do
  for _, sk in ipairs(socket.select(socks, nil, 0.05)) do
    serve(sk:receivefrom())
  end
  local now, keep = socket.gettime(), {}
  for _, q in ipairs(queue) do
    if q.at <= now then q.sock:sendto(q.data, q.ip, q.port) else keep[#keep + 1] = q end
  end
  queue = keep
end
