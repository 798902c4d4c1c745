--- Benchmark: bt.Storage on a 256 MiB single-file torrent (1 MiB pieces), with
-- references measured in the same run on the same file:
--   writes in 16 KiB blocks (what the engine does per received block)
--     vs dd copying the same bytes in 16 KiB blocks (conv=notrunc)
--   a full hash check (st:check(): read back + SHA-1 per piece)
--     vs openssl dgst -sha1 over the file (same SHA-1 code, one stream)
--   the start-up check of a fresh, sparse download (holes: nothing read)
--   lua5.4 bench/storage_bench.lua [MiB]
-- Wall time, best of RUNS; MB/s is 10^6 bytes per second. The file sits in the
-- page cache after the first pass, so this measures our per-block overhead and
-- hashing, not the disk.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require "benchlib"
local sh = B.sh

local bt = require "bt"

local MIB = tonumber(arg and arg[1]) or 256
local PIECE = 1 << 20
local BLOCK = 16384
local RUNS = 3

-- Wall time: the disk and fsync are part of what is measured.
local function best_of(runs, f) return B.best_of(runs, f, { clock = B.wall }) end

local dir = B.tmpdir()

-- Content: one random-ish MiB repeated with the piece index stamped in, so
-- pieces differ and hashes are real.
local base = {}
for i = 1, PIECE // 8 do base[i] = string.pack("<I8", (i * 0x9E3779B97F4A7C15) & 0x7fffffffffffffff) end
base = table.concat(base)
local function piece_data(p) return string.pack("<I4", p) .. base:sub(5) end

local hashes = {}
for p = 0, MIB - 1 do hashes[p + 1] = bt.sha1(piece_data(p)) end
local info = { name = "big.bin", ["piece length"] = PIECE, pieces = table.concat(hashes), length = MIB * PIECE }
local meta = assert(bt.meta_parse(bt.bencode({ info = info })))

-- A source file with the same bytes, for dd.
local src = dir .. "/src.bin"
do
  local f = assert(io.open(src, "wb"))
  for p = 0, MIB - 1 do f:write(piece_data(p)) end
  f:close()
end

local st = assert(bt.storage.open(meta, dir))
local fresh = best_of(1, function() assert(st:check():count() == 0) end)

local blocks = {}   -- prepared outside the timing: the engine already has them
for p = 0, MIB - 1 do
  local d = piece_data(p)
  blocks[p + 1] = {}
  for b = 0, PIECE - 1, BLOCK do blocks[p + 1][#blocks[p + 1] + 1] = d:sub(b + 1, b + BLOCK) end
end

local dd = best_of(RUNS, function()
  sh(string.format("dd if=%s of=%s/dd.bin bs=%d conv=notrunc status=none", src, dir, BLOCK))
end)
local write = best_of(RUNS, function()
  for p = 0, MIB - 1 do
    local bl = blocks[p + 1]
    for i = 1, #bl do st:write(p, (i - 1) * BLOCK, bl[i]) end
  end
end)
local ossl = best_of(RUNS, function() sh("openssl dgst -sha1 " .. dir .. "/big.bin") end)
local check = best_of(RUNS, function() assert(st:check():count() == MIB) end)
st:close()
B.rmtree(dir)

local bytes = MIB * PIECE
local function mbps(s) return bytes / s / 1e6 end
print(string.format("storage: %d MiB single file, 1 MiB pieces, %d KiB blocks, best of %d (wall time)",
  MIB, BLOCK // 1024, RUNS))
print(string.format("  %-40s %8.1f MB/s  (reference)", "dd, 16 KiB blocks", mbps(dd)))
print(string.format("  %-40s %8.1f MB/s  %.2fx dd", "st:write, 16 KiB blocks", mbps(write), dd / write))
print(string.format("  %-40s %8.1f MB/s  (reference)", "openssl dgst -sha1 (one stream)", mbps(ossl)))
print(string.format("  %-40s %8.1f MB/s  %.2fx openssl", "st:check() (read + SHA-1 per piece)", mbps(check),
  ossl / check))
print(string.format("  %-40s %8.3f s for %d pieces", "st:check() on a fresh sparse download", fresh, MIB))
