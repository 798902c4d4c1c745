-- HTTP(S) tracker client (csrc/tracker.c, tracker_parse.c, l_tracker.c).
local bt = require "bt"
local T = require "spec.tracker_helpers"

local IH = string.rep("\17", 19) .. "\1"
local IH2 = string.rep("\34", 20)

local function params(url, extra)
  local p = { url = url, info_hash = IH, peer_id = bt.peer_id(), port = 6881, left = 1000 }
  for k, v in pairs(extra or {}) do p[k] = v end
  return p
end

describe("bt.peer_id", function()
  it("is -BL0100- and 12 random bytes", function()
    local a, b = bt.peer_id(), bt.peer_id()
    assert.are.equal(20, #a)
    assert.are.equal("-BL0100-", a:sub(1, 8))
    assert.are_not.equal(a, b)
  end)
end)

describe("bt.tracker.urlencode and announce_url", function()
  it("keeps unreserved bytes and escapes every other byte", function()
    assert.are.equal("%00%FFaZ09-._~%20%2F%3F%26%25", bt.tracker.urlencode("\0\255aZ09-._~ /?&%"))
    assert.are.equal("", bt.tracker.urlencode(""))
  end)

  it("builds the query with compact=1, optional fields, and an existing query", function()
    local p = params("http://t.example/ann", { peer_id = "-BL0100-abcdefghijkl", event = "started",
                                               numwant = 50, key = 0xdeadbeef, uploaded = 5,
                                               downloaded = 6, left = 7, port = 51413 })
    assert.are.equal("http://t.example/ann?info_hash=" .. bt.tracker.urlencode(IH)
      .. "&peer_id=-BL0100-abcdefghijkl&port=51413&uploaded=5&downloaded=6&left=7&compact=1"
      .. "&event=started&numwant=50&key=DEADBEEF", bt.tracker.announce_url(p))
    p.url = "http://t.example/ann?passkey=xyz"
    p.event, p.numwant, p.key = nil, nil, nil
    p.tracker_id = "id 1"
    assert.are.equal("http://t.example/ann?passkey=xyz&info_hash=" .. bt.tracker.urlencode(IH)
      .. "&peer_id=-BL0100-abcdefghijkl&port=51413&uploaded=5&downloaded=6&left=7&compact=1"
      .. "&trackerid=id%201", bt.tracker.announce_url(p))
  end)

  it("raises on bad parameters", function()
    assert.has_error(function() bt.tracker.announce_url(params("udp://x:1/a")) end)
    assert.has_error(function() bt.tracker.announce_url(params("http://x/a b")) end)
    assert.has_error(function() bt.tracker.announce_url(params("http://x/a", { info_hash = "short" })) end)
    assert.has_error(function() bt.tracker.announce_url(params("http://x/a", { event = "paused" })) end)
    assert.has_error(function() bt.tracker.announce_url(params("http://x/a", { port = 70000 })) end)
    assert.has_error(function() bt.tracker.announce(params("http://x/a"), 0) end)
  end)
end)

describe("bt.tracker.parse", function()
  it("reads compact peers, counts and intervals", function()
    local r = assert(bt.tracker.parse("d8:completei2e10:incompletei3e8:intervali1800e"
      .. "12:min intervali60e5:peers12:\1\2\3\4\26\225\127\0\0\1\0\80e"))
    assert.are.equal(1800, r.interval)
    assert.are.equal(60, r.min_interval)
    assert.are.equal(2, r.complete)
    assert.are.equal(3, r.incomplete)
    assert.are.same({ { ip = "1.2.3.4", port = 6881 }, { ip = "127.0.0.1", port = 80 } }, r.peers)
    assert.are.equal(0, r.peers_dropped)
  end)

  it("drops a partial compact entry and port 0, keeps the rest", function()
    local r = assert(bt.tracker.parse("d8:intervali1e5:peers15:\1\2\3\4\0\1\5\6\7\8\0\0abce"))
    assert.are.same({ { ip = "1.2.3.4", port = 1 } }, r.peers)
    assert.are.equal(2, r.peers_dropped)
  end)

  it("caps the peers taken at 2000", function()
    local r = assert(bt.tracker.parse("d8:intervali1e5:peers" .. 6 * 2500 .. ":"
      .. string.rep("\10\0\0\1\0\1", 2500) .. "e"))
    assert.are.equal(2000, #r.peers)
    assert.are.equal(500, r.peers_dropped)
  end)

  it("returns nil, message on garbage and wrong types", function()
    local cases = {
      { "", "^bad reply: empty body$" },
      { "<html>", "^bad reply: invalid character at byte 0$" },
      { "d5:peers", "^bad reply: " },
      { "li1ee", "^bad reply: not a dictionary$" },
      { "de", "^bad reply: no peers, interval or failure reason$" },
      { "d5:peersi5ee", "^bad reply: 'peers' is neither a string nor a list$" },
      { "d8:interval3:abce", "^bad reply: 'interval' is not an integer$" },
      { "d14:failure reasoni1ee", "^bad reply: 'failure reason' is not a string$" },
    }
    for _, c in ipairs(cases) do
      local r, msg = bt.tracker.parse(c[1])
      assert.is_nil(r, c[1])
      assert.matches(c[2], msg)
    end
  end)

  it("parses 2000 peers in dict form; refuses a reply of more bencode values than that needs", function()
    local peers = {}
    for i = 1, 2000 do
      peers[i] = ("d2:ip%d:10.0.%d.%d7:peer id20:%s4:porti%dee"):format(#("10.0." .. i // 256 .. "." .. i % 256),
        i // 256, i % 256, string.rep("p", 20), 1000 + i)
    end
    local r = assert(bt.tracker.parse("d8:intervali1e5:peersl" .. table.concat(peers) .. "ee"))
    assert.are.equal(2000, #r.peers)
    assert.are.same({ ip = "10.0.7.208", port = 3000 }, r.peers[2000])
    -- 65536 bencode values at most (BT_TRACKER_MAX_TOKENS): d, "interval", i1e,
    -- "x" and l are 5, so the empty string number 65532 is the first over.
    local body = "d8:intervali1e1:xl" .. string.rep("0:", 70000) .. "ee"
    local none, msg = bt.tracker.parse(body)
    assert.is_nil(none)
    assert.are.equal("bad reply: too many tokens (limit 65536) at byte " .. 18 + 2 * 65531, msg)
    assert.truthy(bt.tracker.parse("d8:intervali1e1:xl" .. string.rep("0:", 65531) .. "ee"))
  end)

  it("cuts a huge failure reason to 1024 bytes", function()
    local r = assert(bt.tracker.parse("d14:failure reason5000:" .. string.rep("x", 5000) .. "e"))
    assert.are.equal(1024, #r.failure_reason)
  end)
end)

describe("announce against opentracker", function()
  local ot
  lazy_setup(function() ot = T.start_opentracker({ IH, IH2 }) end)
  lazy_teardown(function() T.stop(ot) end)

  it("two peers see each other (compact), events accepted", function()
    local a, b = bt.peer_id(), bt.peer_id()
    local r1 = assert(bt.tracker.announce(params(ot.url, { peer_id = a, port = 40001, event = "started" }), 5))
    assert.is_nil(r1.failure_reason)
    assert.is_true(r1.interval > 0)
    local r2 = assert(bt.tracker.announce(params(ot.url, { peer_id = b, port = 40002, event = "started" }), 5))
    assert.is_nil(r2.failure_reason)
    local seen = {}
    for _, p in ipairs(r2.peers) do seen[p.ip .. ":" .. p.port] = true end
    assert.is_true(seen["127.0.0.1:40001"], "peer b sees peer a")
    assert.are.equal(2, r2.incomplete)
    local r3 = assert(bt.tracker.announce(params(ot.url, { peer_id = a, port = 40001 }), 5))
    seen = {}
    for _, p in ipairs(r3.peers) do seen[p.ip .. ":" .. p.port] = true end
    assert.is_true(seen["127.0.0.1:40002"], "peer a sees peer b")

    local r4 = assert(bt.tracker.announce(params(ot.url, { peer_id = a, port = 40001, left = 0,
                                                           event = "completed" }), 5))
    assert.is_nil(r4.failure_reason)
    assert.are.equal(1, r4.complete)
    local r5 = assert(bt.tracker.announce(params(ot.url, { peer_id = b, port = 40002, event = "stopped" }), 5))
    assert.is_nil(r5.failure_reason)
    local r6 = assert(bt.tracker.announce(params(ot.url, { peer_id = a, port = 40001, left = 0 }), 5))
    assert.are.equal(0, r6.incomplete)
    assert.are.equal(1, r6.complete)
  end)

  it("reports the tracker's refusal of an unlisted torrent as failure_reason", function()
    local r = assert(bt.tracker.announce(params(ot.url, { info_hash = string.rep("\99", 20) }), 5))
    assert.matches("not authorized", r.failure_reason)
  end)
end)

describe("announce over HTTPS", function()
  it("verifies certificates: a self-signed server is refused", function()
    local H = require "spec.helpers"
    local dir = H.tmpdir()
    local out, ok = H.sh("openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
      .. " -keyout " .. H.q(dir .. "/k.pem") .. " -out " .. H.q(dir .. "/c.pem"))
    assert(ok, out)
    local port = T.free_port()
    local pid = T.spawn(string.format("exec openssl s_server -quiet -www -accept %d -cert %s -key %s",
      port, H.q(dir .. "/c.pem"), H.q(dir .. "/k.pem")), dir .. "/log")
    local up = T.wait_port(port, 5)
    local r, msg = bt.tracker.announce(params("https://127.0.0.1:" .. port .. "/announce"), 5)
    T.kill(pid)
    H.rmtree(dir)
    assert.is_true(up)
    assert.is_nil(r)
    assert.matches("^TLS certificate not trusted: ", msg)
  end)
end)

describe("announce against a fake tracker", function()
  local f
  lazy_setup(function() f = T.start_fake() end)
  lazy_teardown(function() T.stop_fake(f) end)

  local function ann(path, timeout, extra)
    return bt.tracker.announce(params(f.base .. path, extra), timeout or 5)
  end

  it("failure reason", function()
    local r = assert(ann("/failure"))
    assert.are.equal("torrent not registered", r.failure_reason)
    assert.are.same({}, r.peers)
  end)

  it("warning, intervals, counts and tracker id", function()
    local r = assert(ann("/warning"))
    assert.is_nil(r.failure_reason)
    assert.are.equal("slow down", r.warning_message)
    assert.are.equal(900, r.interval)
    assert.are.equal(60, r.min_interval)
    assert.are.equal(3, r.complete)
    assert.are.equal(4, r.incomplete)
    assert.are.equal("tid-42", r.tracker_id)
    assert.are.equal(200, r.http_status)
    assert.are.same({ { ip = "10.0.0.1", port = 6881 } }, r.peers)
  end)

  it("dictionary peers, a DNS name and port 0 dropped", function()
    local r = assert(ann("/dict"))
    assert.are.same({ { ip = "192.168.1.2", port = 51413 }, { ip = "2001:db8::1", port = 6882 },
                      { ip = "10.0.0.10", port = 6884 } }, r.peers)
    assert.are.equal(2, r.peers_dropped)
  end)

  it("peers6 after the IPv4 peers", function()
    local r = assert(ann("/peers6"))
    assert.are.same({ { ip = "127.0.0.1", port = 7000 }, { ip = "::1", port = 6881 },
                      { ip = "2001:db8::2", port = 80 } }, r.peers)
  end)

  it("sends the query and the User-Agent", function()
    local r = assert(ann("/echo?passkey=k", 5, { peer_id = "-BL0100-abcdefghijkl", event = "stopped" }))
    assert.are.equal("GET /echo?passkey=k&info_hash=" .. bt.tracker.urlencode(IH)
      .. "&peer_id=-BL0100-abcdefghijkl&port=6881&uploaded=0&downloaded=0&left=1000&compact=1"
      .. "&event=stopped UA=bt-lua/0.1", r.failure_reason)
  end)

  it("follows a redirect, refuses a loop and a non-HTTP target", function()
    local r = assert(ann("/redirect"))
    assert.are.equal(1800, r.interval)
    local nope, msg = ann("/redirloop")
    assert.is_nil(nope)
    assert.are.equal("too many redirects (over 3)", msg)
    nope, msg = ann("/redirfile")
    assert.is_nil(nope)
    assert.matches("^redirect to a non%-HTTP URL refused: ", msg)
  end)

  it("garbage body", function()
    local r, msg = ann("/garbage")
    assert.is_nil(r)
    assert.are.equal("bad reply: invalid character at byte 0", msg)
  end)

  it("junk after a complete reply is ignored", function()
    local r = assert(ann("/trailing"))
    assert.are.equal(5, r.interval)
  end)

  it("a body over the cap, with and without Content-Length", function()
    local r, msg = ann("/big")
    assert.is_nil(r)
    assert.are.equal("body too large (over 2097152 bytes)", msg)
    r, msg = ann("/bigcl")
    assert.is_nil(r)
    assert.are.equal("body too large (over 2097152 bytes)", msg)
  end)

  it("HTTP 500, and a 400 carrying a bencoded failure reason", function()
    local r, msg = ann("/500")
    assert.is_nil(r)
    assert.are.equal("HTTP 500", msg)
    r = assert(ann("/refusal400"))
    assert.are.equal("invalid info_hash", r.failure_reason)
    assert.are.equal(400, r.http_status)
  end)

  it("a server that never answers times out on the configured timeout", function()
    local socket = require "socket"
    local t0 = socket.gettime()
    local r, msg = ann("/hang", 0.5)
    local dt = socket.gettime() - t0
    assert.is_nil(r)
    assert.matches("^timeout after 0.5 s", msg)
    assert.is_true(dt >= 0.45 and dt < 3, "took " .. dt)
  end)

  it("the C API: concurrent announces, cancel, free and announce from a callback", function()
    -- Built here with ASan+UBSan: the engine drives bt_tracker this way on its loop.
    local H = require "spec.helpers"
    local exe = os.tmpname()
    local out, ok = H.build_c_test(exe, "spec/tracker_c_test.c csrc/engine/tracker.c"
      .. " csrc/codec/tracker_parse.c csrc/codec/udp_tracker.c csrc/codec/bencode.c csrc/core/buf.c -lcurl -lev")
    assert(ok, out)
    out, ok = H.run_c_test(exe, f.base)
    os.remove(exe)
    assert.are.equal("all passed\n", out)
    assert.is_true(ok)
  end)

  it("a refused port", function()
    local port = T.free_port()
    local r, msg = bt.tracker.announce(params("http://127.0.0.1:" .. port .. "/announce"), 5)
    assert.is_nil(r)
    assert.matches("^connection refused", msg)
  end)
end)
