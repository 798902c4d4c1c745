/* bencode.h: BEP 3 bencoding. Pure C: no I/O, no Lua, no globals.
 *
 * Decoding is one pass over the input into a flat array of tokens (no allocation
 * per node). Tokens refer back into the input, so every value's raw bytes are at
 * hand (the info-hash is taken over them, never over a re-encoding) and a
 * container knows where its next sibling starts, so skipping a subtree is O(1).
 *
 * Layout of a document: token 0 is the top value. A container's first child, if
 * any, is the token right after it; each child's `next` is the index of the
 * following child; the container's own `next` is one past its whole subtree.
 * Dictionary children alternate key (a string), value, key, value...
 *
 * Memory is bounded by the caller: it passes the most tokens its input may
 * need (max_tokens, see the limits of metainfo.h, tracker_parse.h, wire.h),
 * and a document with more is refused at the first token over the limit.
 */
#ifndef BT_BENCODE_H
#define BT_BENCODE_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"

/* Limits, each with its reason. Inputs are hostile. */
#define BT_BENC_MAX_DEPTH  256          /* real torrents nest < 10 deep; bounds recursion in users.
                                           Exactly this many nested containers is accepted. */
#define BT_BENC_MAX_INPUT  (1u << 30)   /* offsets are 32-bit; 1 GiB is far beyond any torrent */
#define BT_BENC_ANY_TOKENS UINT32_MAX   /* max_tokens for "no limit but the input's own" (~len / 2):
                                           only for inputs the caller already bounds (bt.bdecode) */

typedef enum bt_btype {
    BT_BNONE = 0,
    BT_BINT  = 1,
    BT_BSTR  = 2,
    BT_BLIST = 3,
    BT_BDICT = 4,
} bt_btype;

/* 16 bytes. The type is not stored: the value's first byte, buf[start], says it
 * ('i', 'l', 'd', or a digit for a string), and a type field would have cost
 * 4 bytes more per token with padding. */
typedef struct bt_btok {
    uint32_t start;   /* offset of the value's first byte ('i', 'l', 'd' or a digit) */
    uint32_t end;     /* offset one past the value's last byte: raw bytes are [start, end) */
    uint32_t next;    /* index of the next sibling token (one past the subtree) */
    uint32_t aux;     /* string: offset of the payload (payload is [aux, end), aux > 0);
                         container: number of children (a dict counts keys and values);
                         integer: 0 */
} bt_btok;

typedef struct bt_bdoc {
    const char *buf;  /* the input; not owned, must outlive the document */
    size_t len;
    bt_btok *tok;
    uint32_t ntok;
    uint32_t cap;
    unsigned flags;   /* the BT_BDEC_* it was decoded with (bt_bint reads BT_BDEC_TOLERANT) */
} bt_bdoc;

typedef struct bt_berr {
    const char *msg;  /* static string, e.g. "leading zero in integer" */
    size_t offset;    /* byte offset in the input where the error was found */
    uint32_t limit;   /* "too many tokens": the max_tokens that was reached; otherwise 0 */
} bt_berr;

/* Flags for bt_bdecode. Strict is the default (0). */
#define BT_BDEC_ALLOW_UNSORTED 1u   /* accept dict keys out of order (real torrents have them);
                                       duplicates are still rejected */
#define BT_BDEC_ALLOW_TRAILING 2u   /* stop after the first complete value: bytes after it are
                                       not read (a .torrent saved with a newline); doc->tok[0].end
                                       says where the value ends */
#define BT_BDEC_TOLERANT       4u   /* .torrent files only (metainfo.c): what libtorrent 2.0's
                                       decoder accepts beyond BEP 3, so that bt-lua loads what it
                                       loads with the same info-hash. Implies ALLOW_UNSORTED, and:
                                       - duplicate keys (bt_bdict_get finds the first, as
                                         libtorrent's dict_find does; nothing else looks further);
                                       - leading zeros in integers (i05e is 5) and "-0" (i-0e,
                                         i-00e are 0);
                                       - integers of up to BT_BENC_TOLERANT_INT_DIGITS digits
                                         after the sign: one outside int64 reads as 0, as in
                                         libtorrent (INT64_MIN too); more digits are still
                                         "integer overflow";
                                       - leading zeros in string lengths (01:a), up to
                                         BT_BENC_TOLERANT_LEN_DIGITS digits in all (libtorrent's
                                         17-byte header limit), more: "string length has too
                                         many digits".
                                       Everything else stays refused (ie, i-e, i+1e, i1.0e,
                                       non-string keys, a missing value, truncation, depth). */
#define BT_BENC_TOLERANT_INT_DIGITS 20
#define BT_BENC_TOLERANT_LEN_DIGITS 16

/* Tokenize buf[0..len) into at most max_tokens (>= 1) tokens. Returns 0, or -1 with
 * *err filled (doc is left empty, bt_bdoc_free on it is harmless). Rejects,
 * with err->msg one of:
 *   "empty input", "input too large" (len > BT_BENC_MAX_INPUT),
 *   "too many tokens" (more than max_tokens values, which err->limit repeats;
 *   the offset is the first byte of the first value over the limit, and the
 *   scan stops there: nothing past it is read or reserved),
 *   "unexpected end of input", "trailing data after value" (unless BT_BDEC_ALLOW_TRAILING),
 *   "invalid character",
 *   "unexpected 'e'", "nesting too deep" (more than BT_BENC_MAX_DEPTH containers),
 *   "empty integer" (ie), "expected digit" (i-e, i+1e), "expected digit or 'e'",
 *   "leading zero in integer" (i03e), "negative zero" (i-0e), "integer overflow"
 *   (outside int64; tolerant: over 20 digits), "leading zero in string length" (01:a),
 *   "string length has too many digits" (tolerant: over 16),
 *   "expected ':' after string length", "string length past end of input",
 *   "dict key is not a string", "missing dict value", "dict keys not sorted"
 *   (strict mode), "duplicate dict key", "out of memory".
 * err->offset is the 0-based offset of the offending byte: the first byte that
 * cannot belong to a valid document, except for whole-value errors, which name
 * the value's first byte: a string whose length runs past the end, an
 * out-of-order or duplicate key (the later key), "-0" (its '-'), a leading zero
 * (the '0' itself, in integers and string lengths).
 *
 * Memory: 16 bytes a token. The array starts near what the input needs (a
 * guess of len / 8, at most 1 M tokens) and doubles as values arrive, up to
 * min(max_tokens, (len + BT_BENC_MAX_DEPTH) / 2 + 1) (every value takes at
 * least 2 bytes, an open container 1), so it is at most twice the tokens
 * actually found, and never more than 16 * max_tokens bytes whatever the input.
 *
 * Without BT_BDEC_TOLERANT integers are validated strictly (int64, canonical)
 * and BT_BDEC_ALLOW_UNSORTED only relaxes the key order. */
int  bt_bdecode(bt_bdoc *doc, const char *buf, size_t len, unsigned flags, uint32_t max_tokens,
                bt_berr *err);
void bt_bdoc_free(bt_bdoc *doc);

/* Accessors. `t` must be a valid token index of `doc`. */
static inline bt_btype bt_btype_of(const bt_bdoc *d, uint32_t t)
{
    switch (d->buf[d->tok[t].start]) {
    case 'i': return BT_BINT;
    case 'l': return BT_BLIST;
    case 'd': return BT_BDICT;
    default:  return BT_BSTR;   /* the decoder only makes tokens that start with a digit here */
    }
}
static inline const char *bt_bstr(const bt_bdoc *d, uint32_t t, size_t *len)
{
    *len = d->tok[t].end - d->tok[t].aux;
    return d->buf + d->tok[t].aux;
}
/* Integer value (validated by the decoder). In a BT_BDEC_TOLERANT document a
 * value outside int64 (up to 20 digits were accepted) is 0, libtorrent's reading. */
int64_t bt_bint(const bt_bdoc *d, uint32_t t);
/* Value of `key` in dict `t`, or 0 when absent or `t` is not a dict (token 0 is
 * never a child). Linear scan: dicts in torrents have a handful of keys. */
uint32_t bt_bdict_get(const bt_bdoc *d, uint32_t t, const char *key);
uint32_t bt_bdict_getn(const bt_bdoc *d, uint32_t t, const char *key, size_t klen);
/* Iteration: for (uint32_t c = bt_bfirst(d, t); c; c = bt_bnext(d, t, c)) ... */
/* bt_bfirst of a string or integer is 0 (no children), so a caller that got
 * the type wrong iterates nothing instead of wandering into sibling tokens. */
static inline uint32_t bt_bfirst(const bt_bdoc *d, uint32_t t)
{
    return bt_btype_of(d, t) >= BT_BLIST && d->tok[t].aux ? t + 1 : 0;
}
static inline uint32_t bt_bnext(const bt_bdoc *d, uint32_t parent, uint32_t child)
{
    uint32_t n = d->tok[child].next;
    return n < d->tok[parent].next ? n : 0;
}

/* Encoding helpers (callers build values in order; dict keys must be given sorted). */
int bt_benc_int(bt_buf *b, int64_t v);
int bt_benc_str(bt_buf *b, const void *s, size_t n);

#endif
