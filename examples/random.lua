-- examples/random.lua: each peer gets pieces in random order (a baseline to compare
-- rarest first against). t:wanted walks the pieces the peer has that we can still
-- ask for; starting it at a random index makes the order random enough.
return {
  name = "random",
  pick = function(t, peer, slots)
    for piece in t:partial(peer) do
      slots = slots - peer:request_blocks(piece, slots)
      if slots == 0 then return end
    end
    local start = math.random(0, t.pieces - 1)
    for piece in t:wanted(peer, start) do           -- from the random start to the end
      slots = slots - peer:request_blocks(piece, slots)
      if slots == 0 then return end
    end
    for piece in t:wanted(peer, 0, start) do        -- then wrap around
      slots = slots - peer:request_blocks(piece, slots)
      if slots == 0 then return end
    end
  end,
}
