/* wire_fuzz.c: bt_wire_parse / bt_wire_parse_handshake over arbitrary bytes.
 *
 * Input layout: byte 0 seeds the chunk sizes, byte 1 picks limits and whether a
 * handshake comes first, the rest is the stream. The stream is decoded twice:
 * once whole, once through a bt_buf fed in pseudo-random chunks the way a socket
 * delivers it. Both must give the same messages at the same offsets and fail at
 * the same offset. Every decoded message must re-encode to exactly the bytes it
 * came from (the encoding is canonical), and its header-only encoding must be
 * a prefix of them. */
#include "core/buf.h"
#include "codec/wire.h"

#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) abort(); } while (0)

typedef struct {
    size_t off, len;   /* where the message sits in the stream */
} span;

typedef struct {
    span *v;
    size_t n, cap;
    int failed;
    size_t fail_off;
    const char *err;
} result;

static void push(result *r, size_t off, size_t len)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 64;
        r->v = realloc(r->v, r->cap * sizeof *r->v);
        CHECK(r->v);
    }
    r->v[r->n].off = off;
    r->v[r->n].len = len;
    r->n++;
}

static void check_reencode(const bt_msg *m, const uint8_t *bytes, size_t used)
{
    CHECK(bt_wire_encoded_len(m) == used);
    uint8_t *out = malloc(used ? used : 1);
    CHECK(out);
    CHECK(bt_wire_encode(m, out, used) == used);
    CHECK(memcmp(out, bytes, used) == 0);
    CHECK(bt_wire_encode(m, out, used - 1) == 0);   /* too small: refused, not overrun */
    free(out);

    if (m->payload) {
        bt_msg h = *m;
        h.payload = NULL;
        size_t hl = bt_wire_encoded_len(&h);
        CHECK(hl + m->payload_len == used);
        uint8_t hdr[32];
        CHECK(hl <= sizeof hdr);
        CHECK(bt_wire_encode(&h, hdr, sizeof hdr) == hl);
        CHECK(memcmp(hdr, bytes, hl) == 0);
        CHECK(m->payload == bytes + hl);   /* zero-copy: points into the input */
    }
}

/* Parse one unit at p; returns like bt_wire_parse. */
static int parse_one(int *want_hs, const uint8_t *p, size_t len, const bt_wire_limits *lim,
                     size_t *used, const char **err, int verify)
{
    if (*want_hs) {
        bt_handshake hs;
        int r = bt_wire_parse_handshake(p, len, &hs, err);
        *used = BT_HANDSHAKE_LEN;
        if (r == 1) {
            uint8_t out[BT_HANDSHAKE_LEN];
            bt_wire_write_handshake(&hs, out);
            CHECK(memcmp(out, p, BT_HANDSHAKE_LEN) == 0);
            *want_hs = 0;
        }
        return r;
    }
    bt_msg m;
    int r = bt_wire_parse(p, len, lim, &m, used, err);
    if (r == 1) {
        CHECK(*used >= 4 && *used <= len);
        CHECK(*used - 4 <= lim->max_message);
        if (m.type == BT_MSG_PIECE)
            CHECK(m.payload_len <= lim->max_block);
        if (verify)
            check_reencode(&m, p, *used);
    } else if (r == 0) {
        CHECK(*used == 0 || *used > len);
    } else {
        CHECK(*err != NULL);
    }
    return r;
}

static void decode_whole(const uint8_t *s, size_t n, const bt_wire_limits *lim, int hs, result *r)
{
    size_t pos = 0;
    while (pos < n) {
        size_t used;
        const char *err = NULL;
        int x = parse_one(&hs, s + pos, n - pos, lim, &used, &err, 1);
        if (x < 0) {
            r->failed = 1;
            r->fail_off = pos;
            r->err = err;
            return;
        }
        if (x == 0)
            return;
        push(r, pos, used);
        pos += used;
    }
}

static void decode_chunked(const uint8_t *s, size_t n, const bt_wire_limits *lim, int hs,
                           unsigned seed, result *r)
{
    bt_buf b = {0};
    size_t fed = 0, base = 0;   /* base: stream offset of b.data[0] */
    uint32_t x = seed * 2654435761u + 1;
    while (fed < n) {
        x = x * 1103515245u + 12345u;
        size_t chunk = 1 + (x >> 16) % (seed % 4 == 0 ? 7 : 300);
        if (chunk > n - fed)
            chunk = n - fed;
        CHECK(bt_buf_append(&b, s + fed, chunk) == 0);
        fed += chunk;
        size_t pos = 0;
        for (;;) {
            size_t used;
            const char *err = NULL;
            int y = parse_one(&hs, b.data + pos, b.len - pos, lim, &used, &err, 0);
            if (y < 0) {
                r->failed = 1;
                r->fail_off = base + pos;
                r->err = err;
                bt_buf_free(&b);
                return;
            }
            if (y == 0)
                break;
            push(r, base + pos, used);
            pos += used;
        }
        bt_buf_consume(&b, pos);
        base += pos;
    }
    bt_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    unsigned seed = data[0];
    uint8_t mode = data[1];
    const uint8_t *s = data + 2;
    size_t n = size - 2;

    bt_wire_limits lim;
    bt_wire_limits_default(&lim);
    if (mode & 1) {   /* small limits so the length checks are reachable */
        lim.max_block = 1u + (mode >> 4) * 7;
        lim.max_bitfield = (mode >> 2) & 3;
        lim.max_extended = (mode >> 3) & 7;
        lim.max_message = 13u + (mode >> 1) * 3;
    }
    int hs = (mode & 2) != 0;

    result whole = {0}, chunked = {0};
    decode_whole(s, n, &lim, hs, &whole);
    decode_chunked(s, n, &lim, hs, seed, &chunked);

    CHECK(whole.n == chunked.n);
    for (size_t i = 0; i < whole.n; i++) {
        CHECK(whole.v[i].off == chunked.v[i].off);
        CHECK(whole.v[i].len == chunked.v[i].len);
    }
    CHECK(whole.failed == chunked.failed);
    if (whole.failed) {
        CHECK(whole.fail_off == chunked.fail_off);
        CHECK(strcmp(whole.err, chunked.err) == 0);
    }
    free(whole.v);
    free(chunked.v);
    return 0;
}
