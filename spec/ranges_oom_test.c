/* ranges_oom_test.c: out-of-memory behaviour of ranges.c, compiled and run by
 * spec/ranges_spec.lua. ranges.c is included with malloc and realloc replaced
 * by versions that fail at chosen calls; every operation that returns -1 must
 * leave its set exactly as it was, and every one that succeeds must match a
 * byte-per-piece model.
 * Usage: ranges_oom_test [programs]; prints "ok <failures injected>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long oom_calls, oom_fail_every;   /* fail call k when k % every == 0 */
static unsigned long oom_injected;

static void *oom_malloc(size_t n)
{
    if (oom_fail_every && ++oom_calls % oom_fail_every == 0) {
        oom_injected++;
        return NULL;
    }
    return malloc(n);
}

static void *oom_realloc(void *p, size_t n)
{
    if (oom_fail_every && ++oom_calls % oom_fail_every == 0) {
        oom_injected++;
        return NULL;
    }
    return realloc(p, n);
}

#define malloc oom_malloc
#define realloc oom_realloc
#include "../csrc/core/ranges.c"
#undef malloc
#undef realloc

#define SIZE 300u
#define CHECK(c) do { if (!(c)) { fprintf(stderr, "ranges_oom_test: line %d: %s\n", __LINE__, #c); exit(1); } } while (0)

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static void same(const bt_ranges *s, const uint8_t *m)
{
    CHECK(bt_ranges_check(s));
    uint32_t c = 0;
    for (uint32_t i = 0; i < SIZE; i++) {
        CHECK(bt_ranges_has(s, i) == (m[i] != 0));
        c += m[i];
    }
    CHECK(c == s->count);
}

/* A deep copy made with the real allocator, to compare after a failure. */
static void snapshot(bt_ranges *dst, const bt_ranges *src)
{
    unsigned long every = oom_fail_every;
    oom_fail_every = 0;
    bt_ranges_init(dst, src->size);
    CHECK(bt_ranges_copy(dst, src) == 0);
    oom_fail_every = every;
}

int main(int argc, char **argv)
{
    unsigned programs = argc > 1 ? (unsigned)atoi(argv[1]) : 300;
    unsigned long failures_seen = 0;
    for (unsigned prog = 0; prog < programs; prog++) {
        oom_fail_every = 2 + prog % 5;
        bt_ranges s, o, out, before;
        uint8_t m[SIZE] = { 0 }, om[SIZE] = { 0 };
        bt_ranges_init(&s, SIZE);
        bt_ranges_init(&o, SIZE);
        bt_ranges_init(&out, SIZE);
        /* A second operand, built without failures. */
        unsigned long every = oom_fail_every;
        oom_fail_every = 0;
        for (int k = 0; k < 40; k++) {
            uint32_t a = rnd(SIZE), b = a + rnd(SIZE - a + 1);
            CHECK(bt_ranges_set_range(&o, a, b) == 0);
            memset(om + a, 1, b - a);
        }
        oom_fail_every = every;
        for (int step = 0; step < 200; step++) {
            snapshot(&before, &s);
            uint8_t mm[SIZE];
            memcpy(mm, m, SIZE);
            uint32_t a = rnd(SIZE), b = a + rnd(SIZE - a + 1), i = rnd(SIZE);
            int op = (int)rnd(10), rc;
            switch (op) {
            case 0: rc = bt_ranges_set(&s, i); if (!rc) mm[i] = 1; break;
            case 1: rc = bt_ranges_clear(&s, i); if (!rc) mm[i] = 0; break;
            case 2: rc = bt_ranges_set_range(&s, a, b); if (!rc) memset(mm + a, 1, b - a); break;
            case 3: rc = bt_ranges_clear_range(&s, a, b); if (!rc) memset(mm + a, 0, b - a); break;
            case 4: rc = bt_ranges_set_all(&s); if (!rc) memset(mm, 1, SIZE); break;
            case 5: {
                uint8_t wire[(SIZE + 7) / 8];
                for (size_t k = 0; k < sizeof wire; k++)
                    wire[k] = (uint8_t)(rnd(3) ? 0xF0u >> rnd(4) : rnd(256));
                wire[sizeof wire - 1] &= (uint8_t)(0xFF00u >> (SIZE % 8 ? SIZE % 8 : 8));   /* spare bits clear */
                rc = bt_ranges_from_wire(&s, wire, sizeof wire);
                if (!rc)
                    for (uint32_t k = 0; k < SIZE; k++)
                        mm[k] = (wire[k / 8] >> (7 - k % 8)) & 1;
                break;
            }
            case 9: {
                /* copy into a set holding something else */
                bt_ranges d, d_before;
                bt_ranges_init(&d, SIZE);
                unsigned long ev = oom_fail_every;
                oom_fail_every = 0;
                CHECK(bt_ranges_set(&d, 5) == 0);
                oom_fail_every = ev;
                snapshot(&d_before, &d);
                rc = bt_ranges_copy(&d, &s);
                if (rc) {
                    CHECK(rc == -1);
                    CHECK(bt_ranges_equal(&d, &d_before));
                    failures_seen++;
                } else {
                    CHECK(bt_ranges_equal(&d, &s));
                }
                bt_ranges_free(&d);
                bt_ranges_free(&d_before);
                rc = 0;
                break;
            }
            default: {
                /* Binary operations write into `out`: on failure out keeps
                 * its last value, on success it is the result. */
                bt_ranges out_before;
                snapshot(&out_before, &out);
                rc = op == 6 ? bt_ranges_union(&out, &s, &o)
                   : op == 7 ? bt_ranges_intersect(&out, &s, &o)
                             : bt_ranges_diff(&out, &s, &o);
                if (rc) {
                    CHECK(rc == -1);
                    CHECK(bt_ranges_equal(&out, &out_before));
                    CHECK(bt_ranges_check(&out));
                    failures_seen++;
                } else {
                    uint8_t rm[SIZE];
                    for (uint32_t k = 0; k < SIZE; k++)
                        rm[k] = op == 6 ? (m[k] | om[k]) : op == 7 ? (m[k] & om[k]) : (m[k] & !om[k]);
                    same(&out, rm);
                }
                bt_ranges_free(&out_before);
                rc = 0;
                break;
            }
            }
            if (rc) {
                CHECK(rc == -1);
                CHECK(bt_ranges_equal(&s, &before));
                failures_seen++;
            } else {
                memcpy(m, mm, SIZE);
            }
            same(&s, m);
            bt_ranges_free(&before);
        }
        bt_ranges_free(&s);
        bt_ranges_free(&o);
        bt_ranges_free(&out);
    }
    CHECK(failures_seen > 0);
    printf("ok %lu\n", failures_seen);
    return 0;
}
