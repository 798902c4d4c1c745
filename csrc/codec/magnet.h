/* magnet.h: magnet URIs (BEP 9). Pure C: no I/O, no Lua.
 *
 *   magnet:?xt=urn:btih:<40 hex digits | 32 base32 characters>&dn=<name>
 *          &tr=<tracker URL>&tr=...&x.pe=<host:port>&x.pe=...
 *
 * Values are percent-decoded (in dn a '+' is a space too, as browsers write it;
 * in tr and x.pe it stays: URLs may hold one). Everything malformed is refused
 * with a static message before anything reaches the network: no btih, a btih of
 * another length or with a bad digit, two different btih, a parameter without
 * '=', a bad %-escape, a NUL or control byte in tr or x.pe, an x.pe that is not
 * host:port. Unknown parameters (ws, as, xs, kt, so, BitTorrent v2's btmh...) are
 * ignored, and so are trackers of schemes we cannot announce to (wss://).
 *
 * Memory: one allocation of at most the URI's length plus a byte per value; the
 * lists are fixed arrays, so a URI of 10,000 tr= costs the same as one of 32.
 */
#ifndef BT_MAGNET_H
#define BT_MAGNET_H

#include <stddef.h>
#include <stdint.h>

/* Limits, each with its reason. */
#define BT_MAGNET_MAX_LEN      (64u * 1024)  /* bytes of URI: real ones are < 4 KiB even with
                                                dozens of trackers; longer is refused */
#define BT_MAGNET_MAX_TRACKERS 32            /* tr kept (the rest counted in tr_dropped):
                                                public magnets list 5-30 */
#define BT_MAGNET_MAX_PEERS    32            /* x.pe kept (the rest counted in pe_dropped) */
#define BT_MAGNET_MAX_DN       1024          /* bytes of dn kept (cut on a UTF-8 boundary): a
                                                display name until the metadata names it */

typedef struct bt_mstr { const char *p; size_t n; } bt_mstr;   /* NUL-terminated too */

typedef struct bt_magnet {
    uint8_t info_hash[20];
    bt_mstr dn;                          /* n == 0, p NULL: none */
    bt_mstr tr[BT_MAGNET_MAX_TRACKERS];  /* http://, https:// and udp:// URLs, each once, in order */
    uint32_t ntr, tr_dropped;            /* dropped: over the limit, or a scheme we lack */
    bt_mstr pe[BT_MAGNET_MAX_PEERS];     /* "host:port" or "[v6]:port", port 1..65535 */
    uint32_t npe, pe_dropped;
    char *arena;                         /* every string above points into it */
} bt_magnet;

/* Parse uri[0..len). Returns 0, or -1 with *err (static text) and *err_off (byte
 * offset of the offending parameter or character); m needs bt_magnet_free either way. */
int  bt_magnet_parse(bt_magnet *m, const char *uri, size_t len, const char **err, size_t *err_off);
void bt_magnet_free(bt_magnet *m);

#endif
