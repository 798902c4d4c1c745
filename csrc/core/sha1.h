/* sha1.h: SHA-1 for the info-hash and piece verification, a thin wrapper over
 * OpenSSL's EVP interface (hardware SHA extensions when the CPU has them).
 * Pure C: no Lua. Usable from any C file; the header pulls in no OpenSSL header.
 *
 *     uint8_t h[20];
 *     bt_sha1(p, n, h);                       one shot
 *
 *     bt_sha1_ctx c;                          incremental (storage verifies a
 *     if (bt_sha1_init(&c)) ...oom...         piece block by block)
 *     bt_sha1_update(&c, p, n); ...
 *     bt_sha1_final(&c, h);                   digest, and the context is ready
 *     ...                                     for the next message
 *     bt_sha1_free(&c);
 */
#ifndef BT_SHA1_H
#define BT_SHA1_H

#include <stddef.h>
#include <stdint.h>

#define BT_SHA1_LEN 20

struct evp_md_ctx_st;   /* OpenSSL's EVP_MD_CTX, kept opaque here */

typedef struct bt_sha1_ctx {
    struct evp_md_ctx_st *md;
} bt_sha1_ctx;

/* All return 0, or -1 when OpenSSL fails (out of memory): then the digest
 * written is all zeros, which never matches a real piece hash by accident of
 * the caller forgetting to check. */
int  bt_sha1(const void *p, size_t n, uint8_t out[BT_SHA1_LEN]);

int  bt_sha1_init(bt_sha1_ctx *c);                         /* allocates; c->md NULL on failure */
int  bt_sha1_update(bt_sha1_ctx *c, const void *p, size_t n);
/* Digest of everything fed since init (or the last final/reset); resets c. */
int  bt_sha1_final(bt_sha1_ctx *c, uint8_t out[BT_SHA1_LEN]);
/* Digest of everything fed so far, leaving c unchanged (more updates may follow). */
int  bt_sha1_peek(const bt_sha1_ctx *c, uint8_t out[BT_SHA1_LEN]);
int  bt_sha1_reset(bt_sha1_ctx *c);                        /* forget what was fed */
void bt_sha1_free(bt_sha1_ctx *c);                         /* idempotent */

/* 40 lowercase hex digits and a NUL. */
void bt_sha1_hex(const uint8_t h[BT_SHA1_LEN], char out[2 * BT_SHA1_LEN + 1]);

#endif
