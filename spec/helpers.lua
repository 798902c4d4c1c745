--- Shared helpers for the specs. Loaded by busted before every spec file (.busted).
-- BT_CPATH (set by `make asan`) puts the sanitizer build of the module first.
package.cpath = (os.getenv("BT_CPATH") or "build/?.so") .. ";" .. package.cpath

local H = {}
package.loaded["spec.helpers"] = H  -- one copy whichever name a spec requires
package.loaded["helpers"] = H

--- Directory of the checkout (specs run from it).
H.root = os.getenv("PWD")

--- Where the C module is: the sanitizer build under `make asan`, else build/.
H.cpath = os.getenv("BT_CPATH") or (H.root .. "/build/?.so")

--- Environment assignments for a child `lua5.4` that must load this checkout's bt.
function H.lua_env()
  return ("LUA_PATH_5_4=%s LUA_CPATH_5_4=%s"):format(
    H.q(H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;;"), H.q(H.cpath .. ";;"))
end

--- A fresh temporary folder, removed by H.rmtree.
function H.tmpdir()
  local p = io.popen("env -u LD_PRELOAD mktemp -d /tmp/bt-spec.XXXXXX")
  local d = p:read("l")
  p:close()
  return d
end

function H.rmtree(d)
  assert(d:match("^/tmp/bt%-spec%.") , "refusing to remove " .. d)
  os.execute("env -u LD_PRELOAD rm -rf '" .. d .. "'")
end

function H.readfile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function H.writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- Shell-quote one argument.
function H.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Run a shell command for foreign programs (mktorrent, transmission-show...):
-- the sanitizer runtime preloaded by `make asan` is for our module only.
-- Returns stdout, and true/false for success.
function H.sh(cmd)
  local p = io.popen("env -u LD_PRELOAD sh -c " .. H.q(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

--- Run a shell command that loads our module (a child lua5.4): unlike H.sh it keeps
-- the sanitizer runtime that `make asan` preloads. Returns output, success.
function H.sh_bt(cmd)
  local p = io.popen("sh -c " .. H.q(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  return out, ok == true
end

--- Run the bt-lua command from the checkout. Returns stdout+stderr, exit code.
function H.btlua(args)
  local p = io.popen("lua5.4 scripts/bt-lua " .. args .. " 2>&1; echo \"__exit=$?\"")
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("__exit=(%d+)%s*$"))
  return out:gsub("__exit=%d+%s*$", ""), code
end

return H
