-- Rarest first against random piece selection, the seed leaving after it has uploaded
-- one and a half copies (Legout, Urvoy-Keller and Michiardi, "Rarest first and choke
-- algorithms are enough", IMC 2006: rarest first keeps every piece available; with random
-- selection some pieces are lost when the seed leaves, and some leechers never finish).
-- docs/lab.md has the figures this lab got.
return {
  name = "rarest_vs_random",
  description = "Rarest first against random, the only seed leaving after 1.5 copies.",
  payload = { size = "16M", piece = "64K" },
  time_limit = 90,
  seeds = { count = 1, up = "1M", leave = { copies = 1.5 }, policy = "../round_robin_choke.lua" },
  groups = {
    { name = "leechers", count = 12, up = "512K", join = { spread = 5 }, stay = 20 },
  },
  mixes = {
    { name = "rarest_first", policies = { leechers = "../rarest_first.lua" } },
    { name = "random", policies = { leechers = "../random.lua" } },
  },
}
