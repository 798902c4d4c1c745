-- choking.lua with a payload three times as large (48 MiB): about 8 choke rounds of 10 s
-- instead of 3, so that bittyrant.lua's prices (up 20 % or down 10 % a round) have time to
-- move. Only the two mixes that compare the one strategic client.
return {
  name = "choking_long",
  description = "One strategic client among tit-for-tat clients, long enough for its prices to adapt.",
  payload = { size = "48M", piece = "256K" },
  time_limit = 300,
  seeds = { count = 1, up = "1M" },
  groups = {
    { name = "strategic", count = 1, up = "512K", join = { at = 0 } },
    { name = "tft", count = 11, up = { "128K", "1M" }, join = { spread = 5 } },
  },
  mixes = {
    { name = "none", policies = { strategic = "bt.policy.default", tft = "bt.policy.default" } },
    { name = "one_strategic", policies = { strategic = "bittyrant.lua", tft = "bt.policy.default" } },
  },
}
