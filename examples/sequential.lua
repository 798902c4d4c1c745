-- examples/sequential.lua: pieces in order, for streaming (play while downloading).
-- Each peer takes the first wanted pieces from a window after the first piece we
-- lack; outside the window we fall back to the default (rarest first) so slow
-- peers still help. Run: bt-lua run examples/sequential.lua movie.torrent
local default = require "bt.policy.default"
local WINDOW = 32          -- pieces ahead of the play head that are fetched in order

return {
  name = "sequential",
  pick = function(t, peer, slots)
    for piece in t:partial(peer) do            -- blocks left in started pieces
      slots = slots - peer:request_blocks(piece, slots)
      if slots == 0 then return end
    end
    local head = t.have:next_clear(0)          -- first piece we still lack
    if not head or head < 0 then return end
    for piece in t:wanted(peer, head, head + WINDOW) do   -- in order, inside the window
      slots = slots - peer:request_blocks(piece, slots)
      if slots == 0 then return end
    end
    return default.pick(t, peer, slots)
  end,
}
