/* pex.c: BEP 11 ut_pex messages (pex.h). */
#include "codec/pex.h"

#include <stdio.h>
#include <string.h>

#include "codec/bencode.h"

static const char *const KEYS[4] = { "added", "added6", "dropped", "dropped6" };
static const char *const FLAG_KEYS[2] = { "added.f", "added6.f" };

static size_t entry_len(int k)
{
    return k == BT_PEX_ADDED || k == BT_PEX_DROPPED ? 6 : 18;
}

int bt_pex_parse(const uint8_t *d, size_t n, bt_pex_msg *m, const char **why)
{
    memset(m, 0, sizeof *m);
    if (n > BT_PEX_MAX_MSG) {
        *why = "PEX message over 64 KiB";
        return -1;
    }
    bt_bdoc doc = { 0 };
    bt_berr err;
    if (bt_bdecode(&doc, (const char *)d, n, BT_BDEC_ALLOW_UNSORTED, BT_PEX_MAX_TOKENS, &err) != 0) {
        *why = "PEX message is not bencode";
        return -1;
    }
    if (bt_btype_of(&doc, 0) != BT_BDICT) {
        bt_bdoc_free(&doc);
        *why = "PEX message is not a dictionary";
        return -1;
    }
    for (int k = 0; k < 4; k++) {
        uint32_t v = bt_bdict_get(&doc, 0, KEYS[k]);
        if (!v || bt_btype_of(&doc, v) != BT_BSTR)
            continue;
        size_t len;
        m->list[k] = (const uint8_t *)bt_bstr(&doc, v, &len);
        m->n[k] = (uint32_t)(len / entry_len(k));   /* a trailing partial entry is ignored */
    }
    for (int k = 0; k < 2; k++) {
        uint32_t v = bt_bdict_get(&doc, 0, FLAG_KEYS[k]);
        if (!v || bt_btype_of(&doc, v) != BT_BSTR)
            continue;
        size_t len;
        const uint8_t *f = (const uint8_t *)bt_bstr(&doc, v, &len);
        if (len == m->n[k])   /* flags that do not match the entries say nothing reliable */
            m->flags[k] = f;
    }
    bt_bdoc_free(&doc);
    return 0;
}

void bt_pex_entry(const bt_pex_msg *m, int k, uint32_t i, bt_pex_addr *out)
{
    size_t step = entry_len(k), alen = step - 2;
    const uint8_t *e = m->list[k] + (size_t)i * step;
    memset(out, 0, sizeof *out);
    out->family = alen == 4 ? 4 : 6;
    memcpy(out->addr, e, alen);
    out->port = (uint16_t)(e[alen] << 8 | e[alen + 1]);
    if (k <= BT_PEX_ADDED6 && m->flags[k])
        out->flags = m->flags[k][i];
}

/* One key's string: the entries of `list` of the given family, or their flags. */
static int put_list(bt_buf *b, const char *key, const bt_pex_addr *list, uint32_t n, int family, bool flags)
{
    size_t alen = family == 4 ? 4 : 16, count = 0;
    for (uint32_t i = 0; i < n; i++)
        count += list[i].family == family;
    int r = bt_benc_str(b, key, strlen(key));
    char head[24];   /* the string's length prefix, then its bytes as they come */
    int hl = snprintf(head, sizeof head, "%zu:", count * (flags ? 1 : alen + 2));
    r |= bt_buf_append(b, head, (size_t)hl);
    for (uint32_t i = 0; i < n; i++) {
        if (list[i].family != family)
            continue;
        if (flags) {
            r |= bt_buf_putc(b, list[i].flags);
        } else {
            uint8_t port[2] = { (uint8_t)(list[i].port >> 8), (uint8_t)list[i].port };
            r |= bt_buf_append(b, list[i].addr, alen);
            r |= bt_buf_append(b, port, 2);
        }
    }
    return r;
}

int bt_pex_build(bt_buf *b, const bt_pex_addr *added, uint32_t nadded, const bt_pex_addr *dropped,
                 uint32_t ndropped)
{
    /* keys in byte order: added, added.f, added6, added6.f, dropped, dropped6 */
    int r = bt_buf_putc(b, 'd');
    r |= put_list(b, "added", added, nadded, 4, false);
    r |= put_list(b, "added.f", added, nadded, 4, true);
    r |= put_list(b, "added6", added, nadded, 6, false);
    r |= put_list(b, "added6.f", added, nadded, 6, true);
    r |= put_list(b, "dropped", dropped, ndropped, 4, false);
    r |= put_list(b, "dropped6", dropped, ndropped, 6, false);
    r |= bt_buf_putc(b, 'e');
    return r ? -1 : 0;
}

static bool local4(const uint8_t *a)
{
    return a[0] == 0 || a[0] == 10 || a[0] == 127 || (a[0] == 169 && a[1] == 254) ||
           (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
           (a[0] == 100 && (a[1] & 0xc0) == 64);
}

bool bt_pex_is_local(const bt_pex_addr *a)
{
    if (a->family == 4)
        return local4(a->addr);
    static const uint8_t zero[16] = { 0 };
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (memcmp(a->addr, zero, 15) == 0 && a->addr[15] <= 1)   /* :: and ::1 */
        return true;
    if (memcmp(a->addr, mapped, 12) == 0)
        return local4(a->addr + 12);
    return (a->addr[0] == 0xfe && (a->addr[1] & 0xc0) == 0x80) || (a->addr[0] & 0xfe) == 0xfc;
}

int bt_pex_cmp(const bt_pex_addr *a, const bt_pex_addr *b)
{
    if (a->family != b->family)
        return a->family < b->family ? -1 : 1;
    int c = memcmp(a->addr, b->addr, 16);
    if (c)
        return c;
    return a->port < b->port ? -1 : a->port > b->port;
}
