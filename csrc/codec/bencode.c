/* bencode.c: BEP 3 decoder into a flat token array, plus encoding helpers.
 *
 * The decoder is one iterative pass: an explicit stack of open containers
 * (at most BT_BENC_MAX_DEPTH), one token appended per value. Invariants kept
 * while scanning:
 *   - tokens are appended in document order, so a leaf's next sibling is the
 *     token right after it (next = index + 1), and a container's `next` is the
 *     token count at the moment it is closed;
 *   - in an open dict, an even child count means "a key or 'e' comes next";
 *   - in strict mode every key is compared with the previous key of its dict;
 *     in unsorted mode the same comparison only detects the first out-of-order
 *     key, after which the dict's keys are sorted once at its close to find
 *     duplicates in O(k log k) instead of O(k^2); in tolerant mode (.torrent
 *     files) keys are not compared at all: duplicates are allowed, and
 *     lookups find the first.
 */
#include "codec/bencode.h"

#include <stdlib.h>
#include <string.h>

/* The memory figures in bencode.h count on it. */
_Static_assert(sizeof(bt_btok) == 16, "bt_btok is 16 bytes");

/* Every complete value consumes at least 2 input bytes ("0:", "le", "de"; "i0e"
 * is 3), so a document of `len` bytes has at most len / 2 tokens. Before an
 * invalid one is found out, each still-open container has cost one byte, so a
 * prefix can hold up to BT_BENC_MAX_DEPTH / 2 more ("lll...": 1 byte a token).
 * With that the structural bound is never reached: only a max_tokens below it
 * is, and "too many tokens" is always the caller's limit. */
static uint32_t token_limit(size_t len, uint32_t max_tokens)
{
    uint32_t structural = (uint32_t)((len + BT_BENC_MAX_DEPTH) / 2 + 1);
    return max_tokens < structural ? max_tokens : structural;
}

/* First guess of the array size: file lists average 7-8 bytes per token, so
 * len / 8 usually avoids most regrowth; growth is geometric up to the limit.
 * The guess is capped so a huge input reserves memory only as it proves to
 * hold tokens (1 M tokens = 16 MB). */
#define BT_BENC_INITIAL_TOKENS 64
#define BT_BENC_INITIAL_MAX_TOKENS (1u << 20)

typedef struct frame {
    uint32_t tok;      /* token index of the open container */
    uint32_t n;        /* children so far (dict: keys and values) */
    uint32_t lastkey;  /* dict: token index of the previous key, 0 if none yet */
    uint8_t dict;
    uint8_t unsorted;  /* dict: an out-of-order key was seen (ALLOW_UNSORTED mode) */
} frame;

typedef struct keyref {
    const char *p;
    uint32_t n;
    uint32_t start;    /* offset of the key's first byte: duplicates report the later one */
} keyref;

static int keyref_cmp(const void *a, const void *b)
{
    const keyref *x = a, *y = b;
    size_t m = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, m);
    if (c)
        return c;
    if (x->n != y->n)
        return x->n < y->n ? -1 : 1;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* Byte-order comparison of two string payloads (shorter prefix sorts first). */
static inline int bytes_cmp(const char *a, size_t na, const char *b, size_t nb)
{
    int c = memcmp(a, b, na < nb ? na : nb);
    if (c)
        return c;
    return na < nb ? -1 : na > nb;
}

/* Duplicate check of a dict whose keys arrived out of order. Returns 0, or the
 * offset + 1 of the first key (in document order) that repeats an earlier one,
 * or (size_t)-1 on allocation failure. */
static size_t unsorted_dup(const bt_bdoc *d, uint32_t t, uint32_t nchildren)
{
    uint32_t nk = nchildren / 2;
    keyref *k = malloc((size_t)nk * sizeof *k);
    if (!k)
        return (size_t)-1;
    uint32_t c = t + 1;
    for (uint32_t i = 0; i < nk; i++) {
        const bt_btok *kt = &d->tok[c];
        k[i].p = d->buf + kt->aux;
        k[i].n = kt->end - kt->aux;
        k[i].start = kt->start;
        c = d->tok[kt->next].next;   /* skip the value's whole subtree */
    }
    qsort(k, nk, sizeof *k, keyref_cmp);
    size_t best = 0;
    for (uint32_t i = 1; i < nk; i++)
        if (k[i].n == k[i - 1].n && memcmp(k[i].p, k[i - 1].p, k[i].n) == 0)
            if (!best || k[i].start + (size_t)1 < best)
                best = k[i].start + (size_t)1;
    free(k);
    return best;
}

static int grow(bt_bdoc *d, uint32_t limit)
{
    uint32_t cap = d->cap ? d->cap : BT_BENC_INITIAL_TOKENS;
    if (d->cap) {
        if (d->cap >= limit)
            return -1;   /* unreachable: bt_bdecode refuses at ntok == limit before growing */
        cap = d->cap > limit / 2 ? limit : d->cap * 2;
    }
    bt_btok *p = realloc(d->tok, (size_t)cap * sizeof *p);
    if (!p)
        return -1;
    d->tok = p;
    d->cap = cap;
    return 0;
}

/* One unsigned compare instead of two. */
#define IS_DIGIT(ch) ((unsigned)(ch) - '0' < 10u)

/* Largest |value| / 10 that can take one more digit without overflowing int64
 * (9223372036854775807 positive, 9223372036854775808 negative). */
#define I64_DIV10 922337203685477580ULL

int bt_bdecode(bt_bdoc *doc, const char *buf, size_t len, unsigned flags, uint32_t max_tokens,
               bt_berr *err)
{
    const unsigned char *p = (const unsigned char *)buf;
    frame stack[BT_BENC_MAX_DEPTH];
    unsigned depth = 0;
    size_t pos = 0;
    const char *msg;
    uint32_t limit_hit = 0;   /* err->limit */
    const int tolerant = (flags & BT_BDEC_TOLERANT) != 0;
    const int strict = !(flags & BT_BDEC_ALLOW_UNSORTED) && !tolerant;

    memset(doc, 0, sizeof *doc);
    doc->buf = buf;
    doc->len = len;
    doc->flags = flags;
    if (len == 0) {
        msg = "empty input";
        goto fail;
    }
    if (len > BT_BENC_MAX_INPUT) {
        msg = "input too large";
        pos = BT_BENC_MAX_INPUT;   /* the first byte past the limit */
        goto fail;
    }
    const uint32_t limit = token_limit(len, max_tokens);
    {
        uint32_t guess = (uint32_t)(len / 8) + BT_BENC_INITIAL_TOKENS;
        if (guess > BT_BENC_INITIAL_MAX_TOKENS)
            guess = BT_BENC_INITIAL_MAX_TOKENS;
        if (guess > limit)
            guess = limit ? limit : 1;   /* a max_tokens of 0 (a caller's bug) refuses all */
        doc->tok = malloc((size_t)guess * sizeof *doc->tok);
        if (!doc->tok) {
            msg = "out of memory";
            goto fail;
        }
        doc->cap = guess;
    }
    bt_btok *tok = doc->tok;
    uint32_t ntok = 0, cap = doc->cap;

    for (;;) {
        if (pos >= len) {
            msg = "unexpected end of input";
            goto fail;
        }
        unsigned c = p[pos];
        frame *fr = depth ? &stack[depth - 1] : NULL;

        if (c == 'e') {
            if (!fr) {
                msg = "unexpected 'e'";
                goto fail;
            }
            if (fr->n & fr->dict) {
                msg = "missing dict value";
                goto fail;
            }
            bt_btok *ct = &tok[fr->tok];
            ct->end = (uint32_t)(pos + 1);
            ct->next = ntok;
            ct->aux = fr->n;
            if (fr->unsorted) {
                doc->ntok = ntok;
                size_t dup = unsorted_dup(doc, fr->tok, fr->n);
                if (dup == (size_t)-1) {
                    msg = "out of memory";
                    goto fail;
                }
                if (dup) {
                    msg = "duplicate dict key";
                    pos = dup - 1;
                    goto fail;
                }
            }
            pos++;
            depth--;
            goto value_done;
        }

        if (ntok == limit) {
            /* Checked before growing: a hostile document is refused here, at
             * the first value over the limit, having cost 16 * limit bytes. */
            msg = "too many tokens";
            limit_hit = limit;
            goto fail;
        }
        if (ntok == cap) {
            doc->ntok = ntok;
            if (grow(doc, limit)) {
                msg = "out of memory";
                goto fail;
            }
            tok = doc->tok;
            cap = doc->cap;
        }
        uint32_t t = ntok;

        if (IS_DIGIT(c)) {
            /* String: <length>:<bytes>. The length is bounded by what is left of
             * the input long before it could overflow. */
            size_t start = pos;
            uint64_t n = c - '0';
            pos++;
            if (n == 0 && pos < len && IS_DIGIT(p[pos]) && !tolerant) {
                msg = "leading zero in string length";
                pos = start;
                goto fail;
            }
            while (pos < len && IS_DIGIT(c = p[pos])) {
                if (tolerant && pos - start == BT_BENC_TOLERANT_LEN_DIGITS) {
                    /* Only leading zeros get here (the length is bounded by the
                     * input long before): libtorrent's header limit. */
                    msg = "string length has too many digits";
                    pos = start;
                    goto fail;
                }
                n = n * 10 + (c - '0');
                if (n > len) {
                    msg = "string length past end of input";
                    pos = start;
                    goto fail;
                }
                pos++;
            }
            if (pos >= len) {
                msg = "unexpected end of input";
                goto fail;
            }
            if (p[pos] != ':') {
                msg = "expected ':' after string length";
                goto fail;
            }
            pos++;
            if (n > len - pos) {
                msg = "string length past end of input";
                pos = start;
                goto fail;
            }
            tok[t].start = (uint32_t)start;
            tok[t].aux = (uint32_t)pos;
            pos += n;
            tok[t].end = (uint32_t)pos;
            tok[t].next = t + 1;
            ntok++;
            if (fr && fr->dict && !(fr->n & 1) && !tolerant) {
                /* A key: must sort after the previous key of this dict. */
                if (fr->lastkey && !fr->unsorted) {
                    const bt_btok *pk = &tok[fr->lastkey];
                    int cmp = bytes_cmp(buf + pk->aux, pk->end - pk->aux,
                                        buf + tok[t].aux, tok[t].end - tok[t].aux);
                    if (cmp >= 0) {
                        if (cmp == 0) {
                            msg = "duplicate dict key";
                            pos = start;
                            goto fail;
                        }
                        if (strict) {
                            msg = "dict keys not sorted";
                            pos = start;
                            goto fail;
                        }
                        fr->unsorted = 1;
                    }
                }
                fr->lastkey = t;
            }
            goto value_done;
        }

        if (fr && fr->dict && !(fr->n & 1)) {
            msg = "dict key is not a string";
            goto fail;
        }

        switch (c) {
        case 'i': {
            size_t start = pos;
            pos++;
            int neg = 0;
            if (pos < len && p[pos] == '-') {
                neg = 1;
                pos++;
            }
            if (pos >= len) {
                msg = "unexpected end of input";
                goto fail;
            }
            c = p[pos];
            if (!IS_DIGIT(c)) {
                msg = c == 'e' && !neg ? "empty integer" : "expected digit";
                goto fail;
            }
            if (tolerant) {
                /* libtorrent's check_integer: digits, then 'e'; the value is
                 * read later (bt_bint), 0 when it does not fit. */
                size_t first = pos;
                while (pos < len && IS_DIGIT(p[pos])) {
                    if (pos - first == BT_BENC_TOLERANT_INT_DIGITS) {
                        msg = "integer overflow";
                        goto fail;
                    }
                    pos++;
                }
                if (pos >= len) {
                    msg = "unexpected end of input";
                    goto fail;
                }
                if (p[pos] != 'e') {
                    msg = "expected digit or 'e'";
                    goto fail;
                }
                goto int_done;
            }
            if (c == '0') {
                if (pos + 1 < len && p[pos + 1] != 'e') {
                    msg = IS_DIGIT(p[pos + 1]) ? "leading zero in integer"
                                                  : "expected digit or 'e'";
                    pos += IS_DIGIT(p[pos + 1]) ? 0 : 1;
                    goto fail;
                }
                if (neg) {
                    msg = "negative zero";
                    pos = start + 1;
                    goto fail;
                }
            }
            uint64_t v = 0;
            const unsigned lastmax = 7 + (unsigned)neg;
            while (pos < len && IS_DIGIT(c = p[pos])) {
                unsigned dg = c - '0';
                if (v >= I64_DIV10 && (v > I64_DIV10 || dg > lastmax)) {
                    msg = "integer overflow";
                    goto fail;
                }
                v = v * 10 + dg;
                pos++;
            }
            if (pos >= len) {
                msg = "unexpected end of input";
                goto fail;
            }
            if (c != 'e') {
                msg = "expected digit or 'e'";
                goto fail;
            }
        int_done:
            pos++;
            tok[t].start = (uint32_t)start;
            tok[t].end = (uint32_t)pos;
            tok[t].next = t + 1;
            tok[t].aux = 0;
            ntok++;
            goto value_done;
        }
        case 'l':
        case 'd':
            if (depth == BT_BENC_MAX_DEPTH) {
                msg = "nesting too deep";
                goto fail;
            }
            tok[t].start = (uint32_t)pos;   /* buf[start] gives the type */
            ntok++;
            /* end/next/aux are set at 'e'; the parent counts it then. */
            stack[depth].tok = t;
            stack[depth].n = 0;
            stack[depth].lastkey = 0;
            stack[depth].dict = c == 'd';
            stack[depth].unsorted = 0;
            depth++;
            pos++;
            continue;
        default:
            msg = "invalid character";
            goto fail;
        }

    value_done:
        /* A value (leaf or closed container) is complete: count it in its parent. */
        if (depth == 0) {
            if (pos != len && !(flags & BT_BDEC_ALLOW_TRAILING)) {
                msg = "trailing data after value";
                goto fail;
            }
            doc->ntok = ntok;
            return 0;
        }
        stack[depth - 1].n++;
        continue;
    }

fail:
    free(doc->tok);
    doc->tok = NULL;
    doc->ntok = doc->cap = 0;
    err->msg = msg;
    err->offset = pos;
    err->limit = limit_hit;
    return -1;
}

void bt_bdoc_free(bt_bdoc *doc)
{
    free(doc->tok);
    doc->tok = NULL;
    doc->ntok = doc->cap = 0;
}

int64_t bt_bint(const bt_bdoc *d, uint32_t t)
{
    const bt_btok *k = &d->tok[t];
    const unsigned char *p = (const unsigned char *)d->buf + k->start + 1;
    const unsigned char *e = (const unsigned char *)d->buf + k->end - 1;
    int neg = *p == '-';
    uint64_t v = 0;
    for (p += neg; p < e; p++) {
        unsigned dg = (unsigned)(*p - '0');
        /* Only a tolerant document has digits past int64 (up to 20): libtorrent
         * reads those as 0, and so, unlike a strict document, INT64_MIN. */
        if (v > (uint64_t)INT64_MAX / 10 || v * 10 > (uint64_t)INT64_MAX - dg + (uint64_t)neg)
            return 0;
        v = v * 10 + dg;
    }
    if (v > (uint64_t)INT64_MAX && (d->flags & BT_BDEC_TOLERANT))
        return 0;
    /* |v| <= 2^63, and 2^63 only when negative: negate in unsigned arithmetic
     * to avoid signed overflow at INT64_MIN. */
    return neg ? (int64_t)(0 - v) : (int64_t)v;
}

uint32_t bt_bdict_getn(const bt_bdoc *d, uint32_t t, const char *key, size_t klen)
{
    if (bt_btype_of(d, t) != BT_BDICT)
        return 0;
    uint32_t end = d->tok[t].next;
    for (uint32_t c = t + 1; c < end;) {
        const bt_btok *k = &d->tok[c];
        uint32_t v = k->next;
        if (k->end - k->aux == klen && memcmp(d->buf + k->aux, key, klen) == 0)
            return v;
        c = d->tok[v].next;
    }
    return 0;
}

uint32_t bt_bdict_get(const bt_bdoc *d, uint32_t t, const char *key)
{
    return bt_bdict_getn(d, t, key, strlen(key));
}

int bt_benc_int(bt_buf *b, int64_t v)
{
    char tmp[24];   /* 'i', '-', 19 digits, 'e' */
    char *q = tmp + sizeof tmp;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    *--q = 'e';
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--q = '-';
    *--q = 'i';
    return bt_buf_append(b, q, (size_t)(tmp + sizeof tmp - q));
}

int bt_benc_str(bt_buf *b, const void *s, size_t n)
{
    char tmp[24];   /* up to 20 digits of a size_t and ':' */
    char *q = tmp + sizeof tmp;
    size_t u = n;
    *--q = ':';
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    size_t hl = (size_t)(tmp + sizeof tmp - q);
    if (bt_buf_reserve(b, hl + n))
        return -1;
    memcpy(b->data + b->len, q, hl);
    if (n)
        memcpy(b->data + b->len + hl, s, n);
    b->len += hl + n;
    return 0;
}
