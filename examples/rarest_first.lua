-- examples/rarest_first.lua: rarest first, finishing started pieces first.
-- Run: bt-lua run examples/rarest_first.lua file.torrent -o downloads/
-- Every loop here walks C iterators, so a policy this short runs at full speed.
return {
  name = "rarest-first",
  -- called when `peer` can take more block requests
  pick = function(t, peer)
    for piece in t:partial(peer) do            -- finish what we started first
      peer:request_blocks(piece)               -- as many blocks as the peer has free slots
    end
    for piece in t:rarest(peer) do             -- then the rarest pieces this peer has
      peer:request_blocks(piece)               -- (the iterators end once its slots are used)
    end
  end,
}
