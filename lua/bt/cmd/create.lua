--- bt-lua create PATH -o FILE.torrent: make a .torrent from a file or a folder.
local bt = require "bt"
local torrent = require "bt.torrent"
local cli = require "bt.cli"
local info = require "bt.cmd.info"

local M = {}

--- "16K", "1M", "1MiB", "262144" -> bytes (K, M, G are powers of 1024) | nil.
function M.parse_size(s)
  local num, unit = tostring(s):match("^%s*(%d+)%s*([kKmMgG]?)[iI]?[bB]?%s*$")
  if not num then return nil end
  local n = math.tointeger(tonumber(num))
  if not n then return nil end
  local mult = ({ [""] = 1, k = 1024, m = 1024 ^ 2, g = 1024 ^ 3 })[unit:lower()]
  if n > math.maxinteger // mult then return nil end
  return n * math.tointeger(mult)
end

function M.setup(cmd)
  cmd:argument("path", "The file or folder to share.")
  cmd:option("-o --output", "Where to write the .torrent."):args(1):count(1)
  cmd:option("-a --announce", "Tracker URL; repeat for more trackers, each its own tier.")
    :args(1):count("*")
  cmd:option("-w --web-seed", "Web seed URL (BEP 19); may be repeated."):args(1):count("*")
  cmd:option("-l --piece-length",
    "Piece length: bytes or with a K/M suffix (16K, 1M); a power of two from 16K to 16M.\n"
    .. "Default: chosen from the total size for about 1000-2000 pieces.")
  cmd:option("-c --comment", "Comment stored in the torrent.")
  cmd:option("-n --name", "Name of the torrent (default: the file or folder's name).")
  cmd:flag("-p --private", "Mark the torrent private (BEP 27: trackers only, no DHT or PEX).")
  cmd:flag("-f --force", "Overwrite the output file if it exists.")
  cmd:epilog("A folder becomes a multi-file torrent: every regular file in it, hidden ones\n"
    .. "included, sorted by path; symbolic links and special files are refused.\n"
    .. "Exits 1 on any error (message on stderr), and never leaves a partial output file.")
end

function M.run(args)
  local pl
  if args.piece_length then
    pl = M.parse_size(args.piece_length)
    if not pl or pl < torrent.MIN_PIECE_LENGTH or pl > torrent.MAX_PIECE_LENGTH or pl & (pl - 1) ~= 0 then
      cli.fail("bad piece length '" .. args.piece_length .. "': need a power of two from 16K to 16M")
    end
  end
  local out = args.output
  if not args.force and bt.fs.stat(out) then
    cli.fail(out .. " exists (use --force to overwrite)")
  end
  local tiers
  if #args.announce > 1 then
    tiers = {}
    for i, url in ipairs(args.announce) do tiers[i] = { url } end
  end
  for _, u in ipairs(args.announce) do if u == "" then cli.fail("empty tracker URL") end end
  for _, u in ipairs(args.web_seed) do if u == "" then cli.fail("empty web seed URL") end end
  local bytes, err = torrent.create {
    path = args.path,
    piece_length = pl,
    announce = args.announce[1],
    announce_list = tiers,
    url_list = #args.web_seed > 0 and args.web_seed or nil,
    comment = args.comment,
    name = args.name,
    private = args.private,
  }
  if not bytes then cli.fail(err) end
  -- Write beside the target and rename, so a failure never leaves half a file.
  local tmp = out .. ".tmp-bt-lua"
  local f, ferr = io.open(tmp, "wb")
  if not f then cli.fail(ferr) end
  local ok, werr = f:write(bytes)
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    cli.fail(tmp .. ": " .. tostring(werr or cerr))
  end
  local rok, rerr = os.rename(tmp, out)
  if not rok then
    os.remove(tmp)
    cli.fail(rerr)
  end
  local t = assert(torrent.load(bytes))
  io.stdout:write(string.format("%s: %s, %d file%s, %s, %d pieces of %s, info-hash %s\n",
    out, info.printable(t.name), t.num_files, t.num_files == 1 and "" or "s",
    info.human(t.total_length), t.num_pieces, info.human(t.piece_length), t.info_hash_hex))
  return 0
end

return M
