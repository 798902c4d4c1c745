-- examples/lab/tft_start4.lua: tft.lua asking 4 blocks, not 64, of a peer whose rate is not
-- measured yet: bittyrant.lua's pipeline without its choking. In choking_steady.lua it is
-- the control that tells the strategy's gain from the pipeline's.
return require("bt.policy.default").with{ CHOKE_INTERVAL = 2, OPTIMISTIC_PERIOD = 6, QUEUE_START = 4 }
