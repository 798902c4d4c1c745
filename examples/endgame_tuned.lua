-- examples/endgame_tuned.lua: the default picker, with endgame and timeouts tuned
-- for a swarm where some peers are much slower than others.
local default = require "bt.policy.default"

return {
  name = "endgame-tuned",
  -- duplicates allowed once nothing is left unrequested and few pieces are missing:
  -- the last pieces then come from whoever is fastest
  endgame = function(t)
    return t.unrequested == 0 and t.missing <= 8
  end,

  -- a stalled request moves to another peer after three round trips plus a second;
  -- `age` is how long the peer has sent us nothing while the request waited
  timeout = function(_t, peer, _req, age)
    if age > 3 * peer.rtt + 1 then return "reassign" end
    return "keep"
  end,

  -- shallower pipelines to slow peers, so they hold fewer blocks hostage at the end
  queue_depth = function(t, peer)
    local n = default.queue_depth(t, peer)
    if t.missing <= 8 then n = math.min(n, 8) end
    return n
  end,
}
