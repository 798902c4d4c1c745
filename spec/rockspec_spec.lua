local H = require "spec.helpers"

local function rockspec_sources()
  local text = H.readfile("rockspec/bt-lua-scm-1.rockspec")
  local set = {}
  for src in text:gmatch('"(csrc/[%w_]+/[%w_]+%.c)"') do set[src] = true end
  return set
end

describe("rockspec", function()
  it("lists every C source the Makefile builds", function()
    local listed = rockspec_sources()
    local out = H.sh("ls csrc/*/*.c")
    local n = 0
    for src in out:gmatch("[^\n]+") do
      n = n + 1
      assert.is_true(listed[src] == true, src .. " is missing from the rockspec's sources")
    end
    assert.is_true(n > 0)
  end)

  it("installs into a temporary tree and runs bt-lua info from there", function()
    local tree = H.tmpdir()
    local out, ok = H.sh("luarocks --lua-version=5.4 --tree=" .. H.q(tree)
      .. " make rockspec/bt-lua-scm-1.rockspec && rm -rf bt csrc/*/*.o")
    assert.is_true(ok, out)
    local torrent = tree .. "/t.torrent"
    local info = "d6:lengthi3e4:name1:a12:piece lengthi16384e6:pieces20:" .. string.rep("x", 20) .. "e"
    H.writefile(torrent, "d8:announce27:http://127.0.0.1:1/announce4:info" .. info .. "e")
    H.writefile(tree .. "/info", info)
    local hash = H.sh("sha1sum " .. H.q(tree .. "/info")):match("^(%x+)")
    -- run outside the checkout so nothing but the tree can provide the module
    out, ok = H.sh("cd / && eval \"$(luarocks --lua-version=5.4 --tree=" .. H.q(tree)
      .. " path)\" && " .. H.q(tree .. "/bin/bt-lua") .. " info " .. H.q(torrent))
    H.rmtree(tree)
    assert.is_true(ok, out)
    assert.matches(hash, out, 1, true)
    assert.matches("Name:%s+a\n", out)
  end)
end)
