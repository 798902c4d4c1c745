-- spec/peers/dht_flood.lua PORT COUNT SECONDS: send COUNT ping queries to 127.0.0.1:PORT
-- from one UDP socket, spread over SECONDS, and count the answers until a second after
-- the last; prints "sent N answered M seconds S" (S: from the first send to the last answer awaited).
local socket = require "socket"
local port, count, secs = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
local u = assert(socket.udp())
assert(u:setsockname("127.0.0.1", 0))
u:settimeout(0)
local answered = 0
local ping = "d1:ad2:id20:" .. ("f"):rep(20) .. "e1:q4:ping1:t2:%s1:y1:qe"
local t0 = socket.gettime()
for i = 1, count do
  u:sendto(ping:format(string.pack(">I2", i % 65536)), "127.0.0.1", port)
  if i % 100 == 0 then
    while u:receive() do answered = answered + 1 end
    local due = t0 + secs * i / count
    local now = socket.gettime()
    if due > now then socket.sleep(due - now) end
  end
end
local stop = socket.gettime() + 1
u:settimeout(0.1)
while socket.gettime() < stop do
  if u:receive() then answered = answered + 1 end
end
print(("sent %d answered %d seconds %.2f"):format(count, answered, socket.gettime() - t0))
