--- The reference build for before/after benchmarks: "the code before this change",
-- exported from git and built beside the checkout, so one bench run measures the old
-- code and the new code through the same harness.
--
--   local R = dofile(here .. "/reflib.lua")
--   local ref = R.build()            -- env BT_BENCH_REF, else R.DEFAULT_REV
--   local cur = R.current()          -- this checkout
--   os.execute(R.env(ref) .. " lua5.4 bench/picker_driver.lua ...")   -- runs the old code
--
-- R.build(rev) exports `rev` with `git archive` into build/ref/<sha>/src (once: a tree
-- that already holds build/bt/core.so is reused), runs `make -C <src> build/bt/core.so`
-- there, and returns { rev = <sha>, root = <src>, lua_path = ..., cpath = ...,
-- btlua = <src>/scripts/bt-lua }. R.current() returns the same for this checkout.
-- R.env(x) is the `LUA_PATH_5_4=... LUA_CPATH_5_4=...` prefix for a shell command.
local R = {}

-- The last commit before the re-cut of csrc/ and of the policy API.
R.DEFAULT_REV = "f84498d8038f4b3193fa36e0ac9a35756db1e95a"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
R.q = q

local function sh(cmd)
  local p = io.popen("env -u LD_PRELOAD sh -c " .. q(cmd) .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- The checkout this file sits in (bench/..), as an absolute path.
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
function R.root()
  local out, ok = sh("cd " .. q(here .. "/..") .. " && pwd -P")
  assert(ok, out)
  return (out:gsub("%s+$", ""))
end

local function paths(root)
  return {
    root = root,
    lua_path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;;",
    cpath = root .. "/build/?.so;;",
    btlua = root .. "/scripts/bt-lua",
  }
end

--- This checkout (the new code): its lua/ and build/ (run `make` first).
function R.current()
  local root = R.root()
  local x = paths(root)
  local rev = sh("git -C " .. q(root) .. " rev-parse --short HEAD"):gsub("%s+$", "")
  local dirty = sh("git -C " .. q(root) .. " status --porcelain -- csrc lua scripts Makefile")
  x.rev = rev .. (dirty:find("%S") and "+dirty" or "")
  x.label = "new " .. x.rev
  assert(exists(root .. "/build/bt/core.so"), root .. "/build/bt/core.so is missing: run make")
  return x
end

--- The reference tree for `rev` (default: env BT_BENCH_REF, else R.DEFAULT_REV), built once.
function R.build(rev)
  rev = rev or os.getenv("BT_BENCH_REF") or R.DEFAULT_REV
  local root = R.root()
  local sha, ok = sh("git -C " .. q(root) .. " rev-parse --verify " .. q(rev .. "^{commit}"))
  sha = sha:gsub("%s+$", "")
  if not ok or not sha:match("^%x+$") then error("reflib: no such revision " .. rev .. ": " .. sha) end
  local base = root .. "/build/ref/" .. sha
  local src = base .. "/src"
  if not exists(src .. "/build/bt/core.so") then
    -- export and build in a scratch folder, then move it in place: an interrupted
    -- build never leaves a tree that looks finished
    local tmp = base .. "/src.tmp." .. tostring(math.random(1, 1e9))
    io.stderr:write(("reflib: building %s in %s\n"):format(sha:sub(1, 12), src))
    local out, okx = sh(("mkdir -p %s && git -C %s archive %s | tar -x -C %s"):format(
      q(tmp), q(root), q(sha), q(tmp)))
    if not okx then error("reflib: git archive failed: " .. out) end
    out, okx = sh(("make -C %s build/bt/core.so"):format(q(tmp)))
    if not okx then error("reflib: make failed in " .. tmp .. ":\n" .. out) end
    out, okx = sh(("rm -rf %s && mv %s %s"):format(q(src), q(tmp), q(src)))
    if not okx then error("reflib: " .. out) end
  end
  local x = paths(src)
  x.rev = sha:sub(1, 7)
  x.label = "old " .. x.rev
  return x
end

--- Shell prefix that makes a child `lua5.4` load this tree's bt.
function R.env(x)
  return "LUA_PATH_5_4=" .. q(x.lua_path) .. " LUA_CPATH_5_4=" .. q(x.cpath)
end

return R
