/* magnet.c: magnet URIs (magnet.h). */
#include "codec/magnet.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static int lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool prefix_ci(const char *s, size_t n, const char *pre)
{
    size_t k = strlen(pre);
    if (n < k)
        return false;
    for (size_t i = 0; i < k; i++)
        if (lower((unsigned char)s[i]) != pre[i])
            return false;
    return true;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = lower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* RFC 4648 base32, either case. */
static int b32val(int c)
{
    c = lower(c);
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    return c >= '2' && c <= '7' ? c - '2' + 26 : -1;
}

/* Percent-decode v[0..n) to out (room for n bytes); plus: '+' is a space.
 * Returns the decoded length, or -1 on a bad escape (*bad: its offset in v). */
static long decode(const char *v, size_t n, bool plus, char *out, size_t *bad)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (c == '%') {
            if (i + 2 >= n) {
                *bad = i;
                return -1;
            }
            int a = hexval((unsigned char)v[i + 1]), b = hexval((unsigned char)v[i + 2]);
            if (a < 0 || b < 0) {
                *bad = i;
                return -1;
            }
            c = (char)(a << 4 | b);
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        }
        out[o++] = c;
    }
    return (long)o;
}

static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

/* "host:port" or "[v6]:port": a host of at most 253 bytes without spaces, port 1..65535. */
static bool hostport_ok(const char *s, size_t n)
{
    size_t colon = n;
    while (colon > 0 && s[colon - 1] != ':')
        colon--;
    if (colon == 0 || colon == n || n - colon > 5)
        return false;
    long port = 0;
    for (size_t i = colon; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        port = port * 10 + (s[i] - '0');
    }
    if (port < 1 || port > 65535)
        return false;
    size_t hl = colon - 1;
    if (hl == 0 || hl > 253 + 2)
        return false;
    if (s[0] == '[')
        return hl > 2 && s[hl - 1] == ']' && memchr(s + 1, ':', hl - 2) != NULL;
    for (size_t i = 0; i < hl; i++)
        if (s[i] == ' ' || s[i] == ':' || s[i] == '[' || s[i] == ']' || s[i] == '/')
            return false;
    return true;
}

static int parse_btih(const char *v, size_t n, uint8_t out[20])
{
    if (n == 40) {
        for (size_t i = 0; i < 20; i++) {
            int a = hexval((unsigned char)v[2 * i]), b = hexval((unsigned char)v[2 * i + 1]);
            if (a < 0 || b < 0)
                return -1;
            out[i] = (uint8_t)(a << 4 | b);
        }
        return 0;
    }
    if (n == 32) {   /* 32 x 5 bits = 160 bits, no padding */
        uint64_t acc = 0;
        int bits = 0;
        size_t o = 0;
        for (size_t i = 0; i < 32; i++) {
            int d = b32val((unsigned char)v[i]);
            if (d < 0)
                return -1;
            acc = acc << 5 | (uint64_t)d;
            bits += 5;
            if (bits >= 8) {
                bits -= 8;
                out[o++] = (uint8_t)(acc >> bits);
            }
        }
        return 0;
    }
    return -2;
}

/* Cut s to at most max bytes without splitting a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t n, size_t max)
{
    if (n <= max)
        return n;
    size_t k = max;
    while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80)
        k--;
    return k;
}

static bool key_is(const char *k, size_t kn, const char *name)
{
    size_t n = strlen(name);
    if (kn == n)
        return memcmp(k, name, n) == 0;
    /* numbered forms: xt.1, tr.2 (BEP 9 lists them for several values) */
    if (kn <= n + 1 || memcmp(k, name, n) != 0 || k[n] != '.')
        return false;
    for (size_t i = n + 1; i < kn; i++)
        if (k[i] < '0' || k[i] > '9')
            return false;
    return true;
}

#define FAIL(msg, off) do { *err = (msg); *err_off = (off); return -1; } while (0)

int bt_magnet_parse(bt_magnet *m, const char *uri, size_t len, const char **err, size_t *err_off)
{
    memset(m, 0, sizeof *m);
    *err_off = 0;
    if (len > BT_MAGNET_MAX_LEN)
        FAIL("magnet URI longer than 65536 bytes", BT_MAGNET_MAX_LEN);
    if (!prefix_ci(uri, len, "magnet:?"))
        FAIL("not a magnet URI (magnet:?...)", 0);
    /* every decoded value is at most as long as its text, plus its NUL */
    m->arena = malloc(len + 1);
    if (!m->arena)
        FAIL("out of memory", 0);
    size_t used = 0;
    bool have_hash = false;
    size_t pos = 8;
    while (pos <= len) {
        size_t end = pos;
        while (end < len && uri[end] != '&')
            end++;
        const char *k = uri + pos;
        size_t pn = end - pos;
        size_t start = pos;
        pos = end + 1;
        if (pn == 0)
            continue;   /* "&&" or a trailing '&' */
        const char *eq = memchr(k, '=', pn);
        if (!eq)
            FAIL("magnet parameter without '='", start);
        size_t kn = (size_t)(eq - k);
        const char *v = eq + 1;
        size_t vn = pn - kn - 1;
        bool is_xt = key_is(k, kn, "xt"), is_dn = kn == 2 && memcmp(k, "dn", 2) == 0;
        bool is_tr = key_is(k, kn, "tr"), is_pe = kn == 4 && memcmp(k, "x.pe", 4) == 0;
        if (!is_xt && !is_dn && !is_tr && !is_pe)
            continue;
        char *out = m->arena + used;
        size_t bad = 0;
        long dn = decode(v, vn, is_dn, out, &bad);
        if (dn < 0)
            FAIL("bad %-escape in a magnet parameter", start + kn + 1 + bad);
        size_t n = (size_t)dn;
        if (is_xt) {
            if (!prefix_ci(out, n, "urn:btih:"))
                continue;   /* urn:btmh: (v2), urn:sha1:...: not ours */
            uint8_t h[20];
            int r = parse_btih(out + 9, n - 9, h);
            if (r == -2)
                FAIL("urn:btih: must be 40 hex digits or 32 base32 characters", start);
            if (r < 0)
                FAIL(n - 9 == 40 ? "urn:btih: has a character that is not a hex digit"
                                 : "urn:btih: has a character that is not base32 (A-Z, 2-7)", start);
            if (have_hash && memcmp(h, m->info_hash, 20) != 0)
                FAIL("two different urn:btih: info-hashes", start);
            memcpy(m->info_hash, h, 20);
            have_hash = true;
            continue;
        }
        if (is_dn) {
            if (memchr(out, 0, n))
                FAIL("NUL byte in dn", start);
            for (size_t i = 0; i < n; i++)
                if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
                    out[i] = '?';
            n = utf8_cut(out, n, BT_MAGNET_MAX_DN);
            out[n] = 0;
            m->dn = (bt_mstr){ out, n };
            used += n + 1;
            continue;
        }
        if (n == 0 || has_control(out, n))
            FAIL(is_tr ? "empty tr, or a control byte in it" : "empty x.pe, or a control byte in it", start);
        if (is_pe) {
            if (!hostport_ok(out, n))
                FAIL("x.pe is not host:port", start);
            if (m->npe == BT_MAGNET_MAX_PEERS) {
                m->pe_dropped++;
                continue;
            }
            out[n] = 0;
            m->pe[m->npe++] = (bt_mstr){ out, n };
            used += n + 1;
            continue;
        }
        /* tr */
        if (!prefix_ci(out, n, "http://") && !prefix_ci(out, n, "https://") && !prefix_ci(out, n, "udp://")) {
            m->tr_dropped++;
            continue;
        }
        bool dup = false;
        for (uint32_t i = 0; i < m->ntr && !dup; i++)
            dup = m->tr[i].n == n && memcmp(m->tr[i].p, out, n) == 0;
        if (dup)
            continue;
        if (m->ntr == BT_MAGNET_MAX_TRACKERS) {
            m->tr_dropped++;
            continue;
        }
        out[n] = 0;
        m->tr[m->ntr++] = (bt_mstr){ out, n };
        used += n + 1;
    }
    if (!have_hash)
        FAIL("no xt=urn:btih: info-hash (BitTorrent v2 btmh-only magnets are not supported)", 0);
    return 0;
}

void bt_magnet_free(bt_magnet *m)
{
    free(m->arena);
    memset(m, 0, sizeof *m);
}
