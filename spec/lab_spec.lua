--- bt-lua lab (issue 11): the scenario loader refuses bad scenarios with clear messages,
-- one seed gives one schedule, and a small scenario runs end to end with real sessions:
-- its outputs are complete and consistent, and Ctrl-C stops every peer it started.
local H = require "helpers"
local cjson = require "cjson"
local scenario = require "bt.lab.scenario"

local SMALL = H.root .. "/spec/fixtures/lab/small.lua"
-- Bounds on the end-to-end runs (the small scenario takes about 20 s for its two mixes).
local LIMIT = 120

local function write_scenario(dir, text)
  local path = dir .. "/sc.lua"
  H.writefile(path, text)
  return path
end

-- A valid scenario's text with `patch` applied to its table (a Lua statement on `s`).
local function variant(patch)
  return ([[
local s = {
  payload = { size = "1M", piece = "32K" }, time_limit = 10,
  seeds = { count = 1, up = "1M" },
  groups = { { name = "g", count = 2, policy = "%s/examples/rarest_first.lua" } },
}
%s
return s
]]):format(H.root, patch or "")
end

local function lab(args)
  local p = io.popen(("cd %s && %s timeout -s INT -k 10 %d lua5.4 scripts/bt-lua lab %s 2>&1; echo \"__exit=$?\"")
    :format(H.q(H.root), H.lua_env(), LIMIT, args))
  local out = p:read("a")
  p:close()
  return tonumber(out:match("__exit=(%d+)%s*$")), out
end

describe("lab scenario loader", function()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rmtree(dir) end)

  it("loads a valid scenario and fills in the defaults", function()
    local sc = assert(scenario.load(write_scenario(dir, variant())))
    assert.are.equal(1048576, sc.size)
    assert.are.equal(32, sc.pieces)
    assert.are.equal(3, sc.npeers)
    assert.are.same({ at = 0 }, sc.groups[1].join)
    assert.are.equal("as-written", sc.mixes[1].name)
    assert.are.equal(0.1, sc.in_order)
  end)

  local cases = {
    { "s.payload = nil", "payload: must be a table, not nil" },
    { "s.paylod = s.payload", "unknown field 'paylod' (did you mean 'payload'?)" },
    { "s.payload.piece = '48K'", "payload.piece: must be a power of two" },
    { "s.payload.size = '2G'", "payload.size: must be between 16384 and 1073741824 bytes" },
    { "s.payload.size = 'lots'", "payload.size: must be a byte count like 512K or 2M, not \"lots\"" },
    { "s.payload.piece = '32M'", "payload.piece: must be between 16384 and 16777216 bytes" },
    { "s.time_limit = -1", "time_limit: must be between 1 and 3600" },
    { "s.seeds.count = 0", "seeds.count: must be between 1 and 200" },
    { "s.seeds.leave = { after = 5, copies = 1 }", "seeds.leave: needs one of after = SECONDS or copies = K" },
    { "s.groups[1].count = 2.5", "groups[1].count: must be an integer" },
    { "s.groups[1].join = { at = 0, spread = 3 }", "groups[1].join: needs exactly one of" },
    { "s.groups[1].join = { poisson = 0 }", "groups[1].join.poisson: must be above 0" },
    { "s.groups[1].up = { '2M', '1M' }", "groups[1].up: range {low, high} has low above high" },
    { "s.groups[1].policy = 'nope.lua'", "groups[1].policy: no policy file" },
    { "s.groups[1].policy = nil", "groups[1].policy: missing (and no mixes set one)" },
    { "s.groups[2] = s.groups[1]", "groups[2].name: 'g' names two groups" },
    { "s.groups[1].count = 300", "groups[1].count: must be between 1 and 200" },
    { "s.groups[1].network = { latency = 2500 }", "groups[1].network.latency: must be between 0 and 2000" },
    { "s.network = { loss = 0.7 }", "network.loss: must be between 0 and 0.5" },
    { "s.groups[1].network = { delay = 5 }", "unknown field 'delay'" },
    { "s.hosts = { 'a', 'b' }", "several machines is not implemented" },
    { "s.mixes = { { name = 'x', policies = { h = 'y.lua' } } }", "no group named h (groups: g)" },
    { "s.mixes = { { name = 'a b' } }", "mixes[1].name: must be a name" },
    { "s.mixes = { { name = 'a' }, { name = 'a' } }", "'a' names two mixes" },
    { "s = 7", "must be a table, not number" },
    { "while true do end", "ran past 10000000 instructions" },
    { "s = os.exit()", "attempt to index a nil value (global 'os')" },
    { "s.time_limit = math.random(5, 9)", "attempt to call a nil value (field 'random')" },
    { "string.format = nil; s = 1", "must be a table, not number" },
    { "s = (", "unexpected symbol" },
  }
  for _, c in ipairs(cases) do
    it("refuses " .. c[1], function()
      local sc, err = scenario.load(write_scenario(dir, variant(c[1])))
      assert.is_nil(sc)
      assert.truthy(err:find(c[2], 1, true), err)
      assert.truthy(err:find(dir, 1, true), "the message names the file: " .. err)
    end)
  end

  it("refuses a file larger than MAX_FILE and one that cannot be read", function()
    local path = dir .. "/big.lua"
    H.writefile(path, "return {}" .. (" "):rep(scenario.MAX_FILE))
    local sc, err = scenario.load(path)
    assert.is_nil(sc)
    assert.truthy(err:find("larger than", 1, true), err)
    sc, err = scenario.load(dir .. "/absent.lua")
    assert.is_nil(sc)
    assert.truthy(err:find("cannot read scenario", 1, true), err)
  end)

  it("builds a scenario on another of its folder with include(), the base unchanged", function()
    H.writefile(dir .. "/base.lua", variant())
    local path = dir .. "/more.lua"
    H.writefile(path, 'local s = include("base.lua"); s.groups[1].count = 5; s.name = "more"; return s')
    local sc = assert(scenario.load(path))
    assert.are.equal("more", sc.name)
    assert.are.equal(6, sc.npeers)
    assert.are.equal(H.root .. "/examples/rarest_first.lua", sc.groups[1].policy)
    assert.are.equal(3, assert(scenario.load(dir .. "/base.lua")).npeers)
  end)

  local include_cases = {
    { 'include("../base.lua")',
      'include: needs the file name of a scenario in the same folder (name.lua), got "../base.lua"' },
    { "include(7)", "include: needs the file name of a scenario in the same folder (name.lua), got number" },
    { 'include("absent.lua")', "cannot read scenario: " },
    { 'include("sc.lua")', "include: sc.lua -> sc.lua is a circle" },
    { 'include("loop.lua")', "include: sc.lua -> loop.lua -> sc.lua is a circle" },
    { 'include("broken.lua")', "scenario " .. "DIR/broken.lua: DIR/broken.lua:1: boom" },
    { 'for i = 1, 100 do include("base.lua") end', "include: more than 16 included files" },
    { 'include("spin.lua")', "DIR/spin.lua: ran past 10000000 instructions" },
  }
  for _, c in ipairs(include_cases) do
    it("refuses " .. c[1], function()
      H.writefile(dir .. "/base.lua", variant())
      H.writefile(dir .. "/loop.lua", 'return include("sc.lua")')
      H.writefile(dir .. "/broken.lua", 'error("boom")')
      H.writefile(dir .. "/spin.lua", "while true do end")
      local sc, err = scenario.load(write_scenario(dir, variant(c[1])))
      assert.is_nil(sc)
      local want = c[2]:gsub("DIR", dir)
      assert.truthy(err:find(want, 1, true), err)
    end)
  end

  it("gives the same schedule for the same seed, whatever the mix, and another for another seed", function()
    local sc = assert(scenario.load(write_scenario(dir, variant(
      "s.groups[1].count = 20; s.groups[1].join = { poisson = 2 }; s.groups[1].up = { '100K', '300K' }"
      .. "; s.groups[2] = { name = 'h', count = 5, join = { spread = 10, from = 3 }, policy = s.groups[1].policy }"
      .. ("; s.mixes = { { name = 'a' }, { name = 'b', policies = { g = '%s/examples/random.lua' } } }")
        :format(H.root)))))
    local function schedule(plan)
      local out = {}
      for _, p in ipairs(plan.leechers) do out[#out + 1] = { p.id, p.join, p.up, p.rand } end
      return out
    end
    local a1 = scenario.plan(sc, sc.mixes[1], 7)
    local a2 = scenario.plan(sc, sc.mixes[1], 7)
    local b = scenario.plan(sc, sc.mixes[2], 7)
    assert.are.same(schedule(a1), schedule(a2))
    assert.are.same(schedule(a1), schedule(b))
    assert.are_not.same(schedule(a1), schedule(scenario.plan(sc, sc.mixes[1], 8)))
    assert.truthy(b.leechers[1].policy:find("random.lua", 1, true))
    -- join order, and the draws inside the ranges
    for i, p in ipairs(a1.leechers) do
      if i > 1 then assert.is_true(p.join >= a1.leechers[i - 1].join) end
      if p.group == "g" then assert.is_true(p.up >= 100 * 1024 and p.up <= 300 * 1024) end
      if p.group == "h" then assert.is_true(p.join >= 3 and p.join < 13) end
    end
  end)

  it("gives every peer its group's network, the scenario's where the group sets none", function()
    local sc = assert(scenario.load(write_scenario(dir, variant(
      "s.network = { latency = 20, loss = 0.01 }; s.groups[2] = { name = 'far', count = 2, "
      .. "policy = s.groups[1].policy, network = { latency = 150 } }"))))
    local plan = scenario.plan(sc, sc.mixes[1], 3)
    assert.are.same({ 0.02, 0.01 }, { plan.seeds[1].latency, plan.seeds[1].loss })
    local seen = {}
    for _, p in ipairs(plan.leechers) do
      seen[p.group] = true
      if p.group == "far" then assert.are.same({ 0.15, 0.01 }, { p.latency, p.loss })
      else assert.are.same({ 0.02, 0.01 }, { p.latency, p.loss }) end
    end
    assert.is_true(seen.far and seen.g)
  end)
end)

describe("t:stats().cancels in bt.policy.fake", function()
  it("counts peer:cancel, cancel_all and a snub's requests, not a disconnect's", function()
    local fake = require "bt.policy.fake"
    local t = fake.torrent{ pieces = 4, piece_length = 4 * 16384 }
    local p = fake.peer(t, { have = "all", slots = 8 })
    p:request_blocks(0)
    p:request_blocks(1)
    assert.is_true(p:cancel(0, 1))
    assert.is_false(p:cancel(0, 1))              -- not in flight any more: nothing sent
    assert.are.equal(1, t:stats().cancels)
    p:cancel_all()                               -- the 7 left
    assert.are.equal(8, t:stats().cancels)
    local q = fake.peer(t, { have = "all", slots = 4 })
    q:request_blocks(2)
    q:disconnect()
    assert.are.equal(8, t:stats().cancels)
  end)
end)

describe("bt-lua lab", function()
  local dir
  setup(function() dir = H.tmpdir() end)
  teardown(function() H.rmtree(dir) end)

  it("exits 2 with the loader's message for a bad scenario", function()
    local code, out = lab(H.q(write_scenario(dir, variant("s.paylod = s.payload"))))
    assert.are.equal(2, code, out)
    assert.truthy(out:find("unknown field 'paylod'", 1, true), out)
  end)

  it("runs a small scenario end to end with complete, consistent outputs", function()
    local out_dir = dir .. "/out"
    local code, out = lab(("%s --runs 1 --seed 5 --out %s"):format(H.q(SMALL), H.q(out_dir)))
    assert.are.equal(0, code, out)
    for _, f in ipairs({ "runs.jsonl", "summary.md", "cdf.svg", "availability.svg", "progress.svg" }) do
      local fh = io.open(out_dir .. "/" .. f, "rb")
      assert.truthy(fh, f .. " missing:\n" .. out)
      assert.is_true(#fh:read("a") > 0, f .. " is empty")
      fh:close()
    end
    assert.truthy(H.readfile(out_dir .. "/cdf.svg"):find("<svg", 1, true))
    local sc = assert(scenario.load(SMALL))
    local runs, leechers, samples = {}, {}, {}
    for line in H.readfile(out_dir .. "/runs.jsonl"):gmatch("[^\n]+") do
      local r = cjson.decode(line)
      if r.kind == "run" then runs[#runs + 1] = r
      elseif r.kind == "leecher" then leechers[#leechers + 1] = r
      elseif r.kind == "sample" then samples[#samples + 1] = r end
    end
    assert.are.equal(2, #runs)                   -- one per mix
    -- cancels (t:stats().cancels): every download here ends in endgame, whose duplicate
    -- requests are cancelled once a copy arrives; six leechers with none would be a lost count
    local cancels = 0
    for _, l in ipairs(leechers) do
      assert.are.equal(l.cancels, math.floor(l.cancels))
      cancels = cancels + l.cancels
    end
    assert.is_true(cancels > 0, "no cancel counted in six downloads")
    assert.are.equal(2 * 3, #leechers)
    for _, run in ipairs(runs) do
      assert.are.equal(5, run.seed)
      -- every leecher finished or is counted unfinished
      assert.are.equal(3, run.finished + run.unfinished)
      local down, up, n, fin = 0, 0, 0, 0
      for _, l in ipairs(leechers) do
        if l.run == run.run then
          n = n + 1
          down, up = down + l.down, up + l.up
          if l.unfinished then
            assert.are.equal(cjson.null, l.completion)
          else
            fin = fin + 1
            assert.are.equal(sc.size, l.have)
            assert.are.equal(sc.pieces, #l.piece_times)
            assert.is_true(l.completion > 0 and l.first_piece <= l.completion and l.first_in_order <= l.completion)
            assert.is_true(l.down >= sc.size, "downloaded less than the payload")
          end
          assert.is_true(l.from_seeds <= l.down)
        end
      end
      assert.are.equal(3, n)
      assert.are.equal(run.finished, fin)
      -- bytes add up: what the leechers received is what the seeds and the leechers sent
      -- (a block counts as sent once acknowledged: blocks in flight when a peer left
      -- may be received and not yet acknowledged; a few blocks per leecher at most)
      assert.are.equal(down, run.leechers_downloaded)
      local sent = run.seeds_uploaded + up
      assert.is_true(math.abs(down - sent) <= 3 * 8 * 16384,
        ("received %d, sent %d (seeds %d)"):format(down, sent, run.seeds_uploaded))
      assert.is_true(run.seeds_uploaded >= sc.size, "the only seed sent less than one copy")
      -- samples: about one a second, each counting every piece once
      local ts = {}
      for _, s in ipairs(samples) do
        if s.run == run.run then
          ts[#ts + 1] = s.t
          assert.are.equal(sc.pieces, s.zero + s.one + s.two_plus)
          assert.is_true(s.min <= s.mean and s.mean <= s.max)
          assert.is_true(s.present <= sc.npeers)
        end
      end
      -- one due every second; a loaded machine (the sanitizer build beside a lab run) can
      -- stall the runner's loop past a few, which it then takes late or not at all
      assert.is_true(#ts >= math.floor(run.duration / 2),
        ("%d samples in a run of %.1f s"):format(#ts, run.duration))
    end
    local summary = H.readfile(out_dir .. "/summary.md")
    assert.truthy(summary:find("| rarest | leechers | rarest_first | 3 |", 1, true), summary)
    assert.truthy(summary:find("| random | leechers | random | 3 |", 1, true), summary)
    assert.truthy(out:find("plot: " .. out_dir .. "/cdf.svg", 1, true), out)
  end)

  it("stops every peer it started on Ctrl-C, removes its scratch folder and keeps the runs finished", function()
    local log = dir .. "/int.log"
    local p = io.popen(("cd %s && (%s lua5.4 scripts/bt-lua lab %s --runs 5 --out %s >%s 2>&1 & echo $!; wait $!; "
      .. "echo \"__exit=$?\" >>%s)"):format(H.q(H.root), H.lua_env(), H.q(SMALL), H.q(dir .. "/int-out"), H.q(log),
      H.q(log)))
    local pid = tonumber(p:read("l"))
    -- wait until the second run's peers run (its .pid files in the scratch folder: the first
    -- run has ended), then interrupt
    local scratch, pids
    for _ = 1, 600 do
      local f = io.open(log, "rb")
      scratch = f and f:read("a"):match("scratch (/tmp/bt%-lab%.%w+)")
      if f then f:close() end
      if scratch then
        -- "; true": H.sh appends 2>&1, which would put cat's complaint (digits and all) in pids
        pids = H.sh("cat " .. scratch .. "/run2-*/*.pid 2>/dev/null; true")
        if select(2, pids:gsub("%d+", "")) >= 3 then break end
      end
      require("socket").sleep(0.1)
    end
    assert.truthy(scratch, H.readfile(log))
    os.execute("kill -INT " .. pid)
    p:read("a")
    p:close()
    local text = H.readfile(log)
    assert.truthy(text:find("__exit=130", 1, true), text)
    assert.truthy(text:find("interrupted; stopped every peer it started; the runs finished are in "
      .. dir .. "/int-out/runs.jsonl", 1, true), text)
    -- runs.jsonl was written as the first run ended: its records, whole, and no other run's
    local kinds, runs_seen = {}, {}
    local jsonl = H.readfile(dir .. "/int-out/runs.jsonl")
    for line in jsonl:gmatch("[^\n]+") do
      local r = cjson.decode(line)
      kinds[r.kind] = (kinds[r.kind] or 0) + 1
      runs_seen[r.run] = true
    end
    assert.are.same({ [1] = true }, runs_seen, ("runs.jsonl (%d bytes); pids %s; log:\n%s"):format(#jsonl,
      tostring(pids), text))
    assert.are.equal(1, kinds.run)
    assert.are.equal(3, kinds.leecher)
    assert.is_true((kinds.sample or 0) >= 2, "no samples")
    for child in pids:gmatch("%d+") do
      assert.is_false(os.execute("kill -0 " .. child .. " 2>/dev/null") == true, "peer " .. child .. " still runs")
    end
    local f = io.open(scratch, "r")
    if f then f:close() end
    assert.is_nil(f, scratch .. " is still there")
  end)
end)
