-- A DHT of 50 bt-lua nodes in this process on 127.0.0.1 (distinct ports; one
-- entry per IP is off, as every node shares the address): every table fills, and a
-- value stored by any node is found from any other within a few seconds.
local bt = require "bt.core"
local socket = require "socket"

local N = 50

describe("a DHT of 50 bt-lua nodes", function()
  it("fills every table and finds any node's value from any other", function()
    local cs
    local stop_at
    cs = bt.session_new({ port = -1, tick_ms = 50 }, function(kind, now)
      if kind == "tick" and stop_at and now > stop_at then cs:stop() end
    end)
    local ds = {}
    for i = 1, N do
      ds[i] = assert(bt.dht_new(cs, { bind = "127.0.0.1", restrict_ips = false, answer_rate_ip = -1 }))
      if i > 1 then assert(ds[i]:add_node("127.0.0.1", ds[1 + (i * 7) % (i - 1)]:port())) end
    end
    local t0 = socket.gettime()
    local function sizes()
      local mn, sum = math.huge, 0
      for i = 1, N do
        local n = ds[i]:stats().nodes
        mn, sum = math.min(mn, n), sum + n
      end
      return mn, sum / N
    end
    repeat
      stop_at = cs:now() + 0.5
      cs:run()
    until sizes() >= 8 or socket.gettime() - t0 > 20
    local mn, avg = sizes()
    local fill = socket.gettime() - t0
    assert.is_true(mn >= 8, ("smallest table %d nodes after %.1f s"):format(mn, fill))
    -- every node knows the other half of the id space (Kademlia's join refreshes the far
    -- ranges): else its lookups for a target there end on the wrong nodes
    for i = 1, N do
      local half = ds[i]:id():byte(1) >> 7
      local far = 0
      for _, n in ipairs(ds[i]:good_nodes()) do far = far + ((n.id:byte(1) >> 7) ~ half) end
      assert.is_true(far >= 1, ("node %d knows nobody in the other half of the id space"):format(i))
    end

    -- 10 pairs: node a announces a random info-hash, node b looks it up
    local worst, total = 0, 0
    math.randomseed(13)
    for k = 1, 10 do
      local a, b = math.random(N), math.random(N)
      if a == b then b = a % N + 1 end
      local ih = string.pack(">I4I4", k, math.random(0, 0xffffffff)) .. ("\0"):rep(12)
      local port = 10000 + k
      local res
      local start = socket.gettime()
      assert(ds[a]:lookup("announce", ih, port, function(r) res = r; cs:stop() end))
      stop_at = cs:now() + 10
      cs:run()
      assert.is_truthy(res, "announce lookup did not end")
      assert.is_true(res.announced >= 1, "nobody took the announce")
      res = nil
      assert(ds[b]:lookup("get_peers", ih, 0, function(r) res = r; cs:stop() end))
      stop_at = cs:now() + 10
      cs:run()
      local took = socket.gettime() - start
      worst, total = math.max(worst, took), total + took
      assert.is_truthy(res, "get_peers lookup did not end")
      local found = false
      for _, p in ipairs(res.peers) do found = found or p == "127.0.0.1:" .. port end
      assert.is_true(found, ("node %d did not find node %d's value"):format(b, a))
    end
    assert.is_true(worst < 5, ("a store + find took %.2f s"):format(worst))
    print(("\n50-node DHT: tables filled (smallest %d, mean %.1f nodes) in %.1f s; announce + find: mean %.1f ms, "
      .. "worst %.1f ms"):format(mn, avg, fill, total / 10 * 1000, worst * 1000))
    cs:close()
  end)
end)
