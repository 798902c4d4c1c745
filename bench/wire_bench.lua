--- Peer-wire decoding speed: C (bench/wire_bench.c via BT_BENCH_BIN) and the Lua
-- decoder fed 64 KiB chunks, on two streams:
--   mixed: per group one 16 KiB piece, 4 have, 2 request (a downloading peer's view)
--   small: have and request only (per-message overhead, no payload)
-- Reference measured in the same run: memcpy of the same bytes in 64 KiB chunks
-- (from the C program), and in Lua the bare chunk slicing the decoder loop needs.
-- Ratios > 1 mean faster than the reference. Runs in about 6 s.
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
package.path = here .. "/?.lua;" .. package.path
local B = require "benchlib"
local bt = require "bt"
local wire = bt.wire

local CHUNK = 64 * 1024
local MIN_SECONDS = 0.5   -- per measure: enough repetitions to smooth the clock

local function mixed_stream()
  local block = string.rep("\xab", wire.BLOCK_SIZE)
  local parts = {}
  for g = 0, 1023 do
    parts[#parts + 1] = wire.encode { type = "piece", index = g, begin = 0, block = block }
    for h = 0, 3 do parts[#parts + 1] = wire.encode { type = "have", index = g * 4 + h } end
    for r = 0, 1 do
      parts[#parts + 1] = wire.encode { type = "request", index = g, begin = r * 16384, length = 16384 }
    end
  end
  return table.concat(parts), #parts
end

local function small_stream()
  local parts = {}
  for i = 0, 299999 do
    if i % 2 == 0 then
      parts[#parts + 1] = wire.encode { type = "have", index = i }
    else
      parts[#parts + 1] = wire.encode { type = "request", index = i, begin = 0, length = 16384 }
    end
  end
  return table.concat(parts), #parts
end

local function timed(f) return B.per_call(f, MIN_SECONDS) end

local function lua_decode(s, nmsgs)
  return timed(function()
    local dec = wire.decoder()
    local count = 0
    for pos = 1, #s, CHUNK do
      local got = dec:feed(s:sub(pos, pos + CHUNK - 1))
      count = count + #got
    end
    assert(count == nmsgs, "decoded " .. count .. " of " .. nmsgs)
  end)
end

local function lua_slices(s)
  return timed(function()
    local n = 0
    for pos = 1, #s, CHUNK do n = n + #s:sub(pos, pos + CHUNK - 1) end
    assert(n == #s)
  end)
end

local function run_c(s, name)
  if not os.getenv("BT_BENCH_BIN") then return nil end
  local path = B.tmpfile(s)
  local out = B.run_ref("wire_bench", path, name)
  os.remove(path)
  if not out then return nil end
  local r = {}
  for measure, mbs, mps in out:gmatch("%S+ (%S+) (%S+) (%S+)") do
    r[measure] = { mbs = tonumber(mbs), mps = tonumber(mps) }
  end
  assert(r.memcpy, "wire_bench printed nothing usable:\n" .. out)
  return r
end

local function row(label, mbs, mps, ref)
  print(string.format("  %-34s %9.1f MB/s %12.0f msgs/s   x%.3g of %s",
    label, mbs, mps, mbs / ref.mbs, ref.name))
end

print("wire decoding (MB = 10^6 bytes; ratio = this / reference)")
for _, case in ipairs { { "mixed", mixed_stream }, { "small", small_stream } } do
  local name, make = case[1], case[2]
  local s, nmsgs = make()
  print(string.format("%s stream: %.1f MB, %d messages", name, #s / 1e6, nmsgs))
  local c = run_c(s, name)
  local ref
  if c then
    ref = { name = "C memcpy", mbs = c.memcpy.mbs }
    print(string.format("  %-34s %9.1f MB/s   (reference)", "C memcpy, 64 KiB chunks", c.memcpy.mbs))
    row("C bt_wire_parse, in place", c.parse.mbs, c.parse.mps, ref)
    row("C socket-like (copy in + parse)", c.socket.mbs, c.socket.mps, ref)
  end
  local ts = lua_slices(s)
  local slices = { name = "Lua slicing", mbs = #s / ts / 1e6 }
  print(string.format("  %-34s %9.1f MB/s   (Lua reference)", "Lua s:sub into 64 KiB chunks", slices.mbs))
  local t = lua_decode(s, nmsgs)
  row("Lua dec:feed, 64 KiB chunks", #s / t / 1e6, nmsgs / t, ref or slices)
  if ref then row("  (same, against Lua slicing)", #s / t / 1e6, nmsgs / t, slices) end
end
if not os.getenv("BT_BENCH_BIN") then
  print("(BT_BENCH_BIN not set: C measures skipped; `make bench` builds and sets it)")
end
