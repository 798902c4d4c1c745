/* mem.c: huge-page hints and a slab of fixed-size records (mem.h). */
#include "core/mem.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define HUGE (2u << 20)
#define CHUNK_MIN (64u << 10)
#define CHUNK_HDR 16u   /* the link to the next chunk, padded to keep records 16-aligned */

void bt_mem_huge(void *p, size_t n)
{
#ifdef MADV_HUGEPAGE
    uintptr_t a = ((uintptr_t)p + HUGE - 1) & ~(uintptr_t)(HUGE - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(HUGE - 1);
    if (e > a)
        (void)madvise((void *)a, e - a, MADV_HUGEPAGE);   /* a hint: failure changes nothing */
#else
    (void)p;
    (void)n;
#endif
}

void bt_slab_init(bt_slab *s, size_t size)
{
    memset(s, 0, sizeof *s);
    size = size < sizeof(void *) ? sizeof(void *) : size;
    s->size = (size + 15) & ~(size_t)15;
    s->next_chunk = CHUNK_MIN;
}

static int grow(bt_slab *s)
{
    size_t n = s->next_chunk;
    while (n < CHUNK_HDR + s->size)
        n *= 2;
    void *c = NULL;
    if (n >= HUGE) {
        if (posix_memalign(&c, HUGE, n) != 0)
            c = NULL;
        else
            bt_mem_huge(c, n);
    } else {
        c = malloc(n);
    }
    if (!c)
        return -1;
    *(void **)c = s->chunks;
    s->chunks = c;
    s->cur = (char *)c + CHUNK_HDR;
    s->left = n - CHUNK_HDR;
    s->bytes += n;
    if (s->next_chunk < HUGE)
        s->next_chunk *= 2;
    return 0;
}

void *bt_slab_alloc(bt_slab *s)
{
    void *p;
    if (s->free) {
        p = s->free;
        s->free = *(void **)p;
    } else {
        if (s->left < s->size && grow(s) != 0)
            return NULL;
        p = s->cur;
        s->cur += s->size;
        s->left -= s->size;
    }
    memset(p, 0, s->size);
    return p;
}

void bt_slab_put(bt_slab *s, void *p)
{
    *(void **)p = s->free;
    s->free = p;
}

void bt_slab_free(bt_slab *s)
{
    size_t size = s->size;
    while (s->chunks) {
        void *next = *(void **)s->chunks;
        free(s->chunks);
        s->chunks = next;
    }
    bt_slab_init(s, size);
}
