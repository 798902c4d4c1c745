--- bt.policy.fake against the engine: one seeded scenario, fed to both, must give the
-- same decisions (docs/policy.md, "Testing a policy without a network").
--
-- Engine side: a torrent built in memory (no block is ever sent, so the piece hashes
-- are random) on memory storage in a real session, and N peers over loopback from a
-- helper process (spec/peers/scripted.lua): handshake, the scenario's bitfield,
-- unchoke, then they only read. The policy's own pick does nothing; its tick hook
-- waits until every peer is connected and unchoking us, then runs the scenario's
-- script of calls (default picks, hand-written mini policies, cancels, errors) and
-- records each call. The harness is deterministic: queue_depth returns the scenario's
-- depth, endgame the scripted value, timeout "keep", choke nobody; the only things
-- that happen between two ticks of the script are the ones it waits for (a peer the
-- helper closed has left, the endgame answer took effect).
--
-- Fake side: bt.policy.fake with the same geometry, the engine's t.tie_start (the
-- documented tie-break), the same peers (have sets, addresses, queue depth) and the
-- same script. math.random is seeded the same way before every call on both sides.
--
-- Each call's record (free slots before, what it returned or raised, the requests it
-- added and removed, the torrent's counters, availability of every piece, every
-- peer's requests in order) must be the same; the first difference fails the spec.
local bt = require "bt"
local socket = require "socket"
local H = require "helpers"
local S = require "swarm_helpers"
local session = require "bt.session"
local fake = require "bt.policy.fake"
local default = require "bt.policy.default"

local LIMIT = 15          -- seconds an engine run may take before the spec gives up
local HELPER_LIFETIME = 30

-- ---------------------------------------------------------------------------
-- Scenarios: everything random comes from the seed through this generator.

local function rng(seed)
  local x = (seed * 2654435761) % 4294967296
  if x == 0 then x = 1 end
  return function(a, b)
    x = x ~ ((x << 13) & 0xffffffff)
    x = x ~ (x >> 17)
    x = x ~ ((x << 5) & 0xffffffff)
    return a + x % (b - a + 1)
  end
end

local function hex(s)
  return (s:gsub(".", function(c) return ("%02x"):format(c:byte()) end))
end

--- A peer's pieces: "seed" (all), "half", "dense" (4/5), "sparse" (a few runs), "rare" (a few pieces).
local function make_have(r, kind, n)
  local set = {}
  if kind == "seed" then
    for i = 0, n - 1 do set[i] = true end
  elseif kind == "half" or kind == "dense" then
    local p = kind == "half" and 50 or 80
    for i = 0, n - 1 do if r(1, 100) <= p then set[i] = true end end
  elseif kind == "sparse" then
    for _ = 1, r(1, 4) do
      local from = r(0, n - 1)
      for i = from, math.min(n - 1, from + r(2, 12)) do set[i] = true end
    end
  else
    for _ = 1, r(3, 6) do set[r(0, n - 1)] = true end
  end
  if kind ~= "seed" then
    set[r(0, n - 1)] = true        -- never empty
    local full = true
    for i = 0, n - 1 do if not set[i] then full = false end end
    if full then set[r(0, n - 1)] = nil end   -- only "seed" is a seed
  end
  local list = {}
  for i = 0, n - 1 do if set[i] then list[#list + 1] = i end end
  return set, list
end

--- The scenario of `seed`: geometry, peers, and the script built by build(sc, r).
local function scenario(o)
  local r = rng(o.seed)
  local sc = { seed = o.seed, name = o.name, pieces = o.pieces, piece_length = o.piece_length,
               depth = o.depth, peers = {}, index_of_id = {} }
  sc.total = (o.pieces - 1) * o.piece_length + r(1, o.piece_length)
  local info = { name = "fake-engine-" .. o.seed, ["piece length"] = o.piece_length, length = sc.total,
                 pieces = H.bytes(20 * o.pieces, o.seed) }
  sc.torrent = bt.bencode{ announce = "http://127.0.0.1:1/announce", info = info }
  for k, kind in ipairs(o.kinds) do
    local set, list = make_have(r, kind, o.pieces)
    local id = ("-FE%04d-%012d"):format(o.seed % 10000, k)
    local bits = bt.bitfield(o.pieces)
    for _, i in ipairs(list) do bits:set(i) end
    sc.peers[k] = { kind = kind, set = set, list = list, id = id, bits = bits:to_wire() }
    sc.index_of_id[id] = k
  end
  sc.steps = {}
  o.build(sc, r)
  return sc
end

local function step(sc, s) sc.steps[#sc.steps + 1] = s end

--- A piece peer k lacks (nil for a seed), and one it has.
local function lacks(sc, k)
  for i = 0, sc.pieces - 1 do if not sc.peers[k].set[i] then return i end end
end
local function one_of(sc, k, r)
  local list = sc.peers[k].list
  return list[r(1, #list)]
end

--- Some {piece, block} of pieces peer k has (blocks past a piece's end wrap around).
local function blocks_of(sc, k, r, count)
  local out = {}
  for j = 1, count do out[j] = { one_of(sc, k, r), r(0, 3) } end
  return out
end

-- The calls a script may make, each a step { op =, peer =, ... }. The same code runs
-- on both sides, with the engine's handles or the fake's.
local OPS = {}
local RARE = default.with{ RANDOM_FIRST = 0 }   -- the default, rarest first from the start

local function clean(e)   -- an error without the file:line it was raised at
  return (tostring(e):gsub("^[^\n]-:%d+: ", ""))
end

local function try(out, f)
  local ok, e = pcall(f)
  out[#out + 1] = ok and ("no error: " .. tostring(e)) or clean(e)
end

-- the default policy: we have fewer than RANDOM_FIRST pieces, so random first (math.random)
function OPS.default(t, peer) return default.pick(t, peer, peer.slots) end
function OPS.rarest_first(t, peer) return RARE.pick(t, peer, peer.slots) end

local function iter_loop(t, peer, s, iter)
  local n, given = 0, {}
  for piece in iter(t, peer, s.n) do
    given[#given + 1] = piece
    n = n + peer:request_blocks(piece, math.min(s.max, peer.slots))
  end
  return n .. " of " .. table.concat(given, ",")
end
-- rarest only, a few blocks per piece
function OPS.rarest_loop(t, peer, s) return iter_loop(t, peer, s, t.rarest) end
-- common only
function OPS.common_loop(t, peer, s) return iter_loop(t, peer, s, t.common) end
function OPS.common_fill(t, peer, s) return peer:fill(t:common(peer), s.max) end
-- the pieces in progress, a few blocks each
function OPS.partial_loop(t, peer, s) return iter_loop(t, peer, s, t.partial) end

-- partial, then a window of wanted pieces from the first we lack after s.from
function OPS.window(t, peer, s)
  local n = peer:fill(t:partial(peer))
  local head = t:next_missing(s.from)
  local given = {}
  if head then
    for piece in t:wanted(peer, head, head + s.width) do
      given[#given + 1] = piece
      n = n + peer:request_blocks(piece)
    end
  end
  return n .. " of " .. table.concat(given, ",")
end

-- duplicate_blocks over a window of pieces
function OPS.dup(t, peer, s)
  local n = 0
  for i = s.from, math.min(s.to, t.pieces) - 1 do
    if peer.slots == 0 then break end
    if peer:has(i) and not t:has(i) then n = n + peer:duplicate_blocks(i, math.min(s.max, peer.slots)) end
  end
  return n
end

-- single blocks
function OPS.request(t, peer, s)
  local out = {}
  for _, pb in ipairs(s.list) do
    if peer.slots == 0 then break end
    out[#out + 1] = tostring(peer:request(pb[1], pb[2] % t:blocks(pb[1])))
  end
  return table.concat(out, " ")
end

-- cancel every s.every-th request, then the oldest one twice (the second is false)
function OPS.cancel_some(_, peer, s)
  local out = {}
  for k, r in ipairs(peer:requests()) do
    if k % s.every == 0 then out[#out + 1] = tostring(peer:cancel(r.piece, r.block)) end
  end
  local first = peer:requests()[1]
  if first then
    out[#out + 1] = tostring(peer:cancel(first.piece, first.block))
    out[#out + 1] = tostring(peer:cancel(first.piece, first.block))
  end
  return table.concat(out, " ")
end

-- cancel every block of the piece of the oldest request
function OPS.cancel_piece(t, peer)
  local first = peer:requests()[1]
  if not first then return "none" end
  local out = { first.piece }
  for b = 0, t:blocks(first.piece) - 1 do out[#out + 1] = tostring(peer:cancel(first.piece, b)) end
  return table.concat(out, " ")
end

function OPS.cancel_all(_, peer) return peer:cancel_all() end

-- cancel the oldest request and ask the same peer for it again
function OPS.rerequest(_, peer)
  local first = peer:requests()[1]
  if not first then return "none" end
  return tostring(peer:cancel(first.piece, first.block)) .. " " .. tostring(peer:request(first.piece, first.block))
end

-- mistakes: each raises, with the same message on both sides
function OPS.errors(t, peer, s)
  local out = {}
  try(out, function() return peer:request_blocks(t.pieces) end)
  try(out, function() return peer:request_blocks(s.has, peer.slots + 1) end)
  if s.lacks then try(out, function() return peer:request_blocks(s.lacks, 0) end) end
  try(out, function() return peer:request(s.has, t:blocks(s.has)) end)
  try(out, function() return peer:request_blocks(s.has, -1) end)
  try(out, function() return peer:cancel(s.has, -1) end)
  try(out, function() return t:rarest(peer, -1) end)
  return table.concat(out, " | ")
end

-- the peer has left: its handle raises, its address stays readable
function OPS.stale(t, peer)
  local out = { tostring(peer.alive), peer.address }
  try(out, function() return peer.slots end)
  try(out, function() return peer:request_blocks(0) end)
  try(out, function() return peer:cancel_all() end)
  try(out, function() return t:rarest(peer) end)
  return table.concat(out, " | ")
end

-- the policy disconnects it (synchronously, on both sides)
function OPS.drop(_, peer) return peer:disconnect() end

-- ---------------------------------------------------------------------------
-- Recording one call: the same on both sides.

local function req_keys(list)
  local out = {}
  for _, r in ipairs(list) do out[#out + 1] = r.piece .. ":" .. r.block end
  return out
end

local function requests_of(peer)
  local ok, list = pcall(function() return peer:requests() end)
  return ok and req_keys(list) or nil
end

local function record(ctx, s)
  local t, peers = ctx.t, ctx.peers
  local peer = peers[s.peer]
  local n = #ctx.rec + 1
  local r = { call = n, what = ("%s by peer %d (%s)"):format(s.op, s.peer, peer.address) }
  local ok, slots = pcall(function() return peer.slots end)
  r.slots = ok and tostring(slots) or ("raises " .. clean(slots))
  local before = requests_of(peer) or {}
  math.randomseed(ctx.seed, n)
  local okc, ret = pcall(OPS[s.op], t, peer, s)
  r.result = okc and tostring(ret) or ("raises " .. clean(ret))
  local after = requests_of(peer) or {}
  local was, is = {}, {}
  for _, k in ipairs(before) do was[k] = true end
  for _, k in ipairs(after) do is[k] = true end
  local added, removed = {}, {}
  for _, k in ipairs(after) do if not was[k] then added[#added + 1] = k end end
  for _, k in ipairs(before) do if not is[k] then removed[#removed + 1] = k end end
  r.added, r.removed = table.concat(added, " "), table.concat(removed, " ")
  r.nadded = #added
  local stats = t:stats()
  r.counters = ("unrequested=%d partials=%d missing=%d npeers=%d #peers()=%d stats.peers=%d inflight=%d endgame=%s")
    :format(t.unrequested, t.partials, t.missing, t.npeers, #t:peers(), stats.peers, stats.inflight,
            tostring(t.endgame))
  local av = {}
  for i = 0, t.pieces - 1 do av[#av + 1] = t:availability(i) end
  r.availability = table.concat(av, ",")
  local alive, queues = {}, {}
  for k, p in ipairs(peers) do
    if p.alive then
      alive[#alive + 1] = k
      queues[#queues + 1] = k .. "=[" .. table.concat(requests_of(p) or { "raises" }, " ") .. "]"
    end
  end
  r.alive, r.queues = table.concat(alive, ","), table.concat(queues, " ")
  ctx.rec[n] = r
end

local FIELDS = { "what", "slots", "result", "added", "removed", "counters", "alive", "availability", "queues" }

-- ---------------------------------------------------------------------------
-- Engine side.

local function run_engine(sc)
  local st = { phase = "wait", pos = 1, endgame = false }
  local ctx = { rec = {}, seed = sc.seed }
  local ctl_srv = assert(socket.bind("127.0.0.1", 0))
  ctl_srv:settimeout(0)
  local _, ctl_port = ctl_srv:getsockname()

  local function drive(t)
    if st.phase == "wait" then
      local ps = t:peers()
      if #ps < #sc.peers then return end
      local by = {}
      for _, p in ipairs(ps) do
        local k = sc.index_of_id[p.id]
        if not k or p.choking or p.queue_depth ~= sc.depth or t.endgame then return end
        by[k] = p
      end
      for k = 1, #sc.peers do if not by[k] then return end end
      st.ctl = st.ctl or ctl_srv:accept()
      if not st.ctl then return end
      st.ctl:settimeout(5)
      ctx.t, ctx.peers, st.tie_start = t, by, t.tie_start
      st.addresses = {}
      for k, p in ipairs(by) do st.addresses[k] = p.address end
      st.phase = "run"
    elseif st.phase == "close" then
      if ctx.peers[st.target].alive then return end
      st.phase = "run"
    elseif st.phase == "endgame" then
      if t.endgame ~= st.endgame then return end
      st.phase = "run"
    end
    while st.phase == "run" do
      local s = sc.steps[st.pos]
      if not s then st.phase = "done"; return end
      st.pos = st.pos + 1
      if s.sync == "close" then          -- the helper closes that peer's connection
        assert(st.ctl:send("close " .. s.peer .. "\n"))
        st.phase, st.target = "close", s.peer
      elseif s.sync == "endgame" then    -- the endgame hook answers s.on from the next tick
        st.endgame = s.on
        st.phase = "endgame"
      else
        record(ctx, s)
      end
    end
  end

  local pol = {
    name = "fake-engine-harness",
    pick = function() end,             -- only the script decides
    queue_depth = function() return sc.depth end,
    endgame = function() return st.endgame end,
    timeout = function() return "keep" end,
    choke = function() return {} end,
    tick = function(t)
      if st.err or st.phase == "done" then return end
      local ok, e = xpcall(drive, debug.traceback, t)
      if not ok then st.err = e end
    end,
  }

  local tmp = H.tmpdir()
  local pid, s, t
  local ok, err = pcall(function()
    s = session.new{ port = 0, bind = "127.0.0.1", tick_ms = 20 }
    t = s:add({ bytes = sc.torrent }, { storage = "memory", policy = pol, trackers = false })
    local args = { s.port, ctl_port, t.info_hash, HELPER_LIFETIME }
    for _, p in ipairs(sc.peers) do
      args[#args + 1] = hex(p.id)
      args[#args + 1] = hex(p.bits)
    end
    pid = S.spawn(("%s exec lua5.4 %s %s"):format(H.lua_env(), H.q(H.root .. "/spec/peers/scripted.lua"),
      table.concat(args, " ")), tmp .. "/helper.log", true)
    local t0 = socket.gettime()
    s:run(function() return st.phase == "done" or st.err ~= nil or socket.gettime() - t0 > LIMIT end)
    assert(not st.err, st.err)
    assert(not t.error, t.error)
    assert(st.phase == "done", ("engine run stuck in phase '%s' at step %d after %d s (%d of %d peers connected)")
      :format(st.phase, st.pos, LIMIT, #t:peers(), #sc.peers))
  end)
  if not ok then
    local log = io.open(tmp .. "/helper.log")
    if log then err = tostring(err) .. "\nhelper log:\n" .. log:read("a"); log:close() end
  end
  if st.ctl then st.ctl:close() end
  ctl_srv:close()
  if s then s:close() end
  S.kill(pid)
  H.rmtree(tmp)
  if not ok then error(err, 0) end
  return { rec = ctx.rec, tie_start = st.tie_start, addresses = st.addresses }
end

-- ---------------------------------------------------------------------------
-- Fake side.

local function run_fake(sc, eng)
  local t = fake.torrent{ pieces = sc.pieces, piece_length = sc.piece_length, total_length = sc.total,
                          tie_start = eng.tie_start }
  local peers = {}
  for k, p in ipairs(sc.peers) do
    peers[k] = fake.peer(t, { have = p.kind == "seed" and "all" or p.list, slots = sc.depth,
                              address = eng.addresses[k], id = p.id })
  end
  local ctx = { t = t, peers = peers, rec = {}, seed = sc.seed }
  for _, s in ipairs(sc.steps) do
    if s.sync == "close" then
      peers[s.peer]:disconnect()
    elseif s.sync == "endgame" then
      t.endgame = s.on
    else
      record(ctx, s)
    end
  end
  return ctx.rec
end

-- ---------------------------------------------------------------------------

local function first_diff(a, b)
  for i = 1, math.max(#a, #b) do
    if a:sub(i, i) ~= b:sub(i, i) then return i end
  end
end

local function excerpt(s, at)
  local from = math.max(1, at - 60)
  return (from > 1 and "..." or "") .. s:sub(from, at + 100) .. (#s > at + 100 and "..." or "")
end

local function compare(sc, eng, frec)
  local erec = eng.rec
  for n = 1, math.max(#erec, #frec) do
    local e, f = erec[n], frec[n]
    if not e or not f then
      error(("%s (seed %d): the engine recorded %d calls, the fake %d"):format(sc.name, sc.seed, #erec, #frec), 0)
    end
    for _, field in ipairs(FIELDS) do
      if e[field] ~= f[field] then
        local at = first_diff(e[field], f[field])
        local lines = { ("%s (seed %d, engine tie_start %d): call %d of %d (%s) differs in %s, from character %d:")
          :format(sc.name, sc.seed, eng.tie_start, n, #erec, e.what, field, at),
          "  engine: " .. excerpt(e[field], at), "  fake:   " .. excerpt(f[field], at),
          "  the whole call on the engine side:" }
        for _, k in ipairs(FIELDS) do lines[#lines + 1] = ("    %s: %s"):format(k, e[k]) end
        lines[#lines + 1] = "  and on the fake side:"
        for _, k in ipairs(FIELDS) do lines[#lines + 1] = ("    %s: %s"):format(k, f[k]) end
        error(table.concat(lines, "\n"), 0)
      end
    end
  end
  local requests = 0
  for _, r in ipairs(erec) do requests = requests + r.nadded end
  return #erec, requests
end

-- ---------------------------------------------------------------------------
-- The scenarios.

local function each_peer(sc, fn) for k = 1, #sc.peers do fn(k) end end

local SCENARIOS = {
  { name = "mixed", seed = 1101, pieces = 96, piece_length = 32768, depth = 16,
    kinds = { "seed", "half", "half", "sparse", "dense" },
    build = function(sc, r)
      local cycle = { "rarest_first", "rarest_loop", "common_fill", "common_loop", "window", "request",
                      "default", "partial_loop" }
      for round = 1, 4 do
        each_peer(sc, function(k)
          step(sc, { op = cycle[(round * 3 + k) % #cycle + 1], peer = k, n = r(1, 6), max = r(1, 3),
                     from = r(0, sc.pieces - 1), width = r(4, 24), list = blocks_of(sc, k, r, 5) })
        end)
        step(sc, { op = "cancel_some", peer = round % #sc.peers + 1, every = 2 })
        step(sc, { op = "cancel_all", peer = (round + 2) % #sc.peers + 1 })
        step(sc, { op = "partial_loop", peer = (round + 3) % #sc.peers + 1, max = 2 })
      end
      each_peer(sc, function(k)
        step(sc, { op = "errors", peer = k, has = one_of(sc, k, r), lacks = lacks(sc, k) })
      end)
    end },

  { name = "cancel and pick again", seed = 2203, pieces = 256, piece_length = 32768, depth = 64,
    kinds = { "half", "dense", "sparse", "seed", "half", "rare" },
    build = function(sc)
      each_peer(sc, function(k) step(sc, { op = "rarest_first", peer = k }) end)
      step(sc, { op = "cancel_piece", peer = 1 })
      step(sc, { op = "cancel_some", peer = 2, every = 2 })
      step(sc, { op = "cancel_some", peer = 3, every = 3 })
      step(sc, { op = "partial_loop", peer = 4, max = 1 })   -- the seed takes back single blocks
      step(sc, { op = "partial_loop", peer = 5, max = 2 })
      step(sc, { op = "cancel_all", peer = 1 })
      step(sc, { op = "partial_loop", peer = 6, max = 2 })
      step(sc, { op = "window", peer = 4, from = 0, width = 40 })
      step(sc, { op = "partial_loop", peer = 1, max = 2 })
      step(sc, { op = "rerequest", peer = 2 })              -- the same peer asks again for what it cancelled
      step(sc, { op = "cancel_all", peer = 4 })
      each_peer(sc, function(k) step(sc, { op = "window", peer = k, from = 10 * k, width = 16 }) end)
      step(sc, { op = "cancel_all", peer = 5 })
      step(sc, { op = "default", peer = 5 })
    end },

  { name = "endgame", seed = 3307, pieces = 64, piece_length = 32768, depth = 64,
    kinds = { "seed", "half", "dense", "sparse" },
    build = function(sc, r)
      each_peer(sc, function(k) step(sc, { op = "rarest_first", peer = k }) end)
      step(sc, { op = "cancel_some", peer = 1, every = 2 })
      step(sc, { op = "window", peer = 1, from = 0, width = 64 })
      step(sc, { sync = "endgame", on = true })
      step(sc, { op = "cancel_some", peer = 2, every = 2 })
      step(sc, { op = "partial_loop", peer = 2, max = 1 })   -- endgame: blocks others were asked for
      step(sc, { op = "request", peer = 3, list = blocks_of(sc, 3, r, 6) })
      step(sc, { op = "cancel_all", peer = 3 })
      step(sc, { op = "partial_loop", peer = 3, n = 5, max = 2 })
      step(sc, { op = "dup", peer = 4, from = 0, to = 64, max = 2 })
      step(sc, { op = "cancel_all", peer = 1 })
      step(sc, { op = "default", peer = 1 })
      step(sc, { op = "cancel_piece", peer = 2 })
      step(sc, { op = "window", peer = 3, from = 5, width = 20 })
      step(sc, { sync = "endgame", on = false })
      step(sc, { op = "cancel_all", peer = 2 })
      step(sc, { op = "partial_loop", peer = 2, max = 2 })
      step(sc, { op = "dup", peer = 2, from = 10, to = 40, max = 1 })
    end },

  { name = "disconnect", seed = 4409, pieces = 128, piece_length = 32768, depth = 32,
    kinds = { "half", "seed", "dense", "sparse", "half" },
    build = function(sc)
      each_peer(sc, function(k) step(sc, { op = k % 2 == 0 and "rarest_first" or "window", peer = k,
                                            from = 7 * k, width = 12 }) end)
      step(sc, { sync = "close", peer = 2 })       -- the seed leaves: availability drops everywhere
      step(sc, { op = "stale", peer = 2 })
      step(sc, { op = "partial_loop", peer = 1, max = 2 })
      step(sc, { op = "partial_loop", peer = 3, max = 2 })
      step(sc, { op = "rarest_first", peer = 5 })
      step(sc, { sync = "close", peer = 4 })
      step(sc, { op = "stale", peer = 4 })
      step(sc, { op = "cancel_all", peer = 3 })
      step(sc, { op = "common_loop", peer = 3, max = 1 })
      step(sc, { op = "drop", peer = 5 })          -- the policy disconnects one itself
      step(sc, { op = "stale", peer = 5 })
      step(sc, { op = "partial_loop", peer = 1, max = 2 })
      step(sc, { op = "cancel_all", peer = 1 })
      step(sc, { op = "rarest_first", peer = 1 })
      step(sc, { op = "window", peer = 3, from = 0, width = 128 })
    end },

  { name = "random mix", seed = 5511, pieces = 512, piece_length = 16384, depth = 64,
    kinds = { "half", "seed", "sparse", "dense", "rare", "half", "dense", "sparse" },
    build = function(sc, r)
      local ops = { "default", "rarest_first", "rarest_loop", "common_fill", "common_loop", "window",
                    "partial_loop", "dup", "request", "cancel_some", "cancel_all", "cancel_piece", "rerequest" }
      local gone = {}
      for n = 1, 70 do
        if n == 40 then
          local k = r(1, #sc.peers)
          step(sc, { sync = "close", peer = k })
          step(sc, { op = "stale", peer = k })
          gone[k] = true
        end
        local k
        repeat k = r(1, #sc.peers) until not gone[k]
        local from = r(0, sc.pieces - 1)
        step(sc, { op = ops[r(1, #ops)], peer = k, n = r(1, 20), max = r(1, 4), every = r(2, 4),
                   from = from, to = from + r(1, 40), width = r(8, 64), list = blocks_of(sc, k, r, 8) })
      end
    end },
}

describe("bt.policy.fake matches the engine", function()
  for _, o in ipairs(SCENARIOS) do
    it(("%s (seed %d)"):format(o.name, o.seed), function()
      local sc = scenario(o)
      local t0 = socket.gettime()
      local eng = run_engine(sc)
      local frec = run_fake(sc, eng)
      local calls, requests = compare(sc, eng, frec)
      print(("fake_engine: %-22s seed %d: %d pieces, %d peers, depth %d, tie_start %d: %d calls, %d requests "
        .. "compared (%.1f s)"):format(sc.name, sc.seed, sc.pieces, #sc.peers, sc.depth, eng.tie_start, calls,
        requests, socket.gettime() - t0))
    end)
  end
end)
