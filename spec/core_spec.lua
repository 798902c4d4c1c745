describe("bt module", function()
  it("runs on Lua 5.4, never on 5.1", function()
    assert.are.equal("Lua 5.4", _VERSION)
  end)

  it("loads the C core through require 'bt'", function()
    local bt = require "bt"
    assert.are.equal("string", type(bt.version))
    assert.are.equal(require("bt.core").version, bt.version)
  end)
end)
