/* magnet_fuzz.c: the magnet URI parser (csrc/codec/magnet.c) on hostile bytes. The
 * input is the URI after "magnet:?" half the time (so the parser gets past the
 * prefix), the whole URI otherwise. Checked: the result stays inside its limits and
 * every string kept is NUL-terminated, free of control bytes (tr, x.pe) and inside
 * the arena. */
#include "codec/magnet.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static void check_str(const bt_magnet *m, bt_mstr s, size_t cap, int controls_ok)
{
    assert(s.p >= m->arena && s.p + s.n < m->arena + cap);
    assert(s.p[s.n] == 0 && strlen(s.p) == s.n);
    for (size_t i = 0; i < s.n && !controls_ok; i++)
        assert((unsigned char)s.p[i] >= 0x20 && s.p[i] != 0x7f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    int whole = data[0] & 1;
    const char *pre = whole ? "" : "magnet:?";
    size_t plen = strlen(pre), n = plen + size - 1;
    char *uri = malloc(n ? n : 1);
    if (!uri)
        return 0;
    memcpy(uri, pre, plen);
    memcpy(uri + plen, data + 1, size - 1);
    bt_magnet m;
    const char *err = NULL;
    size_t off = 0;
    int rc = bt_magnet_parse(&m, uri, n, &err, &off);
    if (rc != 0) {
        assert(rc == -1 && err && off <= n + 1);
    } else {
        assert(n <= BT_MAGNET_MAX_LEN);
        assert(m.ntr <= BT_MAGNET_MAX_TRACKERS && m.npe <= BT_MAGNET_MAX_PEERS);
        if (m.dn.p) {
            check_str(&m, m.dn, n + 1, 0);
            assert(m.dn.n <= BT_MAGNET_MAX_DN);
        }
        for (uint32_t i = 0; i < m.ntr; i++) {
            check_str(&m, m.tr[i], n + 1, 0);
            for (uint32_t j = 0; j < i; j++)
                assert(strcmp(m.tr[i].p, m.tr[j].p) != 0);
        }
        for (uint32_t i = 0; i < m.npe; i++) {
            check_str(&m, m.pe[i], n + 1, 0);
            assert(strrchr(m.pe[i].p, ':') != NULL);
        }
    }
    bt_magnet_free(&m);
    free(uri);
    return 0;
}
