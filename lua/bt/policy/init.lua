--- bt.policy: loading policies, checking them and completing them from bt.policy.default.
--
-- A policy is a table of optional hooks (tick, pick, endgame, timeout, on_piece,
-- queue_depth, choke) and three optional fields (name, upload_slots, choke_interval); whatever it
-- leaves out comes from bt.policy.default. Keys starting with "_" are the policy's
-- own (helpers, constants). Anything else is a mistake and an error at load, with
-- the nearest name suggested: a misspelled hook must not silently run the default.
--
--   local policy = require "bt.policy"
--   local p = policy.load("examples/sequential.lua")   -- a file: loaded as text, own _ENV
--   local p = policy.load({ pick = function(t, peer, slots) ... end })
--   local p = policy.load("bt.policy.default")          -- a module name
local M = {}

M.HOOKS = { "tick", "pick", "endgame", "timeout", "on_piece", "queue_depth", "choke" }
--- Non-hook fields a policy may set, and the type each must have.
M.FIELDS = { name = "string", upload_slots = "integer", choke_interval = "number" }
--- choke_interval: seconds between choke rounds, within these bounds (the engine checks them too).
M.CHOKE_INTERVAL_MIN, M.CHOKE_INTERVAL_MAX = 1, 600

local IS_HOOK = {}
for _, h in ipairs(M.HOOKS) do IS_HOOK[h] = true end

--- Edit distance (insertions, deletions, substitutions, adjacent swaps), for suggestions.
local function distance(a, b)
  local la, lb = #a, #b
  local d = {}
  for i = 0, la do d[i] = { [0] = i } end
  for j = 0, lb do d[0][j] = j end
  for i = 1, la do
    for j = 1, lb do
      local cost = a:byte(i) == b:byte(j) and 0 or 1
      local v = math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if i > 1 and j > 1 and a:byte(i) == b:byte(j - 1) and a:byte(i - 1) == b:byte(j) then
        v = math.min(v, d[i - 2][j - 2] + 1)
      end
      d[i][j] = v
    end
  end
  return d[la][lb]
end

--- The known name nearest to `key` (hooks first), or nil when none is close.
function M.suggest(key, names)
  names = names or M.HOOKS
  local best, bestd
  for _, n in ipairs(names) do
    local dd = distance(key:lower(), n:lower())
    if not bestd or dd < bestd then best, bestd = n, dd end
  end
  if bestd and bestd <= math.max(1, #key // 3) then return best end
end

--- A fresh environment for one policy: reads fall through to the standard
-- globals, writes stay in the policy's own table (no policy pollutes _G).
function M.env()
  return setmetatable({}, { __index = _G })
end

--- Load a policy file from text into its own _ENV. Returns the table it returns.
-- Raises "policy PATH: message" when it does not load, run or return a table.
function M.loadfile(path)
  local f, err = io.open(path, "rb")
  if not f then error("policy " .. path .. ": " .. tostring(err), 0) end
  local src = f:read("a")
  f:close()
  local chunk, lerr = load(src, "@" .. path, "t", M.env())
  if not chunk then error("policy " .. path .. ": " .. lerr, 0) end
  local ok, res = xpcall(chunk, debug.traceback)
  if not ok then error("policy " .. path .. ": " .. tostring(res), 0) end
  if type(res) ~= "table" then
    error("policy " .. path .. ": must return a table of hooks, got " .. type(res), 0)
  end
  return res
end

local function field_type(v)
  return math.type(v) == "integer" and "integer" or type(v)
end

--- Check a policy table: every key a hook (a function), a known field of the right
-- type, or a private "_" key. Raises naming the first mistake.
function M.check(p, where)
  where = where or "?"
  local all = {}
  for _, h in ipairs(M.HOOKS) do all[#all + 1] = h end
  for k in pairs(M.FIELDS) do all[#all + 1] = k end
  table.sort(all)
  local keys = {}
  for k in pairs(p) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  for _, k in ipairs(keys) do
    local v = p[k]
    if type(k) ~= "string" then
      error(("policy %s: key %s is not a name (a policy is a table of named hooks)"):format(where, tostring(k)), 0)
    elseif IS_HOOK[k] then
      if type(v) ~= "function" then
        error(("policy %s: hook '%s' must be a function, got %s"):format(where, k, type(v)), 0)
      end
    elseif M.FIELDS[k] then
      local ft = field_type(v)
      if ft ~= M.FIELDS[k] and not (M.FIELDS[k] == "number" and ft == "integer") then
        error(("policy %s: field '%s' must be %s %s, got %s"):format(where, k,
          M.FIELDS[k] == "integer" and "an" or "a", M.FIELDS[k], field_type(v)), 0)
      end
      if k == "upload_slots" and v < 0 then
        error(("policy %s: field 'upload_slots' must be >= 0, got %d"):format(where, v), 0)
      end
      if k == "choke_interval" and not (v >= M.CHOKE_INTERVAL_MIN and v <= M.CHOKE_INTERVAL_MAX) then
        error(("policy %s: field 'choke_interval' must be from %d to %d seconds, got %s"):format(where,
          M.CHOKE_INTERVAL_MIN, M.CHOKE_INTERVAL_MAX, tostring(v)), 0)
      end
    elseif k:sub(1, 1) ~= "_" then
      local near = M.suggest(k, all)
      local what = type(v) == "function" and "hook" or "field"
      error(("policy %s: unknown %s '%s'%s (hooks: %s; fields: name, upload_slots, choke_interval; "
        .. "keys starting with _ are yours)"):format(where, what, k,
        near and (" (did you mean '" .. near .. "'?)") or "", table.concat(M.HOOKS, ", ")), 0)
    end
  end
  return p
end

--- Complete a policy: a new table with the default's hooks and fields, then the
-- policy's. The policy's own table stays untouched (it may be shared by torrents).
function M.complete(p)
  local default = require "bt.policy.default"
  local out = {}
  for _, h in ipairs(M.HOOKS) do out[h] = default[h] end
  out.name, out.upload_slots, out.choke_interval = default.name, default.upload_slots, default.choke_interval
  for k, v in pairs(p) do out[k] = v end
  return out
end

--- spec: a table, a path to a .lua file, or a module name ("bt.policy.default").
function M.load(spec)
  local p, where
  if spec == nil then
    p, where = {}, "default"
  elseif type(spec) == "table" then
    p, where = spec, spec.name or "table"
  elseif type(spec) == "string" then
    if spec:match("%.lua$") or spec:find("/", 1, true) then
      p, where = M.loadfile(spec), spec
    else
      local ok, mod = pcall(require, spec)
      if not ok then error("policy " .. spec .. ": " .. tostring(mod), 0) end
      if type(mod) ~= "table" then error("policy " .. spec .. ": module is not a table", 0) end
      p, where = mod, spec
    end
  else
    error("policy must be a table, a file path or a module name, got " .. type(spec), 0)
  end
  local out = M.complete(M.check(p, where))
  if out.name == "default" and where ~= "default" and p.name == nil then out.name = where end
  return out
end

setmetatable(M, { __index = function(_, k)
  if k == "default" then return require "bt.policy.default" end
end })

return M
