-- Latency and loss (the engine's lab delay, docs/lab.md "Network"): the same swarm with one
-- group near the seed, one far away (150 ms one way on what each of them sends) and one near
-- but lossy (1 % of segments lost, each loss costing a 200 ms retransmission timeout).
-- Question: what do a long path and a lossy one cost a leecher under the default policy,
-- whose pipeline (64 requests before a rate is measured) is meant to hide the round trip?
return {
  name = "latency",
  description = "Near, far (150 ms) and lossy (1 %) leechers, the default policy.",
  payload = { size = "16M", piece = "64K" },
  time_limit = 120,
  network = { latency = 5 },   -- the seed and every group that sets none: 5 ms
  seeds = { count = 1, up = "1M" },
  groups = {
    { name = "near", count = 4, up = "512K", join = { spread = 2 }, stay = true, policy = "bt.policy.default" },
    { name = "far", count = 4, up = "512K", join = { spread = 2 }, stay = true, policy = "bt.policy.default",
      network = { latency = 150 } },
    { name = "lossy", count = 4, up = "512K", join = { spread = 2 }, stay = true, policy = "bt.policy.default",
      network = { loss = 0.01 } },
  },
}
