-- examples/random.lua: each peer gets pieces in random order (a baseline to compare
-- rarest first against). t:wanted walks the pieces the peer has that we can still
-- ask for; starting it at a random index makes the order random enough.
return {
  name = "random",
  pick = function(t, peer)
    for piece in t:partial(peer) do peer:request_blocks(piece) end
    local start = math.random(0, t.pieces - 1)
    for piece in t:wanted(peer, start) do           -- from the random start to the end
      peer:request_blocks(piece)
    end
    for piece in t:wanted(peer, 0, start) do        -- then wrap around
      peer:request_blocks(piece)
    end
  end,
}
