/* udp_tracker.c: BEP 15 packets and BEP 41's URL-data option (see udp_tracker.h).
 * Pure: byte buffers in, byte buffers and results out. */
#include "codec/udp_tracker.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int bt_udp_parse_url(const char *url, bt_udp_url *out)
{
    memset(out, 0, sizeof *out);
    out->path = "";
    if (!url || strncasecmp(url, "udp://", 6) != 0)
        return -2;
    size_t ulen = strlen(url);
    if (ulen > BT_TRACKER_MAX_URL)
        return -2;
    for (size_t i = 0; i < ulen; i++)
        if ((uint8_t)url[i] <= ' ' || url[i] == 0x7f || url[i] == '#')
            return -2;
    const char *h = url + 6, *hend, *rest;
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend || hend[1] != ':')
            return -2;
        h++;
        rest = hend + 1;
    } else {
        hend = h;
        while (*hend && *hend != ':' && *hend != '/' && *hend != '?')
            hend++;
        if (*hend != ':')
            return -2;   /* BEP 15 has no default port */
        rest = hend;
    }
    size_t hlen = (size_t)(hend - h);
    if (hlen == 0 || hlen > BT_UDP_MAX_HOST || memchr(h, '@', hlen))
        return -2;
    memcpy(out->host, h, hlen);
    out->host[hlen] = '\0';
    rest++;   /* past ':' */
    unsigned long port = 0;
    size_t digits = 0;
    while (rest[digits] >= '0' && rest[digits] <= '9' && digits < 6)
        port = port * 10 + (unsigned long)(rest[digits++] - '0');
    if (digits == 0 || port == 0 || port > 65535 || (rest[digits] && rest[digits] != '/' && rest[digits] != '?'))
        return -2;
    out->port = (uint16_t)port;
    out->path = rest + digits;
    out->path_len = strlen(out->path);
    if (out->path_len > BT_UDP_MAX_URLDATA)
        return -2;
    return 0;
}

void bt_udp_connect_req(uint8_t out[16], uint32_t tid)
{
    put64(out, BT_UDP_PROTOCOL_ID);
    put32(out + 8, BT_UDP_CONNECT);
    put32(out + 12, tid);
}

static int64_t nonneg(int64_t v) { return v < 0 ? 0 : v; }

size_t bt_udp_announce_req(uint8_t *out, uint64_t conn_id, uint32_t tid, const bt_announce *req,
                           const char *urldata, size_t n)
{
    /* BEP 15 numbers events differently from our enum (and from BEP 3's order). */
    static const uint32_t events[] = {0, 2, 1, 3};
    if ((unsigned)req->event > BT_EVENT_STOPPED || n > BT_UDP_MAX_URLDATA)
        return 0;
    put64(out, conn_id);
    put32(out + 8, BT_UDP_ANNOUNCE);
    put32(out + 12, tid);
    memcpy(out + 16, req->info_hash, 20);
    memcpy(out + 36, req->peer_id, 20);
    put64(out + 56, (uint64_t)nonneg(req->downloaded));
    put64(out + 64, (uint64_t)nonneg(req->left));
    put64(out + 72, (uint64_t)nonneg(req->uploaded));
    put32(out + 80, events[req->event]);
    put32(out + 84, 0);   /* IP: the sender's */
    put32(out + 88, req->has_key ? req->key : 0);
    put32(out + 92, (uint32_t)(req->numwant < 0 ? -1 : req->numwant));
    out[96] = (uint8_t)(req->port >> 8);
    out[97] = (uint8_t)req->port;
    size_t k = 98;
    /* BEP 41: option 2 (URL data), one byte of length, at most 255 bytes each; a
     * longer path goes in several, which the tracker concatenates. */
    for (size_t i = 0; i < n;) {
        size_t c = n - i > 255 ? 255 : n - i;
        out[k++] = 2;
        out[k++] = (uint8_t)c;
        memcpy(out + k, urldata + i, c);
        k += c;
        i += c;
    }
    return k;
}

void bt_udp_scrape_req(uint8_t out[36], uint64_t conn_id, uint32_t tid, const uint8_t info_hash[20])
{
    put64(out, conn_id);
    put32(out + 8, BT_UDP_SCRAPE);
    put32(out + 12, tid);
    memcpy(out + 16, info_hash, 20);
}

static const char *action_name(uint32_t a)
{
    static const char *const names[] = {"connect", "announce", "scrape", "error"};
    return a <= BT_UDP_ERROR ? names[a] : "unknown";
}

/* "a" or "an" before the action's name. */
static const char *article(uint32_t a) { return a == BT_UDP_ANNOUNCE || a == BT_UDP_ERROR ? "an" : "a"; }

int bt_udp_parse_reply(const uint8_t *p, size_t n, uint32_t want, uint32_t tid, int family,
                       bt_announce_result *res, uint64_t *conn_id)
{
    /* The smallest reply of each action: connect 16, announce 20, scrape 8 + 12
     * (one torrent is asked at a time), error 8 (an empty message). */
    static const size_t min_len[] = {16, 20, 20, 8};
    bt_announce_result_init(res);
    if (n < 8)
        return bt_announce_fail(res, "bad reply: %zu bytes, shorter than any UDP tracker reply (8)", n);
    if (get32(p + 4) != tid)
        return 1;
    uint32_t action = get32(p);
    if (action != want && action != BT_UDP_ERROR)
        return bt_announce_fail(res, "bad reply: action %u (%s) to %s %s request", (unsigned)action,
                                action_name(action), article(want), action_name(want));
    if (n < min_len[action])
        return bt_announce_fail(res, "bad reply: %zu bytes, shorter than %s %s reply (%zu)", n, article(action),
                    action_name(action), min_len[action]);
    if (action == BT_UDP_ERROR) {
        size_t m = n - 8;
        const uint8_t *nul = memchr(p + 8, '\0', m);
        if (nul)   /* some trackers send a C string */
            m = (size_t)(nul - (p + 8));
        if (m > BT_TRACKER_MAX_MSG)
            m = BT_TRACKER_MAX_MSG;
        if (!(res->failure_reason = malloc(m + 1)))
            return bt_announce_fail(res, "out of memory");
        memcpy(res->failure_reason, p + 8, m);
        res->failure_reason[m] = '\0';
        res->ok = 1;
        return 0;
    }
    if (action == BT_UDP_CONNECT) {
        *conn_id = (uint64_t)get32(p + 8) << 32 | get32(p + 12);
    } else if (action == BT_UDP_ANNOUNCE) {
        /* The three counts are unsigned 32-bit on the wire: int64_t holds them all. */
        res->interval = get32(p + 8);
        res->incomplete = get32(p + 12);
        res->complete = get32(p + 16);
        size_t alen = family == 6 ? 16 : 4, step = alen + 2;
        uint32_t cap = 0;
        for (size_t i = 20; i + step <= n; i += step)
            if (bt_announce_add_peer(res, &cap, family == 6 ? 6 : 4, p + i,
                                     (uint16_t)(p[i + alen] << 8 | p[i + alen + 1])) < 0)
                return -1;
        /* A partial entry at the end is trailing bytes, ignored. */
    } else {
        res->complete = get32(p + 8);
        res->downloaded = get32(p + 12);
        res->incomplete = get32(p + 16);
    }
    res->ok = 1;
    return 0;
}
