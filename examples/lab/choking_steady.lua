-- choking.lua's population, doubled (32 slow, 10 mid, 6 fast tit-for-tat leechers, same
-- capacity ranges), in a swarm with arrivals over time: leechers join over 40 s and leave
-- once done; 4 seeds of 512 KiB/s stay (2 MiB/s in all, as four, so one seed's
-- round-robin turn gives a leecher 128 KiB/s rather than 512). One strategic candidate at
-- a high capacity (1 MiB/s: where the paper's gain is largest) joins at 14 s, after about
-- a third of the arrivals. Pilot runs on seeds 100-101 shaped it (docs/lab.md, "Choking",
-- "Arrivals over time": the shapes tried, whether download follows upload in them, and
-- the figures). one_high_start4: the candidate runs tit-for-tat with bittyrant.lua's
-- pipeline (the control); all_strategic: every leecher strategic.
local tft, tyrant = "tft.lua", "bittyrant.lua"
local function mix(name, cand, others)
  others = others or tft
  return { name = name, policies = { cand_high = cand, slow = others, mid = others, fast = others } }
end
local arrivals = { spread = 40 }
return {
  name = "choking_steady",
  description = "One strategic high-capacity client joining a steady-state swarm (arrivals over "
    .. "40 s, departures on completion) of tit-for-tat clients of skewed capacities.",
  payload = { size = "8M", piece = "64K" },
  time_limit = 90,
  seeds = { count = 4, up = "512K", policy = "../round_robin_choke.lua" },
  groups = {
    { name = "cand_high", count = 1, up = "1M", join = { at = 14 } },
    { name = "slow", count = 32, up = { "32K", "128K" }, join = arrivals },
    { name = "mid", count = 10, up = { "128K", "512K" }, join = arrivals },
    { name = "fast", count = 6, up = { "1M", "2M" }, join = arrivals },
  },
  mixes = {
    mix("none", tft),
    mix("one_high", tyrant),
    mix("one_high_start4", "tft_start4.lua"),
    mix("all_strategic", tyrant, tyrant),
  },
}
