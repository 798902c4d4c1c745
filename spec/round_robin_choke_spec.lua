-- Unit test of examples/round_robin_choke.lua on bt.policy.fake (no network).
local H = require "helpers"
local fake = require "bt.policy.fake"
local policy = require "bt.policy"

local p = policy.load(H.root .. "/examples/round_robin_choke.lua")

local function addrs(list)
  local out = {}
  for i, peer in ipairs(list) do out[i] = peer.address end
  table.sort(out)
  return out
end

describe("examples/round_robin_choke.lua", function()
  local t, peers
  before_each(function()
    t = fake.torrent{ pieces = 4, have = "all" }
    peers = {}
    -- speeds that tit-for-tat would follow: the round robin must ignore them
    for i = 1, 6 do peers[i] = fake.peer(t, { address = ("10.0.0.%d:6881"):format(i), rate_up = i * 1000 }) end
  end)

  -- the window of four starting at peer k (1-based, wrapping), sorted
  local function window(k)
    local out = {}
    for j = 0, 3 do out[#out + 1] = ("10.0.0.%d:6881"):format((k - 1 + j) % 6 + 1) end
    table.sort(out)
    return out
  end

  it("rotates the four slots through six interested peers, wrapping around", function()
    local r1 = addrs(p.choke(t, { table.unpack(peers) }, 1))
    local k                              -- the first window starts at a random peer
    for i = 1, 6 do if table.concat(window(i), " ") == table.concat(r1, " ") then k = i end end
    assert.is_not_nil(k, table.concat(r1, " "))
    assert.are.same(window(k + 4), addrs(p.choke(t, { table.unpack(peers) }, 2)))
    assert.are.same(window(k + 8), addrs(p.choke(t, { table.unpack(peers) }, 3)))
  end)

  it("starts its first window at a random peer, so that seeds are not in step", function()
    local starts = {}
    for s = 1, 40 do
      math.randomseed(s)
      local ft = fake.torrent{ pieces = 4, have = "all" }
      local first = addrs(p.choke(ft, { table.unpack(peers) }, 1))
      starts[table.concat(first, " ")] = true
    end
    local n = 0
    for _ in pairs(starts) do n = n + 1 end
    assert.are.equal(6, n)   -- all six windows, 40 draws
  end)

  it("every peer is unchoked at least once in two rounds", function()
    local seen = {}
    for round = 1, 2 do
      for _, peer in ipairs(p.choke(t, { table.unpack(peers) }, round)) do seen[peer.address] = true end
    end
    for _, peer in ipairs(peers) do assert.is_true(seen[peer.address], peer.address) end
  end)

  it("a second call in the same round keeps the window", function()
    local a = p.choke(t, { table.unpack(peers) }, 1)
    local b = p.choke(t, { table.unpack(peers) }, 1)
    assert.are.same(addrs(a), addrs(b))
  end)

  it("a peer that left is skipped; the rotation goes on from the next address", function()
    -- a first window of 1..4: the random start is drawn again until it is
    for s = 1, 100 do
      math.randomseed(s)
      t = fake.torrent{ pieces = 4, have = "all" }
      if table.concat(addrs(p.choke(t, { table.unpack(peers) }, 1)), " ") == table.concat(window(1), " ") then break end
    end
    assert.are.same(window(1), addrs(p.choke(t, { table.unpack(peers) }, 1)))   -- served 1..4
    local rest = { peers[1], peers[2], peers[3], peers[6] }        -- 4 and 5 left
    table.insert(rest, fake.peer(t, { address = "10.0.0.7:6881" }))
    local r2 = p.choke(t, rest, 2)
    assert.are.same({ "10.0.0.1:6881", "10.0.0.2:6881", "10.0.0.6:6881", "10.0.0.7:6881" }, addrs(r2))
  end)

  it("with no more peers than slots, unchokes them all", function()
    assert.are.equal(2, #p.choke(t, { peers[1], peers[2] }, 1))
    assert.are.equal(0, #p.choke(t, {}, 2))
  end)
end)
