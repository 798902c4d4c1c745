-- spec/peers/meta_peer.lua: a peer that serves (or mangles) a torrent's metadata over
-- ut_metadata (BEP 9), for spec/magnet_spec.lua. For tests only: it listens on
-- 127.0.0.1, serves one connection at a time and exits by itself after LIFETIME s.
--
--   lua5.4 spec/peers/meta_peer.lua MODE PORT TORRENT LIFETIME [HOST]
--
-- HOST (default 127.0.0.1): another 127.x is another host to bans. A TORRENT named *.info
-- holds a raw info dictionary instead (served as it is, whatever it says).
-- It answers the handshake with the BEP 10 bit set, sends nothing about
-- pieces (it has none to give), then its extension handshake (ut_metadata under id 2,
-- metadata_size the torrent's info dictionary's), and answers every ut_metadata request
-- according to MODE:
--   good     every piece as it should be
--   short    every piece one byte short
--   total    total_size one more than metadata_size
--   corrupt  the right sizes, one byte of the info dictionary flipped (fails the info-hash)
--   huge     metadata_size 2^31 in the handshake; requests, if any, unanswered
--   reject   a reject for every request
-- It logs one line per request it got ("request N") on stdout.
local bt = require "bt"
local socket = require "socket"

local mode, port, torrent, lifetime, host = arg[1], tonumber(arg[2]), arg[3], tonumber(arg[4]), arg[5] or "127.0.0.1"
local deadline = socket.gettime() + lifetime
local f = assert(io.open(torrent, "rb"))
local raw = f:read("a")
f:close()
local m = torrent:match("%.info$") and { info_hash = bt.sha1(raw) } or assert(bt.meta_parse(raw))
local info = m.info_bytes and m:info_bytes() or raw
if mode == "corrupt" then
  local k = #info // 2
  info = info:sub(1, k - 1) .. string.char((info:byte(k) + 1) % 256) .. info:sub(k + 1)
end
local size = mode == "huge" and 2 ^ 31 // 1 or #info

local function send(c, s)
  local i = 1
  while i <= #s do
    local n, err, last = c:send(s, i)
    if n then i = n + 1 elseif err == "timeout" then i = last + 1 else return nil end
  end
  return true
end

local function ext(id, payload)
  return bt.wire.encode { type = "extended", id = id, payload = payload }
end

local function serve(c, remote_id)
  local dec = bt.wire.decoder { handshake = true }
  while socket.gettime() < deadline do
    local data, err, part = c:receive(4096)
    data = data or part
    if data and #data > 0 then
      local msgs = dec:feed(data)
      if not msgs then return end
      for _, msg in ipairs(msgs) do
        if msg.type == "handshake" then
          send(c, bt.wire.handshake { info_hash = m.info_hash, peer_id = bt.peer_id(), extensions = true })
          send(c, ext(0, bt.wire.ext_handshake { m = { ut_metadata = true }, metadata_size = size, v = "meta_peer" }))
        elseif msg.type == "extended" and msg.id == 0 then
          remote_id = (bt.wire.parse_ext_handshake(msg.payload) or { m = {} }).m.ut_metadata
        elseif msg.type == "extended" and msg.id == 2 and remote_id then
          local piece = tonumber(msg.payload:match("5:piecei(%d+)e"))
          local kind = tonumber(msg.payload:match("8:msg_typei(%d+)e"))
          if kind == 0 and piece then
            io.stdout:write("request ", piece, "\n")
            io.stdout:flush()
            if mode == "reject" then
              send(c, ext(remote_id, ("d8:msg_typei2e5:piecei%dee"):format(piece)))
            elseif mode ~= "huge" then
              local chunk = info:sub(piece * 16384 + 1, piece * 16384 + 16384)
              if mode == "short" then chunk = chunk:sub(1, -2) end
              local total = mode == "total" and size + 1 or size
              send(c, ext(remote_id, ("d8:msg_typei1e5:piecei%de10:total_sizei%dee"):format(piece, total) .. chunk))
            end
          end
        end
      end
    elseif err == "closed" then
      return
    end
  end
end

local srv = assert(socket.bind(host, port))
srv:settimeout(0.2)
while socket.gettime() < deadline do
  local c = srv:accept()
  if c then
    c:settimeout(0.2)
    serve(c)
    c:close()
  end
end
