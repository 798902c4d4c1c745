-- examples/lab/bittyrant.lua: a strategic choker after BitTyrant (Piatek et al., "Do
-- incentives build robustness in BitTorrent?", NSDI 2007, section 5), for
-- examples/lab/choking.lua.
--
-- For every peer p it keeps d_p, what p gives us when it reciprocates, and u_p, what we
-- must give p to be reciprocated. Each round it ranks the interested peers by d_p / u_p
-- and unchokes them best first while the sum of their u_p fits our upload capacity (the
-- torrent's upload limit), giving each exactly u_p (peer:set_upload_rate): as many peers
-- as the capacity pays for, each at its price, instead of tit-for-tat's equal split over a
-- fixed 4 + 1. When every interested peer fits, what is left is shared in proportion to
-- the prices (the capacity is used).
--
-- d_p: p's rate to us while it unchokes us; else the paper's estimate of what a
-- tit-for-tat peer gives each of its slots: the rate its `have`s show it downloading over
-- the last WINDOW seconds (under tit-for-tat about what it uploads), split over SPLIT
-- slots. u_p starts at that same equal split, once SEEN seconds of haves give one; until
-- then a peer costs, and is worth, our own equal split (cap / SPLIT), as with
-- tit-for-tat. After each round (ROUND seconds, the choke_interval below): a peer we
-- unchoked that did not unchoke us costs u_p * (1 + DELTA); one that has unchoked us
-- RECIP rounds in a row costs u_p * (1 - GAMMA) (the paper's 0.2, 0.1 and 3). Once
-- complete it lifts the caps and chokes like the default. Its pipeline starts short
-- (below); pieces are picked as by the default.
local default = require "bt.policy.default"

local ROUND = 2         -- s: the choke round, the same as the tit-for-tat clients' in choking.lua
local DELTA, GAMMA = 0.2, 0.1
local RECIP = 3         -- rounds of reciprocation in a row before u_p is lowered
local SPLIT = 5         -- a tit-for-tat client's slots (4 + 1 optimistic)
local WINDOW = 10       -- s of `have`s the download estimate looks back over
local SEEN = 3          -- s of `have`s before a peer's rate is estimated
local MIN_RATE = 2048   -- bytes/s: no price or estimate below this (a block every 8 s)
-- The default asks 64 blocks (1 MiB) of a peer before its rate is measured, which is
-- every time the peer unchokes us after a pause. Unchoked by 15-20 slow peers at once, as
-- this client is, that put the whole payload in flight at peers sending a block every few
-- seconds (docs/lab.md, "Arrivals over time"). It asks 4, then the default's 3 s of
-- the measured rate.
local pipeline = default.with{ QUEUE_START = 4 }

local function entry(book, p, now)
  local e = book[p.address]
  if not e then
    e = { recip = 0, unchoked = false, hist = {} }
    book[p.address] = e
  end
  -- the have count over the last WINDOW seconds, a sample at most once a round
  local h = e.hist
  if #h == 0 or now - h[#h].t >= ROUND then h[#h + 1] = { t = now, n = p.have:count() } end
  while #h > 2 and now - h[2].t >= WINDOW do table.remove(h, 1) end
  return e
end

-- The equal split of what p downloads, from its haves; nil before SEEN seconds of them.
local function estimate(t, p, e, now)
  local first = e.hist[1]
  local dt = now - first.t
  if dt < SEEN then return nil end
  return math.max((p.have:count() - first.n) * t.piece_length / dt / SPLIT, MIN_RATE)
end

return {
  name = "bittyrant",
  choke_interval = ROUND,
  upload_slots = 8,     -- the engine's hint for extra rounds; the active set is sized by capacity below
  pick = default.pick,
  queue_depth = pipeline.queue_depth,
  choke = function(t, peers, round, now)
    local st = t.state
    st.book = st.book or {}
    local book = st.book
    if t.complete then
      if st.capped then
        for _, p in ipairs(t:peers()) do p:set_upload_rate(0) end
        st.capped = false
      end
      return default.choke(t, peers, round, now)
    end
    local cap = t:limits().up
    if cap == 0 then cap = math.huge end   -- no limit: everyone fits, uncapped
    local share = cap < math.huge and cap / SPLIT or math.huge
    -- prices move once a round (the engine also calls between rounds, when a peer gets
    -- interested: those calls only re-rank); 0.1 s of slack for the tick's jitter
    if now - (st.last_round or -math.huge) >= ROUND - 0.1 then
      st.last_round = now
      for _, p in ipairs(t:peers()) do
        local e = book[p.address]
        if e and e.unchoked and e.u then
          if p.choking then
            e.recip, e.u = 0, math.min(e.u * (1 + DELTA), cap)
          else
            e.recip = e.recip + 1
            if e.recip >= RECIP then e.u = math.max(e.u * (1 - GAMMA), MIN_RATE) end
          end
        end
      end
    end
    local ranked = {}
    for _, p in ipairs(peers) do
      local e = entry(book, p, now)
      local est = estimate(t, p, e, now)
      if est and not e.u then e.u = est end
      local u = e.u or share
      local d = (not p.choking and p.rate_down > 0) and p.rate_down or est or share
      ranked[#ranked + 1] = { p = p, e = e, u = u, worth = d / u }
    end
    table.sort(ranked, function(a, b) return a.worth > b.worth end)
    for _, e in pairs(book) do e.unchoked = false end
    local chosen, used = {}, 0
    for _, r in ipairs(ranked) do
      if used + r.u > cap and #chosen > 0 then break end
      used = used + r.u
      chosen[#chosen + 1] = r
    end
    -- every interested peer fits: what is left of the capacity goes to them in proportion
    local scale = (#chosen == #ranked and used > 0 and used < cap and cap < math.huge) and cap / used or 1
    local out = {}
    for i, r in ipairs(chosen) do
      r.e.unchoked = true
      r.p:set_upload_rate(cap < math.huge and math.min(r.u * scale, cap) or 0)
      out[i] = r.p
    end
    st.capped = true
    return out
  end,
}
