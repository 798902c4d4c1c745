--- Benchmark: streaming. How much of the file is playable (the prefix of verified
-- pieces, t:next_missing(0)) when half of it has been downloaded, with
-- examples/sequential.lua as it is (queue depth capped at 32 requests a peer) and the
-- same policy with the default's queue depth (3 s of the peer's rate, up to 500: the
-- reference), from local libtorrent seeds on loopback into memory storage. Runs
-- alternate between the two. Prints, per policy, the playable prefix at 25, 50 and
-- 75 % downloaded (median, min, max over the runs) and the download time, and the
-- ratio capped / uncapped of the prefix at 50 %.
--   lua5.4 bench/streaming_bench.lua [MiB] [runs] [seeds]
-- MiB: payload (default 256, pieces of 256 KiB); runs: of each policy (default 5);
-- seeds: libtorrent seeds, each a peer of the download (default 2).
local here = (arg and arg[0] or ""):match("^(.*)/[^/]*$") or "."
local B = dofile(here .. "/benchlib.lua")   -- also points package.path/cpath at this checkout
local session = require "bt.session"
local default = require "bt.policy.default"
local socket = require "socket"

local MIB = tonumber(arg[1]) or 256
local RUNS = tonumber(arg[2]) or 5
local NSEEDS = tonumber(arg[3]) or 2
local q, sh = B.q, B.sh

local sequential = dofile(here .. "/../examples/sequential.lua")
local policies = {
  { key = "capped", label = "sequential.lua (queue depth <= 32)", policy = sequential },
  { key = "uncapped", label = "sequential.lua, default queue depth (ref)",
    policy = { name = "sequential-uncapped", pick = sequential.pick, queue_depth = default.queue_depth } },
}

local dir = sh("mktemp -d /tmp/bt-stream.XXXXXX"):gsub("%s+$", "")
local data = dir .. "/seed/payload.bin"
os.execute("mkdir -p " .. q(dir .. "/seed"))
sh(("head -c %d /dev/urandom > %s"):format(MIB * 1048576, q(data)))
local tpath = dir .. "/s.torrent"
local out, okc = sh(("mktorrent -l 18 -a http://127.0.0.1:1/announce -o %s %s"):format(q(tpath), q(data)))
if not okc then error("mktorrent failed:\n" .. out) end

local MARKS = { 0.25, 0.5, 0.75 }

-- one download: the prefix (fraction of the file) when the verified pieces first
-- reach each mark, and the seconds it took
local function download(pol, ports)
  local s = session.new{ port = 0, bind = "127.0.0.1" }
  local prefix, elapsed, err = {}, nil, nil
  local ok, e = pcall(function()
    local peers = {}
    for i, p in ipairs(ports) do peers[i] = "127.0.0.1:" .. p end
    local t = s:add(tpath, { storage = "memory", policy = pol.policy, peers = peers, trackers = false })
    local n = t.pieces
    s:on("piece", function(tt, _, good)
      if not good then return end
      local have = tt.have:count()
      for _, m in ipairs(MARKS) do
        if not prefix[m] and have >= m * n then
          prefix[m] = (tt:next_missing(0) or n) / n
        end
      end
    end)
    s:on("error", function(_, msg) err = msg end)
    local t0 = socket.gettime()
    s:on("complete", function() elapsed = socket.gettime() - t0; s:stop() end)
    s:run(function() return err ~= nil or socket.gettime() - t0 > 120 end)
    if not t.complete then error("download did not complete: " .. tostring(err or "120 s")) end
  end)
  s:close()
  if not ok then error(e, 0) end
  return prefix, elapsed
end

local pids = {}
local ok, err = pcall(function()
  local ports = {}
  for i = 1, NSEEDS do
    ports[i] = B.free_port()
    pids[#pids + 1] = B.spawn(("/usr/bin/python3 %s seed %s %s %d"):format(q(here .. "/engine_lt.py"), q(tpath),
      q(dir .. "/seed"), ports[i]))
  end
  for _, p in ipairs(ports) do B.wait_port(p) end
  -- warm-up: a libtorrent seed in seed mode hashes each piece the first time it sends
  -- it, so one unmeasured download from each seed alone
  for _, p in ipairs(ports) do download(policies[1], { p }) end
  local res = {}
  for _, pol in ipairs(policies) do res[pol.key] = { time = {} } end
  for r = 1, RUNS do
    for j = 1, #policies do
      local pol = policies[r % 2 == 1 and j or #policies + 1 - j]
      local prefix, secs = download(pol, ports)
      local rr = res[pol.key]
      for _, m in ipairs(MARKS) do
        rr[m] = rr[m] or {}
        table.insert(rr[m], prefix[m])
      end
      table.insert(rr.time, secs)
      io.stderr:write(("  run %d %-42s prefix at 25/50/75 %%: %5.1f %5.1f %5.1f %%  %.3f s\n"):format(r, pol.label,
        100 * prefix[0.25], 100 * prefix[0.5], 100 * prefix[0.75], secs))
    end
  end
  local function span(t)
    local lo, hi = math.huge, -math.huge
    for _, v in ipairs(t) do lo, hi = math.min(lo, v), math.max(hi, v) end
    return lo, hi
  end
  print(("streaming: %d MiB, 256 KiB pieces, %d libtorrent seed(s) on loopback, memory storage; %d runs each, "
    .. "alternating"):format(MIB, NSEEDS, RUNS))
  print("  playable prefix (% of the file) when 25 / 50 / 75 % is downloaded, median [min-max]; download time")
  for _, pol in ipairs(policies) do
    local rr, cells = res[pol.key], {}
    for _, m in ipairs(MARKS) do
      local lo, hi = span(rr[m])
      cells[#cells + 1] = ("%5.1f [%4.1f-%4.1f]"):format(100 * B.median(rr[m]), 100 * lo, 100 * hi)
    end
    print(("    %-44s %s   %.2f s"):format(pol.label, table.concat(cells, "  "), B.median(rr.time)))
  end
  print(("  capped / uncapped, prefix at 50 %%: %.2f   download time: %.2f"):format(
    B.median(res.capped[0.5]) / math.max(B.median(res.uncapped[0.5]), 1e-9),
    B.median(res.capped.time) / B.median(res.uncapped.time)))
end)
for _, pid in ipairs(pids) do B.kill(pid) end
os.execute("rm -rf " .. q(dir))
if not ok then error(err, 0) end
