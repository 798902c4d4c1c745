-- examples/lab/bittyrant.lua: a strategic choker in the spirit of BitTyrant (Piatek et al.,
-- "Do incentives build robustness in BitTorrent?", NSDI 2007), for examples/lab/choking.lua.
-- BitTyrant ranks peers by what they give per byte given to them and unchokes, best
-- first, as many as its upload capacity can pay for at the rate each needs to reciprocate.
-- The engine splits a torrent's upload evenly among unchoked peers (it has no per-peer
-- upload rate), so this keeps the ranking and the "pay only those who pay" part: peers
-- that send us nothing get no slot, except one newcomer a round to find new partners, and
-- there is no optimistic unchoke. Once complete it chokes like the default.
local default = require "bt.policy.default"
local SLOTS = 8            -- more, smaller slots than tit-for-tat's 4 + 1, as BitTyrant uses
local NEWCOMER = 30        -- s: a peer this young with no rate yet may get the one trial slot

-- bytes it sends us per byte we send it (a peer we send nothing is worth what it sends)
local function worth(p) return p.rate_down / (p.rate_up + 1024) end

return {
  name = "bittyrant",
  upload_slots = SLOTS,
  pick = default.pick,
  choke = function(t, peers, round, now)
    if t.complete then return default.choke(t, peers, round, now) end
    table.sort(peers, function(a, b) return worth(a) > worth(b) end)
    local out = {}
    for _, p in ipairs(peers) do
      if #out < SLOTS - 1 and p.rate_down > 0 then out[#out + 1] = p end
    end
    for _, p in ipairs(peers) do
      if p.rate_down == 0 and p.connected_for < NEWCOMER then out[#out + 1] = p; break end
    end
    return out
  end,
}
