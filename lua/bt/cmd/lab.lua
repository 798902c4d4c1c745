--- bt-lua lab SCENARIO.lua [--runs N] [--seed S] [--out DIR]: the strategy lab. Runs the
-- scenario's swarm on 127.0.0.1 once per mix of policies and repetition (bt.lab.runner),
-- then writes runs.jsonl, summary.md and the plots into DIR (bt.lab.report) and prints the
-- summary table and the plots' paths. docs/lab.md describes the scenario format and
-- every figure. runs.jsonl gets each run's records as the run ends. Exit 0; 1 on a failure;
-- 2 for a bad scenario; 130 after Ctrl-C (everything it started is stopped and its scratch
-- folder removed; runs.jsonl keeps the runs finished).
local cli = require "bt.cli"

local M = {}

M.EXIT_SCENARIO, M.EXIT_INTERRUPTED = 2, 130
M.MAX_RUNS = 1000
-- Progress on a terminal: the line redrawn in place; in a log, one line this often (s).
M.PLAIN_EVERY = 5

function M.setup(cmd)
  cmd:argument("scenario", "Scenario file (a Lua table; examples/lab/ has several).")
  cmd:option("--runs", "Repetitions of every mix (repetition r uses seed S + r - 1 for every mix).", "3")
  cmd:option("--seed", "First seed: it fixes the join schedule, the rate draws and every peer's math.random.", "1")
  cmd:option("--out", "Folder for runs.jsonl, summary.md and the plots (default lab-out/NAME).")
  cmd:flag("--keep", "Keep the scratch folder (payload, torrent, every peer's events and log) and say where.")
  cmd:epilog("Each peer is a bt-lua session in a process of its own on 127.0.0.1, wired directly to the "
    .. "others; plots are drawn by gnuplot. See docs/lab.md.")
end

local function integer(v, name, lo, hi)
  local n = math.tointeger(tonumber(v))
  if not n or n < lo or n > hi then cli.fail(("--%s must be an integer from %d to %d"):format(name, lo, hi)) end
  return n
end

function M.run(args)
  local scenario = require "bt.lab.scenario"
  local runner = require "bt.lab.runner"
  local report = require "bt.lab.report"
  local proc = require "bt.lab.proc"
  local runs = integer(args.runs, "runs", 1, M.MAX_RUNS)
  local seed = integer(args.seed, "seed", 0, math.maxinteger - M.MAX_RUNS)
  local sc, err = scenario.load(args.scenario)
  if not sc then cli.fail(err, M.EXIT_SCENARIO) end
  local out = args.out or ("lab-out/" .. sc.name)
  local tty = (os.getenv("TERM") or "dumb") ~= "dumb" and os.execute("test -t 2") == true
  local last_plain = -math.huge
  local socket = require "socket"
  local function progress(line)
    if tty then
      io.stderr:write("\r\27[K", line)
    elseif socket.gettime() - last_plain >= M.PLAIN_EVERY then
      io.stderr:write(line, "\n")
      last_plain = socket.gettime()
    end
    io.stderr:flush()
  end
  local tmp = proc.sh("mktemp -d /tmp/bt-lab.XXXXXX"):match("^(/tmp/bt%-lab%.%w+)")
  if not tmp then cli.fail("mktemp failed") end
  io.stderr:write(("lab: %s, %d mix(es) x %d run(s), %d peers each, scratch %s\n"):format(sc.name, #sc.mixes, runs,
    sc.npeers, tmp))
  -- every run's records go to runs.jsonl as the run ends: Ctrl-C or a crash keeps them
  local okr, append, close_runs, runs_path = pcall(report.open_runs, out)
  if not okr then
    proc.sh("rm -rf " .. proc.q(tmp))
    cli.fail(("cannot write into %s: %s"):format(out, tostring(append)))
  end
  local ok, res = pcall(runner.run, sc, { runs = runs, seed = seed, dir = tmp, progress = progress, on_run = append })
  close_runs()
  if tty then io.stderr:write("\n") end
  local function cleanup()
    if args.keep then io.stderr:write("lab: kept ", tmp, "\n") else proc.sh("rm -rf " .. proc.q(tmp)) end
  end
  if not ok then
    cleanup()
    if tostring(res):match("interrupted!$") then
      cli.fail("interrupted; stopped every peer it started; the runs finished are in " .. runs_path,
        M.EXIT_INTERRUPTED)
    end
    cli.fail(("%s (the runs finished before are in %s)"):format(tostring(res), runs_path))
  end
  local wok, w = pcall(report.write, sc, res, { out = out, runs = runs, seed = seed, appended = true })
  cleanup()
  if not wok then cli.fail(("%s (what was written is in %s)"):format(tostring(w), out)) end
  io.stdout:write(w.summary, "\n")
  io.stdout:write(("runs: %s/runs.jsonl\nsummary: %s/summary.md\n"):format(out, out))
  for _, p in ipairs(w.plots) do io.stdout:write("plot: ", p, "\n") end
  return 0
end

return M
