-- Sixty peers on one machine: two seeds and 58 leechers arriving as a Poisson process of
-- four a second, leechers seeding 10 s after completing. It measures what the lab itself
-- costs (docs/lab.md, "Measured"); rarest first (the default) against random.
return {
  name = "swarm60",
  description = "60 peers: 2 seeds, 58 leechers arriving 4 a second.",
  payload = { size = "8M", piece = "64K" },
  time_limit = 120,
  max_peers = 60,
  seeds = { count = 2, up = "1M" },
  groups = {
    { name = "leechers", count = 58, up = { "128K", "512K" }, join = { poisson = 4 }, stay = 10 },
  },
  mixes = {
    { name = "default", policies = { leechers = "bt.policy.default" } },
    { name = "random", policies = { leechers = "../random.lua" } },
  },
}
