-- bt-lua info / bt-lua create, through the real command (H.btlua).
local H = require "helpers"
local bt = require "bt"

describe("bt-lua info", function()
  it("shows every field of a multi-file torrent", function()
    local out, code = H.btlua("info spec/fixtures/multi.torrent")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("Name:        folder\n", 1, true), out)
    assert.truthy(out:find("Info-hash:   367b4683c3e61e2a2e7c97a8d401e46f07e4864e\n", 1, true))
    assert.truthy(out:find("Size:        35.53 KiB (36384 bytes)\n", 1, true))
    assert.truthy(out:find("Pieces:      3 x 16.00 KiB (last 3.53 KiB)\n", 1, true))
    assert.truthy(out:find("Private:     yes\n", 1, true))
    assert.truthy(out:find("  tier 1: http://127.0.0.1:6969/announce\n  tier 1: http://127.0.0.2:6969/announce\n"
      .. "  tier 2: udp://127.0.0.1:6969\n", 1, true))
    assert.truthy(out:find("Web seeds:\n  http://127.0.0.1:8080/seed/\n", 1, true))
    assert.truthy(out:find("Files:       4\n", 1, true))
    assert.truthy(out:find("folder/a.txt\n", 1, true))
    assert.truthy(out:find("folder/.pad/15384  (padding)\n", 1, true))
    assert.truthy(out:find("folder/sub/b.bin\n", 1, true))
    assert.truthy(out:find("0 B  folder/sub/empty\n", 1, true))
  end)

  it("shows creator, date and comment of a single-file torrent", function()
    local out, code = H.btlua("info spec/fixtures/single.torrent")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("Created by:  bt-lua fixture\n", 1, true), out)
    assert.truthy(out:find("Created on:  2023-11-14 22:13:20 UTC\n", 1, true))
    assert.truthy(out:find("Comment:     single-file fixture\n", 1, true))
    assert.truthy(out:find("Private:     no\n", 1, true))
    assert.truthy(out:find("97.66 KiB  fixture.txt\n", 1, true))
  end)

  it("truncates a long file list unless --all", function()
    local d = H.tmpdir()
    H.sh("mkdir " .. H.q(d .. "/many"))
    for i = 1, 40 do H.writefile(("%s/many/f%02d"):format(d, i), "x") end
    H.writefile(d .. "/many.torrent", assert(bt.torrent.create { path = d .. "/many" }))
    local out, code = H.btlua("info " .. H.q(d .. "/many.torrent"))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("many/f25\n", 1, true))
    assert.falsy(out:find("many/f26", 1, true))
    assert.truthy(out:find("... and 15 more (--all lists them)", 1, true))
    out = H.btlua("info --all " .. H.q(d .. "/many.torrent"))
    assert.truthy(out:find("many/f40\n", 1, true))
    assert.falsy(out:find("more (--all", 1, true))
    H.rmtree(d)
  end)

  it("escapes control bytes from the torrent", function()
    local d = H.tmpdir()
    local name = "evil\27[2Jname"
    H.writefile(d .. "/e.torrent", "d4:infod6:lengthi1e4:name" .. #name .. ":" .. name
      .. "12:piece lengthi16384e6:pieces20:" .. string.rep("x", 20) .. "ee")
    local out, code = H.btlua("info " .. H.q(d .. "/e.torrent"))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("evil\\x1b[2Jname", 1, true), out)
    assert.falsy(out:find("\27", 1, true))
    H.rmtree(d)
  end)

  it("shows a creation date os.date cannot represent as the raw number", function()
    local d = H.tmpdir()
    local info = { name = "x", ["piece length"] = 16384, pieces = bt.sha1("a"), length = 1 }
    for _, date in ipairs({ 1 << 62, -(1 << 62) }) do
      H.writefile(d .. "/d.torrent", bt.bencode({ info = info, ["creation date"] = date }))
      local out, code = H.btlua("info " .. H.q(d .. "/d.torrent"))
      assert.are.equal(0, code, out)
      assert.truthy(out:find("Created on:  " .. date .. "\n", 1, true), out)
    end
    H.rmtree(d)
  end)

  it("fails with a message, exit 2 for a bad or missing torrent and 1 for bad options", function()
    -- evil_path.torrent's "../passwd" is made safe, and info says so
    local out, code = H.btlua("info spec/fixtures/evil_path.torrent")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("renamed: ../passwd -> passwd", 1, true), out)
    local d = H.tmpdir()
    H.writefile(d .. "/zero.torrent", bt.bencode({ info = { name = "x", ["piece length"] = 0,
                                                            pieces = bt.sha1("a"), length = 1 } }))
    out, code = H.btlua("info " .. H.q(d .. "/zero.torrent"))
    H.rmtree(d)
    assert.are.equal(2, code)
    assert.truthy(out:find("invalid torrent: piece length is not positive (at byte ", 1, true), out)
    out, code = H.btlua("info /nonexistent.torrent")
    assert.are.equal(2, code)
    assert.truthy(out:find("No such file", 1, true), out)
    out, code = H.btlua("info")
    assert.are.equal(1, code)
    assert.truthy(out:find("missing argument 'torrent'", 1, true), out)
  end)

  it("shortens a name longer than 255 bytes, and refuses a bad torrent the same way in info, run and seed", function()
    local d = H.tmpdir()
    local long = string.rep("n", 300) .. ".txt"
    local info = { name = "x", ["piece length"] = 16384, pieces = bt.sha1("a"),
                   files = { { length = 1, path = { long } } } }
    H.writefile(d .. "/long.torrent", bt.bencode({ info = info }))
    local out, code = H.btlua("info " .. H.q(d .. "/long.torrent"))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("renamed: " .. long .. " -> " .. string.rep("n", 251) .. ".txt\n", 1, true), out)
    info.pieces = "short"
    H.writefile(d .. "/bad.torrent", bt.bencode({ info = info }))
    local want = "bad.torrent: invalid torrent: pieces length is not a multiple of 20 (at byte "
    for _, cmd in ipairs({ "info %s", "run bt.policy.default %s -o %s/o --no-trackers --timeout 1",
                           "seed %s --dir %s/o --no-trackers" }) do
      out, code = H.btlua(cmd:format(H.q(d .. "/bad.torrent"), H.q(d)))
      assert.are.equal(2, code, cmd .. ": " .. out)
      assert.truthy(out:find(want, 1, true), cmd .. ": " .. out)
    end
    H.rmtree(d)
  end)

  -- The three commands that read a .torrent, each with what it needs besides.
  local READERS = { "info %s", "run bt.policy.default %s -o %s/o --no-trackers --timeout 1",
                    "seed %s --dir %s/o --no-trackers" }

  it("refuses a .torrent over the size limit before reading it, in one line, in info, run and seed", function()
    local d = H.tmpdir()
    local path = d .. "/huge.torrent"
    -- Sparse: a terabyte that takes no disk. The message gives the size from
    -- the file system, before any read.
    local out, ok = H.sh("truncate -s 1T " .. H.q(path))
    assert.is_true(ok, out)
    local want = path .. ": too large for a .torrent (1099511627776 bytes; the limit is 64 MiB)\n"
    for _, cmd in ipairs(READERS) do
      local o, code = H.btlua(cmd:format(H.q(path), H.q(d)))
      assert.are.equal(2, code, cmd .. ": " .. o)
      assert.are.equal("bt-lua: " .. want, o, cmd)
    end
    -- A pipe has no size: the read stops one byte past the limit.
    out = H.sh_bt("env -u LD_PRELOAD head -c 70000000 /dev/zero"
      .. " | timeout 60 lua5.4 scripts/bt-lua info /dev/stdin 2>&1; echo \"__exit=$?\"")
    assert.truthy(out:find("bt-lua: /dev/stdin: too large for a .torrent (over the 64 MiB limit)\n__exit=2", 1, true),
      out)
    H.rmtree(d)
  end)

  it("refuses a torrent of more bencode values than the token limit, in info, run and seed", function()
    local d = H.tmpdir()
    local path = d .. "/tokens.torrent"
    local max = bt.meta_limits.max_tokens
    H.writefile(path, "d4:infol" .. string.rep("0:", max) .. "ee")
    local want = ("%s: invalid torrent: too many tokens (limit %d) (at byte %d)\n"):format(path, max, 8 + 2 * (max - 3))
    for _, cmd in ipairs(READERS) do
      local o, code = H.btlua(cmd:format(H.q(path), H.q(d)))
      assert.are.equal(2, code, cmd .. ": " .. o)
      assert.are.equal("bt-lua: " .. want, o, cmd)
    end
    H.rmtree(d)
  end)

  it("has truthful --help", function()
    local out, code = H.btlua("info --help")
    assert.are.equal(0, code)
    assert.truthy(out:find("Usage: bt-lua info [-h] [--timeout <timeout>] [--peer <peer>]", 1, true), out)
    assert.truthy(out:find("[--bind <bind>] [--all] [--scrape] <torrent>", 1, true), out)
    assert.truthy(out:find("magnet link", 1, true))
    assert.truthy(out:find("--all", 1, true))
    assert.truthy(out:find("seeders, leechers and completed", 1, true))
  end)
end)

describe("bt-lua create", function()
  local d
  before_each(function()
    d = H.tmpdir()
    H.sh("mkdir -p " .. H.q(d .. "/pay/sub"))
    H.writefile(d .. "/pay/one", string.rep("1", 50000))
    H.writefile(d .. "/pay/sub/two", string.rep("2", 70000))
  end)
  after_each(function() H.rmtree(d) end)

  it("round-trips: create, then info and bt.torrent.load agree, transmission-show too", function()
    local out, code = H.btlua(("create %s -o %s -a http://127.0.0.1:1/a -a udp://127.0.0.1:2 -w http://127.0.0.1:3/ "
      .. "-l 16K -c %s --private"):format(H.q(d .. "/pay"), H.q(d .. "/p.torrent"), H.q("a comment")))
    assert.are.equal(0, code, out)
    local t = assert(bt.torrent.load(d .. "/p.torrent"))
    assert.truthy(out:find(t.info_hash_hex, 1, true), out)
    assert.are.equal("pay", t.name)
    assert.are.equal(16384, t.piece_length)
    assert.are.equal(120000, t.total_length)
    assert.are.same({ { "http://127.0.0.1:1/a" }, { "udp://127.0.0.1:2" } }, t.announce_list)
    assert.are.same({ "http://127.0.0.1:3/" }, t.url_list)
    assert.are.equal("a comment", t.comment)
    assert.is_true(t.private)
    assert.are.same({ "one" }, t.files[1].path)
    assert.are.same({ "sub", "two" }, t.files[2].path)
    local all = string.rep("1", 50000) .. string.rep("2", 70000)
    for i = 0, t.num_pieces - 1 do
      assert.are.equal(bt.sha1(all, i * 16384 + 1, (i + 1) * 16384), t:piece_hash(i))
    end
    local info = H.btlua("info " .. H.q(d .. "/p.torrent"))
    assert.truthy(info:find("Info-hash:   " .. t.info_hash_hex, 1, true))
    local ts, ok = H.sh("transmission-show " .. H.q(d .. "/p.torrent"))
    assert(ok, ts)
    assert.truthy(ts:find("Hash: " .. t.info_hash_hex, 1, true), ts)
    assert.truthy(ts:find("pay/sub/two", 1, true))
  end)

  it("accepts piece lengths in bytes and with suffixes", function()
    for arg, want in pairs { ["16384"] = 16384, ["32K"] = 32768, ["64k"] = 65536, ["1M"] = 1 << 20,
                             ["2MiB"] = 2 << 20, ["16M"] = 16 << 20 } do
      local out, code = H.btlua(("create %s -o %s -l %s"):format(H.q(d .. "/pay/one"), H.q(d .. "/" .. arg), arg))
      assert.are.equal(0, code, out)
      assert.are.equal(want, assert(bt.torrent.load(d .. "/" .. arg)).piece_length)
    end
  end)

  it("refuses bad piece lengths", function()
    for _, arg in ipairs { "8K", "17K", "32M", "abc", "0", "1.5M" } do
      local out, code = H.btlua(("create %s -o %s -l %s"):format(H.q(d .. "/pay"), H.q(d .. "/x.torrent"), arg))
      assert.are.equal(1, code, arg)
      assert.truthy(out:find("bad piece length", 1, true), out)
      assert.is_nil(bt.fs.stat(d .. "/x.torrent"))
    end
  end)

  it("refuses to overwrite without --force", function()
    H.writefile(d .. "/p.torrent", "keep me")
    local out, code = H.btlua(("create %s -o %s"):format(H.q(d .. "/pay"), H.q(d .. "/p.torrent")))
    assert.are.equal(1, code)
    assert.truthy(out:find("exists (use --force to overwrite)", 1, true), out)
    assert.are.equal("keep me", H.readfile(d .. "/p.torrent"))
    out, code = H.btlua(("create %s -o %s --force"):format(H.q(d .. "/pay"), H.q(d .. "/p.torrent")))
    assert.are.equal(0, code, out)
    assert.truthy(bt.torrent.load(d .. "/p.torrent"))
  end)

  it("fails cleanly, leaving no output file", function()
    local out, code = H.btlua(("create %s -o %s"):format(H.q(d .. "/nope"), H.q(d .. "/n.torrent")))
    assert.are.equal(1, code)
    assert.truthy(out:find("No such file", 1, true), out)
    H.sh("ln -s one " .. H.q(d .. "/pay/link"))
    out, code = H.btlua(("create %s -o %s"):format(H.q(d .. "/pay"), H.q(d .. "/n.torrent")))
    assert.are.equal(1, code)
    assert.truthy(out:find("symbolic links are not supported", 1, true), out)
    assert.is_nil(bt.fs.stat(d .. "/n.torrent"))
    assert.is_nil(bt.fs.stat(d .. "/n.torrent.tmp-bt-lua"))
    out, code = H.btlua("create " .. H.q(d .. "/pay"))
    assert.are.equal(1, code)
    assert.truthy(out:find("missing option '-o'", 1, true), out)
  end)

  it("has truthful --help", function()
    local out, code = H.btlua("create --help")
    assert.are.equal(0, code)
    for _, opt in ipairs { "-o", "--announce", "--web-seed", "--piece-length", "--comment", "--name",
                           "--private", "--force", "16K", "power of two", "special files are refused" } do
      assert.truthy(out:find(opt, 1, true), opt)
    end
  end)
end)
