-- Endgame against no endgame, with one slow peer holding blocks at the end (the stall
-- Transmission 4.1 users reported as "stuck at 99.9 %"). One seed; eight fast leechers;
-- one leecher that joins first and uploads at 16 KiB/s, so the others ask it for blocks
-- it sends slowly. Without endgame (and without timeouts: examples/lab/no_endgame.lua)
-- the last blocks wait for it; with the default's endgame, or endgame_tuned's, they are
-- asked of a fast peer too. docs/lab.md has the figures.
return {
  name = "endgame",
  description = "Endgame against no endgame, one slow peer holding blocks.",
  payload = { size = "16M", piece = "256K" },
  time_limit = 120,
  seeds = { count = 1, up = "2M" },
  groups = {
    { name = "slow", count = 1, up = "16K", join = { at = 0 }, stay = true, policy = "bt.policy.default" },
    { name = "fast", count = 8, up = "1M", join = { spread = 4, from = 2 } },
  },
  mixes = {
    { name = "no_endgame", policies = { fast = "no_endgame.lua" } },
    { name = "default", policies = { fast = "bt.policy.default" } },
    { name = "endgame_tuned", policies = { fast = "../endgame_tuned.lua" } },
  },
}
