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

  -- a peer that has sent nothing for three round trips plus a second is snubbed:
  -- its requests move to other peers. `stalled` is how long the peer has sent us
  -- nothing while the request waited (not the request's age: with deep pipelines a
  -- healthy request is seconds old; req.expected says when it should have come)
  timeout = function(_t, peer, _req, stalled)
    if stalled > 3 * peer.rtt + 1 then return "snub" end
    return "keep"
  end,

  -- shallower pipelines to slow peers, so they hold fewer blocks hostage at the end
  queue_depth = function(t, peer)
    local n = default.queue_depth(t, peer)
    if t.missing <= 8 then n = math.min(n, 8) end
    return n
  end,
}
