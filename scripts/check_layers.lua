--- scripts/check_layers.lua: the C core's layer rule, checked (run by `make lint`).
--
-- csrc/ is cut into layers, one folder each, bottom up: core, codec, storage, engine,
-- lua. Inside a layer the files are in a fixed order too (ORDER below). A file may
-- include its own header and the headers of files below it (earlier in its layer, or
-- in a lower layer), never one above it: since a C function can only be called
-- through a declaration, and every declaration lives in its file's header, calls
-- then only go downward and there is no circle of calls or includes. A lower file
-- tells a higher one about events through a callback table the lower file declares
-- (peer.h's bt_peer_cb, torrent.h's bt_torrent_cb, policy.h's bt_policy_ops...).
--
-- Also checked: every file under csrc/ is in ORDER (a new file must take its place),
-- and no .c file declares an `extern` function (a way around the rule).
--   lua5.4 scripts/check_layers.lua [ROOT]      exit 0: clean; 1: findings, listed
local root = arg and arg[1] or "."

local ORDER = {
  { "core", { "buf", "mem", "ranges", "bitset", "ratelimit", "sha1" } },
  { "codec", { "bencode", "wire", "pex", "metainfo", "magnet", "tracker_parse", "udp_tracker", "mse", "krpc" } },
  { "storage", { "storage", "storage_mem" } },
  { "engine", { "tracker", "dht", "picker", "throttle", "worker", "peer", "metadata", "exchange", "torrent", "policy",
                "session" } },
  { "lua", { "lutil", "l_bencode", "l_ranges", "l_wire", "l_meta", "l_fs", "l_ratelimit", "l_storage",
             "l_tracker", "l_peer", "l_torrent", "l_policy", "l_session", "l_dht", "lbt" } },
}

local rank, layer_of = {}, {}
local n = 0
for li, layer in ipairs(ORDER) do
  for _, name in ipairs(layer[2]) do
    n = n + 1
    rank[layer[1] .. "/" .. name] = n
    layer_of[layer[1] .. "/" .. name] = li
  end
end

local findings = {}
local function finding(fmt, ...) findings[#findings + 1] = fmt:format(...) end

local function files()
  local out = {}
  local p = assert(io.popen("cd '" .. root .. "' && find csrc -name '*.[ch]' | sort"))
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  return out
end

local checked = 0
for _, path in ipairs(files()) do
  local rel = path:match("^csrc/(.+)%.[ch]$")
  local own = rank[rel]
  if not own then
    finding("%s: not in the layer order (scripts/check_layers.lua ORDER): give it its place", path)
  else
    checked = checked + 1
    local f = assert(io.open(root .. "/" .. path, "r"))
    local lineno = 0
    for line in f:lines() do
      lineno = lineno + 1
      local inc = line:match('^%s*#%s*include%s+"([^"]+)"')
      if inc then
        local target = inc:match("^(.+)%.h$")
        local r = target and rank[target]
        if not r then
          finding('%s:%d: includes "%s", which is not a header of the layer order', path, lineno, inc)
        elseif r > own then
          local a, b = ORDER[layer_of[rel]][1], ORDER[layer_of[target]][1]
          finding("%s:%d: includes %s, which is above it (%s)", path, lineno, inc,
            a == b and ("later in the " .. a .. " layer") or ("the " .. b .. " layer is above " .. a))
        end
      end
      if path:match("%.c$") and line:match("^%s*extern%s+[%w_%s%*]+%(") then
        finding("%s:%d: declares an extern function: include the header that declares it", path, lineno)
      end
    end
    f:close()
  end
end

if #findings > 0 then
  for _, m in ipairs(findings) do io.stderr:write(m, "\n") end
  io.stderr:write(("layers: %d finding(s) in %d files\n"):format(#findings, checked))
  os.exit(1)
end
print(("layers: %d files, every include goes to its own layer's lower files or a lower layer"):format(checked))
