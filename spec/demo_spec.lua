--- make demo and make demo-swarm.
-- `make demo` is a short lab run (examples/lab/demo.lua through `bt-lua lab`): the lab
-- itself runs end to end in spec/lab_spec.lua on a smaller scenario (the demo's minute
-- is beyond the CI budget); here the target must run that scenario, and the scenario
-- must load and compare rarest first with random, the seed leaving early.
-- `make demo-swarm` (scripts/demo.lua): a small payload through the bt-lua-only swarm. It
-- must exit 0 with a results table listing every example policy, with a positive
-- completion time, at least the payload downloaded and a matching sha256, and leave no
-- folder behind.
local H = require "helpers"
local scenario = require "bt.lab.scenario"

-- Small, so the spec spends its time on the swarm's dynamics, not on moving bytes.
local DEMO_MB = 4
-- The demo lasts about twice the seconds its seed takes for one copy (DEMO_SECONDS, 15 by
-- default; 6 here: long enough that the leechers must trade) whatever the size; LIMIT only
-- stops a hung run. SIGINT lets the demo stop its children and remove its folder.
local DEMO_SECONDS = 6
local LIMIT = 150
local POLICIES = { "rarest_first", "sequential", "random", "endgame_tuned" }

describe("make demo", function()
  it("is a lab run of examples/lab/demo.lua: rarest first against random, the seed leaving early", function()
    local out = H.sh("make -s -n demo")
    local want = "scripts/bt-lua lab examples/lab/demo.lua --runs 1 --seed 2 --out build/lab/demo"
    assert.truthy(out:find(want, 1, true), out)
    local sc = assert(scenario.load(H.root .. "/examples/lab/demo.lua"))
    local names = {}
    for _, m in ipairs(sc.mixes) do names[#names + 1] = m.name end
    assert.are.same({ "rarest_first", "random" }, names)
    assert.truthy(sc.seeds.leave and sc.seeds.leave.copies, "the seed must leave after some copies")
  end)
end)

describe("make demo-swarm", function()
  it("runs a bt-lua swarm, checks every copy and prints a table of real stats", function()
    local p = io.popen(("DEMO_MB=%d DEMO_SECONDS=%d timeout -s INT -k 20 %d lua5.4 %s 2>&1; echo \"__exit=$?\""):format(
      DEMO_MB, DEMO_SECONDS, LIMIT, H.q(H.root .. "/scripts/demo.lua")))
    local out = p:read("a")
    p:close()
    local code = tonumber(out:match("__exit=(%d+)%s*$"))
    assert.are.equal(0, code, out)

    local payload = DEMO_MB * 1024 * 1024
    assert.truthy(out:find("policy%s+started%s+seconds%s+downloaded%s+duplicate%s+uploaded%s+sha256"), out)
    local uploaded_total = 0
    for _, policy in ipairs(POLICIES) do
      local secs, down, dup, up, sha =
        out:match("\n  " .. policy .. "%s+%d+%s+([%d.]+)%s+(%d+)%s+(%d+)%s+(%d+)%s+(%S+)")
      assert.truthy(secs, "no table row for " .. policy .. ":\n" .. out)
      assert.is_true(tonumber(secs) > 0, out)
      assert.is_true(tonumber(down) >= payload, out)
      assert.is_true(tonumber(dup) >= 0, out)
      assert.are.equal("ok", sha, out)
      uploaded_total = uploaded_total + tonumber(up)
    end
    -- the seed's cap makes one copy take SEED_SECONDS: the leechers must have traded
    assert.is_true(uploaded_total > 0, out)

    local dir = out:match("removed (/tmp/bt%-demo%.%w+)")
    assert.truthy(dir, out)
    local f = io.open(dir, "r")
    if f then f:close() end
    assert.is_nil(f, dir .. " is still there")
  end)
end)
