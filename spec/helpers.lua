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
  return ("BT_BIND=127.0.0.1 BT_MAX_PER_IP=0 BT_DHT_BOOTSTRAP= LUA_PATH_5_4=%s LUA_CPATH_5_4=%s"):format(
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

--- A deterministic pseudo-random byte string (xorshift32), so failures reproduce.
function H.bytes(n, seed)
  local x = seed or 1
  local t = {}
  for i = 1, n do
    x = x ~ (x << 13) & 0xffffffff
    x = x ~ (x >> 17)
    x = x ~ (x << 5) & 0xffffffff
    t[i] = string.char(x & 0xff)
  end
  return table.concat(t)
end

--- The .torrent bytes of a torrent over `files` ({path = {...}, data = "...",
-- pad = true for a BEP 47 pad file} each), with `piece_length`. opts.single
-- makes a single-file torrent of files[1]; opts.announce sets the announce URL
-- (default "http://127.0.0.1/announce"). Returns the .torrent bytes and the
-- whole payload stream (the files' data concatenated).
function H.torrent_bytes(name, piece_length, files, opts)
  local bt = require "bt"
  opts = opts or {}
  local stream = {}
  for _, f in ipairs(files) do stream[#stream + 1] = f.data end
  stream = table.concat(stream)
  local pieces = {}
  for off = 1, #stream, piece_length do
    pieces[#pieces + 1] = bt.sha1(stream:sub(off, off + piece_length - 1))
  end
  local info = { name = name, ["piece length"] = piece_length, pieces = table.concat(pieces) }
  if opts.single then
    info.length = #files[1].data
  else
    local list = {}
    for _, f in ipairs(files) do
      local e = { length = #f.data, path = bt.list(f.path) }
      if f.pad then e.attr = "p" end
      list[#list + 1] = e
    end
    info.files = bt.list(list)
  end
  local announce = opts.announce or "http://127.0.0.1/announce"
  return bt.bencode({ announce = announce, info = info }), stream
end

--- Build one of the C tests under spec/ (spec/c_test.h) with ASan+UBSan into
-- `exe` from `sources` (a string of paths and libraries, after the test's own
-- file). Returns the compiler's output and true/false.
function H.build_c_test(exe, sources)
  return H.sh("gcc -g -O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined"
    .. " -Wall -Wextra -Werror -Icsrc -o " .. H.q(exe) .. " " .. sources)
end

--- Run a C test built by H.build_c_test with leak detection on. `args` are
-- shell-quoted here. Returns its output and true/false.
function H.run_c_test(exe, ...)
  local cmd = { "ASAN_OPTIONS=detect_leaks=1", H.q(exe) }
  for _, a in ipairs({ ... }) do cmd[#cmd + 1] = H.q(a) end
  return H.sh(table.concat(cmd, " "))
end

--- Build the seeded C test spec/NAME.c with `sources`, run it once per seed with
-- `rounds`, and assert that every run says "all passed" (the model tests: picker, mem).
function H.seeded_c_test(name, sources, seeds, rounds)
  local dir = H.tmpdir()
  local exe = dir .. "/" .. name
  local out, built = H.build_c_test(exe, "spec/" .. name .. ".c " .. sources)
  assert(built, out)
  for _, seed in ipairs(seeds) do
    local res, ran = H.run_c_test(exe, seed, rounds)
    assert(ran, res)
    assert(res:find("all passed", 1, true), res)
  end
  H.rmtree(dir)
end

--- H.base32(bytes): RFC 4648 base32 without padding (magnet links' 32-character btih).
function H.base32(s)
  local alpha, bits, acc, out = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 0, 0, {}
  for i = 1, #s do
    acc, bits = ((acc << 8) | s:byte(i)) & 0xffff, bits + 8
    while bits >= 5 do
      bits = bits - 5
      local d = (acc >> bits) & 31
      out[#out + 1] = alpha:sub(d + 1, d + 1)
    end
  end
  return table.concat(out)
end

return H
