--- bt.policy.default: the hooks every policy falls back to.
--
-- A few random first pieces (something to trade early), then rarest first,
-- always finishing pieces already started; endgame once every missing block has
-- been asked for; requests that stall move to other peers; pipelines sized by
-- each peer's measured rate. Every piece loop runs in C (t:partial, t:rarest,
-- t:wanted, peer:request_blocks), so this stays fast whatever the piece count.
local D = { name = "default" }

local BLOCK = 16384
D.RANDOM_FIRST = 4           -- pieces fetched in random order before rarest first
D.QUEUE_SECONDS = 3          -- data in flight per peer, in seconds of its rate (libtorrent's request_queue_time)
D.QUEUE_MIN, D.QUEUE_MAX = 2, 500
D.QUEUE_START = 64           -- before any rate is measured: enough to find out how fast the peer is
D.REQUEST_TIMEOUT = 5        -- seconds without any block from a peer before its requests move
D.ENDGAME_TIMEOUT = 2        -- the same near the end, where one slow peer holds everything up

--- Pipeline depth for this peer: about QUEUE_SECONDS of its download rate.
-- The core also caps it by the peer's own limit (reqq from its BEP 10 handshake).
function D.queue_depth(_t, peer)
  if peer.snubbed then return D.QUEUE_MIN end   -- it stalled: give it little to sit on
  local rate = peer.rate_down
  if rate <= 0 then return D.QUEUE_START end
  local n = math.floor(D.QUEUE_SECONDS * rate / BLOCK)
  if n < D.QUEUE_MIN then n = D.QUEUE_MIN elseif n > D.QUEUE_MAX then n = D.QUEUE_MAX end
  return n
end

--- Fill `slots` requests on `peer`. Returns the slots left.
function D.fill(t, peer, slots)
  for piece in t:partial(peer) do                 -- finish what is started
    slots = slots - peer:request_blocks(piece, slots)
    if slots == 0 then return 0 end
  end
  local per_piece = t:blocks(0)
  if t.pieces - t.missing < D.RANDOM_FIRST then  -- random first pieces
    local start = math.random(0, t.pieces - 1)
    for piece in t:wanted(peer, start) do
      slots = slots - peer:request_blocks(piece, slots)
      if slots == 0 then return 0 end
    end
    for piece in t:wanted(peer, 0, start) do
      slots = slots - peer:request_blocks(piece, slots)
      if slots == 0 then return 0 end
    end
    return slots
  end
  for piece in t:rarest(peer, slots // per_piece + 1) do   -- then rarest first
    slots = slots - peer:request_blocks(piece, slots)
    if slots == 0 then return 0 end
  end
  return slots
end

function D.pick(t, peer, slots)
  D.fill(t, peer, slots)
end

--- Endgame: duplicate requests are allowed once nothing is left unrequested.
-- The core cancels the copies when the first one arrives.
function D.endgame(t)
  return t.unrequested == 0 and t.missing > 0
end

--- A request is asked about once its peer has sent nothing for `age` seconds.
function D.timeout(t, _peer, _req, age)
  local limit = t.endgame and D.ENDGAME_TIMEOUT or D.REQUEST_TIMEOUT
  if age > limit then return "reassign" end
  return "keep"
end

D.REGULAR = 4                -- upload slots earned by rate (tit-for-tat)
D.OPTIMISTIC_PERIOD = 30     -- seconds the optimistic unchoke stays on one peer
D.NEW_PEER = 60              -- a peer connected for less than this (s) has no rate to show yet:
D.NEW_PEER_WEIGHT = 3        -- it is this many times as likely to get the optimistic slot
D.SNUB_TIME = 60             -- s without a block from a peer whose pieces we want: it snubs us

--- Choking, every round (10 s) and when a new peer gets interested: tit-for-tat.
-- `peers` are the interested peers; those returned are unchoked, the rest choked.
-- Four regular slots: while downloading, the peers that give us most; once complete,
-- those we send most to (they take it fastest). Anti-snubbing: while downloading, a peer
-- that sends us nothing (marked snubbed by the timeout hook, or silent for SNUB_TIME
-- while we are interested) earns no regular slot. Plus one optimistic unchoke, moved
-- every 30 s and three times as likely to land on a new peer, so it can show its worth.
function D.choke(t, peers, _round, now)
  local seeding = t.missing == 0
  local key = seeding and "rate_up" or "rate_down"
  local ranked = {}
  for _, p in ipairs(peers) do
    local snubbing = not seeding and (p.snubbed or (p.am_interested and p.idle > D.SNUB_TIME))
    if not snubbing then ranked[#ranked + 1] = p end
  end
  table.sort(ranked, function(a, b) return a[key] > b[key] end)
  local out, regular = {}, {}
  for i = 1, math.min(D.REGULAR, #ranked) do
    out[i] = ranked[i]
    regular[ranked[i]] = true
  end
  local rest = {}   -- the optimistic slot may go to any other peer, snubbing ones too
  for _, p in ipairs(peers) do if not regular[p] then rest[#rest + 1] = p end end
  if #rest == 0 then return out end
  local st = t.state
  local opt, still = st._default_optimistic, false
  for _, p in ipairs(rest) do if p == opt then still = true end end
  if not still or now - (st._default_optimistic_at or -math.huge) >= D.OPTIMISTIC_PERIOD then
    local pool = {}
    for _, p in ipairs(rest) do
      for _ = 1, p.connected_for < D.NEW_PEER and D.NEW_PEER_WEIGHT or 1 do pool[#pool + 1] = p end
    end
    opt = pool[math.random(#pool)]
    st._default_optimistic, st._default_optimistic_at = opt, now
  end
  out[#out + 1] = opt
  return out
end

function D.on_piece(_t, _index, _ok, _peer) end

function D.tick(_t, _now) end

return D
