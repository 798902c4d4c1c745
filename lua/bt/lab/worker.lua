--- bt.lab.worker: one peer of a lab run, in a process of its own (bt.lab.runner starts
-- it): a real bt.session on 127.0.0.1 with the torrent in memory, its rate limits, its
-- policy and its math.random seed. It writes what it does to an events file, one JSON
-- object a line, each with `t`, the wall clock (socket.gettime, shared by every process):
--
--   {"e":"up"}                         listening (a seed: once its data is verified)
--   {"e":"piece","i":17}               a piece verified (leechers)
--   {"e":"done"}                       every piece verified
--   {"e":"stat", "down":..., "up":..., "dup":..., "cancels":..., "from_seeds":..., "have":...}
--                                      every STAT_EVERY seconds and once more when leaving
--   {"e":"leave","why":"done"|"copies"|"after"|"limit"|"SIGTERM"|"error","error":...}
--
-- Run as: BT_LAB_CONFIG=peer.json lua5.4 -e 'os.exit(require("bt.lab.worker").main(os.getenv("BT_LAB_CONFIG")))'
-- with the config a JSON object written by the runner (fields in run_peer below).
local cjson = require "cjson"
local socket = require "socket"
local session = require "bt.session"

local M = {}

-- Counters are written this often (s); the runner samples every second.
M.STAT_EVERY = 0.5

local function readfile(path)
  local f, err = io.open(path, "rb")
  if not f then error("bt.lab.worker: " .. tostring(err), 0) end
  local s = f:read("a")
  f:close()
  return s
end

--- cfg: role ("seed"|"leecher"), torrent (path), data (a seed's folder), policy (path or nil),
-- port, peers ({"127.0.0.1:P", ...} to dial), seeds (the seeds' addresses), up, down (bytes/s),
-- rand (math.randomseed, the loss draws' seed), delay (s), loss, max_peers, leave ({after=}|{copies=},
-- seeds), stay (s of seeding after completion, or true), deadline (wall clock), events (the file to write).
local function run_peer(cfg)
  math.randomseed(math.tointeger(cfg.rand) or 0)
  local out = assert(io.open(cfg.events, "w"))
  local function emit(rec)
    rec.t = socket.gettime()
    out:write(cjson.encode(rec), "\n")
    out:flush()
  end
  -- the lab's network: everything this peer sends is held `delay` s (its one-way latency),
  -- a lost segment costs a retransmission timeout; the loss draws from the peer's seed, and
  -- so does the peer id (where the engine's tie-breaks between pieces start)
  local rand = (math.tointeger(cfg.rand) or 0) & 0xFFFFFFFFFFFFF
  local s = session{ port = math.tointeger(cfg.port), bind = "127.0.0.1", max_peers = math.tointeger(cfg.max_peers),
                     max_per_ip = 0, signals = true, delay = tonumber(cfg.delay) or 0, loss = tonumber(cfg.loss) or 0,
                     loss_seed = rand, peer_id = ("-BL0100-%012x"):format(rand & 0xFFFFFFFFFFFF) }
  local seed = cfg.role == "seed"
  local add = { storage = "memory", trackers = false, seed = seed or cfg.stay == true or (cfg.stay or 0) > 0,
                peers = cfg.peers, max_up = math.tointeger(cfg.up), max_down = math.tointeger(cfg.down),
                policy = cfg.policy ~= cjson.null and cfg.policy or nil }
  if seed then add.load = cfg.data end
  local t = s:add(cfg.torrent, add)
  local total = t:stats().total_bytes
  if seed then
    -- the data is verified in the background: a seed is up once it has all of it
    s:run(function() return t.complete or t.stopped or os.time() > cfg.deadline end)
    if not t.complete then
      emit{ e = "leave", why = "error", error = t.error or "the seed's data did not verify" }
      s:close()
      return 1
    end
  end
  emit{ e = "up" }
  local is_seed = {}
  for _, a in ipairs(cfg.seeds or {}) do is_seed[a] = true end
  -- seed address -> bytes it sent us: the peer's own counter, read each tick and before each
  -- stat line (what a seed sends in the tick in which it disconnects is not counted)
  local from_seed = {}
  local done_at, why
  local start = socket.gettime()
  local function read_seeds()
    for _, p in ipairs(t:peers()) do
      if is_seed[p.address] then from_seed[p.address] = p.downloaded end
    end
  end
  local function stat()
    read_seeds()
    local st = t:stats()
    local fs = 0
    for _, b in pairs(from_seed) do fs = fs + b end
    emit{ e = "stat", down = st.downloaded, up = st.uploaded, dup = st.dup_bytes, cancels = st.cancels,
          have = st.have_bytes, from_seeds = fs, peers = st.peers }
  end
  s:on("piece", function(_, i, ok)
    if ok and not seed then emit{ e = "piece", i = i } end
  end)
  s:on("complete", function()
    if not seed and not done_at then done_at = socket.gettime(); emit{ e = "done" } end
  end)
  local last_stat = -math.huge
  s:on("tick", function()
    read_seeds()
    local now = socket.gettime()
    if now - last_stat >= M.STAT_EVERY then last_stat = now; stat() end
  end)
  local leave = cfg.leave ~= cjson.null and cfg.leave or nil
  s:run(function()
    local now = socket.gettime()
    if t.stopped then why = "error"
    elseif now >= cfg.deadline then why = "limit"
    elseif seed and leave and leave.copies and t:stats().uploaded >= leave.copies * total then why = "copies"
    elseif seed and leave and leave.after and now - start >= leave.after then why = "after"
    elseif done_at and cfg.stay ~= true and now - done_at >= (cfg.stay or 0) then why = "done"
    end
    return why ~= nil
  end)
  why = why or s:signal() or "stopped"
  stat()
  emit{ e = "leave", why = why, error = t.error }
  s:close()
  out:close()
  return 0
end

function M.main(config_path)
  local ok, res = pcall(function() return run_peer(cjson.decode(readfile(config_path))) end)
  if not ok then
    io.stderr:write("bt.lab.worker: ", tostring(res), "\n")
    return 1
  end
  return res
end

return M
