-- Metainfo: bt.meta_parse (C validation), bt.torrent.load/create, SHA-1, bt.fs,
-- cross-checked against mktorrent, transmission-create and transmission-show.
local H = require "helpers"
local bt = require "bt"

-- A tiny bencoder that keeps keys in the order given (so tests can write
-- unsorted dicts): D{ "k1", v1, "k2", v2 } is a dict, L{ ... } a list.
local Dmt, Lmt = {}, {}
local function D(t) return setmetatable(t, Dmt) end
local function L(t) return setmetatable(t, Lmt) end
local function enc(v)
  if math.type(v) == "integer" then return "i" .. v .. "e" end
  if type(v) == "string" then return #v .. ":" .. v end
  local out = {}
  if getmetatable(v) == Dmt then
    for i = 1, #v, 2 do out[#out + 1] = enc(v[i]) .. enc(v[i + 1]) end
    return "d" .. table.concat(out) .. "e"
  end
  for i = 1, #v do out[i] = enc(v[i]) end
  return "l" .. table.concat(out) .. "e"
end

local H20 = string.rep("h", 20)

-- A valid single-file info dict (sorted keys), with fields overridable by order-preserving edits.
local function info1(extra)
  local t = D{ "length", 100, "name", "file.bin", "piece length", 64, "pieces", H20:rep(2) }
  for i = 1, #(extra or {}), 2 do
    local found = false
    for j = 1, #t, 2 do
      if t[j] == extra[i] then t[j + 1] = extra[i + 1]; found = true end
    end
    if not found then t[#t + 1] = extra[i]; t[#t + 1] = extra[i + 1] end
  end
  -- A value of `false` removes the key.
  local out = D{}
  for j = 1, #t, 2 do if t[j + 1] ~= false then out[#out + 1] = t[j]; out[#out + 1] = t[j + 1] end end
  return out
end

local function torrent(info, top)
  local t = D{}
  top = top or {}
  local has_announce = false
  for i = 1, #top, 2 do has_announce = has_announce or top[i] == "announce" end
  if not has_announce then t[1], t[2] = "announce", "http://127.0.0.1:6969/announce" end
  for i = 1, #top, 2 do t[#t + 1] = top[i]; t[#t + 1] = top[i + 1] end
  t[#t + 1] = "info"; t[#t + 1] = info
  return enc(t)
end

local function multi(files, extra)
  local total = 0
  for i = 2, #files, 2 do total = total + files[i - 1] end
  local fl = L{}
  for i = 1, #files, 2 do
    fl[#fl + 1] = D{ "length", files[i], "path", files[i + 1] }
  end
  local pl = 64
  local n = total > 0 and (total - 1) // pl + 1 or 0
  local t = D{ "files", fl, "name", "dir", "piece length", pl, "pieces", H20:rep(n) }
  for i = 1, #(extra or {}), 2 do t[#t + 1] = extra[i]; t[#t + 1] = extra[i + 1] end
  return t
end

-- Offset (0-based) of the first occurrence of `needle` in s.
local function off(s, needle, init)
  local i = assert(s:find(needle, init or 1, true), "marker not found: " .. needle)
  return i - 1
end

local function fails(s, msg, offset)
  local m, err, o = bt.meta_parse(s)
  assert.is_nil(m)
  assert.are.equal(msg, err)
  if offset then assert.are.equal(offset, o) end
  return o
end

describe("bt.sha1", function()
  it("matches the FIPS 180 test vectors", function()
    assert.are.equal("a9993e364706816aba3e25717850c26c9cd0d89d", bt.sha1_hex("abc"))
    assert.are.equal("da39a3ee5e6b4b0d3255bfef95601890afd80709", bt.sha1_hex(""))
    assert.are.equal("84983e441c3bd26ebaae4aa1f95129e5e54670f1",
      bt.sha1_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"))
    assert.are.equal(20, #bt.sha1("abc"))
    assert.are.equal(bt.sha1_hex("abc"), (bt.sha1("abc"):gsub(".", function(c)
      return string.format("%02x", c:byte()) end)))
  end)

  it("hashes a sub-range like string.sub without copying", function()
    local s = "xxabcyy"
    assert.are.equal(bt.sha1_hex("abc"), bt.sha1_hex(s, 3, 5))
    assert.are.equal(bt.sha1_hex("abcyy"), bt.sha1_hex(s, 3))
    assert.are.equal(bt.sha1_hex("yy"), bt.sha1_hex(s, -2))
    assert.are.equal(bt.sha1_hex(""), bt.sha1_hex(s, 5, 3))
    assert.are.equal(bt.sha1_hex(s), bt.sha1_hex(s, -100, 100))
  end)

  it("hashes incrementally, digest leaves the state running, reset starts over", function()
    local h = bt.sha1_hasher()
    assert.are.equal(h, h:update("ab"))
    h:update("zcz", 2, 2)
    assert.are.equal(bt.sha1("abc"), h:digest())
    assert.are.equal(bt.sha1_hex("abc"), h:hexdigest())
    h:update("d")
    assert.are.equal(bt.sha1_hex("abcd"), h:hexdigest())
    h:reset():update("q")
    assert.are.equal(bt.sha1_hex("q"), h:hexdigest())
    -- A million bytes fed in uneven slices equals the one-shot hash.
    local big = string.rep("0123456789abcdefghij", 50000)
    local g = bt.sha1_hasher()
    local pos = 1
    for n = 1, 2000 do
      local j = math.min(#big, pos + n * 7)
      g:update(big, pos, j)
      pos = j + 1
      if pos > #big then break end
    end
    if pos <= #big then g:update(big, pos) end
    assert.are.equal(bt.sha1(big), g:digest())
  end)

  it("raises on misuse, naming the type", function()
    local h = bt.sha1_hasher()
    assert.has_error(function() h.update(42, "x") end)
    assert.has_error(function() bt.sha1(nil) end)
    local ok, err = pcall(h.digest, {})
    assert.is_false(ok)
    assert.truthy(err:find("bt.Sha1", 1, true))
  end)
end)

describe("bt.meta_parse validation", function()
  it("accepts a valid single-file torrent and exposes its fields", function()
    local s = torrent(info1())
    local m = assert(bt.meta_parse(s))
    assert.are.equal("file.bin", m.name)
    assert.are.equal(64, m.piece_length)
    assert.are.equal(2, m.num_pieces)
    assert.are.equal(100, m.total_length)
    assert.are.equal(1, m.num_files)
    assert.is_false(m.multi_file)
    assert.is_false(m.private)
    assert.are.equal(64, m:piece_size(0))
    assert.are.equal(36, m:piece_size(1))
    assert.are.equal(H20, m:piece_hash(1))
    local f = m:file(1)
    assert.are.same({ path = { "file.bin" }, disk_path = { "file.bin" }, length = 100, offset = 0,
      pad = false }, f)
    assert.are.equal(f.path, f.disk_path)   -- unchanged: the same table
    assert.are.same({ f }, m:files())
    assert.are.equal(s, m:bytes())
    assert.are.equal("http://127.0.0.1:6969/announce", (m:value("announce")))
    assert.is_nil(m:value("nope"))
    assert.are.equal(100, (m:info_value("length")))
    assert.truthy(tostring(m):find(m.info_hash_hex, 1, true))
    assert.is_nil(m.no_such_field)
    assert.is_nil(m[1])
    assert.is_nil(m[{}])
  end)

  it("raises on out-of-range piece and file indices", function()
    local m = assert(bt.meta_parse(torrent(info1())))
    assert.has_error(function() m:piece_hash(2) end)
    assert.has_error(function() m:piece_hash(-1) end)
    assert.has_error(function() m:piece_size(2) end)
    assert.has_error(function() m:file(0) end)
    assert.has_error(function() m:file(2) end)
    local ok, err = pcall(m.piece_hash, {}, 0)   -- not a bt.Metainfo
    assert.is_false(ok)
    assert.truthy(tostring(err):find("bt.Metainfo", 1, true))
  end)

  it("reports bencode errors with the decoder's offset", function()
    local m, err, o = bt.meta_parse("d8:announce3:abc4:info")
    assert.is_nil(m)
    assert.are.equal("string", type(err))
    assert.are.equal("number", math.type(o) and "number")
    assert.is_true(o >= 0 and o <= 22)
    assert.is_nil(bt.meta_parse(""))
  end)

  it("rejects a top level that is not a dict, and a missing or wrong info", function()
    fails("li1ee", "torrent is not a dictionary", 0)
    fails("d3:fooi1ee", "missing info dictionary", 0)
    local s = torrent("notadict")
    fails(s, "info is not a dictionary", off(s, "8:notadict"))
  end)

  it("checks name", function()
    local s = torrent(info1{ "name", false })
    fails(s, "info has no name", off(s, "4:infod") + 6)
    s = torrent(info1{ "name", 7 })
    fails(s, "name is not a string", off(s, "i7e"))
    s = torrent(info1{ "name", "" })
    fails(s, "name is empty", off(s, "4:name0:") + 6)
    -- A single file's name that sanitizes to nothing is refused (libtorrent too).
    for _, bad in ipairs { ".", "..", "/", "//..", "\u{202e}" } do
      s = torrent(info1{ "name", bad })
      fails(s, "name has nothing usable as a file name", off(s, "4:name") + 6)
    end
    -- Any other name is made safe for the disk; the torrent's name is kept.
    for bad, disk in pairs { ["a/b"] = "ab", ["/etc"] = "etc", ["a\\b"] = "ab", ["a\0b"] = "a_b",
                             ["a\255b"] = "a_b", [".."] = false } do
      local m = bt.meta_parse(torrent(info1{ "name", bad }))
      if disk then
        assert.are.equal(bad, m.name)
        assert.are.equal(disk, m.disk_name)
        assert.are.same({ disk }, m:file(1).disk_path)
        assert.are.equal(1, m.num_sanitized)
      end
    end
    -- A multi-file torrent with no usable name is named after its info-hash.
    local unnamed = multi{ 10, L{ "a" } }
    unnamed[4] = ".."
    local m = assert(bt.meta_parse(torrent(unnamed)))
    assert.are.equal(m.info_hash_hex, m.disk_name)
  end)

  it("checks piece length", function()
    local s = torrent(info1{ "piece length", false })
    fails(s, "info has no piece length", off(s, "4:infod") + 6)
    s = torrent(info1{ "piece length", "64" })
    fails(s, "piece length is not an integer", off(s, "2:64"))
    s = torrent(info1{ "piece length", 0 })
    fails(s, "piece length is not positive", off(s, "i0e"))
    s = torrent(info1{ "piece length", -64 })
    fails(s, "piece length is not positive", off(s, "i-64e"))
    -- libtorrent's limit, INT_MAX / 2: 2^30 - 1 parses, 2^30 does not.
    s = torrent(info1{ "piece length", 1 << 30, "pieces", H20 })
    fails(s, "piece length too large (limit 1073741823)", off(s, "i1073741824e"))
    assert.are.equal(1073741823, bt.meta_limits.max_piece_length)
    for _, pl in ipairs { 1 << 28, 1 << 29, (1 << 30) - 1 } do
      assert.are.equal(pl, assert(bt.meta_parse(torrent(info1{ "piece length", pl, "pieces", H20 }))).piece_length)
    end
  end)

  it("checks pieces: type, multiple of 20, count against the total length", function()
    local s = torrent(info1{ "pieces", false })
    fails(s, "info has no pieces", off(s, "4:infod") + 6)
    s = torrent(info1{ "pieces", 5 })
    fails(s, "pieces is not a string", off(s, "i5e"))
    s = torrent(info1{ "pieces", H20 .. "x" })
    fails(s, "pieces length is not a multiple of 20", off(s, "21:"))
    s = torrent(info1{ "pieces", H20 })   -- 100 bytes at 64 per piece need 2
    fails(s, "number of pieces does not match total length", off(s, "20:"))
    s = torrent(info1{ "pieces", H20:rep(3) })
    fails(s, "number of pieces does not match total length", off(s, "60:"))
    s = torrent(info1{ "length", 128 })   -- exactly 2 pieces
    assert.truthy(bt.meta_parse(s))
    s = torrent(info1{ "length", 129 })
    fails(s, "number of pieces does not match total length", off(s, "40:"))
  end)

  it("needs exactly one of length and files", function()
    -- Both: the files list is used (libtorrent's reading).
    local m = assert(bt.meta_parse(torrent(info1{ "files", L{ D{ "length", 100, "path", L{ "a" } } } })))
    assert.is_true(m.multi_file)
    local s = torrent(info1{ "length", false })
    fails(s, "info has neither length nor files", off(s, "4:infod") + 6)
    s = torrent(info1{ "length", "100" })
    fails(s, "length is not an integer", off(s, "3:100"))
    s = torrent(info1{ "length", -1, "pieces", "" })
    fails(s, "length is negative", off(s, "i-1e"))
  end)

  it("refuses a torrent with no data (documented choice)", function()
    local s = torrent(info1{ "length", 0, "pieces", "" })
    fails(s, "torrent has no data (total length 0)", off(s, "4:infod") + 6)
    s = torrent(multi{ 0, L{ "a" }, 0, L{ "b" } })
    fails(s, "torrent has no data (total length 0)", off(s, "4:infod") + 6)
  end)

  it("checks the files list and each file", function()
    local s = torrent(info1{ "length", false, "files", 3 })   -- not a list: ignored
    fails(s, "info has neither length nor files", off(s, "4:infod") + 6)
    s = torrent(info1{ "length", false, "files", L{} })
    fails(s, "files list is empty", off(s, "5:filesle") + 7)
    s = torrent(info1{ "length", false, "files", L{ 5 } })
    fails(s, "file entry is not a dictionary", off(s, "5:filesli5e") + 8)
    s = torrent(multi{ 10, L{ "a" } })
    s = s:gsub("d6:lengthi10e", "d7:lengthxi10e")   -- length key misspelt
    fails(s, "file has no length", off(s, "5:filesl") + 8)
    s = torrent(multi{ "10", L{ "a" } })
    fails(s, "file length is not an integer", off(s, "2:10"))
    s = torrent(multi{ -10, L{ "a" }, 100, L{ "b" } })
    fails(s, "file length is negative", off(s, "i-10e"))
    s = torrent(info1{ "length", false, "files", L{ D{ "length", 1 } } })
    fails(s, "file has no path", off(s, "5:filesl") + 8)
    s = torrent(multi{ 10, "a" })
    fails(s, "file path is not a list", off(s, "4:path1:a") + 6)
    s = torrent(multi{ 10, L{} })
    fails(s, "file path is empty", off(s, "4:pathle") + 6)
    s = torrent(multi{ 10, L{ "a", 5 } })
    fails(s, "path component is not a string", off(s, "i5e"))
    -- Any number of components (libtorrent has no limit); the disk path is at most 4095 bytes.
    local deep = L{}
    for i = 1, 2048 do deep[i] = "d" end
    local m = assert(bt.meta_parse(torrent(multi{ 10, deep })))
    assert.are.equal(2048, #m:file(1).disk_path)
    deep[2049] = "d"
    s = torrent(multi{ 10, deep })
    fails(s, "file path too long on disk (limit 4095 bytes)", off(s, "4:pathl") + 6)
    for i = 1, 2049 do deep[i] = "" end   -- dropped: nothing left but "_"
    deep[2050] = "f"
    m = assert(bt.meta_parse(torrent(multi{ 10, deep })))
    assert.are.same({ "f" }, m:file(1).disk_path)
    assert.are.equal(2050, #m:file(1).path)
    -- a renamed duplicate stays within the limit: its base is cut
    local long = L{}
    for i = 1, 15 do long[i] = string.rep("n", 255) end
    long[16] = string.rep("z", 254)   -- 15 * 256 + 254 = 4094 bytes
    m = assert(bt.meta_parse(torrent(multi{ 10, long, 10, long })))
    local dp = m:file(2).disk_path
    assert.is_true(m:file(2).renamed)
    assert.is_true(#table.concat(dp, "/") <= 4095, #table.concat(dp, "/"))
    assert.truthy(dp[16]:find("%.1$"), dp[16])
    -- An attr that is not a string is ignored.
    s = torrent(info1{ "length", false, "files", L{ D{ "attr", 1, "length", 100, "path", L{ "a" } } } })
    assert.truthy(bt.meta_parse(s))
  end)

  it("sanitizes every path component for the disk, keeping the torrent's", function()
    for bad, disk in pairs {
      [""] = { "ok", "f" }, ["."] = { "ok", "f" }, [".."] = { "ok", "f" },
      ["x/y"] = { "ok", "xy", "f" }, ["x\\y"] = { "ok", "xy", "f" }, ["x\0y"] = { "ok", "x_y", "f" },
      ["/.."] = { "ok", "f" }, ["x\1\31y"] = { "ok", "x__y", "f" }, ["\xc0\xafz"] = { "ok", "__z", "f" },
      ["a\u{202e}b"] = { "ok", "ab", "f" }, ["\u{e9}t\u{e9}"] = false,
    } do
      local m = assert(bt.meta_parse(torrent(multi{ 10, L{ "ok", bad, "f" } })))
      local f = m:file(1)
      assert.are.same({ "ok", bad, "f" }, f.path)
      assert.are.same(disk or f.path, f.disk_path)
      assert.are.equal(disk and 1 or 0, m.num_sanitized)
    end
    -- ".." anywhere, "..." is a fine name.
    local m = assert(bt.meta_parse(torrent(multi{ 10, L{ "...", ".x", "x." } })))
    assert.are.equal(0, m.num_sanitized)
    -- Nothing left at all: "_".
    m = assert(bt.meta_parse(torrent(multi{ 10, L{ "..", "" } })))
    assert.are.same({ "_" }, m:file(1).disk_path)
    -- Over 255 bytes: cut, keeping the extension, at a character boundary.
    local long = string.rep("\u{e9}", 200) .. ".mkv"
    m = assert(bt.meta_parse(torrent(multi{ 10, L{ long } })))
    local d = m:file(1).disk_path[1]
    assert.is_true(#d <= 255 and #d >= 250, #d)
    assert.are.equal(".mkv", d:sub(-4))
    assert.truthy(utf8.len(d))
  end)

  it("renames duplicate paths and a file that is another's folder (libtorrent's rule), not pads", function()
    local function disk(m)
      local out = {}
      for i, f in ipairs(m:files()) do out[i] = table.concat(f.disk_path, "/") end
      return out
    end
    local m = assert(bt.meta_parse(torrent(multi{ 10, L{ "a", "b.txt" }, 20, L{ "c" }, 30, L{ "a", "b.txt" },
      1, L{ "a", "b.1.txt" } })))
    assert.are.same({ "a/b.txt", "c", "a/b.2.txt", "a/b.1.txt" }, disk(m))
    assert.are.equal(1, m.num_renamed)
    assert.is_true(m:file(3).renamed)
    -- the file is renamed, not the folder
    m = assert(bt.meta_parse(torrent(multi{ 10, L{ "a" }, 20, L{ "a", "b" } })))
    assert.are.same({ "a.1", "a/b" }, disk(m))
    m = assert(bt.meta_parse(torrent(multi{ 10, L{ "a", "b", "c" }, 20, L{ "a", "b" } })))
    assert.are.same({ "a/b/c", "a/b.1" }, disk(m))
    -- sanitizing can make a clash: "x/y" and "xy"
    m = assert(bt.meta_parse(torrent(multi{ 10, L{ "xy" }, 20, L{ "x/y" } })))
    assert.are.same({ "xy", "xy.1" }, disk(m))
    -- Components are compared whole: "ab" is not "a"/"b".
    m = assert(bt.meta_parse(torrent(multi{ 10, L{ "ab" }, 10, L{ "a", "b" }, 10, L{ "a", "bc" } })))
    assert.are.equal(0, m.num_renamed)
    -- Two pad files of the same size share a name by convention (BEP 47).
    local pads = multi{ 10, L{ "a" } }
    pads[2] = L{
      D{ "length", 10, "path", L{ "a" } },
      D{ "attr", "p", "length", 54, "path", L{ ".pad", "54" } },
      D{ "length", 64, "path", L{ "b" } },
      D{ "attr", "p", "length", 54, "path", L{ ".pad", "54" } },
      D{ "attr", "x", "length", 10, "path", L{ "c" } },
    }
    pads[8] = H20:rep(3)   -- 192 bytes
    m = assert(bt.meta_parse(torrent(pads)))
    local files = m:files()
    assert.are.same({ false, true, false, true, false },
      { files[1].pad, files[2].pad, files[3].pad, files[4].pad, files[5].pad })
    assert.are.same({ 0, 10, 64, 128, 182 },
      { files[1].offset, files[2].offset, files[3].offset, files[4].offset, files[5].offset })
    assert.is_true(files[5].executable)
    assert.are.equal(0, m.num_renamed)
  end)

  it("renames among many files, in any order, and deep down 64-component paths", function()
    local files = {}
    for i = 1, 3000 do
      files[#files + 1] = 1
      files[#files + 1] = L{ "d" .. (i % 7), "s" .. (i % 13), "f" .. i }
    end
    assert.are.equal(0, assert(bt.meta_parse(torrent(multi(files)))).num_renamed)
    files[#files + 1] = 1
    files[#files + 1] = L{ "d" .. (1234 % 7), "s" .. (1234 % 13), "f1234" }
    local m = assert(bt.meta_parse(torrent(multi(files))))
    assert.are.equal(1, m.num_renamed)
    assert.are.same({ "d2", "s12", "f1234.1" }, m:file(3001).disk_path)
    files[#files] = L{ "d3", "s0" }   -- a folder of other files
    m = assert(bt.meta_parse(torrent(multi(files))))
    assert.are.same({ "d3", "s0.1" }, m:file(3001).disk_path)
    local deep = {}
    for i = 1, 64 do deep[i] = "c" .. i end
    local upper = { table.unpack(deep, 1, 63) }
    m = assert(bt.meta_parse(torrent(multi{ 1, L(deep), 1, L{ "c1", "other" }, 1, L(upper) })))
    assert.are.equal("c63.1", m:file(3).disk_path[63])
  end)

  it("checks the total for overflow", function()
    local big = (1 << 62)
    local s = torrent(multi{ big, L{ "a" }, big, L{ "b" } })
    fails(s, "total length overflows", off(s, "d6:lengthi4611686018427387904e4:pathl1:be"))
  end)

  it("refuses too many files before looking at them", function()
    local max = bt.meta_limits.max_files
    local function files(n)
      return "d4:infod5:filesl" .. string.rep("de", n) .. "e4:name1:x12:piece lengthi1e6:pieces0:ee"
    end
    local s = files(max + 1)
    fails(s, "too many files (limit " .. max .. ")", off(s, "5:filesl") + 7)
    -- max files pass the count and get looked at: the first has no length
    s = files(max)
    fails(s, "file has no length", off(s, "5:filesl") + 8)
  end)

  it("loads torrents of real-world size: 200,000 files, and a million pieces", function()
    -- 1000 folders of 200 files, built by substitution (a string.format per file is slower).
    local block = {}
    for i = 1, 200 do block[i] = string.format("d6:lengthi1e4:pathl3:@@@8:f%03d.datee", i) end
    block = table.concat(block)
    local folders = {}
    for d = 1, 1000 do folders[d] = block:gsub("@@@", string.format("%03d", d % 1000)) end
    local n = 200 * 1000
    local s = "d4:infod5:filesl" .. table.concat(folders) .. "e4:name1:x12:piece lengthi" .. n
      .. "e6:pieces20:" .. H20 .. "ee"
    local m = assert(bt.meta_parse(s))
    assert.are.equal(n, m.num_files)
    assert.are.same({ "001", "f001.dat" }, m:file(1).path)
    assert.are.same({ "000", "f200.dat" }, m:file(n).path)
    -- 4 TiB in 4 MiB pieces: 20 MB of hashes, well under the size limit.
    local np, pl = 1000000, 4 * 1024 * 1024
    s = enc(D{ "info", D{ "length", np * pl, "name", "big", "piece length", pl, "pieces", H20:rep(np) } })
    m = assert(bt.meta_parse(s))
    assert.are.equal(np, m.num_pieces)
  end)

  it("stops at the token limit, naming it and the first value over it", function()
    local max = bt.meta_limits.max_tokens
    -- d, "info" and l are three tokens, then one per empty string: the one at
    -- token max + 1 is string number max - 2, at byte 8 + 2 * (max - 3).
    local s = "d4:infol" .. string.rep("0:", max) .. "ee"
    fails(s, "too many tokens (limit " .. max .. ")", 8 + 2 * (max - 3))
    -- One token fewer than the limit (d, "info", l and max - 3 strings) gets
    -- to the validation.
    s = "d4:infol" .. string.rep("0:", max - 3) .. "ee"
    fails(s, "info is not a dictionary", 7)
  end)

  it("refuses a torrent larger than the size limit before decoding it", function()
    local max = bt.meta_limits.max_size
    assert.are.equal(64 * 1024 * 1024, max)
    -- Garbage from the first byte: decoding would say "invalid character" at 0.
    fails(string.rep("x", max + 1), "torrent larger than 64 MiB", max)
    fails(string.rep("x", max), "invalid character", 0)
  end)

  it("checks private and reads it", function()
    -- Another type is ignored (libtorrent reads it as 0).
    assert.is_false(assert(bt.meta_parse(torrent(info1{ "private", "yes" }))).private)
    assert.is_true(assert(bt.meta_parse(torrent(info1{ "private", 1 }))).private)
    assert.is_false(assert(bt.meta_parse(torrent(info1{ "private", 0 }))).private)
  end)

  it("hashes the exact bytes of an unsorted info dict", function()
    -- Keys out of order, at both levels: a re-encoding would sort them and
    -- change the hash.
    local info = D{ "pieces", H20:rep(2), "name", "x", "zzz", 1, "piece length", 64, "length", 100 }
    local s = enc(D{ "info", info, "announce", "http://a/" })
    local m = assert(bt.meta_parse(s))
    local raw = enc(info)
    local i = off(s, raw)
    assert.are.equal(raw, m:info_bytes())
    assert.are.equal(bt.sha1(s:sub(i + 1, i + #raw)), m.info_hash)
    assert.are.equal(bt.sha1_hex(raw), m.info_hash_hex)
    local sorted = enc(D{ "length", 100, "name", "x", "piece length", 64, "pieces", H20:rep(2), "zzz", 1 })
    assert.are_not.equal(bt.sha1_hex(sorted), m.info_hash_hex)
  end)

  it("reads the bencode libtorrent tolerates in a .torrent, the first of duplicate keys counting", function()
    -- Duplicate keys: the first "info" is the one hashed, the first "name" the name.
    local a, b = enc(info1{ "name", "a" }), enc(info1{ "name", "b" })
    local m = assert(bt.meta_parse("d4:info" .. a .. "4:info" .. b .. "e"))
    assert.are.equal(bt.sha1_hex(a), m.info_hash_hex)
    assert.are.equal("a", m.name)
    m = assert(bt.meta_parse("d4:infod6:lengthi100e4:name1:x4:name1:y12:piece lengthi64e6:pieces40:"
      .. H20:rep(2) .. "ee"))
    assert.are.equal("x", m.name)
    -- The Lua side reads the first too (m:value and m:info_value of a repeated key).
    m = assert(bt.meta_parse("d7:comment5:first7:comment6:second4:info" .. a .. "e"))
    assert.are.equal("first", (m:value("comment")))
    local t = assert(bt.torrent.load("d7:comment5:first4:info" .. a .. "7:comment6:seconde"))
    assert.are.equal("first", t.comment)
    m = assert(bt.meta_parse("d1:xd1:ki1e1:ki2ee4:info" .. a .. "e"))
    assert.are.same({ k = 1 }, (m:value("x")))
    -- Leading zeros and -0: i05e is 5, 01:a is "a", i-0e is 0.
    m = assert(bt.meta_parse("d4:infod6:lengthi0100e04:name01:x12:piece lengthi064e6:pieces0040:"
      .. H20:rep(2) .. "7:privatei-0eee"))
    assert.are.same({ 100, 64, "x", false }, { m.total_length, m.piece_length, m.name, m.private })
    -- Up to 20 digits; outside int64 reads as 0 (libtorrent), so this private is not private.
    m = assert(bt.meta_parse(torrent(info1{ "private", 1 }):gsub("i1e", "i99999999999999999999e")))
    assert.is_false(m.private)
    local s = torrent(info1{ "private", 1 }):gsub("i1e", "i" .. string.rep("0", 20) .. "1e")
    fails(s, "integer overflow", off(s, "i0000") + 21)
    s = torrent(info1{}):gsub("8:file%.bin", string.rep("0", 16) .. "8:file.bin")
    fails(s, "string length has too many digits", off(s, "00000"))
    assert.truthy(bt.meta_parse((torrent(info1{}):gsub("8:file%.bin", string.rep("0", 15) .. "8:file.bin"))))
    -- Still refused: what libtorrent refuses too.
    for _, bad in ipairs { "ie", "i-e", "i+1e", "i1.0e", "i--1e" } do
      assert.is_nil(bt.meta_parse(torrent(info1{ "private", 1 }):gsub("i1e", bad)), bad)
    end
    -- Everywhere else decoding stays strict.
    assert.is_nil(bt.bdecode("i05e"))
    assert.is_nil(bt.bdecode("i-0e"))
    assert.is_nil(bt.bdecode("01:a"))
    assert.is_nil(bt.bdecode("d1:ai1e1:ai2ee", { unsorted = true }))
  end)
end)

describe("bt.torrent.load", function()
  it("reads the optional fields", function()
    local s = torrent(info1{ "private", 1 }, {
      "announce-list", L{ L{ "http://a/1", "http://a/2" }, L{}, L{ "udp://b/" } },
      "comment", "hi", "created by", "me", "creation date", 1700000000,
      "url-list", "http://seed/",
    })
    local t = assert(bt.torrent.load(s))
    assert.are.equal("file.bin", t.name)
    assert.are.equal(t.meta.info_hash, t.info_hash)
    assert.are.equal(40, #t.info_hash_hex)
    assert.are.same({ { "http://a/1", "http://a/2" }, { "udp://b/" } }, t.announce_list)
    assert.are.equal("http://127.0.0.1:6969/announce", t.announce)
    assert.are.equal("hi", t.comment)
    assert.are.equal("me", t.created_by)
    assert.are.equal(1700000000, t.creation_date)
    assert.are.same({ "http://seed/" }, t.url_list)
    assert.is_true(t.private)
    assert.are.equal(2, t.num_pieces)
    assert.are.equal(2, t.pieces)
    assert.are.equal(100, t.total_length)
    assert.are.same({ { path = { "file.bin" }, disk_path = { "file.bin" }, length = 100, offset = 0,
      pad = false } }, t.files)
    assert.are.equal(H20, t:piece_hash(0))
    assert.are.equal(36, t:piece_size(1))
  end)

  it("makes a lone announce one tier; url-list may be a list; absent fields are nil", function()
    local t = assert(bt.torrent.load(torrent(info1(), { "url-list", L{ "http://a/", "http://b/" } })))
    assert.are.same({ { "http://127.0.0.1:6969/announce" } }, t.announce_list)
    assert.are.same({ "http://a/", "http://b/" }, t.url_list)
    assert.is_nil(t.comment)
    assert.is_nil(t.creation_date)
    t = assert(bt.torrent.load(enc(D{ "info", info1() })))
    assert.is_nil(t.announce)
    assert.are.same({}, t.announce_list)
    assert.are.same({}, t.url_list)
  end)

  it("ignores an optional field of the wrong type, with a note naming it", function()
    for key, bad in pairs {
      announce = 5, comment = L{ "x" }, ["created by"] = 1, ["creation date"] = "yesterday",
      ["announce-list"] = "http://x/", ["url-list"] = 7, httpseeds = D{ "a", 1 },
    } do
      local t = assert(bt.torrent.load(torrent(info1(), { key, bad })))
      assert.are.equal(1, #t.notes)
      assert.truthy(t.notes[1]:find(key, 1, true), t.notes[1])
      assert.truthy(t.notes[1]:find("at byte %d+"), t.notes[1])
    end
    -- Web seeds and trackers: invalid entries dropped one by one.
    local t = assert(bt.torrent.load(torrent(info1(), {
      "announce-list", L{ L{ "http://a/", 5 }, "http://b/", L{ L{ "x" } }, L{ "udp://c/" } },
      "httpseeds", L{ "http://h/", "" },
      "url-list", L{ L{ "http://nested/" }, 5, "", "http://w/" },
    })))
    assert.are.same({ { "http://a/" }, { "udp://c/" } }, t.announce_list)
    assert.are.same({ "http://w/" }, t.url_list)
    assert.are.same({ "http://h/" }, t.http_seeds)
    assert.are.equal(3, #t.notes)
  end)

  it("ignores bytes after the top-level dictionary, hashing the info bytes only", function()
    local s = torrent(info1())
    local a = assert(bt.torrent.load(s))
    for _, tail in ipairs { "\n", "\r\n", "garbage", "d4:infoe" } do
      local t = assert(bt.torrent.load(s .. tail))
      assert.are.equal(a.info_hash_hex, t.info_hash_hex)
      assert.are.equal(#tail, t.meta.trailing_bytes)
      assert.truthy(t.notes[1]:find("after the torrent's dictionary (at byte " .. #s .. ")", 1, true))
    end
  end)

  it("loads from a path, and reports a missing file or bad content", function()
    local d = H.tmpdir()
    H.writefile(d .. "/a.torrent", torrent(info1()))
    local t = assert(bt.torrent.load(d .. "/a.torrent"))
    assert.are.equal("file.bin", t.name)
    local t2, err = bt.torrent.load(d .. "/missing.torrent")
    assert.is_nil(t2)
    assert.truthy(err:find("missing.torrent", 1, true))
    H.writefile(d .. "/bad.torrent", "d4:infoi1ee")
    t2, err = bt.torrent.load(d .. "/bad.torrent")
    assert.is_nil(t2)
    assert.are.equal(d .. "/bad.torrent: invalid torrent: info is not a dictionary (at byte 7)", err)
    H.rmtree(d)
    assert.has_error(function() bt.torrent.load(42) end)
  end)
end)

describe("bt.fs", function()
  it("lists a folder and lstats entries", function()
    local d = H.tmpdir()
    H.writefile(d .. "/f", "12345")
    H.sh("mkdir " .. H.q(d .. "/sub") .. " && ln -s f " .. H.q(d .. "/l"))
    local names = assert(bt.fs.list(d))
    table.sort(names)
    assert.are.same({ "f", "l", "sub" }, names)
    assert.are.equal("file", bt.fs.stat(d .. "/f").type)
    assert.are.equal(5, bt.fs.stat(d .. "/f").size)
    assert.are.equal("dir", bt.fs.stat(d .. "/sub").type)
    assert.are.equal("link", bt.fs.stat(d .. "/l").type)
    assert.are.equal("other", bt.fs.stat("/dev/null").type)
    assert.is_true(math.type(bt.fs.stat(d .. "/f").mtime) == "integer")
    local r, err = bt.fs.list(d .. "/nope")
    assert.is_nil(r)
    assert.truthy(err:find("nope", 1, true))
    r, err = bt.fs.stat(d .. "/nope")
    assert.is_nil(r)
    assert.truthy(err:find("No such file", 1, true))
    assert.are.equal(d, bt.fs.realpath(d .. "/sub/.."))
    H.rmtree(d)
  end)

  it("stat_ns is stat plus the nanoseconds of mtime", function()
    local d = H.tmpdir()
    H.writefile(d .. "/f", "12345")
    H.sh("ln -s f " .. H.q(d .. "/l"))
    for _, name in ipairs({ "f", "l" }) do
      local s, n = assert(bt.fs.stat(d .. "/" .. name)), assert(bt.fs.stat_ns(d .. "/" .. name))
      assert.is_nil(s.mtime_ns)
      assert.is_true(math.type(n.mtime_ns) == "integer" and n.mtime_ns >= 0 and n.mtime_ns < 1000000000)
      n.mtime_ns = nil
      assert.are.same(s, n)
    end
    local r, err = bt.fs.stat_ns(d .. "/nope")
    assert.is_nil(r)
    assert.truthy(err:find("No such file", 1, true))
    assert.has_error(function() bt.fs.stat_ns() end)
    H.rmtree(d)
  end)
end)

-- Foreign tools: the payload has a nested folder, sizes that are not piece
-- aligned, a zero-length file and a hidden file.
local function make_payload(d)
  H.sh("mkdir -p " .. H.q(d .. "/multi/sub/deeper"))
  local function rnd(n, seed)
    local t, x = {}, seed
    for i = 1, n do x = (x * 1103515245 + 12345) % 2147483648; t[i] = string.char(x % 256) end
    return table.concat(t)
  end
  H.writefile(d .. "/multi/a.bin", rnd(100000, 1))
  H.writefile(d .. "/multi/sub/b.txt", rnd(33333, 2))
  H.writefile(d .. "/multi/sub/empty", "")
  H.writefile(d .. "/multi/sub/deeper/c", rnd(70001, 3))
  H.writefile(d .. "/multi/.hidden", rnd(5000, 4))
  H.writefile(d .. "/single.dat", rnd(123457, 5))
end

local function show(path)
  local out, ok = H.sh("transmission-show " .. H.q(path))
  assert(ok, out)
  local r = { hash = out:match("Hash: (%x+)"), files = {},
    pieces = tonumber(out:match("Piece Count: (%d+)")), private = out:match("Privacy: (.-)\n") }
  for line in out:match("FILES\n\n(.*)$"):gmatch("  ([^\n]+) %([^\n]-%)\n") do r.files[#r.files + 1] = line end
  table.sort(r.files)
  return r
end

local function our_files(t)
  local out = {}
  for _, f in ipairs(t.files) do
    out[#out + 1] = t.multi_file and t.name .. "/" .. table.concat(f.path, "/") or t.name
  end
  table.sort(out)
  return out
end

-- transmission-show reads the torrent file at path as we loaded it into t:
-- same info-hash, piece count and file list.
local function agrees_with_show(t, path)
  local ts = show(path)
  assert.are.equal(ts.hash, t.info_hash_hex)
  assert.are.equal(ts.pieces, t.num_pieces)
  assert.are.same(ts.files, our_files(t))
end

describe("cross-check with mktorrent and transmission", function()
  local d
  setup(function()
    d = H.tmpdir()
    make_payload(d)
  end)
  teardown(function() H.rmtree(d) end)

  for _, target in ipairs { "multi", "single.dat" } do
    it("loads mktorrent's torrent of " .. target .. " with transmission-show's hash", function()
      local out, ok = H.sh(("mktorrent -l 15 -a http://127.0.0.1:1/announce -o %s %s")
        :format(H.q(d .. "/mk-" .. target .. ".torrent"), H.q(d .. "/" .. target)))
      assert(ok, out)
      local t = assert(bt.torrent.load(d .. "/mk-" .. target .. ".torrent"))
      agrees_with_show(t, d .. "/mk-" .. target .. ".torrent")
      assert.are.equal(32768, t.piece_length)
    end)

    it("loads transmission-create's torrent of " .. target .. " with the same hash", function()
      local out, ok = H.sh(("transmission-create -p -s 16 -t http://127.0.0.1:1/announce -o %s %s")
        :format(H.q(d .. "/tc-" .. target .. ".torrent"), H.q(d .. "/" .. target)))
      assert(ok, out)
      local t = assert(bt.torrent.load(d .. "/tc-" .. target .. ".torrent"))
      agrees_with_show(t, d .. "/tc-" .. target .. ".torrent")
      assert.is_true(t.private)
    end)

    it("makes a torrent of " .. target .. " that transmission-show reads the same way", function()
      local bytes = assert(bt.torrent.create {
        path = d .. "/" .. target, piece_length = 32768, announce = "http://127.0.0.1:1/announce",
        comment = "made by the spec", creation_date = 1700000000,
      })
      H.writefile(d .. "/bt-" .. target .. ".torrent", bytes)
      local t = assert(bt.torrent.load(bytes))
      agrees_with_show(t, d .. "/bt-" .. target .. ".torrent")
      -- mktorrent hashes the same bytes in the same order: the info dicts
      -- differ only in what mktorrent leaves out, so the pieces must be equal.
      local out, ok = H.sh(("mktorrent -d -l 15 -a x -o %s %s")
        :format(H.q(d .. "/mk15-" .. target .. ".torrent"), H.q(d .. "/" .. target)))
      assert(ok, out)
      local mk = assert(bt.torrent.load(d .. "/mk15-" .. target .. ".torrent"))
      assert.are.equal(mk.meta:info_value("pieces"), t.meta:info_value("pieces"))
      assert.are.same(mk.files, t.files)
      if target == "multi" then
        -- Same info dict, so the same info-hash as mktorrent.
        assert.are.equal(mk.info_hash_hex, t.info_hash_hex)
      end
    end)
  end
end)

describe("bt.torrent.create", function()
  local d
  before_each(function() d = H.tmpdir() end)
  after_each(function() H.rmtree(d) end)

  it("orders files by path bytes, includes hidden and empty files, fills the fields", function()
    H.sh("mkdir -p " .. H.q(d .. "/p/B") .. " " .. H.q(d .. "/p/a"))
    H.writefile(d .. "/p/a/x", "xx")
    H.writefile(d .. "/p/a-", "dash")
    H.writefile(d .. "/p/B/y", "yyy")
    H.writefile(d .. "/p/.h", "h")
    H.writefile(d .. "/p/zero", "")
    local bytes = assert(bt.torrent.create {
      path = d .. "/p", announce_list = { { "http://t1/a", "http://t1/b" }, "udp://t2/" },
      url_list = "http://ws/", private = true, name = "named", created_by = false,
      creation_date = false,
    })
    local t = assert(bt.torrent.load(bytes))
    local paths = {}
    for i, f in ipairs(t.files) do paths[i] = table.concat(f.path, "/") end
    assert.are.same({ ".h", "B/y", "a/x", "a-", "zero" }, paths)
    assert.are.equal("named", t.name)
    assert.are.equal("http://t1/a", t.announce)
    assert.are.same({ { "http://t1/a", "http://t1/b" }, { "udp://t2/" } }, t.announce_list)
    assert.are.same({ "http://ws/" }, t.url_list)
    assert.is_true(t.private)
    assert.is_nil(t.created_by)
    assert.is_nil(t.creation_date)
    assert.are.equal(16384, t.piece_length)
    assert.are.equal(1 + 3 + 2 + 4, t.total_length)
    assert.are.equal(bt.sha1("hyyyxxdash"), t:piece_hash(0))
  end)

  it("hashes across file boundaries and chunk boundaries", function()
    H.sh("mkdir " .. H.q(d .. "/q"))
    local parts = {}
    for i = 1, 5 do
      parts[i] = string.rep(string.char(64 + i), 10000 * i + 7)
      H.writefile(d .. "/q/" .. i, parts[i])
    end
    local all = table.concat(parts)
    local T = bt.torrent
    local saved = T.READ_CHUNK
    T.READ_CHUNK = 12345   -- odd chunk size, smaller than a piece
    local bytes = assert(T.create { path = d .. "/q", piece_length = 16384 })
    T.READ_CHUNK = saved
    local t = assert(T.load(bytes))
    assert.are.equal((#all - 1) // 16384 + 1, t.num_pieces)
    for i = 0, t.num_pieces - 1 do
      assert.are.equal(bt.sha1(all, i * 16384 + 1, (i + 1) * 16384), t:piece_hash(i))
    end
  end)

  it("picks a default piece length from the total size", function()
    local T = bt.torrent
    assert.are.equal(16384, T.default_piece_length(1))
    assert.are.equal(16384, T.default_piece_length(16384 * 2000))
    assert.are.equal(32768, T.default_piece_length(16384 * 2000 + 1))
    assert.are.equal(1 << 21, T.default_piece_length(1 << 31))   -- 1024 pieces
    assert.are.equal(16 << 20, T.default_piece_length(1 << 50))
    -- Between the clamps, 1000 < pieces <= 2000.
    for _, total in ipairs { 12345678901, 1 << 33, 30000000000, 40000000 } do
      local pl = T.default_piece_length(total)
      local n = (total - 1) // pl + 1
      assert.is_true(n > 1000 and n <= 2000, total)
    end
  end)

  it("refuses symlinks, empty folders, zero-size payloads and bad names", function()
    H.sh("mkdir -p " .. H.q(d .. "/s") .. " " .. H.q(d .. "/e/empty"))
    H.writefile(d .. "/s/f", "data")
    H.sh("ln -s f " .. H.q(d .. "/s/link"))
    local r, err = bt.torrent.create { path = d .. "/s" }
    assert.is_nil(r)
    assert.truthy(err:find("symbolic links are not supported", 1, true), err)
    r, err = bt.torrent.create { path = d .. "/s/link" }
    assert.is_nil(r)
    assert.truthy(err:find("symbolic links", 1, true))
    r, err = bt.torrent.create { path = d .. "/e" }
    assert.is_nil(r)
    assert.truthy(err:find("holds no files", 1, true), err)
    H.writefile(d .. "/zero", "")
    r, err = bt.torrent.create { path = d .. "/zero" }
    assert.is_nil(r)
    assert.truthy(err:find("total size 0", 1, true), err)
    r, err = bt.torrent.create { path = d .. "/s/f", name = "a/b" }
    assert.is_nil(r)
    assert.truthy(err:find("not safe as it is", 1, true), err)
    r, err = bt.torrent.create { path = d .. "/none" }
    assert.is_nil(r)
    assert.truthy(err:find("No such file", 1, true))
    r, err = bt.torrent.create { path = "/dev/null" }
    assert.is_nil(r)
    assert.truthy(err:find("not a regular file", 1, true))
  end)

  it("raises on wrong option types", function()
    H.writefile(d .. "/f", "data")
    for _, o in ipairs {
      { path = 5 }, { path = d .. "/f", piece_length = 3000 },
      { path = d .. "/f", piece_length = 8192 }, { path = d .. "/f", piece_length = 32 << 20 },
      { path = d .. "/f", announce = 5 }, { path = d .. "/f", announce_list = "x" },
      { path = d .. "/f", comment = 1 }, { path = d .. "/f", creation_date = "now" },
      { path = d .. "/f", url_list = 3 }, { path = d .. "/f", announce = "" },
    } do
      assert.has_error(function() bt.torrent.create(o) end)
    end
    assert.has_error(function() bt.torrent.create() end)
  end)
end)
