--- Benchmark: bencode decoding of a 100,000-file torrent (~5.9 MB), bt-lua vs
-- libtorrent's lt::bdecode (build/bench/lt_bdecode, measured in the same run).
--   BT_BENCH_BIN=build/bench lua5.4 bench/bencode_bench.lua [files]
-- Prints MB/s (10^6 bytes per second, best of N runs) and the ratio to libtorrent.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require "benchlib"

local bt = require "bt"
local big_torrent = require "big_torrent"

local FILES = tonumber(arg and arg[1]) or 100000
-- Run counts keep the whole benchmark near 10 s on a slow shared core.
local TOKEN_RUNS, TABLE_RUNS, ENCODE_RUNS, LT_RUNS = 40, 8, 8, 40

local best_of, mbps = B.best_of, B.mbps

local doc = big_torrent(FILES)
local path = B.tmpfile(doc)

-- Reference first, so both sides see a similar machine state.
local out = B.run_ref("lt_bdecode", path, LT_RUNS) or ""
os.remove(path)
local lt_bytes, lt_secs = out:match("^lt_bdecode (%d+) ([%d.]+)")
if not lt_bytes then
  io.stderr:write("bencode_bench: no result from ", B.bin, "/lt_bdecode (run `make bench`): ", out, "\n")
  os.exit(1)
end
lt_bytes, lt_secs = tonumber(lt_bytes), tonumber(lt_secs)
assert(lt_bytes == #doc, "lt_bdecode read a different file size")

local ntok = assert(bt.bdecode_tokens(doc))
local tok_secs = best_of(TOKEN_RUNS, function() assert(bt.bdecode_tokens(doc)) end)
local value
local table_secs = best_of(TABLE_RUNS, function() value = assert(bt.bdecode(doc)) end)
local encoded
local enc_secs = best_of(ENCODE_RUNS, function() encoded = bt.bencode(value) end)
assert(encoded == doc, "round trip changed the document")

local lt = mbps(#doc, lt_secs)
print(string.format("bencode: %d-file torrent, %.2f MB, %d tokens, best of N runs", FILES, #doc / 1e6, ntok))
print(string.format("  %-34s %9.1f MB/s  (reference)", "libtorrent lt::bdecode", lt))
local function row(name, secs)
  local r = mbps(#doc, secs)
  print(string.format("  %-34s %9.1f MB/s  %.2fx libtorrent", name, r, r / lt))
end
row("bt.bdecode_tokens (token array)", tok_secs)
row("bt.bdecode (Lua tables)", table_secs)
row("bt.bencode (Lua tables -> bytes)", enc_secs)
