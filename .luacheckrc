-- luacheck configuration for bt-lua (`make lint`). Every file is Lua 5.4.
-- Exceptions to single warnings are made inline, next to the code, with a
-- comment saying why; nothing here turns a warning class off for the tree.
std = "lua54"

-- The code keeps to 120 columns almost everywhere; longer lines are wrapped.
max_line_length = 120

-- lua/: the library (bt, bt.session, bt.policy...). It is loaded with require and
-- never reads the command line: the CLI modules get their arguments from
-- bt.cli.main(arg), which only the scripts/bt-lua launcher calls with `arg`.
files["lua"] = { not_globals = { "arg" } }

-- examples/ and scripts/ (including scripts/bt-lua, which has no .lua extension
-- and is named on the luacheck command line) are programs: plain lua54, `arg` allowed.

-- spec/: busted specs, run inside busted (describe, it, assert.are...).
files["spec"] = { std = "+busted" }
-- ...except the programs the specs start as child processes with lua5.4, and the
-- fixture generator: outside busted, its globals would be accidental.
files["spec/peers"] = { std = "lua54" }
files["spec/tsan"] = { std = "lua54" }
files["spec/fixtures"] = { std = "lua54" }
files["spec/fake_tracker.lua"] = { std = "lua54" }

-- examples/lab/: scenarios run in the lab's sandbox (lua/bt/lab/scenario.lua), which gives
-- them include() to build one scenario on another. The policies there do not use it.
files["examples/lab"] = { read_globals = { "include" } }
