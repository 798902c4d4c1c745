-- make demo: a short lab run (about a minute) in which two example policies differ.
-- One seed uploads at 1 MiB/s and leaves after one and a half copies; ten leechers trade
-- at 512 KiB/s each and keep seeding once complete (the run ends when all are done: a
-- leecher that left early could take the only copy of a piece with it, which is another
-- experiment). Rarest first keeps every piece in the swarm and everyone finishes; with
-- random selection the seed sends some pieces twice and others never, pieces are lost
-- when it leaves and nobody finishes (the run ends then). The full experiment, with more
-- peers and repeated runs: rarest_vs_random.lua.
return {
  name = "demo",
  description = "Rarest first against random; the only seed leaves after 1.5 copies.",
  payload = { size = "16M", piece = "64K" },
  time_limit = 60,
  seeds = { count = 1, up = "1M", leave = { copies = 1.5 }, policy = "../round_robin_choke.lua" },
  groups = {
    { name = "leechers", count = 10, up = "512K", join = { spread = 3 }, stay = true },
  },
  mixes = {
    { name = "rarest_first", policies = { leechers = "../rarest_first.lua" } },
    { name = "random", policies = { leechers = "../random.lua" } },
  },
}
