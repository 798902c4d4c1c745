--- bt.lab.rng: a small seeded generator (SplitMix64) of the lab's own, so that a run's
-- join schedule and rate draws depend on the seed alone, never on what else called
-- math.random in the process.
--
--   local r = rng.new(42)
--   r:uniform(0, 10)   -- a float in [0, 10)
--   r:exp(2)           -- an exponential gap of rate 2 per second
--   r:int(1, 6)        -- an integer in [1, 6]
--   r:derive(7)        -- an integer seed for another generator (a peer's math.random)
local M = {}

local R = {}
R.__index = R

function M.new(seed)
  if math.type(seed) ~= "integer" then error("bt.lab.rng: the seed must be an integer", 2) end
  return setmetatable({ s = seed }, R)
end

--- The next 64-bit integer (SplitMix64: Steele, Lea and Flood, OOPSLA 2014).
function R:next()
  self.s = self.s + 0x9E3779B97F4A7C15
  local z = self.s
  z = (z ~ (z >> 30)) * 0xBF58476D1CE4E5B9
  z = (z ~ (z >> 27)) * 0x94D049BB133111EB
  return z ~ (z >> 31)
end

--- A float in [0, 1): the top 53 bits.
function R:float()
  return (self:next() >> 11) * 2.0 ^ -53
end

function R:uniform(a, b)
  return a + (b - a) * self:float()
end

function R:int(a, b)
  return a + math.floor(self:float() * (b - a + 1))
end

function R:exp(rate)
  return -math.log(1 - self:float()) / rate
end

--- A non-negative seed for math.randomseed, different for each `salt`.
function R:derive(salt)
  local r = M.new(self.s ~ (salt * 0x632BE59BD9B4E019))
  return r:next() & 0x7FFFFFFFFFFFFFFF
end

return M
