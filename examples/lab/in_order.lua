-- examples/lab/in_order.lua: strictly sequential, for examples/lab/streaming.lua: every
-- peer is asked for the first pieces we lack that it has, in index order, and nothing
-- else; pipelines capped at 32 requests as in examples/sequential.lua.
local default = require "bt.policy.default"
local MAX_QUEUE = 32

return {
  name = "in-order",
  pick = function(t, peer)
    peer:fill(t:partial(peer))
    local head = t:next_missing(0)
    if head then peer:fill(t:wanted(peer, head)) end
  end,
  queue_depth = function(t, peer)
    return math.min(MAX_QUEUE, default.queue_depth(t, peer))
  end,
}
