/* tracker_fuzz.c: the HTTP tracker reply and scrape parsers, the announce and scrape URL builders
 * (csrc/tracker_parse.c, part of the Makefile's PURE list) on hostile bytes. */
#include "codec/tracker_parse.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bt_announce_result r;
    int rc = bt_tracker_parse((const char *)data, size, &r);
    assert(rc == 0 ? r.ok == 1 : r.ok == 0 && r.error[0]);
    assert(r.npeers <= BT_TRACKER_MAX_PEERS);
    for (uint32_t i = 0; i < r.npeers; i++)
        assert((r.peers[i].family == 4 || r.peers[i].family == 6) && r.peers[i].port != 0);
    if (r.failure_reason)
        assert(strlen(r.failure_reason) <= BT_TRACKER_MAX_MSG);
    if (r.warning_message)
        assert(strlen(r.warning_message) <= BT_TRACKER_MAX_MSG);
    assert(r.tracker_id_len <= BT_TRACKER_MAX_TRACKER_ID);
    bt_announce_result_free(&r);

    /* As a scrape reply, for the hash of twenty 'a's (the seed corpus's "scrape"). */
    static const uint8_t ih[20] = "aaaaaaaaaaaaaaaaaaaa";
    rc = bt_scrape_parse((const char *)data, size, ih, &r);
    assert(rc == 0 ? r.ok == 1 : r.ok == 0 && r.error[0]);
    assert(r.npeers == 0);
    bt_announce_result_free(&r);

    /* The same bytes as a URL, with a tracker id taken from the tail. */
    if (size > 0 && size < 8192) {
        char url[8192];
        size_t ulen = size / 2;
        memcpy(url, data, ulen);
        url[ulen] = '\0';
        bt_announce req;
        memset(&req, 0, sizeof req);
        req.url = url;
        req.event = (bt_announce_event)(data[0] & 3);
        req.numwant = (int8_t)data[size - 1];
        req.has_key = data[0] & 4;
        req.tracker_id = (const char *)data + ulen;
        req.tracker_id_len = size - ulen;
        bt_buf b = {0};
        int u = bt_announce_url(&b, &req);
        assert(u == 0 || u == -2);
        if (u == 0)
            assert(b.data[b.len] == '\0' && strlen((char *)b.data) <= b.len);
        bt_buf_free(&b);
        u = bt_scrape_url(&b, url, ih);
        assert(u == 0 || u == -2 || u == -3);
        if (u == 0)
            assert(b.data[b.len] == '\0' && strstr((char *)b.data, "scrape"));
        bt_buf_free(&b);
    }
    return 0;
}
