--- make demo: the main job on a built-in default. Makes a payload, starts a local swarm
-- on 127.0.0.1 (opentracker and an aria2c seed), downloads it with bt-lua and
-- examples/rarest_first.lua showing progress, checks the result and stops everything
-- it started. It uses the local-swarm tooling of the specs (spec/swarm_helpers.lua).
-- DEMO_MB sets the payload size in MiB (default 64).
local root = arg[0]:match("^(.*)/scripts/[^/]*$") or "."
package.path = root .. "/spec/?.lua;" .. root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
local H = require "helpers"
local S = require "swarm_helpers"
local T = require "tracker_helpers"

local mib = tonumber(os.getenv("DEMO_MB") or "64")
local dir = H.tmpdir()
local pids = {}
local tracker

local function step(fmt, ...) io.stdout:write("demo: ", fmt:format(...), "\n"); io.stdout:flush() end

local function main()
  os.execute("mkdir -p " .. H.q(dir .. "/seed"))
  step("making a %d MiB payload in %s", mib, dir)
  S.make_files(dir .. "/seed", { ["payload.bin"] = mib * 1024 * 1024 }, 7)
  -- The tracker must whitelist the info-hash before it starts, and the torrent must
  -- name the tracker's URL: the URL is outside the info dictionary, so make the
  -- torrent, start the tracker for its hash, then write the torrent again with the URL.
  local bt = require "bt"
  local torrent = dir .. "/payload.torrent"
  local function make(url)
    local bytes = assert(bt.torrent.create{ path = dir .. "/seed/payload.bin", piece_length = 256 * 1024,
      announce = url })
    H.writefile(torrent, bytes)
    return assert(bt.torrent.load(bytes))
  end
  local t = make(nil)
  tracker = T.start_opentracker({ t.info_hash })
  make(tracker.url)
  step("torrent %s, info-hash %s", torrent, t.info_hash_hex)
  step("opentracker on %s (pid %d)", tracker.url, tracker.pid)
  local apid, aport = S.aria2_seed(torrent, dir .. "/seed")
  pids[#pids + 1] = apid
  step("aria2c seeding on 127.0.0.1:%d (pid %d)", aport, apid)
  step("downloading with examples/rarest_first.lua")
  local cmd = ("lua5.4 %s run %s %s -o %s --timeout 60"):format(H.q(root .. "/scripts/bt-lua"),
    H.q(root .. "/examples/rarest_first.lua"), H.q(torrent), H.q(dir .. "/down"))
  local t0 = os.time()
  local ok = os.execute(cmd)
  assert(ok, "bt-lua run failed")
  local same = S.sha256(dir .. "/seed/payload.bin") == S.sha256(dir .. "/down/payload.bin")
  assert(same, "the downloaded file differs from the payload")
  step("done in about %d s; sha256 of the download equals the payload's", os.time() - t0)
end

local ok, err = pcall(main)
for i = #pids, 1, -1 do S.kill(pids[i]) end
T.stop(tracker)
H.rmtree(dir)
if not ok then
  io.stderr:write("demo failed: ", tostring(err), "\n")
  os.exit(1)
end
step("stopped the tracker and the seed; removed %s", dir)
