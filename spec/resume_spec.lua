-- bt.resume (lua/bt/resume.lua) and the atomic writes under it (bt.fs.write_atomic).
local bt = require "bt"
local resume = require "bt.resume"
local H = require "spec.helpers"

local bytes = H.bytes

-- A multi-file torrent over `files` ({path =, data =, pad =}); returns the
-- bt.torrent and the byte stream.
local function make_torrent(name, piece_length, files)
  local torrent, stream = H.torrent_bytes(name, piece_length, files, { announce = "http://127.0.0.1/a" })
  local t = assert(bt.torrent.load(torrent))
  return t, stream
end

-- 16 KiB pieces; files cut across pieces so one file touches several.
--   a: [0, 10000)            pieces 0
--   b: [10000, 40000)        pieces 0..2
--   empty                    none
--   c: [40000, 40005)        piece 2
--   d: [40005, 70005)        pieces 2..4 (last piece short)
local FILES = {
  { path = { "a" }, data = bytes(10000, 1) },
  { path = { "sub", "b" }, data = bytes(30000, 2) },
  { path = { "empty" }, data = "" },
  { path = { "c" }, data = bytes(5, 3) },
  { path = { "d" }, data = bytes(30000, 4) },
}

local function set_of(r)
  local t = {}
  for a, b in r:ranges() do for i = a, b - 1 do t[#t + 1] = i end end
  return table.concat(t, ",")
end

describe("bt.resume", function()
  local dir, t, stream, rpath
  before_each(function()
    dir = H.tmpdir()
    t, stream = make_torrent("multi", 16384, FILES)
    rpath = resume.path(dir, t.info_hash_hex)
  end)
  after_each(function() H.rmtree(dir) end)

  -- Download everything into dir, save resume data claiming `have` (default all).
  local function download_and_save(have, extra)
    local st = assert(bt.storage.open(t, dir))
    for p = 0, t.num_pieces - 1 do
      assert(st:write(p, 0, stream:sub(p * 16384 + 1, p * 16384 + st:piece_size(p))))
    end
    assert(st:sync())
    local verified = assert(st:check())
    st:close()
    assert.is_true(verified:full())
    assert(resume.save(rpath, t, have or verified, dir, extra))
  end

  local function assert_fallback(r, pattern)
    assert.are.equal(0, r.have:count())
    assert.is_true(r.check:full())
    assert.is_string(r.reason)
    if pattern then assert.matches(pattern, r.reason) end
  end

  it("suggests <dir>/.bt-lua/<info_hash_hex>.resume", function()
    assert.are.equal(dir .. "/.bt-lua/" .. t.info_hash_hex .. ".resume", rpath)
    assert.has_error(function() resume.path(dir, "xyz") end)
  end)

  it("round trip: everything trusted, nothing to check, totals and hints kept", function()
    local have = bt.bitfield(t.num_pieces)
    have:set_range(0, 2)
    have:set(4)
    download_and_save(have, { uploaded = 123456789012, downloaded = 70005, now = 1700000000,
                              partial = { [3] = { 0, 0, 1 }, [0] = { 0 } } })
    local r = resume.load(rpath, t, dir)
    assert.is_nil(r.reason)
    assert.are.equal("0,1,4", set_of(r.have))
    assert.are.equal(0, r.check:count())
    assert.are.equal(123456789012, r.uploaded)
    assert.are.equal(70005, r.downloaded)
    assert.are.equal(1700000000, r.written_at)
    -- piece 0 is had: its hint was dropped when saving; piece 3's is back, with
    -- the duplicate and the block past its single 16 KiB block dropped
    assert.are.same({ [3] = { 0 } }, r.partial)
    assert.are.same({ bt.list { 3, bt.list { 0 } } }, assert(bt.bdecode(H.readfile(rpath))).partial)
    -- the file is canonical bencode with the documented fields
    local d = assert(bt.bdecode(H.readfile(rpath)))
    assert.are.equal(1, d.version)
    assert.are.equal(t.info_hash, d.info_hash)
    assert.are.same({ { 0, 2 }, { 4, 5 } }, d.pieces)
    assert.are.equal(#FILES, #d.files)
    assert.are.equal(0, d.files[3].size)   -- the empty file exists too
    assert.are.equal(30000, d.files[2].size)
    assert.is_true(d.files[2].mtime_ns >= 0 and d.files[2].mtime_ns < 1e9)
  end)

  it("finds files at their sanitized disk paths (issue 14)", function()
    local unsafe = {}
    for i, f in ipairs(FILES) do unsafe[i] = { path = { "..", "x/" .. f.path[1], table.unpack(f.path, 2) },
                                               data = f.data } end
    t, stream = make_torrent("../multi", 16384, unsafe)
    assert.are.equal("..multi", t.disk_name)   -- the "/" removed
    assert.are.same({ "xsub", "b" }, t.files[2].disk_path)
    rpath = resume.path(dir, t.info_hash_hex)
    download_and_save()
    local d = assert(bt.bdecode(H.readfile(rpath)))
    assert.are.equal(30000, d.files[2].size)
    local r = resume.load(rpath, t, dir)
    assert.is_nil(r.reason)
    assert.is_true(r.have:full())
    assert.are.equal(0, r.check:count())
  end)

  it("a changed mtime of one file sends exactly the pieces touching it to check", function()
    download_and_save()
    -- b touches pieces 0..2; its size is unchanged, only the time moves
    assert(select(2, H.sh("touch -d '2001-02-03 04:05:06.789' " .. H.q(dir .. "/multi/sub/b"))))
    local r = resume.load(rpath, t, dir)
    assert.are.equal("0,1,2", set_of(r.check))
    assert.are.equal("3,4", set_of(r.have))
    assert.matches("1 file%(s%) changed .*file 2", r.reason)
  end)

  it("a nanosecond is a change", function()
    download_and_save()
    local st = bt.fs.stat_ns(dir .. "/multi/c")
    local ns = (st.mtime_ns + 1) % 1000000000
    local stamp = os.date("!%Y-%m-%d %H:%M:%S", st.mtime) .. string.format(".%09d", ns)
    assert(select(2, H.sh("TZ=UTC touch -d " .. H.q(stamp) .. " " .. H.q(dir .. "/multi/c"))))
    assert.are_not.equal(st.mtime_ns, bt.fs.stat_ns(dir .. "/multi/c").mtime_ns)
    local r = resume.load(rpath, t, dir)
    assert.are.equal("2", set_of(r.check))
    assert.are.equal("0,1,3,4", set_of(r.have))
  end)

  it("a changed size, a missing file, a symlink in its place: its pieces go to check", function()
    download_and_save()
    local fh = assert(io.open(dir .. "/multi/d", "ab"))
    fh:write("x")
    fh:close()
    local r = resume.load(rpath, t, dir)
    assert.are.equal("2,3,4", set_of(r.check))
    assert.are.equal("0,1", set_of(r.have))

    os.remove(dir .. "/multi/a")
    r = resume.load(rpath, t, dir)
    assert.are.equal("0,2,3,4", set_of(r.check))
    assert.are.equal("1", set_of(r.have))

    assert(select(2, H.sh("ln -s " .. H.q(dir .. "/multi/sub/b") .. " " .. H.q(dir .. "/multi/a"))))
    r = resume.load(rpath, t, dir)
    assert.are.equal("0,2,3,4", set_of(r.check))
  end)

  it("pieces not claimed stay out of have even when their files are unchanged", function()
    local have = bt.bitfield(t.num_pieces)
    have:set(3)
    download_and_save(have)
    local r = resume.load(rpath, t, dir)
    assert.are.equal("3", set_of(r.have))
    assert.are.equal(0, r.check:count())
  end)

  it("no resume data: check everything", function()
    assert_fallback(resume.load(rpath, t, dir), "^no resume data")
    assert(bt.fs.mkdir(dir .. "/.bt-lua"))
    assert(bt.fs.mkdir(rpath))
    assert_fallback(resume.load(rpath, t, dir), "not a regular file")
  end)

  it("garbage, truncated, oversized, other torrent: check everything, with a reason", function()
    download_and_save()
    local good = H.readfile(rpath)
    assert.is_nil(resume.load(rpath, t, dir).reason)

    H.writefile(rpath, "garbage")
    assert_fallback(resume.load(rpath, t, dir), "^bad resume data: ")
    H.writefile(rpath, "")
    assert_fallback(resume.load(rpath, t, dir), "^bad resume data: ")
    for cut = 1, #good - 1, 7 do   -- every truncation is refused
      H.writefile(rpath, good:sub(1, cut))
      assert_fallback(resume.load(rpath, t, dir), "^bad resume data: ")
    end
    H.writefile(rpath, good .. "x")   -- trailing bytes
    assert_fallback(resume.load(rpath, t, dir), "^bad resume data: ")

    H.writefile(rpath, string.rep("x", resume.max_bytes(t) + 1))
    assert_fallback(resume.load(rpath, t, dir), "too large")

    local other = make_torrent("other", 16384, { { path = { "x" }, data = bytes(70005, 9) } })
    H.writefile(rpath, good)
    assert_fallback(resume.load(rpath, other, dir), "another torrent")
  end)

  it("every field is checked: type, bounds, order", function()
    download_and_save(nil, { partial = {} })
    local good = assert(bt.bdecode(H.readfile(rpath)))
    local function copy(v)
      if type(v) ~= "table" then return v end
      local c = setmetatable({}, getmetatable(v))
      for k, x in pairs(v) do c[k] = copy(x) end
      return c
    end
    local cases = {
      { "unknown version", function(d) d.version = 2 end },
      { "version missing", function(d) d.version = "1" end },
      { "info_hash missing", function(d) d.info_hash = "short" end },
      { "geometry", function(d) d.num_pieces = d.num_pieces + 1 end },
      { "geometry", function(d) d.piece_length = 32768 end },
      { "uploaded", function(d) d.uploaded = -1 end },
      { "downloaded", function(d) d.downloaded = nil end },
      { "written_at", function(d) d.written_at = "now" end },
      { "pieces: bad list", function(d) d.pieces = bt.dict {} end },
      { "pair expected", function(d) d.pieces = bt.list { bt.list { 0 } } end },
      { "pair expected", function(d) d.pieces = bt.list { bt.list { 0, 6 } } end },   -- past the end
      { "pair expected", function(d) d.pieces = bt.list { bt.list { -1, 2 } } end },
      { "empty or reversed", function(d) d.pieces = bt.list { bt.list { 3, 3 } } end },
      { "empty or reversed", function(d) d.pieces = bt.list { bt.list { 3, 1 } } end },
      { "not sorted or overlapping", function(d)
          d.pieces = bt.list { bt.list { 2, 4 }, bt.list { 0, 1 } } end },
      { "not sorted or overlapping", function(d)
          d.pieces = bt.list { bt.list { 0, 3 }, bt.list { 2, 4 } } end },
      { "one record per file", function(d) d.files[#d.files] = nil end },
      { "dictionary expected", function(d) d.files[1] = bt.list {} end },
      { "size, mtime, mtime_ns", function(d) d.files[1].mtime_ns = 1000000000 end },
      { "size, mtime, mtime_ns", function(d) d.files[1].size = -5 end },
      { "size, mtime, mtime_ns", function(d) d.files[2].mtime = nil end },
      { "partial: list", function(d) d.partial = bt.dict {} end },
      { "partial%[1%]", function(d) d.partial = bt.list { bt.list { 5, bt.list {} } } end },
      { "partial%[2%]: pieces not sorted", function(d)
          d.partial = bt.list { bt.list { 3, bt.list { 0 } }, bt.list { 3, bt.list { 1 } } } end },
      { "block indices", function(d) d.partial = bt.list { bt.list { 3, bt.list { 1, 0 } } } end },
      { "block indices", function(d) d.partial = bt.list { bt.list { 3, bt.list { 1 << 40 } } } end },
    }
    for _, c in ipairs(cases) do
      local d = copy(good)
      c[2](d)
      H.writefile(rpath, bt.bencode(d))
      local r = resume.load(rpath, t, dir)
      assert_fallback(r, c[1])
    end
    -- and the untouched copy is still accepted (the cases changed only copies)
    H.writefile(rpath, bt.bencode(copy(good)))
    assert.is_nil(resume.load(rpath, t, dir).reason)
  end)

  it("random corruption never raises and never trusts more than was claimed", function()
    local have = bt.bitfield(t.num_pieces)
    have:set_range(1, 4)
    download_and_save(have)
    local good = H.readfile(rpath)
    math.randomseed(4242)
    for _ = 1, 400 do
      local b = { good:byte(1, -1) }
      for _ = 1, math.random(1, 4) do
        b[math.random(#b)] = math.random(0, 255)
      end
      H.writefile(rpath, string.char(table.unpack(b)))
      local ok, r = pcall(resume.load, rpath, t, dir)
      assert.is_true(ok, r)
      assert.is_true(r.have:diff(have):empty(), "trusted an unclaimed piece: " .. tostring(r.have))
      assert.is_true(r.reason ~= nil or r.have == have)
    end
  end)

  it("pad files are neither stat'ed nor able to break trust", function()
    local pt, pstream = make_torrent("padded", 16384, {
      { path = { "a" }, data = bytes(1000, 5) },
      { path = { ".pad", "15384" }, data = string.rep("\0", 15384), pad = true },
      { path = { "b" }, data = bytes(2000, 6) },
    })
    local st = assert(bt.storage.open(pt, dir))
    assert(st:write(0, 0, pstream:sub(1, 16384)))
    assert(st:write(1, 0, pstream:sub(16385)))
    assert(st:sync())
    local have = assert(st:check())
    st:close()
    local p = resume.path(dir, pt.info_hash_hex)
    assert(resume.save(p, pt, have, dir))
    local r = resume.load(p, pt, dir)
    assert.is_nil(r.reason)
    assert.is_true(r.have:full())
  end)

  it("saver: saves every interval while pieces arrive, syncing before each save", function()
    local st = assert(bt.storage.open(t, dir))
    local log = {}
    local saver = resume.saver { path = rpath, torrent = t, dir = dir, interval = 5,
      sync = function() log[#log + 1] = "sync"; return st:sync() end }
    local have = bt.bitfield(t.num_pieces)
    local function piece(p)
      assert(st:write(p, 0, stream:sub(p * 16384 + 1, p * 16384 + st:piece_size(p))))
      have:set(p)
    end
    assert.is_false(saver:tick(0, have))          -- starts the clock
    piece(0)
    assert.is_false(saver:tick(4.9, have))        -- too soon
    assert.is_true(saver:tick(5, have))
    assert.are.same({ "sync" }, log)
    assert.are.equal("0", set_of(resume.load(rpath, t, dir).have))
    assert.is_false(saver:tick(20, have))         -- no progress: no save
    piece(1)
    piece(2)
    assert.is_true(saver:tick(21, have, { downloaded = 3 * 16384 }))
    local r = resume.load(rpath, t, dir)
    assert.are.equal("0,1,2", set_of(r.have))
    assert.are.equal(3 * 16384, r.downloaded)
    piece(3)
    assert.is_false(saver:tick(22, have))         -- interval again
    assert.is_true(saver:flush(have))             -- clean shutdown: now
    assert.are.equal("0,1,2,3", set_of(resume.load(rpath, t, dir).have))
    assert.are.equal(3, saver.saves)
    assert.are.same({ "sync", "sync", "sync" }, log)
    st:close()
    -- a failing sync means no save
    local bad = resume.saver { path = rpath, torrent = t, dir = dir, interval = 0,
      sync = function() return nil, "disk on fire" end }
    have:set(4)
    local ok, err = bad:tick(100, have)
    assert.is_nil(ok)
    assert.matches("sync: disk on fire", err)
    assert.are.equal("0,1,2,3", set_of(resume.load(rpath, t, dir).have))
    assert.has_error(function() resume.saver { path = rpath, torrent = t, dir = dir } end)
  end)

  it("save raises on misuse", function()
    assert.has_error(function() resume.save(rpath, t, bt.bitfield(3), dir) end)
    assert.has_error(function() resume.save(rpath, t, "x", dir) end)
    assert.has_error(function() resume.save(rpath, t, bt.bitfield(t.num_pieces), dir, { uploaded = -1 }) end)
    assert.has_error(function() resume.load(rpath, nil, dir) end)
  end)
end)

describe("bt.fs.write_atomic", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("replaces the file, mode 0644 (minus the umask), no temporary left", function()
    local p = dir .. "/f"
    assert.is_true(bt.fs.write_atomic(p, "one"))
    assert.is_true(bt.fs.write_atomic(p, "two two"))
    assert.are.equal("two two", H.readfile(p))
    assert.are.same({ "f" }, bt.fs.list(dir))
    local mode = H.sh("stat -c %a " .. H.q(p)):match("%d+")
    local umask = tonumber(H.sh("umask"):match("%d+"), 8)
    assert.are.equal(string.format("%o", 420 & ~umask), mode)
    assert.is_true(bt.fs.write_atomic(p, ""))
    assert.are.equal("", H.readfile(p))
    assert.is_true(bt.fs.fsync_dir(dir))
  end)

  it("fails cleanly: missing folder, a folder in the way, a symlinked target is replaced not followed", function()
    local ok, msg = bt.fs.write_atomic(dir .. "/no/such/f", "x")
    assert.is_nil(ok)
    assert.matches("No such file", msg)
    assert(bt.fs.mkdir(dir .. "/d"))
    ok, msg = bt.fs.write_atomic(dir .. "/d", "x")
    assert.is_nil(ok)
    assert.matches("rename", msg)
    assert.are.equal(1, #bt.fs.list(dir))   -- the temporary was removed
    H.writefile(dir .. "/victim", "precious")
    assert(select(2, H.sh("ln -s " .. H.q(dir .. "/victim") .. " " .. H.q(dir .. "/link"))))
    assert.is_true(bt.fs.write_atomic(dir .. "/link", "new"))
    assert.are.equal("precious", H.readfile(dir .. "/victim"))
    assert.are.equal("file", bt.fs.stat(dir .. "/link").type)
    assert.is_nil(bt.fs.fsync_dir(dir .. "/none"))
    assert.is_true(bt.fs.mkdir(dir .. "/d"))   -- existing folder: fine
    assert.is_nil(bt.fs.mkdir(dir .. "/victim"))
  end)

  it("survives SIGKILL at random moments: the file is always one whole version", function()
    -- A child rewrites the file in a loop with versions of varying size, each
    -- self-describing; we kill it with SIGKILL (by PID) at random moments and
    -- check that what is on disk decodes and is intact.
    local p = dir .. "/state"
    local child = dir .. "/child.lua"
    H.writefile(child, [[
      package.cpath = (os.getenv("BT_CPATH") or "build/?.so") .. ";" .. package.cpath
      package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
      local bt = require "bt"
      local path, seed = arg[1], tonumber(arg[2])
      for k = 1, 200000 do   -- bounded: the parent kills it long before
        local n = (k * 7919 + seed) % 200000
        local body = string.rep(string.char(65 + k % 26), n)
        assert(bt.fs.write_atomic(path, bt.bencode({ k = k, n = n, body = body,
                                                     sum = bt.sha1_hex(body) })))
      end
    ]])
    local socket = require "socket"
    math.randomseed(99)
    assert(bt.fs.write_atomic(p, bt.bencode({ k = 0, n = 0, body = "", sum = bt.sha1_hex("") })))
    local kills, versions = 0, {}
    for round = 1, 12 do
      local ph = io.popen("lua5.4 " .. H.q(child) .. " " .. H.q(p) .. " " .. round
        .. " >/dev/null 2>&1 & echo $!")
      local pid = tonumber(ph:read("l"))
      ph:close()
      assert.is_number(pid)
      socket.sleep(0.05 + math.random() * 0.25)
      local _, killed = H.sh("kill -KILL " .. pid)
      if killed then kills = kills + 1 end
      -- wait (bounded) until the process is gone: /proc/PID disappears once
      -- reaped by init, or it stays a zombie whose state is Z
      for _ = 1, 100 do
        local stat = io.open("/proc/" .. pid .. "/stat")
        if not stat then break end
        local s = stat:read("a") or ""
        stat:close()
        if s:match("^%d+ %b() Z") then break end
        socket.sleep(0.01)
      end
      local d = assert(bt.bdecode(H.readfile(p)), "round " .. round .. ": file does not decode")
      assert.are.equal(d.n, #d.body)
      assert.are.equal(d.sum, bt.sha1_hex(d.body))
      if d.k > 0 then assert.are.equal(string.char(65 + d.k % 26), d.body:sub(1, 1)) end
      versions[#versions + 1] = d.k
    end
    assert.is_true(kills >= 10, "the child was killed mid-loop in " .. kills .. " rounds")
    local progressed = 0
    for _, k in ipairs(versions) do if k > 1 then progressed = progressed + 1 end end
    assert.is_true(progressed >= 10, "the child wrote several versions before being killed")
    -- only the file and leftover temporaries of killed writers, which cleanup removes
    local leftovers = 0   -- (usually several: kills do land mid-write)
    for _, name in ipairs(bt.fs.list(dir)) do
      assert.is_truthy(name == "state" or name == "child.lua" or name:match("^state%.tmp%.%d+%.%d+$"), name)
      if name:match("%.tmp%.") then leftovers = leftovers + 1 end
    end
    H.writefile(dir .. "/state.tmp.x", "not ours")   -- does not match the pattern: kept
    assert.are.equal(leftovers, resume.cleanup(p))
    if os.getenv("BT_SPEC_VERBOSE") then
      print("\nkills", kills, "leftovers", leftovers, table.concat(versions, " "))
    end
    table.sort(versions)
    local names = bt.fs.list(dir)
    table.sort(names)
    assert.are.same({ "child.lua", "state", "state.tmp.x" }, names)
  end)
end)
