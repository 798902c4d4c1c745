/* mse.h: the receiving side of Message Stream Encryption (MSE, also called
 * Protocol Encryption), the obfuscated handshake that libtorrent and aria2c try
 * FIRST on every outgoing connection. A peer that closes such a connection costs
 * the dialer a retry in plaintext about one second later (measured on loopback:
 * libtorrent and aria2c both reconnect 1.0 s after the close), so a seed without
 * MSE starts every upload a second late.
 *
 * We answer the handshake and always select the plaintext method: the rest of
 * the connection is the ordinary peer wire, no per-byte cost. A peer that offers
 * only RC4 is refused (as before). Pure C: OpenSSL's BIGNUM for Diffie-Hellman,
 * SHA-1 from sha1.h, RC4 written out here (OpenSSL 3 moved it to the legacy
 * provider). No I/O, no Lua.
 *
 * The parser works over the caller's whole input buffer (the peer's read buffer,
 * which keeps everything since the connection started) and decrypts fields in
 * place as their lengths become known:
 *
 *     bt_mse *m = bt_mse_new();                    // keys made here
 *     r = bt_mse_step(m, buf, len, &out, &skip, lookup, ud);
 *       BT_MSE_MORE   wait for more input; send `out` (may be empty) first
 *       BT_MSE_DONE   send `out`; drop buf[0..skip): what follows is plaintext
 *                     (the initial payload, decrypted in place, then the stream)
 *       BT_MSE_FAIL   close; bt_mse_error(m) says why
 *     bt_mse_free(m);
 *
 * Layout from the spec (A dials, B is us):
 *   1 A->B  Ya (96 bytes) PadA (0-512)
 *   2 B->A  Yb PadB
 *   3 A->B  HASH('req1',S) HASH('req2',SKEY)^HASH('req3',S)
 *           RC4a(VC crypto_provide len(PadC) PadC len(IA)) RC4a(IA)
 *   4 B->A  RC4b(VC crypto_select len(PadD) PadD), then the stream
 */
#ifndef BT_MSE_H
#define BT_MSE_H

#include <stddef.h>
#include <stdint.h>

#define BT_MSE_KEY_LEN   96     /* 768-bit DH public key, big-endian */
#define BT_MSE_MAX_PAD   512    /* PadA..PadD are 0-512 bytes (spec) */
#define BT_MSE_PAD_B     64     /* our PadB: random 0..63 bytes, enough to vary the length */
#define BT_MSE_MAX_IA    65535  /* len(IA) is 2 bytes; the caller's buffer must hold it */
/* Everything before the initial payload: Ya, PadA, two hashes, VC, provide,
 * len(PadC), PadC, len(IA). The caller's read buffer must be larger. */
#define BT_MSE_MAX_PREFIX (BT_MSE_KEY_LEN + BT_MSE_MAX_PAD + 20 + 20 + 8 + 4 + 2 + BT_MSE_MAX_PAD + 2)

#define BT_MSE_PLAINTEXT 0x01u
#define BT_MSE_RC4       0x02u

typedef enum { BT_MSE_MORE = 0, BT_MSE_DONE = 1, BT_MSE_FAIL = -1 } bt_mse_status;

typedef struct bt_mse bt_mse;

/* Which info-hash did the peer mean? `lookup` is called with each candidate test:
 * it must call bt_mse_try_skey(m, info_hash) for every info-hash it serves and
 * return 1 as soon as one returns 1, else 0. */
typedef int (*bt_mse_lookup)(void *ud, bt_mse *m);

bt_mse *bt_mse_new(void);                      /* NULL: out of memory or no randomness */
void    bt_mse_free(bt_mse *m);                /* NULL allowed */
/* in: the whole input so far (fields are decrypted in place, so call again with
 * the same buffer, grown). out/outlen: bytes to send now (owned by m, valid until
 * the next call). skip: on DONE, bytes of handshake before the plaintext. */
bt_mse_status bt_mse_step(bt_mse *m, uint8_t *in, size_t len, const uint8_t **out, size_t *outlen,
                          size_t *skip, bt_mse_lookup lookup, void *ud);
int bt_mse_try_skey(bt_mse *m, const uint8_t info_hash[20]);   /* 1 if it is the one */
/* The info-hash that matched (valid after DONE). */
const uint8_t *bt_mse_info_hash(const bt_mse *m);
const char *bt_mse_error(const bt_mse *m);

#endif
