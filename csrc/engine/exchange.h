/* exchange.h: peer exchange (BEP 11, ut_pex) for one torrent's connections: what
 * each peer was last told about the swarm, the messages that tell it what changed,
 * and the checks on what it tells us.
 *
 * Every BT_PEX_INTERVAL a peer that has ut_pex gets the addresses that joined the
 * torrent's connections since our last message to it (added, at most
 * BT_PEX_MAX_SEND, with their flags) and those that left (dropped, as many); an
 * address that did not fit waits for the next message. A peer's own address is
 * never told to it, nor a local address (codec/pex.h) to a peer that is not local.
 * Only addresses a peer accepts connections at are told: the one we dialed, or an
 * incoming peer's host with the port it gave in its BEP 10 handshake.
 *
 * Received messages: one over BT_PEX_MAX_MSG (codec/pex.h), or one sooner than
 * BT_PEX_MIN_GAP after the last, drops the sender; the first BT_PEX_MAX_TAKE added
 * peers are passed on (local ones only from a local sender). What to dial is not
 * decided here: the torrent hands them to its owner (Lua: session.lua's candidates).
 * Private torrents (BEP 27) do none of this: the torrent never calls in.
 */
#ifndef BT_EXCHANGE_H
#define BT_EXCHANGE_H

#include <stddef.h>
#include <stdint.h>

#include "codec/pex.h"
#include "engine/peer.h"

#define BT_PEX_INTERVAL 60.0   /* s between our messages to one peer: BEP 11 says at most once a minute */
#define BT_PEX_FIRST    5.0    /* s after a connection before our first message: its BEP 10 handshake
                                  (and so its port) has come, and the swarm has settled a little */
#define BT_PEX_MIN_GAP  10.0   /* s: a peer sending PEX more often is dropped (libtorrent: a 7th
                                  message within 60 s) */
#define BT_PEX_MAX_TAKE 100    /* added peers taken from one message: libtorrent sends at most 100,
                                  Transmission and aria2 50 */

/* One peer's book, kept in p->sw.pex (made on first use, freed by bt_pex_forget). */
struct bt_pex_book {
    bt_pex_addr *told;        /* what it was told is connected, sorted by bt_pex_cmp */
    uint32_t ntold;
    double next_send;         /* when our next message is due */
    double last_recv;         /* its last message (0: none) */
    uint32_t sent, received;  /* messages, for stats */
};

/* Send every message that is due among the connections of the list (a torrent's
 * peers, linked by next). */
void bt_pex_tick(bt_peer *peers, double now);
/* A ut_pex message from p: the added peers worth passing on into out (at most max),
 * their count, or -1 with *why (static text): p is to be closed. */
int bt_pex_receive(bt_peer *p, const uint8_t *d, size_t n, double now, bt_pex_addr *out, uint32_t max,
                   const char **why);
/* p is going: its book is freed. */
void bt_pex_forget(bt_peer *p);

#endif
