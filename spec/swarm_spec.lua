-- Integration: real peers on 127.0.0.1 (aria2c, transmission, opentracker).
-- Payloads are a few MiB so the whole file stays well inside CI limits.
local H = require "helpers"
local S = require "swarm_helpers"

local function same(a, b)
  assert.is_truthy(S.sha256(a))
  assert.are.equal(S.sha256(a), S.sha256(b))
end

describe("download from an aria2c seed", function()
  local tmp, pid, port
  local torrent
  setup(function()
    tmp = H.tmpdir()
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", { ["payload.bin"] = 3 * 1024 * 1024 + 12345 }, 7)
    torrent = S.mktorrent(tmp .. "/seed/payload.bin", tmp .. "/p.torrent", 16)
    pid, port = S.aria2_seed(torrent, tmp .. "/seed")
  end)
  teardown(function()
    S.kill(pid)
    H.rmtree(tmp)
  end)

  it("the CLI with the default policy gets identical bytes and exits 0", function()
    local out, code = S.btlua(("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --timeout 20 --no-trackers --stats %s")
      :format(H.q(torrent), H.q(tmp .. "/cli"), port, H.q(tmp .. "/stats.json")))
    assert.are.equal(0, code, out)
    same(tmp .. "/seed/payload.bin", tmp .. "/cli/payload.bin")
    local stats = H.readfile(tmp .. "/stats.json")
    local last = stats:match("([^\n]+)\n$")
    local cjson = require "cjson"
    local o = cjson.decode(last)
    assert.are.equal(o.pieces, o.pieces_done)
    assert.are.equal(3 * 1024 * 1024 + 12345, o.bytes)
  end)

  for _, ex in ipairs{ "rarest_first", "sequential", "random", "endgame_tuned" } do
    it("examples/" .. ex .. ".lua downloads it", function()
      local dir = tmp .. "/ex-" .. ex
      local _, st = S.download(torrent, { dir = dir, policy = H.root .. "/examples/" .. ex .. ".lua",
        peers = { "127.0.0.1:" .. port }, trackers = false, timeout = 30 })
      assert.is_true(st.complete, tostring(st.error))
      same(tmp .. "/seed/payload.bin", dir .. "/payload.bin")
    end)
  end

  it("a second run finds the data on disk, hash-checks it, and is complete at once", function()
    local dir = tmp .. "/again"
    local _, st = S.download(torrent, { dir = dir, peers = { "127.0.0.1:" .. port }, trackers = false })
    assert.is_true(st.complete)
    local t2, st2 = S.download(torrent, { dir = dir, peers = {}, trackers = false, timeout = 2 })
    assert.is_true(st2.complete)
    assert.are.equal(0, st2.downloaded)
    assert.are.equal(st2.pieces, st2.pieces_done)
  end)

  it("a corrupted piece on disk is found at start and fetched again", function()
    local dir = tmp .. "/fix"
    local _, st = S.download(torrent, { dir = dir, peers = { "127.0.0.1:" .. port }, trackers = false })
    assert.is_true(st.complete)
    local f = assert(io.open(dir .. "/payload.bin", "r+b"))
    f:seek("set", 70000)
    f:write("XXXXXXXX")
    f:close()
    local _, st2 = S.download(torrent, { dir = dir, peers = { "127.0.0.1:" .. port }, trackers = false })
    assert.is_true(st2.complete)
    assert.are.equal(65536, st2.downloaded)   -- exactly the one 64 KiB piece
    same(tmp .. "/seed/payload.bin", dir .. "/payload.bin")
  end)
end)

describe("torrent layouts against aria2c", function()
  local tmp
  before_each(function() tmp = H.tmpdir() end)
  after_each(function() H.rmtree(tmp) end)

  local function roundtrip(files, log2, target, transmission)
    os.execute("mkdir -p " .. tmp .. "/seed")
    S.make_files(tmp .. "/seed", files, 3)
    local torrent = tmp .. "/t.torrent"
    if transmission then   -- mktorrent's smallest piece is 32 KiB
      local o, ok = H.sh(("transmission-create -s %d -o %s %s"):format(2 ^ log2 // 1024, H.q(torrent),
        H.q(tmp .. "/seed/" .. target)))
      assert(ok, o)
    else
      S.mktorrent(tmp .. "/seed/" .. target, torrent, log2)
    end
    local pid, port = S.aria2_seed(torrent, tmp .. "/seed")
    local ok, err = pcall(function()
      local _, st = S.download(torrent, { dir = tmp .. "/out", peers = { "127.0.0.1:" .. port },
        trackers = false, timeout = 30 })
      assert.is_true(st.complete, tostring(st.error))
      for name in pairs(files) do same(tmp .. "/seed/" .. name, tmp .. "/out/" .. name) end
    end)
    S.kill(pid)
    assert(ok, err)
  end

  it("multi-file with nested folders, a zero-length file and a short last piece", function()
    roundtrip({ ["dir/a.bin"] = 100000, ["dir/sub/b.bin"] = 333333, ["dir/sub/deeper/c.txt"] = "hello\n",
      ["dir/empty.txt"] = "", ["dir/z.bin"] = 65536 * 3 + 1 }, 15, "dir")
  end)

  it("16 KiB pieces (one block each)", function()
    roundtrip({ ["small.bin"] = 16384 * 50 + 100 }, 14, "small.bin", true)
  end)

  it("4 MiB pieces", function()
    roundtrip({ ["big.bin"] = 4 * 1024 * 1024 * 2 + 5000 }, 22, "big.bin")
  end)
end)
