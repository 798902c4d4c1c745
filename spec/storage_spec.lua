-- bt.storage: pieces mapped onto files (csrc/storage.c).
local bt = require "bt"
local H = require "spec.helpers"

local bytes = H.bytes

--- A torrent over `files` ({path = {...}, data = "..."} each; a single file when
-- `single` is set). Returns the bt.Metainfo, the .torrent bytes, the whole stream.
local function make_torrent(name, piece_length, files, single)
  local torrent, stream = H.torrent_bytes(name, piece_length, files, { single = single })
  local m = assert(bt.meta_parse(torrent))
  return m, torrent, stream
end

-- The multi-file layout most tests use: sizes deliberately not aligned to the
-- 16 KiB pieces, an empty file, a nested folder, a file smaller than a piece,
-- a short last piece. A fresh table each call.
local function multi_files()
  return {
    { path = { "a.txt" }, data = bytes(10000, 1) },
    { path = { "empty" }, data = "" },
    { path = { "sub", "deeper", "b.bin" }, data = bytes(30000, 2) },
    { path = { "sub", "c.bin" }, data = bytes(5, 3) },
    { path = { "z.bin" }, data = bytes(20000, 4) },
  }
end

-- Writes the whole stream into st in blocks of 3000 bytes, so many straddle
-- two or three files; every write must succeed. Returns the piece count.
local function write_stream(st, stream, piece_length)
  local n = st:num_pieces()
  for p = 0, n - 1 do
    local size = st:piece_size(p)
    for b = 0, size - 1, 3000 do
      local len = math.min(3000, size - b)
      local off = p * piece_length + b
      assert.is_true(st:write(p, b, stream:sub(off + 1, off + len)))
    end
  end
  return n
end

-- "padded": a, a BEP 47 pad file filling piece 0, b. Returns the file list,
-- the bt.Metainfo and the stream.
local function padded_torrent()
  local pfiles = {
    { path = { "a" }, data = bytes(1000, 5) },
    { path = { ".pad", "15384" }, data = string.rep("\0", 15384), pad = true },
    { path = { "b" }, data = bytes(2000, 6) },
  }
  local m, _, stream = make_torrent("padded", 16384, pfiles)
  return pfiles, m, stream
end

local function st_blocks(path)
  local out = H.sh("stat -c %b " .. H.q(path))
  return tonumber(out)
end

describe("bt.storage", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("refuses torrent bytes that do not parse, with the parser's message and offset", function()
    assert.are.same({ nil, "bad torrent: info is not a dictionary at byte 7" },
      { bt.storage.open("d4:infoi1ee", dir) })
    assert.are.same({ nil, "bad torrent: invalid character at byte 0" }, { bt.storage.open("xx", dir) })
  end)

  describe("single file", function()
    it("creates DIR/NAME sparse, writes and reads back, short last piece", function()
      local data = bytes(100000, 7)   -- 6 pieces of 16 KiB, the last one 1696 bytes
      local m = make_torrent("one.bin", 16384, { { data = data } }, true)
      local st = assert(bt.storage.open(m, dir))
      assert.are.equal(7, st:num_pieces())
      assert.are.equal(100000 - 6 * 16384, st:piece_size(6))
      local path = dir .. "/one.bin"
      assert.are.equal(100000, #H.readfile(path))
      assert.is_true(st_blocks(path) <= 8, "freshly sized file should be sparse")
      for p = 0, 6 do
        local piece = data:sub(p * 16384 + 1, (p + 1) * 16384)
        assert.is_true(st:write(p, 0, piece))
      end
      assert.are.equal(data, H.readfile(path))
      assert.are.equal(data:sub(16384 * 6 + 1), st:read(6, 0, 100000 - 6 * 16384))
      assert.are.equal(data:sub(16384 + 101, 16384 + 200), st:read(1, 100, 100))
      st:close()
      st:close()   -- idempotent
    end)

    it("accepts the .torrent bytes or a table with a meta field", function()
      local m, torrent = make_torrent("t.bin", 16384, { { data = bytes(20000) } }, true)
      local a = assert(bt.storage.open(torrent, dir))
      a:close()
      local b = assert(bt.storage.open({ meta = m }, dir))
      b:close()
      local nope, msg = bt.storage.open("not a torrent", dir)
      assert.is_nil(nope)
      assert.matches("^bad torrent: ", msg)
    end)

    it("never truncates a longer existing file", function()
      local m = make_torrent("long.bin", 16384, { { data = bytes(20000) } }, true)
      H.writefile(dir .. "/long.bin", string.rep("x", 30000))
      local st = assert(bt.storage.open(m, dir))
      st:close()
      assert.are.equal(string.rep("x", 30000), H.readfile(dir .. "/long.bin"))
    end)
  end)

  describe("multi-file", function()
    local files = multi_files()

    it("lays out the folder tree with every file sized, the empty one included", function()
      local m = make_torrent("multi", 16384, files)
      local st = assert(bt.storage.open(m, dir))
      for _, f in ipairs(files) do
        local path = dir .. "/multi/" .. table.concat(f.path, "/")
        local fh = assert(io.open(path, "rb"), path)
        assert.are.equal(#f.data, fh:seek("end"))
        fh:close()
      end
      st:close()
    end)

    it("writes across file boundaries and reads back equal", function()
      local m, _, stream = make_torrent("multi", 16384, files)
      local st = assert(bt.storage.open(m, dir))
      -- blocks of 3000 bytes, so many straddle two or three files
      local n = write_stream(st, stream, 16384)
      for _, f in ipairs(files) do
        assert.are.equal(f.data, H.readfile(dir .. "/multi/" .. table.concat(f.path, "/")))
      end
      -- piece 0 spans a.txt, empty and b.bin; piece 2 spans b.bin, c.bin, z.bin
      for p = 0, n - 1 do
        assert.are.equal(stream:sub(p * 16384 + 1, p * 16384 + st:piece_size(p)),
                         st:read(p, 0, st:piece_size(p)))
        assert.is_true(st:verify(p))
        assert.are.equal(m:piece_hash(p), st:hash(p))
      end
      st:close()
    end)

    it("check() finds complete, partial and corrupted data", function()
      local m, _, stream = make_torrent("multi", 16384, files)
      local st = assert(bt.storage.open(m, dir))
      local n = st:num_pieces()
      assert.are.equal(0, assert(st:check()):count())   -- fresh sparse files: nothing
      for p = 0, n - 1 do
        assert(st:write(p, 0, stream:sub(p * 16384 + 1, p * 16384 + st:piece_size(p))))
      end
      local have = assert(st:check())
      assert.are.equal(n, have:count())
      st:close()

      -- reopened: complete
      st = assert(bt.storage.open(m, dir))
      local calls = 0
      have = assert(st:check(function(done, total)
        calls = calls + 1
        assert.are.equal(n, total)
        assert.are.equal(calls, done)
      end))
      assert.are.equal(n, calls)
      assert.is_true(have:full())
      st:close()

      -- corrupt one byte of b.bin inside piece 1; cut z.bin short (last piece)
      local p = dir .. "/multi/sub/deeper/b.bin"
      local b = H.readfile(p)
      local at = 16384 - 10000 + 100   -- byte 100 of piece 1 in b.bin
      H.writefile(p, b:sub(1, at) .. string.char((b:byte(at + 1) + 1) % 256) .. b:sub(at + 2))
      H.writefile(dir .. "/multi/z.bin", files[5].data:sub(1, 1000))
      st = assert(bt.storage.open(m, dir))
      have = assert(st:check())
      assert.is_true(have:has(0))
      assert.is_false(have:has(1))
      assert.is_false(have:has(n - 1))
      assert.is_false(st:verify(1))
      assert.are.equal(n - 3, have:count())   -- piece n-2 also touches z.bin
      for i = 0, n - 1 do assert.are.equal(have:has(i), st:check_piece(i)) end
      st:close()
    end)

    it("check() treats holes as zeros without reading them", function()
      -- second open: files are full size but wholly sparse (holes), so nothing
      -- is "too short"; a hole is good only when the piece hash is that of zeros.
      local m = make_torrent("multi", 16384, files)
      assert(bt.storage.open(m, dir)):close()
      local st = assert(bt.storage.open(m, dir))
      assert.are.equal(0, assert(st:check()):count())
      st:close()

      local zeros = {
        { path = { "z1" }, data = string.rep("\0", 20000) },
        { path = { "z2" }, data = string.rep("\0", 30000) },
      }
      local mz = make_torrent("zeros", 16384, zeros)
      assert(bt.storage.open(mz, dir)):close()
      st = assert(bt.storage.open(mz, dir))
      local have = assert(st:check())
      assert.is_true(have:full())
      assert.are.equal(4, have:count())
      st:close()
    end)

    it("keeps at most 64 files open for a 300-file torrent, reopening on demand", function()
      local many = {}
      for i = 1, 300 do
        many[i] = { path = { "d" .. (i % 7), "f" .. i }, data = bytes(100 + i * 13, i) }
      end
      local m, _, stream = make_torrent("many", 4096, many)
      -- descriptors of this process open on files under dir: what the storage holds (a
      -- count of every descriptor also saw other specs' sockets come and go)
      local function nfds()
        local out = H.sh("ls -l /proc/" .. H.readfile("/proc/self/stat"):match("^(%d+)") .. "/fd | grep -cF "
          .. H.q(" -> " .. dir .. "/") .. " || true")
        return tonumber(out)
      end
      local before = nfds()
      local st = assert(bt.storage.open(m, dir))
      local n = st:num_pieces()
      for p = n - 1, 0, -1 do   -- backwards: every file is reopened after eviction
        assert(st:write(p, 0, stream:sub(p * 4096 + 1, p * 4096 + st:piece_size(p))))
      end
      local during = nfds()
      assert.is_true(during - before >= 60, "files are cached: " .. during - before)
      assert.is_true(during - before <= 64, "fd bound: " .. during - before)
      for p = 0, n - 1 do assert.is_true(st:verify(p)) end
      st:close()
      assert.are.equal(before, nfds())
      for i = 1, 300, 37 do
        assert.are.equal(many[i].data, H.readfile(dir .. "/many/d" .. (i % 7) .. "/f" .. i))
      end
    end)

    it("sync() fsyncs every written file, also those evicted from the descriptor cache", function()
      -- Counted with strace: 300 files written through a 64-descriptor cache,
      -- so most were closed before sync; each must be reopened and fsync'ed once,
      -- and a second sync has nothing left to do.
      local probe, has_strace = H.sh("strace -f -e trace=none true")
      if not has_strace then
        pending("strace cannot trace here: " .. probe)
        return
      end
      local many = {}
      for i = 1, 300 do many[i] = { path = { "f" .. i }, data = bytes(50 + i, i) } end
      local _, torrent = make_torrent("many", 4096, many)
      H.writefile(dir .. "/t.torrent", torrent)
      H.writefile(dir .. "/child.lua", [[
        package.cpath = (os.getenv("BT_CPATH") or "build/?.so") .. ";" .. package.cpath
        package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
        local bt = require "bt"
        local dir = arg[1]
        local f = assert(io.open(dir .. "/t.torrent", "rb"))
        local st = assert(bt.storage.open(f:read("a"), dir .. "/data"))
        f:close()
        for p = st:num_pieces() - 1, 0, -1 do assert(st:write(p, 0, string.rep("z", st:piece_size(p)))) end
        io.stderr:write("MARK first sync\n")
        assert(st:sync())
        io.stderr:write("MARK second sync\n")
        assert(st:sync())
        io.stderr:write("MARK done\n")
        st:close()
      ]])
      local preload = os.getenv("LD_PRELOAD")
      -- under `make asan`: the child needs the sanitizer runtime, and LeakSanitizer
      -- cannot run under ptrace (the leak check is the other specs' job)
      local env = preload and (" -E LD_PRELOAD=" .. H.q(preload) .. " -E ASAN_OPTIONS=detect_leaks=0") or ""
      local out, ok = H.sh("strace -f -e trace=fsync,write -e signal=none -o " .. H.q(dir .. "/trace")
        .. env .. " lua5.4 " .. H.q(dir .. "/child.lua") .. " " .. H.q(dir))
      assert(ok, out)
      local trace = H.readfile(dir .. "/trace")
      local first = trace:match("MARK first sync(.-)MARK second sync")
      local second = trace:match("MARK second sync(.-)MARK done")
      assert(first and second, "markers not found in the trace")
      local n1 = select(2, first:gsub("fsync%(%d+%) += 0", ""))
      local n2 = select(2, second:gsub("fsync%(", ""))
      assert.are.equal(300, n1)
      assert.are.equal(0, n2)
    end)

    it("a progress function returning false stops the check", function()
      local m = make_torrent("multi", 16384, files)
      local st = assert(bt.storage.open(m, dir))
      local r, msg = st:check(function(done) return done < 2 end)
      assert.is_nil(r)
      assert.are.equal("stopped", msg)
      st:close()
    end)

    it("a progress function that closes the storage ends the check with an error", function()
      -- The check must not touch the freed storage after the callback returns.
      for _, backend in ipairs({ "disk", "memory" }) do
        local m = make_torrent("multi", 16384, files)
        local st = assert(bt.storage.open(m, backend == "disk" and dir or nil, { backend = backend }))
        local calls = 0
        local ok, err = pcall(st.check, st, function()
          calls = calls + 1
          st:close()
        end)
        assert.is_false(ok)
        assert.matches("closed", tostring(err))
        assert.are.equal(1, calls)
        st:close()   -- still idempotent
      end
    end)

    it("does not create pad files (BEP 47) and reads them as zeros", function()
      local pfiles, m, stream = padded_torrent()
      local st = assert(bt.storage.open(m, dir))
      assert.is_nil(io.open(dir .. "/padded/.pad/15384", "rb"))
      assert(st:write(0, 0, stream:sub(1, 16384)))
      assert(st:write(1, 0, stream:sub(16385)))
      assert.is_true(st:verify(0))
      assert.is_true(st:verify(1))
      assert.are.equal(pfiles[1].data, H.readfile(dir .. "/padded/a"))
      st:close()
    end)
  end)


  -- The behaviour every backend shares, run on the disk and the memory backend.
  for _, backend in ipairs({ "disk", "memory" }) do
    describe("backend " .. backend .. ":", function()
      local function open(m)
        if backend == "memory" then return bt.storage.open(m, nil, { backend = "memory" }) end
        return bt.storage.open(m, dir, { backend = "disk" })
      end
      local files = multi_files()

      it("reports its backend and reads unwritten bytes as zeros", function()
        local m = make_torrent("multi", 16384, files)
        local st = assert(open(m))
        assert.are.equal(backend, st:backend())
        assert.are.equal(string.rep("\0", 100), st:read(1, 50, 100))
        st:close()
      end)

      it("writes across file boundaries, reads back, verifies, hashes", function()
        local m, _, stream = make_torrent("multi", 16384, files)
        local st = assert(open(m))
        local n = write_stream(st, stream, 16384)
        for p = 0, n - 1 do
          assert.are.equal(stream:sub(p * 16384 + 1, p * 16384 + st:piece_size(p)),
                           st:read(p, 0, st:piece_size(p)))
          assert.is_true(st:verify(p))
          assert.are.equal(m:piece_hash(p), st:hash(p))
        end
        assert.is_true(st:sync())
        st:close()
      end)

      it("check(): a fresh storage holds nothing; written pieces are found; bad data is not", function()
        local m, _, stream = make_torrent("multi", 16384, files)
        local st = assert(open(m))
        local n = st:num_pieces()
        assert.are.equal(0, assert(st:check()):count())
        for i = 0, n - 1 do assert.is_false(st:check_piece(i)) end
        for p = 0, n - 1 do
          assert(st:write(p, 0, stream:sub(p * 16384 + 1, p * 16384 + st:piece_size(p))))
        end
        assert.is_true(assert(st:check()):full())
        -- one flipped byte in piece 1 (inside b.bin)
        local byte = st:read(1, 100, 1)
        assert(st:write(1, 100, string.char((byte:byte() + 1) % 256)))
        local have = assert(st:check())
        assert.are.equal(n - 1, have:count())
        assert.is_false(have:has(1))
        assert.is_false(st:verify(1))
        st:close()
      end)

      it("a piece of zeros that was never written is not found on a fresh storage", function()
        local mz = make_torrent("zeros", 16384, {
          { path = { "z1" }, data = string.rep("\0", 20000) },
        })
        local st = assert(open(mz))
        assert.are.equal(0, assert(st:check()):count())
        assert(st:write(0, 0, string.rep("\0", 16384)))
        assert.is_true(st:check_piece(0))
        st:close()
      end)

      it("pad files read as zeros and are never written", function()
        local _, m, stream = padded_torrent()
        local st = assert(open(m))
        assert(st:write(0, 0, stream:sub(1, 16384)))
        assert(st:write(1, 0, stream:sub(16385)))
        assert.is_true(st:verify(0))
        assert.is_true(st:verify(1))
        assert.are.equal(string.rep("\0", 15384), st:read(0, 1000, 15384))
        st:close()
      end)

      it("raises on blocks outside the piece and on a closed storage", function()
        local m = make_torrent("one.bin", 16384, { { data = bytes(20000) } }, true)
        local st = assert(open(m))
        assert.has_error(function() st:read(2, 0, 1) end)
        assert.has_error(function() st:read(1, 0, 20000 - 16384 + 1) end)
        assert.has_error(function() st:write(0, 16380, "12345") end)
        st:close()
        assert.has_error(function() st:read(0, 0, 1) end, nil)
      end)
    end)
  end

  describe("the memory backend", function()
    -- A torrent of `size` bytes whose piece hashes are made up: the data is never
    -- hashed, only the allocation is watched.
    local function big_meta(size, piece_length)
      local n = (size + piece_length - 1) // piece_length
      local info = { name = "big", length = size, ["piece length"] = piece_length,
                     pieces = string.rep("\1", 20 * n) }
      return assert(bt.meta_parse(bt.bencode({ info = info })))
    end

    it("allocates lazily, one chunk per touched piece, never more than the torrent", function()
      local m = big_meta(1024 * 1024 * 1024, 256 * 1024)   -- 1 GiB, 4096 pieces
      local st = assert(bt.storage.open(m, nil, { backend = "memory" }))
      assert.are.equal(0, st:memory_used())
      assert(st:write(4000, 16384, bytes(16384, 9)))
      assert.are.equal(256 * 1024, st:memory_used())
      assert(st:write(4000, 0, bytes(100, 10)))        -- same chunk: nothing new
      assert.are.equal(256 * 1024, st:memory_used())
      assert.are.equal(bytes(16384, 9), st:read(4000, 16384, 16384))
      assert.are.equal(string.rep("\0", 100), st:read(3999, 0, 100))
      assert.are.equal(256 * 1024, st:memory_used())   -- reads allocate nothing
      st:close()
    end)

    it("tiny pieces share 64 KiB chunks; the last chunk is cut to the torrent", function()
      local m = big_meta(100000, 16384)   -- 7 pieces; chunks of 64 KiB: 65536 + 34464
      local st = assert(bt.storage.open(m, nil, { backend = "memory" }))
      assert(st:write(0, 0, "x"))
      assert.are.equal(65536, st:memory_used())
      assert(st:write(6, 0, "y"))
      assert.are.equal(100000, st:memory_used())
      for p = 0, 6 do assert(st:write(p, 0, bytes(st:piece_size(p), p))) end
      assert.are.equal(100000, st:memory_used())
      st:close()
    end)

    it("huge pieces are cut into 4 MiB chunks", function()
      local m = big_meta(64 * 1024 * 1024, 32 * 1024 * 1024)
      local st = assert(bt.storage.open(m, nil, { backend = "memory" }))
      assert(st:write(1, 20 * 1024 * 1024, bytes(16384, 3)))
      assert.are.equal(4 * 1024 * 1024, st:memory_used())
      st:close()
    end)

    it("checks its options", function()
      local m = make_torrent("t.bin", 16384, { { data = bytes(20000) } }, true)
      assert.has_error(function() bt.storage.open(m, dir, { backend = "memory" }) end,
        "bad argument #2 to 'open' (the memory backend takes no folder (pass nil))")
      assert.has_error(function() bt.storage.open(m, nil, { backend = "tape" }) end)
      assert.has_error(function() bt.storage.open(m, nil) end)
      local st = assert(bt.storage.open(m, dir))
      assert.are.equal("disk", st:backend())
      assert.is_nil(st:memory_used())
      st:close()
    end)
  end)

  describe("the backend vtable", function()
    it("drives an in-memory backend (C, ASan+UBSan)", function()
      local _, torrent, stream = make_torrent("multi", 16384, {
        { path = { "a" }, data = bytes(10000, 11) },
        { path = { "e" }, data = "" },
        { path = { "d", "b" }, data = bytes(30000, 12) },
        { path = { ".pad", "1" }, data = string.rep("\0", 1000), pad = true },
        { path = { "c" }, data = bytes(7, 13) },
      })
      H.writefile(dir .. "/t.torrent", torrent)
      H.writefile(dir .. "/stream", stream)
      local exe = dir .. "/storage_c_test"
      local out, ok = H.build_c_test(exe, "spec/storage_c_test.c csrc/storage/storage.c"
        .. " csrc/codec/metainfo.c csrc/core/sha1.c csrc/codec/bencode.c csrc/core/buf.c csrc/core/ranges.c -lcrypto")
      assert(ok, out)
      out, ok = H.run_c_test(exe, dir .. "/t.torrent", dir .. "/stream")
      assert.are.equal("all passed\n", out)
      assert.is_true(ok)
    end)
  end)

  describe("what libtorrent loads and bt-lua now does too (issue 14)", function()
    it("hashes a piece of 1 GiB - 1 (libtorrent's largest) read back from a sparse file", function()
      local pl = (1 << 30) - 1
      local info = { name = "huge", length = pl + 100, ["piece length"] = pl, pieces = string.rep("\1", 40) }
      local m = assert(bt.meta_parse(bt.bencode({ info = info })))
      local st = assert(bt.storage.open(m, dir))
      local block = bytes(16384, 4)
      assert(st:write(0, 700 << 20, block))
      assert(st:write(0, pl - 3, "xyz"))
      local h = bt.sha1_hasher()
      local zeros = string.rep("\0", 1 << 20)
      local function zero(n)
        while n >= #zeros do h:update(zeros); n = n - #zeros end
        if n > 0 then h:update(zeros, 1, n) end
      end
      zero(700 << 20)
      h:update(block)
      zero(pl - 3 - (700 << 20) - 16384)
      h:update("xyz")
      assert.are.equal(h:digest(), st:hash(0))
      st:close()
    end)

    it("refuses, before creating anything, a file whose path with the folder reaches PATH_MAX", function()
      local deep = {}
      for i = 1, 2047 do deep[i] = "d" end
      deep[2048] = "f"   -- 4095 bytes under the torrent's folder: the most metainfo takes
      local info = { name = "deep", ["piece length"] = 16384, pieces = string.rep("\1", 20),
                     files = { { length = 5, path = { "a" } }, { length = 5, path = deep } } }
      local m = assert(bt.meta_parse(bt.bencode({ info = info })))
      local st, err = bt.storage.open(m, dir)
      assert.is_nil(st)
      assert.truthy(err:find("^file 2: path too long for the file system %(%d+ bytes with the download folder; "
        .. "PATH_MAX is 4096%)$"), err)
      assert.are.equal("", H.sh("ls -A " .. H.q(dir)))
      -- 1000 deep is fine: created one folder at a time, inside the folder
      for i = 1001, 2048 do deep[i] = nil end
      deep[1000] = "f"
      m = assert(bt.meta_parse(bt.bencode({ info = info })))
      st = assert(bt.storage.open(m, dir))
      assert(st:write(0, 0, "helloworld"))
      st:close()
      local p = dir .. "/deep/" .. table.concat(deep, "/")
      assert.are.equal("world", H.readfile(p))
    end)
  end)

  describe("writes around the page cache (O_DIRECT)", function()
    it("writes aligned spans direct and the rest buffered, and every byte lands (C, ASan+UBSan)", function()
      -- 256 KiB pieces over files whose boundaries are not 4 KiB-aligned
      local files = {
        { path = { "a" }, data = bytes(300000, 21) },
        { path = { "b" }, data = bytes(700001, 22) },
        { path = { "c" }, data = bytes(262144 * 3 + 5, 23) },
      }
      local _, torrent, stream = make_torrent("direct", 262144, files)
      H.writefile(dir .. "/t.torrent", torrent)
      H.writefile(dir .. "/stream", stream)
      local exe = dir .. "/direct_c_test"
      local out, ok = H.build_c_test(exe, "spec/direct_c_test.c csrc/storage/storage.c"
        .. " csrc/codec/metainfo.c csrc/core/sha1.c csrc/codec/bencode.c csrc/core/buf.c csrc/core/ranges.c -lcrypto")
      assert(ok, out)
      -- ext4, xfs and btrfs take O_DIRECT; elsewhere (tmpfs before 6.6) writes stay buffered
      local fs = H.sh("stat -f -c %T " .. H.q(dir))
      local require_direct = (fs:find("ext") or fs:find("xfs") or fs:find("btrfs")) and "1" or "0"
      out, ok = H.run_c_test(exe, dir .. "/t.torrent", dir .. "/stream", dir, require_direct)
      assert.are.equal("all passed\n", out)
      assert.is_true(ok)
      for _, f in ipairs(files) do
        assert.is_true(H.readfile(dir .. "/direct/" .. f.path[1]) == f.data, f.path[1] .. " differs")
      end
    end)
  end)

  describe("hostile layouts", function()
    it("refuses to follow a symlink planted in the download folder", function()
      local outside = H.tmpdir()
      local m = make_torrent("multi", 16384, {
        { path = { "sub", "x.bin" }, data = bytes(100) },
      })
      assert(select(2, H.sh("mkdir -p " .. H.q(dir .. "/multi"))))
      assert(select(2, H.sh("ln -s " .. H.q(outside) .. " " .. H.q(dir .. "/multi/sub"))))
      local st, msg = bt.storage.open(m, dir)
      assert.is_nil(st)
      assert.matches("symlink", msg)
      assert.is_nil(io.open(outside .. "/x.bin", "rb"))
      H.rmtree(outside)
    end)

    it("refuses a symlink standing in for the file itself", function()
      local outside = H.tmpdir()
      H.writefile(outside .. "/victim", "precious")
      local m = make_torrent("f.bin", 16384, { { data = bytes(100) } }, true)
      assert(select(2, H.sh("ln -s " .. H.q(outside .. "/victim") .. " " .. H.q(dir .. "/f.bin"))))
      local st, msg = bt.storage.open(m, dir)
      assert.is_nil(st)
      assert.matches("symlink", msg)
      assert.are.equal("precious", H.readfile(outside .. "/victim"))
      H.rmtree(outside)
    end)

    it("raises on blocks outside the piece and on a closed storage", function()
      local m = make_torrent("one.bin", 16384, { { data = bytes(20000) } }, true)
      local st = assert(bt.storage.open(m, dir))
      assert.has_error(function() st:read(2, 0, 1) end)
      assert.has_error(function() st:read(1, 0, 20000 - 16384 + 1) end)
      assert.has_error(function() st:write(0, 16380, "12345") end)
      assert.has_error(function() st:read(-1, 0, 1) end)
      st:close()
      local ok, err = pcall(st.read, st, 0, 0, 1)
      assert.is_false(ok)
      assert.matches("closed bt.Storage", err)
    end)
  end)
end)
