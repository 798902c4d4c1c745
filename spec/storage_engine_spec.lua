--- The engine on either storage backend (issue 4): s:add{ storage = "memory" | "disk" },
-- bt-lua run/seed --storage. Real peers (aria2c, opentracker) on 127.0.0.1, started in
-- the background, known by PID and killed by PID; every wait is bounded.
local H = require "helpers"
local S = require "swarm_helpers"
local T = require "tracker_helpers"
local socket = require "socket"

--- Names under dir (recursive), sorted; "" entries excluded.
local function listing(dir)
  local out = H.sh("cd " .. H.q(dir) .. " && find . -mindepth 1 | sort")
  local names = {}
  for line in out:gmatch("[^\n]+") do names[#names + 1] = line end
  return names
end

--- The file's content, or "" when it does not exist (yet).
local read_or_empty = S.read_or_empty

--- Last JSON object of a --stats file (one a line), decoded.
local function last_stats(path)
  local cjson = require "cjson"
  local last
  for line in read_or_empty(path):gmatch("[^\n]+") do last = line end
  return last and cjson.decode(last)
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return -1 end
  local n = f:seek("end")
  f:close()
  return n
end

--- Wait (bounded) until the file at path holds `needle`.
local function wait_log(path, needle, seconds)
  local deadline = socket.gettime() + seconds
  while socket.gettime() < deadline do
    local s = read_or_empty(path)
    if s and s:find(needle, 1, true) then return true end
    socket.sleep(0.1)
  end
  return false
end

-- DIR/seed/p.bin (40000 bytes) and DIR/p.torrent, and a session that does not listen.
local function small_torrent(dir)
  os.execute("mkdir -p " .. H.q(dir .. "/seed"))
  S.make_files(dir .. "/seed", { ["p.bin"] = 40000 }, 3)
  return S.mktorrent(dir .. "/seed/p.bin", dir .. "/p.torrent", 15), require("bt.session").new{ port = -1 }
end

describe("storage = \"memory\" (library)", function()
  local dir
  before_each(function() dir = H.tmpdir() end)
  after_each(function() H.rmtree(dir) end)

  it("downloads a multi-file torrent from aria2c with no file created; t.storage says memory", function()
    -- 80 files of 20-45 KiB in 32 KiB pieces: pieces span files, as on disk
    local files = {}
    for i = 1, 80 do files[("set/d%02d/f%03d.bin"):format(i % 7, i)] = 20 * 1024 + i * 317 end
    os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/out"))
    S.make_files(dir .. "/seed", files, 5)
    local torrent = S.mktorrent(dir .. "/seed/set", dir .. "/m.torrent", 15)
    local apid, aport = S.aria2_seed(torrent, dir .. "/seed")
    local ok, err = pcall(function()
      local cwd_before = listing(".")
      local session = require "bt.session"
      local s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 50 }
      local t = s:add(torrent, { storage = "memory", peers = { "127.0.0.1:" .. aport }, trackers = false })
      local completed = false
      s:on("complete", function() completed = true; s:stop() end)
      s:on("error", function() s:stop() end)
      local t0 = s.core:now()
      s:run(function() return s.core:now() - t0 > 30 end)
      local st = t:stats()
      assert.is_true(completed and t.complete, "not complete: " .. tostring(t.error))
      assert.are.equal("memory", t.storage)
      assert.is_nil(t.dir)
      assert.are.equal(st.total_bytes, st.have_bytes)
      local info = s:resume_info(t)
      assert.are.equal(0, info.saves)
      assert.are.equal(0, info.trusted)
      s:close()
      assert.are.same(cwd_before, listing("."))   -- no .bt-lua, no set/ in the working folder
      assert.are.same({}, listing(dir .. "/out"))
    end)
    S.kill(apid)
    assert(ok, err)
  end)

  it("load = DIR: verified pieces are had, the folder is only read", function()
    os.execute("mkdir -p " .. H.q(dir .. "/seed"))
    local size = 300 * 1024 + 77
    S.make_files(dir .. "/seed", { ["p.bin"] = size }, 9)
    local torrent = S.mktorrent(dir .. "/seed/p.bin", dir .. "/p.torrent", 16)
    local session = require "bt.session"
    local before = H.sh("stat -c '%s %Y' " .. H.q(dir .. "/seed/p.bin"))
    local s = session.new{ port = -1 }
    local t = s:add(torrent, { storage = "memory", load = dir .. "/seed" })
    assert.is_true(t.complete)
    assert.are.equal("memory", t.storage)
    -- a damaged copy: one piece fails, the rest load
    local f = assert(io.open(dir .. "/seed/p.bin", "r+b"))
    f:seek("set", 70000)
    f:write("X")
    f:close()
    local t2 = s:add(torrent, { storage = "memory", load = dir .. "/seed" })
    assert.is_false(t2.complete)
    assert.are.equal(t2.pieces - 1, t2:stats().pieces_done)
    -- a folder without the data: nothing had, nothing created
    os.execute("mkdir -p " .. H.q(dir .. "/empty"))
    local t3 = s:add(torrent, { storage = "memory", load = dir .. "/empty" })
    assert.are.equal(0, t3:stats().pieces_done)
    assert.are.same({}, listing(dir .. "/empty"))
    s:close()
    assert.are.same({ "./p.bin" }, listing(dir .. "/seed"))   -- no .bt-lua written there
    assert.are.equal(before:match("^%d+"), H.sh("stat -c '%s' " .. H.q(dir .. "/seed/p.bin")):match("^%d+"))
  end)

  it("rejects a bad storage name, load without memory, and a missing load folder", function()
    local torrent, s = small_torrent(dir)
    local ok, err = pcall(s.add, s, torrent, { storage = "tape" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("storage must be", 1, true), err)
    ok, err = pcall(s.add, s, torrent, { dir = dir .. "/x", load = dir .. "/seed" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("only for storage", 1, true), err)
    ok, err = pcall(s.add, s, torrent, { storage = "memory", load = dir .. "/nope" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("nope", 1, true), err)
    assert.is_nil(io.open(dir .. "/nope"))
    -- the C layer refuses a folder for memory storage and resume data for it
    local bt = require "bt"
    local m = assert(bt.meta_parse(H.readfile(torrent)))
    ok, err = pcall(s.core.add, s.core, m, dir, {}, 0, nil, "memory")
    assert.is_false(ok)
    assert.truthy(tostring(err):find("takes no folder", 1, true), err)
    s:close()
  end)

  it("disk storage reports t.storage = disk and its folder, creating missing parents", function()
    local torrent, s = small_torrent(dir)
    local t = s:add(torrent, { dir = dir .. "/seed", resume = false })
    assert.are.equal("disk", t.storage)
    assert.are.equal(dir .. "/seed", t.dir)
    assert.is_true(t.complete)
    -- a download folder whose parents do not exist yet is created, as `mkdir -p`
    local t2 = s:add(torrent, { dir = dir .. "/a/b/c", resume = false })
    assert.is_false(t2.complete)
    assert.are.equal(40000, file_size(dir .. "/a/b/c/p.bin"))
    s:close()
  end)
end)

describe("bt-lua run --storage memory", function()
  local dir, pids
  before_each(function() dir = H.tmpdir(); pids = {} end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    H.rmtree(dir)
  end)

  it("downloads from an aria2c seed, reports completion, creates nothing under -o", function()
    local size = 2 * 1024 * 1024 + 4321
    os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/out"))
    S.make_files(dir .. "/seed", { ["payload.bin"] = size }, 21)
    local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 16)
    local apid, aport = S.aria2_seed(torrent, dir .. "/seed")
    pids[#pids + 1] = apid
    local out, code = S.btlua(("run bt.policy.default %s -o %s --storage memory --peer 127.0.0.1:%d " ..
      "--no-trackers --timeout 30 --stats %s"):format(H.q(torrent), H.q(dir .. "/out"), aport,
      H.q(dir .. "/stats.json")))
    assert.are.equal(0, code, out)
    assert.truthy(out:find("done:", 1, true), out)
    local st = last_stats(dir .. "/stats.json")
    assert.are.equal(size, st.total_bytes)
    assert.are.equal(size, st.have_bytes)
    assert.are.equal(st.pieces, st.pieces_done)
    assert.are.same({}, listing(dir .. "/out"))
  end)

  it("SIGTERM mid-download: exit 0, says nothing was saved, -o still empty", function()
    local size = 3 * 1024 * 1024
    os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/out"))
    S.make_files(dir .. "/seed", { ["payload.bin"] = size }, 23)
    local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 16)
    local apid, aport = S.aria2_seed(torrent, dir .. "/seed", { limit = "300K" })   -- ~10 s in all
    pids[#pids + 1] = apid
    -- the lua5.4 process records its own PID before exec, so the signal reaches bt-lua
    local pidfile, rcfile, log = dir .. "/pid", dir .. "/rc", dir .. "/log"
    local inner = ("echo $$ > %s; exec env %s lua5.4 %s run bt.policy.default %s -o %s --storage memory " ..
      "--peer 127.0.0.1:%d --no-trackers --stats %s"):format(H.q(pidfile), H.lua_env(),
      H.q(H.root .. "/scripts/bt-lua"), H.q(torrent), H.q(dir .. "/out"), aport, H.q(dir .. "/stats.json"))
    S.spawn(("(sh -c %s; echo $? > %s)"):format(H.q(inner), H.q(rcfile)), log, true)
    local deadline, pid = socket.gettime() + 5, nil
    while not pid and socket.gettime() < deadline do
      pid = tonumber(read_or_empty(pidfile):match("%d+"))
      if not pid then socket.sleep(0.05) end
    end
    assert.truthy(pid, "bt-lua did not start")
    pids[#pids + 1] = pid
    deadline = socket.gettime() + 15   -- until some data arrived
    while socket.gettime() < deadline do
      local st = last_stats(dir .. "/stats.json")
      if st and st.have_bytes > 0 then break end
      socket.sleep(0.2)
    end
    local st = last_stats(dir .. "/stats.json")
    assert.truthy(st and st.have_bytes > 0 and st.have_bytes < size, "no partial progress to interrupt")
    os.execute("kill -TERM " .. pid)
    deadline = socket.gettime() + 15
    while read_or_empty(rcfile) == "" and socket.gettime() < deadline do socket.sleep(0.05) end
    assert.are.equal(0, tonumber(read_or_empty(rcfile):match("%d+")), read_or_empty(log))
    assert.truthy(read_or_empty(log):find("memory storage, nothing was saved", 1, true), read_or_empty(log))
    assert.are.same({}, listing(dir .. "/out"))
  end)

  it("--storage disk (the default) still writes under -o; a bad value is refused", function()
    local size = 200 * 1024
    os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/out"))
    S.make_files(dir .. "/seed", { ["payload.bin"] = size }, 22)
    local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 15)
    local apid, aport = S.aria2_seed(torrent, dir .. "/seed")
    pids[#pids + 1] = apid
    local out, code = S.btlua(("run bt.policy.default %s -o %s --storage disk --peer 127.0.0.1:%d " ..
      "--no-trackers --timeout 30 -q"):format(H.q(torrent), H.q(dir .. "/out"), aport))
    assert.are.equal(0, code, out)
    assert.are.equal(S.sha256(dir .. "/seed/payload.bin"), S.sha256(dir .. "/out/payload.bin"))
    out, code = S.btlua(("run bt.policy.default %s --storage ram"):format(H.q(torrent)))
    assert.are_not.equal(0, code)
    assert.truthy(out:find("--storage", 1, true), out)
  end)
end)

describe("bt-lua seed --storage memory", function()
  local dir, pids, tracker
  before_each(function() dir = H.tmpdir(); pids = {} end)
  after_each(function()
    for _, pid in ipairs(pids) do S.kill(pid) end
    T.stop(tracker)
    tracker = nil
    H.rmtree(dir)
  end)

  it("serves aria2c from memory: the files are overwritten after loading, the copy is still right", function()
    local size = 3 * 1024 * 1024 + 999
    os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/out"))
    S.make_files(dir .. "/seed", { ["payload.bin"] = size }, 31)
    local want = S.sha256(dir .. "/seed/payload.bin")
    local tport = S.port()
    local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 16,
      ("http://127.0.0.1:%d/announce"):format(tport))
    local bt = require "bt"
    tracker = T.start_opentracker({ bt.torrent.load(torrent).info_hash }, tport)
    local log = dir .. "/seed.log"
    local spid = S.spawn(("%s lua5.4 %s seed %s --dir %s --storage memory --bind 127.0.0.1 --ratio 1 " ..
      "--seed-time 40"):format(H.lua_env(), H.q(H.root .. "/scripts/bt-lua"), H.q(torrent),
      H.q(dir .. "/seed")), log, true)
    pids[#pids + 1] = spid
    assert.truthy(wait_log(log, "seeding ", 15), read_or_empty(log))
    assert.truthy(read_or_empty(log):find("from memory (loaded from", 1, true), read_or_empty(log))
    -- the data is in memory now: wreck the file (same size, other bytes) before anyone asks
    H.writefile(dir .. "/seed/payload.bin", S.bytes(size, 99))
    local lpid = S.aria2_leech(torrent, dir .. "/out", { timeout = 30 })
    pids[#pids + 1] = lpid
    local deadline = socket.gettime() + 40
    while socket.gettime() < deadline and S.alive(lpid) do socket.sleep(0.2) end
    assert.are.equal(size, file_size(dir .. "/out/payload.bin"), read_or_empty(dir .. "/out.aria2.log"))
    assert.are.equal(want, S.sha256(dir .. "/out/payload.bin"))
    assert.truthy(S.wait_exit(spid, 20), "seed did not stop at --ratio 1")
    assert.truthy(read_or_empty(log):find("done seeding (ratio)", 1, true), read_or_empty(log))
  end)

  it("incomplete data in --dir: exit 5, nothing seeded, nothing created", function()
    os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/empty"))
    S.make_files(dir .. "/seed", { ["payload.bin"] = 100000 }, 4)
    local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 15)
    local out, code = S.btlua(("seed %s --dir %s --storage memory --no-trackers"):format(H.q(torrent),
      H.q(dir .. "/empty")))
    assert.are.equal(5, code, out)
    assert.truthy(out:find("incomplete: 0 of", 1, true), out)
    assert.are.same({}, listing(dir .. "/empty"))
  end)
end)
