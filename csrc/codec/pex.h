/* pex.h: BEP 11 peer exchange (ut_pex) messages. Pure C: no I/O, no Lua.
 *
 * A message is a bencoded dictionary: "added" / "dropped", 6 bytes a peer (IPv4 and
 * port, big-endian), "added6" / "dropped6", 18 bytes a peer (BEP 7), and "added.f" /
 * "added6.f", one flags byte for each added peer. The parser keeps views into the
 * payload and reads entries out of them on demand; the builder writes what the
 * engine decided to tell a peer. Hostile input: the payload is bounded before it is
 * decoded, a trailing partial entry is ignored, flags of the wrong length are
 * ignored, a key of the wrong type is absent, anything but a dictionary is refused.
 */
#ifndef BT_PEX_H
#define BT_PEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define BT_PEX_MAX_MSG    (64u * 1024)  /* bytes of a ut_pex payload; more drops the peer (50 peers
                                           of each kind take ~2.3 KiB; libtorrent drops over 500 KiB) */
#define BT_PEX_MAX_TOKENS 64            /* bencode values: six keys and their strings, with room */
#define BT_PEX_MAX_SEND   50            /* added (and dropped) peers in one message of ours: what
                                           Transmission and aria2 send */

/* added.f flags (BEP 11) */
#define BT_PEX_F_ENCRYPTION 0x01        /* prefers encryption */
#define BT_PEX_F_SEED       0x02        /* seed or partial seed */
#define BT_PEX_F_UTP        0x04
#define BT_PEX_F_HOLEPUNCH  0x08
#define BT_PEX_F_REACHABLE  0x10        /* outgoing connection: it accepts incoming ones */

typedef struct bt_pex_addr {
    uint8_t family;           /* 4 or 6 */
    uint8_t flags;            /* BT_PEX_F_* (added only) */
    uint16_t port;            /* host order */
    uint8_t addr[16];         /* network order; IPv4 in the first 4, the rest zero */
} bt_pex_addr;

/* A decoded message: views into the payload it was parsed from. */
typedef struct bt_pex_msg {
    const uint8_t *list[4];   /* BT_PEX_ADDED, BT_PEX_ADDED6, BT_PEX_DROPPED, BT_PEX_DROPPED6 */
    uint32_t n[4];            /* whole entries in each */
    const uint8_t *flags[2];  /* added.f, added6.f: NULL unless one byte per entry */
} bt_pex_msg;
enum { BT_PEX_ADDED, BT_PEX_ADDED6, BT_PEX_DROPPED, BT_PEX_DROPPED6 };

/* Parse a ut_pex payload. 0, or -1 with *why (static text): too long, not bencode
 * (at most BT_PEX_MAX_TOKENS values), not a dictionary. */
int bt_pex_parse(const uint8_t *d, size_t n, bt_pex_msg *m, const char **why);
/* Entry i of list k (i < m->n[k]) into *out; flags from added.f / added6.f, else 0. */
void bt_pex_entry(const bt_pex_msg *m, int k, uint32_t i, bt_pex_addr *out);

/* Append a message: added peers (IPv4 and IPv6 mixed, with their flags) and dropped
 * ones; every key is written, empty ones too. 0, or -1 out of memory. */
int bt_pex_build(bt_buf *b, const bt_pex_addr *added, uint32_t nadded, const bt_pex_addr *dropped,
                 uint32_t ndropped);

/* Not routable on the internet: loopback, private, link-local, shared (100.64/10),
 * unspecified; IPv6 loopback, unspecified, link-local, unique local (fc00::/7), and
 * IPv4-mapped ones by their IPv4 rule. Such addresses are told only to local peers. */
bool bt_pex_is_local(const bt_pex_addr *a);

/* Order of addresses (family, address, port): for sorted sets. <0, 0, >0. */
int bt_pex_cmp(const bt_pex_addr *a, const bt_pex_addr *b);

#endif
