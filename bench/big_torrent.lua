--- Deterministic generator of a large multi-file torrent for the benchmarks:
-- `files` files (default 100,000) in nested folders, about 6 MB of bencode.
-- Returns the bytes; written by hand (not with bt.bencode) so the benchmark
-- input does not depend on the encoder under test. Keys are in sorted order.
local function bstr(s) return #s .. ":" .. s end

return function(files)
  files = files or 100000
  local piece_length = 4 * 1024 * 1024
  local parts, total = {}, 0
  for i = 1, files do
    local len = 1000 + (i * 7919) % 200000
    total = total + len
    parts[#parts + 1] = "d6:lengthi" .. len .. "e4:pathl"
      .. bstr(string.format("dir%02d", i % 50))
      .. bstr(string.format("sub%03d", (i // 50) % 100))
      .. bstr(string.format("file-%06d.dat", i)) .. "ee"
  end
  local npieces = (total + piece_length - 1) // piece_length
  local hashes = {}
  for i = 1, npieces do hashes[i] = string.pack(">I4I4I4I4I4", i, i * 3, i * 5, i * 7, i * 11) end
  return "d8:announce" .. bstr("http://127.0.0.1:6969/announce")
    .. "10:created by" .. bstr("bt-lua bench")
    .. "4:infod5:filesl" .. table.concat(parts) .. "e"
    .. "4:name" .. bstr("big") .. "12:piece lengthi" .. piece_length .. "e"
    .. "6:pieces" .. bstr(table.concat(hashes)) .. "ee"
end
