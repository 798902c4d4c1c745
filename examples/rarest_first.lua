-- examples/rarest_first.lua: rarest first, finishing started pieces first.
-- Run: bt-lua run examples/rarest_first.lua file.torrent -o downloads/
-- Every loop here walks C iterators, so a policy this short runs at full speed.
return {
  name = "rarest-first",
  -- called when `peer` can take `slots` more block requests
  pick = function(t, peer, slots)
    for piece in t:partial(peer) do            -- finish what we started first
      slots = slots - peer:request_blocks(piece, slots)
      if slots == 0 then return end
    end
    -- enough pieces to fill the slots: each piece gives t:blocks(piece) requests
    for piece in t:rarest(peer, slots // t:blocks(0) + 1) do
      slots = slots - peer:request_blocks(piece, slots)
      if slots == 0 then return end
    end
  end,
}
