/* bencode_fuzz: libFuzzer target for bt_bdecode.
 *
 * Decodes the input strictly and with BT_BDEC_ALLOW_UNSORTED. On success it
 * walks every token through the public accessors, checking the layout
 * invariants of bencode.h, and re-encodes the document with bt_benc_* (dict
 * keys sorted). A strictly accepted input is canonical, so the re-encoding must
 * equal it byte for byte; an input accepted only as unsorted must re-encode to
 * a document the strict decoder accepts. The token limit is checked against
 * the count: with max_tokens below it, decoding fails with "too many tokens"
 * at the first byte of the first token over the limit. BT_BDEC_TOLERANT (the
 * .torrent mode) accepts all that unsorted accepts, with the same tokens, and
 * its every token stays inside the input. Any violation abort()s.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec/bencode.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

typedef struct key { const char *p; size_t n; uint32_t tok; } key;

static int key_cmp(const void *a, const void *b)
{
    const key *x = a, *y = b;
    int c = memcmp(x->p, y->p, x->n < y->n ? x->n : y->n);
    if (c)
        return c;
    return x->n < y->n ? -1 : x->n > y->n;
}

/* Re-encode token t (and check it); returns the index after its subtree. */
static uint32_t walk(const bt_bdoc *d, uint32_t t, bt_buf *out, int depth)
{
    CHECK(t < d->ntok && depth <= BT_BENC_MAX_DEPTH);
    const bt_btok *k = &d->tok[t];
    CHECK(k->start < k->end && k->end <= d->len);
    CHECK(k->next > t && k->next <= d->ntok);
    switch (bt_btype_of(d, t)) {
    case BT_BINT: {
        CHECK(k->next == t + 1);
        CHECK(bt_bfirst(d, t) == 0);
        size_t before = out->len;
        CHECK(bt_benc_int(out, bt_bint(d, t)) == 0);
        /* integers are validated strictly in both modes: canonical bytes */
        CHECK(out->len - before == k->end - k->start);
        CHECK(memcmp(out->data + before, d->buf + k->start, k->end - k->start) == 0);
        return t + 1;
    }
    case BT_BSTR: {
        CHECK(k->next == t + 1);
        CHECK(bt_bfirst(d, t) == 0);
        size_t n;
        const char *s = bt_bstr(d, t, &n);
        CHECK(s == d->buf + k->aux && k->aux <= k->end);
        CHECK(bt_benc_str(out, s, n) == 0);
        return t + 1;
    }
    case BT_BLIST: {
        CHECK(bt_buf_putc(out, 'l') == 0);
        uint32_t count = 0, expect = t + 1;
        for (uint32_t c = bt_bfirst(d, t); c; c = bt_bnext(d, t, c)) {
            CHECK(c == expect);
            expect = walk(d, c, out, depth + 1);
            count++;
        }
        CHECK(count == k->aux && expect == k->next);
        CHECK(bt_buf_putc(out, 'e') == 0);
        return k->next;
    }
    case BT_BDICT: {
        CHECK(k->aux % 2 == 0);
        uint32_t nk = k->aux / 2, i = 0;
        key *keys = malloc((size_t)nk * sizeof *keys + 1);
        CHECK(keys);
        uint32_t count = 0;
        for (uint32_t c = bt_bfirst(d, t); c; c = bt_bnext(d, t, c), count++) {
            if (count % 2 == 0) {
                CHECK(bt_btype_of(d, c) == BT_BSTR);
                keys[i].p = bt_bstr(d, c, &keys[i].n);
                keys[i].tok = c;
                i++;
            }
        }
        CHECK(count == k->aux && i == nk);
        qsort(keys, nk, sizeof *keys, key_cmp);
        CHECK(bt_buf_putc(out, 'd') == 0);
        for (i = 0; i < nk; i++) {
            /* keys are unique in both modes */
            CHECK(i == 0 || key_cmp(&keys[i - 1], &keys[i]) < 0);
            uint32_t v = bt_bdict_getn(d, t, keys[i].p, keys[i].n);
            CHECK(v == d->tok[keys[i].tok].next);
            CHECK(bt_benc_str(out, keys[i].p, keys[i].n) == 0);
            walk(d, v, out, depth + 1);
        }
        CHECK(bt_buf_putc(out, 'e') == 0);
        free(keys);
        CHECK(bt_bdict_get(d, t, "\xff\xff no such key") == 0 || nk > 0);
        return k->next;
    }
    default:
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    bt_bdoc strict, loose;
    bt_berr e1, e2;
    int r1 = bt_bdecode(&strict, buf, size, 0, BT_BENC_ANY_TOKENS, &e1);
    int r2 = bt_bdecode(&loose, buf, size, BT_BDEC_ALLOW_UNSORTED, BT_BENC_ANY_TOKENS, &e2);
    if (r1)
        CHECK(e1.msg && e1.offset <= size && strict.tok == NULL && strict.ntok == 0 && e1.limit == 0);
    if (r2)
        CHECK(e2.msg && e2.offset <= size && loose.tok == NULL && e2.limit == 0);
    /* strict acceptance implies unsorted acceptance with the same tokens */
    if (!r1) {
        CHECK(!r2 && loose.ntok == strict.ntok);
        for (uint32_t i = 0; i < strict.ntok; i++) {   /* field by field: padding is undefined */
            const bt_btok *a = &strict.tok[i], *b = &loose.tok[i];
            CHECK(a->start == b->start && a->end == b->end && a->next == b->next &&
                  a->aux == b->aux);
        }
    }
    {
        bt_bdoc tol;
        bt_berr e5;
        int r5 = bt_bdecode(&tol, buf, size, BT_BDEC_TOLERANT, BT_BENC_ANY_TOKENS, &e5);
        if (r5)
            CHECK(e5.msg && e5.offset <= size && tol.tok == NULL && r2 != 0);
        if (!r2)
            CHECK(!r5 && tol.ntok == loose.ntok);
        if (!r5) {
            CHECK(tol.tok[0].start == 0 && tol.tok[0].end == size);
            int64_t acc = 0;
            for (uint32_t i = 0; i < tol.ntok; i++) {
                const bt_btok *k = &tol.tok[i];
                CHECK(k->start < k->end && k->end <= size && k->next > i && k->next <= tol.ntok);
                bt_btype ty = bt_btype_of(&tol, i);
                if (ty == BT_BINT)
                    acc ^= bt_bint(&tol, i);
                else if (ty == BT_BSTR)
                    CHECK(k->aux > k->start && k->aux <= k->end);
                if (!r2)
                    CHECK(k->start == loose.tok[i].start && k->end == loose.tok[i].end
                          && k->next == loose.tok[i].next && k->aux == loose.tok[i].aux);
            }
            if (!r2)   /* where both accept, integers are canonical and read the same,
                          but for INT64_MIN, which libtorrent (so tolerant) reads as 0 */
                for (uint32_t i = 0; i < tol.ntok; i++)
                    if (bt_btype_of(&tol, i) == BT_BINT) {
                        int64_t a = bt_bint(&tol, i), b = bt_bint(&loose, i);
                        CHECK(a == b || (b == INT64_MIN && a == 0));
                    }
            (void)acc;
            bt_bdoc_free(&tol);
        }
    }
    if (!r2) {
        /* A limit of exactly the count passes; one less stops at the last token. */
        uint32_t n = loose.ntok;
        bt_bdoc lim;
        bt_berr e4;
        CHECK(bt_bdecode(&lim, buf, size, BT_BDEC_ALLOW_UNSORTED, n, &e4) == 0 && lim.ntok == n);
        bt_bdoc_free(&lim);
        uint32_t max = n > 1 ? (uint32_t)(data[0] % (n - 1)) + 1 : 0;   /* 1 .. n - 1 */
        if (max) {
            CHECK(bt_bdecode(&lim, buf, size, BT_BDEC_ALLOW_UNSORTED, max, &e4) == -1);
            CHECK(e4.limit == max && e4.offset == loose.tok[max].start && lim.tok == NULL);
            CHECK(strcmp(e4.msg, "too many tokens") == 0);
        }
        bt_buf out = { 0 };
        CHECK(walk(&loose, 0, &out, 0) == loose.ntok);
        CHECK(loose.tok[0].start == 0 && loose.tok[0].end == size);
        if (!r1) {
            CHECK(out.len == size && memcmp(out.data, data, size) == 0);
        } else {
            bt_bdoc again;
            bt_berr e3;
            CHECK(bt_bdecode(&again, (const char *)out.data, out.len, 0, BT_BENC_ANY_TOKENS, &e3) == 0);
            CHECK(again.ntok == loose.ntok);
            bt_bdoc_free(&again);
        }
        bt_buf_free(&out);
    }
    bt_bdoc_free(&strict);
    bt_bdoc_free(&loose);
    return 0;
}
