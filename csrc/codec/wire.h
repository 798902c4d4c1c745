/* wire.h: BitTorrent peer-wire framing (BEP 3, 5, 6, 10). Pure C: no I/O, no Lua.
 *
 * The decoder works in place over a caller's buffer: bt_wire_parse looks at the
 * bytes at hand and returns one whole message, or says how many bytes it still
 * needs, or rejects the stream. The length prefix is checked against the limits
 * as soon as it and the id are visible, before anything is buffered, so a peer
 * cannot make us hold a 4 GiB "message". The engine parses its socket read buffer
 * with it; the Lua decoder object (bt.wire.decoder) wraps it with a buffer.
 */
#ifndef BT_WIRE_H
#define BT_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

#define BT_HANDSHAKE_LEN   68
#define BT_BLOCK_SIZE      16384u          /* the block size every client requests */
#define BT_WIRE_MAX_BLOCK  (128u * 1024)   /* largest block a limit may be raised to */
#define BT_WIRE_EXT_MAX_TOKENS 4096        /* bencode values in a BEP 10 handshake: clients send
                                              a dozen keys and an "m" of a dozen extensions
                                              (< 60); bounds its token array to 64 KiB */

/* Message ids; KEEPALIVE has no id on the wire (length 0). */
enum bt_msg_type {
    BT_MSG_KEEPALIVE      = -1,
    BT_MSG_CHOKE          = 0,
    BT_MSG_UNCHOKE        = 1,
    BT_MSG_INTERESTED     = 2,
    BT_MSG_NOT_INTERESTED = 3,
    BT_MSG_HAVE           = 4,
    BT_MSG_BITFIELD       = 5,
    BT_MSG_REQUEST        = 6,
    BT_MSG_PIECE          = 7,
    BT_MSG_CANCEL         = 8,
    BT_MSG_PORT           = 9,    /* BEP 5 */
    BT_MSG_SUGGEST        = 13,   /* BEP 6 */
    BT_MSG_HAVE_ALL       = 14,
    BT_MSG_HAVE_NONE      = 15,
    BT_MSG_REJECT         = 16,
    BT_MSG_ALLOWED_FAST   = 17,
    BT_MSG_EXTENDED       = 20,   /* BEP 10 */
};

typedef struct bt_msg {
    int type;                 /* enum bt_msg_type */
    uint32_t index;           /* have, request, cancel, piece, suggest, reject, allowed_fast */
    uint32_t begin;           /* request, cancel, reject, piece */
    uint32_t length;          /* request, cancel, reject */
    uint16_t port;            /* port */
    uint8_t ext_id;           /* extended */
    const uint8_t *payload;   /* bitfield bits, piece block, extended payload: points into the input */
    size_t payload_len;
} bt_msg;

typedef struct bt_wire_limits {
    uint32_t max_block;       /* largest piece payload accepted; default BT_BLOCK_SIZE */
    uint32_t max_bitfield;    /* largest bitfield payload in bytes; 0: ceil(pieces/8) exact is checked by the caller */
    uint32_t max_extended;    /* largest extended payload; default 1 MiB (ut_metadata pieces are 16 KiB) */
    uint32_t max_message;     /* overall cap on any length prefix; default 1 MiB + 16 */
} bt_wire_limits;

void bt_wire_limits_default(bt_wire_limits *lim);

/* Parse one message from buf[0..len).
 * Returns  1: *msg filled, *used = bytes it took (prefix included);
 *          0: need more bytes, *used = total bytes the message needs when known
 *             (from 4 bytes on), else 0. The id's length rule is applied once the
 *             5th byte is there: call again as bytes arrive, not only at *used;
 *         -1: the stream is invalid, *err = static message (unknown ids are not an
 *             error: they come back as their id with the raw payload, for the caller to skip). */
int bt_wire_parse(const uint8_t *buf, size_t len, const bt_wire_limits *lim,
                  bt_msg *msg, size_t *used, const char **err);

/* Handshake */
#define BT_RESERVED_EXTENSION_BYTE 5      /* BEP 10: reserved[5] & 0x10 */
#define BT_RESERVED_EXTENSION_BIT  0x10
#define BT_RESERVED_FAST_BYTE      7      /* BEP 6: reserved[7] & 0x04 */
#define BT_RESERVED_FAST_BIT       0x04
#define BT_RESERVED_DHT_BYTE       7      /* BEP 5: reserved[7] & 0x01 */
#define BT_RESERVED_DHT_BIT        0x01

typedef struct bt_handshake {
    uint8_t reserved[8];
    uint8_t info_hash[20];
    uint8_t peer_id[20];
} bt_handshake;

/* Returns 1 parsed (68 bytes), 0 need more, -1 not a BitTorrent handshake (*err set).
 * The protocol string is checked as soon as its bytes arrive. */
int bt_wire_parse_handshake(const uint8_t *buf, size_t len, bt_handshake *hs, const char **err);
void bt_wire_write_handshake(const bt_handshake *hs, uint8_t out[BT_HANDSHAKE_LEN]);

/* Encode msg into out (cap bytes). For PIECE, BITFIELD and EXTENDED the payload is
 * copied too when msg->payload is set; with payload == NULL only the header is
 * written (length prefix counting payload_len) so the engine can send the data
 * itself. Any other type in 0..255 is framed as id + payload, the way
 * bt_wire_parse returns unknown ids (so decoded messages always re-encode).
 * Returns bytes written, or 0 if cap is too small, the type is outside
 * -1..255, or the length prefix would not fit in 32 bits. */
size_t bt_wire_encode(const bt_msg *msg, uint8_t *out, size_t cap);
/* Bytes bt_wire_encode needs for msg's header (plus payload when payload is set). */
size_t bt_wire_encoded_len(const bt_msg *msg);
/* Append msg, encoded, to b. Returns 0, or -1 (out of memory, or msg cannot be framed). */
int bt_wire_append(bt_buf *b, const bt_msg *msg);
/* The same for request, cancel and reject (type), the messages a pick sends by the
 * dozen: 17 bytes, without going through a bt_msg. */
int bt_wire_append_block(bt_buf *b, int type, uint32_t index, uint32_t begin, uint32_t length);

/* Our handshake: BitTorrent protocol, the BEP 10 and BEP 6 bits set. */
void bt_wire_our_handshake(const uint8_t info_hash[20], const uint8_t peer_id[20],
                           uint8_t out[BT_HANDSHAKE_LEN]);

/* BEP 6 canonical allowed-fast set of an IPv4 peer: SHA-1 chained from the peer's
 * /24 and the info-hash, the first k distinct indices below npieces (k <= npieces).
 * Returns how many were written to out (k, or fewer only if SHA-1 fails). */
uint32_t bt_wire_fast_set(const uint8_t ip4[4], const uint8_t info_hash[20], uint32_t npieces,
                          uint32_t k, uint32_t *out);

/* BEP 10 extension messages. Each side names its extensions in the handshake's "m"
 * with ids of its own choosing, and a message is sent under the id the RECEIVER
 * chose: so ids are per peer. BT_EXT_NAMES (wire.c) holds our names and ids in one
 * place, sorted by name (the order "m" is written in); a new extension is one more
 * enum value here and one more row there, and every peer gets a slot for it. */
enum bt_ext {
    BT_EXT_UT_METADATA,       /* BEP 9 */
    BT_EXT_UT_PEX,            /* BEP 11 */
    BT_EXT_COUNT
};
typedef struct bt_ext_name {
    const char *name;         /* the key in "m" */
    uint8_t id;               /* the id we chose: what peers send it to us under (1..255) */
} bt_ext_name;
extern const bt_ext_name BT_EXT_NAMES[BT_EXT_COUNT];
/* Which of our extensions an extended message with id `id` (not 0) is: an enum bt_ext,
 * or -1 for an id we never gave out. */
int bt_wire_ext_of(uint8_t id);

#define BT_WIRE_MAX_CLIENT 64     /* bytes of "v" kept: client names are ~20 */

/* BEP 10 extended handshake (extended message id 0): the fields we send and read. */
typedef struct bt_ext_hs {
    int64_t port;             /* "p": our listening port; < 0 omitted / absent */
    int64_t reqq;             /* "reqq": requests the sender queues; < 0 omitted / absent */
    int64_t metadata_size;    /* "metadata_size" (BEP 9): bytes of the info dictionary; < 0 omitted
                                 / absent (read: any integer >= 0; bounds are the caller's) */
    /* "m": building: the extensions we offer (true: offered, under BT_EXT_NAMES' id);
     * parsing: the id the sender wants each of our extensions sent under (0: it has not
     * got it, or disabled it with 0; ids over 255 read as 0) */
    uint8_t m[BT_EXT_COUNT];
    /* "v": building: a NUL-terminated name, NULL omitted; parsing: copied, at most
     * BT_WIRE_MAX_CLIENT bytes (cut there), NUL-terminated, control bytes as '?' */
    const char *client;
    char client_buf[BT_WIRE_MAX_CLIENT + 1];
    /* "yourip": the address the sender sees us at, 4 (IPv4) or 16 (IPv6) bytes; len 0:
     * omitted / absent or another length */
    uint8_t yourip[16];
    uint8_t yourip_len;
    /* "ipv6" (BEP 7): the sender's own IPv6 address, 16 bytes; has_ipv6 false: omitted /
     * absent or another length */
    uint8_t ipv6[16];
    bool has_ipv6;
} bt_ext_hs;
/* Append the bencoded dictionary to b. 0, or -1 out of memory. */
int bt_wire_ext_handshake(bt_buf *b, const bt_ext_hs *h);
/* Read the fields above from a peer's payload (unsorted keys accepted, unknown keys
 * ignored, a field of the wrong type is absent). Returns 0, or -1 when it is not a
 * bencoded dictionary of at most BT_WIRE_EXT_MAX_TOKENS values (fields stay absent). */
int bt_wire_parse_ext_handshake(const uint8_t *payload, size_t len, bt_ext_hs *out);

/* BEP 9 ut_metadata messages: a bencoded dictionary {msg_type, piece[, total_size]},
 * the piece's bytes right after it for data. */
#define BT_UTM_PIECE       16384u   /* every metadata piece but the last is exactly this */
#define BT_UTM_MAX_TOKENS  64       /* values in the dictionary: three keys and their values,
                                       and room for a client's extra keys */
enum { BT_UTM_REQUEST = 0, BT_UTM_DATA = 1, BT_UTM_REJECT = 2 };
typedef struct bt_utm {
    int type;                 /* BT_UTM_* */
    uint32_t piece;
    int64_t total_size;       /* data: the sender's metadata_size (>= 0); else -1 */
    const uint8_t *data;      /* data: the bytes after the dictionary (points into the input) */
    size_t len;
} bt_utm;
/* Parse one ut_metadata payload. Returns 0; 1 for a msg_type we do not know (BEP 9:
 * ignore it); -1 with *err (static) when it is not a dictionary (of at most
 * BT_UTM_MAX_TOKENS values), msg_type or piece is missing or out of range (piece
 * 0..2^32-1), a data message lacks total_size (>= 0), or bytes follow a request or
 * a reject. Sizes against the metadata are the caller's to check. */
int bt_wire_parse_ut_metadata(const uint8_t *p, size_t n, bt_utm *out, const char **err);
/* Append one (data: total_size and the piece's bytes). 0, or -1 out of memory. */
int bt_wire_ut_metadata(bt_buf *b, int type, uint32_t piece, int64_t total_size, const uint8_t *data,
                        size_t len);

#endif
