-- Choking: one BitTyrant-style strategic client (bittyrant.lua) among tit-for-tat clients
-- (the default policy) with upload capacities drawn from 128 KiB/s to 1 MiB/s, and the
-- same when every client is strategic (Piatek et al., NSDI 2007: the strategic client
-- gains in the median; when all are strategic the swarm's performance drops less than
-- feared). "none" is the baseline: the same swarm, the same draws, nobody strategic.
return {
  name = "choking",
  description = "One strategic client among tit-for-tat clients; then every client strategic.",
  payload = { size = "16M", piece = "64K" },
  time_limit = 150,
  seeds = { count = 1, up = "1M" },
  groups = {
    { name = "strategic", count = 1, up = "512K", join = { at = 0 } },
    { name = "tft", count = 11, up = { "128K", "1M" }, join = { spread = 5 } },
  },
  mixes = {
    { name = "none", policies = { strategic = "bt.policy.default", tft = "bt.policy.default" } },
    { name = "one_strategic", policies = { strategic = "bittyrant.lua", tft = "bt.policy.default" } },
    { name = "all_strategic", policies = { strategic = "bittyrant.lua", tft = "bittyrant.lua" } },
  },
}
