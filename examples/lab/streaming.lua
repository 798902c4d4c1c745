-- Streaming: two viewers among eight rarest-first leechers. The viewers run strictly in
-- order (in_order.lua), a window in order with rarest first behind it
-- (examples/sequential.lua), or rarest first; the table's "in order s" is the time to the
-- first 10 % of the file in order, "median s" the whole download, and the "others" rows
-- say what each viewer policy costs the rest of the swarm. docs/lab.md has the figures.
return {
  name = "streaming",
  description = "Time to the first 10 % in order against total time, and the cost to the others.",
  payload = { size = "16M", piece = "64K" },
  time_limit = 120,
  in_order = 0.1,
  seeds = { count = 1, up = "1M" },
  groups = {
    { name = "viewers", count = 2, up = "512K", join = { spread = 3 } },
    { name = "others", count = 8, up = "512K", join = { spread = 3 }, policy = "../rarest_first.lua" },
  },
  mixes = {
    { name = "in_order", policies = { viewers = "in_order.lua" } },
    { name = "window", policies = { viewers = "../sequential.lua" } },
    { name = "rarest_first", policies = { viewers = "../rarest_first.lua" } },
  },
}
