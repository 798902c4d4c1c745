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
function D.queue_depth(t, peer)
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
function D.timeout(t, peer, req, age)
  local limit = t.endgame and D.ENDGAME_TIMEOUT or D.REQUEST_TIMEOUT
  if age > limit then return "reassign" end
  return "keep"
end

D.UNCHOKE = 4                -- peers uploaded to at once: 3 chosen by rate, 1 optimistic
D.OPTIMISTIC_ROUNDS = 3      -- the optimistic slot moves every 3 rounds (30 s)

--- Choking, every round (10 s) and when a new peer gets interested: tit-for-tat.
-- `peers` are the interested peers; those returned are unchoked, the rest choked.
-- While downloading, the peers that give us most; once complete, those we send
-- most to (they take it fastest); plus one optimistic unchoke that rotates, so a
-- new peer can show what it is worth.
function D.choke(t, peers, round)
  local key = t.missing == 0 and "rate_up" or "rate_down"
  table.sort(peers, function(a, b) return a[key] > b[key] end)
  local out = {}
  for i = 1, math.min(D.UNCHOKE - 1, #peers) do out[i] = peers[i] end
  if #peers >= D.UNCHOKE then
    local st = t.state
    local opt = st._default_optimistic
    local still = false
    for i = D.UNCHOKE, #peers do if peers[i] == opt then still = true end end
    if not still or round % D.OPTIMISTIC_ROUNDS == 0 then
      opt = peers[math.random(D.UNCHOKE, #peers)]
      st._default_optimistic = opt
    end
    out[#out + 1] = opt
  end
  return out
end

function D.on_piece(t, index, ok, peer) end

function D.tick(t, now) end

return D
