--- The bt-lua command line. Each command lives in lua/bt/cmd/NAME.lua and exports
-- `setup(cmd)` (declare its arguments on an argparse command) and `run(args)`,
-- which returns an exit code or raises an error message for stderr.
local argparse = require "argparse"

local COMMANDS = {
  { "info",   "Show what a .torrent file holds." },
  { "create", "Make a .torrent file from a file or a folder." },
  { "run",    "Download a torrent with a Lua policy." },
  { "seed",   "Verify a torrent's data and seed it." },
  { "dht",    "Run a DHT node for a while and print its routing table's size and health." },
  { "lab",    "Compare policies on a reproducible local swarm (docs/lab.md)." },
}

local M = {}

--- Human size with binary units and `decimals` digits (default 1): "1.5 MiB", "512 B".
function M.human(n, decimals)
  local units = { "B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" }
  local i, v = 1, n
  while v >= 1024 and i < #units do v, i = v / 1024, i + 1 end
  if i == 1 then return string.format("%d B", math.floor(n)) end   -- rates may be fractional
  return string.format("%." .. (decimals or 1) .. "f %s", v, units[i])
end

--- The version of bt-lua and of what it runs with, one per line.
function M.version_text()
  local v = require("bt.core").versions()
  return ("bt-lua %s\n%s\nlibev %s\nlibcurl %s\n%s\n"):format(v.bt, v.lua, v.libev, v.libcurl, v.openssl)
end

function M.main(argv)
  local parser = argparse("bt-lua", "A BitTorrent client whose strategy is a Lua script.")
    :command_target("command")
  parser:epilog("Run 'bt-lua COMMAND --help' for a command's options.")
  parser:flag("--version", "Print the versions of bt-lua, Lua, libev, libcurl and OpenSSL, and exit.")
    :action(function()
      io.stdout:write(M.version_text())
      os.exit(0)
    end)
  local mods = {}
  for _, c in ipairs(COMMANDS) do
    local ok, mod = pcall(require, "bt.cmd." .. c[1])
    if ok then
      mods[c[1]] = mod
      mod.setup(parser:command(c[1], c[2]))
    elseif not tostring(mod):find("module 'bt.cmd." .. c[1] .. "' not found", 1, true) then
      error(mod, 0)
    end
  end
  local args = parser:parse(argv)
  local ok, res = xpcall(mods[args.command].run, function(e)
    if type(e) == "table" and e.exit then return e end
    return e
  end, args)
  if ok then return res or 0 end
  if type(res) == "table" then
    if res.message then io.stderr:write("bt-lua: ", res.message, "\n") end
    return res.exit
  end
  io.stderr:write("bt-lua: ", tostring(res), "\n")
  return 1
end

--- Exit codes, the same for every command (docs/api.md "Command line").
M.EXIT_ERROR, M.EXIT_TORRENT, M.EXIT_POLICY, M.EXIT_NOPEERS, M.EXIT_INCOMPLETE, M.EXIT_STALLED = 1, 2, 3, 4, 5, 6

--- Raise a clean failure from a command: message to stderr, exit code `code` (default 1).
function M.fail(message, code)
  error({ message = message, exit = code or 1 }, 0)
end

return M
