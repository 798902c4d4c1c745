-- examples/lab/no_endgame.lua: the default policy without endgame and without timeouts,
-- for examples/lab/endgame.lua. The last blocks stay with whichever peer they were asked
-- of, however slow it is: the stall reported as "stuck at 99.9 %".
local default = require "bt.policy.default"

return {
  name = "no-endgame",
  endgame = function() return false end,
  timeout = function() return "keep" end,
  pick = default.pick,
}
