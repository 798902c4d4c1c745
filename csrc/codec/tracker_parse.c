/* tracker_parse.c: the pure part of the HTTP tracker client (see tracker.h):
 * announce URL, percent-encoding, reply parser. No I/O, no libev, no curl. */
#include "codec/tracker_parse.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/bencode.h"

static const char HEX[] = "0123456789ABCDEF";

static int unreserved(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
           || c == '.' || c == '_' || c == '~';
}

size_t bt_url_escape(char *out, const void *in, size_t n)
{
    const uint8_t *p = in;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (unreserved(p[i])) {
            out[k++] = (char)p[i];
        } else {
            out[k++] = '%';
            out[k++] = HEX[p[i] >> 4];
            out[k++] = HEX[p[i] & 15];
        }
    }
    out[k] = '\0';
    return k;
}

static int append_escaped(bt_buf *b, const char *name, const void *p, size_t n)
{
    char tmp[3 * BT_TRACKER_MAX_TRACKER_ID + 1];
    if (n > BT_TRACKER_MAX_TRACKER_ID)   /* callers pass 20-byte hashes and short ids */
        return -2;
    size_t k = bt_url_escape(tmp, p, n);
    if (bt_buf_append(b, name, strlen(name)) < 0 || bt_buf_append(b, tmp, k) < 0)
        return -1;
    return 0;
}

static int appendf(bt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int appendf(bt_buf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return -2;
    return bt_buf_append(b, tmp, (size_t)n);
}

static int64_t nonneg(int64_t v) { return v < 0 ? 0 : v; }

int bt_announce_url(bt_buf *b, const bt_announce *req)
{
    static const char *const events[] = {NULL, "started", "completed", "stopped"};
    if (!req->url)
        return -2;
    size_t ulen = strlen(req->url);
    if (ulen == 0 || ulen > BT_TRACKER_MAX_URL)
        return -2;
    if (strncasecmp(req->url, "http://", 7) != 0 && strncasecmp(req->url, "https://", 8) != 0)
        return -2;
    for (size_t i = 0; i < ulen; i++)   /* a space or a control byte makes a broken request */
        if ((uint8_t)req->url[i] <= ' ' || req->url[i] == 0x7f || req->url[i] == '#')
            return -2;
    if ((unsigned)req->event > BT_EVENT_STOPPED)
        return -2;
    size_t start = b->len;
    int r = bt_buf_append(b, req->url, ulen);
    char last = req->url[ulen - 1];
    const char *sep = !strchr(req->url, '?') ? "?" : (last == '?' || last == '&') ? "" : "&";
    if (!r)
        r = append_escaped(b, sep, "", 0);
    if (!r)
        r = append_escaped(b, "info_hash=", req->info_hash, 20);
    if (!r)
        r = append_escaped(b, "&peer_id=", req->peer_id, 20);
    if (!r)
        r = appendf(b, "&port=%u&uploaded=%lld&downloaded=%lld&left=%lld&compact=1",
                    (unsigned)req->port, (long long)nonneg(req->uploaded),
                    (long long)nonneg(req->downloaded), (long long)nonneg(req->left));
    if (!r && req->event != BT_EVENT_NONE)
        r = appendf(b, "&event=%s", events[req->event]);
    if (!r && req->numwant >= 0)
        r = appendf(b, "&numwant=%d", (int)req->numwant);
    if (!r && req->has_key)
        r = appendf(b, "&key=%08X", (unsigned)req->key);
    if (!r && req->tracker_id)
        r = append_escaped(b, "&trackerid=", req->tracker_id, req->tracker_id_len);
    if (!r)
        r = bt_buf_putc(b, '\0');
    if (r) {
        b->len = start;
        return r;
    }
    b->len--;   /* the NUL stays in the buffer, outside len */
    return 0;
}

/* ------------------------------------------------------------------------ */

void bt_announce_result_init(bt_announce_result *r)
{
    memset(r, 0, sizeof *r);
    r->interval = r->min_interval = r->complete = r->incomplete = r->downloaded = -1;
}

void bt_announce_result_free(bt_announce_result *r)
{
    free(r->failure_reason);
    free(r->warning_message);
    free(r->tracker_id);
    free(r->peers);
    r->failure_reason = r->warning_message = r->tracker_id = NULL;
    r->peers = NULL;
    r->npeers = 0;
}

int bt_announce_fail(bt_announce_result *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    r->ok = 0;
    return -1;
}

/* A NUL-terminated copy of string token t, cut at `cap` bytes. */
static char *dup_str(const bt_bdoc *d, uint32_t t, size_t cap, size_t *outlen)
{
    size_t n;
    const char *s = bt_bstr(d, t, &n);
    if (n > cap)
        n = cap;
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    if (outlen)
        *outlen = n;
    return p;
}

/* Optional integer key: -1 when absent or negative (a negative interval or count
 * means nothing); error when present with another type. */
static int get_int(const bt_bdoc *d, const char *key, int64_t *out, bt_announce_result *r)
{
    uint32_t t = bt_bdict_get(d, 0, key);
    if (!t)
        return 0;
    if (bt_btype_of(d, t) != BT_BINT)
        return bt_announce_fail(r, "bad reply: '%s' is not an integer", key);
    int64_t v = bt_bint(d, t);
    *out = v < 0 ? -1 : v;
    return 0;
}

int bt_announce_add_peer(bt_announce_result *r, uint32_t *cap, int family, const void *addr,
                         uint16_t port)
{
    if (port == 0 || r->npeers >= BT_TRACKER_MAX_PEERS) {
        r->peers_dropped++;
        return 0;
    }
    if (r->npeers == *cap) {
        uint32_t nc = *cap ? *cap * 2 : 64;
        if (nc > BT_TRACKER_MAX_PEERS)
            nc = BT_TRACKER_MAX_PEERS;
        bt_peer_addr *np = realloc(r->peers, nc * sizeof *np);
        if (!np)
            return bt_announce_fail(r, "out of memory");
        r->peers = np;
        *cap = nc;
    }
    bt_peer_addr *p = &r->peers[r->npeers++];
    memset(p, 0, sizeof *p);
    p->family = (uint8_t)family;
    memcpy(p->addr, addr, family == 4 ? 4 : 16);
    p->port = port;
    return 0;
}

/* Compact peers: entries of alen address bytes + 2 port bytes (BEP 23, BEP 7). A
 * partial entry at the end is dropped, not fatal: the rest is usable. */
static int compact_peers(bt_announce_result *r, uint32_t *cap, const uint8_t *p, size_t n,
                         int family)
{
    size_t alen = family == 4 ? 4 : 16, step = alen + 2;
    for (size_t i = 0; i + step <= n; i += step)
        if (bt_announce_add_peer(r, cap, family, p + i, (uint16_t)(p[i + alen] << 8 | p[i + alen + 1])) < 0)
            return -1;
    if (n % step)
        r->peers_dropped++;
    return 0;
}

/* Dictionary peers (BEP 3): {"ip": text, "port": int, "peer id": ...}. An entry
 * we cannot use (a DNS name, a bad port, a wrong type) is dropped, not fatal. */
static int dict_peers(bt_announce_result *r, uint32_t *cap, const bt_bdoc *d, uint32_t list)
{
    for (uint32_t c = bt_bfirst(d, list); c; c = bt_bnext(d, list, c)) {
        if (bt_btype_of(d, c) != BT_BDICT) {
            r->peers_dropped++;
            continue;
        }
        uint32_t ti = bt_bdict_get(d, c, "ip"), tp = bt_bdict_get(d, c, "port");
        if (!ti || !tp || bt_btype_of(d, ti) != BT_BSTR || bt_btype_of(d, tp) != BT_BINT) {
            r->peers_dropped++;
            continue;
        }
        int64_t port = bt_bint(d, tp);
        size_t n;
        const char *s = bt_bstr(d, ti, &n);
        char ip[INET6_ADDRSTRLEN];
        uint8_t a[16];
        if (port <= 0 || port > 65535 || n == 0 || n >= sizeof ip) {
            r->peers_dropped++;
            continue;
        }
        memcpy(ip, s, n);
        ip[n] = '\0';
        int fam = 0;
        if (memchr(s, '\0', n))
            fam = 0;
        else if (inet_pton(AF_INET, ip, a) == 1)
            fam = 4;
        else if (inet_pton(AF_INET6, ip, a) == 1)
            fam = 6;
        if (!fam) {
            r->peers_dropped++;
            continue;
        }
        if (bt_announce_add_peer(r, cap, fam, a, (uint16_t)port) < 0)
            return -1;
    }
    return 0;
}

static int parse_doc(const bt_bdoc *d, bt_announce_result *r)
{
    if (bt_btype_of(d, 0) != BT_BDICT)
        return bt_announce_fail(r, "bad reply: not a dictionary");
    uint32_t t;
    if ((t = bt_bdict_get(d, 0, "failure reason"))) {
        if (bt_btype_of(d, t) != BT_BSTR)
            return bt_announce_fail(r, "bad reply: 'failure reason' is not a string");
        if (!(r->failure_reason = dup_str(d, t, BT_TRACKER_MAX_MSG, NULL)))
            return bt_announce_fail(r, "out of memory");
    }
    if ((t = bt_bdict_get(d, 0, "warning message")) && bt_btype_of(d, t) == BT_BSTR
        && !(r->warning_message = dup_str(d, t, BT_TRACKER_MAX_MSG, NULL)))
        return bt_announce_fail(r, "out of memory");
    if ((t = bt_bdict_get(d, 0, "tracker id")) && bt_btype_of(d, t) == BT_BSTR) {
        size_t n;
        bt_bstr(d, t, &n);
        if (n <= BT_TRACKER_MAX_TRACKER_ID
            && !(r->tracker_id = dup_str(d, t, BT_TRACKER_MAX_TRACKER_ID, &r->tracker_id_len)))
            return bt_announce_fail(r, "out of memory");
    }
    if (get_int(d, "interval", &r->interval, r) < 0 || get_int(d, "min interval", &r->min_interval, r) < 0
        || get_int(d, "complete", &r->complete, r) < 0
        || get_int(d, "incomplete", &r->incomplete, r) < 0)
        return -1;
    if (r->failure_reason) {   /* the other keys are optional then; peers are ignored */
        r->ok = 1;
        return 0;
    }
    uint32_t cap = 0;
    uint32_t tp = bt_bdict_get(d, 0, "peers"), t6 = bt_bdict_get(d, 0, "peers6");
    if (tp) {
        if (bt_btype_of(d, tp) == BT_BSTR) {
            size_t n;
            const char *s = bt_bstr(d, tp, &n);
            if (compact_peers(r, &cap, (const uint8_t *)s, n, 4) < 0)
                return -1;
        } else if (bt_btype_of(d, tp) == BT_BLIST) {
            if (dict_peers(r, &cap, d, tp) < 0)
                return -1;
        } else {
            return bt_announce_fail(r, "bad reply: 'peers' is neither a string nor a list");
        }
    }
    if (t6) {
        if (bt_btype_of(d, t6) != BT_BSTR)
            return bt_announce_fail(r, "bad reply: 'peers6' is not a string");
        size_t n;
        const char *s = bt_bstr(d, t6, &n);
        if (compact_peers(r, &cap, (const uint8_t *)s, n, 6) < 0)
            return -1;
    }
    if (!tp && !t6 && r->interval < 0)
        return bt_announce_fail(r, "bad reply: no peers, interval or failure reason");
    r->ok = 1;
    return 0;
}

/* Decode a reply body into d, with the trailing-junk rule. 0, or -1 with out's error set. */
static int decode_body(bt_bdoc *d, const char *body, size_t len, bt_announce_result *out)
{
    if (len > BT_TRACKER_MAX_BODY)
        return bt_announce_fail(out, "body too large (%zu bytes)", len);
    /* Some trackers end the body with a newline: not part of the value. */
    while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r' || body[len - 1] == ' '))
        len--;
    if (len == 0)
        return bt_announce_fail(out, "bad reply: empty body");
    bt_berr e = {0};
    if (bt_bdecode(d, body, len, BT_BDEC_ALLOW_UNSORTED, BT_TRACKER_MAX_TOKENS, &e) < 0) {
        if (e.limit)
            return bt_announce_fail(out, "bad reply: too many tokens (limit %u) at byte %zu", (unsigned)e.limit,
                        e.offset);
        /* Junk after a complete dictionary (seen from broken trackers): if the
         * prefix up to the error is a whole value, that value is the reply. */
        bt_berr e2;
        if (e.offset == 0 || e.offset >= len
            || bt_bdecode(d, body, e.offset, BT_BDEC_ALLOW_UNSORTED, BT_TRACKER_MAX_TOKENS, &e2) < 0)
            return bt_announce_fail(out, "bad reply: %s at byte %zu", e.msg ? e.msg : "invalid bencoding",
                        e.offset);
    }
    return 0;
}

int bt_tracker_parse(const char *body, size_t len, bt_announce_result *out)
{
    bt_announce_result_init(out);
    bt_bdoc d = {0};
    if (decode_body(&d, body, len, out) < 0) {
        bt_bdoc_free(&d);
        return -1;
    }
    int r = parse_doc(&d, out);
    bt_bdoc_free(&d);
    return r;
}

int bt_scrape_url(bt_buf *b, const char *url, const uint8_t info_hash[20])
{
    if (!url)
        return -2;
    size_t ulen = strlen(url);
    if (ulen == 0 || ulen > BT_TRACKER_MAX_URL)
        return -2;
    size_t skip = strncasecmp(url, "http://", 7) == 0 ? 7 : strncasecmp(url, "https://", 8) == 0 ? 8 : 0;
    if (!skip)
        return -2;
    for (size_t i = 0; i < ulen; i++)
        if ((uint8_t)url[i] <= ' ' || url[i] == 0x7f || url[i] == '#')
            return -2;
    const char *q = strchr(url, '?');
    size_t pathend = q ? (size_t)(q - url) : ulen;
    size_t slash = pathend;
    while (slash > skip && url[slash - 1] != '/')
        slash--;
    if (slash == skip || pathend - slash < 8 || memcmp(url + slash, "announce", 8) != 0)
        return -3;
    size_t start = b->len;
    int r = bt_buf_append(b, url, slash);
    if (r == 0)
        r = bt_buf_append(b, "scrape", 6);
    if (r == 0)
        r = bt_buf_append(b, url + slash + 8, ulen - slash - 8);
    if (r == 0)
        r = bt_buf_putc(b, q ? '&' : '?');
    if (r == 0)
        r = append_escaped(b, "info_hash=", info_hash, 20);
    if (r == 0)
        r = bt_buf_reserve(b, 1);
    if (r < 0) {
        b->len = start;
        return r;
    }
    b->data[b->len] = '\0';
    return 0;
}

int bt_scrape_parse(const char *body, size_t len, const uint8_t info_hash[20], bt_announce_result *out)
{
    bt_announce_result_init(out);
    bt_bdoc d = {0};
    int r = decode_body(&d, body, len, out);
    if (r == 0 && bt_btype_of(&d, 0) != BT_BDICT)
        r = bt_announce_fail(out, "bad reply: not a dictionary");
    uint32_t t;
    if (r == 0 && (t = bt_bdict_get(&d, 0, "failure reason"))) {
        if (bt_btype_of(&d, t) != BT_BSTR)
            r = bt_announce_fail(out, "bad reply: 'failure reason' is not a string");
        else if (!(out->failure_reason = dup_str(&d, t, BT_TRACKER_MAX_MSG, NULL)))
            r = bt_announce_fail(out, "out of memory");
        else
            out->ok = 1;
        bt_bdoc_free(&d);
        return r;
    }
    uint32_t files = r == 0 ? bt_bdict_get(&d, 0, "files") : 0;
    if (r == 0 && (!files || bt_btype_of(&d, files) != BT_BDICT))
        r = bt_announce_fail(out, "bad reply: no 'files' dictionary");
    uint32_t f = r == 0 ? bt_bdict_getn(&d, files, (const char *)info_hash, 20) : 0;
    if (r == 0 && (!f || bt_btype_of(&d, f) != BT_BDICT))
        r = bt_announce_fail(out, "bad reply: torrent not in the scrape reply");
    if (r == 0) {
        static const char *const keys[] = {"complete", "incomplete", "downloaded"};
        int64_t *dst[] = {&out->complete, &out->incomplete, &out->downloaded};
        for (int i = 0; i < 3 && r == 0; i++) {
            uint32_t v = bt_bdict_get(&d, f, keys[i]);
            if (!v)
                continue;
            if (bt_btype_of(&d, v) != BT_BINT)
                r = bt_announce_fail(out, "bad reply: '%s' is not an integer", keys[i]);
            else
                *dst[i] = bt_bint(&d, v) < 0 ? -1 : bt_bint(&d, v);
        }
    }
    if (r == 0)
        out->ok = 1;
    bt_bdoc_free(&d);
    return r;
}
