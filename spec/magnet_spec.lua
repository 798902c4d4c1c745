-- Magnet URIs (BEP 9): bt.magnet_parse, the C parser in csrc/codec/magnet.c.
local bt = require "bt"

local HEX = "0123456789abcdef0123456789abcdef01234567"
local H = require "helpers"
local RAW = (HEX:gsub("..", function(h) return string.char(tonumber(h, 16)) end))
local B32 = H.base32(RAW)   -- the same 20 bytes in base32, computed here rather than copied

local function refused(uri, pattern)
  local r, err, off = bt.magnet_parse(uri)
  assert.is_nil(r)
  assert.is_string(err)
  assert.is_number(off)
  if pattern then assert.matches(pattern, err) end
  return err
end

describe("magnet URIs", function()
  it("reads a 40-digit hex info-hash, dn, tr (repeated, URL-encoded) and x.pe", function()
    local m = assert(bt.magnet_parse("magnet:?xt=urn:btih:" .. HEX:upper() .. "&dn=Some+Name%21"
      .. "&tr=http%3A%2F%2F127.0.0.1%3A6969%2Fannounce&tr=udp://127.0.0.1:6969&tr.2=https://t.example/a?b=c"
      .. "&x.pe=127.0.0.1:6881&x.pe=[::1]:51413&ws=http://ignored"))
    assert.are.equal(RAW, m.info_hash)
    assert.are.equal(HEX, m.info_hash_hex)
    assert.are.equal("Some Name!", m.name)
    assert.are.same({ "http://127.0.0.1:6969/announce", "udp://127.0.0.1:6969", "https://t.example/a?b=c" },
      m.trackers)
    assert.are.same({ "127.0.0.1:6881", "[::1]:51413" }, m.peers)
    assert.are.equal(0, m.trackers_dropped)
  end)

  it("reads a 32-character base32 info-hash, in either case, as the same hash", function()
    assert.are.equal(32, #B32)
    assert.are.equal(HEX, bt.magnet_parse("magnet:?xt=urn:btih:" .. B32).info_hash_hex)
    assert.are.equal(HEX, bt.magnet_parse("MAGNET:?xt=URN:BTIH:" .. B32:lower()).info_hash_hex)
    -- the same hash twice (hex and base32) is one hash
    assert.is_table(bt.magnet_parse("magnet:?xt=urn:btih:" .. HEX .. "&xt.1=urn:btih:" .. B32))
  end)

  it("refuses bad hex, bad base32 and other lengths, with the reason", function()
    refused("magnet:?xt=urn:btih:" .. HEX:sub(1, 39) .. "g", "not a hex digit")
    refused("magnet:?xt=urn:btih:" .. B32:sub(1, 31) .. "1", "not base32")
    refused("magnet:?xt=urn:btih:" .. B32:sub(1, 31) .. "=", "not base32")
    refused("magnet:?xt=urn:btih:" .. HEX .. "0", "40 hex digits or 32 base32")
    refused("magnet:?xt=urn:btih:", "40 hex digits or 32 base32")
    refused("magnet:?xt=urn:btih:" .. HEX .. "&xt=urn:btih:" .. HEX:gsub("^0", "1"), "two different")
  end)

  it("refuses what is not a magnet URI, or has no btih", function()
    refused("", "not a magnet URI")
    refused("http://example.com/?xt=urn:btih:" .. HEX, "not a magnet URI")
    refused("magnet:?dn=x&tr=http://a", "no xt=urn:btih:")
    refused("magnet:?xt=urn:btmh:1220" .. string.rep("ab", 32), "btmh%-only magnets are not supported")
    refused("magnet:?xt=urn:btih:" .. HEX .. "&dn", "without '='")
  end)

  it("refuses bad escapes, control bytes and bad peer addresses", function()
    local base = "magnet:?xt=urn:btih:" .. HEX
    refused(base .. "&tr=http://a/%zz", "%%%-escape")
    refused(base .. "&tr=http://a/%4", "%%%-escape")
    refused(base .. "&tr=http://a/%0a", "control byte")
    refused(base .. "&tr=", "empty tr")
    refused(base .. "&dn=a%00b", "NUL byte in dn")
    for _, pe in ipairs { "127.0.0.1", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:x", ":6881", "[::1:6881",
                          "a b:1", "1:2:3" } do
      refused(base .. "&x.pe=" .. pe, "x.pe")
    end
    -- the offset names the parameter
    local _, _, off = bt.magnet_parse(base .. "&tr=http://a/%zz")
    assert.are.equal(#base + 1 + #"tr=http://a/", off)
  end)

  it("keeps 32 of 100 tr parameters and counts the rest; skips schemes it cannot announce to", function()
    local parts = { "magnet:?xt=urn:btih:" .. HEX }
    for i = 1, 100 do parts[#parts + 1] = ("tr=http%%3A%%2F%%2Ft%d.example%%2Fannounce"):format(i) end
    parts[#parts + 1] = "tr=wss://tracker.example"
    local m = assert(bt.magnet_parse(table.concat(parts, "&")))
    assert.are.equal(32, #m.trackers)
    assert.are.equal("http://t1.example/announce", m.trackers[1])
    assert.are.equal("http://t32.example/announce", m.trackers[32])
    assert.are.equal(69, m.trackers_dropped)
    -- the same tracker twice is kept once
    m = assert(bt.magnet_parse("magnet:?xt=urn:btih:" .. HEX .. "&tr=http://a&tr=http%3A%2F%2Fa"))
    assert.are.same({ "http://a" }, m.trackers)
  end)

  it("refuses a URI over 64 KiB (a dn of 100 KB) and cuts a long dn at 1024 bytes on a UTF-8 boundary", function()
    refused("magnet:?xt=urn:btih:" .. HEX .. "&dn=" .. string.rep("a", 100 * 1000), "longer than 65536")
    local m = assert(bt.magnet_parse("magnet:?xt=urn:btih:" .. HEX .. "&dn=" .. string.rep("%E2%82%AC", 2000)))
    assert.are.equal(1023, #m.name)   -- 341 euro signs of 3 bytes: the 342nd would pass 1024
    assert.is_truthy(utf8.len(m.name))
    m = assert(bt.magnet_parse("magnet:?xt=urn:btih:" .. HEX .. "&dn=a%0Ab"))
    assert.are.equal("a?b", m.name)
  end)

  it("survives random bytes and random parameter soups without raising", function()
    math.randomseed(12)
    local pieces = { "xt=", "urn:btih:", HEX, B32, "&", "=", "%", "%4", "%41", "tr=", "dn=", "x.pe=", "+", ":",
                     "[", "]", "\0", "\n", "http://", "udp://", "xt.1=", "tr.9=" }
    for _ = 1, 3000 do
      local t = { "magnet:?" }
      for _ = 1, math.random(0, 12) do t[#t + 1] = pieces[math.random(#pieces)] end
      local ok, r, err = pcall(bt.magnet_parse, table.concat(t))
      assert.is_true(ok)
      assert.is_true(r ~= nil or type(err) == "string")
    end
  end)
end)
