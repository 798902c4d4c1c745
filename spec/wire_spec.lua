-- Peer-wire codec: bt.wire.decoder / encode / handshake over csrc/wire.c.
local bt = require "bt"
local wire = bt.wire

local IH = string.rep("\x11", 20)
local PID = "-BT0001-" .. string.rep("7", 12)

-- One table of every message type the decoder can return, handshake excluded.
local function every_message()
  return {
    { type = "keepalive" },
    { type = "choke" },
    { type = "unchoke" },
    { type = "interested" },
    { type = "not_interested" },
    { type = "have", index = 42 },
    { type = "bitfield", bits = "\xff\xfe\x80" },
    { type = "request", index = 7, begin = 16384, length = 16384 },
    { type = "piece", index = 7, begin = 16384, block = string.rep("B", 16384) },
    { type = "cancel", index = 7, begin = 16384, length = 16384 },
    { type = "port", port = 6881 },
    { type = "suggest", index = 3 },
    { type = "have_all" },
    { type = "have_none" },
    { type = "reject", index = 1, begin = 0, length = 16384 },
    { type = "allowed_fast", index = 0xffffffff },
    { type = "extended", id = 0, payload = "d1:md11:ut_metadatai3eee" },
    { type = "unknown", id = 42, payload = "opaque" },
  }
end

local function stream_of(msgs)
  local parts = {}
  for i, m in ipairs(msgs) do parts[i] = wire.encode(m) end
  return table.concat(parts)
end

-- Feed `s` to a fresh decoder in the chunks `sizes` (cycled), collect everything.
local function decode_chunked(s, sizes, opts)
  local dec = wire.decoder(opts)
  local out, pos, k = {}, 1, 1
  while pos <= #s do
    local n = sizes[(k - 1) % #sizes + 1]
    local got, err = dec:feed(s:sub(pos, pos + n - 1))
    assert(got, err)
    for _, m in ipairs(got) do out[#out + 1] = m end
    pos, k = pos + n, k + 1
  end
  return out, dec
end

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

describe("bt.wire", function()
  describe("round trip", function()
    for _, m in ipairs(every_message()) do
      it("of " .. m.type, function()
        local bytes = wire.encode(m)
        local got = assert(wire.decoder():feed(bytes))
        assert.are.equal(1, #got)
        assert.are.same(m, got[1])
        assert.are.equal(bytes, wire.encode(got[1]))
      end)
    end

    it("of a handshake with every flag combination", function()
      for bits = 0, 7 do
        local flags = { extensions = bits & 1 ~= 0, fast = bits & 2 ~= 0, dht = bits & 4 ~= 0 }
        local hs = wire.handshake { info_hash = IH, peer_id = PID,
          extensions = flags.extensions, fast = flags.fast, dht = flags.dht }
        assert.are.equal(68, #hs)
        local got = assert(wire.decoder { handshake = true }:feed(hs))
        assert.are.equal(1, #got)
        local h = got[1]
        assert.are.equal("handshake", h.type)
        assert.are.equal(IH, h.info_hash)
        assert.are.equal(PID, h.peer_id)
        assert.are.equal(8, #h.reserved)
        assert.are.equal(flags.extensions, h.extensions)
        assert.are.equal(flags.fast, h.fast)
        assert.are.equal(flags.dht, h.dht)
        assert.are.equal(hs, wire.encode(h))
      end
    end)

    it("keeps reserved bits it does not know about", function()
      local reserved = "\x80\0\0\0\0\0\0\x02"
      local hs = wire.handshake { info_hash = IH, peer_id = PID, reserved = reserved, extensions = true }
      assert.are.equal("\x80\0\0\0\0\x10\0\x02", hs:sub(21, 28))
      local h = assert(wire.decoder { handshake = true }:feed(hs))[1]
      assert.are.equal(hs:sub(21, 28), h.reserved)
      assert.is_true(h.extensions)
      assert.is_false(h.fast)
    end)

    it("of a piece at the largest raised block size", function()
      local m = { type = "piece", index = 1, begin = 0, block = string.rep("z", wire.MAX_BLOCK) }
      local got = assert(wire.decoder { max_block = wire.MAX_BLOCK }:feed(wire.encode(m)))
      assert.are.same({ m }, got)
    end)

    it("of empty payloads", function()
      local msgs = {
        { type = "bitfield", bits = "" },
        { type = "piece", index = 0, begin = 0, block = "" },
        { type = "extended", id = 255, payload = "" },
        { type = "unknown", id = 255, payload = "" },
      }
      assert.are.same(msgs, assert(wire.decoder():feed(stream_of(msgs))))
    end)
  end)

  describe("byte-exact encodings (BEP 3, 5, 6, 10)", function()
    local cases = {
      { { type = "keepalive" }, "00000000" },
      { { type = "choke" }, "0000000100" },
      { { type = "unchoke" }, "0000000101" },
      { { type = "interested" }, "0000000102" },
      { { type = "not_interested" }, "0000000103" },
      { { type = "have", index = 0x01020304 }, "000000050401020304" },
      { { type = "bitfield", bits = "\xa0" }, "0000000205a0" },
      { { type = "request", index = 1, begin = 0x4000, length = 0x4000 },
        "0000000d06000000010000400000004000" },
      { { type = "piece", index = 2, begin = 0, block = "ab" }, "0000000b07000000020000000061 62" },
      { { type = "cancel", index = 1, begin = 0x4000, length = 0x4000 },
        "0000000d08000000010000400000004000" },
      { { type = "port", port = 6881 }, "00000003091ae1" },
      { { type = "suggest", index = 5 }, "000000050d00000005" },
      { { type = "have_all" }, "000000010e" },
      { { type = "have_none" }, "000000010f" },
      { { type = "reject", index = 1, begin = 0, length = 0x4000 },
        "0000000d10000000010000000000004000" },
      { { type = "allowed_fast", index = 9 }, "000000051100000009" },
      { { type = "extended", id = 0, payload = "de" }, "0000000414006465" },
    }
    for _, c in ipairs(cases) do
      it(c[1].type, function()
        assert.are.equal((c[2]:gsub(" ", "")), hex(wire.encode(c[1])))
      end)
    end

    it("handshake", function()
      local hs = wire.handshake { info_hash = IH, peer_id = PID, extensions = true, fast = true, dht = true }
      assert.are.equal("\19BitTorrent protocol\0\0\0\0\0\x10\0\x05" .. IH .. PID, hs)
    end)
  end)

  describe("chunked feeding", function()
    local msgs = every_message()
    local hs = wire.handshake { info_hash = IH, peer_id = PID, fast = true }
    local s = hs .. stream_of(msgs)
    local want = { assert(wire.decoder { handshake = true }:feed(hs))[1] }
    for _, m in ipairs(msgs) do want[#want + 1] = m end

    it("decodes the whole stream at once", function()
      assert.are.same(want, assert(wire.decoder { handshake = true }:feed(s)))
    end)

    it("gives the same messages at every split point", function()
      for i = 0, #s do
        local dec = wire.decoder { handshake = true }
        local a = assert(dec:feed(s:sub(1, i)))
        local b = assert(dec:feed(s:sub(i + 1)))
        for _, m in ipairs(b) do a[#a + 1] = m end
        assert.are.same(want, a, "split at " .. i)
        assert.are.equal(0, dec:buffered())
      end
    end)

    it("gives the same messages one byte at a time", function()
      local got, dec = decode_chunked(s, { 1 }, { handshake = true })
      assert.are.same(want, got)
      assert.are.equal(0, dec:buffered())
    end)

    it("gives the same messages in seeded random chunkings", function()
      math.randomseed(20240601)
      for _ = 1, 50 do
        local sizes = {}
        for j = 1, 20 do sizes[j] = math.random(1, 40000) end
        assert.are.same(want, (decode_chunked(s, sizes, { handshake = true })))
      end
    end)

    it("holds only the bytes of the incomplete message", function()
      local dec = wire.decoder()
      local have = wire.encode { type = "have", index = 1 }
      local piece = wire.encode { type = "piece", index = 0, begin = 0, block = string.rep("x", 1000) }
      local got = assert(dec:feed(have .. have .. piece:sub(1, 100)))
      assert.are.equal(2, #got)
      assert.are.equal(100, dec:buffered())
      got = assert(dec:feed(piece:sub(101) .. have:sub(1, 3)))
      assert.are.equal(1, #got)
      assert.are.equal(1000, #got[1].block)
      assert.are.equal(3, dec:buffered())
      got = assert(dec:feed(have:sub(4)))
      assert.are.same({ { type = "have", index = 1 } }, got)
      assert.are.equal(0, dec:buffered())
    end)

    it("returns an empty array for an empty feed", function()
      assert.are.same({}, assert(wire.decoder():feed("")))
    end)
  end)

  describe("unknown ids", function()
    it("come back with their raw payload and the stream goes on", function()
      local s = wire.encode { type = "have", index = 1 }
        .. "\0\0\0\4\99abc"
        .. "\0\0\0\1\255"
        .. wire.encode { type = "have", index = 2 }
      local got = decode_chunked(s, { 3 })
      assert.are.same({
        { type = "have", index = 1 },
        { type = "unknown", id = 99, payload = "abc" },
        { type = "unknown", id = 255, payload = "" },
        { type = "have", index = 2 },
      }, got)
    end)

    it("are held to the overall cap only", function()
      local dec = wire.decoder { max_message = 100 }
      assert.are.equal(1, #assert(dec:feed("\0\0\0\100\50" .. string.rep("u", 99))))
      local ok, err = dec:feed("\0\0\0\101\50")
      assert.is_nil(ok)
      assert.are.equal("message longer than the limit", err)
    end)
  end)

  describe("errors", function()
    local function fails(opts, bytes, msg, offset)
      local dec = wire.decoder(opts)
      local ok, err, off = dec:feed(bytes)
      assert.is_nil(ok)
      assert.are.equal(msg, err)
      assert.are.equal(offset or 0, off)
      return dec
    end

    it("rejects an oversized piece from its 5 header bytes", function()
      -- 9 + 16385: one byte over the default block size; no payload sent at all.
      fails(nil, string.pack(">I4B", 9 + 16385, 7), "piece: block larger than the limit")
      fails({ max_block = 1024 }, string.pack(">I4B", 9 + 1025, 7), "piece: block larger than the limit")
      assert.are.equal(1, #assert(wire.decoder { max_block = 1024 }:feed(
        wire.encode { type = "piece", index = 0, begin = 0, block = string.rep("x", 1024) })))
    end)

    it("rejects a piece too short for index and begin", function()
      fails(nil, string.pack(">I4B", 8, 7), "piece: length must be at least 9")
    end)

    it("rejects an oversized message from its 4-byte prefix", function()
      local lim = wire.default_limits.max_message
      fails(nil, string.pack(">I4", lim + 1), "message longer than the limit")
      fails(nil, "\xff\xff\xff\xff", "message longer than the limit")
      fails({ max_message = 64 }, string.pack(">I4", 65), "message longer than the limit")
    end)

    it("rejects a bitfield over max_bitfield, and over the overall cap when 0", function()
      fails({ max_bitfield = 10 }, string.pack(">I4B", 12, 5), "bitfield: longer than the limit")
      assert.are.same({ { type = "bitfield", bits = string.rep("\xff", 10) } },
        assert(wire.decoder { max_bitfield = 10 }:feed(string.pack(">I4B", 11, 5) .. string.rep("\xff", 10))))
      fails({ max_message = 50 }, string.pack(">I4B", 51, 5), "message longer than the limit")
    end)

    it("rejects an oversized or empty extended message", function()
      fails({ max_extended = 10 }, string.pack(">I4B", 13, 20), "extended: payload larger than the limit")
      fails(nil, string.pack(">I4B", 1, 20), "extended: length must be at least 2")
    end)

    it("rejects each fixed-size type with a wrong length, from 5 bytes", function()
      local fixed = {
        { 0, 1, "choke" }, { 1, 1, "unchoke" }, { 2, 1, "interested" }, { 3, 1, "not interested" },
        { 4, 5, "have" }, { 6, 13, "request" }, { 8, 13, "cancel" }, { 9, 3, "port" },
        { 13, 5, "suggest" }, { 14, 1, "have all" }, { 15, 1, "have none" },
        { 16, 13, "reject" }, { 17, 5, "allowed fast" },
      }
      for _, f in ipairs(fixed) do
        local id, len, name = f[1], f[2], f[3]
        local msg = name .. ": length must be " .. len
        fails(nil, string.pack(">I4B", len + 1, id), msg)
        if len > 1 then fails(nil, string.pack(">I4B", len - 1, id), msg) end
        -- and nothing before the 5th byte decides it
        local dec = wire.decoder()
        assert.are.same({}, assert(dec:feed(string.pack(">I4", len + 1))))
        local ok, err = dec:feed(string.char(id))
        assert.is_nil(ok)
        assert.are.equal(msg, err)
      end
    end)

    it("reports the stream offset of the bad message", function()
      local good = wire.encode { type = "have", index = 1 } .. wire.encode { type = "choke" }
      fails(nil, good .. "\0\0\0\2\1\0", "unchoke: length must be 1", #good)
      local dec = wire.decoder()
      assert(dec:feed(good))
      local ok, err, off = dec:feed("\0\0\0\2\1")
      assert.is_nil(ok)
      assert.are.equal("unchoke: length must be 1", err)
      assert.are.equal(#good, off)
    end)

    it("detects a bad handshake prefix as soon as the differing byte arrives", function()
      local good = wire.handshake { info_hash = IH, peer_id = PID }
      for i = 1, 20 do
        local bad = good:sub(1, i - 1) .. string.char((good:byte(i) + 1) % 256)
        local dec = wire.decoder { handshake = true }
        for j = 1, i - 1 do
          assert.are.same({}, assert(dec:feed(bad:sub(j, j))), "byte " .. j)
        end
        local ok, err, off = dec:feed(bad:sub(i, i))
        assert.is_nil(ok, "byte " .. i)
        assert.are.equal("not a BitTorrent handshake", err)
        assert.are.equal(0, off)
      end
      -- An HTTP request on the port fails at once.
      fails({ handshake = true }, "GET /announce HTTP/1.1\r\n", "not a BitTorrent handshake")
    end)

    it("accepts anything in the reserved, info-hash and peer-id bytes", function()
      local hs = "\19BitTorrent protocol" .. string.rep("\xff", 48)
      local got = assert(wire.decoder { handshake = true }:feed(hs))
      assert.is_true(got[1].extensions and got[1].fast and got[1].dht)
    end)

    it("stays failed once failed", function()
      local dec = fails(nil, string.pack(">I4B", 6, 4), "have: length must be 5")
      for _ = 1, 3 do
        local ok, err, off = dec:feed(wire.encode { type = "choke" })
        assert.is_nil(ok)
        assert.are.equal("have: length must be 5", err)
        assert.are.equal(0, off)
      end
      assert.are.equal("have: length must be 5", (dec:error()))
      assert.are.equal(0, dec:buffered())
      assert.is_nil(wire.decoder():error())
    end)

    it("drops the messages of the failing feed", function()
      local s = wire.encode { type = "have", index = 1 } .. string.pack(">I4B", 6, 4)
      fails(nil, s, "have: length must be 5", 9)
    end)
  end)

  describe("extension handshake (BEP 10)", function()
    it("reads m, metadata_size, p, reqq, v and yourip, in any key order, ignoring the rest", function()
      local real = "d1:md11:ut_metadatai3e6:ut_pexi1ee13:metadata_sizei31235e1:pi6881e4:reqqi250e"
        .. "1:v13:qBittorrent 56:yourip4:\127\0\0\1e"
      assert.are.same({ p = 6881, reqq = 250, metadata_size = 31235, v = "qBittorrent 5", yourip = "\127\0\0\1",
                        m = { ut_metadata = 3, ut_pex = 1 } }, wire.parse_ext_handshake(real))
      assert.are.same({ reqq = 8, m = {} }, wire.parse_ext_handshake("d4:reqqi8e1:pi70000ee"))
      -- an id of 0 disables an extension (BEP 10); ids past 255 and wrong types are absent
      assert.are.same({ m = {} }, wire.parse_ext_handshake("d1:md11:ut_metadatai0eee"))
      assert.are.same({ m = {} }, wire.parse_ext_handshake("d1:md11:ut_metadatai256eee"))
      assert.are.same({ m = {} }, wire.parse_ext_handshake("d1:m3:abc13:metadata_size1:x6:yourip3:abce"))
      -- v is cut at 64 bytes and control bytes are replaced
      local long = wire.parse_ext_handshake("d1:v70:" .. string.rep("a", 69) .. "\1e")
      assert.are.equal(string.rep("a", 64), long.v)
      assert.are.equal("x?y", wire.parse_ext_handshake("d1:v3:x\ny" .. "e").v)
      assert.is_nil(wire.parse_ext_handshake("li1ee"))
      assert.is_nil(wire.parse_ext_handshake("d1:pi1e"))
    end)

    it("builds ours with the keys sorted, and reads it back", function()
      local id = wire.EXTENSIONS.ut_metadata
      assert.are.equal(2, id)
      local hs = wire.ext_handshake { p = 6881, reqq = 500, metadata_size = 1234, v = "bt-lua",
                                      yourip = "\127\0\0\1", m = { ut_metadata = true } }
      assert.are.equal("d1:md11:ut_metadatai2ee13:metadata_sizei1234e1:pi6881e4:reqqi500e1:v6:bt-lua"
        .. "6:yourip4:\127\0\0\1e", hs)
      assert.are.same({ p = 6881, reqq = 500, metadata_size = 1234, v = "bt-lua", yourip = "\127\0\0\1",
                        m = { ut_metadata = 2 } }, wire.parse_ext_handshake(hs))
      assert.are.equal("d1:mdee", wire.ext_handshake {})
      -- the strict decoder takes it: it is canonical bencoding
      assert.is_table(require("bt").bdecode(hs))
      -- BEP 7: our IPv6 address comes first (keys sorted); ut_pex is offered under 1
      local v6 = string.rep("\0", 15) .. "\2"
      hs = wire.ext_handshake { ipv6 = v6, m = { ut_pex = true, ut_metadata = true } }
      assert.are.equal("d4:ipv616:" .. v6 .. "1:md11:ut_metadatai2e6:ut_pexi1eee", hs)
      assert.are.same({ ipv6 = v6, m = { ut_metadata = 2, ut_pex = 1 } }, wire.parse_ext_handshake(hs))
      assert.are.same({ m = {} }, wire.parse_ext_handshake("d4:ipv64:\1\2\3\4e"))   -- not 16 bytes: absent
    end)

    it("refuses a handshake of more bencode values than EXT_MAX_TOKENS", function()
      local max = wire.EXT_MAX_TOKENS
      -- d, "p", i1e, "x" and l are 5 values, then one per empty string
      local function hs(n) return "d1:pi1e1:xl" .. string.rep("0:", n) .. "ee" end
      assert.are.same({ p = 1, m = {} }, wire.parse_ext_handshake(hs(max - 5)))
      assert.is_nil(wire.parse_ext_handshake(hs(max - 4)))
      -- and so is one as large as the extended payload a peer may send (1 MiB)
      assert.is_nil(wire.parse_ext_handshake(hs(wire.default_limits.max_extended // 2 - 8)))
    end)
  end)

  describe("argument checks", function()
    local function raises(pattern, f, ...)
      local ok, err = pcall(f, ...)
      assert.is_false(ok)
      assert.matches(pattern, err)
    end

    it("decoder options", function()
      raises("max_block must be an integer in 1%.%.131072", wire.decoder, { max_block = 0 })
      raises("max_block must be an integer", wire.decoder, { max_block = wire.MAX_BLOCK + 1 })
      raises("max_block must be an integer", wire.decoder, { max_block = 1.5 })
      raises("max_message must be an integer", wire.decoder, { max_message = 12 })
      raises("max_extended must be an integer", wire.decoder, { max_extended = -1 })
      raises("max_bitfield must be an integer", wire.decoder, { max_bitfield = "x" })
      raises("max_block must be an integer", wire.decoder, { max_block = "1024" })
      raises("table expected", wire.decoder, 5)
      raises("bt.WireDecoder expected", wire.decoder().feed, {}, "x")
      raises("string expected", wire.decoder().feed, wire.decoder(), {})
    end)

    it("encode fields", function()
      raises("field 'type' must be a string", wire.encode, {})
      raises("unknown message type 'bogus'", wire.encode, { type = "bogus" })
      raises("field 'index' must be an integer in 0%.%.4294967295", wire.encode, { type = "have" })
      raises("field 'index'", wire.encode, { type = "have", index = 2 ^ 32 })
      raises("field 'index'", wire.encode, { type = "have", index = -1 })
      raises("field 'index'", wire.encode, { type = "have", index = "1" })
      assert.are.equal(wire.encode { type = "have", index = 1 }, wire.encode { type = "have", index = 1.0 })
      raises("field 'begin'", wire.encode, { type = "request", index = 0, length = 1 })
      raises("field 'length'", wire.encode, { type = "cancel", index = 0, begin = 0, length = 0.5 })
      raises("field 'block' must be a string", wire.encode, { type = "piece", index = 0, begin = 0 })
      raises("field 'bits' must be a string", wire.encode, { type = "bitfield" })
      raises("field 'port' must be an integer in 0%.%.65535", wire.encode, { type = "port", port = 65536 })
      raises("field 'id' must be an integer in 0%.%.255", wire.encode, { type = "extended", id = 256, payload = "" })
      raises("field 'payload' must be a string", wire.encode, { type = "extended", id = 1 })
      raises("field 'id' must be an integer in 0%.%.255", wire.encode, { type = "unknown", id = -1, payload = "" })
      raises("field 'id': 7 is the id of 'piece'", wire.encode, { type = "unknown", id = 7, payload = "" })
    end)

    it("handshake fields", function()
      raises("field 'info_hash' must be a string of 20 bytes", wire.handshake, { peer_id = PID })
      raises("field 'info_hash' must be a string of 20 bytes", wire.handshake,
        { info_hash = ("x"):rep(19), peer_id = PID })
      raises("field 'peer_id' must be a string of 20 bytes", wire.handshake,
        { info_hash = IH, peer_id = ("x"):rep(21) })
      raises("field 'reserved' must be a string of 8 bytes", wire.handshake,
        { info_hash = IH, peer_id = PID, reserved = "" })
      raises("field 'peer_id'", wire.encode, { type = "handshake", info_hash = IH })
    end)
  end)
end)
