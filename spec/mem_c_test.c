/* mem_c_test.c: core/mem.c's slab under seeded random allocations and frees, for
 * several record sizes. Every record must be zeroed, 16-aligned, apart from every
 * other live one, and keep what was written into it; freed records come back
 * before the slab grows; bt_slab_free leaves an empty slab that works again (ASan
 * sees any overlap, overrun or leak). bt_mem_huge on odd ranges must be harmless.
 * Built and run by spec/mem_spec.lua: mem_c_test SEED ROUNDS. */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "core/mem.h"

#include "c_test.h"

static uint64_t rng;
static uint32_t rnd(uint32_t n)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return n ? (uint32_t)((rng >> 33) % n) : 0;
}

#define LIVE 5000

static void run(size_t size, int rounds)
{
    static unsigned char *live[LIVE];
    static uint32_t tag[LIVE];
    uint32_t n = 0;
    bt_slab s;
    bt_slab_init(&s, size);
    CHECK(s.size >= size && s.size % 16 == 0, "size %zu rounded to %zu", size, s.size);
    for (int r = 0; r < rounds; r++) {
        if (n < LIVE && (n == 0 || rnd(3) != 0)) {
            uint64_t before = s.bytes;
            bool had_free = s.free != NULL;
            unsigned char *p = bt_slab_alloc(&s);
            CHECK(p != NULL, "alloc %d failed", r);
            if (!p)
                break;
            CHECK(((uintptr_t)p & 15) == 0, "record %p not 16-aligned", (void *)p);
            CHECK(!had_free || s.bytes == before, "the slab grew with a freed record to hand");
            size_t zero = 0;
            while (zero < s.size && p[zero] == 0)
                zero++;
            CHECK(zero == s.size, "record not zeroed at byte %zu of %zu", zero, s.size);
            for (uint32_t i = 0; i < n; i++)
                CHECK(p + s.size <= live[i] || live[i] + s.size <= p, "records overlap");
            tag[n] = rnd(255) + 1;
            memset(p, (int)tag[n], s.size);
            live[n++] = p;
        } else {
            uint32_t i = rnd(n);
            for (size_t b = 0; b < s.size; b++)
                if (live[i][b] != tag[i]) {
                    CHECK(0, "record %u lost its bytes at %zu", i, b);
                    break;
                }
            bt_slab_put(&s, live[i]);
            live[i] = live[--n];
            tag[i] = tag[n];
        }
    }
    bt_slab_free(&s);
    CHECK(s.bytes == 0 && s.free == NULL && s.chunks == NULL, "bt_slab_free left something");
    void *p = bt_slab_alloc(&s);
    CHECK(p != NULL, "a freed slab does not work again");
    bt_slab_free(&s);
}

int main(int argc, char **argv)
{
    rng = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    int rounds = argc > 2 ? atoi(argv[2]) : 20000;
    size_t sizes[] = { 1, 8, 16, 170, 176, 1000, 70000, 3u << 20 };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        run(sizes[i], sizes[i] > 100000 ? 40 : rounds);
    static char buf[5u << 20];
    bt_mem_huge(buf, sizeof buf);
    bt_mem_huge(buf + 1, 3);
    bt_mem_huge(buf, 0);
    return c_test_finish();
}
