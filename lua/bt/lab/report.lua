--- bt.lab.report: what a lab run leaves in --out: runs.jsonl (every record), summary.md
-- (a table per policy, across runs) and three plots drawn by gnuplot (SVG): the completion
-- time CDF per mix and group, the minimum availability over time per mix, the progress of
-- every leecher in each mix's first run. docs/lab.md says how each figure is computed.
--
--   report.write(sc, records, { out = "lab-out", runs = 3, seed = 1 })  -> { summary =, plots = {...} }
local cjson = require "cjson"
local proc = require "bt.lab.proc"

local M = {}

local function writefile(path, s)
  local f, err = io.open(path, "wb")
  if not f then error("cannot write " .. path .. ": " .. tostring(err), 0) end
  f:write(s)
  f:close()
end

local function num(v) return type(v) == "number" and v or nil end

--- The q-quantile (0..1) of a sorted list by nearest rank; math.huge stands for "never".
local function quantile(sorted, q)
  if #sorted == 0 then return nil end
  local k = math.max(1, math.min(#sorted, math.ceil(q * #sorted)))
  return sorted[k]
end
M.quantile = quantile

local function sorted(list)
  local c = { table.unpack(list) }
  table.sort(c)
  return c
end

local function fmt_s(v)
  if v == nil then return "-" end
  if v == math.huge then return "never" end
  return ("%.1f"):format(v)
end

local function fmt_mib(v)
  if v == nil then return "-" end
  return ("%.2f"):format(v / 1048576)
end

--- One row per mix and group: the figures of summary.md.
function M.rows(sc, records)
  local rows, by = {}, {}
  local runs_of = {}   -- mix -> { run records }
  local use = {}       -- mix -> { sum of seed_up / seed_capacity, samples }: the seeds' upload in use
  for _, r in ipairs(records) do
    if r.kind == "run" then
      runs_of[r.mix] = runs_of[r.mix] or {}
      table.insert(runs_of[r.mix], r)
    elseif r.kind == "sample" and num(r.seed_capacity) and r.seed_capacity > 0 and r.t >= 1 then
      local u = use[r.mix] or { 0, 0 }
      u[1], u[2] = u[1] + math.min(1, r.seed_up / r.seed_capacity), u[2] + 1
      use[r.mix] = u
    end
  end
  for _, mix in ipairs(sc.mixes) do
    for _, g in ipairs(sc.groups) do
      local row = { mix = mix.name, group = g.name, completion = {}, in_order = {}, first_piece = {}, dup = {},
                    cancels = {}, share = {}, per_run = {}, leechers = 0, unfinished = 0 }
      rows[#rows + 1] = row
      by[mix.name .. "\0" .. g.name] = row
    end
  end
  for _, r in ipairs(records) do
    local row = r.kind == "leecher" and by[r.mix .. "\0" .. r.group]
    if row then
      row.policy = r.policy
      row.leechers = row.leechers + 1
      local c = num(r.completion) or math.huge
      if c == math.huge then row.unfinished = row.unfinished + 1 end
      table.insert(row.completion, c)
      table.insert(row.in_order, num(r.first_in_order) or math.huge)
      table.insert(row.first_piece, num(r.first_piece) or math.huge)
      table.insert(row.dup, r.dup)
      table.insert(row.cancels, r.cancels)
      table.insert(row.share, r.seed_share)
      row.per_run[r.run] = row.per_run[r.run] or {}
      table.insert(row.per_run[r.run], c)
    end
  end
  for _, row in ipairs(rows) do
    local meds = {}
    for _, list in pairs(row.per_run) do meds[#meds + 1] = quantile(sorted(list), 0.5) end
    meds = sorted(meds)
    row.run_medians = meds
    local copies = {}
    for _, rr in ipairs(runs_of[row.mix] or {}) do copies[#copies + 1] = rr.seed_copies end
    row.seed_copies = quantile(sorted(copies), 0.5)
    local u = use[row.mix]
    row.seed_use = u and u[2] > 0 and u[1] / u[2] or nil
    row.completion = sorted(row.completion)
  end
  return rows
end

function M.summary(sc, rows, opts)
  local L = {}
  L[#L + 1] = ("# Lab: %s"):format(sc.name)
  L[#L + 1] = ""
  if sc.description then L[#L + 1] = sc.description; L[#L + 1] = "" end
  L[#L + 1] = ("%s: %d run(s) per mix, seeds %d to %d; payload %d bytes in %d pieces of %d; %d peers "
    .. "(%d seeds); time limit %d s."):format(sc.source, opts.runs, opts.seed, opts.seed + opts.runs - 1,
    sc.size, sc.pieces, sc.piece, sc.npeers, sc.seeds.count, sc.time_limit)
  L[#L + 1] = ""
  L[#L + 1] = "Seconds are counted from each leecher's join; `never`: it did not finish within the time limit "
    .. "(it counts as slower than every finisher in the median and p90). `run medians`: the lowest and highest "
    .. "median of one run, the spread over repeated runs. `in order`: seconds until the first "
    .. ("%d %% of the pieces were all held, in order. "):format(math.floor(sc.in_order * 100 + 0.5))
    .. "`seed copies`: the seeds' upload in payload copies (median of "
    .. "runs). `dup`: duplicate MiB per leecher (median); `cancels`: cancel messages per leecher (median); "
    .. "`seed share`: a leecher's share of the seeds' upload (median). `seed use`: the seeds' upload "
    .. "against their limits, averaged over the samples while a limited seed was present."
  L[#L + 1] = ""
  L[#L + 1] = "| mix | group | policy | leechers | median s | run medians | p90 s | first piece s | in order s "
    .. "| dup MiB | cancels | seed share | seed copies | seed use | unfinished |"
  L[#L + 1] = "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for _, r in ipairs(rows) do
    local meds = r.run_medians
    L[#L + 1] = ("| %s | %s | %s | %d | %s | %s–%s | %s | %s | %s | %s | %s | %s | %s | %s | %d (%.0f %%) |"):format(
      r.mix, r.group, r.policy or "-", r.leechers, fmt_s(quantile(r.completion, 0.5)),
      fmt_s(meds[1]), fmt_s(meds[#meds]), fmt_s(quantile(r.completion, 0.9)),
      fmt_s(quantile(sorted(r.first_piece), 0.5)), fmt_s(quantile(sorted(r.in_order), 0.5)),
      fmt_mib(quantile(sorted(r.dup), 0.5)), tostring(quantile(sorted(r.cancels), 0.5) or "-"),
      r.share[1] and ("%.3f"):format(quantile(sorted(r.share), 0.5)) or "-",
      r.seed_copies and ("%.2f"):format(r.seed_copies) or "-",
      r.seed_use and ("%.0f %%"):format(100 * r.seed_use) or "-",
      r.unfinished, r.leechers > 0 and 100 * r.unfinished / r.leechers or 0)
  end
  return table.concat(L, "\n") .. "\n"
end

local function gp_quote(s) return "'" .. s:gsub("'", "''") .. "'" end

--- Data files and one gnuplot script for the three plots; runs gnuplot. Returns the paths.
function M.plots(sc, records, rows, out)
  local dat = out .. "/plot-data"
  assert(os.execute("mkdir -p " .. proc.q(dat)))
  local script = { "set terminal svg size 960,540 dynamic background rgb 'white' font 'sans,12'",
                   "set termoption noenhanced", "set grid", "set key outside right top" }
  -- 1. completion time CDF: the fraction of a group's leechers (all runs) done by t
  local series = {}
  for _, r in ipairs(rows) do
    local lines = {}
    for i, c in ipairs(r.completion) do
      if c ~= math.huge then lines[#lines + 1] = ("%.3f %.5f"):format(c, i / #r.completion) end
    end
    if #lines > 0 then
      local f = ("%s/cdf-%s-%s.dat"):format(dat, r.mix, r.group)
      writefile(f, "0 0\n" .. table.concat(lines, "\n") .. "\n")
      series[#series + 1] = ("%s using 1:2 with steps lw 2 title %s"):format(gp_quote(f),
        gp_quote(#sc.groups > 1 and (r.mix .. " / " .. r.group) or r.mix))
    end
  end
  local plots = {}
  local function add(name, title, xlabel, ylabel, body)
    local path = out .. "/" .. name
    script[#script + 1] = ("set output %s"):format(gp_quote(path))
    script[#script + 1] = ("set title %s noenhanced"):format(gp_quote(title))
    script[#script + 1] = ("set xlabel %s; set ylabel %s"):format(gp_quote(xlabel), gp_quote(ylabel))
    for _, l in ipairs(body) do script[#script + 1] = l end
    script[#script + 1] = "unset output"
    plots[#plots + 1] = path
  end
  if #series > 0 then
    add("cdf.svg", sc.name .. ": completion time (all runs)", "seconds from join", "fraction of leechers complete",
      { "set yrange [0:1]", "plot " .. table.concat(series, ", ") })
  end
  -- 2. minimum copies of a piece among the peers present, every run of every mix
  series = {}
  for mi, mix in ipairs(sc.mixes) do
    local blocks = {}
    local cur, last_run = {}, nil
    for _, r in ipairs(records) do
      if r.kind == "sample" and r.mix == mix.name then
        if last_run and r.run ~= last_run then blocks[#blocks + 1] = table.concat(cur, "\n"); cur = {} end
        last_run = r.run
        cur[#cur + 1] = ("%.2f %d %.3f %d %d"):format(r.t, r.min, r.mean, r.max, r.zero)
      end
    end
    if #cur > 0 then blocks[#blocks + 1] = table.concat(cur, "\n") end
    if #blocks > 0 then
      local f = ("%s/avail-%s.dat"):format(dat, mix.name)
      writefile(f, table.concat(blocks, "\n\n") .. "\n")
      series[#series + 1] = ("%s using 1:2 with lines lw 2 lc %d title %s"):format(gp_quote(f), mi,
        gp_quote(mix.name .. " (min)"))
      series[#series + 1] = ("%s using 1:3 with lines dt 2 lc %d title %s"):format(gp_quote(f), mi,
        gp_quote(mix.name .. " (mean)"))
    end
  end
  if #series > 0 then
    add("availability.svg", sc.name .. ": copies of the rarest piece among the peers present (every run)",
      "seconds", "copies", { "set yrange [0:*]", "plot " .. table.concat(series, ", ") })
  end
  -- 3. progress of every leecher in each mix's first run, one panel per mix
  local panels = {}
  local gindex = {}
  for gi, g in ipairs(sc.groups) do gindex[g.name] = gi end
  for _, mix in ipairs(sc.mixes) do
    local first
    for _, r in ipairs(records) do
      if r.kind == "run" and r.mix == mix.name then first = first or r.run end
    end
    local blocks = {}
    for _, r in ipairs(records) do
      if r.kind == "leecher" and r.mix == mix.name and r.run == first and num(r.join) then
        local lines = { ("%.3f 0 %d"):format(r.join, gindex[r.group]) }
        for i, t in ipairs(r.piece_times) do
          lines[#lines + 1] = ("%.3f %.5f %d"):format(t, i / sc.pieces, gindex[r.group])
        end
        blocks[#blocks + 1] = table.concat(lines, "\n")
      end
    end
    if #blocks > 0 then
      local f = ("%s/progress-%s.dat"):format(dat, mix.name)
      writefile(f, table.concat(blocks, "\n\n") .. "\n")
      panels[#panels + 1] = { mix = mix.name, file = f }
    end
  end
  if #panels > 0 then
    local groups = {}
    for gi, g in ipairs(sc.groups) do groups[#groups + 1] = ("%s: colour %d"):format(g.name, gi) end
    local body = { ("set multiplot layout %d,1"):format(#panels), "set yrange [0:1]", "unset key" }
    for _, p in ipairs(panels) do
      local title = p.mix .. ", first run (" .. table.concat(groups, ", ") .. ")"
      body[#body + 1] = ("set title %s noenhanced"):format(gp_quote(title))
      body[#body + 1] = ("plot %s using 1:2:3 with lines lc variable"):format(gp_quote(p.file))
    end
    body[#body + 1] = "unset multiplot"
    script[#script + 1] = ("set terminal svg size 960,%d dynamic background rgb 'white' font 'sans,12'")
      :format(math.max(540, 300 * #panels))
    script[#script + 1] = "set termoption noenhanced"
    add("progress.svg", "", "seconds", "fraction of pieces", body)
  end
  local sp = out .. "/plots.gp"
  writefile(sp, table.concat(script, "\n") .. "\n")
  local o, ok = proc.sh("gnuplot " .. proc.q(sp))
  if not ok then
    error(("gnuplot failed (the Debian package gnuplot-nox; make deps installs it): %s"):format(o), 0)
  end
  return plots
end

--- runs.jsonl in folder `out`, opened for appending run by run (emptied first): returns
-- append(records), which writes them one JSON line each and flushes, so the runs finished
-- before a Ctrl-C or a crash are kept, and close().
function M.open_runs(out)
  assert(os.execute("mkdir -p " .. proc.q(out)))
  local path = out .. "/runs.jsonl"
  local f = assert(io.open(path, "wb"))
  local function append(records)
    for _, r in ipairs(records) do assert(f:write(cjson.encode(r), "\n")) end
    assert(f:flush())
  end
  return append, function() f:close() end, path
end

--- Write runs.jsonl (unless opts.appended: M.open_runs wrote it run by run), summary.md and
-- the plots into opts.out. Returns {summary=text, plots=, rows=}.
function M.write(sc, records, opts)
  assert(os.execute("mkdir -p " .. proc.q(opts.out)))
  if not opts.appended then
    local append, close = M.open_runs(opts.out)
    append(records)
    close()
  end
  local rows = M.rows(sc, records)
  local text = M.summary(sc, rows, opts)
  -- the table first: a failing gnuplot must not cost the runs' figures
  writefile(opts.out .. "/summary.md", text)
  local plots = M.plots(sc, records, rows, opts.out)
  writefile(opts.out .. "/summary.md", text .. "\nPlots: " .. table.concat(plots, ", ") .. "\n")
  return { summary = text, plots = plots, rows = rows }
end

return M
