--- bt.policy.default: the hooks every policy falls back to.
--
-- A few random first pieces (something to trade early), then rarest first,
-- always finishing pieces already started; endgame once every missing block has
-- been asked for; a peer whose requests stall is snubbed and its requests move to
-- other peers; pipelines sized by each peer's measured rate; tit-for-tat choking.
-- Every piece loop runs in C (t:partial, t:rarest, t:wanted, peer:request_blocks),
-- so this stays fast whatever the piece count.
--
-- The constants below tune it. They are not changed in place (that would change
-- every policy built on the default at once): `default.with{ RANDOM_FIRST = 0 }`
-- returns a policy with its own constants, the rest from the default.
local BLOCK = 16384

local DEFAULTS = {
  RANDOM_FIRST = 4,        -- pieces fetched in random order before rarest first
  QUEUE_SECONDS = 3,       -- data in flight per peer, in seconds of its rate (libtorrent's request_queue_time)
  QUEUE_MIN = 2, QUEUE_MAX = 500,
  QUEUE_START = 64,        -- before any rate is measured: enough to find out how fast the peer is
  REQUEST_TIMEOUT = 5,     -- seconds without any block from a peer before it is snubbed
  ENDGAME_TIMEOUT = 2,     -- the same near the end, where one slow peer holds everything up
  REGULAR = 4,             -- upload slots earned by rate (tit-for-tat); one optimistic slot besides
  OPTIMISTIC_PERIOD = 30,  -- seconds the optimistic unchoke stays on one peer
  NEW_PEER = 60,           -- a peer connected for less than this (s) has no rate to show yet:
  NEW_PEER_WEIGHT = 3,     -- it is this many times as likely to get the optimistic slot
  SNUB_TIME = 60,          -- s without a block from a peer whose pieces we want: it snubs us
  TRIAL = 5,               -- s an unchoked peer may take nothing before untried peers rank above it
  CHOKE_INTERVAL = 10,     -- s between choke rounds (the policy's choke_interval; BitTorrent's classic 10)
}

local make

--- The default policy with the constants of `cfg` (a complete table of them).
make = function(cfg)
  local P = { name = "default", upload_slots = cfg.REGULAR + 1, choke_interval = cfg.CHOKE_INTERVAL }

  --- Pipeline depth for this peer: about QUEUE_SECONDS of its download rate.
  -- The core also caps it by the peer's own limit (reqq from its BEP 10 handshake).
  function P.queue_depth(_, peer)
    if peer.snubbed then return cfg.QUEUE_MIN end   -- it stalled: give it little to sit on
    local rate = peer.rate_down
    if rate <= 0 then return cfg.QUEUE_START end
    local n = math.floor(cfg.QUEUE_SECONDS * rate / BLOCK)
    if n < cfg.QUEUE_MIN then n = cfg.QUEUE_MIN elseif n > cfg.QUEUE_MAX then n = cfg.QUEUE_MAX end
    return n
  end

  --- Fill the peer's free slots: started pieces first, then RANDOM_FIRST random
  -- pieces while we have fewer, then rarest first. peer:fill(iterator) requests the
  -- pieces the iterator gives until the peer has no free slot: the same as
  -- `for piece in t:rarest(peer) do peer:request_blocks(piece) end`, with the loop
  -- in C (it matters with many small pieces: a 16 KiB piece is one request).
  function P.pick(t, peer)
    peer:fill(t:partial(peer))
    if t.pieces - t.missing < cfg.RANDOM_FIRST then
      local start = math.random(0, t.pieces - 1)
      peer:fill(t:wanted(peer, start))
      peer:fill(t:wanted(peer, 0, start))
      return
    end
    peer:fill(t:rarest(peer))
  end

  --- Endgame: duplicate requests are allowed once nothing is left unrequested.
  -- The core cancels the copies when the first one arrives.
  function P.endgame(t)
    return t.unrequested == 0 and t.missing > 0
  end

  --- Asked about a peer's oldest request once the peer has sent nothing for
  -- `stalled` seconds: past the limit the peer is snubbed (all its requests go back
  -- to the pool, and queue_depth gives it QUEUE_MIN until it sends a block).
  function P.timeout(t, _, _, stalled)
    local limit = t.endgame and cfg.ENDGAME_TIMEOUT or cfg.REQUEST_TIMEOUT
    if stalled > limit then return "snub" end
    return "keep"
  end

  --- Choking, every round (CHOKE_INTERVAL, 10 s) and when a new peer gets interested: tit-for-tat.
  -- `peers` are the interested peers; those returned are unchoked, the rest choked.
  -- REGULAR slots: while downloading, the peers that give us most; once complete,
  -- those we send most to (they take it fastest). Anti-snubbing: while downloading, a
  -- peer that sends us nothing (marked snubbed by the timeout hook, or silent for
  -- SNUB_TIME while we are interested) earns no regular slot. Plus one optimistic
  -- unchoke, moved every OPTIMISTIC_PERIOD and NEW_PEER_WEIGHT times as likely to land
  -- on a new peer, so it can show its worth.
  function P.choke(t, peers, _, now)
    local seeding = t.missing == 0
    local key = seeding and "rate_up" or "rate_down"
    local st = t.state
    -- A peer we unchoked that took nothing for TRIAL seconds had its chance: it ranks
    -- after every peer not yet tried, until it takes something. Without this, peers that
    -- say interested and never request (or request and never read) kept the regular
    -- slots of a seed: all their rates are 0.
    local wasted = {}
    for _, p in ipairs(peers) do
      if not p.am_choking and p.upload_idle >= cfg.TRIAL then wasted[p] = true end
    end
    local ranked = {}
    for _, p in ipairs(peers) do
      local snubbing = not seeding and (p.snubbed or (p.am_interested and p.idle > cfg.SNUB_TIME))
      if not snubbing then ranked[#ranked + 1] = p end
    end
    table.sort(ranked, function(a, b)
      if wasted[a] ~= wasted[b] then return not wasted[a] end
      return a[key] > b[key]
    end)
    local out, regular = {}, {}
    for i = 1, math.min(cfg.REGULAR, #ranked) do
      out[i] = ranked[i]
      regular[ranked[i]] = true
    end
    local rest = {}   -- the optimistic slot may go to any other peer, snubbing ones too
    for _, p in ipairs(peers) do if not regular[p] then rest[#rest + 1] = p end end
    if #rest == 0 then return out end
    local opt, still = st._default_optimistic, false
    for _, p in ipairs(rest) do if p == opt then still = true end end
    if not still or now - (st._default_optimistic_at or -math.huge) >= cfg.OPTIMISTIC_PERIOD then
      local pool = {}
      for _, p in ipairs(rest) do
        for _ = 1, p.connected_for < cfg.NEW_PEER and cfg.NEW_PEER_WEIGHT or 1 do pool[#pool + 1] = p end
      end
      opt = pool[math.random(#pool)]
      st._default_optimistic, st._default_optimistic_at = opt, now
    end
    out[#out + 1] = opt
    return out
  end

  function P.on_piece() end

  function P.tick() end

  --- policy.with{ NAME = value, ... }: this policy with some constants changed.
  local function with(overrides)
    if type(overrides) ~= "table" then
      error("bt.policy.default.with: expects a table of constants, got " .. type(overrides), 2)
    end
    local names = {}
    for k in pairs(DEFAULTS) do names[#names + 1] = k end
    table.sort(names)
    local new = {}
    for k, v in pairs(cfg) do new[k] = v end
    for k, v in pairs(overrides) do
      if DEFAULTS[k] == nil then
        local near = require("bt.policy").suggest(tostring(k), names)
        error(("bt.policy.default.with: unknown constant '%s'%s (constants: %s)"):format(tostring(k),
          near and (" (did you mean '" .. near .. "'?)") or "", table.concat(names, ", ")), 2)
      end
      if type(v) ~= "number" or v ~= v or v < 0 then
        error(("bt.policy.default.with: %s must be a number >= 0, got %s"):format(k, tostring(v)), 2)
      end
      new[k] = v
    end
    if math.type(new.REGULAR) ~= "integer" then
      error("bt.policy.default.with: REGULAR must be an integer", 2)
    end
    local policy = require "bt.policy"
    if new.CHOKE_INTERVAL < policy.CHOKE_INTERVAL_MIN or new.CHOKE_INTERVAL > policy.CHOKE_INTERVAL_MAX then
      error(("bt.policy.default.with: CHOKE_INTERVAL must be from %d to %d seconds"):format(
        policy.CHOKE_INTERVAL_MIN, policy.CHOKE_INTERVAL_MAX), 2)
    end
    return make(new)
  end

  -- The constants and `with` are read through the metatable, so pairs(P) lists only
  -- what a policy table holds (hooks, name, upload_slots, choke_interval) and bt.policy.check accepts it.
  return setmetatable(P, {
    __index = function(_, k)
      if k == "with" then return with end
      return cfg[k]
    end,
    __newindex = function(_, k)
      error(("bt.policy.default: '%s' is not set in place (it would change every policy built on the "
        .. "default); use default.with{ %s = ... }"):format(tostring(k), tostring(k)), 2)
    end,
  })
end

return make(DEFAULTS)
