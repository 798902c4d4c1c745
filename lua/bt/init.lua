--- bt: a BitTorrent engine with a C core and Lua policies.
-- `local bt = require "bt"` gives the C core's functions (bt.core) plus the Lua parts.
-- docs/api.md lists everything exported here.
local core = require "bt.core"

local bt = {}
for k, v in pairs(core) do bt[k] = v end

-- Lua parts are loaded on first use, so `require "bt"` stays cheap and a
-- missing optional part never breaks the codecs.
local lazy = {
  torrent = "bt.torrent",
  policy  = "bt.policy",
  resume  = "bt.resume",
  session = "bt.session",
}
return setmetatable(bt, {
  __index = function(t, k)
    local name = lazy[k]
    if name then
      local m = require(name)
      rawset(t, k, m)
      return m
    end
  end,
})
