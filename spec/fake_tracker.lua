-- A fake HTTP tracker for spec/tracker_spec.lua, run as a child process:
--   lua5.4 spec/fake_tracker.lua PORT
-- Serves canned replies by path on 127.0.0.1:PORT, one request per connection.
-- It stops by itself after LIFETIME seconds so a crashed test run leaves nothing.
local socket = require "socket"

local port = assert(tonumber(arg[1]), "usage: fake_tracker.lua PORT")
local LIFETIME = tonumber(arg[2]) or 120

local function benc(v)
  local t = type(v)
  if t == "number" then return "i" .. math.tointeger(v) .. "e" end
  if t == "string" then return #v .. ":" .. v end
  if v[1] ~= nil or next(v) == nil then
    local out = {}
    for _, x in ipairs(v) do out[#out + 1] = benc(x) end
    return "l" .. table.concat(out) .. "e"
  end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = benc(k) .. benc(v[k]) end
  return "d" .. table.concat(out) .. "e"
end

local function ip4(a, b, c, d, p) return string.char(a, b, c, d, p >> 8, p & 255) end

local routes = {}
routes["/failure"] = function() return 200, benc { ["failure reason"] = "torrent not registered" } end
routes["/warning"] = function()
  return 200, benc { ["warning message"] = "slow down", interval = 900, ["min interval"] = 60,
                     complete = 3, incomplete = 4, ["tracker id"] = "tid-42",
                     peers = ip4(10, 0, 0, 1, 6881) }
end
-- for the re-announce schedule: interval 1 s, but never sooner than 2 s
routes["/fastmin"] = function()
  return 200, benc { interval = 1, ["min interval"] = 2, peers = "" }
end
routes["/dict"] = function()
  return 200, benc { interval = 1800, peers = {
    { ip = "192.168.1.2", port = 51413, ["peer id"] = string.rep("A", 20) },
    { ip = "2001:db8::1", port = 6882 },
    { ip = "tracker.example.org", port = 6883 },   -- a DNS name: dropped
    { ip = "10.0.0.9", port = 0 },                 -- bad port: dropped
    { ip = "10.0.0.10", port = 6884 },
  } }
end
routes["/peers6"] = function()
  local v6 = string.rep("\0", 15) .. "\1" .. string.char(0x1a, 0xe1)   -- [::1]:6881
  local v6b = "\32\1\13\184" .. string.rep("\0", 11) .. "\2" .. string.char(0, 80)  -- [2001:db8::2]:80
  return 200, benc { interval = 600, peers = ip4(127, 0, 0, 1, 7000), peers6 = v6 .. v6b }
end
-- one peer, 127.0.0.1:N, named by the announce URL's query (/topeer?to=N&info_hash=...)
routes["/topeer"] = function(target)
  return 200, benc { interval = 600, peers = ip4(127, 0, 0, 1, tonumber(target:match("[?&]to=(%d+)")) or 1) }
end
routes["/garbage"] = function() return 200, "<html><body>It works!</body></html>" end
routes["/500"] = function() return 500, "Internal Server Error" end
routes["/refusal400"] = function() return 400, benc { ["failure reason"] = "invalid info_hash" } end
routes["/trailing"] = function() return 200, benc { interval = 5, peers = "" } .. "\n<!-- junk -->" end
routes["/echo"] = function(target, headers)
  return 200, benc { ["failure reason"] = "GET " .. target .. " UA=" .. (headers["user-agent"] or "") }
end
routes["/redirect"] = function() return 302, "", { Location = "/dict" } end
routes["/redirloop"] = function() return 302, "", { Location = "/redirloop" } end
routes["/redirfile"] = function() return 302, "", { Location = "file:///etc/passwd" } end
local BIG = 3 * 1024 * 1024   -- past the client's 2 MiB cap
routes["/big"] = function() return 200, "d5:peers" .. BIG .. ":" .. string.rep("x", BIG) .. "e", nil, true end
routes["/bigcl"] = function() return 200, "d5:peers" .. BIG .. ":" .. string.rep("x", BIG) .. "e" end

local server = assert(socket.bind("127.0.0.1", port))
server:settimeout(0.1)
-- Clients of /hang: never answered, kept open. Only stored, never read (hence the
-- luacheck exception): holding them keeps the sockets from being collected and closed.
local hung = {}   -- luacheck: ignore 241
local deadline = socket.gettime() + LIFETIME

while socket.gettime() < deadline do
  local c = server:accept()
  if c then
    c:settimeout(2)
    local line = c:receive("*l")
    local headers = {}
    while line do
      local h = c:receive("*l")
      if not h or h == "" then break end
      local k, v = h:match("^([^:]+):%s*(.*)$")
      if k then headers[k:lower()] = v end
    end
    local target = line and line:match("^GET (%S+) HTTP") or "/"
    local path = target:match("^[^?]*")
    if path == "/hang" then
      hung[#hung + 1] = c
    else
      local route = routes[path]
      local status, body, extra, no_length = 404, "not found"
      if route then status, body, extra, no_length = route(target, headers) end
      local head = { "HTTP/1.1 " .. status .. " X", "Connection: close", "Content-Type: text/plain" }
      if not no_length then head[#head + 1] = "Content-Length: " .. #body end
      for k, v in pairs(extra or {}) do head[#head + 1] = k .. ": " .. v end
      c:send(table.concat(head, "\r\n") .. "\r\n\r\n")
      c:send(body)   -- may fail when the client hangs up early (/big): fine
      c:close()
    end
  end
end
