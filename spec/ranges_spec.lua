--- bt.Ranges: the sparse bitfield (csrc/ranges.c, csrc/l_ranges.c).
-- Unit tests of every method and error, then seeded random operation sequences
-- checked step by step against a naive boolean-array model.
local bt = require "bt"

local MAX = 2 ^ 31 // 1   -- BT_RANGES_MAX_SIZE

--- The set as a flat list {a1, b1, a2, b2, ...} of its half-open ranges.
local function flat(s, from)
  local t = {}
  for a, b in s:ranges(from) do
    t[#t + 1] = a
    t[#t + 1] = b
  end
  return t
end

--- A set of size n holding the given indices.
local function make(n, ...)
  local s = bt.bitfield(n)
  for _, i in ipairs({ ... }) do s:set(i) end
  return s
end

--- pcall f and return its error message (fails the test if f succeeds).
local function err(f, ...)
  local ok, e = pcall(f, ...)
  assert.is_false(ok, "expected an error")
  return tostring(e)
end

describe("bt.Ranges", function()
  describe("bt.bitfield(n)", function()
    it("makes an empty set of n pieces", function()
      local s = bt.bitfield(100)
      assert.are.equal(100, s:size())
      assert.are.equal(0, s:count())
      assert.is_true(s:empty())
      assert.is_false(s:full())
      assert.are.same({}, flat(s))
      assert.are.equal("bt.Ranges", getmetatable(s).__name)
    end)

    it("accepts 0 and the maximum size", function()
      local z = bt.bitfield(0)
      assert.is_true(z:empty())
      assert.is_true(z:full())          -- 0 of 0 pieces: both
      assert.are.equal("", z:to_wire())
      z:set_all()
      assert.are.same({}, flat(z))
      local big = bt.bitfield(MAX)      -- allocates nothing while empty
      big:set(MAX - 1)
      assert.is_true(big:has(MAX - 1))
      assert.are.equal(MAX - 1, big:next_set(0))
      big:set_all()
      assert.are.equal(MAX, big:count())
      assert.are.same({ 0, MAX }, flat(big))
      assert.is_nil(big:next_clear(0))
    end)

    it("rejects bad sizes", function()
      assert.matches("size %-1 out of range %[0, 2147483648%]", err(bt.bitfield, -1))
      assert.matches("size 2147483649 out of range", err(bt.bitfield, MAX + 1))
      assert.matches("number has no integer representation", err(bt.bitfield, 1.5))
      assert.matches("number expected, got string", err(bt.bitfield, "x"))
      assert.matches("number expected, got no value", err(bt.bitfield))
    end)
  end)

  describe("set, clear, has", function()
    it("sets and clears single pieces, 0-based", function()
      local s = bt.bitfield(10)
      s:set(0); s:set(9); s:set(5)
      assert.are.same({ 0, 1, 5, 6, 9, 10 }, flat(s))
      assert.is_true(s:has(0)); assert.is_true(s:has(5)); assert.is_true(s:has(9))
      assert.is_false(s:has(1)); assert.is_false(s:has(8))
      s:set(5)                          -- idempotent
      assert.are.equal(3, s:count())
      s:clear(5); s:clear(5); s:clear(3)
      assert.are.same({ 0, 1, 9, 10 }, flat(s))
      assert.are.equal(2, s:count())
    end)

    it("merges neighbours into one range", function()
      local s = make(10, 1, 3)
      s:set(2)
      assert.are.same({ 1, 4 }, flat(s))
      s:set(0); s:set(4)
      assert.are.same({ 0, 5 }, flat(s))
      s:clear(2)
      assert.are.same({ 0, 2, 3, 5 }, flat(s))
    end)

    it("raises an argument error naming the bad index", function()
      local s = bt.bitfield(100)
      assert.matches("bad argument #1 to 'set' %(index 100 out of range %[0, 100%)%)",
        err(function() s:set(100) end))
      assert.matches("index %-1 out of range %[0, 100%)", err(function() s:clear(-1) end))
      assert.matches("index 100 out of range %[0, 100%)", err(function() s:has(100) end))
      assert.matches("number has no integer representation", err(function() s:set(0.5) end))
      assert.matches("bt.Ranges expected, got number", err(s.set, 1, 1))
      assert.matches("index 0 out of range %[0, 0%)", err(function() bt.bitfield(0):has(0) end))
      assert.are.equal(0, s:count())
    end)
  end)

  describe("set_range, clear_range", function()
    it("work on half-open ranges and merge", function()
      local s = bt.bitfield(100)
      s:set_range(10, 20)
      s:set_range(30, 40)
      assert.are.same({ 10, 20, 30, 40 }, flat(s))
      s:set_range(20, 30)               -- touches both: one range
      assert.are.same({ 10, 40 }, flat(s))
      s:set_range(0, 5); s:set_range(50, 60); s:set_range(70, 80)
      s:set_range(3, 75)                -- swallows several
      assert.are.same({ 0, 80 }, flat(s))
      assert.are.equal(80, s:count())
      s:clear_range(10, 20)             -- splits
      assert.are.same({ 0, 10, 20, 80 }, flat(s))
      s:clear_range(5, 25)
      assert.are.same({ 0, 5, 25, 80 }, flat(s))
      s:clear_range(0, 100)
      assert.are.same({}, flat(s))
      assert.are.equal(0, s:count())
    end)

    it("treats a == b as an empty range and accepts b == size", function()
      local s = bt.bitfield(10)
      s:set_range(4, 4)
      assert.is_true(s:empty())
      s:set_range(0, 10)
      assert.is_true(s:full())
      s:clear_range(10, 10)
      s:clear_range(0, 0)
      assert.is_true(s:full())
    end)

    it("rejects reversed and out-of-range bounds", function()
      local s = bt.bitfield(10)
      assert.matches("bad argument #2 to 'set_range' %(range %[5, 3%) is reversed%)",
        err(function() s:set_range(5, 3) end))
      assert.matches("index 11 out of range %[0, 10%]", err(function() s:set_range(0, 11) end))
      assert.matches("index %-1 out of range %[0, 10%]", err(function() s:clear_range(-1, 2) end))
      assert.matches("number expected, got no value", err(function() s:set_range(1) end))
      assert.is_true(s:empty())
    end)
  end)

  describe("count, size, full, empty, #", function()
    it("keeps the count up to date", function()
      local s = bt.bitfield(1000)
      s:set_range(0, 500)
      s:clear(250)
      s:set(999)
      assert.are.equal(500, s:count())
      assert.are.equal(500, #s)         -- # is the count, not the size
      assert.are.equal(1000, s:size())
      assert.is_false(s:full()); assert.is_false(s:empty())
      s:set_all()
      assert.is_true(s:full())
      assert.are.equal(1000, #s)
      s:clear_all()
      assert.is_true(s:empty())
      assert.are.equal(0, #s)
    end)
  end)

  describe("next_set, next_clear", function()
    it("find the first set or clear index at or after from", function()
      local s = make(20, 3, 4, 5, 10)
      assert.are.equal(3, s:next_set())
      assert.are.equal(3, s:next_set(0))
      assert.are.equal(4, s:next_set(4))
      assert.are.equal(10, s:next_set(6))
      assert.is_nil(s:next_set(11))
      assert.is_nil(s:next_set(20))     -- from == size is allowed
      assert.are.equal(0, s:next_clear())
      assert.are.equal(6, s:next_clear(3))
      assert.are.equal(6, s:next_clear(6))
      assert.are.equal(11, s:next_clear(10))
      assert.is_nil(s:next_clear(20))
      s:set_range(10, 20)
      assert.is_nil(s:next_clear(10))
      s:set_range(6, 9)
      assert.are.equal(9, s:next_clear(3))
    end)

    it("reject from past the size", function()
      local s = bt.bitfield(20)
      assert.matches("bad argument #1 to 'next_set' %(index 21 out of range %[0, 20%]%)",
        err(function() s:next_set(21) end))
      assert.matches("index %-1 out of range %[0, 20%]", err(function() s:next_clear(-1) end))
    end)
  end)

  describe("count(a, b), next_diff, next_common", function()
    it("count the set pieces of a half-open range", function()
      local s = bt.bitfield(100)
      s:set_range(10, 20); s:set_range(30, 40)
      assert.are.equal(20, s:count(0, 100))
      assert.are.equal(5, s:count(15, 25))
      assert.are.equal(10, s:count(15, 35))
      assert.are.equal(0, s:count(20, 30))
      assert.are.equal(0, s:count(50, 50))
      assert.are.equal(20, s:count())
      assert.matches("bad argument #2 to 'count' %(range %[5, 3%) is reversed%)",
        err(function() return s:count(5, 3) end))
      assert.matches("index 101 out of range %[0, 100%]", err(function() return s:count(0, 101) end))
      assert.matches("number expected, got no value", err(function() return s:count(1) end))
    end)

    it("find the next piece in one set and not (or also) in the other", function()
      local peer, have = bt.bitfield(50), bt.bitfield(50)
      peer:set_range(0, 20)
      have:set_range(0, 10); have:set(12)
      assert.are.equal(10, peer:next_diff(have))
      assert.are.equal(11, peer:next_diff(have, 11))
      assert.are.equal(13, peer:next_diff(have, 12))
      assert.is_nil(peer:next_diff(have, 20))
      assert.is_nil(peer:next_diff(have, 50))
      assert.are.equal(0, peer:next_common(have))
      assert.are.equal(12, peer:next_common(have, 10))
      assert.is_nil(peer:next_common(have, 13))
      have:set_range(0, 50)
      assert.is_nil(peer:next_diff(have))   -- nothing to be interested in
      assert.matches("bad argument #1 to 'next_diff' %(size 49 differs from 50%)",
        err(function() return peer:next_diff(bt.bitfield(49)) end))
      assert.matches("index 51 out of range %[0, 50%]",
        err(function() return peer:next_common(have, 51) end))
    end)
  end)

  describe("union, intersect, diff", function()
    it("return new sets and leave the operands alone", function()
      local a = bt.bitfield(20); a:set_range(0, 10)
      local b = bt.bitfield(20); b:set_range(5, 15)
      local u, i, d = a:union(b), a:intersect(b), a:diff(b)
      assert.are.same({ 0, 15 }, flat(u))
      assert.are.same({ 5, 10 }, flat(i))
      assert.are.same({ 0, 5 }, flat(d))
      assert.are.same({ 10, 15 }, flat(b:diff(a)))
      assert.are.same({ 0, 10 }, flat(a))
      assert.are.same({ 5, 15 }, flat(b))
      assert.are.equal(15, u:count()); assert.are.equal(5, i:count()); assert.are.equal(5, d:count())
      u:set(19)
      assert.is_false(a:has(19))
    end)

    it("handle empty operands", function()
      local a, e = make(8, 1, 2, 6), bt.bitfield(8)
      assert.are.equal(a, a:union(e)); assert.are.equal(a, e:union(a))
      assert.is_true(a:intersect(e):empty())
      assert.are.equal(a, a:diff(e))
      assert.is_true(e:diff(a):empty())
    end)

    it("reject sets of another size or other values", function()
      local a, b = bt.bitfield(20), bt.bitfield(21)
      assert.matches("bad argument #1 to 'union' %(size 21 differs from 20%)",
        err(function() return a:union(b) end))
      assert.matches("size 21 differs from 20", err(function() return a:intersect(b) end))
      assert.matches("size 21 differs from 20", err(function() return a:diff(b) end))
      assert.matches("bt.Ranges expected, got table", err(function() return a:union({}) end))
    end)
  end)

  describe("ranges()", function()
    it("iterates half-open ranges in order, optionally from an index", function()
      local s = bt.bitfield(100)
      s:set_range(0, 10); s:set_range(20, 21); s:set_range(50, 100)
      assert.are.same({ 0, 10, 20, 21, 50, 100 }, flat(s))
      assert.are.same({ 5, 10, 20, 21, 50, 100 }, flat(s, 5))
      assert.are.same({ 20, 21, 50, 100 }, flat(s, 10))
      assert.are.same({ 60, 100 }, flat(s, 60))
      assert.are.same({}, flat(s, 100))
      assert.matches("index 101 out of range %[0, 100%]", err(function() s:ranges(101) end))
    end)

    it("stays correct when the set changes during the loop", function()
      local s = bt.bitfield(100)
      for i = 0, 90, 10 do s:set_range(i, i + 5) end
      local seen = {}
      for a, b in s:ranges() do
        seen[#seen + 1] = a .. "-" .. b
        if a == 10 then
          s:clear_range(0, 42)          -- removes ranges before and after the cursor
          s:set_range(46, 48)
        end
      end
      assert.are.same({ "0-5", "10-15", "42-45", "46-48", "50-55", "60-65", "70-75", "80-85", "90-95" }, seen)
    end)

    it("holds an empty or complete set of 1,000,000 pieces as at most one range", function()
      local s = bt.bitfield(1000000)
      assert.are.same({}, flat(s))
      s:set_all()
      assert.are.same({ 0, 1000000 }, flat(s))
      local t = bt.bitfield(1000000)
      for i = 0, 999999, 1000 do t:set_range(i, i + 1000) end   -- filled piecewise
      assert.are.same({ 0, 1000000 }, flat(t))
      assert.are.equal(s, t)
      t:clear_range(0, 1000000)
      assert.are.same({}, flat(t))
    end)
  end)

  describe("wire format", function()
    it("exports high bit first with spare bits clear", function()
      local s = make(12, 0, 7, 8, 11)
      assert.are.equal("\129\144", s:to_wire())
      assert.are.equal("\255\240", (function() s:set_all() return s:to_wire() end)())
      assert.are.equal("\0", bt.bitfield(8):to_wire())
      assert.are.equal("\255", (function() local t = bt.bitfield(8); t:set_all(); return t:to_wire() end)())
    end)

    it("imports what it exports", function()
      local s = bt.bitfield_from_wire("\129\144", 12)
      assert.are.same({ 0, 1, 7, 9, 11, 12 }, flat(s))
      assert.are.equal(4, s:count())
      local full = bt.bitfield_from_wire(string.rep("\255", 125000), 1000000)
      assert.are.same({ 0, 1000000 }, flat(full))
      local empty = bt.bitfield_from_wire(string.rep("\0", 125000), 1000000)
      assert.is_true(empty:empty())
      local t = bt.bitfield_from_wire("", 0)
      assert.are.equal(0, t:size())
    end)

    it("returns nil and a message for a bitfield that does not fit", function()
      local s, e = bt.bitfield_from_wire("\255", 9)
      assert.is_nil(s)
      assert.are.equal("bitfield of 1 bytes, expected 2 for 9 pieces", e)
      s, e = bt.bitfield_from_wire("\255\128\0", 9)
      assert.is_nil(s)
      assert.are.equal("bitfield of 3 bytes, expected 2 for 9 pieces", e)
      s, e = bt.bitfield_from_wire("\255\192", 9)
      assert.is_nil(s)
      assert.are.equal("bitfield has spare bits set after the last piece (9 pieces)", e)
      assert.is_not_nil(bt.bitfield_from_wire("\255\128", 9))
    end)

    it("raises on misuse", function()
      assert.matches("string expected, got no value", err(bt.bitfield_from_wire))
      assert.matches("size %-1 out of range", err(bt.bitfield_from_wire, "", -1))
      assert.matches("number expected, got no value", err(bt.bitfield_from_wire, ""))
    end)
  end)

  describe("copy, set_all, clear_all, ==, tostring, gc", function()
    it("copies independently", function()
      local s = make(10, 1, 2)
      local c = s:copy()
      assert.are.equal(s, c)
      c:set(5)
      assert.are_not.equal(s, c)
      assert.is_false(s:has(5))
      assert.are.equal(s, bt.bitfield(10):copy():union(s))
    end)

    it("compares size and content", function()
      assert.are.equal(bt.bitfield(5), bt.bitfield(5))
      assert.is_false(bt.bitfield(5) == bt.bitfield(6))
      assert.is_false(make(5, 1) == make(5, 2))
      assert.is_true(make(5, 1, 2) == make(5, 2, 1))
      assert.is_false(bt.bitfield(5) == {})
    end)

    it("prints the size and the first ranges", function()
      local s = make(100, 20)
      s:set_range(0, 10)
      assert.are.equal("bt.Ranges(100: [0,10) [20,21))", tostring(s))
      assert.are.equal("bt.Ranges(7: empty)", tostring(bt.bitfield(7)))
      local f = bt.bitfield(1000)
      for i = 0, 998, 2 do f:set(i) end
      local str = tostring(f)
      assert.matches("^bt%.Ranges%(1000: %[0,1%) %[2,3%) .* %[30,31%) %.%.%. %(500 ranges%)%)$", str)
      assert.is_true(#str < 300)
    end)

    it("is collected, with its ranges freed (leaks show under make asan)", function()
      local weak = setmetatable({}, { __mode = "k" })
      for _ = 1, 200 do
        local s = bt.bitfield(100000)
        for i = 0, 99999, 3 do s:set(i) end
        weak[s] = true
      end
      collectgarbage(); collectgarbage()
      assert.is_nil(next(weak))
    end)
  end)

  describe("out of memory (C)", function()
    it("leaves every set unchanged when malloc or realloc fails", function()
      -- spec/ranges_oom_test.c includes ranges.c with an allocator failing
      -- every 2nd..6th call, and checks each -1 left the set as it was.
      local H = require "spec.helpers"
      local dir = H.tmpdir()
      local exe = dir .. "/ranges_oom_test"
      local out, built = H.build_c_test(exe, "spec/ranges_oom_test.c")
      assert(built, out)
      local res, ran = H.run_c_test(exe, "300")
      H.rmtree(dir)
      assert.is_true(ran, res)
      local injected = tonumber(res:match("^ok (%d+)\n$"))
      assert(injected and injected > 100, res)
    end)
  end)

  ---------------------------------------------------------------------------
  -- Property test: random operation sequences against a naive model.
  ---------------------------------------------------------------------------

  --- The model: a plain boolean array bits[1..n] (index i at bits[i + 1]).
  local function model(n)
    local bits = {}
    for i = 1, n do bits[i] = false end
    return { n = n, bits = bits, count = 0 }
  end

  local function mset(m, a, b, v)   -- [a, b) := v
    local bits, c = m.bits, m.count
    for i = a + 1, b do
      if bits[i] ~= v then bits[i] = v; c = c + (v and 1 or -1) end
    end
    m.count = c
  end

  local function mranges(m)
    local t, bits, i, n = {}, m.bits, 1, m.n
    while i <= n do
      if bits[i] then
        local j = i
        while j <= n and bits[j] do j = j + 1 end
        t[#t + 1] = i - 1
        t[#t + 1] = j - 1
        i = j
      else
        i = i + 1
      end
    end
    return t
  end

  local function mwire(m)
    local bytes, bits = {}, m.bits
    for k = 0, (m.n + 7) // 8 - 1 do
      local v = 0
      for j = 0, 7 do
        if bits[k * 8 + j + 1] then v = v | (0x80 >> j) end
      end
      bytes[#bytes + 1] = string.char(v)
    end
    return table.concat(bytes)
  end

  local function mcombine(x, y, f)
    local m = model(x.n)
    local c = 0
    for i = 1, x.n do
      local v = f(x.bits[i], y.bits[i])
      m.bits[i] = v
      if v then c = c + 1 end
    end
    m.count = c
    return m
  end

  --- First range of the flat list r ending after `from`, or nil.
  local function mfind(r, from)
    for k = 1, #r, 2 do
      if r[k + 1] > from then return k end
    end
  end

  local function mnext_set(r, from)
    local k = mfind(r, from)
    return k and math.max(r[k], from) or nil
  end

  local function mnext_clear(r, from, n)
    if from >= n then return nil end
    local k = mfind(r, from)
    local c = (k and r[k] <= from) and r[k + 1] or from
    return c < n and c or nil
  end

  --- assert with a message built only on failure (the hot loops check
  -- millions of conditions).
  local function ok(cond, ctx, fmt, ...)
    if not cond then error(ctx .. ": " .. string.format(fmt, ...), 2) end
  end

  local function same_list(want, got, what)
    if #want ~= #got then
      error(string.format("%s: %d range bounds, expected %d", what, #got, #want), 2)
    end
    for k = 1, #want do
      if want[k] ~= got[k] then
        error(string.format("%s: bound %d is %d, expected %d", what, k, got[k], want[k]), 2)
      end
    end
  end

  --- Full cross-check of s against m; `ctx` names the step in failures.
  local function check(s, m, ctx)
    local n = m.n
    assert(s:count() == m.count, ctx .. ": count " .. s:count() .. " ~= " .. m.count)
    assert(#s == m.count, ctx .. ": #s")
    assert(s:count(0, n) == m.count, ctx .. ": count(0, n)")
    assert(s:size() == n, ctx .. ": size")
    assert(s:full() == (m.count == n) and s:empty() == (m.count == 0), ctx .. ": full/empty")
    local r = mranges(m)
    same_list(r, flat(s), ctx .. ": ranges")
    -- has and next_* everywhere for small sets, at random points and at every
    -- range bound (where off-by-ones live) for big ones.
    local points = {}
    if n <= 1000 then
      -- Every point, against next_* computed by one backward scan.
      local ns, nc, nsv, ncv = {}, {}, nil, nil
      for i = n - 1, 0, -1 do
        if m.bits[i + 1] then nsv = i else ncv = i end
        ns[i], nc[i] = nsv, ncv
      end
      for i = 0, n do
        if i < n then ok(s:has(i) == m.bits[i + 1], ctx, "has(%d)", i) end
        ok(s:next_set(i) == ns[i], ctx, "next_set(%d)", i)
        ok(s:next_clear(i) == nc[i], ctx, "next_clear(%d)", i)
      end
    else
      for _ = 1, 50 do points[#points + 1] = math.random(0, n) end
      for k = 1, math.min(#r, 200) do
        points[#points + 1] = r[k]
        if r[k] > 0 then points[#points + 1] = r[k] - 1 end
      end
    end
    for _, i in ipairs(points) do
      if i < n then ok(s:has(i) == m.bits[i + 1], ctx, "has(%d)", i) end
      ok(s:next_set(i) == mnext_set(r, i), ctx, "next_set(%d)", i)
      ok(s:next_clear(i) == mnext_clear(r, i, n), ctx, "next_clear(%d)", i)
    end
    local w = s:to_wire()
    -- The naive export costs a second of Lua per few calls on a million
    -- pieces: big sets compare it at the end of a sequence only.
    if n <= 1000 or ctx:match("^final") then assert(w == mwire(m), ctx .. ": to_wire") end
    assert(bt.bitfield_from_wire(w, n) == s, ctx .. ": from_wire(to_wire)")
    return r
  end

  --- Cheap per-step check for big sets: count, and has around what changed.
  local function check_light(s, m, ctx, a, b)
    assert(s:count() == m.count, ctx .. ": count " .. s:count() .. " ~= " .. m.count)
    for _, i in ipairs({ a - 1, a, b - 1, b, math.random(0, m.n - 1) }) do
      if i >= 0 and i < m.n then
        ok(s:has(i) == m.bits[i + 1], ctx, "has(%d)", i)
      end
    end
  end

  --- One random sequence of `steps` operations on two sets of size n.
  -- maxlen bounds range operations (sparse use of big sets); full: check
  -- every step (small sets) or every `every` steps.
  local function run(n, seed, steps, maxlen, every)
    math.randomseed(seed)
    local sets = { bt.bitfield(n), bt.bitfield(n) }
    local models = { model(n), model(n) }
    local function pick_range()
      local a = math.random(0, n)
      local b = math.min(n, a + math.random(0, maxlen))
      return a, b
    end
    for step = 1, steps do
      local w = math.random(1, 2)
      local s, m = sets[w], models[w]
      local ctx = string.format("size %d seed %d step %d", n, seed, step)
      local op = math.random(1, 100)
      local a, b = 0, 0
      if n == 0 then
        op = 100
      elseif n > 1000 and op >= 88 and op <= 99 and math.random() < 0.7 then
        op = 1   -- the model's binary operations are O(n) Lua: fewer on big sets
      end
      if op <= 25 then
        a = math.random(0, n - 1); b = a + 1
        s:set(a); mset(m, a, b, true); ctx = ctx .. " set " .. a
      elseif op <= 45 then
        a = math.random(0, n - 1); b = a + 1
        s:clear(a); mset(m, a, b, false); ctx = ctx .. " clear " .. a
      elseif op <= 65 then
        a, b = pick_range()
        s:set_range(a, b); mset(m, a, b, true); ctx = ctx .. " set_range " .. a .. " " .. b
      elseif op <= 80 then
        a, b = pick_range()
        s:clear_range(a, b); mset(m, a, b, false); ctx = ctx .. " clear_range " .. a .. " " .. b
      elseif op <= 82 then
        s:set_all(); mset(m, 0, n, true); b = n; ctx = ctx .. " set_all"
      elseif op <= 84 then
        s:clear_all(); mset(m, 0, n, false); b = n; ctx = ctx .. " clear_all"
      elseif op <= 87 then
        -- Replace by an import of random bytes (spare bits cleared).
        if n <= 1000 then
          local bytes = {}
          local dense = math.random()
          for k = 1, (n + 7) // 8 do
            local v = math.random() < dense and 255 or (math.random() < 0.5 and 0 or math.random(0, 255))
            if k == (n + 7) // 8 and n % 8 ~= 0 then v = v & (0xFF << (8 - n % 8)) & 0xFF end
            bytes[k] = string.char(v)
          end
          local wire = table.concat(bytes)
          sets[w] = assert(bt.bitfield_from_wire(wire, n)); s = sets[w]
          for i = 0, n - 1 do
            local v = (wire:byte(i // 8 + 1) >> (7 - i % 8)) & 1 == 1
            if v ~= m.bits[i + 1] then mset(m, i, i + 1, v) end
          end
          b = n; ctx = ctx .. " from_wire"
        else
          sets[w] = s:copy(); s = sets[w]; ctx = ctx .. " copy"
        end
      elseif op <= 99 then
        -- Binary operations, checked fully; sometimes the result replaces s.
        local o, om = sets[3 - w], models[3 - w]
        local results = {
          { s:union(o), mcombine(m, om, function(x, y) return x or y end), "union" },
          { s:intersect(o), mcombine(m, om, function(x, y) return x and y end), "intersect" },
          { s:diff(o), mcombine(m, om, function(x, y) return x and not y end), "diff" },
        }
        for _, res in ipairs(results) do check(res[1], res[2], ctx .. " " .. res[3]) end
        -- next_diff / next_common: the next_set of the model's diff and
        -- intersection, at random points and every range bound.
        local rd, ri = mranges(results[3][2]), mranges(results[2][2])
        local pts = { 0, n }
        for _ = 1, 20 do pts[#pts + 1] = math.random(0, n) end
        for k = 1, math.min(#rd, 100) do pts[#pts + 1] = rd[k] end
        for k = 1, math.min(#ri, 100) do pts[#pts + 1] = ri[k] end
        for _, i in ipairs(pts) do
          ok(s:next_diff(o, i) == mnext_set(rd, i), ctx, "next_diff(%d)", i)
          ok(s:next_common(o, i) == mnext_set(ri, i), ctx, "next_common(%d)", i)
          local j = math.random(i, math.min(n, i + 3000))
          local c = 0
          for q = i + 1, j do if m.bits[q] then c = c + 1 end end
          ok(s:count(i, j) == c, ctx, "count(%d, %d)", i, j)
        end
        local same = true
        for i = 1, n do
          if m.bits[i] ~= om.bits[i] then same = false; break end
        end
        assert((s == o) == same, ctx .. ": ==")
        if math.random() < 0.5 then
          local res = results[math.random(1, 3)]
          sets[w], models[w] = res[1], res[2]
          s, m = res[1], res[2]
          ctx = ctx .. " := " .. res[3]
        end
        b = n
      else
        ctx = ctx .. " nothing"
      end
      if every == 1 or step % every == 0 or step == steps then
        check(s, m, ctx)
      elseif n > 0 then
        check_light(s, m, ctx, a, b)
      end
    end
    check(sets[1], models[1], "final 1")
    check(sets[2], models[2], "final 2")
  end

  describe("random operation sequences against a boolean-array model", function()
    -- { size, sequences, steps per sequence, longest range op, full check every }
    local plans = {
      { 0, 20, 10, 1, 1 },
      { 1, 1000, 20, 1, 1 },
      { 7, 1000, 25, 7, 1 },
      { 8, 1000, 25, 8, 1 },
      { 9, 1000, 25, 9, 1 },
      { 64, 500, 30, 64, 1 },
      { 1000, 100, 40, 300, 1 },
      { 1000000, 6, 50, 5000, 25 },
    }
    for _, p in ipairs(plans) do
      local n, seqs, steps, maxlen, every = table.unpack(p)
      it(string.format("size %d: %d sequences of %d steps", n, seqs, steps), function()
        for seq = 1, seqs do run(n, n * 7919 + seq, steps, maxlen, every) end
      end)
    end
  end)
end)
