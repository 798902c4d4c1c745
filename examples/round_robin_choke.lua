-- examples/round_robin_choke.lua: round-robin seeding. Instead of tit-for-tat (unchoke
-- whoever is fastest), every choke round hands the upload slots to the next interested
-- peers in a fixed order, so each one gets its turn whatever its speed. Fair for a seed
-- with many slow leechers; downloading uses the default hooks (policy.load fills them in).
-- The first window starts at a random place in the order (math.random): several seeds
-- running this policy serve different peers at a time instead of the same four in step.
local SLOTS = 4   -- peers unchoked at once: the usual client default

-- A stable order: peers come and go between rounds, so index positions are useless;
-- their addresses are not.
local function by_address(a, b) return a.address < b.address end

return {
  name = "round_robin_choke",
  upload_slots = SLOTS,   -- how many peers choke() unchokes: the core asks again soon while fewer are
  -- `peers` are the interested peers; the ones returned are unchoked, the rest choked.
  choke = function(t, peers, round)
    local st = t.state
    table.sort(peers, by_address)
    if #peers <= SLOTS then return peers end
    -- A new round moves the window on past the last peer served; an extra call in the
    -- same round (a newcomer got interested) keeps the window, so nobody loses a turn.
    if st.rr_round ~= round then
      st.rr_round, st.rr_from = round, st.rr_next
    end
    -- The very first window starts at a random peer ("" sorts before every address).
    if not st.rr_from then
      local k = math.random(#peers)
      st.rr_from = k > 1 and peers[k - 1].address or ""
    end
    -- the first peer whose address sorts after the window's start (wrapping to the first)
    local start = 1
    for i, p in ipairs(peers) do
      if p.address > st.rr_from then start = i; break end
    end
    local out = {}
    for k = 0, SLOTS - 1 do out[#out + 1] = peers[(start - 1 + k) % #peers + 1] end
    st.rr_next = out[#out].address   -- the next round starts after this one
    return out
  end,
}
