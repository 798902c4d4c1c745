--- bt.resume: resume data, so a restart (clean or after a crash) does not
-- re-hash what is known good, and never trusts what may have changed.
--
--   local resume = require "bt.resume"
--   local path = resume.path(dir, t.info_hash_hex)       -- <dir>/.bt-lua/<hex>.resume
--   local have = verified:copy()                          -- 1. snapshot the claim
--   assert(st:sync())                                     -- 2. make it durable
--   assert(resume.save(path, t, have, dir, { uploaded = up, downloaded = down }))  -- 3.
--   ...
--   local r = resume.load(path, t, dir)
--   -- r.have: trusted without hashing; r.check: hash these (st:check_piece);
--   -- r.reason: why some or all could not be trusted (nil when all was fine).
--
-- The format is documented in docs/architecture.md, section "Resume data".
-- Resume files are hostile input: the decoder is strict, every field is typed
-- and bounded, and any problem means "check everything", with a reason.
local core = require "bt.core"

local M = {}

M.VERSION = 1
-- Block size for the partial-piece hints (the request size every client uses).
M.BLOCK = 16384
-- Partial-piece hints kept: block indices over all pieces. Enough for a few
-- thousand pieces in flight; more is not worth the resume file's size.
M.MAX_PARTIAL_BLOCKS = 1 << 16
-- Largest resume file read for a torrent: a fixed part (header, partial hints:
-- at most ~12 bytes per block index) plus, per piece, the worst case of the
-- range list (every other piece: "li<10 digits>ei<10 digits>ee" = 26 bytes per
-- two pieces) and, per file, one stat record (~90 bytes). Anything larger was
-- not written by us.
M.BASE_BYTES = 1024 * 1024
M.BYTES_PER_PIECE = 16
M.BYTES_PER_FILE = 128
-- File sizes and times above 2^62 are not from a real file system.
local MAX_INT = 1 << 62
local NS_PER_S = 1000000000

function M.max_bytes(torrent)
  return M.BASE_BYTES + M.BYTES_PER_PIECE * torrent.num_pieces + M.BYTES_PER_FILE * #torrent.files
end

--- resume.path(dir, info_hash_hex) -> "<dir>/.bt-lua/<info_hash_hex>.resume",
-- the suggested place (beside the data, so moving the folder moves it too).
function M.path(dir, info_hash_hex)
  assert(type(info_hash_hex) == "string" and info_hash_hex:match("^%x+$") and #info_hash_hex == 40,
    "info_hash_hex: 40 hex digits expected")
  return dir .. "/.bt-lua/" .. info_hash_hex:lower() .. ".resume"
end

-- The torrent's facts, from a bt.torrent (or anything with the same fields).
local function facts(torrent)
  assert(type(torrent) == "table" or type(torrent) == "userdata", "torrent expected")
  local files = torrent.files
  if type(files) == "function" then files = torrent:files() end
  assert(type(files) == "table", "torrent without files")
  local n = assert(math.tointeger(torrent.num_pieces), "torrent without num_pieces")
  local pl = assert(math.tointeger(torrent.piece_length), "torrent without piece_length")
  local ih = torrent.info_hash
  assert(type(ih) == "string" and #ih == 20, "torrent without a 20-byte info_hash")
  -- Files are where storage puts them: the sanitized disk name and paths
  -- (bt_meta_disk_path), not the torrent's own (which may hold "..").
  return { files = files, n = n, pl = pl, info_hash = ih, multi = torrent.multi_file,
           name = torrent.disk_name or torrent.name, num_pieces = n }
end

-- Where file i lives under dir (storage.h's layout).
local function file_path(f, dir, i)
  local file = f.files[i]
  if f.multi then
    return dir .. "/" .. f.name .. "/" .. table.concat(file.disk_path or file.path, "/")
  end
  return dir .. "/" .. f.name
end

-- What stat_ns says of file i, or nil if it is not a regular file (missing,
-- a symlink, a folder...).
local function stat_file(f, dir, i)
  local st = core.fs.stat_ns(file_path(f, dir, i))
  if st and st.type == "file" then return st end
  return nil
end

--- resume.save(path, torrent, have, dir [, extra]) -> true | nil, message
-- have: bt.Ranges of the VERIFIED pieces; dir: the download folder given to
-- bt.storage.open. extra: { uploaded =, downloaded =, partial = {[piece] =
-- {block indices}}, now = seconds (default os.time()) }. Order matters: take
-- `have` as it is, THEN sync the storage (st:sync / bt_storage_sync), THEN
-- save. The file times recorded here vouch for the data, so every piece
-- claimed must be on disk before the claim is; a piece verified after the
-- snapshot may still be in the page cache and must wait for the next save.
-- The parent folder is created if missing (one level: <dir>/.bt-lua).
function M.save(path, torrent, have, dir, extra)
  assert(type(path) == "string", "path expected")
  assert(type(dir) == "string", "dir expected")
  extra = extra or {}
  local f = facts(torrent)
  assert(getmetatable(have) == getmetatable(core.bitfield(1)) and have:size() == f.n,
    "have: bt.Ranges of num_pieces expected")

  local pieces = {}
  for a, b in have:ranges() do pieces[#pieces + 1] = core.list { a, b } end

  local files = {}
  for i, file in ipairs(f.files) do
    local rec = core.dict {}
    if not file.pad then
      local st = stat_file(f, dir, i)
      if st then
        rec.size, rec.mtime, rec.mtime_ns = st.size, st.mtime, st.mtime_ns
      end
    end
    files[i] = rec
  end

  local partial = {}
  if extra.partial then
    local idx = {}
    for p in pairs(extra.partial) do
      assert(math.tointeger(p) and p >= 0 and p < f.n, "partial: piece index out of range")
      if not have:has(p) then idx[#idx + 1] = p end
    end
    table.sort(idx)
    local total = 0
    for _, p in ipairs(idx) do
      local blocks, seen = {}, {}
      local nb = (torrent.piece_size and torrent:piece_size(p) or f.pl) + M.BLOCK - 1
      nb = nb // M.BLOCK
      for _, b in ipairs(extra.partial[p]) do
        if math.tointeger(b) and b >= 0 and b < nb and not seen[b] then
          seen[b] = true
          blocks[#blocks + 1] = b
        end
      end
      table.sort(blocks)
      if #blocks > 0 and total + #blocks <= M.MAX_PARTIAL_BLOCKS then
        total = total + #blocks
        partial[#partial + 1] = core.list { p, core.list(blocks) }
      end
    end
  end

  local function count(v, what)
    v = v or 0
    assert(math.tointeger(v) and v >= 0, what .. ": integer >= 0 expected")
    return v
  end
  local doc = {
    version = M.VERSION,
    info_hash = f.info_hash,
    num_pieces = f.n,
    piece_length = f.pl,
    pieces = core.list(pieces),
    files = core.list(files),
    partial = core.list(partial),
    uploaded = count(extra.uploaded, "uploaded"),
    downloaded = count(extra.downloaded, "downloaded"),
    written_at = count(extra.now or os.time(), "now"),
  }
  local parent = path:match("^(.*)/[^/]+$")
  if parent and parent ~= "" and not core.fs.stat(parent) then
    local ok, err = core.fs.mkdir(parent)
    if not ok then return nil, err end
  end
  return core.fs.write_atomic(path, core.bencode(doc))
end

--- resume.cleanup(path) -> number of files removed
-- Removes the temporaries "<path>.tmp.<pid>.<n>" that writers killed mid-save
-- left beside path (bt.fs.write_atomic never reuses them). Call it at start-up,
-- before the first save: a concurrent writer of the same path (which would be
-- a bug) would only see its rename fail.
function M.cleanup(path)
  assert(type(path) == "string", "path expected")
  local parent, base = path:match("^(.*)/([^/]+)$")
  if not parent then parent, base = ".", path end
  if parent == "" then parent = "/" end
  local names = core.fs.list(parent)
  if not names then return 0 end
  local prefix, n = base .. ".tmp.", 0
  for _, name in ipairs(names) do
    if name:sub(1, #prefix) == prefix and name:sub(#prefix + 1):match("^%d+%.%d+$") then
      local full = parent .. "/" .. name
      local st = core.fs.stat(full)
      if st and st.type == "file" and os.remove(full) then n = n + 1 end
    end
  end
  return n
end

-- ---------------------------------------------------------------------------
-- saver: when to save

-- Seconds between saves while pieces keep arriving: a crash loses at most this
-- much verified progress from the resume data (the pieces are still on disk and
-- found again by the check of their files), and a save costs two fsyncs plus
-- one stat per file.
M.SAVE_INTERVAL = 5

local Saver = {}
Saver.__index = Saver
Saver.__name = "bt.resume.saver"

--- resume.saver{path =, torrent =, dir =, sync = function() -> true | nil, err,
--   interval = seconds (default M.SAVE_INTERVAL)} -> saver
-- For the engine's tick: saver:tick(now, have, extra) saves when `have` changed
-- since the last save and `interval` seconds have passed; saver:flush(have,
-- extra) saves now (clean shutdown, a stopped torrent). Each save snapshots
-- `have`, calls sync() (the storage's), then writes, in that order.
function M.saver(o)
  assert(type(o) == "table", "options expected")
  assert(type(o.path) == "string" and type(o.dir) == "string", "path and dir expected")
  assert(o.torrent, "torrent expected")
  assert(type(o.sync) == "function", "sync function expected")
  local interval = o.interval or M.SAVE_INTERVAL
  assert(type(interval) == "number" and interval >= 0, "interval: seconds >= 0 expected")
  return setmetatable({ path = o.path, torrent = o.torrent, dir = o.dir, sync = o.sync,
                        interval = interval, last_time = nil, last_have = nil, saves = 0 }, Saver)
end

function Saver:flush(have, extra)
  local snap = have:copy()
  local ok, err = self.sync()
  if not ok then return nil, "sync: " .. tostring(err) end
  ok, err = M.save(self.path, self.torrent, snap, self.dir, extra)
  if not ok then return nil, err end
  self.last_have, self.saves = snap, self.saves + 1
  return true
end

--- saver:tick(now, have [, extra]) -> true (saved) | false (nothing to do) | nil, message
function Saver:tick(now, have, extra)
  if self.last_time == nil then self.last_time = now end
  if now - self.last_time < self.interval then return false end
  if self.last_have and self.last_have == have then return false end
  self.last_time = now
  local ok, err = self:flush(have, extra)
  if not ok then return nil, err end
  return true
end

-- ---------------------------------------------------------------------------
-- load

local function is_dict(v) return type(v) == "table" and getmetatable(v) == core.dict_mt end
local function is_list(v) return type(v) == "table" and getmetatable(v) == core.list_mt end
local function is_int(v, lo, hi)
  return math.type(v) == "integer" and v >= lo and v <= hi
end

-- Validate a decoded document against the torrent. Returns the fields in a
-- plain table, or nil, reason.
local function validate(d, f)
  if not is_dict(d) then return nil, "not a dictionary" end
  if not is_int(d.version, 0, MAX_INT) then return nil, "version missing" end
  if d.version ~= M.VERSION then return nil, "unknown version " .. d.version end
  if type(d.info_hash) ~= "string" or #d.info_hash ~= 20 then return nil, "info_hash missing" end
  if d.info_hash ~= f.info_hash then return nil, "written for another torrent (info_hash differs)" end
  if d.num_pieces ~= f.n or d.piece_length ~= f.pl then return nil, "piece geometry differs" end
  for _, k in ipairs { "uploaded", "downloaded", "written_at" } do
    if not is_int(d[k], 0, MAX_INT) then return nil, k .. ": integer >= 0 expected" end
  end

  if not is_list(d.pieces) or #d.pieces > f.n then return nil, "pieces: bad list" end
  local prev = 0
  for i, r in ipairs(d.pieces) do
    if not is_list(r) or #r ~= 2 or not is_int(r[1], 0, f.n) or not is_int(r[2], 0, f.n) then
      return nil, "pieces[" .. i .. "]: [start, end) pair expected"
    end
    if r[1] >= r[2] then return nil, "pieces[" .. i .. "]: empty or reversed range" end
    if r[1] < prev then return nil, "pieces[" .. i .. "]: not sorted or overlapping" end
    prev = r[2]
  end

  if not is_list(d.files) or #d.files ~= #f.files then return nil, "files: one record per file expected" end
  for i, rec in ipairs(d.files) do
    if not is_dict(rec) then return nil, "files[" .. i .. "]: dictionary expected" end
    if rec.size ~= nil or rec.mtime ~= nil or rec.mtime_ns ~= nil then
      if not is_int(rec.size, 0, MAX_INT) or not is_int(rec.mtime, -MAX_INT, MAX_INT)
        or not is_int(rec.mtime_ns, 0, NS_PER_S - 1) then
        return nil, "files[" .. i .. "]: size, mtime, mtime_ns expected"
      end
    end
  end

  if d.partial ~= nil then
    if not is_list(d.partial) then return nil, "partial: list expected" end
    local prevp, total = -1, 0
    for i, e in ipairs(d.partial) do
      if not is_list(e) or #e ~= 2 or not is_int(e[1], 0, f.n - 1) or not is_list(e[2]) then
        return nil, "partial[" .. i .. "]: [piece, [blocks]] expected"
      end
      if e[1] <= prevp then return nil, "partial[" .. i .. "]: pieces not sorted" end
      prevp = e[1]
      total = total + #e[2]
      if total > M.MAX_PARTIAL_BLOCKS then return nil, "partial: too many blocks" end
      local nb = (f.pl + M.BLOCK - 1) // M.BLOCK
      local prevb = -1
      for _, b in ipairs(e[2]) do
        if not is_int(b, 0, nb - 1) or b <= prevb then
          return nil, "partial[" .. i .. "]: block indices sorted in [0, " .. nb .. ") expected"
        end
        prevb = b
      end
    end
  end
  return d
end

-- First and last piece touched by file i (nil for an empty file).
local function piece_span(f, file)
  if file.length <= 0 then return nil end
  return file.offset // f.pl, (file.offset + file.length - 1) // f.pl
end

--- resume.load(path, torrent, dir) -> result
-- result = { have = bt.Ranges (trust without hashing), check = bt.Ranges (hash
-- these before use), uploaded =, downloaded =, written_at =, partial =
-- {[piece] = {block indices}} (hints: blocks written before, in pieces whose
-- files are unchanged; verify the piece as usual), reason = nil | string }.
-- Without usable resume data (missing, unreadable, too large, bad bencode, a
-- bad field, another torrent), check = every piece and reason says why.
-- A piece is trusted only if the data says it was verified and every file it
-- touches has the size and modification time (to the nanosecond) recorded.
-- Misuse (no torrent, bad arguments) raises.
function M.load(path, torrent, dir)
  assert(type(path) == "string", "path expected")
  assert(type(dir) == "string", "dir expected")
  local f = facts(torrent)
  local res = {
    have = core.bitfield(f.n), check = core.bitfield(f.n),
    uploaded = 0, downloaded = 0, written_at = nil, partial = {},
  }
  local function fallback(reason)
    res.have:clear_all()
    res.check:set_all()
    res.partial = {}
    res.reason = reason
    return res
  end

  local st, err = core.fs.stat(path)
  if not st then return fallback("no resume data (" .. err .. ")") end
  if st.type ~= "file" then return fallback("resume data is not a regular file") end
  local limit = M.max_bytes(f)
  if st.size > limit then return fallback("resume data too large (" .. st.size .. " bytes)") end
  local fh, oerr = io.open(path, "rb")
  if not fh then return fallback("cannot read resume data (" .. oerr .. ")") end
  local bytes = fh:read(limit + 1) or ""
  fh:close()
  if #bytes > limit then return fallback("resume data too large") end

  local d, msg, off = core.bdecode(bytes)
  if d == nil then
    return fallback("bad resume data: " .. tostring(msg) .. " at byte " .. tostring(off))
  end
  local why
  d, why = validate(d, f)
  if not d then return fallback("bad resume data: " .. why) end

  -- Pieces touching a file that changed since the save: never trusted, always
  -- checked (the file may have gained data after the save, or lost it).
  local changed = core.bitfield(f.n)
  local changed_files = {}
  for i, file in ipairs(f.files) do
    local a, b = piece_span(f, file)
    if a and not file.pad then
      local rec, cur = d.files[i], stat_file(f, dir, i)
      local same = cur and rec.size ~= nil and rec.size >= file.length and cur.size == rec.size
        and cur.mtime == rec.mtime and cur.mtime_ns == rec.mtime_ns
      if not same then
        changed:set_range(a, b + 1)
        changed_files[#changed_files + 1] = i
      end
    end
  end

  local claimed = core.bitfield(f.n)
  for _, r in ipairs(d.pieces) do claimed:set_range(r[1], r[2]) end
  res.have = claimed:diff(changed)
  res.check = changed
  res.uploaded, res.downloaded, res.written_at = d.uploaded, d.downloaded, d.written_at
  if d.partial then
    for _, e in ipairs(d.partial) do
      local p = e[1]
      if not changed:has(p) and not res.have:has(p) then
        local nb = ((torrent.piece_size and torrent:piece_size(p) or f.pl) + M.BLOCK - 1) // M.BLOCK
        local blocks = {}
        for _, b in ipairs(e[2]) do
          if b < nb then blocks[#blocks + 1] = b end
        end
        res.partial[p] = blocks
      end
    end
  end
  if #changed_files > 0 then
    res.reason = #changed_files .. " file(s) changed since the resume data was written (first: file "
      .. changed_files[1] .. ")"
  end
  return res
end

return M
