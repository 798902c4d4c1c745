--- bt.torrent: load .torrent files (validated metainfo) and create them.
--
--   local t, err = bt.torrent.load("file.torrent")   -- or the bytes themselves
--   t.info_hash_hex, t.name, t.total_length, t.files[1].path ...
--   local bytes = bt.torrent.create{ path = "folder", announce = "http://..." }
--
-- Parsing and validation are C (csrc/metainfo.c: info-hash over the raw bytes of
-- the info dictionary, path sanitizing, piece count); this module reads the
-- optional top-level keys and checks their types, and hashes files for create.
local core = require "bt.core"

local M = {}

-- A .torrent larger than this is refused before reading: it is the parser's
-- own cap (BT_META_MAX_SIZE, 64 MiB: 2 M pieces are 40 MiB of hashes; real
-- torrents are well under 10 MiB). bt.meta_limits lists the others.
M.MAX_TORRENT_FILE = core.meta_limits.max_size

-- Piece lengths that create accepts and picks: powers of two from one block
-- (16 KiB, the request size every client uses) to 16 MiB (larger pieces make
-- a failed hash expensive to redownload, and some clients refuse them).
M.MIN_PIECE_LENGTH = 16 * 1024
M.MAX_PIECE_LENGTH = 16 * 1024 * 1024
-- The default piece length aims at 1000..2000 pieces: few enough for a small
-- .torrent, enough that peers can trade pieces early.
M.TARGET_PIECES = 2000
-- Files are read in chunks of this size while hashing (large reads keep the
-- syscall and Lua-call overhead far below the cost of SHA-1).
M.READ_CHUNK = 4 * 1024 * 1024
-- Folder nesting create follows (it recurses a folder at a time; real trees are shallow).
-- The parser takes more: any path whose disk form is at most 4095 bytes.
M.MAX_DEPTH = 64

---------------------------------------------------------------------------
-- load
---------------------------------------------------------------------------

local Torrent = {}
Torrent.__name = "bt.torrent"

local methods = {}

--- t:piece_hash(i) -> 20 raw bytes of piece i (0-based, as on the wire).
function methods:piece_hash(i) return self.meta:piece_hash(i) end

--- t:piece_size(i) -> length of piece i (0-based; the last may be short).
function methods:piece_size(i) return self.meta:piece_size(i) end

-- `files` is built on first use: on 100,000 files, making the Lua tables costs
-- more than parsing and validating the whole torrent, and the engine reads the
-- file layout from t.meta in C. Afterwards it is a plain table.
function Torrent.__index(t, k)
  local m = methods[k]
  if m then return m end
  if k == "files" then
    local files = rawget(t, "meta"):files()
    rawset(t, "files", files)
    return files
  end
end

function Torrent.__tostring(t)
  return "bt.torrent " .. t.info_hash_hex .. " " .. t.name
end

local function at(off) return " (at byte " .. off .. ")" end

-- Optional top-level values. libtorrent ignores a value of the wrong type, and
-- so does this: it becomes a note (t.notes) instead of refusing the torrent.
local function opt_string(m, key, notes)
  local v, off = m:value(key)
  if v ~= nil and type(v) ~= "string" then
    notes[#notes + 1] = "ignored: " .. key .. " is not a string" .. at(off)
    return nil
  end
  return v
end

local function opt_integer(m, key, notes)
  local v, off = m:value(key)
  if v ~= nil and math.type(v) ~= "integer" then
    notes[#notes + 1] = "ignored: " .. key .. " is not an integer" .. at(off)
    return nil
  end
  return v
end

local function is_list(v) return type(v) == "table" and (next(v) == nil or #v > 0) end

-- BEP 12: a list of tiers, each a list of URLs. Entries that are not so (a
-- tier that is not a list, a URL that is not a string) are dropped one by one,
-- as are empty tiers and empty URLs.
local function announce_list(m, notes)
  local v, off = m:value("announce-list")
  if v == nil then return nil end
  local dropped = 0
  local tiers = {}
  if not is_list(v) then
    dropped = 1
  else
    for i = 1, #v do
      local tier = v[i]
      local urls = {}
      if is_list(tier) then
        for j = 1, #tier do
          if type(tier[j]) == "string" and tier[j] ~= "" then urls[#urls + 1] = tier[j]
          else dropped = dropped + 1 end
        end
      else
        dropped = dropped + 1
      end
      if #urls > 0 then tiers[#tiers + 1] = urls end
    end
  end
  if dropped > 0 then
    notes[#notes + 1] = "ignored: " .. dropped .. " invalid announce-list entr"
      .. (dropped == 1 and "y" or "ies") .. at(off)
  end
  return tiers
end

-- BEP 19 url-list and BEP 17 httpseeds: one URL or a list of them; always
-- returned as a list. Invalid entries (a list inside the list, a number, an
-- empty string) are dropped one by one, with a note.
local function url_list(m, key, notes)
  local v, off = m:value(key)
  if v == nil then return {} end
  if type(v) == "string" then return v ~= "" and { v } or {} end
  local out, dropped = {}, 0
  if not is_list(v) then
    dropped = 1
  else
    for i = 1, #v do
      if type(v[i]) == "string" and v[i] ~= "" then out[#out + 1] = v[i]
      else dropped = dropped + 1 end
    end
  end
  if dropped > 0 then
    notes[#notes + 1] = "ignored: " .. dropped .. " invalid " .. key .. " entr"
      .. (dropped == 1 and "y" or "ies") .. at(off)
  end
  return out
end

local function too_large(path, size)
  local max = M.MAX_TORRENT_FILE
  local limit = max % (1 << 20) == 0 and (max >> 20) .. " MiB" or max .. " bytes"
  return path .. ": too large for a .torrent ("
    .. (size and size .. " bytes; the limit is " .. limit or "over the " .. limit .. " limit") .. ")"
end

-- The size is checked before reading, and the read never takes more than the
-- limit + 1 bytes: a pipe or a device has no size to check.
local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, "cannot read torrent: " .. err end
  -- A folder opens, then fails to read (and seeks to a huge size): ask it first.
  local _, rerr = f:read(0)
  if rerr then
    f:close()
    return nil, "cannot read torrent: " .. path .. ": " .. rerr
  end
  local size = f:seek("end")
  if size and size > M.MAX_TORRENT_FILE then
    f:close()
    return nil, too_large(path, size)
  end
  f:seek("set")
  local s
  s, rerr = f:read(M.MAX_TORRENT_FILE + 1)
  f:close()
  if not s and rerr then return nil, "cannot read torrent: " .. path .. ": " .. rerr end
  s = s or ""   -- at the end already: an empty file, which the parser names
  if #s > M.MAX_TORRENT_FILE then return nil, too_large(path) end
  return s
end

--- bt.torrent.parse(bytes) -> bt.Metainfo | nil, "invalid torrent: why (at byte N)"
function M.parse(bytes)
  local m, msg, off = core.meta_parse(bytes)
  if not m then return nil, "invalid torrent: " .. msg .. at(off) end
  return m
end

--- bt.torrent.read(path) -> bt.Metainfo | nil, message: the one way every command reads a
-- .torrent file (the size cap, the parse, the message "PATH: invalid torrent: ...",
-- "PATH: too large for a .torrent (N bytes; the limit is 64 MiB)", "cannot read torrent: ...").
function M.read(path)
  local bytes, err = read_file(path)
  if not bytes then return nil, err end
  local m, msg = M.parse(bytes)
  if not m then return nil, path .. ": " .. msg end
  return m
end

--- bt.torrent.load(path_or_bytes) -> torrent | nil, message
-- A string starting with "d" that contains "4:info" is taken as the bytes of a
-- torrent, anything else as a path. Fields: info_hash (20 raw bytes),
-- info_hash_hex, name, piece_length, num_pieces (= pieces), total_length,
-- files ({path = {...}, length, offset, pad, disk_path = {...}, and when set:
-- executable, hidden, renamed, symlink (the link's content), link_skipped} in
-- torrent order; path is the torrent's, disk_path the one used under disk_name,
-- the same table when sanitizing changed nothing), disk_name (the name as used
-- on disk), announce, announce_list (tiers; a lone announce is one tier),
-- private, creation_date, comment, created_by, url_list and http_seeds (always
-- lists), notes (what was ignored: wrong-typed optional keys, invalid web-seed
-- or tracker entries, bytes after the dictionary), meta (the bt.Metainfo).
-- Optional keys of the wrong type are ignored (with a note), as libtorrent does.
function M.load(src)
  if type(src) ~= "string" then
    error("bt.torrent.load: expected a path or the bytes of a torrent, got " .. type(src), 2)
  end
  local m, msg
  if src:sub(1, 1) == "d" and src:find("4:info", 1, true) then
    m, msg = M.parse(src)
  else
    m, msg = M.read(src)
  end
  if not m then return nil, msg end

  local t = {
    meta = m,
    info_hash = m.info_hash,
    info_hash_hex = m.info_hash_hex,
    name = m.name,
    piece_length = m.piece_length,
    num_pieces = m.num_pieces,
    pieces = m.num_pieces,
    total_length = m.total_length,
    num_files = m.num_files,
    multi_file = m.multi_file,
    private = m.private,
  }
  local notes = {}
  t.notes = notes
  if m.trailing_bytes > 0 then
    notes[#notes + 1] = "ignored: " .. m.trailing_bytes .. " byte" .. (m.trailing_bytes == 1 and "" or "s")
      .. " after the torrent's dictionary" .. at(#m:bytes() - m.trailing_bytes)
  end
  t.disk_name = m.disk_name
  t.announce = opt_string(m, "announce", notes)
  t.comment = opt_string(m, "comment", notes)
  t.created_by = opt_string(m, "created by", notes)
  t.creation_date = opt_integer(m, "creation date", notes)
  local tiers = announce_list(m, notes)
  if not tiers or #tiers == 0 then
    tiers = t.announce and t.announce ~= "" and { { t.announce } } or {}
  end
  t.announce_list = tiers
  t.url_list = url_list(m, "url-list", notes)
  t.http_seeds = url_list(m, "httpseeds", notes)
  return setmetatable(t, Torrent)
end

---------------------------------------------------------------------------
-- create
---------------------------------------------------------------------------

local function is_pow2(n) return n > 0 and n & (n - 1) == 0 end

--- bt.torrent.default_piece_length(total) -> a power of two in
-- [MIN_PIECE_LENGTH, MAX_PIECE_LENGTH] giving about TARGET_PIECES / 2 ..
-- TARGET_PIECES pieces.
function M.default_piece_length(total)
  local pl = M.MIN_PIECE_LENGTH
  while pl < M.MAX_PIECE_LENGTH and pl * M.TARGET_PIECES < total do pl = pl * 2 end
  return pl
end

-- Depth-first walk of a folder: regular files in byte order of their path
-- components (each folder's entries sorted bytewise), hidden files included.
-- Symbolic links and special files are refused: following a link could put
-- data from outside the folder (or a loop) into the torrent, and a torrent
-- cannot represent a link portably.
local function walk(root, rel, depth, out)
  if depth > M.MAX_DEPTH then
    error("folders nested deeper than " .. M.MAX_DEPTH .. ": " .. root, 0)
  end
  local dir = root .. (#rel > 0 and "/" .. table.concat(rel, "/") or "")
  local names, err = core.fs.list(dir)
  if not names then error(err, 0) end
  table.sort(names)
  for _, name in ipairs(names) do
    local full = dir .. "/" .. name
    local st, serr = core.fs.stat(full)
    if not st then error(serr, 0) end
    local path = { table.unpack(rel) }
    path[#path + 1] = name
    if st.type == "dir" then
      walk(root, path, depth + 1, out)
    elseif st.type == "file" then
      out[#out + 1] = { full = full, path = path, length = st.size }
    elseif st.type == "link" then
      error("symbolic links are not supported: " .. full, 0)
    else
      error("not a regular file or folder: " .. full, 0)
    end
  end
end

-- SHA-1 of every piece of the files' concatenation, streamed: one hasher runs
-- across file boundaries; each read is READ_CHUNK bytes.
local function hash_pieces(files, piece_length, progress)
  local h = core.sha1_hasher()
  local hashes, filled, done = {}, 0, 0
  for _, file in ipairs(files) do
    local f, err = io.open(file.full, "rb")
    if not f then error(err, 0) end
    local got = 0
    while true do
      local chunk = f:read(M.READ_CHUNK)
      if not chunk then break end
      local n, pos = #chunk, 1
      got = got + n
      while pos <= n do
        local take = piece_length - filled
        if take > n - pos + 1 then take = n - pos + 1 end
        h:update(chunk, pos, pos + take - 1)
        filled, pos = filled + take, pos + take
        if filled == piece_length then
          hashes[#hashes + 1] = h:digest()
          h:reset()
          filled = 0
        end
      end
      done = done + n
      if progress then progress(done) end
    end
    f:close()
    if got ~= file.length then
      error(file.full .. " changed size while hashing (" .. file.length .. " -> " .. got .. " bytes)", 0)
    end
  end
  if filled > 0 then hashes[#hashes + 1] = h:digest() end
  return table.concat(hashes)
end

local function check_url(v, what)
  if type(v) ~= "string" or v == "" then
    error("bt.torrent.create: " .. what .. " must be a non-empty string", 3)
  end
end

--- bt.torrent.create{ path=, piece_length=, announce=, announce_list=, comment=,
--   private=, created_by=, creation_date=, url_list=, name=, progress= }
--   -> bytes of the .torrent | nil, message
-- A file gives a single-file torrent, a folder a multi-file one. announce_list
-- is a list of tiers (each a list of URLs, or one URL); announce defaults to
-- its first URL. creation_date defaults to now (false: omitted); created_by to
-- "bt-lua VERSION" (false: omitted). progress(bytes_hashed) is called after
-- each chunk. Misuse (wrong option types) raises; I/O problems return nil, message.
function M.create(opts)
  if type(opts) ~= "table" then error("bt.torrent.create: expected a table of options", 2) end
  local path = opts.path
  if type(path) ~= "string" or path == "" then
    error("bt.torrent.create: path must be a non-empty string", 2)
  end
  local pl = opts.piece_length
  if pl ~= nil and (math.type(pl) ~= "integer" or not is_pow2(pl)
      or pl < M.MIN_PIECE_LENGTH or pl > M.MAX_PIECE_LENGTH) then
    error("bt.torrent.create: piece_length must be a power of two from "
      .. M.MIN_PIECE_LENGTH .. " to " .. M.MAX_PIECE_LENGTH, 2)
  end
  if opts.announce ~= nil then check_url(opts.announce, "announce") end
  local tiers
  if opts.announce_list ~= nil then
    if type(opts.announce_list) ~= "table" then
      error("bt.torrent.create: announce_list must be a list of tiers", 2)
    end
    tiers = {}
    for _, tier in ipairs(opts.announce_list) do
      if type(tier) == "string" then tier = { tier } end
      if type(tier) ~= "table" then error("bt.torrent.create: announce_list must be a list of tiers", 2) end
      local urls = {}
      for _, u in ipairs(tier) do check_url(u, "announce_list URL"); urls[#urls + 1] = u end
      if #urls > 0 then tiers[#tiers + 1] = urls end
    end
  end
  for _, k in ipairs { "comment", "name" } do
    if opts[k] ~= nil and type(opts[k]) ~= "string" then
      error("bt.torrent.create: " .. k .. " must be a string", 2)
    end
  end
  if opts.created_by ~= nil and opts.created_by ~= false and type(opts.created_by) ~= "string" then
    error("bt.torrent.create: created_by must be a string or false", 2)
  end
  if opts.creation_date ~= nil and opts.creation_date ~= false
      and math.type(opts.creation_date) ~= "integer" then
    error("bt.torrent.create: creation_date must be an integer or false", 2)
  end
  local urls = opts.url_list
  if type(urls) == "string" then urls = { urls } end
  if urls ~= nil then
    if type(urls) ~= "table" then error("bt.torrent.create: url_list must be a string or a list", 2) end
    for _, u in ipairs(urls) do check_url(u, "url_list URL") end
  end

  -- I/O and content problems are raised as strings below and returned as nil, message.
  local function build()
    local st, err = core.fs.stat(path)
    if not st then error(err, 0) end
    local files
    if st.type == "file" then
      files = { { full = path, length = st.size } }
    elseif st.type == "dir" then
      files = {}
      walk(path, {}, 1, files)
      if #files == 0 then error(path .. ": folder holds no files", 0) end
    elseif st.type == "link" then
      error("symbolic links are not supported: " .. path, 0)
    else
      error("not a regular file or folder: " .. path, 0)
    end
    local total = 0
    for _, f in ipairs(files) do total = total + f.length end
    if total == 0 then error(path .. ": nothing to share (total size 0)", 0) end

    local name = opts.name
    if not name then
      local real, rerr = core.fs.realpath(path)
      if not real then error(rerr, 0) end
      name = real:match("([^/]+)$")
      if not name then error(path .. ": cannot name a torrent after '/': pass name", 0) end
    end
    pl = pl or M.default_piece_length(total)

    local info = {
      name = name,
      ["piece length"] = pl,
      pieces = hash_pieces(files, pl, opts.progress),
    }
    if opts.private then info.private = 1 end
    if st.type == "file" then
      info.length = total
    else
      local list = {}
      for i, f in ipairs(files) do list[i] = { length = f.length, path = f.path } end
      info.files = list
    end
    local top = { info = info }
    local announce = opts.announce or (tiers and tiers[1] and tiers[1][1])
    if announce then top.announce = announce end
    if tiers and #tiers > 0 then top["announce-list"] = tiers end
    if opts.comment then top.comment = opts.comment end
    if opts.created_by ~= false then top["created by"] = opts.created_by or ("bt-lua " .. core.version) end
    if opts.creation_date ~= false then top["creation date"] = opts.creation_date or os.time() end
    if urls and #urls > 0 then top["url-list"] = urls end
    local bytes = core.bencode(top)
    -- What we make must pass our own validation, and unchanged: a name or file
    -- name that a reader would sanitize (one holding '\' or a control byte, or
    -- invalid UTF-8) is refused here rather than renamed by every client.
    local m, msg = core.meta_parse(bytes)
    if not m then error("cannot make a valid torrent: " .. msg, 0) end
    if m.disk_name ~= m.name or m.num_sanitized > 0 then
      error("cannot make a valid torrent: a file name is not safe as it is"
        .. " (clients would rename it; see bt-lua info on the result)", 0)
    end
    return bytes
  end
  local ok, res = pcall(build)
  if ok then return res end
  return nil, tostring(res)
end

return M
