--- Benchmark: loading a 100,000-file torrent (~5.9 MB, bench/big_torrent.lua),
-- bt-lua vs libtorrent's lt::torrent_info (build/bench/lt_torrent_info, measured
-- in the same run). Both parse, validate, hash the info dict and lay out the files.
--   BT_BENCH_BIN=build/bench lua5.4 bench/metainfo_bench.lua [files]
-- Prints milliseconds (best of N runs) and the ratio to libtorrent.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require "benchlib"

local bt = require "bt"
local big_torrent = require "big_torrent"

local FILES = tonumber(arg and arg[1]) or 100000
-- Few runs: libtorrent takes about a second per load on this machine.
local LT_RUNS, C_RUNS, LOAD_RUNS = 3, 10, 5

-- A full collection before each run: every run starts from the same heap state.
local function best_of(runs, f) return B.best_of(runs, f, { collect = true }) end

local doc = big_torrent(FILES)
local path = B.tmpfile(doc)

-- Reference first, so both sides see a similar machine state.
local out = B.run_ref("lt_torrent_info", path, LT_RUNS) or ""
os.remove(path)
local lt_bytes, lt_secs, lt_files, lt_hash = out:match("^lt_torrent_info (%d+) ([%d.]+) (%d+) (%x+)")
if not lt_bytes then
  io.stderr:write("metainfo_bench: no result from ", B.bin, "/lt_torrent_info (run `make bench`): ", out, "\n")
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
