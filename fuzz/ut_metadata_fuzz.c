/* ut_metadata_fuzz.c: the BEP 9 message parser and builder (csrc/codec/wire.c) and the
 * BEP 10 handshake parser on hostile bytes. A message that parses is built again from
 * its fields and must parse back to the same fields; the handshake's fields must stay
 * inside their bounds. */
#include "codec/wire.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bt_utm u;
    const char *err = NULL;
    int rc = bt_wire_parse_ut_metadata(data, size, &u, &err);
    assert(rc == 0 || rc == 1 || (rc == -1 && err));
    if (rc == 0) {
        assert(u.type >= BT_UTM_REQUEST && u.type <= BT_UTM_REJECT);
        assert(u.type == BT_UTM_DATA ? u.total_size >= 0 && u.data + u.len == data + size
                                     : u.len == 0 && u.data == NULL);
        bt_buf b = { 0 };
        assert(bt_wire_ut_metadata(&b, u.type, u.piece, u.total_size, u.data, u.len) == 0);
        bt_utm v;
        assert(bt_wire_parse_ut_metadata(b.data, b.len, &v, &err) == 0);
        assert(v.type == u.type && v.piece == u.piece && v.len == u.len);
        assert(u.type != BT_UTM_DATA || (v.total_size == u.total_size && memcmp(v.data, u.data, u.len) == 0));
        bt_buf_free(&b);
    }

    bt_ext_hs h;
    if (bt_wire_parse_ext_handshake(data, size, &h) == 0) {
        assert(h.port >= -1 && h.port <= 65535);
        assert(h.yourip_len == 0 || h.yourip_len == 4 || h.yourip_len == 16);
        assert(!h.client || strlen(h.client) <= BT_WIRE_MAX_CLIENT);
        for (size_t i = 0; h.client && h.client[i]; i++)
            assert((unsigned char)h.client[i] >= 0x20 && h.client[i] != 0x7f);
        /* what we would send back parses too */
        h.client = h.client ? h.client : "x";
        bt_buf b = { 0 };
        assert(bt_wire_ext_handshake(&b, &h) == 0);
        bt_ext_hs g;
        assert(bt_wire_parse_ext_handshake(b.data, b.len, &g) == 0);
        /* "m" offers ours under our own ids: what the peer named is what we offer back */
        for (int i = 0; i < BT_EXT_COUNT; i++)
            assert(g.m[i] == (h.m[i] ? BT_EXT_NAMES[i].id : 0));
        assert(g.metadata_size == h.metadata_size && g.port == h.port && g.reqq == h.reqq);
        bt_buf_free(&b);
    }
    return 0;
}
