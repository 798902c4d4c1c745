/* wire.c: peer-wire framing (BEP 3, 5, 6, 10). See wire.h for the contract.
 *
 * Every length is judged from the 4-byte prefix and the id byte alone, before a
 * single payload byte is waited for: a peer that announces a bogus length is
 * rejected while we hold at most 5 of its bytes for that message. */
#include "codec/wire.h"

#include <stdbool.h>
#include <string.h>

#include "codec/bencode.h"
#include "core/sha1.h"

/* BEP 10 ut_metadata pieces are 16 KiB; 1 MiB leaves room for big handshakes
 * (ut_pex lists) without letting one message pin much memory. */
#define DEFAULT_MAX_EXTENDED (1024u * 1024)
/* Room for the largest extended payload plus its id and the 4-byte header slack. */
#define DEFAULT_MAX_MESSAGE  (DEFAULT_MAX_EXTENDED + 16)

static const uint8_t PROTOCOL[20] = "\x13" "BitTorrent protocol";

void bt_wire_limits_default(bt_wire_limits *lim)
{
    lim->max_block = BT_BLOCK_SIZE;
    lim->max_bitfield = 0;
    lim->max_extended = DEFAULT_MAX_EXTENDED;
    lim->max_message = DEFAULT_MAX_MESSAGE;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint8_t *wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

/* Fixed-size messages: the exact length prefix each must carry (id included),
 * and the static error for any other. 0: not a fixed-size id. */
static const struct fixed {
    uint32_t len;
    const char *err;
} FIXED[256] = {
    [BT_MSG_CHOKE]          = {1,  "choke: length must be 1"},
    [BT_MSG_UNCHOKE]        = {1,  "unchoke: length must be 1"},
    [BT_MSG_INTERESTED]     = {1,  "interested: length must be 1"},
    [BT_MSG_NOT_INTERESTED] = {1,  "not interested: length must be 1"},
    [BT_MSG_HAVE]           = {5,  "have: length must be 5"},
    [BT_MSG_REQUEST]        = {13, "request: length must be 13"},
    [BT_MSG_CANCEL]         = {13, "cancel: length must be 13"},
    [BT_MSG_PORT]           = {3,  "port: length must be 3"},
    [BT_MSG_SUGGEST]        = {5,  "suggest: length must be 5"},
    [BT_MSG_HAVE_ALL]       = {1,  "have all: length must be 1"},
    [BT_MSG_HAVE_NONE]      = {1,  "have none: length must be 1"},
    [BT_MSG_REJECT]         = {13, "reject: length must be 13"},
    [BT_MSG_ALLOWED_FAST]   = {5,  "allowed fast: length must be 5"},
};

/* Judge a length prefix n (id byte included, n >= 1) for message id.
 * Returns NULL when acceptable, else the static reason. */
static const char *check_len(uint8_t id, uint32_t n, const bt_wire_limits *lim)
{
    if (FIXED[id].len)
        return n == FIXED[id].len ? NULL : FIXED[id].err;
    switch (id) {
    case BT_MSG_BITFIELD: {
        uint32_t cap = lim->max_bitfield ? lim->max_bitfield : lim->max_message;
        if (n - 1 > cap)
            return "bitfield: longer than the limit";
        return NULL;
    }
    case BT_MSG_PIECE:
        if (n < 9)
            return "piece: length must be at least 9";
        if (n - 9 > lim->max_block)
            return "piece: block larger than the limit";
        return NULL;
    case BT_MSG_EXTENDED:
        if (n < 2)
            return "extended: length must be at least 2";
        if (n - 2 > lim->max_extended)
            return "extended: payload larger than the limit";
        return NULL;
    default:
        return NULL;   /* unknown ids: the overall cap, already checked, is all */
    }
}

int bt_wire_parse(const uint8_t *buf, size_t len, const bt_wire_limits *lim,
                  bt_msg *msg, size_t *used, const char **err)
{
    *used = 0;
    if (len < 4)
        return 0;
    uint32_t n = rd32(buf);
    if (n > lim->max_message) {
        *err = "message longer than the limit";
        return -1;
    }
    size_t total = (size_t)n + 4;
    if (n == 0) {
        memset(msg, 0, sizeof *msg);
        msg->type = BT_MSG_KEEPALIVE;
        *used = 4;
        return 1;
    }
    if (len < 5) {
        *used = total;
        return 0;
    }
    uint8_t id = buf[4];
    const char *why = check_len(id, n, lim);
    if (why) {
        *err = why;
        return -1;
    }
    if (len < total) {
        *used = total;
        return 0;
    }

    memset(msg, 0, sizeof *msg);
    msg->type = id;
    const uint8_t *p = buf + 5;
    switch (id) {
    case BT_MSG_CHOKE: case BT_MSG_UNCHOKE: case BT_MSG_INTERESTED:
    case BT_MSG_NOT_INTERESTED: case BT_MSG_HAVE_ALL: case BT_MSG_HAVE_NONE:
        break;
    case BT_MSG_HAVE: case BT_MSG_SUGGEST: case BT_MSG_ALLOWED_FAST:
        msg->index = rd32(p);
        break;
    case BT_MSG_REQUEST: case BT_MSG_CANCEL: case BT_MSG_REJECT:
        msg->index = rd32(p);
        msg->begin = rd32(p + 4);
        msg->length = rd32(p + 8);
        break;
    case BT_MSG_PORT:
        msg->port = (uint16_t)(p[0] << 8 | p[1]);
        break;
    case BT_MSG_PIECE:
        msg->index = rd32(p);
        msg->begin = rd32(p + 4);
        msg->payload = p + 8;
        msg->payload_len = n - 9;
        break;
    case BT_MSG_EXTENDED:
        msg->ext_id = p[0];
        msg->payload = p + 1;
        msg->payload_len = n - 2;
        break;
    default:   /* bitfield and unknown ids: the raw payload */
        msg->payload = p;
        msg->payload_len = n - 1;
        break;
    }
    *used = total;
    return 1;
}

int bt_wire_parse_handshake(const uint8_t *buf, size_t len, bt_handshake *hs, const char **err)
{
    size_t k = len < sizeof PROTOCOL ? len : sizeof PROTOCOL;
    if (memcmp(buf, PROTOCOL, k) != 0) {
        *err = "not a BitTorrent handshake";
        return -1;
    }
    if (len < BT_HANDSHAKE_LEN)
        return 0;
    memcpy(hs->reserved, buf + 20, 8);
    memcpy(hs->info_hash, buf + 28, 20);
    memcpy(hs->peer_id, buf + 48, 20);
    return 1;
}

void bt_wire_write_handshake(const bt_handshake *hs, uint8_t out[BT_HANDSHAKE_LEN])
{
    memcpy(out, PROTOCOL, 20);
    memcpy(out + 20, hs->reserved, 8);
    memcpy(out + 28, hs->info_hash, 20);
    memcpy(out + 48, hs->peer_id, 20);
}

/* Bytes after the id for the fixed part of each type; -1 for types we cannot
 * encode. Ids 0..255 without a meaning here are "unknown" messages: id + payload. */
static long body_len(int type)
{
    switch (type) {
    case BT_MSG_KEEPALIVE:
        return 0;
    case BT_MSG_CHOKE: case BT_MSG_UNCHOKE: case BT_MSG_INTERESTED:
    case BT_MSG_NOT_INTERESTED: case BT_MSG_HAVE_ALL: case BT_MSG_HAVE_NONE:
        return 0;
    case BT_MSG_HAVE: case BT_MSG_SUGGEST: case BT_MSG_ALLOWED_FAST:
        return 4;
    case BT_MSG_REQUEST: case BT_MSG_CANCEL: case BT_MSG_REJECT:
        return 12;
    case BT_MSG_PORT:
        return 2;
    case BT_MSG_PIECE:
        return 8;
    case BT_MSG_EXTENDED:
        return 1;
    default:
        return type >= 0 && type <= 255 ? 0 : -1;
    }
}

static int has_payload(int type)
{
    return type >= 0 && type <= 255 && FIXED[type].len == 0 && type != BT_MSG_PORT;
}

/* The value of the length prefix, or 0 with *ok = 0 when msg cannot be framed. */
static uint32_t prefix_of(const bt_msg *msg, int *ok)
{
    long body = body_len(msg->type);
    *ok = 0;
    if (body < 0)
        return 0;
    if (msg->type == BT_MSG_KEEPALIVE) {
        *ok = 1;
        return 0;
    }
    uint64_t n = 1 + (uint64_t)body;
    if (has_payload(msg->type))
        n += msg->payload_len;
    if (n > UINT32_MAX)
        return 0;
    *ok = 1;
    return (uint32_t)n;
}

size_t bt_wire_encoded_len(const bt_msg *msg)
{
    int ok;
    uint32_t n = prefix_of(msg, &ok);
    if (!ok)
        return 0;
    size_t total = (size_t)n + 4;
    if (has_payload(msg->type) && !msg->payload)
        total -= msg->payload_len;   /* header-only: the caller sends the data */
    return total;
}

size_t bt_wire_encode(const bt_msg *msg, uint8_t *out, size_t cap)
{
    int ok;
    uint32_t n = prefix_of(msg, &ok);
    size_t need = bt_wire_encoded_len(msg);
    if (!ok || need > cap)
        return 0;
    uint8_t *p = wr32(out, n);
    if (msg->type == BT_MSG_KEEPALIVE)
        return 4;
    *p++ = (uint8_t)msg->type;
    switch (msg->type) {
    case BT_MSG_HAVE: case BT_MSG_SUGGEST: case BT_MSG_ALLOWED_FAST:
        p = wr32(p, msg->index);
        break;
    case BT_MSG_REQUEST: case BT_MSG_CANCEL: case BT_MSG_REJECT:
        p = wr32(p, msg->index);
        p = wr32(p, msg->begin);
        p = wr32(p, msg->length);
        break;
    case BT_MSG_PORT:
        *p++ = (uint8_t)(msg->port >> 8);
        *p++ = (uint8_t)msg->port;
        break;
    case BT_MSG_PIECE:
        p = wr32(p, msg->index);
        p = wr32(p, msg->begin);
        break;
    case BT_MSG_EXTENDED:
        *p++ = msg->ext_id;
        break;
    default:
        break;
    }
    if (has_payload(msg->type) && msg->payload && msg->payload_len) {
        memcpy(p, msg->payload, msg->payload_len);
        p += msg->payload_len;
    }
    return (size_t)(p - out);
}

int bt_wire_append(bt_buf *b, const bt_msg *msg)
{
    size_t need = bt_wire_encoded_len(msg);
    if (need == 0 || bt_buf_reserve(b, need))
        return -1;
    size_t n = bt_wire_encode(msg, b->data + b->len, need);
    if (n != need)
        return -1;
    b->len += n;
    return 0;
}

int bt_wire_append_block(bt_buf *b, int type, uint32_t index, uint32_t begin, uint32_t length)
{
    if ((type != BT_MSG_REQUEST && type != BT_MSG_CANCEL && type != BT_MSG_REJECT) || bt_buf_reserve(b, 17))
        return -1;
    uint8_t *p = wr32(b->data + b->len, 13);
    *p++ = (uint8_t)type;
    p = wr32(p, index);
    p = wr32(p, begin);
    wr32(p, length);
    b->len += 17;
    return 0;
}

void bt_wire_our_handshake(const uint8_t info_hash[20], const uint8_t peer_id[20],
                           uint8_t out[BT_HANDSHAKE_LEN])
{
    bt_handshake hs;
    memset(&hs, 0, sizeof hs);
    hs.reserved[BT_RESERVED_EXTENSION_BYTE] |= BT_RESERVED_EXTENSION_BIT;
    hs.reserved[BT_RESERVED_FAST_BYTE] |= BT_RESERVED_FAST_BIT;
    memcpy(hs.info_hash, info_hash, 20);
    memcpy(hs.peer_id, peer_id, 20);
    bt_wire_write_handshake(&hs, out);
}

uint32_t bt_wire_fast_set(const uint8_t ip4[4], const uint8_t info_hash[20], uint32_t npieces,
                          uint32_t k, uint32_t *out)
{
    if (k > npieces)
        k = npieces;
    uint8_t x[24];
    memcpy(x, ip4, 4);
    x[3] = 0;
    memcpy(x + 4, info_hash, 20);
    uint8_t h[20];
    const uint8_t *in = x;
    size_t inlen = sizeof x;
    uint32_t n = 0;
    /* bounded: each round adds up to 5 indices; duplicates can only repeat so often */
    for (int round = 0; round < 64 && n < k; round++) {
        if (bt_sha1(in, inlen, h) != 0)
            return n;
        uint8_t cur[20];
        memcpy(cur, h, 20);
        in = h;
        inlen = sizeof h;
        for (int i = 0; i < 5 && n < k; i++) {
            uint32_t idx = rd32(cur + 4 * i) % npieces;
            bool dup = false;
            for (uint32_t j = 0; j < n && !dup; j++)
                dup = out[j] == idx;
            if (!dup)
                out[n++] = idx;
        }
    }
    return n;
}

/* Our extensions (wire.h), sorted by name. ut_metadata takes 2 and ut_pex 1 as
 * libtorrent does; Transmission uses 3 and 1, and it does not matter: a peer sends
 * under the id we name. */
const bt_ext_name BT_EXT_NAMES[BT_EXT_COUNT] = {
    [BT_EXT_UT_METADATA] = { "ut_metadata", 2 },
    [BT_EXT_UT_PEX] = { "ut_pex", 1 },
};

int bt_wire_ext_of(uint8_t id)
{
    for (int i = 0; i < BT_EXT_COUNT; i++)
        if (id && BT_EXT_NAMES[i].id == id)
            return i;
    return -1;
}

int bt_wire_ext_handshake(bt_buf *b, const bt_ext_hs *h)
{
    /* keys in byte order, as bencoding wants: ipv6, m, metadata_size, p, reqq, v, yourip */
    int r = bt_buf_putc(b, 'd');
    if (h->has_ipv6) {
        r |= bt_benc_str(b, "ipv6", 4);
        r |= bt_benc_str(b, h->ipv6, 16);
    }
    r |= bt_benc_str(b, "m", 1);
    r |= bt_buf_putc(b, 'd');
    for (int i = 0; i < BT_EXT_COUNT; i++) {
        if (!h->m[i])
            continue;
        r |= bt_benc_str(b, BT_EXT_NAMES[i].name, strlen(BT_EXT_NAMES[i].name));
        r |= bt_benc_int(b, BT_EXT_NAMES[i].id);
    }
    r |= bt_buf_putc(b, 'e');
    if (h->metadata_size >= 0) {
        r |= bt_benc_str(b, "metadata_size", 13);
        r |= bt_benc_int(b, h->metadata_size);
    }
    if (h->port >= 0) {
        r |= bt_benc_str(b, "p", 1);
        r |= bt_benc_int(b, h->port);
    }
    if (h->reqq >= 0) {
        r |= bt_benc_str(b, "reqq", 4);
        r |= bt_benc_int(b, h->reqq);
    }
    if (h->client) {
        r |= bt_benc_str(b, "v", 1);
        r |= bt_benc_str(b, h->client, strlen(h->client));
    }
    if (h->yourip_len == 4 || h->yourip_len == 16) {
        r |= bt_benc_str(b, "yourip", 6);
        r |= bt_benc_str(b, h->yourip, h->yourip_len);
    }
    r |= bt_buf_putc(b, 'e');
    return r ? -1 : 0;
}

static int64_t dict_int(const bt_bdoc *doc, uint32_t dict, const char *key)
{
    uint32_t v = bt_bdict_get(doc, dict, key);
    return v && bt_btype_of(doc, v) == BT_BINT ? bt_bint(doc, v) : -1;
}

int bt_wire_parse_ext_handshake(const uint8_t *payload, size_t len, bt_ext_hs *out)
{
    memset(out, 0, sizeof *out);
    out->port = out->reqq = out->metadata_size = -1;
    bt_bdoc doc = { 0 };
    bt_berr err;
    if (bt_bdecode(&doc, (const char *)payload, len, BT_BDEC_ALLOW_UNSORTED, BT_WIRE_EXT_MAX_TOKENS,
                   &err) != 0)
        return -1;
    int rc = -1;
    if (bt_btype_of(&doc, 0) == BT_BDICT) {
        int64_t p = dict_int(&doc, 0, "p"), q = dict_int(&doc, 0, "reqq");
        out->port = p >= 0 && p <= 65535 ? p : -1;
        out->reqq = q >= 0 ? q : -1;
        int64_t ms = dict_int(&doc, 0, "metadata_size");
        out->metadata_size = ms >= 0 ? ms : -1;   /* a negative size is no size */
        uint32_t m = bt_bdict_get(&doc, 0, "m");
        for (int i = 0; m && i < BT_EXT_COUNT; i++) {
            int64_t id = dict_int(&doc, m, BT_EXT_NAMES[i].name);
            out->m[i] = id > 0 && id <= 255 ? (uint8_t)id : 0;
        }
        uint32_t v = bt_bdict_get(&doc, 0, "v");
        if (v && bt_btype_of(&doc, v) == BT_BSTR) {
            size_t n;
            const char *c = bt_bstr(&doc, v, &n);
            if (n > BT_WIRE_MAX_CLIENT)
                n = BT_WIRE_MAX_CLIENT;
            for (size_t k = 0; k < n; k++)
                out->client_buf[k] = (unsigned char)c[k] < 0x20 || c[k] == 0x7f ? '?' : c[k];
            out->client_buf[n] = 0;
            out->client = out->client_buf;
        }
        uint32_t i6 = bt_bdict_get(&doc, 0, "ipv6");
        if (i6 && bt_btype_of(&doc, i6) == BT_BSTR) {
            size_t n;
            const char *a = bt_bstr(&doc, i6, &n);
            if (n == 16) {
                memcpy(out->ipv6, a, 16);
                out->has_ipv6 = true;
            }
        }
        uint32_t y = bt_bdict_get(&doc, 0, "yourip");
        if (y && bt_btype_of(&doc, y) == BT_BSTR) {
            size_t n;
            const char *a = bt_bstr(&doc, y, &n);
            if (n == 4 || n == 16) {
                memcpy(out->yourip, a, n);
                out->yourip_len = (uint8_t)n;
            }
        }
        rc = 0;
    }
    bt_bdoc_free(&doc);
    return rc;
}

int bt_wire_parse_ut_metadata(const uint8_t *p, size_t n, bt_utm *out, const char **err)
{
    memset(out, 0, sizeof *out);
    out->total_size = -1;
    bt_bdoc doc = { 0 };
    bt_berr berr;
    if (bt_bdecode(&doc, (const char *)p, n, BT_BDEC_ALLOW_UNSORTED | BT_BDEC_ALLOW_TRAILING, BT_UTM_MAX_TOKENS,
                   &berr) != 0) {
        *err = "ut_metadata: not a bencoded dictionary";
        return -1;
    }
    int rc = -1;
    *err = NULL;
    if (bt_btype_of(&doc, 0) != BT_BDICT) {
        *err = "ut_metadata: not a bencoded dictionary";
        goto out;
    }
    int64_t type = dict_int(&doc, 0, "msg_type"), piece = dict_int(&doc, 0, "piece");
    size_t end = doc.tok[0].end;
    if (type < 0) {
        *err = "ut_metadata: no msg_type";
    } else if (type > BT_UTM_REJECT) {
        rc = 1;
    } else if (piece < 0 || piece > (int64_t)UINT32_MAX) {
        *err = "ut_metadata: no piece, or one out of range";
    } else if (type == BT_UTM_DATA && (out->total_size = dict_int(&doc, 0, "total_size")) < 0) {
        *err = "ut_metadata: data without total_size";
    } else if (type != BT_UTM_DATA && end != n) {
        *err = "ut_metadata: bytes after a request or reject";
    } else {
        out->type = (int)type;
        out->piece = (uint32_t)piece;
        if (type == BT_UTM_DATA) {
            out->data = p + end;
            out->len = n - end;
        }
        rc = 0;
    }
out:
    bt_bdoc_free(&doc);
    return rc;
}

int bt_wire_ut_metadata(bt_buf *b, int type, uint32_t piece, int64_t total_size, const uint8_t *data,
                        size_t len)
{
    /* keys in byte order: msg_type, piece, total_size */
    int r = bt_buf_putc(b, 'd');
    r |= bt_benc_str(b, "msg_type", 8);
    r |= bt_benc_int(b, type);
    r |= bt_benc_str(b, "piece", 5);
    r |= bt_benc_int(b, piece);
    if (type == BT_UTM_DATA) {
        r |= bt_benc_str(b, "total_size", 10);
        r |= bt_benc_int(b, total_size);
    }
    r |= bt_buf_putc(b, 'e');
    if (type == BT_UTM_DATA && len)
        r |= bt_buf_append(b, data, len);
    return r ? -1 : 0;
}
