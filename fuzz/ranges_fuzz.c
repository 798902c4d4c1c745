/* ranges_fuzz.c: differential fuzzer for ranges.c against a byte-per-piece model.
 *
 * The input is a program: byte 0-1 pick the universe size (small, so the
 * fuzzer hits edges), then each 5-byte record is an operation with two
 * 16-bit operands. After every operation the invariant, count, membership of
 * every index, next_set/next_clear and the wire export are compared with the
 * model, and binary operations are checked against a second set.
 * Built by `make fuzz` with libFuzzer; with -DRANGES_FUZZ_MAIN it is a plain
 * program running seeded random programs (quick check without clang).
 */
#include "core/ranges.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Small universes make collisions between ranges likely; 600 still crosses
 * several 64-bit words of the wire import. */
#define FUZZ_MAX_SIZE 600u

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "ranges_fuzz: %s:%d: %s\n", __FILE__, __LINE__, #c); abort(); } } while (0)

typedef struct { bt_ranges s; uint8_t m[FUZZ_MAX_SIZE]; } pair;

static void verify(const pair *p)
{
    const bt_ranges *s = &p->s;
    uint32_t n = s->size;
    CHECK(bt_ranges_check(s));
    uint32_t count = 0;
    for (uint32_t i = 0; i < n; i++) {
        count += p->m[i];
        CHECK(bt_ranges_has(s, i) == (p->m[i] != 0));
    }
    CHECK(count == s->count);
    CHECK(bt_ranges_count_range(s, 0, n) == count);
    /* count_range over every [a, b) of a small universe, by prefix sums. */
    if (n <= 64) {
        uint32_t pre[65] = { 0 };
        for (uint32_t i = 0; i < n; i++)
            pre[i + 1] = pre[i] + p->m[i];
        for (uint32_t a = 0; a <= n; a++)
            for (uint32_t b = a; b <= n; b++)
                CHECK(bt_ranges_count_range(s, a, b) == pre[b] - pre[a]);
    }
    /* next_set / next_clear from every position, computed backwards. */
    int64_t ns = -1, nc = -1;
    CHECK(bt_ranges_next_set(s, n) == -1);
    CHECK(bt_ranges_next_clear(s, n) == -1);
    for (uint32_t i = n; i-- > 0;) {
        if (p->m[i]) ns = i; else nc = i;
        CHECK(bt_ranges_next_set(s, i) == ns);
        CHECK(bt_ranges_next_clear(s, i) == nc);
    }
    uint8_t wire[(FUZZ_MAX_SIZE + 7) / 8 + 1];
    size_t len = bt_ranges_wire_len(s);
    CHECK(len == (n + 7) / 8);
    wire[len] = 0xA5;   /* export must not write past its length */
    bt_ranges_to_wire(s, wire);
    CHECK(wire[len] == 0xA5);
    for (uint32_t i = 0; i < len * 8; i++) {
        int bit = (wire[i / 8] >> (7 - i % 8)) & 1;
        CHECK(bit == (i < n ? p->m[i] : 0));
    }
    bt_ranges t;
    bt_ranges_init(&t, n);
    CHECK(bt_ranges_from_wire(&t, wire, len) == 0);
    CHECK(bt_ranges_equal(&t, s));
    bt_ranges_free(&t);
}

static void apply(pair *p, int op, uint32_t x, uint32_t y)
{
    uint32_t n = p->s.size;
    if (n == 0 && op < 4)
        op = 6;
    uint32_t a = x % (n + 1), b = y % (n + 1);
    if (a > b) { uint32_t t = a; a = b; b = t; }
    switch (op) {
    case 0:
        CHECK(bt_ranges_set(&p->s, x % n) == 0);
        p->m[x % n] = 1;
        break;
    case 1:
        CHECK(bt_ranges_clear(&p->s, x % n) == 0);
        p->m[x % n] = 0;
        break;
    case 2:
        CHECK(bt_ranges_set_range(&p->s, a, b) == 0);
        memset(p->m + a, 1, b - a);
        break;
    case 3:
        CHECK(bt_ranges_clear_range(&p->s, a, b) == 0);
        memset(p->m + a, 0, b - a);
        break;
    case 4:
        CHECK(bt_ranges_set_all(&p->s) == 0);
        memset(p->m, 1, n);
        break;
    case 5:
        bt_ranges_clear_all(&p->s);
        memset(p->m, 0, n);
        break;
    default:
        break;
    }
    /* Out-of-range arguments are refused with -2 and change nothing (verify
     * compares with the model right after). */
    CHECK(bt_ranges_set(&p->s, n + (x & 3)) == -2);
    CHECK(bt_ranges_clear(&p->s, UINT32_MAX - (y & 3)) == -2);
    CHECK(bt_ranges_set_range(&p->s, a, n + 1 + (y & 7)) == -2);
    if (a < b)
        CHECK(bt_ranges_clear_range(&p->s, b, a) == -2);
}

static void binops(const pair *p, const pair *q)
{
    uint32_t n = p->s.size;
    /* next_diff / next_common from every position, computed backwards. */
    int64_t nd = -1, nb = -1;
    CHECK(bt_ranges_next_diff(&p->s, &q->s, n) == -1);
    CHECK(bt_ranges_next_common(&p->s, &q->s, n) == -1);
    for (uint32_t i = n; i-- > 0;) {
        if (p->m[i] && !q->m[i]) nd = i;
        if (p->m[i] && q->m[i]) nb = i;
        CHECK(bt_ranges_next_diff(&p->s, &q->s, i) == nd);
        CHECK(bt_ranges_next_common(&p->s, &q->s, i) == nb);
    }
    bt_ranges o;
    pair want;
    for (int op = 0; op < 3; op++) {
        bt_ranges_init(&o, 0);
        /* Start from a non-empty out to check it is replaced, not merged. */
        if (op == 1)
            CHECK(bt_ranges_copy(&o, &q->s) == 0);
        int rc = op == 0 ? bt_ranges_union(&o, &p->s, &q->s)
               : op == 1 ? bt_ranges_intersect(&o, &p->s, &q->s)
                         : bt_ranges_diff(&o, &p->s, &q->s);
        CHECK(rc == 0);
        want.s = o;
        for (uint32_t i = 0; i < n; i++)
            want.m[i] = op == 0 ? (p->m[i] | q->m[i])
                      : op == 1 ? (p->m[i] & q->m[i])
                                : (p->m[i] & !q->m[i]);
        verify(&want);
        bt_ranges_free(&o);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
    if (len < 2)
        return 0;
    uint32_t n = ((uint32_t)data[0] << 8 | data[1]) % (FUZZ_MAX_SIZE + 1);
    pair *ps = calloc(2, sizeof *ps);
    CHECK(ps);
    bt_ranges_init(&ps[0].s, n);
    bt_ranges_init(&ps[1].s, n);
    for (size_t i = 2; i + 5 <= len; i += 5) {
        const uint8_t *d = data + i;
        pair *p = &ps[d[0] >> 7];
        uint32_t x = (uint32_t)d[1] << 8 | d[2], y = (uint32_t)d[3] << 8 | d[4];
        int op = d[0] & 7;
        if (op == 7) {
            binops(&ps[0], &ps[1]);
            CHECK(bt_ranges_equal(&ps[0].s, &ps[1].s) == (memcmp(ps[0].m, ps[1].m, n) == 0));
            continue;
        }
        if (op == 6) {
            /* Import arbitrary bytes; a wrong spare bit must be refused intact. */
            uint8_t wire[(FUZZ_MAX_SIZE + 7) / 8];
            size_t wl = bt_ranges_wire_len(&p->s);
            for (size_t k = 0; k < wl; k++)
                wire[k] = (uint8_t)(x * 131 + y * 7 + k * (y | 1));
            bt_ranges before;
            bt_ranges_init(&before, 0);
            CHECK(bt_ranges_copy(&before, &p->s) == 0);
            int rc = bt_ranges_from_wire(&p->s, wire, wl);
            uint32_t spare = (uint32_t)(wl * 8 - n);
            if (spare && (wire[wl - 1] & ((1u << spare) - 1))) {
                CHECK(rc == -3);
                CHECK(bt_ranges_equal(&before, &p->s));
            } else {
                CHECK(rc == 0);
                for (uint32_t k = 0; k < n; k++)
                    p->m[k] = (wire[k / 8] >> (7 - k % 8)) & 1;
            }
            if (wl)
                CHECK(bt_ranges_from_wire(&p->s, wire, wl - 1) == -2);
            CHECK(bt_ranges_from_wire(&p->s, wire, wl + 1) == -2);
            bt_ranges_free(&before);
        } else {
            apply(p, op, x, y);
        }
        verify(p);
    }
    bt_ranges_free(&ps[0].s);
    bt_ranges_free(&ps[1].s);
    free(ps);
    return 0;
}

#ifdef RANGES_FUZZ_MAIN
int main(int argc, char **argv)
{
    unsigned runs = argc > 1 ? (unsigned)atoi(argv[1]) : 2000;
    srand(12345);
    uint8_t buf[2 + 5 * 200];
    for (unsigned r = 0; r < runs; r++) {
        size_t len = 2 + 5 * (size_t)(rand() % 200);
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        /* Mostly tiny universes, where every edge case lives. */
        if (r % 3 == 0) buf[0] = 0, buf[1] = (uint8_t)(rand() % 20);
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("ranges_fuzz: %u random programs ok\n", runs);
    return 0;
}
#endif
