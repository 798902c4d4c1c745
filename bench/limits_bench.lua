--- Benchmark: peak memory (max RSS, /usr/bin/time -f %M) of `bt-lua info` on
-- hostile and on large legitimate torrents, the figures in docs/architecture.md
-- ("Hostile input: the limits").
--   lua5.4 bench/limits_bench.lua [case ...]
-- The inputs are generated into a temporary folder, streamed to disk (never
-- whole in this process), and removed at the end; ~1 GB of disk while it runs.
-- Each row: the input size, the peak RSS of the bt-lua process, its ratio to
-- the input and to the reference, the largest legitimate torrent of the list
-- (1,000,000 files), and the outcome (the first line bt-lua printed on stderr,
-- or "loads"). Cases can be named on the command line (files10m, empty400m...).
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require "benchlib"
local big_torrent = require "big_torrent"

local BT_LUA = B.here .. "/../scripts/bt-lua"
local CHUNK = 100000   -- files (or "0:" strings x 10) written per f:write

local function bstr(s) return #s .. ":" .. s end

-- A multi-file torrent of n one-byte files "%08d" in one folder (31 bytes a file,
-- 6 tokens): the shape of the report in issue 9.
local function many_files(f, n)
  f:write("d4:infod5:filesl")
  for i = 0, n - 1, CHUNK do
    local parts = {}
    for j = i, math.min(n, i + CHUNK) - 1 do
      parts[#parts + 1] = string.format("d6:lengthi1e4:pathl8:%08dee", j)
    end
    f:write(table.concat(parts))
  end
  local pl = 16 * 1024 * 1024
  local npieces = (n + pl - 1) // pl
  f:write("e4:name1:x12:piece lengthi", pl, "e6:pieces", bstr(string.rep("h", 20 * npieces)), "ee")
end

-- `bytes` bytes of a torrent whose info is a list of empty strings ("0:", 2 bytes
-- and one token each): the cheapest input per token.
local function empty_strings(f, bytes)
  local head, tail = "d4:infol", "ee"
  local n = (bytes - #head - #tail) // 2
  f:write(head)
  local block = string.rep("0:", CHUNK * 10)
  for _ = 1, n // (CHUNK * 10) do f:write(block) end
  f:write(string.rep("0:", n % (CHUNK * 10)), tail)
end

-- n files whose paths are `depth` components, the first one distinct: every
-- folder of every file is new (what a check of folders by hashing each prefix
-- would store one entry for).
local function deep_paths(f, n, depth)
  f:write("d4:infod5:filesl")
  local rest = string.rep("1:a", depth - 1)
  for i = 0, n - 1, CHUNK // 10 do
    local parts = {}
    for j = i, math.min(n, i + CHUNK // 10) - 1 do
      parts[#parts + 1] = string.format("d6:lengthi1e4:pathl8:%08d%see", j, rest)
    end
    f:write(table.concat(parts))
  end
  f:write("e4:name1:x12:piece lengthi16777216e6:pieces20:", string.rep("h", 20), "ee")
end

-- A single-file torrent of n pieces of 4 MiB (n = 1 M: 4 TiB, 20 MB of hashes).
local function many_pieces(f, n)
  local pl = 4 * 1024 * 1024
  f:write("d4:infod6:lengthi", n * pl, "e4:name3:big12:piece lengthi", pl, "e6:pieces", 20 * n, ":")
  local hash = string.rep("\1", 20)
  local block = string.rep(hash, CHUNK)
  for _ = 1, n // CHUNK do f:write(block) end
  f:write(string.rep(hash, n % CHUNK), "ee")
end

local CASES = {
  { name = "files10m", what = "10,000,000 files (issue 9)", gen = function(f) many_files(f, 10000000) end },
  { name = "empty400m", what = "400 MB of empty strings (issue 9)", gen = function(f) empty_strings(f, 400e6) end },
  { name = "empty64m", what = "64 MiB of empty strings (the size cap)",
    gen = function(f) empty_strings(f, 64 * 1024 * 1024) end },
  { name = "files100k", what = "100,000 files (big_torrent.lua)", gen = function(f) f:write(big_torrent(100000)) end },
  { name = "files1m", what = "1,000,000 files (big_torrent.lua)", gen = function(f) f:write(big_torrent(1000000)) end },
  { name = "deep140k", what = "140,000 files 64 deep, all folders new",
    gen = function(f) deep_paths(f, 140000, 64) end },
  { name = "pieces1m", what = "1,000,000 pieces (4 TiB)", gen = function(f) many_pieces(f, 1000000) end },
}

local want = {}
for _, a in ipairs(arg or {}) do want[a] = true end

local function run(path)
  local out, ok = B.sh("/usr/bin/time -f 'maxrss %M' " .. B.q(BT_LUA) .. " info " .. B.q(path) .. " >/dev/null")
  local kb = tonumber(out:match("maxrss (%d+)"))
  local first = out:match("^([^\n]*)")
  if first and first:match("^maxrss") then first = nil end
  return kb, ok, first
end

local dir = B.tmpdir()
local baseline = run("/nonexistent.torrent")   -- the interpreter, the module, the CLI
local rows, ref = {}, nil
for _, c in ipairs(CASES) do
  if not next(want) or want[c.name] then
    local path = dir .. "/" .. c.name .. ".torrent"
    local f = assert(io.open(path, "wb"))
    c.gen(f)
    local size = f:seek("end")
    f:close()
    local kb, ok, msg = run(path)
    os.remove(path)
    local outcome = "loads"
    if not ok then
      outcome = (msg or "failed"):gsub("^bt%-lua: ", ""):gsub("^" .. dir:gsub("%p", "%%%0") .. "/", "")
    end
    rows[#rows + 1] = { what = c.what, size = size, peak = kb * 1024, outcome = outcome }
    if c.name == "files1m" then ref = kb * 1024 end
  end
end
B.rmtree(dir)

-- The reference: the largest legitimate torrent of the list. A hostile input
-- should cost no more than that.
print(string.format("limits: peak RSS of `bt-lua info` (a refused path alone: %.1f MB)", baseline * 1024 / 1e6))
print(string.format("  %-38s %8s %8s %6s %9s  %s", "input", "size MB", "peak MB", "x size",
  ref and "x 1M files" or "", "outcome"))
for _, r in ipairs(rows) do
  print(string.format("  %-38s %8.1f %8.1f %6.2f %9s  %s", r.what, r.size / 1e6, r.peak / 1e6, r.peak / r.size,
    ref and string.format("%.2f", r.peak / ref) or "", r.outcome))
end
