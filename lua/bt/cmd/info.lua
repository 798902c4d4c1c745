--- bt-lua info FILE.torrent|MAGNET: what a torrent holds (a magnet's metadata is fetched first).
local torrent = require "bt.torrent"
local cli = require "bt.cli"

local M = {}

-- Files listed before "... and N more" unless --all.
M.DEFAULT_FILE_LIMIT = 25
-- Seconds per tracker for --scrape, and the first UDP retransmit wait within them.
M.SCRAPE_TIMEOUT, M.SCRAPE_UDP_FIRST = 5, 1

function M.setup(cmd)
  cmd:argument("torrent", "The .torrent file, or a magnet link (its metadata is fetched from the peers).")
  cmd:option("--timeout", "Magnet: give up when the metadata has not arrived within this many seconds.", "60")
  cmd:option("--peer", "Magnet: also ask this peer (HOST:PORT); may be repeated."):count("*")
  cmd:option("--bind", "Magnet: address to listen on (default: env BT_BIND, else every address).",
    os.getenv("BT_BIND") or "0.0.0.0")
  cmd:flag("--all", "List every file (default: the first " .. M.DEFAULT_FILE_LIMIT .. ").")
  cmd:flag("--scrape", "Also ask each tracker (HTTP or UDP) for seeders, leechers and completed.")
  cmd:epilog("Prints the name, size, pieces, info-hash, privacy, trackers, web seeds,\n"
    .. "comment, creator and files, then under \"Made safe\" every change made to load it:\n"
    .. "\"renamed: TORRENT PATH -> DISK PATH\" for each file name sanitized or renamed for a\n"
    .. "duplicate, \"skipped: symlink ...\" and \"ignored: ...\" lines. Exits 2 (bt.cli\n"
    .. "EXIT_TORRENT) when the file cannot be read or is not a valid torrent: one line on\n"
    .. "stderr, \"PATH: invalid torrent: WHY (at byte N)\". --scrape asks each tracker in\n"
    .. "turn (at most " .. M.SCRAPE_TIMEOUT .. " s each); a tracker's failure is printed, not fatal.\n"
    .. "A magnet link is checked first (a malformed one exits 2 at once); its metadata is then\n"
    .. "fetched (BEP 9) from its x.pe peers, --peer and the peers of its trackers, checked against\n"
    .. "the info-hash and printed as a .torrent would be; nothing is downloaded or written. Exits\n"
    .. "4 (EXIT_NOPEERS) when it has not arrived within --timeout.")
end

--- Human size with binary units: "1.50 MiB".
function M.human(n) return cli.human(n, 2) end

-- Names, comments and URLs come from the torrent: escape control bytes so a
-- hostile torrent cannot drive the terminal with escape sequences.
function M.printable(s)
  return (s:gsub("[%c\127]", function(c) return string.format("\\x%02x", c:byte()) end))
end

-- A magnet's metadata, as the bytes of a .torrent (with the magnet's trackers).
local function fetch(uri, args)
  local bt = require "bt"
  local mg, merr = bt.magnet_parse(uri)
  if not mg then cli.fail("bad magnet link: " .. merr, cli.EXIT_TORRENT) end
  local timeout = tonumber(args.timeout)
  if not timeout or timeout <= 0 then cli.fail("--timeout must be a number > 0") end
  local s = bt.session.new{ port = 0, bind = args.bind,
                            max_per_ip = tonumber(os.getenv("BT_MAX_PER_IP") or "") }
  local got, failure
  s:on("metadata", function(_, bytes) got = bytes; s:stop() end)
  s:on("error", function(_, msg) failure = msg; s:stop() end)
  local ok, aerr = pcall(s.add, s, uri, { storage = "memory", fetch_only = true, peers = args.peer })
  if not ok then s:close(); cli.fail((tostring(aerr):gsub("^[^:\n]+:%d+: ", "")), cli.EXIT_TORRENT) end
  local t0 = s.core:now()
  s:run(function() return s.core:now() - t0 > timeout end)
  s:close()
  if failure then cli.fail(failure, cli.EXIT_TORRENT) end
  if not got then cli.fail(("no metadata within %g s"):format(timeout), cli.EXIT_NOPEERS) end
  return got
end

function M.run(args)
  local src = args.torrent
  if src:sub(1, 7):lower() == "magnet:" then src = fetch(src, args) end
  local t, err = torrent.load(src)
  if not t then cli.fail(err, cli.EXIT_TORRENT) end
  local P = M.printable
  local out = {}
  local function line(k, v) out[#out + 1] = string.format("%-12s %s", k .. ":", v) end
  line("Name", P(t.name))
  line("Info-hash", t.info_hash_hex)
  line("Size", M.human(t.total_length) .. " (" .. t.total_length .. " bytes)")
  local last = t:piece_size(t.num_pieces - 1)
  line("Pieces", t.num_pieces .. " x " .. M.human(t.piece_length)
    .. (last ~= t.piece_length and " (last " .. M.human(last) .. ")" or ""))
  line("Private", t.private and "yes" or "no")
  if t.created_by then line("Created by", P(t.created_by)) end
  if t.creation_date then
    -- Any integer may be there; os.date raises on years the C library cannot
    -- represent, so such a date is shown as the number it is.
    local ok, date = pcall(os.date, "!%Y-%m-%d %H:%M:%S UTC", t.creation_date)
    line("Created on", ok and date or tostring(t.creation_date))
  end
  if t.comment then line("Comment", P(t.comment)) end
  if #t.announce_list == 0 then
    line("Trackers", "none")
  else
    out[#out + 1] = "Trackers:"
    for i, tier in ipairs(t.announce_list) do
      for _, url in ipairs(tier) do out[#out + 1] = string.format("  tier %d: %s", i, P(url)) end
    end
  end
  if args.scrape and #t.announce_list > 0 then
    local bt = require "bt"
    out[#out + 1] = "Scrape:"
    for i, tier in ipairs(t.announce_list) do
      for _, url in ipairs(tier) do
        local r, serr = bt.tracker.scrape({ url = url, info_hash = t.info_hash, peer_id = bt.peer_id(),
                                           connect_timeout = M.SCRAPE_UDP_FIRST }, M.SCRAPE_TIMEOUT)
        local what
        if r and not r.failure_reason then
          local function n(v) return v and tostring(v) or "?" end
          what = ("%s seeders, %s leechers, %s completed"):format(n(r.complete), n(r.incomplete), n(r.downloaded))
        else
          what = P(tostring(r and r.failure_reason or serr))
        end
        out[#out + 1] = string.format("  tier %d: %s: %s", i, P(url), what)
      end
    end
  end
  if #t.url_list > 0 or #t.http_seeds > 0 then
    out[#out + 1] = "Web seeds:"
    for _, url in ipairs(t.url_list) do out[#out + 1] = "  " .. P(url) end
    for _, url in ipairs(t.http_seeds) do out[#out + 1] = "  " .. P(url) .. "  (BEP 17)" end
  end
  out[#out + 1] = "Files:       " .. t.num_files
  local limit = args.all and math.huge or M.DEFAULT_FILE_LIMIT
  local m = t.meta
  local shown = math.min(t.num_files, limit)
  for i = 1, shown do
    local f = m:file(i)   -- one at a time: listing 25 of 100,000 files builds 25 tables
    local path = t.multi_file and t.name .. "/" .. table.concat(f.path, "/") or t.name
    local tags = (f.pad and "  (padding)" or "") .. (f.executable and "  (executable)" or "")
      .. (f.hidden and "  (hidden)" or "") .. (f.symlink and "  (symlink -> " .. P(f.symlink) .. ")" or "")
    out[#out + 1] = string.format("  %12s  %s%s", M.human(f.length), P(path), tags)
  end
  if shown < t.num_files then
    out[#out + 1] = string.format("  ... and %d more (--all lists them)", t.num_files - shown)
  end
  -- What was made safe or ignored: every change, whatever --all says (one
  -- line each, the paths as the torrent has them and as they go on disk).
  local changes = {}
  for _, note in ipairs(t.notes) do changes[#changes + 1] = note end
  if t.disk_name ~= t.name then
    changes[#changes + 1] = "renamed: name " .. P(t.name) .. " -> " .. P(t.disk_name)
  end
  if m.num_sanitized > 0 or m.num_links_skipped > 0 then
    for i = 1, t.num_files do
      local f = m:file(i)
      local torrent_path = table.concat(f.path, "/")
      if f.disk_path ~= f.path and not f.pad and t.multi_file then
        changes[#changes + 1] = "renamed: " .. P(torrent_path) .. " -> " .. P(table.concat(f.disk_path, "/"))
          .. (f.renamed and " (another file has that name)" or "")
      end
      if f.link_skipped then
        changes[#changes + 1] = "skipped: symlink " .. P(table.concat(f.disk_path, "/"))
          .. " (its target is outside the torrent's folder)"
      end
    end
  end
  if #changes > 0 then
    out[#out + 1] = "Made safe:   " .. #changes
    for _, c in ipairs(changes) do out[#out + 1] = "  " .. c end
  end
  io.stdout:write(table.concat(out, "\n"), "\n")
  return 0
end

return M
