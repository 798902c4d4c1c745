-- bt.ratelimit: token buckets (csrc/ratelimit.c) on simulated time.
local bt = require "bt"
local H = require "spec.helpers"

-- Move `want` bytes per step of `dt` seconds for `seconds`, as the engine
-- would: take what is granted. Returns the bytes moved.
local function drive(rl, seconds, dt, want, others)
  -- the bucket starts counting at its first use: at time 0
  local moved, now = rl:take(want, 0, table.unpack(others or {})), 0
  while now < seconds - 1e-9 do
    now = now + dt
    moved = moved + rl:take(want, now, table.unpack(others or {}))
  end
  return moved
end

describe("bt.ratelimit", function()
  it("enforces the rate over simulated time, after the initial burst", function()
    local rl = bt.ratelimit(100000, 20000)
    -- 10 s at 1 ms steps, asking far more than the rate: burst + rate * time
    local moved = drive(rl, 10, 0.001, 1000000)
    assert.is_true(math.abs(moved - (20000 + 100000 * 10)) <= 2, "moved " .. moved)
  end)

  it("grants no more than asked and keeps the rest", function()
    local rl = bt.ratelimit(1000, 5000)
    assert.are.equal(3000, rl:take(3000, 0))
    assert.are.equal(2000, rl:take(3000, 0))
    assert.are.equal(0, rl:take(1, 0))
    assert.are.equal(500, rl:take(10000, 0.5))
    assert.are.equal(0, rl:take(0, 100))
  end)

  it("caps the bucket at the burst after a long idle time", function()
    local rl = bt.ratelimit(1000, 5000)
    assert.are.equal(5000, rl:take(5000, 0))
    assert.are.equal(5000, rl:available(3600))
    assert.are.equal(5000, rl:take(100000, 3600))
  end)

  it("the default burst is one second of traffic, at least a block with its header", function()
    local _, burst = bt.ratelimit(1000000):limits()
    assert.are.equal(1000000, burst)
    _, burst = bt.ratelimit(1000):limits()
    assert.are.equal(16384 + 13, burst)
  end)

  it("wait() says when the bytes will be there, and then they are", function()
    local rl = bt.ratelimit(3000, 16384)
    assert.are.equal(16384, rl:take(16384, 10))
    local w = rl:wait(16384, 10)
    assert.is_true(math.abs(w - 16384 / 3000) < 1e-9, w)
    -- a moment early, only part of the block is there
    assert.are.equal(0, rl:wait(0, 10))
    local rl1 = bt.ratelimit(3000, 16384)
    rl1:take(16384, 10)
    assert.are.equal(16384 - 30, rl1:take(16384, 10 + w - 0.01))
    local rl2 = bt.ratelimit(3000, 16384)
    rl2:take(16384, 10)
    assert.are.equal(16384, rl2:take(16384, 10 + rl2:wait(16384, 10)))
    -- more than the burst can never be had at once: wait for a full bucket
    local rl3 = bt.ratelimit(1000, 2000)
    rl3:take(2000, 0)
    assert.is_true(math.abs(rl3:wait(1e9, 0) - 2) < 1e-9)
    assert.are.equal(0, rl3:wait(1, 5))
  end)

  it("rate 0 is unlimited", function()
    local rl = bt.ratelimit(0)
    assert.are.equal(1 << 40, rl:take(1 << 40, 0))
    assert.are.equal(0, rl:wait(1 << 40, 0))
    assert.are.equal(math.maxinteger, rl:available(1))
    assert.are.equal(12345 * 11, drive(rl, 1, 0.1, 12345))   -- at 0, 0.1, ..., 1.0
  end)

  it("spend() runs into debt that later takes repay", function()
    local rl = bt.ratelimit(1000, 1000)
    rl:spend(3000, 0)                      -- 1000 tokens - 3000 = -2000
    assert.are.equal(-2000, rl:available(0))
    assert.are.equal(0, rl:take(1, 1.5))   -- -500
    assert.is_true(math.abs(rl:wait(100, 1.5) - 0.6) < 1e-9)
    assert.are.equal(100, rl:take(100, 2.1))
  end)

  it("refund() gives back unused tokens to every chained bucket, up to its burst", function()
    local a, b = bt.ratelimit(1000, 1000), bt.ratelimit(5000, 5000)
    assert.are.equal(1000, a:take(1000, 0, b))   -- a: 0, b: 4000
    a:refund(600, 0, b)                           -- a short read used 400
    assert.are.equal(600, a:available(0))
    assert.are.equal(4600, b:available(0))
    a:refund(10000, 0, b)                         -- never past the burst
    assert.are.equal(1000, a:available(0))
    assert.are.equal(5000, b:available(0))
    local free = bt.ratelimit(0)                  -- unlimited: nothing to give back
    free:refund(10, 0)
    assert.are.equal(math.maxinteger, free:available(0))
  end)

  it("a clock going backwards adds nothing", function()
    local rl = bt.ratelimit(1000, 1000)
    assert.are.equal(1000, rl:take(1000, 10))
    assert.are.equal(0, rl:take(1000, 5))
    assert.are.equal(0, rl:take(1000, 9.9))
    assert.are.equal(500, rl:take(1000, 10.5))
  end)

  it("chained buckets grant the minimum and charge each the same", function()
    local global = bt.ratelimit(100000, 10000)
    local a = bt.ratelimit(30000, 10000)
    local b = bt.ratelimit(0)   -- an unlimited torrent still obeys the global limit
    -- two torrents sharing the global bucket for 10 s at 1 ms steps
    local ma, mb, now = a:take(100000, 0, global), b:take(100000, 0, global), 0
    for _ = 1, 10000 do
      now = now + 0.001
      ma = ma + a:take(100000, now, global)
      mb = mb + b:take(100000, now, global)
    end
    assert.is_true(ma <= 10000 + 30000 * 10 + 1, "a over its own limit: " .. ma)
    assert.is_true(math.abs(ma + mb - (10000 + 100000 * 10)) <= 2, "global: " .. ma + mb)
    assert.is_true(ma >= 30000 * 10 * 0.95, "a starved: " .. ma)
    -- wait over a chain is the longest wait
    local g2, t2 = bt.ratelimit(1000, 1000), bt.ratelimit(500, 1000)
    assert.are.equal(1000, t2:take(1000, 0, g2))
    assert.is_true(math.abs(t2:wait(1000, 0, g2) - 2) < 1e-9)
    -- nothing is taken from anyone when one bucket is empty
    local full, empty = bt.ratelimit(1000, 1000), bt.ratelimit(1000, 1000)
    empty:take(1000, 0)
    assert.are.equal(0, full:take(500, 0, empty))
    assert.are.equal(1000, full:available(0))
  end)

  it("changes limits on the fly, tokens clamped to the new burst", function()
    local rl = bt.ratelimit(1000, 5000)
    rl:set(100, 200)
    assert.are.equal(200, rl:available(0))
    rl:set(0)
    assert.are.equal(1 << 30, rl:take(1 << 30, 1))
    local r, burst = rl:limits()
    assert.are.equal(0, r)
    assert.are.equal(0, burst)
  end)

  it("raises on misuse", function()
    assert.has_error(function() bt.ratelimit(-1) end)
    assert.has_error(function() bt.ratelimit(1 / 0) end)
    assert.has_error(function() bt.ratelimit(0 / 0) end)
    local rl = bt.ratelimit(1000)
    assert.has_error(function() rl:take(-1, 0) end)
    assert.has_error(function() rl:take(1, 0 / 0) end)
    assert.has_error(function() rl:take(1, 0, "not a bucket") end)
    assert.has_error(function() rl.take({}, 1, 0) end)
    assert.matches("bt.RateLimit %(1000", tostring(rl))
  end)

  it("C API: buckets, memory backend and atomic writes (ASan+UBSan)", function()
    local dir = H.tmpdir()
    local data = string.rep("abcdefghij", 7000) .. "xyz"   -- 70003 bytes, 5 pieces
    local torrent = H.torrent_bytes("m", 16384, { { path = { "a" }, data = data:sub(1, 10000) },
      { path = { "e" }, data = "" }, { path = { "s", "b" }, data = data:sub(10001) } })
    H.writefile(dir .. "/t.torrent", torrent)
    H.writefile(dir .. "/stream", data)
    local exe = dir .. "/persist_c_test"
    local out, ok = H.build_c_test(exe, "spec/persist_c_test.c csrc/storage/storage.c"
      .. " csrc/storage/storage_mem.c csrc/core/ratelimit.c csrc/codec/metainfo.c csrc/core/sha1.c csrc/codec/bencode.c"
      .. " csrc/core/buf.c csrc/core/ranges.c -lcrypto -lm")
    assert(ok, out)
    out, ok = H.run_c_test(exe, dir .. "/t.torrent", dir .. "/stream", dir)
    H.rmtree(dir)
    assert.are.equal("all passed\n", out)
    assert.is_true(ok)
  end)
end)
