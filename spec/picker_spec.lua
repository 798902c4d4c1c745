-- The piece picker (csrc/engine/picker.c, over csrc/core/bitset.c): availability levels against a naive model
-- (spec/picker_c_test.c: seeded random adds, removals, availability changes, peers'
-- sets arriving and leaving, and iterations that start pieces as they go).
local H = require "helpers"

describe("engine picker (C)", function()
  it("gives the model's order: rarest or most common first, ties from the rotation start", function()
    local dir = H.tmpdir()
    local exe = dir .. "/picker_c_test"
    local out, built = H.build_c_test(exe,
      "spec/picker_c_test.c csrc/engine/picker.c csrc/core/bitset.c csrc/core/ranges.c csrc/core/mem.c")
    assert(built, out)
    for _, seed in ipairs({ "1", "2", "31337" }) do
      local res, ran = H.run_c_test(exe, seed, "3000")
      assert.is_true(ran, res)
      assert.matches("all passed", res)
    end
    H.rmtree(dir)
  end)
end)
