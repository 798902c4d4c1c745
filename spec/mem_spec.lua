-- The slab behind the engine's partial records (csrc/core/mem.c), under seeded random
-- allocations and frees (spec/mem_c_test.c), built with ASan+UBSan.
local H = require "helpers"

describe("core slab (C)", function()
  it("hands out zeroed, aligned, separate records, reuses freed ones, and frees everything", function()
    H.seeded_c_test("mem_c_test", "csrc/core/mem.c", { "1", "7", "4242" }, "8000")
  end)
end)
