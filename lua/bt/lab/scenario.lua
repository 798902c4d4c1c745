--- bt.lab.scenario: load and check a lab scenario file, and turn it into the plan of
-- one run (who joins when, with which rates and which policy).
--
-- A scenario is a Lua file returning a table (docs/lab.md, "The scenario format"). It is
-- hostile input like any other: read as text (at most MAX_FILE bytes), run in an
-- environment of its own with only math, string and table, stopped after
-- MAX_INSTRUCTIONS, and every field checked, with a message naming the field:
--
--   local scenario = require "bt.lab.scenario"
--   local sc, err = scenario.load("examples/lab/rarest_vs_random.lua")
--   local plan = scenario.plan(sc, sc.mixes[1], 42)   -- { peers = {...}, ... }
local policy = require "bt.policy"
local rate = require("bt.cmd.seed").parse_rate
local rng = require "bt.lab.rng"

local M = {}

-- Bounds, each with its reason.
M.MAX_FILE = 1024 * 1024                 -- a scenario is a page of Lua, not data
M.MAX_INSTRUCTIONS = 10 * 1000 * 1000    -- about a second of Lua: a loop in a scenario is a mistake
M.MIN_SIZE, M.MAX_SIZE = 16 * 1024, 1024 ^ 3   -- one block; every peer holds a copy in memory
M.MIN_PIECE, M.MAX_PIECE = 16 * 1024, 16 * 1024 ^ 2
M.MAX_PEERS = 200                        -- processes on one machine; 2 cores held 50 (docs/lab.md)
M.MAX_GROUPS, M.MAX_MIXES = 16, 16
M.MAX_TIME = 3600                        -- seconds a run may last
M.MAX_POISSON = 100                      -- joins per second: a worker takes ~0.1 s to start
M.MAX_NAME = 64
M.MAX_INCLUDE = 4                        -- levels of include(): a base and a variant or two
M.MAX_INCLUDES = 16                      -- files include() runs for one scenario: each may run MAX_INSTRUCTIONS

local function fail(path, fmt, ...)
  error({ message = ("%s: " .. fmt):format(path, ...) }, 0)
end

local function known(path, t, keys)
  for k in pairs(t) do
    if type(k) ~= "string" then fail(path, "keys must be names, not %s", type(k)) end
    local ok = false
    for _, n in ipairs(keys) do if n == k then ok = true end end
    if not ok then
      local near = policy.suggest(k, keys)
      fail(path, "unknown field '%s'%s (fields: %s)", k, near and (" (did you mean '" .. near .. "'?)") or "",
        table.concat(keys, ", "))
    end
  end
end

local function tbl(path, v, optional)
  if v == nil and optional then return nil end
  if type(v) ~= "table" then fail(path, "must be a table, not %s", type(v)) end
  return v
end

local function number(path, v, lo, hi, default)
  if v == nil and default ~= nil then return default end
  if type(v) ~= "number" or v ~= v then fail(path, "must be a number, not %s", type(v)) end
  if v < lo or v > hi then fail(path, "must be between %s and %s, not %s", lo, hi, v) end
  return v
end

local function integer(path, v, lo, hi, default)
  v = number(path, v, lo, hi, default)
  if math.type(v) ~= "integer" and v ~= math.floor(v) then fail(path, "must be an integer, not %s", v) end
  return math.tointeger(v)
end

local function name(path, v)
  if type(v) ~= "string" or not v:match("^[%w_.-]+$") or #v > M.MAX_NAME then
    fail(path, "must be a name of letters, digits, '_', '.' or '-' (at most %d), not %s", M.MAX_NAME,
      type(v) == "string" and ("%q"):format(v:sub(1, 80)) or type(v))
  end
  return v
end

-- A size or rate: a number of bytes or a string like "512K", "2M" (powers of 1024).
local function bytes(path, v, lo, hi, default)
  if v == nil and default ~= nil then return default end
  local n = (type(v) == "number" or type(v) == "string") and rate(v) or nil
  if not n then
    fail(path, "must be a byte count like 512K or 2M, not %s", type(v) == "string" and ("%q"):format(v) or type(v))
  end
  if n < lo or n > hi then fail(path, "must be between %d and %d bytes, not %d", lo, hi, n) end
  return n
end

-- A rate, or a range {lo, hi} drawn uniformly per peer. 0: unlimited.
local MAX_RATE = 1024 ^ 3
local function rate_spec(path, v)
  if v == nil then return { 0, 0 } end
  if type(v) == "table" then
    if #v ~= 2 then fail(path, "must be a rate or a range {low, high}") end
    for k in pairs(v) do if k ~= 1 and k ~= 2 then fail(path, "must be a rate or a range {low, high}") end end
    local lo, hi = bytes(path .. "[1]", v[1], 0, MAX_RATE), bytes(path .. "[2]", v[2], 0, MAX_RATE)
    if lo > hi then fail(path, "range {low, high} has low above high") end
    if lo == 0 and hi > 0 then fail(path, "a range cannot start at 0 (unlimited)") end
    return { lo, hi }
  end
  local r = bytes(path, v, 0, MAX_RATE)
  return { r, r }
end

-- A network table: latency (ms, one way, on what the peer sends) and loss (per segment),
-- the engine's lab delay (session options delay and loss; docs/lab.md "Network"). Fields
-- absent stay as `base` has them (a group inherits the scenario's network).
M.MAX_LATENCY = 2000   -- ms: the engine's BT_SESS_MAX_DELAY
M.MAX_LOSS = 0.5       -- the engine's BT_SESS_MAX_LOSS
local function network(path, v, base)
  base = base or { latency = 0, loss = 0 }
  if v == nil then return base end
  tbl(path, v)
  known(path, v, { "latency", "loss" })
  local ms = v.latency ~= nil and number(path .. ".latency", v.latency, 0, M.MAX_LATENCY)
  return { latency = ms and ms / 1000 or base.latency,
           loss = v.loss ~= nil and number(path .. ".loss", v.loss, 0, M.MAX_LOSS) or base.loss }
end

local function join(path, v)
  if v == nil then return { at = 0 } end
  tbl(path, v)
  known(path, v, { "at", "spread", "poisson", "from" })
  local n = (v.at ~= nil and 1 or 0) + (v.spread ~= nil and 1 or 0) + (v.poisson ~= nil and 1 or 0)
  if n ~= 1 then fail(path, "needs exactly one of at = S, spread = S (uniform over [from, from + S)) or "
    .. "poisson = RATE (joins per second from `from`)") end
  local from = number(path .. ".from", v.from, 0, M.MAX_TIME, 0)
  if v.at ~= nil then
    if v.from ~= nil then fail(path, "from goes with spread or poisson, not at") end
    return { at = number(path .. ".at", v.at, 0, M.MAX_TIME) }
  elseif v.spread ~= nil then
    return { spread = number(path .. ".spread", v.spread, 0, M.MAX_TIME), from = from }
  end
  local r = number(path .. ".poisson", v.poisson, 0, M.MAX_POISSON)
  if r <= 0 then fail(path .. ".poisson", "must be above 0 joins per second") end
  return { poisson = r, from = from }
end

local function policy_path(path, v, base)
  if type(v) ~= "string" or v == "" or #v > 4096 then fail(path, "must be a policy file (.lua) or module name") end
  local file = v
  if v:match("%.lua$") then
    if v:sub(1, 1) ~= "/" then file = base .. "/" .. v end
    local f = io.open(file, "rb")
    if not f then fail(path, "no policy file %s", file) end
    f:close()
  end
  local ok, err = pcall(policy.load, file)
  if not ok then fail(path, "%s", tostring(err)) end
  return file
end

local SEED_FIELDS = { "count", "up", "leave", "policy" }
local GROUP_FIELDS = { "name", "count", "policy", "up", "down", "join", "stay", "network" }
local TOP_FIELDS = { "name", "description", "payload", "time_limit", "seeds", "groups", "mixes",
                     "in_order", "max_peers", "network", "hosts" }

--- Check a scenario table; `base` is the folder relative policy paths start from.
-- Returns the normalized scenario or raises {message=...}.
function M.check(sc, src, base)
  tbl(src, sc)
  known(src, sc, TOP_FIELDS)
  local out = { source = src }
  out.name = sc.name ~= nil and name(src .. ": name", sc.name) or (src:match("([^/]-)%.lua$") or "scenario")
  if sc.description ~= nil and type(sc.description) ~= "string" then fail(src, "description must be a string") end
  out.description = sc.description
  if sc.hosts ~= nil then
    fail(src, "hosts: running one scenario's peers on several machines is not implemented (docs/lab.md, "
      .. "\"Past one machine\")")
  end
  out.network = network(src .. ": network", sc.network)

  local p = tbl(src .. ": payload", sc.payload)
  known(src .. ": payload", p, { "size", "piece" })
  out.size = bytes(src .. ": payload.size", p.size, M.MIN_SIZE, M.MAX_SIZE)
  out.piece = bytes(src .. ": payload.piece", p.piece, M.MIN_PIECE, M.MAX_PIECE)
  if out.piece & (out.piece - 1) ~= 0 then fail(src .. ": payload.piece", "must be a power of two") end
  out.pieces = (out.size + out.piece - 1) // out.piece   -- at most MAX_SIZE / MIN_PIECE: 65,536
  out.time_limit = number(src .. ": time_limit", sc.time_limit, 1, M.MAX_TIME)
  out.in_order = number(src .. ": in_order", sc.in_order, 0, 1, 0.1)
  out.max_peers = integer(src .. ": max_peers", sc.max_peers, 1, 1000, 50)

  local s = tbl(src .. ": seeds", sc.seeds)
  known(src .. ": seeds", s, SEED_FIELDS)
  out.seeds = { count = integer(src .. ": seeds.count", s.count, 1, M.MAX_PEERS),
                up = rate_spec(src .. ": seeds.up", s.up) }
  if s.policy ~= nil then out.seeds.policy = policy_path(src .. ": seeds.policy", s.policy, base) end
  if s.leave ~= nil then
    local l = tbl(src .. ": seeds.leave", s.leave)
    known(src .. ": seeds.leave", l, { "after", "copies" })
    if (l.after ~= nil) == (l.copies ~= nil) then
      fail(src .. ": seeds.leave", "needs one of after = SECONDS or copies = K (copies of the payload uploaded)")
    end
    out.seeds.leave = {
      after = l.after ~= nil and number(src .. ": seeds.leave.after", l.after, 0, M.MAX_TIME) or nil,
      copies = l.copies ~= nil and number(src .. ": seeds.leave.copies", l.copies, 0.01, 1000) or nil }
  end

  local groups = tbl(src .. ": groups", sc.groups)
  if #groups == 0 then fail(src .. ": groups", "needs at least one leecher group") end
  if #groups > M.MAX_GROUPS then fail(src .. ": groups", "at most %d groups", M.MAX_GROUPS) end
  for k in pairs(groups) do
    if math.type(k) ~= "integer" then
      fail(src .. ": groups", "must be a list of groups (found key %s)", tostring(k))
    end
  end
  out.groups, out.by_name = {}, {}
  local total = out.seeds.count
  for i, g in ipairs(groups) do
    local gp = ("%s: groups[%d]"):format(src, i)
    tbl(gp, g)
    known(gp, g, GROUP_FIELDS)
    local gname = g.name ~= nil and name(gp .. ".name", g.name) or ("group" .. i)
    if out.by_name[gname] then fail(gp .. ".name", "'%s' names two groups", gname) end
    local stay = g.stay
    if stay == nil then stay = 0 end
    if stay ~= true then stay = number(gp .. ".stay", stay, 0, M.MAX_TIME) end
    local og = { name = gname, count = integer(gp .. ".count", g.count, 1, M.MAX_PEERS),
                 policy = g.policy ~= nil and policy_path(gp .. ".policy", g.policy, base) or nil,
                 up = rate_spec(gp .. ".up", g.up), down = rate_spec(gp .. ".down", g.down),
                 join = join(gp .. ".join", g.join), stay = stay,
                 network = network(gp .. ".network", g.network, out.network) }
    total = total + og.count
    out.groups[i] = og
    out.by_name[gname] = og
  end
  if total > M.MAX_PEERS then fail(src, "%d peers is more than %d", total, M.MAX_PEERS) end
  out.npeers = total

  -- mixes: which policy each group runs; every mix runs with the same seeds
  out.mixes = {}
  if sc.mixes == nil then
    for i, g in ipairs(out.groups) do
      if not g.policy then fail(("%s: groups[%d].policy"):format(src, i), "missing (and no mixes set one)") end
    end
    out.mixes[1] = { name = "as-written", policies = {} }
  else
    local mixes = tbl(src .. ": mixes", sc.mixes)
    if #mixes == 0 or #mixes > M.MAX_MIXES then fail(src .. ": mixes", "needs 1 to %d mixes", M.MAX_MIXES) end
    local seen = {}
    for i, m in ipairs(mixes) do
      local mp = ("%s: mixes[%d]"):format(src, i)
      tbl(mp, m)
      known(mp, m, { "name", "policies" })
      local mname = name(mp .. ".name", m.name)
      if seen[mname] then fail(mp .. ".name", "'%s' names two mixes", mname) end
      seen[mname] = true
      local pols = tbl(mp .. ".policies", m.policies, true) or {}
      local om = { name = mname, policies = {} }
      for gname, path in pairs(pols) do
        if type(gname) ~= "string" or not out.by_name[gname] then
          local names = {}
          for _, g in ipairs(out.groups) do names[#names + 1] = g.name end
          fail(mp .. ".policies", "no group named %s (groups: %s)", tostring(gname), table.concat(names, ", "))
        end
        om.policies[gname] = policy_path(mp .. ".policies." .. gname, path, base)
      end
      for gi, g in ipairs(out.groups) do
        if not om.policies[g.name] and not g.policy then
          fail(mp .. ".policies", "gives no policy to group '%s' (groups[%d] has none)", g.name, gi)
        end
      end
      out.mixes[i] = om
    end
  end
  return out
end

-- copies, so that a scenario cannot change the lab's own libraries; no math.random: a
-- scenario draws nothing of its own (the run's seed does, in plan)
local function copy(lib, except)
  local c = {}
  for k, v in pairs(lib) do if not (except and except[k]) then c[k] = v end end
  return c
end

-- The folder a path is in, and its file name.
local function folder_of(path) return path:match("^(.*)/[^/]*$") or "." end
local function file_of(path) return path:match("[^/]*$") end

-- Run a scenario file in its sandbox and return the table it returns, unchecked.
-- `stack` lists the files being run (the includers first); `state.files` counts the files
-- run for one load, so that include() in a loop stays bounded. Raises a message.
local run
run = function(path, stack, state)
  state.files = state.files + 1
  if state.files > M.MAX_INCLUDES + 1 then
    error(("include: more than %d included files"):format(M.MAX_INCLUDES), 0)
  end
  local f, err = io.open(path, "rb")
  if not f then error("cannot read scenario: " .. tostring(err), 0) end
  local text = f:read(M.MAX_FILE + 1)
  f:close()
  if text and #text > M.MAX_FILE then error(("%s: larger than %d bytes"):format(path, M.MAX_FILE), 0) end
  local folder = folder_of(path)
  local env = { math = copy(math, { random = true, randomseed = true }), string = copy(string),
                table = copy(table), ipairs = ipairs, pairs = pairs, tonumber = tonumber,
                tostring = tostring, type = type, select = select, error = error }
  -- include("other.lua"): the table another scenario of the same folder returns (its
  -- relative policy paths mean the same here), to change and return as this one
  function env.include(file)
    if type(file) ~= "string" or not file:match("^[%w_.-]+%.lua$") or file:match("^%.") then
      error("include: needs the file name of a scenario in the same folder (name.lua), got "
        .. (type(file) == "string" and ("%q"):format(file) or type(file)), 0)
    end
    for _, seen in ipairs(stack) do   -- one folder: names say which file
      if seen == file then error("include: " .. table.concat(stack, " -> ") .. " -> " .. file .. " is a circle", 0) end
    end
    if #stack > M.MAX_INCLUDE then error(("include: more than %d levels"):format(M.MAX_INCLUDE), 0) end
    local inner_stack = { table.unpack(stack) }
    inner_stack[#inner_stack + 1] = file
    return run(folder .. "/" .. file, inner_stack, state)
  end
  local chunk, lerr = load(text or "", "@" .. path, "t", env)
  if not chunk then error("scenario " .. tostring(lerr), 0) end
  local co = coroutine.create(chunk)
  debug.sethook(co, function() error("ran past " .. M.MAX_INSTRUCTIONS .. " instructions", 0) end,
    "", M.MAX_INSTRUCTIONS)
  local ok, res = coroutine.resume(co)
  if not ok then
    -- an error from an included file already names it
    error(tostring(res):match("^scenario ") and res or ("scenario %s: %s"):format(path, tostring(res)), 0)
  end
  if coroutine.status(co) ~= "dead" then error(("scenario %s: yielded instead of returning"):format(path), 0) end
  return res
end

--- Load a scenario file. Returns the checked scenario, or nil and a message.
function M.load(path)
  local rok, res = pcall(run, path, { file_of(path) }, { files = 0 })
  if not rok then return nil, tostring(res) end
  local cok, sc = pcall(M.check, res, path, folder_of(path))
  if not cok then
    if type(sc) == "table" then return nil, sc.message end
    return nil, tostring(sc)
  end
  return sc
end

local function draw(r, spec)
  if spec[1] == spec[2] then return spec[1] end
  return math.floor(r:uniform(spec[1], spec[2]))
end

--- The plan of one run: every peer with its role, group, policy, rates, join time and the
-- seed of its math.random. It depends on the scenario and `seed` only, never on the mix's
-- policies, so every mix of one seed gets the same schedule and the same rate draws.
function M.plan(sc, mix, seed)
  local r = rng.new(seed)
  local peers = {}
  for i = 1, sc.seeds.count do
    peers[#peers + 1] = { id = "seed" .. i, role = "seed", group = "seeds", policy = sc.seeds.policy,
                          up = draw(r, sc.seeds.up), down = 0, join = 0, leave = sc.seeds.leave,
                          latency = sc.network.latency, loss = sc.network.loss, rand = r:derive(#peers + 1) }
  end
  for _, g in ipairs(sc.groups) do
    local at = g.join.at or g.join.from
    for i = 1, g.count do
      local j
      if g.join.at then j = at
      elseif g.join.spread then j = g.join.from + r:uniform(0, g.join.spread)
      else at = at + r:exp(g.join.poisson); j = at end
      peers[#peers + 1] = { id = ("%s%d"):format(g.name, i), role = "leecher", group = g.name,
                            policy = mix.policies[g.name] or g.policy,
                            up = draw(r, g.up), down = draw(r, g.down), join = j, stay = g.stay,
                            latency = g.network.latency, loss = g.network.loss, rand = r:derive(#peers + 1) }
    end
  end
  -- leechers start in join order (a stable sort: ties keep the scenario's order)
  local leechers = {}
  for _, p in ipairs(peers) do if p.role == "leecher" then leechers[#leechers + 1] = p end end
  for i, p in ipairs(leechers) do p.order = i end
  table.sort(leechers, function(a, b) if a.join ~= b.join then return a.join < b.join end return a.order < b.order end)
  return { seed = seed, mix = mix.name, seeds = { table.unpack(peers, 1, sc.seeds.count) }, leechers = leechers }
end

return M
