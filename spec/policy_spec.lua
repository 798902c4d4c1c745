-- Policies unit-tested without sockets, on bt.policy.fake (docs/policy.md shows how).
local H = require "helpers"
local fake = require "bt.policy.fake"
local policy = require "bt.policy"
local default = require "bt.policy.default"

local function load_example(name)
  return policy.load(H.root .. "/examples/" .. name .. ".lua")
end

local function pieces_of(peer)
  local seen, out = {}, {}
  for _, r in ipairs(peer.sent) do
    if not seen[r.piece] then seen[r.piece] = true; out[#out + 1] = r.piece end
  end
  return out
end

describe("bt.policy.load", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() H.rmtree(tmp) end)

  it("fills missing hooks from bt.policy.default", function()
    local p = policy.load({ pick = function() end })
    for _, h in ipairs(policy.HOOKS) do assert.is_function(p[h], h) end
    assert.are_not.equal(default.pick, p.pick)
    assert.are.equal(default.timeout, p.timeout)
  end)

  it("loads a file into its own _ENV: globals it sets stay there", function()
    H.writefile(tmp .. "/p.lua", "counter = 1\nreturn { tick = function() counter = counter + 1 end }")
    local p = policy.load(tmp .. "/p.lua")
    p.tick()
    assert.is_nil(rawget(_G, "counter"))
  end)

  it("rejects a file that does not return a table, or a hook that is not a function", function()
    H.writefile(tmp .. "/a.lua", "return 1")
    assert.has_error(function() policy.load(tmp .. "/a.lua") end,
      "policy " .. tmp .. "/a.lua: must return a table of hooks, got number")
    H.writefile(tmp .. "/b.lua", "return { pick = 3 }")
    assert.has_error(function() policy.load(tmp .. "/b.lua") end,
      "policy " .. tmp .. "/b.lua: hook 'pick' must be a function, got number")
  end)

  it("reports a syntax error with file and line", function()
    H.writefile(tmp .. "/c.lua", "return {\n pick = function( \n}")
    local ok, err = pcall(policy.load, tmp .. "/c.lua")
    assert.is_false(ok)
    assert.matches("c.lua:%d+:", err)
  end)

  it("loads a module by name", function()
    assert.are.equal(default.pick, policy.load("bt.policy.default").pick)
  end)
end)

describe("bt.policy.fake", function()
  it("raises the engine's errors for impossible requests", function()
    local t = fake.torrent{ pieces = 10 }
    local p = fake.peer(t, { have = { 1 }, slots = 4 })
    assert.has_error(function() p:request_blocks(2, 1) end, "bt.Peer: peer 10.0.0.1:6881 lacks piece 2")
    assert.has_error(function() p:request_blocks(1, 5) end)
    assert.has_error(function() p:request_blocks(10, 1) end)
    assert.has_error(function() p:request(1, 16) end)
    assert.are.equal(4, p:request_blocks(1, 4))
    assert.are.equal(0, p.slots)
  end)
end)

describe("bt.policy.default", function()
  it("starts with random pieces, then goes rarest first", function()
    local t = fake.torrent{ pieces = 40, piece_length = 16384 * 4 }
    local seed = fake.peer(t, { have = "all", slots = 8 })
    fake.peer(t, { have = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 } })   -- pieces 0..9 are common
    math.randomseed(1)
    default.pick(t, seed, 8)                 -- two pieces of 4 blocks, at random
    assert.are.equal(8, #seed.sent)
    for _, i in ipairs(pieces_of(seed)) do t:receive(seed, i) end
    for _, i in ipairs({ 20, 21 }) do t._have:set(i) end   -- now past RANDOM_FIRST
    default.pick(t, seed, 8)
    local later = pieces_of(seed)
    for k = 3, #later do
      assert.is_true(later[k] >= 10, "rare pieces (10..39) come before common ones, got " .. later[k])
    end
  end)

  it("finishes started pieces before starting new ones", function()
    local t = fake.torrent{ pieces = 20, piece_length = 16384 * 8, have = { 0, 1, 2, 3, 4 } }
    local a = fake.peer(t, { have = "all", slots = 4 })
    local b = fake.peer(t, { have = "all", slots = 8 })
    default.pick(t, a, 4)                    -- half of one piece
    local first = a.sent[1].piece
    default.pick(t, b, 8)
    assert.are.equal(first, b.sent[1].piece) -- b completes a's piece first
    assert.are.equal(4, b.sent[1].block)
  end)

  it("endgame once nothing is unrequested; timeouts snub stalled peers", function()
    local t = fake.torrent{ pieces = 2, piece_length = 16384 }
    local a = fake.peer(t, { have = "all", slots = 4 })
    assert.is_false(default.endgame(t))
    default.pick(t, a, 4)
    assert.are.equal(0, t.unrequested)
    assert.is_true(default.endgame(t))
    assert.are.equal("keep", default.timeout(t, a, { piece = 0, block = 0 }, 1))
    assert.are.equal("snub", default.timeout(t, a, { piece = 0, block = 0 }, default.REQUEST_TIMEOUT + 1))
  end)

  it("sizes pipelines by rate, within [2, 500]", function()
    local t = fake.torrent{ pieces = 2 }
    local p = fake.peer(t, { have = "all" })
    assert.are.equal(default.QUEUE_START, default.queue_depth(t, p))
    p.rate_down = 1000
    assert.are.equal(2, default.queue_depth(t, p))
    p.rate_down = 16384 * 10
    assert.are.equal(30, default.queue_depth(t, p))
    p.rate_down = 1e9
    assert.are.equal(500, default.queue_depth(t, p))
  end)
end)

describe("bt.policy.default choke", function()
  local function ids(peers, list)
    local r = {}
    for _, p in ipairs(list) do
      for i, q in ipairs(peers) do if p == q then r[#r + 1] = i end end
    end
    return r
  end

  it("unchokes the four fastest uploaders to us plus one optimistic peer, kept for 30 s", function()
    local t = fake.torrent{ pieces = 4 }
    local peers = {}
    for i = 1, 7 do peers[i] = fake.peer(t, { rate_down = i * 1000 }) end
    local out = default.choke(t, { table.unpack(peers) }, 1, 100)
    assert.are.equal(5, #out)
    assert.are.same({ 7, 6, 5, 4 }, ids(peers, { out[1], out[2], out[3], out[4] }))
    local opt = ids(peers, { out[5] })[1]
    assert.is_true(opt >= 1 and opt <= 3, "optimistic slot went to a regular peer")
    -- 10 and 20 s later the optimistic peer is the same
    for _, now in ipairs{ 110, 120 } do
      assert.are.equal(out[5], default.choke(t, { table.unpack(peers) }, 2, now)[5])
    end
    -- 30 s on it is drawn again: over many periods every candidate gets a turn
    local seen = {}
    for k = 1, 60 do
      seen[ids(peers, { default.choke(t, { table.unpack(peers) }, 2 + k, 100 + 30 * k)[5] })[1]] = true
    end
    assert.is_true(seen[1] and seen[2] and seen[3], "the optimistic slot did not rotate")
  end)

  it("the optimistic slot favours new peers three to one", function()
    math.randomseed(7)
    local t = fake.torrent{ pieces = 4 }
    for i = 1, 4 do fake.peer(t, { rate_down = 1e6 + i }) end      -- the regular slots
    local old = fake.peer(t, { connected_for = 600 })
    local new = fake.peer(t, { connected_for = 5 })
    local n_new, N = 0, 2000
    for k = 1, N do
      local out = default.choke(t, { table.unpack(t._peers) }, k, 30 * k)
      if out[5] == new then n_new = n_new + 1 else assert.are.equal(old, out[5]) end
    end
    -- expected 3/4 of the draws; bounds far outside the binomial spread (sd ~19)
    assert.is_true(n_new > 0.68 * N and n_new < 0.82 * N, ("new peer drawn %d of %d"):format(n_new, N))
  end)

  it("anti-snubbing: a peer that sends us nothing gets no regular slot while we download", function()
    local t = fake.torrent{ pieces = 4 }
    local fast_but_snubbed = fake.peer(t, { rate_down = 9e6, snubbed = true })
    local silent = fake.peer(t, { rate_down = 8e6, am_interested = true, idle = 61 })
    for i = 1, 4 do fake.peer(t, { rate_down = i * 1000 }) end   -- four others
    local out = default.choke(t, { table.unpack(t._peers) }, 1, 0)
    assert.are.equal(5, #out)
    assert.are.same({ 6, 5, 4, 3 }, ids(t._peers, { out[1], out[2], out[3], out[4] }))
    -- only the optimistic slot may go to one of the two
    assert.is_true(out[5] == fast_but_snubbed or out[5] == silent)
    -- once complete nobody is snubbing us: ranking is by what we send them
    local s = fake.torrent{ pieces = 2, have = "all" }
    local a = fake.peer(s, { rate_up = 9, snubbed = true })
    local b = fake.peer(s, { rate_up = 1 })
    assert.are.equal(a, default.choke(s, { a, b }, 1, 0)[1])
  end)

  it("once complete, ranks by what we send them", function()
    local t = fake.torrent{ pieces = 2, have = "all" }
    local a = fake.peer(t, { rate_down = 9 })
    local b = fake.peer(t, { rate_down = 1 })
    a.rate_up, b.rate_up = 1, 9
    assert.are.equal(b, default.choke(t, { a, b }, 1, 0)[1])
  end)
end)

describe("examples", function()
  it("rarest_first takes the rarest pieces", function()
    local pol = load_example("rarest_first")
    local t = fake.torrent{ pieces = 10, piece_length = 16384 }
    local p = fake.peer(t, { have = "all", slots = 3 })
    fake.peer(t, { have = { 0, 1, 2, 3, 4, 5, 6 } })
    pol.pick(t, p, 3)
    assert.are.same({ 7, 8, 9 }, pieces_of(p))
  end)

  it("sequential goes in order from the first missing piece", function()
    local pol = load_example("sequential")
    local t = fake.torrent{ pieces = 50, piece_length = 16384, have = { 0, 1, 3 } }
    local p = fake.peer(t, { have = "all", slots = 4 })
    pol.pick(t, p, 4)
    assert.are.same({ 2, 4, 5, 6 }, pieces_of(p))
  end)

  it("random covers every piece the peer has, in some order", function()
    local pol = load_example("random")
    local t = fake.torrent{ pieces = 16, piece_length = 16384 }
    local p = fake.peer(t, { have = "all", slots = 16 })
    pol.pick(t, p, 16)
    local got = pieces_of(p)
    table.sort(got)
    local all = {}
    for i = 0, 15 do all[#all + 1] = i end
    assert.are.same(all, got)
  end)

  it("endgame_tuned waits for the last 8 pieces", function()
    local pol = load_example("endgame_tuned")
    local t = fake.torrent{ pieces = 20, piece_length = 16384 }
    local p = fake.peer(t, { have = "all", slots = 20 })
    pol.pick(t, p, 20)
    assert.are.equal(0, t.unrequested)
    assert.is_false(pol.endgame(t))          -- 20 missing
    for i = 0, 11 do t:receive(p, i) end
    assert.is_true(pol.endgame(t))
    p.rtt = 0.1
    assert.are.equal("snub", pol.timeout(t, p, {}, 1.5))
    assert.are.equal("keep", pol.timeout(t, p, {}, 1.0))
  end)
end)
