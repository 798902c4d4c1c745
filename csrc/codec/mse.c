/* mse.c: the receiving side of Message Stream Encryption; see mse.h. */
#include "codec/mse.h"
#include "core/sha1.h"

#include <openssl/bn.h>
#include <openssl/rand.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The spec's 768-bit prime; the generator is 2. */
static const char MSE_P_HEX[] =
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563";
#define MSE_PRIV_LEN  20     /* 160-bit private exponent: the spec's minimum, what clients use */
#define MSE_VC_LEN    8
#define MSE_RC4_DROP  1024   /* the spec discards the first 1 KiB of each keystream */

typedef struct rc4 { uint8_t s[256]; uint8_t i, j; } rc4;

static void rc4_init(rc4 *r, const uint8_t *key, size_t n)
{
    for (int i = 0; i < 256; i++)
        r->s[i] = (uint8_t)i;
    uint8_t j = 0;
    for (int i = 0; i < 256; i++) {
        j = (uint8_t)(j + r->s[i] + key[i % n]);
        uint8_t t = r->s[i];
        r->s[i] = r->s[j];
        r->s[j] = t;
    }
    r->i = r->j = 0;
}

static void rc4_xor(rc4 *r, uint8_t *d, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        r->i = (uint8_t)(r->i + 1);
        r->j = (uint8_t)(r->j + r->s[r->i]);
        uint8_t t = r->s[r->i];
        r->s[r->i] = r->s[r->j];
        r->s[r->j] = t;
        if (d)
            d[k] ^= r->s[(uint8_t)(r->s[r->i] + r->s[r->j])];
    }
}

typedef enum {
    ST_YA,        /* waiting for Ya */
    ST_SYNC,      /* Yb sent; looking for HASH('req1', S) after PadA */
    ST_PROVIDE,   /* torrent known; waiting for VC, crypto_provide, len(PadC) */
    ST_PADC,      /* waiting for PadC and len(IA) */
    ST_IA,        /* waiting for the initial payload */
    ST_DONE, ST_FAIL
} mse_state;

struct bt_mse {
    mse_state st;
    uint8_t priv[MSE_PRIV_LEN];
    uint8_t pub[BT_MSE_KEY_LEN];
    uint8_t secret[BT_MSE_KEY_LEN];
    uint8_t req1[20];             /* HASH('req1', S): the sync mark */
    uint8_t req3[20];             /* HASH('req3', S) */
    uint8_t want[20];             /* what the peer sent xor req3: HASH('req2', SKEY) */
    uint8_t skey[20];
    size_t pos;                   /* input offset of the next field */
    uint32_t padc, ia;
    rc4 dec, enc;                 /* keyA (peer to us), keyB (us to peer) */
    uint8_t out[BT_MSE_KEY_LEN + BT_MSE_PAD_B + MSE_VC_LEN + 6];   /* step 2, then step 4 */
    size_t outlen;
    const char *err;
};

static int hash2(const char *tag, const uint8_t *a, size_t an, const uint8_t *b, size_t bn, uint8_t h[20])
{
    bt_sha1_ctx c;
    if (bt_sha1_init(&c))
        return -1;
    int r = bt_sha1_update(&c, tag, strlen(tag));
    r |= bt_sha1_update(&c, a, an);
    if (b)
        r |= bt_sha1_update(&c, b, bn);
    r |= bt_sha1_final(&c, h);
    bt_sha1_free(&c);
    return r ? -1 : 0;
}

/* out = base^priv mod P, 96 bytes big-endian. base NULL: the generator 2.
 * Returns -1 on failure or when the peer's key is degenerate (<= 1 or >= P-1). */
static int modexp(const uint8_t *base, const uint8_t priv[MSE_PRIV_LEN], uint8_t out[BT_MSE_KEY_LEN])
{
    int ok = -1;
    BN_CTX *ctx = BN_CTX_new();
    BIGNUM *p = NULL, *b = BN_new(), *x = BN_bin2bn(priv, MSE_PRIV_LEN, NULL), *r = BN_new();
    if (!ctx || !b || !x || !r || !BN_hex2bn(&p, MSE_P_HEX))
        goto done;
    if (base) {
        if (!BN_bin2bn(base, BT_MSE_KEY_LEN, b))
            goto done;
        BIGNUM *pm1 = BN_dup(p);
        bool bad = !pm1 || !BN_sub_word(pm1, 1) || BN_cmp(b, pm1) >= 0 || BN_is_zero(b) || BN_is_one(b);
        BN_free(pm1);
        if (bad)
            goto done;
    } else if (!BN_set_word(b, 2)) {
        goto done;
    }
    if (BN_mod_exp(r, b, x, p, ctx) && BN_bn2binpad(r, out, BT_MSE_KEY_LEN) == BT_MSE_KEY_LEN)
        ok = 0;
done:
    BN_free(p);
    BN_free(b);
    BN_clear_free(x);
    BN_free(r);
    BN_CTX_free(ctx);
    return ok;
}

bt_mse *bt_mse_new(void)
{
    bt_mse *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    uint8_t padlen;
    if (RAND_bytes(m->priv, MSE_PRIV_LEN) != 1 || RAND_bytes(&padlen, 1) != 1 ||
        modexp(NULL, m->priv, m->pub) != 0) {
        free(m);
        return NULL;
    }
    /* step 2 is ready at once: Yb and a random pad */
    memcpy(m->out, m->pub, BT_MSE_KEY_LEN);
    size_t pad = padlen % BT_MSE_PAD_B;
    if (pad && RAND_bytes(m->out + BT_MSE_KEY_LEN, (int)pad) != 1)
        pad = 0;
    m->outlen = BT_MSE_KEY_LEN + pad;
    m->st = ST_YA;
    return m;
}

void bt_mse_free(bt_mse *m)
{
    if (!m)
        return;
    memset(m, 0, sizeof *m);   /* keys */
    free(m);
}

const char *bt_mse_error(const bt_mse *m)
{
    return m->err ? m->err : "MSE handshake failed";
}

const uint8_t *bt_mse_info_hash(const bt_mse *m)
{
    return m->skey;
}

int bt_mse_try_skey(bt_mse *m, const uint8_t info_hash[20])
{
    uint8_t h[20];
    if (hash2("req2", info_hash, 20, NULL, 0, h) != 0)
        return 0;
    if (memcmp(h, m->want, 20) != 0)
        return 0;
    memcpy(m->skey, info_hash, 20);
    return 1;
}

static bt_mse_status fail(bt_mse *m, const char *why)
{
    m->st = ST_FAIL;
    m->err = why;
    return BT_MSE_FAIL;
}

static uint32_t get16(const uint8_t *p) { return (uint32_t)p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* The keystreams, once S and SKEY are known. */
static int start_rc4(bt_mse *m)
{
    uint8_t ka[20], kb[20];
    if (hash2("keyA", m->secret, BT_MSE_KEY_LEN, m->skey, 20, ka) != 0 ||
        hash2("keyB", m->secret, BT_MSE_KEY_LEN, m->skey, 20, kb) != 0)
        return -1;
    rc4_init(&m->dec, ka, 20);
    rc4_init(&m->enc, kb, 20);
    rc4_xor(&m->dec, NULL, MSE_RC4_DROP);
    rc4_xor(&m->enc, NULL, MSE_RC4_DROP);
    return 0;
}

bt_mse_status bt_mse_step(bt_mse *m, uint8_t *in, size_t len, const uint8_t **out, size_t *outlen,
                          size_t *skip, bt_mse_lookup lookup, void *ud)
{
    *out = m->out;
    *outlen = 0;
    *skip = 0;
    if (m->st == ST_FAIL)
        return BT_MSE_FAIL;
    if (m->st == ST_YA) {
        if (len < BT_MSE_KEY_LEN)
            return BT_MSE_MORE;
        if (modexp(in, m->priv, m->secret) != 0)
            return fail(m, "MSE: bad Diffie-Hellman key");
        if (hash2("req1", m->secret, BT_MSE_KEY_LEN, NULL, 0, m->req1) != 0 ||
            hash2("req3", m->secret, BT_MSE_KEY_LEN, NULL, 0, m->req3) != 0)
            return fail(m, "out of memory");
        *outlen = m->outlen;   /* Yb, PadB */
        m->pos = BT_MSE_KEY_LEN;
        m->st = ST_SYNC;
    }
    if (m->st == ST_SYNC) {
        /* the mark follows PadA (0-512 bytes), whose length is not sent */
        size_t last = BT_MSE_KEY_LEN + BT_MSE_MAX_PAD;   /* latest start of the mark */
        size_t found = 0;
        bool hit = false;
        for (size_t o = m->pos; o + 20 <= len && o <= last; o++)
            if (in[o] == m->req1[0] && memcmp(in + o, m->req1, 20) == 0) {
                found = o;
                hit = true;
                break;
            }
        if (!hit) {
            if (len >= last + 20)
                return fail(m, "MSE: no sync mark after 512 bytes of padding");
            if (len >= 20)
                m->pos = len - 19 > m->pos ? len - 19 : m->pos;   /* rescan only the tail */
            return BT_MSE_MORE;
        }
        m->pos = found + 20;
        m->st = ST_PROVIDE;
    }
    if (m->st == ST_PROVIDE) {
        if (len < m->pos + 20 + MSE_VC_LEN + 4 + 2)
            return BT_MSE_MORE;
        for (int i = 0; i < 20; i++)
            m->want[i] = in[m->pos + i] ^ m->req3[i];
        if (!lookup || !lookup(ud, m))
            return fail(m, "MSE: handshake for a torrent we do not serve");
        if (start_rc4(m) != 0)
            return fail(m, "out of memory");
        m->pos += 20;
        uint8_t *f = in + m->pos;
        rc4_xor(&m->dec, f, MSE_VC_LEN + 4 + 2);
        static const uint8_t vc[MSE_VC_LEN] = { 0 };
        if (memcmp(f, vc, MSE_VC_LEN) != 0)
            return fail(m, "MSE: bad verification constant");
        uint32_t provide = get32(f + MSE_VC_LEN);
        m->padc = get16(f + MSE_VC_LEN + 4);
        if (!(provide & BT_MSE_PLAINTEXT))
            return fail(m, "MSE: the peer insists on RC4 (we only select plaintext)");
        if (m->padc > BT_MSE_MAX_PAD)
            return fail(m, "MSE: PadC longer than 512 bytes");
        m->pos += MSE_VC_LEN + 4 + 2;
        m->st = ST_PADC;
    }
    if (m->st == ST_PADC) {
        if (len < m->pos + m->padc + 2)
            return BT_MSE_MORE;
        rc4_xor(&m->dec, in + m->pos, m->padc + 2);
        m->ia = get16(in + m->pos + m->padc);
        m->pos += m->padc + 2;
        m->st = ST_IA;
        /* step 4 goes out now, before the initial payload arrives: a dialer that
         * sent an empty IA waits for it before its plaintext handshake */
        uint8_t *o = m->out + *outlen;   /* after step 2 if both fall in this call */
        memset(o, 0, MSE_VC_LEN);
        o[MSE_VC_LEN] = o[MSE_VC_LEN + 1] = o[MSE_VC_LEN + 2] = 0;
        o[MSE_VC_LEN + 3] = BT_MSE_PLAINTEXT;
        o[MSE_VC_LEN + 4] = o[MSE_VC_LEN + 5] = 0;   /* len(PadD) = 0 */
        rc4_xor(&m->enc, o, MSE_VC_LEN + 6);
        *outlen += MSE_VC_LEN + 6;
    }
    if (m->st == ST_IA) {
        if (len < m->pos + m->ia)
            return BT_MSE_MORE;
        rc4_xor(&m->dec, in + m->pos, m->ia);   /* IA is encrypted whatever is selected */
        *skip = m->pos;
        m->st = ST_DONE;
        return BT_MSE_DONE;
    }
    return BT_MSE_FAIL;
}
