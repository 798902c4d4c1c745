--- Benchmark: what resume data saves at start-up, and what the pieces under it cost.
--   1. A complete 256 MiB download in 1,000 files (256 KiB pieces): resume.load
--      (decode, validate, one lstat per file) vs the start-up check it replaces
--      (st:check(): read back + SHA-1 of every piece), same run, same files.
--      Also resume.save (stat every file, encode, write_atomic with two fsyncs).
--   2. A worst-case resume file: 1,000,000 pieces, every other one had (500,000
--      ranges): size on disk, save and load time (load here is decode + validate;
--      the files do not exist, so every piece ends up in `check`).
--   3. bt.ratelimit: rl:take(n, now) calls per second from Lua vs a trivial C
--      function call (math.abs) as the reference.
--   4. The memory backend: 16 KiB block writes vs the disk backend's, same run.
--   lua5.4 bench/resume_bench.lua [MiB]
-- Wall time, best of RUNS. The data files sit in the page cache after writing,
-- so the check reference measures SHA-1 + read overhead, not the disk.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. package.path
package.cpath = here .. "/../build/?.so;" .. package.cpath

local bt = require "bt"
local resume = require "bt.resume"
local socket = require "socket"

local MIB = tonumber(arg and arg[1]) or 256
local PIECE = 256 * 1024
local NFILES = 1000
local RUNS = 3

local function best_of(runs, f)
  local best = math.huge
  for _ = 1, runs do
    local t0 = socket.gettime()
    f()
    local t = socket.gettime() - t0
    if t < best then best = t end
  end
  return best
end

local function sh(cmd)
  local p = io.popen("env -u LD_PRELOAD sh -c '" .. cmd .. "' 2>&1")
  local out = p:read("a")
  p:close()
  return out
end

local dir = sh("mktemp -d /tmp/bt-bench.XXXXXX"):match("[^\n]+")
assert(dir and dir:match("^/tmp/bt%-bench%."), "mktemp failed")

-- Piece p holds a pattern of its own index, so hashes differ and cost nothing to make.
local total = MIB * 1024 * 1024
local npieces = (total + PIECE - 1) // PIECE
local function piece_data(p)
  local n = math.min(PIECE, total - p * PIECE)
  return string.rep(string.pack("<I4", p * 2654435761 & 0xffffffff), n // 4) .. string.rep("x", n % 4)
end

-- 1,000 files of uneven sizes summing to the total.
local files, left = {}, total
math.randomseed(7)
for i = 1, NFILES do
  local len = i == NFILES and left or math.random(0, 2 * total // NFILES)
  if len > left then len = left end
  left = left - len
  files[i] = { length = len, path = bt.list { "d" .. (i % 10), "f" .. i } }
end
local hashes = {}
for p = 0, npieces - 1 do hashes[p + 1] = bt.sha1(piece_data(p)) end
local torrent_bytes = bt.bencode({ info = { name = "bench", ["piece length"] = PIECE,
  pieces = table.concat(hashes), files = bt.list(files) } })
local t = assert(bt.torrent.load(torrent_bytes))

local st = assert(bt.storage.open(t, dir))
for p = 0, npieces - 1 do assert(st:write(p, 0, piece_data(p))) end
assert(st:sync())
local have = assert(st:check())
assert(have:full())

local rpath = resume.path(dir, t.info_hash_hex)
local save_s = best_of(RUNS, function() assert(resume.save(rpath, t, have, dir)) end)
local r
local load_s = best_of(RUNS, function() r = resume.load(rpath, t, dir) end)
assert(r.reason == nil and r.have:full(), r.reason)
local check_s = best_of(RUNS, function() assert(st:check()) end)
st:close()
print(string.format("resume: %d MiB, %d files, %d pieces: load %.2f ms, full check %.0f ms"
  .. " (reference) -> load is %.0fx faster; save %.2f ms (2 fsyncs), file %d bytes",
  MIB, NFILES, npieces, load_s * 1e3, check_s * 1e3, check_s / load_s, save_s * 1e3,
  #io.open(rpath, "rb"):read("a")))

-- 2. Worst case range list.
do
  local N = 1000000
  local info = { name = "huge", length = N * 16384, ["piece length"] = 16384,
                 pieces = string.rep("\1", 20 * N) }
  local ht = assert(bt.torrent.load(bt.bencode({ info = info })))
  local hv = bt.bitfield(N)
  for i = 0, N - 1, 2 do hv:set(i) end
  local hp = dir .. "/huge.resume"
  local s = best_of(1, function() assert(resume.save(hp, ht, hv, dir)) end)
  local size = #io.open(hp, "rb"):read("a")
  local hr
  local l = best_of(1, function() hr = resume.load(hp, ht, dir) end)
  assert(hr.check:full() and hr.reason:match("changed"), hr.reason)
  print(string.format("resume worst case: %d pieces, %d ranges: file %d bytes (limit %d),"
    .. " save %.0f ms, load %.0f ms", N, N // 2, size, resume.max_bytes(ht), s * 1e3, l * 1e3))
end

-- 3. Rate limiter call cost.
do
  local rl = bt.ratelimit(1e9, 1e9)
  local CALLS = 2000000
  local take = rl.take
  local tk = best_of(RUNS, function()
    for i = 1, CALLS do take(rl, 16384, i * 1e-6) end
  end)
  local abs = math.abs
  local ref = best_of(RUNS, function()
    for i = 1, CALLS do abs(i) end
  end)
  print(string.format("ratelimit: rl:take %.0f ns/call, math.abs %.0f ns/call (reference),"
    .. " ratio %.2f", tk / CALLS * 1e9, ref / CALLS * 1e9, tk / ref))
end

-- 4. Memory backend vs disk backend, 16 KiB block writes of 64 MiB.
do
  local m64 = math.min(MIB, 64)
  local np = m64 * 1024 * 1024 // PIECE
  local info = { name = "mem.bin", length = np * PIECE, ["piece length"] = PIECE,
                 pieces = table.concat(hashes, "", 1, np) }
  local mt = assert(bt.torrent.load(bt.bencode({ info = info })))
  local block = string.rep("b", 16384)
  local function fill(s)
    for p = 0, np - 1 do
      for b = 0, PIECE - 1, 16384 do assert(s:write(p, b, block)) end
    end
  end
  local mem = best_of(RUNS, function()
    local s = assert(bt.storage.open(mt, nil, { backend = "memory" }))
    fill(s)
    s:close()
  end)
  local disk = best_of(RUNS, function()
    local s = assert(bt.storage.open(mt, dir))
    fill(s)
    s:close()
  end)
  local mb = np * PIECE / 1e6
  print(string.format("memory backend: %.0f MB/s writing 16 KiB blocks; disk backend %.0f MB/s"
    .. " (reference, page cache); ratio %.2f", mb / mem, mb / disk, disk / mem))
end

sh("rm -rf " .. dir)
