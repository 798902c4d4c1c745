-- The slab behind the engine's partial records (csrc/core/mem.c), under seeded random
-- allocations and frees (spec/mem_c_test.c), built with ASan+UBSan.
local H = require "helpers"

describe("core slab (C)", function()
  it("hands out zeroed, aligned, separate records, reuses freed ones, and frees everything", function()
    local dir = H.tmpdir()
    local exe = dir .. "/mem_c_test"
    local out, built = H.build_c_test(exe, "spec/mem_c_test.c csrc/core/mem.c")
    assert(built, out)
    for _, seed in ipairs({ "1", "7", "4242" }) do
      local res, ran = H.run_c_test(exe, seed, "20000")
      assert.is_true(ran, res)
      assert.matches("all passed", res)
    end
    H.rmtree(dir)
  end)
end)
