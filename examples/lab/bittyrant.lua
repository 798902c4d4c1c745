-- examples/lab/bittyrant.lua: a strategic choker after BitTyrant (Piatek et al., "Do
-- incentives build robustness in BitTorrent?", NSDI 2007), for examples/lab/choking.lua.
--
-- For every peer p it keeps d_p, what p would give us (its rate to us while it unchokes
-- us, else an estimate), and u_p, what we must give p to be reciprocated. Each round it
-- ranks the interested peers by d_p / u_p and unchokes them best first while the sum of
-- their u_p fits our upload capacity (the torrent's upload limit), giving each exactly u_p
-- (peer:set_upload_rate): more, smaller slots than tit-for-tat's equal split. After a round:
-- a peer that did not unchoke us although we unchoked it gets u_p * (1 + DELTA); one that
-- reciprocated for RECIP rounds in a row gets u_p * (1 - GAMMA) (the paper's 0.2 and 0.1).
-- The estimate for a peer that does not unchoke us is the paper's: its piece announcements
-- give the rate it downloads, taken as its upload capacity, split equally over a
-- tit-for-tat client's SPLIT slots; u_p starts at the same equal split. Once complete it
-- lifts the caps and chokes like the default.
local default = require "bt.policy.default"

local ROUND = 10        -- s between adjustments (the choke round; extra calls in between only re-rank)
local DELTA, GAMMA = 0.2, 0.1
local RECIP = 3         -- rounds of reciprocation before u_p is lowered
local SPLIT = 5         -- a tit-for-tat client's slots (4 + 1 optimistic)
local MIN_RATE = 2048   -- bytes/s: no estimate below this (a block every 8 s)
local SEEN = 5          -- s of watching a peer's pieces before its rate is estimated

-- per torrent: book (address -> { u =, est =, first = {time, pieces}, recip =, unchoked = }),
-- the time of the last adjustment, and whether caps are set
local states = setmetatable({}, { __mode = "k" })
local function state_of(t)
  local st = states[t]
  if not st then st = { book = {}, last_round = -math.huge, capped = false }; states[t] = st end
  return st
end

local function entry(t, book, p, now)
  local e = book[p.address]
  if not e then
    e = { first = { now, p.have:count() }, recip = 0 }
    book[p.address] = e
  end
  -- the equal split of what it downloads, from its have messages
  local dt = now - e.first[1]
  local est = dt >= SEEN and (p.have:count() - e.first[2]) * t.piece_length / dt / SPLIT or 0
  e.est = math.max(est, MIN_RATE)
  e.u = e.u or e.est
  return e
end

local function d_of(p, e)
  if not p.choking and p.rate_down > 0 then return p.rate_down end
  return e.est
end

return {
  name = "bittyrant",
  upload_slots = 8,     -- the engine's hint for extra rounds; the active set is sized by capacity below
  pick = default.pick,
  choke = function(t, peers, round, now)
    local st = state_of(t)
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
    if now - st.last_round >= ROUND then
      st.last_round = now
      for _, p in ipairs(t:peers()) do
        local e = book[p.address]
        if e and e.unchoked then
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
      local e = entry(t, book, p, now)
      ranked[#ranked + 1] = { p = p, e = e, worth = d_of(p, e) / e.u }
    end
    table.sort(ranked, function(a, b) return a.worth > b.worth end)
    for _, e in pairs(book) do e.unchoked = false end
    local chosen, used = {}, 0
    for _, r in ipairs(ranked) do
      if used + r.e.u > cap and #chosen > 0 then break end
      used = used + r.e.u
      chosen[#chosen + 1] = r
    end
    -- every interested peer fits: what is left of the capacity goes to them in proportion
    local scale = (#chosen == #ranked and used > 0 and used < cap and cap < math.huge) and cap / used or 1
    local out = {}
    for i, r in ipairs(chosen) do
      r.e.unchoked = true
      r.p:set_upload_rate(cap < math.huge and r.e.u * scale or 0)
      out[i] = r.p
    end
    st.capped = true
    return out
  end,
}
