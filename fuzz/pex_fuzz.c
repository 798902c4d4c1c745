/* pex_fuzz.c: the BEP 11 ut_pex parser and builder (csrc/codec/pex.c) on hostile
 * bytes. Whatever parses is read entry by entry, the first BT_PEX_MAX_SEND added and
 * dropped peers are built into a message of ours, and that message must parse back
 * to exactly those peers (families, addresses, ports, added flags). */
#include "codec/pex.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static uint32_t take(const bt_pex_msg *m, int k4, int k6, bt_pex_addr *out)
{
    uint32_t n = 0;
    for (int k = k4; k <= k6; k++)
        for (uint32_t i = 0; i < m->n[k] && n < BT_PEX_MAX_SEND; i++) {
            bt_pex_entry(m, k, i, &out[n]);
            assert(out[n].family == (k == k4 ? 4 : 6));
            (void)bt_pex_is_local(&out[n]);
            n++;
        }
    return n;
}

/* The entries of list family kk of a parsed message, in order. */
static uint32_t take_all(const bt_pex_msg *m, int k4, int k6, bt_pex_addr *out)
{
    uint32_t n = 0;
    for (int k = k4; k <= k6; k++)
        for (uint32_t i = 0; i < m->n[k]; i++)
            bt_pex_entry(m, k, i, &out[n++]);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bt_pex_msg m;
    const char *why = NULL;
    if (bt_pex_parse(data, size, &m, &why) != 0) {
        assert(why && why[0]);
        return 0;
    }
    assert(size <= BT_PEX_MAX_MSG);
    for (int k = 0; k < 4; k++)
        assert((size_t)m.n[k] * (k == BT_PEX_ADDED || k == BT_PEX_DROPPED ? 6 : 18) <= size);
    bt_pex_addr added[BT_PEX_MAX_SEND], dropped[BT_PEX_MAX_SEND];
    uint32_t na = take(&m, BT_PEX_ADDED, BT_PEX_ADDED6, added);
    uint32_t nd = take(&m, BT_PEX_DROPPED, BT_PEX_DROPPED6, dropped);
    for (uint32_t i = 0; i < nd; i++)
        dropped[i].flags = 0;   /* dropped peers carry none */
    bt_buf b = { 0 };
    if (bt_pex_build(&b, added, na, dropped, nd) != 0) {
        bt_buf_free(&b);
        return 0;
    }
    bt_pex_msg back;
    int rc = bt_pex_parse(b.data, b.len, &back, &why);
    assert(rc == 0);
    bt_pex_addr a2[BT_PEX_MAX_SEND * 2], d2[BT_PEX_MAX_SEND * 2];
    assert(back.n[BT_PEX_ADDED] + back.n[BT_PEX_ADDED6] == na);
    assert(back.n[BT_PEX_DROPPED] + back.n[BT_PEX_DROPPED6] == nd);
    assert(take_all(&back, BT_PEX_ADDED, BT_PEX_ADDED6, a2) == na);
    assert(take_all(&back, BT_PEX_DROPPED, BT_PEX_DROPPED6, d2) == nd);
    for (uint32_t i = 0; i < na; i++)
        assert(bt_pex_cmp(&a2[i], &added[i]) == 0 && a2[i].flags == added[i].flags);
    for (uint32_t i = 0; i < nd; i++)
        assert(bt_pex_cmp(&d2[i], &dropped[i]) == 0);
    bt_buf_free(&b);
    return 0;
}
