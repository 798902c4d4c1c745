-- examples/lab/tft.lua: the default policy (tit-for-tat, 4 regular slots + 1 optimistic)
-- with its two clocks five times faster: a choke round every 2 s instead of 10, the
-- optimistic unchoke moved every 6 s instead of 30. For examples/lab/choking.lua, whose
-- downloads last about a minute: with 10 s rounds they would see ~6 rounds, with these
-- ~30, the number a strategic client's prices need to settle (bittyrant.lua uses the same
-- 2 s round: both sides of the comparison choke on one clock).
return require("bt.policy.default").with{ CHOKE_INTERVAL = 2, OPTIMISTIC_PERIOD = 6 }
