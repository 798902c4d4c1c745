-- choking.lua's swarm with the three candidates joining late (at 12 s, when the others,
-- who joined over the first 5 s, hold 12 % of the pieces in the median, 9-17 % between
-- the quartiles, measured over 20 runs): a client joining a swarm already under way, as in
-- the paper's live swarms, where its peers have pieces it lacks from the start. Only the
-- mixes with one strategic client. docs/lab.md ("Choking") has the figures.
local tft, tyrant = "tft.lua", "bittyrant.lua"
local function mix(name, low, med, high)
  return { name = name, policies = { cand_low = low, cand_med = med, cand_high = high,
    slow = tft, mid = tft, fast = tft } }
end
return {
  name = "choking_late",
  description = "One strategic client joining late (low, median or high capacity) among tit-for-tat "
    .. "clients of skewed capacities.",
  payload = { size = "8M", piece = "64K" },
  time_limit = 240,
  seeds = { count = 1, up = "1M", policy = "../round_robin_choke.lua" },
  groups = {
    { name = "cand_low", count = 1, up = "48K", join = { at = 12 } },
    { name = "cand_med", count = 1, up = "128K", join = { at = 12 } },
    { name = "cand_high", count = 1, up = "1M", join = { at = 12 } },
    { name = "slow", count = 16, up = { "32K", "128K" }, join = { spread = 5 } },
    { name = "mid", count = 5, up = { "128K", "512K" }, join = { spread = 5 } },
    { name = "fast", count = 3, up = { "1M", "2M" }, join = { spread = 5 } },
  },
  mixes = {
    mix("none", tft, tft, tft),
    mix("one_low", tyrant, tft, tft),
    mix("one_med", tft, tyrant, tft),
    mix("one_high", tft, tft, tyrant),
  },
}
