/* mse_fuzz: libFuzzer target for the answering side of the MSE handshake (mse.c).
 *
 * mse.c needs OpenSSL's BIGNUM and is not in the Makefile's PURE list, so it is
 * compiled into this file (its statics are then at hand too); sha1.c comes with PURE.
 *
 * Even first byte: the rest is fed as a hostile byte stream, growing in steps the
 * input chooses; the parser must never read past it and must end in FAIL or keep
 * asking for more. Odd first byte: this file plays the dialing side (fixed private
 * key, real DH, hashes and RC4) and builds step 3 from input-chosen PadA, crypto
 * offer, PadC length (past the 512 limit too), initial payload and a right or
 * wrong info-hash; the outcome must be exactly what the spec says: DONE with the
 * initial payload decrypted in place and a step 4 that selects plaintext, or FAIL.
 * Any violation abort()s.
 */
#include "codec/mse.c"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static const uint8_t SKEY[20] = "fuzz-info-hash-12345";
static const uint8_t OTHER[20] = "another-info-hash-00";

static int lookup(void *ud, bt_mse *m)
{
    (void)ud;
    return bt_mse_try_skey(m, OTHER) || bt_mse_try_skey(m, SKEY);
}

#define STREAM_MAX (BT_MSE_MAX_PREFIX + 600 + BT_MSE_MAX_IA)

/* Feed buf[0..n) in growing prefixes of `step`; returns the final status. */
static bt_mse_status feed(bt_mse *m, uint8_t *buf, size_t n, size_t step, uint8_t *out4, size_t *out4len,
                          size_t *skip)
{
    bt_mse_status st = BT_MSE_MORE;
    *out4len = 0;
    for (size_t len = 0; len < n && st == BT_MSE_MORE;) {
        len = len + step < n ? len + step : n;
        const uint8_t *out;
        size_t outlen;
        st = bt_mse_step(m, buf, len, &out, &outlen, skip, lookup, NULL);
        CHECK(outlen <= BT_MSE_KEY_LEN + BT_MSE_PAD_B + MSE_VC_LEN + 6);
        if (outlen >= MSE_VC_LEN + 6 && len > BT_MSE_KEY_LEN) {   /* step 4 (maybe after step 2) */
            memcpy(out4, out + outlen - (MSE_VC_LEN + 6), MSE_VC_LEN + 6);
            *out4len = MSE_VC_LEN + 6;
        }
        if (st == BT_MSE_DONE)
            CHECK(*skip <= len);
    }
    return st;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 12)
        return 0;
    static uint8_t buf[STREAM_MAX];
    bt_mse *m = bt_mse_new();
    if (!m)
        return 0;
    size_t step = 1 + data[1] % 211;
    uint8_t out4[MSE_VC_LEN + 6];
    size_t out4len = 0, skip = 0;
    if ((data[0] & 1) == 0) {
        size_t n = size - 2 < sizeof buf ? size - 2 : sizeof buf;
        memcpy(buf, data + 2, n);
        bt_mse_status st = feed(m, buf, n, step, out4, &out4len, &skip);
        /* random bytes cannot carry HASH('req1', S) */
        CHECK(st != BT_MSE_DONE);
        bt_mse_free(m);
        return 0;
    }
    /* the dialing side */
    size_t pada = (((size_t)data[2] << 8) | data[3]) % (BT_MSE_MAX_PAD + 1);
    uint32_t provide = (uint32_t)data[4] << 24 | (uint32_t)data[5] << 16 | (uint32_t)data[6] << 8 | data[7];
    size_t padc = (((size_t)data[8] << 8) | data[9]) % 600;   /* past 512 sometimes */
    size_t ia = data[10] % 200;
    bool wrong = (data[11] & 7) == 0;
    const uint8_t *fill = data + 12;
    size_t nfill = size - 12;
    uint8_t xa[MSE_PRIV_LEN];
    for (int i = 0; i < MSE_PRIV_LEN; i++)
        xa[i] = (uint8_t)(i * 37 + 11);
    size_t n = 0;
    CHECK(modexp(NULL, xa, buf) == 0);   /* Ya */
    n = BT_MSE_KEY_LEN;
    for (size_t i = 0; i < pada; i++)
        buf[n++] = nfill ? fill[i % nfill] : 0;
    /* step 2 from the responder: feed Ya (+PadA) and take Yb */
    const uint8_t *out;
    size_t outlen;
    CHECK(bt_mse_step(m, buf, n, &out, &outlen, &skip, lookup, NULL) == BT_MSE_MORE);
    CHECK(outlen >= BT_MSE_KEY_LEN && outlen < BT_MSE_KEY_LEN + BT_MSE_PAD_B);
    uint8_t s[BT_MSE_KEY_LEN];
    CHECK(modexp(out, xa, s) == 0);
    uint8_t h1[20], h2[20], h3[20];
    CHECK(hash2("req1", s, sizeof s, NULL, 0, h1) == 0);
    CHECK(hash2("req2", wrong ? (const uint8_t *)"not-served-info-hash" : SKEY, 20, NULL, 0, h2) == 0);
    CHECK(hash2("req3", s, sizeof s, NULL, 0, h3) == 0);
    memcpy(buf + n, h1, 20);
    n += 20;
    for (int i = 0; i < 20; i++)
        buf[n + i] = h2[i] ^ h3[i];
    n += 20;
    size_t enc_at = n;
    memset(buf + n, 0, MSE_VC_LEN);
    n += MSE_VC_LEN;
    buf[n++] = (uint8_t)(provide >> 24);
    buf[n++] = (uint8_t)(provide >> 16);
    buf[n++] = (uint8_t)(provide >> 8);
    buf[n++] = (uint8_t)provide;
    buf[n++] = (uint8_t)(padc >> 8);
    buf[n++] = (uint8_t)padc;
    for (size_t i = 0; i < padc; i++)
        buf[n++] = nfill ? fill[(i * 7) % nfill] : 0;
    buf[n++] = (uint8_t)(ia >> 8);
    buf[n++] = (uint8_t)ia;
    size_t ia_at = n;
    uint8_t plain_ia[256];
    for (size_t i = 0; i < ia; i++)
        buf[n++] = plain_ia[i] = nfill ? fill[(i * 3 + 1) % nfill] : (uint8_t)i;
    /* a little of the plaintext stream after IA: must come out untouched */
    static const uint8_t tail[5] = { 0, 0, 0, 1, 2 };
    memcpy(buf + n, tail, sizeof tail);
    n += sizeof tail;
    uint8_t ka[20], kb[20];
    CHECK(hash2("keyA", s, sizeof s, SKEY, 20, ka) == 0);
    CHECK(hash2("keyB", s, sizeof s, SKEY, 20, kb) == 0);
    rc4 a, b;
    rc4_init(&a, ka, 20);
    rc4_xor(&a, NULL, MSE_RC4_DROP);
    rc4_xor(&a, buf + enc_at, n - sizeof tail - enc_at);   /* VC .. IA */
    bt_mse_status st = feed(m, buf, n, step, out4, &out4len, &skip);
    bool should = !wrong && (provide & BT_MSE_PLAINTEXT) && padc <= BT_MSE_MAX_PAD;
    if (!should) {
        CHECK(st == BT_MSE_FAIL);
    } else {
        CHECK(st == BT_MSE_DONE);
        CHECK(skip == ia_at);
        CHECK(memcmp(buf + ia_at, plain_ia, ia) == 0);
        CHECK(memcmp(buf + ia_at + ia, tail, sizeof tail) == 0);
        CHECK(memcmp(bt_mse_info_hash(m), SKEY, 20) == 0);
        CHECK(out4len == MSE_VC_LEN + 6);
        rc4_init(&b, kb, 20);
        rc4_xor(&b, NULL, MSE_RC4_DROP);
        rc4_xor(&b, out4, out4len);
        static const uint8_t want[MSE_VC_LEN + 6] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, BT_MSE_PLAINTEXT, 0, 0 };
        CHECK(memcmp(out4, want, sizeof want) == 0);
    }
    bt_mse_free(m);
    return 0;
}
