-- A flash crowd: 40 leechers joining within 10 s on one seed whose upload is limited to
-- 1 MiB/s. Rarest first (the default policy) against random: how long the crowd takes,
-- how much the seed must upload, and how the copies of the rarest piece grow.
return {
  name = "flash_crowd",
  description = "40 leechers joining within 10 s on one seed limited to 1 MiB/s.",
  payload = { size = "8M", piece = "64K" },
  time_limit = 120,
  seeds = { count = 1, up = "1M" },
  groups = {
    { name = "crowd", count = 40, up = "256K", join = { spread = 10 } },
  },
  mixes = {
    { name = "default", policies = { crowd = "bt.policy.default" } },
    { name = "random", policies = { crowd = "../random.lua" } },
  },
}
