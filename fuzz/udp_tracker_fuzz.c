/* udp_tracker_fuzz.c: the BEP 15 reply parser, the udp:// URL parser and the
 * request builders (csrc/codec/udp_tracker.c, part of the Makefile's PURE list) on
 * hostile bytes. The first byte picks the action asked and the family; the
 * transaction id is taken from the reply's own bytes half the time, so the parser
 * gets past the "not ours" check. */
#include "codec/udp_tracker.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t sel = data[0];
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    uint32_t want = sel % 3;
    int family = sel & 4 ? 6 : 4;
    uint32_t tid = 0x01020304;
    if ((sel & 8) && n >= 8)
        tid = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    bt_announce_result r;
    uint64_t conn = 0;
    int rc = bt_udp_parse_reply(p, n, want, tid, family, &r, &conn);
    assert(rc == 1 || rc == 0 || rc == -1);
    assert(rc == 0 ? r.ok == 1 : rc == 1 || (r.ok == 0 && r.error[0]));
    assert(r.npeers <= BT_TRACKER_MAX_PEERS);
    for (uint32_t i = 0; i < r.npeers; i++)
        assert(r.peers[i].family == family && r.peers[i].port != 0);
    if (r.failure_reason)
        assert(strlen(r.failure_reason) <= BT_TRACKER_MAX_MSG);
    bt_announce_result_free(&r);

    /* The same bytes as a URL, and the requests it leads to. */
    if (n < 4096) {
        char url[4096 + 8] = "udp://";
        memcpy(url + 6, p, n);
        url[6 + n] = '\0';
        bt_udp_url u;
        if (bt_udp_parse_url(url, &u) == 0) {
            assert(u.port != 0 && u.host[0] && strlen(u.host) <= BT_UDP_MAX_HOST);
            assert(u.path_len <= BT_UDP_MAX_URLDATA && strlen(u.path) == u.path_len);
            bt_announce req;
            memset(&req, 0, sizeof req);
            req.event = (bt_announce_event)(sel & 3);
            req.numwant = (int8_t)sel;
            uint8_t out[BT_UDP_MAX_REQUEST];
            size_t k = bt_udp_announce_req(out, 1, tid, &req, u.path, u.path_len);
            assert(k >= 98 && k <= BT_UDP_MAX_REQUEST);
            assert(k == 98 + u.path_len + 2 * ((u.path_len + 254) / 255));
        }
    }
    return 0;
}
