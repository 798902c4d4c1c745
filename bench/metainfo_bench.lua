--- Benchmark: loading a 100,000-file torrent (~5.9 MB, bench/big_torrent.lua),
-- bt-lua vs libtorrent's lt::torrent_info (build/bench/lt_torrent_info, measured
-- in the same run). Both parse, validate, hash the info dict and lay out the files.
--   BT_BENCH_BIN=build/bench lua5.4 bench/metainfo_bench.lua [files]
-- Prints milliseconds (best of N runs) and the ratio to libtorrent.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. package.path
package.cpath = here .. "/../build/?.so;" .. package.cpath

local bt = require "bt"
local big_torrent = require "big_torrent"

local FILES = tonumber(arg and arg[1]) or 100000
-- Few runs: libtorrent takes about a second per load on this machine.
local LT_RUNS, C_RUNS, LOAD_RUNS = 3, 10, 5

local bin = os.getenv("BT_BENCH_BIN") or (here .. "/../build/bench")

local function best_of(runs, f)
  local best = math.huge
  for _ = 1, runs do
    collectgarbage("collect")   -- start each run from the same heap state
    local t0 = os.clock()
    f()
    local t = os.clock() - t0
    if t < best then best = t end
  end
  return best
end

local doc = big_torrent(FILES)
local path = os.tmpname()
do
  local f = assert(io.open(path, "wb"))
  f:write(doc)
  f:close()
end

-- Reference first, so both sides see a similar machine state.
local p = assert(io.popen(string.format("'%s/lt_torrent_info' '%s' %d", bin, path, LT_RUNS)))
local out = p:read("a")
p:close()
os.remove(path)
local lt_bytes, lt_secs, lt_files, lt_hash = out:match("^lt_torrent_info (%d+) ([%d.]+) (%d+) (%x+)")
if not lt_bytes then
  io.stderr:write("metainfo_bench: no result from ", bin, "/lt_torrent_info (run `make bench`): ", out, "\n")
  os.exit(1)
end
lt_secs = tonumber(lt_secs)
assert(tonumber(lt_bytes) == #doc, "lt_torrent_info read a different file size")

local t = assert(bt.torrent.load(doc))
assert(t.info_hash_hex == lt_hash, "info-hash differs from libtorrent's")
assert(t.num_files == tonumber(lt_files) and #t.files == t.num_files, "file count differs from libtorrent's")

local c_secs = best_of(C_RUNS, function() assert(bt.meta_parse(doc)) end)
local load_secs = best_of(LOAD_RUNS, function() assert(bt.torrent.load(doc)) end)
local files_secs = best_of(LOAD_RUNS, function()
  local tt = assert(bt.torrent.load(doc))
  assert(#tt.files == FILES)
end)

print(string.format("metainfo: %d-file torrent, %.2f MB, best of N runs", FILES, #doc / 1e6))
print(string.format("  %-44s %9.1f ms  (reference)", "libtorrent lt::torrent_info", lt_secs * 1e3))
local function row(name, secs)
  print(string.format("  %-44s %9.1f ms  %.1fx faster", name, secs * 1e3, lt_secs / secs))
end
row("bt.meta_parse (C: parse, validate, info-hash)", c_secs)
row("bt.torrent.load (+ Lua fields, trackers)", load_secs)
row("bt.torrent.load + t.files (100k Lua tables)", files_secs)
