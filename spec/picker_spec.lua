-- The piece picker (csrc/engine/picker.c, over csrc/core/bitset.c): availability levels against a naive model
-- (spec/picker_c_test.c: seeded random adds, removals, availability changes, peers'
-- sets arriving and leaving, and iterations that start pieces as they go).
local H = require "helpers"

describe("engine picker (C)", function()
  it("gives the model's order: rarest or most common first, ties from the rotation start", function()
    H.seeded_c_test("picker_c_test", "csrc/engine/picker.c csrc/core/bitset.c csrc/core/ranges.c csrc/core/mem.c",
      { "1", "2", "31337" }, "3000")
  end)
end)
