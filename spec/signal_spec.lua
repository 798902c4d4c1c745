-- Shutdown by signal survives the signal being repeated. timeout(1) sends SIGTERM to its
-- child and again to its process group, and users press Ctrl-C twice: a repeat still
-- pending when the session's signal watchers went (libev then unblocks it with the
-- default action) killed bt-lua with status 143 before it could exit 0 (seen in the
-- demo spec). csrc/engine/session.c ignores the caught signals once one has stopped it.
local H = require "helpers"
local S = require "swarm_helpers"
local socket = require "socket"

local read_or_empty = S.read_or_empty

describe("bt-lua run stopped by a burst of SIGTERMs", function()
  local dir, pid
  before_each(function() dir = H.tmpdir() end)
  after_each(function()
    if pid then S.kill(pid) end
    H.rmtree(dir)
  end)

  -- The race is a matter of microseconds: each round has a fair chance to hit it (about
  -- one in three before the first fix, measured), so the spec runs several. A second, far
  -- narrower window (between libev restoring the default action and our SIG_IGN) failed
  -- one CI run in about twenty; SIGNAL_ROUNDS=60 runs the spec long enough to look for it.
  local ROUNDS = tonumber(os.getenv("SIGNAL_ROUNDS")) or 4

  local function round(torrent, n)
    -- a peer nobody listens on: bt-lua waits (up to --timeout) with nothing to do
    local stats = dir .. "/stats" .. n .. ".json"
    local h = S.start_btlua(dir, ("run bt.policy.default %s -o %s --peer 127.0.0.1:%d --no-trackers --timeout 60 "
      .. "--stats %s"):format(H.q(torrent), H.q(dir .. "/out"), S.port(), H.q(stats)), 60)
    pid = h.pid
    local deadline = socket.gettime() + 10
    while socket.gettime() < deadline and read_or_empty(stats) == "" do socket.sleep(0.05) end
    assert.is_true(read_or_empty(stats) ~= "", "bt-lua never ran its loop: " .. read_or_empty(h.log))
    -- signals back to back (a kill every millisecond or so, until the process is gone): the
    -- first stops the loop, the rest land during the shutdown (resume data, closing the
    -- session) and while the watchers go
    os.execute(("for i in $(seq 2000); do kill -TERM %d 2>/dev/null || break; done"):format(pid))
    deadline = socket.gettime() + 15
    while not S.rc_of(h) and socket.gettime() < deadline do socket.sleep(0.05) end
    assert.are.equal(0, S.rc_of(h), read_or_empty(h.log))
    assert.truthy(read_or_empty(h.log):find("interrupted by SIGTERM", 1, true), read_or_empty(h.log))
    pid = nil
  end

  it("exits 0 after saying it was interrupted, however many follow the first", function()
    os.execute("mkdir -p " .. H.q(dir .. "/seed") .. " " .. H.q(dir .. "/out"))
    S.make_files(dir .. "/seed", { ["payload.bin"] = 64 * 1024 }, 5)
    local torrent = S.mktorrent(dir .. "/seed/payload.bin", dir .. "/p.torrent", 15)
    for n = 1, ROUNDS do round(torrent, n) end
  end)
end)
