/* krpc_fuzz.c: the KRPC parser (csrc/codec/krpc.c) on hostile bytes, and the
 * builders on what it accepted: every field the parser hands out must have the
 * length the header promises, and a reply or query rebuilt from a parsed one must
 * parse again to the same fields. */
#include "codec/krpc.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bt_krpc_msg m, m2;
    const char *err = NULL;
    int rc = bt_krpc_parse(data, size, &m, &err);
    assert(rc == 0 || rc == -1);
    if (rc != 0) {
        assert(err && err[0]);
        assert(m.tid == NULL || (m.tid_len >= 1 && m.tid_len <= BT_KRPC_MAX_TID));
        return 0;
    }
    assert(m.tid && m.tid_len >= 1 && m.tid_len <= BT_KRPC_MAX_TID);
    assert(m.tid >= data && m.tid + m.tid_len <= data + size);
    assert(m.nodes_len % BT_KRPC_NODE_LEN == 0 && m.nodes6_len % BT_KRPC_NODE6_LEN == 0);
    assert(m.nvalues <= BT_KRPC_MAX_VALUES);
    for (uint32_t i = 0; i < m.nvalues; i++)
        assert(m.value_len[i] == 6 || m.value_len[i] == 18);
    assert(strlen(m.err_msg) <= BT_KRPC_MAX_ERRMSG);
    bt_buf b = { 0 };
    if (m.type == BT_KRPC_QUERY && m.method != BT_KRPC_UNKNOWN) {
        assert(m.has_id);
        bt_krpc_query q = { .method = m.method, .tid = m.tid, .tid_len = m.tid_len, .id = m.id,
                            .target = m.method == BT_KRPC_FIND_NODE ? m.target : m.info_hash,
                            .token = m.token, .token_len = m.token_len, .port = m.port,
                            .implied_port = m.implied_port };
        if (m.method == BT_KRPC_ANNOUNCE_PEER)
            assert(m.token_len >= 1 && m.token_len <= BT_KRPC_MAX_TOKEN && (m.implied_port || m.port));
        if (bt_krpc_build_query(&b, &q) == 0) {
            assert(bt_krpc_parse(b.data, b.len, &m2, &err) == 0);
            assert(m2.type == BT_KRPC_QUERY && m2.method == m.method && memcmp(m2.id, m.id, 20) == 0);
            assert(m2.port == m.port && m2.implied_port == m.implied_port && m2.token_len == m.token_len);
        }
    } else if (m.type == BT_KRPC_REPLY) {
        assert(m.has_id);
        uint8_t vals[6 * BT_KRPC_MAX_VALUES];
        uint32_t nv = 0;
        for (uint32_t i = 0; i < m.nvalues; i++)
            if (m.value_len[i] == 6)
                memcpy(vals + 6 * nv++, m.values[i], 6);
        bt_krpc_reply r = { .tid = m.tid, .tid_len = m.tid_len, .id = m.id, .nodes = m.nodes,
                            .nodes_len = m.nodes_len, .token = m.token, .token_len = m.token_len,
                            .values = nv ? vals : NULL, .nvalues = nv };
        if (bt_krpc_build_reply(&b, &r) == 0 && b.len <= BT_KRPC_MAX_DATAGRAM) {
            assert(bt_krpc_parse(b.data, b.len, &m2, &err) == 0);
            assert(m2.type == BT_KRPC_REPLY && m2.nodes_len == m.nodes_len && m2.nvalues == nv);
        }
    } else if (m.type == BT_KRPC_ERROR) {
        if (bt_krpc_build_error(&b, m.tid, m.tid_len, (int)(m.err_code & 0xffff), m.err_msg) == 0 &&
            b.len <= BT_KRPC_MAX_DATAGRAM) {
            assert(bt_krpc_parse(b.data, b.len, &m2, &err) == 0);
            assert(m2.type == BT_KRPC_ERROR && strcmp(m2.err_msg, m.err_msg) == 0);
        }
    }
    bt_buf_free(&b);
    return 0;
}
