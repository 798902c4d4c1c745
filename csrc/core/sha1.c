/* sha1.c: see sha1.h. */
#include "core/sha1.h"

#include <string.h>

#include <openssl/evp.h>

int bt_sha1(const void *p, size_t n, uint8_t out[BT_SHA1_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_sha1(), NULL) != 1 || len != BT_SHA1_LEN) {
        memset(out, 0, BT_SHA1_LEN);
        return -1;
    }
    return 0;
}

int bt_sha1_init(bt_sha1_ctx *c)
{
    c->md = EVP_MD_CTX_new();
    if (!c->md)
        return -1;
    if (EVP_DigestInit_ex(c->md, EVP_sha1(), NULL) != 1) {
        EVP_MD_CTX_free(c->md);
        c->md = NULL;
        return -1;
    }
    return 0;
}

int bt_sha1_update(bt_sha1_ctx *c, const void *p, size_t n)
{
    if (!c->md)
        return -1;
    return EVP_DigestUpdate(c->md, p, n) == 1 ? 0 : -1;
}

int bt_sha1_reset(bt_sha1_ctx *c)
{
    if (!c->md)
        return -1;
    return EVP_DigestInit_ex(c->md, EVP_sha1(), NULL) == 1 ? 0 : -1;
}

int bt_sha1_final(bt_sha1_ctx *c, uint8_t out[BT_SHA1_LEN])
{
    unsigned int len = 0;
    if (!c->md || EVP_DigestFinal_ex(c->md, out, &len) != 1 || len != BT_SHA1_LEN) {
        memset(out, 0, BT_SHA1_LEN);
        return -1;
    }
    return bt_sha1_reset(c);
}

int bt_sha1_peek(const bt_sha1_ctx *c, uint8_t out[BT_SHA1_LEN])
{
    /* Finalizing destroys the running state, so finalize a copy. */
    bt_sha1_ctx tmp = { EVP_MD_CTX_new() };
    unsigned int len = 0;
    int ok = c->md && tmp.md && EVP_MD_CTX_copy_ex(tmp.md, c->md) == 1
             && EVP_DigestFinal_ex(tmp.md, out, &len) == 1 && len == BT_SHA1_LEN;
    EVP_MD_CTX_free(tmp.md);
    if (!ok) {
        memset(out, 0, BT_SHA1_LEN);
        return -1;
    }
    return 0;
}

void bt_sha1_free(bt_sha1_ctx *c)
{
    EVP_MD_CTX_free(c->md);   /* NULL is fine */
    c->md = NULL;
}

void bt_sha1_hex(const uint8_t h[BT_SHA1_LEN], char out[2 * BT_SHA1_LEN + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < BT_SHA1_LEN; i++) {
        out[2 * i] = digits[h[i] >> 4];
        out[2 * i + 1] = digits[h[i] & 15];
    }
    out[2 * BT_SHA1_LEN] = '\0';
}
