-- Choking: one BitTyrant-style strategic client (bittyrant.lua) among tit-for-tat clients
-- (tft.lua: the default policy on a 2 s round) with skewed upload capacities, and the same
-- when every client is strategic (Piatek et al., NSDI 2007). docs/lab.md ("Choking") says
-- why the swarm is shaped so. Three candidates, at a low, a median and a high capacity;
-- in each one_* mix exactly one of them is strategic; "none" is the baseline (the same
-- swarm, the same draws, nobody strategic) for all three at once.
local tft, tyrant = "tft.lua", "bittyrant.lua"
local function mix(name, low, med, high, others)
  return { name = name, policies = { cand_low = low, cand_med = med, cand_high = high,
    slow = others, mid = others, fast = others } }
end
return {
  name = "choking",
  description = "One strategic client (low, median or high capacity) among tit-for-tat clients "
    .. "of skewed capacities; then every client strategic.",
  payload = { size = "8M", piece = "64K" },
  time_limit = 240,
  seeds = { count = 1, up = "1M", policy = "../round_robin_choke.lua" },
  groups = {
    { name = "cand_low", count = 1, up = "48K", join = { spread = 5 } },
    { name = "cand_med", count = 1, up = "128K", join = { spread = 5 } },
    { name = "cand_high", count = 1, up = "1M", join = { spread = 5 } },
    { name = "slow", count = 16, up = { "32K", "128K" }, join = { spread = 5 } },
    { name = "mid", count = 5, up = { "128K", "512K" }, join = { spread = 5 } },
    { name = "fast", count = 3, up = { "1M", "2M" }, join = { spread = 5 } },
  },
  mixes = {
    mix("none", tft, tft, tft, tft),
    mix("one_low", tyrant, tft, tft, tft),
    mix("one_med", tft, tyrant, tft, tft),
    mix("one_high", tft, tft, tyrant, tft),
    mix("all_strategic", tyrant, tyrant, tyrant, tyrant),
  },
}
