-- choking.lua's swarm with the three candidates joining late (at 12 s, when the others,
-- who joined over the first 5 s, hold 12 % of the pieces in the median, 9-17 % between
-- the quartiles, measured over 20 runs): a client joining a swarm already under way, as in
-- the paper's live swarms, where its peers have pieces it lacks from the start. Only the
-- mixes with one strategic client. docs/lab.md ("Choking") has the figures.
local s = include("choking.lua")
s.name = "choking_late"
s.description = "One strategic client joining late (low, median or high capacity) among tit-for-tat "
  .. "clients of skewed capacities."
for _, g in ipairs(s.groups) do
  if g.name:match("^cand_") then g.join = { at = 12 } end
end
-- none, one_low, one_med, one_high: not all_strategic
local last = table.remove(s.mixes)
if last.name ~= "all_strategic" then error("choking.lua's last mix is not all_strategic") end
return s
