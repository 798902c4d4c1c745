--- bt.policy: loading policies and completing them from bt.policy.default.
--
-- A policy is a table of optional hooks (tick, pick, endgame, timeout, on_piece,
-- queue_depth); whatever it leaves out comes from bt.policy.default.
--
--   local policy = require "bt.policy"
--   local p = policy.load("examples/sequential.lua")   -- a file: loaded as text, own _ENV
--   local p = policy.load({ pick = function(t, peer, slots) ... end })
--   local p = policy.load("bt.policy.default")          -- a module name
local M = {}

M.HOOKS = { "tick", "pick", "endgame", "timeout", "on_piece", "queue_depth", "choke" }

local function is_hook(k)
  for _, h in ipairs(M.HOOKS) do if h == k then return true end end
  return false
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

--- Check a policy table's hooks: each present hook must be a function.
function M.check(p, where)
  for k, v in pairs(p) do
    if type(k) == "string" and is_hook(k) and type(v) ~= "function" then
      error(("policy %s: hook '%s' must be a function, got %s"):format(where or "?", k, type(v)), 0)
    end
  end
  return p
end

--- Complete a policy: a new table with the default's hooks, then the policy's.
-- The policy's own table stays untouched (it may be shared by several torrents).
function M.complete(p)
  local default = require "bt.policy.default"
  local out = {}
  for k, v in pairs(default) do out[k] = v end
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
  return M.complete(M.check(p, where))
end

setmetatable(M, { __index = function(_, k)
  if k == "default" then return require "bt.policy.default" end
end })

return M
