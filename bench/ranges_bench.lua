--- Benchmark of bt ranges (the sparse bitfield) against plain bitmaps measured
-- in the same run: build/bench/ranges_ref (bench/ranges_ref.c) times the C
-- operations of all three representations on 1,000,000 pieces, this script
-- prints them side by side with ratios, then times the Lua binding against a
-- Lua table of booleans. Run by `make bench` (BT_BENCH_BIN=build/bench).
-- Environment: RANGES_BENCH_TIME=seconds per C measurement (default 0.04).
local bt = require "bt"

local bin = (os.getenv("BT_BENCH_BIN") or "build/bench") .. "/ranges_ref"
local per = tonumber(os.getenv("RANGES_BENCH_TIME") or "") or 0.04

local f = io.open(bin, "rb")
if not f then
  io.stderr:write("ranges_bench: " .. bin .. " not found; run `make bench` (or make " .. bin .. ")\n")
  os.exit(1)
end
f:close()

local p = assert(io.popen(string.format("%q %s", bin, per)))
local ops, mem, info, order = {}, {}, {}, {}
for line in p:lines() do
  local sc, op, impl, v = line:match("^OPS (%S+) (%S+) (%S+) (%S+)$")
  if sc then
    ops[sc] = ops[sc] or {}
    ops[sc][op] = ops[sc][op] or {}
    if not ops[sc][op].seen then
      ops[sc][op].seen = true
      order[#order + 1] = { sc, op }
    end
    ops[sc][op][impl] = tonumber(v)
  end
  local msc, mimpl, bytes = line:match("^MEM (%S+) (%S+) (%d+)$")
  if msc then
    mem[msc] = mem[msc] or {}
    mem[msc][mimpl] = tonumber(bytes)
  end
  local isc, itext = line:match("^INFO (%S+) (.*)$")
  if isc then info[isc] = itext end
end
assert(p:close(), "ranges_ref failed")

local function human(x)
  if x >= 1e9 then return string.format("%.2fG", x / 1e9) end
  if x >= 1e6 then return string.format("%.2fM", x / 1e6) end
  if x >= 1e3 then return string.format("%.1fk", x / 1e3) end
  return string.format("%.0f", x)
end

print("bt ranges vs plain bitmaps, 1,000,000 pieces, ops/s (C, same run)")
print("ratio = ranges / reference: above 1 the ranges are faster")
local last
for _, k in ipairs(order) do
  local sc, op = k[1], k[2]
  if sc ~= last then
    last = sc
    print()
    print(string.format("%s (%s)", sc, info[sc] or ""))
    print(string.format("  memory: ranges %d B, bit array %d B, byte map %d B",
      mem[sc].ranges, mem[sc].bitarray, mem[sc].bytemap))
    print(string.format("  %-11s %10s %10s %8s %10s %8s", "op", "ranges", "bitarray", "ratio", "bytemap", "ratio"))
  end
  local r = ops[sc][op]
  print(string.format("  %-11s %10s %10s %8.3g %10s %8.3g", op, human(r.ranges), human(r.bitarray),
    r.ranges / r.bitarray, human(r.bytemap), r.ranges / r.bytemap))
end

-- The Lua binding: what a policy pays per call, against a Lua boolean table.
local N = 1000000
math.randomseed(42)
local bytes, tbl = {}, {}
for k = 1, N // 8 do
  local v = 0
  for j = 0, 7 do
    if math.random(3) == 1 then v = v | (0x80 >> j); tbl[(k - 1) * 8 + j] = true end
  end
  bytes[k] = string.char(v)
end
local wire = table.concat(bytes)
local s = assert(bt.bitfield_from_wire(wire, N))
local idx = {}
for k = 1, 4096 do idx[k] = math.random(0, N - 1) end

local function rate(fn)
  local n, t0 = 0, os.clock()
  repeat
    fn()
    n = n + 4096
  until os.clock() - t0 >= 0.1
  return n / (os.clock() - t0)
end

print()
print("Lua binding, fragmented 1,000,000 pieces (" .. s:count() .. " set), calls/s")
print(string.format("  %-22s %10s %14s %8s", "op", "bt.Ranges", "Lua table", "ratio"))
local sink = 0
local rows = {
  { "has(i)", function() for k = 1, 4096 do if s:has(idx[k]) then sink = sink + 1 end end end,
              function() for k = 1, 4096 do if tbl[idx[k]] then sink = sink + 1 end end end },
  { "next_clear(i)", function() for k = 1, 4096 do sink = sink + (s:next_clear(idx[k]) or 0) end end,
              function() for k = 1, 4096 do local i = idx[k]; while tbl[i] do i = i + 1 end; sink = sink + i end end },
  { "set(i) + clear(i)", function()
                for k = 1, 4096 do local i = idx[k]; local h = s:has(i); s:set(i); if not h then s:clear(i) end end
              end,
              function()
                for k = 1, 4096 do local i = idx[k]; local h = tbl[i]; tbl[i] = true; if not h then tbl[i] = nil end end
              end },
}
for _, row in ipairs(rows) do
  local a, b = rate(row[2]), rate(row[3])
  print(string.format("  %-22s %10s %14s %8.3g", row[1], human(a), human(b), a / b))
end
local function once(fn)
  local n, t0 = 0, os.clock()
  repeat fn(); n = n + 1 until os.clock() - t0 >= 0.2
  return n / (os.clock() - t0)
end
local w1 = once(function() sink = sink + #s:to_wire() end)
local w2 = once(function() sink = sink + bt.bitfield_from_wire(wire, N):count() end)
print(string.format("  %-22s %10s", "to_wire()", human(w1)))
print(string.format("  %-22s %10s", "bitfield_from_wire()", human(w2)))
assert(sink > 0)
