/* metadata.h: the BEP 9 metadata fetch of one torrent started from a magnet link:
 * the info dictionary's size, its 16 KiB pieces (which are had, which were asked of
 * whom and when), the assembled buffer and the SHA-1 check against the info-hash.
 *
 * A data structure: it knows peers only by their uid and sends nothing. The torrent
 * (torrent.c) decides whom to ask and drops the peers that send bad data; the
 * messages are built and parsed by codec/wire (bt_wire_ut_metadata).
 */
#ifndef BT_METADATA_H
#define BT_METADATA_H

#include <stdbool.h>
#include <stdint.h>

#include "codec/wire.h"

/* Limits, each with its reason. */
#define BT_MD_MAX_SIZE   (8u << 20)  /* metadata_size accepted: aria2's limit. libtorrent allows
                                        ~30 MiB, but an 8 MiB info dictionary already holds 400,000
                                        pieces (25 TiB in 64 MiB pieces) or ~100,000 files, and
                                        8 MiB is what a hostile peer can make us hold per torrent */
#define BT_MD_PER_PEER   2           /* requests out to one peer (libtorrent keeps 2 too) */
#define BT_MD_TIMEOUT    10.0        /* s before a piece asked of one peer is asked of another */
#define BT_MD_REJECT_WAIT 60.0       /* s a peer that rejected a request is not asked (libtorrent) */
#define BT_MD_STALL      30.0        /* s without a piece before a size nobody delivers is dropped */

enum { BT_MD_NEED = 0, BT_MD_ASKED = 1, BT_MD_HAVE = 2 };

typedef struct bt_mdpiece {
    uint64_t from;      /* asked of / received from this peer uid (0: nobody) */
    double asked;
    uint8_t state;      /* BT_MD_* */
} bt_mdpiece;

typedef struct bt_mdfetch {
    uint8_t info_hash[20];
    uint32_t size;      /* 0: not chosen yet */
    uint32_t npieces, nhave;
    uint8_t *buf;
    bt_mdpiece *pc;
    double progress_at; /* the size was chosen, or a piece came */
    bool done;          /* every piece had and the SHA-1 matched: buf is the info dictionary */
} bt_mdfetch;

void bt_md_init(bt_mdfetch *f, const uint8_t info_hash[20]);
/* Choose the size (1..BT_MD_MAX_SIZE) and allocate. 0, -1 out of memory, -2 size refused. */
int  bt_md_start(bt_mdfetch *f, uint32_t size, double now);
/* Forget the size and every piece (after a failed check, or a stall); done stays false. */
void bt_md_reset(bt_mdfetch *f);
void bt_md_free(bt_mdfetch *f);
/* Bytes of piece i (< npieces): BT_UTM_PIECE, the last one the rest. */
uint32_t bt_md_piece_len(const bt_mdfetch *f, uint32_t i);
/* The next piece to ask: one nobody was asked for, else one asked longer than
 * BT_MD_TIMEOUT ago (*was: the peer it was asked of, else 0). -1: none. */
int64_t bt_md_pick(const bt_mdfetch *f, double now, uint64_t *was);
void bt_md_asked(bt_mdfetch *f, uint32_t piece, uint64_t uid, double now);
/* A data message's bytes for piece (< npieces, length already checked by the caller
 * against bt_md_piece_len). Returns 0 stored, 1 already had (ignored), 2 stored and
 * now complete and verified (done), -1 stored, complete, and the SHA-1 failed: the
 * caller blames the senders (bt_md_senders) and resets. */
int  bt_md_got(bt_mdfetch *f, uint32_t piece, const uint8_t *data, uint64_t uid, double now);
/* Pieces asked of uid go back to be asked of someone else; returns how many. */
uint32_t bt_md_release(bt_mdfetch *f, uint64_t uid);
/* Distinct uids that sent pieces, into out (cap entries); returns how many. */
uint32_t bt_md_senders(const bt_mdfetch *f, uint64_t *out, uint32_t cap);

#endif
