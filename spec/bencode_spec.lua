-- Specs for bt.bdecode / bt.bdecode_tokens / bt.bencode (csrc/bencode.c, csrc/l_bencode.c).
-- Error offsets are 0-based byte offsets into the input.
local bt = require "bt"
local H = require "helpers"

local MAX_DEPTH = 256   -- BT_BENC_MAX_DEPTH in csrc/bencode.h

-- Deep equality that also compares the list/dict tags.
local function same(a, b)
  if type(a) ~= type(b) then return false end
  if type(a) ~= "table" then return a == b and math.type(a) == math.type(b) end
  if getmetatable(a) ~= getmetatable(b) then return false end
  for k, v in pairs(a) do if not same(v, b[k]) then return false end end
  for k in pairs(b) do if a[k] == nil then return false end end
  return true
end

local function rejects(input, msg, offset, opts)
  local v, m, off = bt.bdecode(input, opts)
  assert.is_nil(v, "accepted " .. input)
  assert.are.equal(msg, m)
  assert.are.equal(offset, off)
  -- The token-only entry point reports the same error.
  local n, m2, off2 = bt.bdecode_tokens(input, opts)
  assert.is_nil(n)
  assert.are.equal(msg, m2)
  assert.are.equal(offset, off2)
end

describe("bt.bdecode", function()
  it("decodes every BEP 3 type", function()
    assert.are.equal(0, bt.bdecode("i0e"))
    assert.are.equal(-42, bt.bdecode("i-42e"))
    assert.are.equal("integer", math.type(bt.bdecode("i7e")))
    assert.are.equal("", bt.bdecode("0:"))
    assert.are.equal("spam", bt.bdecode("4:spam"))
    assert.are.equal("a\0b\255", bt.bdecode("4:a\0b\255"))
    local l = bt.bdecode("l4:spami42ee")
    assert.are.equal(bt.list_mt, getmetatable(l))
    assert.are.same({ "spam", 42 }, setmetatable(l, nil))
    local d = bt.bdecode("d3:bar4:spam3:fooi42ee")
    assert.are.equal(bt.dict_mt, getmetatable(d))
    assert.are.equal("spam", d.bar)
    assert.are.equal(42, d.foo)
  end)

  it("keeps empty lists and dicts apart", function()
    local l, d = bt.bdecode("le"), bt.bdecode("de")
    assert.are.equal(bt.list_mt, getmetatable(l))
    assert.are.equal(bt.dict_mt, getmetatable(d))
    assert.is_nil(next(l))
    assert.is_nil(next(d))
    assert.are.equal("le", bt.bencode(l))
    assert.are.equal("de", bt.bencode(d))
  end)

  it("decodes nested values", function()
    local v = assert(bt.bdecode("d1:ai42e1:bl1:x1:yd1:zleee1:ci-7ee"))
    assert.are.equal(42, v.a)
    assert.are.equal(-7, v.c)
    assert.are.equal("x", v.b[1])
    assert.are.equal("y", v.b[2])
    assert.are.equal(bt.list_mt, getmetatable(v.b[3].z))
  end)

  it("accepts the int64 limits and rejects one past them", function()
    assert.are.equal(math.maxinteger, bt.bdecode("i9223372036854775807e"))
    assert.are.equal(math.mininteger, bt.bdecode("i-9223372036854775808e"))
    rejects("i9223372036854775808e", "integer overflow", 19)
    rejects("i-9223372036854775809e", "integer overflow", 20)
    rejects("i92233720368547758070e", "integer overflow", 20)
    rejects("i99999999999999999999e", "integer overflow", 19)
    rejects("i-99999999999999999999e", "integer overflow", 20)
    assert.are.equal(922337203685477580, bt.bdecode("i922337203685477580e"))
  end)

  describe("rejects malformed integers", function()
    it("leading zeros", function()
      rejects("i03e", "leading zero in integer", 1)
      rejects("i00e", "leading zero in integer", 1)
      rejects("i-03e", "leading zero in integer", 2)
    end)
    it("negative zero", function() rejects("i-0e", "negative zero", 1) end)
    it("a sign without digits", function() rejects("i-e", "expected digit", 2) end)
    it("no digits", function() rejects("ie", "empty integer", 1) end)
    it("junk inside", function()
      rejects("i1xe", "expected digit or 'e'", 2)
      rejects("i0xe", "expected digit or 'e'", 2)
      rejects("i+1e", "expected digit", 1)
      rejects("i--1e", "expected digit", 2)
      rejects("i 1e", "expected digit", 1)
    end)
    it("truncated", function()
      rejects("i", "unexpected end of input", 1)
      rejects("i-", "unexpected end of input", 2)
      rejects("i12", "unexpected end of input", 3)
      rejects("i0", "unexpected end of input", 2)
    end)
  end)

  describe("rejects malformed strings", function()
    it("length with a leading zero", function()
      rejects("01:a", "leading zero in string length", 0)
      rejects("l00:e", "leading zero in string length", 1)
    end)
    it("length past the end", function()
      rejects("5:ab", "string length past end of input", 0)
      rejects("l3:ab", "string length past end of input", 1)
      rejects("99999999999999999999999:x", "string length past end of input", 0)
    end)
    it("missing colon", function()
      rejects("3", "unexpected end of input", 1)
      rejects("3x", "expected ':' after string length", 1)
      rejects("l1-e", "expected ':' after string length", 2)
    end)
    it("negative length", function() rejects("-1:a", "invalid character", 0) end)
  end)

  describe("rejects malformed structure", function()
    it("empty input", function() rejects("", "empty input", 0) end)
    it("trailing bytes after the top value", function()
      rejects("i1ei2e", "trailing data after value", 3)
      rejects("lee", "trailing data after value", 2)
      rejects("0:\0", "trailing data after value", 2)
    end)
    it("truncated containers", function()
      rejects("l", "unexpected end of input", 1)
      rejects("d", "unexpected end of input", 1)
      rejects("d1:a", "unexpected end of input", 4)
      rejects("l4:spam", "unexpected end of input", 7)
      rejects("lli1e", "unexpected end of input", 5)
    end)
    it("a stray 'e'", function() rejects("e", "unexpected 'e'", 0) end)
    it("unknown bytes", function()
      rejects("x", "invalid character", 0)
      rejects("lxe", "invalid character", 1)
      rejects("d1:a?e", "invalid character", 4)
    end)
    it("non-string dict keys", function()
      rejects("di1ei2ee", "dict key is not a string", 1)
      rejects("dlei1ee", "dict key is not a string", 1)
      rejects("d1:ai1edei1ee", "dict key is not a string", 7)
    end)
    it("a key without a value", function()
      rejects("d1:ae", "missing dict value", 4)
      rejects("d1:ai1e1:be", "missing dict value", 10)
    end)
    it("errors deep inside report their own offset", function()
      rejects("d4:infod5:filesld6:lengthi01eeeee", "leading zero in integer", 26)
    end)
    it("every proper prefix of a valid document", function()
      local doc = "d8:announce3:url4:infod6:lengthi12345e4:name3:abc6:piecesl0:1:xeee"
      assert.is_table(bt.bdecode(doc))
      for i = 1, #doc - 1 do
        local v, msg, off = bt.bdecode(doc:sub(1, i))
        assert.is_nil(v)
        assert.is_string(msg)
        assert.is_true(off >= 0 and off <= i, msg .. " @" .. tostring(off))
      end
    end)
  end)

  describe("dict key order", function()
    it("rejects unsorted keys by default", function()
      rejects("d1:bi1e1:ai2ee", "dict keys not sorted", 7)
      -- byte order, shorter prefix first: "ab" < "b", "a" < "ab"
      assert.is_table(bt.bdecode("d1:ai1e2:abi2e1:bi3ee"))
      rejects("d2:abi1e1:ai2ee", "dict keys not sorted", 8)
      -- bytes compare unsigned: "\255" sorts after "a"
      assert.is_table(bt.bdecode("d1:ai1e1:\255i2ee"))
      rejects("d1:\255i1e1:ai2ee", "dict keys not sorted", 7)
    end)

    it("accepts unsorted keys only with opts.unsorted", function()
      local v = assert(bt.bdecode("d1:bi1e1:ai2ee", { unsorted = true }))
      assert.are.equal(1, v.b)
      assert.are.equal(2, v.a)
      assert.are.equal(5, bt.bdecode_tokens("d1:bi1e1:ai2ee", { unsorted = true }))
      rejects("d1:bi1e1:ai2ee", "dict keys not sorted", 7, { unsorted = false })
      -- re-encoding sorts the keys
      assert.are.equal("d1:ai2e1:bi1ee", bt.bencode(v))
    end)

    it("rejects duplicate keys in both modes", function()
      rejects("d1:ai1e1:ai2ee", "duplicate dict key", 7)
      rejects("d1:ai1e1:ai2ee", "duplicate dict key", 7, { unsorted = true })
      -- not adjacent: only found by the sort at the dict's end
      rejects("d1:bi1e1:ai2e1:bi3ee", "duplicate dict key", 13, { unsorted = true })
      rejects("d1:ci1e1:ai2e1:bi3e1:ai4e1:ci5ee", "duplicate dict key", 19, { unsorted = true })
      -- in a nested dict, with the outer dict unsorted too
      rejects("d1:zi0e1:yd1:bi1e1:ai2e1:bi3eee", "duplicate dict key", 23, { unsorted = true })
    end)

    it("finds a duplicate among many unsorted keys quickly", function()
      local n = 100000
      local parts = { "d" }
      for i = n, 1, -1 do
        local k = string.format("k%06d", i)
        parts[#parts + 1] = #k .. ":" .. k .. "i" .. i .. "e"
      end
      local ok = table.concat(parts) .. "e"
      local t0 = os.clock()
      assert.are.equal(2 * n + 1, bt.bdecode_tokens(ok, { unsorted = true }))
      local dup = table.concat(parts) .. "7:k050000i0ee"
      local v, msg, off = bt.bdecode(dup, { unsorted = true })
      assert.is_nil(v)
      assert.are.equal("duplicate dict key", msg)
      assert.are.equal(#table.concat(parts), off)
      -- a quadratic check would take minutes here
      assert.is_true(os.clock() - t0 < 5)
    end)
  end)

  describe("nesting", function()
    it("accepts exactly the depth limit", function()
      local s = string.rep("l", MAX_DEPTH) .. string.rep("e", MAX_DEPTH)
      local v = assert(bt.bdecode(s))
      for _ = 1, MAX_DEPTH - 1 do v = v[1] end
      assert.are.equal(bt.list_mt, getmetatable(v))
      assert.is_nil(next(v))
      assert.are.equal(s, bt.bencode(bt.bdecode(s)))
      local d = string.rep("d1:a", MAX_DEPTH - 1) .. "de" .. string.rep("e", MAX_DEPTH - 1)
      assert.are.equal(d, bt.bencode(assert(bt.bdecode(d))))
    end)
    it("rejects one level more", function()
      local s = string.rep("l", MAX_DEPTH + 1) .. string.rep("e", MAX_DEPTH + 1)
      rejects(s, "nesting too deep", MAX_DEPTH)
      local d = string.rep("d1:a", MAX_DEPTH) .. "le" .. string.rep("e", MAX_DEPTH)
      rejects(d, "nesting too deep", 4 * MAX_DEPTH)
    end)
    it("rejects a hostile unterminated nest without trouble", function()
      rejects(string.rep("l", 1000000), "nesting too deep", MAX_DEPTH)
    end)
  end)

  describe("big inputs", function()
    package.path = "bench/?.lua;" .. package.path
    local big = require("big_torrent")(20000)

    it("decode the generated multi-file torrent", function()
      local t = assert(bt.bdecode(big))
      assert.are.equal(20000, #t.info.files)
      assert.are.equal("file-000001.dat", t.info.files[1].path[3])
      assert.are.equal(big, bt.bencode(t))
      -- the top dict and its 3 keys and 3 values (one is the info dict), the info
      -- dict's 4 keys and 4 values (one is the files list), and per file: dict,
      -- 2 keys, int, list, 3 strings
      assert.are.equal(1 + 6 + 8 + 20000 * 8, bt.bdecode_tokens(big))
    end)

    it("a long string", function()
      local s = string.rep("\1\2\3", 1000000)
      assert.are.equal(s, bt.bdecode(#s .. ":" .. s))
      rejects(#s + 1 .. ":" .. s, "string length past end of input", 0)
    end)

    it("a long list of the smallest tokens", function()
      local s = "l" .. string.rep("0:", 500000) .. "e"
      assert.are.equal(500001, bt.bdecode_tokens(s))
      assert.are.equal(500000, #bt.bdecode(s))
    end)
  end)

  describe("max_tokens", function()
    it("refuses at the first value over the limit, naming the limit and that value's offset", function()
      rejects("l0:0:0:e", "too many tokens (limit 3)", 5, { max_tokens = 3 })
      assert.are.equal(4, bt.bdecode_tokens("l0:0:0:e", { max_tokens = 4 }))
      assert.are.same({ "", "", "" }, setmetatable(bt.bdecode("l0:0:0:e", { max_tokens = 4 }), nil))
      -- d, "a", l, i1e are 4 tokens: i2e is the fifth
      rejects("d1:ali1ei2eee", "too many tokens (limit 4)", 8, { max_tokens = 4 })
      rejects("d1:bi1e1:ai2ee", "too many tokens (limit 4)", 10, { max_tokens = 4, unsorted = true })
      -- Nothing past the limit is read: the 'x' would be an error of its own.
      rejects("l0:0:x", "invalid character", 5)
      rejects("l0:0:x", "too many tokens (limit 2)", 3, { max_tokens = 2 })
      -- Unclosed lists cost a byte a token: more than #s / 2 tokens before the
      -- end is found missing, which is the error (not a limit, not memory).
      rejects(string.rep("l", 200) .. string.rep("le", 100), "unexpected end of input", 400)
      -- A limit above what the input can hold changes nothing.
      assert.are.equal(2, bt.bdecode_tokens("l0:e", { max_tokens = (1 << 32) - 1 }))
    end)

    it("raises on a max_tokens that is not a count", function()
      for _, bad in ipairs { 0, -1, 1.5, "10", 1 << 32 } do
        assert.has_error(function() bt.bdecode("le", { max_tokens = bad }) end, nil, tostring(bad))
        assert.has_error(function() bt.bdecode_tokens("le", { max_tokens = bad }) end, nil, tostring(bad))
      end
    end)

    it("stops five million tokens at the limit without reserving memory for them", function()
      -- In a child process, so that its peak RSS (VmHWM) is this test's alone.
      local code = [[
        local bt = require "bt"
        local function peak_kb()
          for l in io.lines("/proc/self/status") do
            local kb = l:match("^VmHWM:%s*(%d+)")
            if kb then return tonumber(kb) end
          end
        end
        local s = "l" .. string.rep("0:", 5000000) .. "e"
        local base = peak_kb()
        local n, msg, off = bt.bdecode_tokens(s, { max_tokens = 1000 })
        local limited = peak_kb() - base
        local all = bt.bdecode_tokens(s)
        print(tostring(n), msg, off, limited, all, peak_kb() - base)
      ]]
      local out, ok = H.sh_bt(H.lua_env() .. " timeout 60 lua5.4 -e " .. H.q(code))
      assert.is_true(ok, out)
      local n, msg, off, limited, all, unlimited = out:match("^(%S+)\t(.-)\t(%d+)\t(%d+)\t(%d+)\t(%d+)")
      assert.are.equal("nil", n, out)
      assert.are.equal("too many tokens (limit 1000)", msg)
      assert.are.equal(1 + 2 * 999, tonumber(off))
      assert.are.equal(5000001, tonumber(all))
      -- The same measure sees the 16 bytes a token of the unlimited decode (80 MB)...
      assert.is_true(tonumber(unlimited) > 5000000 * 16 / 1024 / 2, out)
      -- ...and next to nothing for the limited one (1000 tokens are 16 KB).
      assert.is_true(tonumber(limited) < 4096, out)
    end)
  end)

  it("raises on misuse", function()
    assert.has_error(function() bt.bdecode() end)
    assert.has_error(function() bt.bdecode({}) end)
    assert.has_error(function() bt.bdecode("le", 5) end)
    assert.has_error(function() bt.bdecode_tokens("le", "x") end)
  end)
end)

describe("bt.bencode", function()
  it("encodes every type, dict keys in byte order", function()
    assert.are.equal("i42e", bt.bencode(42))
    assert.are.equal("i-42e", bt.bencode(-42))
    assert.are.equal("i0e", bt.bencode(0))
    assert.are.equal("i9223372036854775807e", bt.bencode(math.maxinteger))
    assert.are.equal("i-9223372036854775808e", bt.bencode(math.mininteger))
    assert.are.equal("4:spam", bt.bencode("spam"))
    assert.are.equal("0:", bt.bencode(""))
    assert.are.equal("l4:spami1ee", bt.bencode({ "spam", 1 }))
    assert.are.equal("d1:ai1e2:abi3e1:bi2e1:\255i4ee",
      bt.bencode({ b = 2, a = 1, ab = 3, ["\255"] = 4 }))
    assert.are.equal("d4:infod4:name1:xee", bt.bencode({ info = { name = "x" } }))
  end)

  it("accepts floats with an exact integer value only", function()
    assert.are.equal("i3e", bt.bencode(3.0))
    assert.are.equal("i-1024e", bt.bencode(-1024.0))
    assert.has_error(function() bt.bencode(1.5) end, "bt.bencode: cannot encode non-integer number 1.5")
    assert.has_error(function() bt.bencode(0 / 0) end, "bt.bencode: cannot encode NaN")
    assert.has_error(function() bt.bencode(math.huge) end)
    assert.has_error(function() bt.bencode(2.0 ^ 63) end)
  end)

  it("uses the tags, and refuses what they contradict", function()
    assert.are.equal("le", bt.bencode(bt.list()))
    assert.are.equal("de", bt.bencode(bt.dict()))
    assert.are.equal("le", bt.bencode(bt.list {}))
    assert.are.equal("li1ei2ee", bt.bencode(bt.list { 1, 2 }))
    assert.are.equal("d1:1i1ee", bt.bencode(bt.dict { ["1"] = 1 }))
    assert.has_error(function() bt.bencode(bt.dict { 1, 2 }) end, "bt.bencode: dict key must be a string")
    assert.has_error(function() bt.bencode(bt.list { a = 1 }) end,
      "bt.bencode: bt.list table has keys other than 1..n")
    assert.has_error(function() bt.bencode(bt.list { 1, nil, 3 }) end,
      "bt.bencode: bt.list table has keys other than 1..n")
  end)

  it("raises on values bencode cannot hold", function()
    assert.has_error(function() bt.bencode({}) end,
      "bt.bencode: ambiguous empty table: use bt.list{} or bt.dict{}")
    assert.has_error(function() bt.bencode(true) end, "bt.bencode: cannot encode a boolean")
    assert.has_error(function() bt.bencode(print) end, "bt.bencode: cannot encode a function")
    assert.has_error(function() bt.bencode(nil) end, "bt.bencode: cannot encode a nil")
    assert.has_error(function() bt.bencode({ 1, false }) end, "bt.bencode: cannot encode a boolean")
    assert.has_error(function() bt.bencode({ 1, x = 2 }) end,
      "bt.bencode: table is neither a list (keys 1..n) nor a dict (string keys)")
    assert.has_error(function() bt.bencode({ [1] = 1, [3] = 3 }) end,
      "bt.bencode: table is neither a list (keys 1..n) nor a dict (string keys)")
    assert.has_error(function() bt.bencode({ [1.5] = 1 }) end)
    assert.has_error(function() bt.bencode(bt.dict { [true] = 1 }) end)
  end)

  it("stops cycles at the depth limit", function()
    local t = {}
    t[1] = t
    assert.has_error(function() bt.bencode(t) end, "bt.bencode: nesting deeper than 256 (a cycle?)")
    local d = bt.dict()
    d.self = d
    assert.has_error(function() bt.bencode(d) end, "bt.bencode: nesting deeper than 256 (a cycle?)")
  end)

  it("encodes exactly the depth limit and no more", function()
    local v = bt.list()
    for _ = 2, MAX_DEPTH do v = { v } end
    assert.are.equal(string.rep("l", MAX_DEPTH) .. string.rep("e", MAX_DEPTH), bt.bencode(v))
    assert.has_error(function() bt.bencode({ v }) end)
  end)

  it("does not leak or break after many raised errors", function()
    for _ = 1, 2000 do
      assert.is_false(pcall(bt.bencode, { a = { 1, 2, { b = true } } }))
    end
    assert.are.equal("i1e", bt.bencode(1))
  end)
end)

describe("round trip", function()
  -- Random values of every shape, from fixed seeds so failures replay.
  local function rand_string(r)
    local n = r(0, 3) == 0 and r(0, 300) or r(0, 8)
    local b = {}
    for i = 1, n do b[i] = r(0, 255) end
    return string.char(table.unpack(b))
  end

  local function rand_int(r)
    local pick = r(0, 5)
    if pick == 0 then return math.maxinteger - r(0, 3) end
    if pick == 1 then return math.mininteger + r(0, 3) end
    if pick == 2 then return r(-10, 10) end
    return r(math.mininteger, math.maxinteger)
  end

  local function rand_value(r, depth)
    local pick = r(0, depth > 6 and 1 or 3)
    if pick == 0 then return rand_int(r) end
    if pick == 1 then return rand_string(r) end
    local n = r(0, 6)
    if pick == 2 then
      local l = bt.list()
      for i = 1, n do l[i] = rand_value(r, depth + 1) end
      return l
    end
    local d = bt.dict()
    for _ = 1, n do d[rand_string(r)] = rand_value(r, depth + 1) end
    return d
  end

  for _, seed in ipairs({ 1, 2, 3, 42, 20240601 }) do
    it("bencode then bdecode gives the value back (seed " .. seed .. ")", function()
      math.randomseed(seed)
      local r = math.random
      for _ = 1, 1000 do
        local v = rand_value(r, 0)
        local s = bt.bencode(v)
        local back, msg, off = bt.bdecode(s)
        assert(back ~= nil, tostring(msg) .. " @" .. tostring(off))
        assert.is_true(same(v, back))
        -- canonical input: decode then encode gives the same bytes
        assert.are.equal(s, bt.bencode(back))
        assert.is_number(bt.bdecode_tokens(s))
      end
    end)
  end

  it("mutated documents are decoded or rejected, never crash (seed 7)", function()
    math.randomseed(7)
    local r = math.random
    local accepted, rejected = 0, 0
    for _ = 1, 3000 do
      local s = bt.bencode(rand_value(r, 3))
      local b = { s:byte(1, -1) }
      for _ = 1, r(1, 3) do
        if #b == 0 then break end
        local at = r(1, #b)
        local op = r(0, 2)
        if op == 0 then b[at] = r(0, 255)
        elseif op == 1 then table.remove(b, at)
        else table.insert(b, at, ("ilde0123456789:-"):byte(r(1, 16))) end
      end
      local m = string.char(table.unpack(b))
      local v, msg, off = bt.bdecode(m)
      if v == nil then
        rejected = rejected + 1
        assert.is_string(msg)
        assert.is_true(off >= 0 and off <= #m)
      else
        accepted = accepted + 1
        -- anything strict decoding accepts is canonical
        assert.are.equal(m, bt.bencode(v))
      end
    end
    assert.is_true(accepted > 0 and rejected > 0)
  end)
end)
