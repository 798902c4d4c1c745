/* storage_mem.c: the memory backend of storage.h (bt_storage_open_memory).
 *
 * Built only on the public backend interface (bt_storage_new and the ops), as a
 * second backend proving the mapping needs nothing of the disk. The stream
 * [0, total) is cut into fixed-size chunks; chunk[k] is NULL until a write
 * touches it, then a zeroed buffer of the chunk's size (the last one is short).
 * Threads (storage.h): chunk pointers are published with a compare-and-swap and
 * read with acquire loads, so a reader on one thread and a writer on another
 * (different bytes) need no lock; a published chunk never moves or goes away
 * before close.
 */
#include "storage/storage.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_store {
    int64_t *foff;      /* stream offset of each file */
    uint32_t nfiles;
    int64_t total;
    int64_t chunk;      /* bytes per chunk */
    uint64_t nchunks;
    uint8_t **c;        /* nchunks pointers, NULL = never written */
    int64_t used;       /* bytes allocated in chunks */
} mem_store;

static int64_t chunk_len(const mem_store *m, uint64_t k)
{
    int64_t start = (int64_t)k * m->chunk;
    return m->total - start < m->chunk ? m->total - start : m->chunk;
}

static int mem_rw(bt_storage *s, uint32_t f, uint8_t *buf, const uint8_t *src, size_t n, int64_t off)
{
    mem_store *m = bt_storage_impl(s);
    if (f >= m->nfiles || off < 0 || (int64_t)n > bt_storage_file_length(s, f) - off) {
        bt_storage_seterr(s, "memory storage: span outside file %u", f);   /* mapping bug */
        return -1;
    }
    int64_t pos = m->foff[f] + off;
    while (n > 0) {
        uint64_t k = (uint64_t)(pos / m->chunk);
        int64_t within = pos - (int64_t)k * m->chunk;
        int64_t room = chunk_len(m, k) - within;
        size_t take = (int64_t)n < room ? n : (size_t)room;
        /* acquire: a chunk another thread just published is seen zeroed */
        uint8_t *c = __atomic_load_n(&m->c[k], __ATOMIC_ACQUIRE);
        if (src) {
            if (!c) {
                uint8_t *fresh = calloc(1, (size_t)chunk_len(m, k));
                if (!fresh) {
                    errno = ENOMEM;
                    bt_storage_seterr(s, "memory storage: out of memory (chunk of %lld bytes)",
                                      (long long)chunk_len(m, k));
                    return -1;
                }
                /* Two writers (the loop and the worker, different pieces of one
                 * chunk) may race to allocate it: the loser frees its copy. */
                uint8_t *expect = NULL;
                if (__atomic_compare_exchange_n(&m->c[k], &expect, fresh, false, __ATOMIC_ACQ_REL,
                                                __ATOMIC_ACQUIRE)) {
                    c = fresh;
                    __atomic_fetch_add(&m->used, chunk_len(m, k), __ATOMIC_RELAXED);
                } else {
                    free(fresh);
                    c = expect;
                }
            }
            memcpy(c + within, src, take);
            src += take;
        } else {
            if (c)
                memcpy(buf, c + within, take);
            else
                memset(buf, 0, take);
            buf += take;
        }
        pos += (int64_t)take;
        n -= take;
    }
    return 0;
}

static int mem_read(bt_storage *s, uint32_t f, void *buf, size_t n, int64_t off)
{
    return mem_rw(s, f, buf, NULL, n, off);
}

static int mem_writev(bt_storage *s, uint32_t f, const struct iovec *iov, int cnt, int64_t off)
{
    for (int i = 0; i < cnt; off += (int64_t)iov[i].iov_len, i++)
        if (mem_rw(s, f, NULL, iov[i].iov_base, iov[i].iov_len, off) < 0)
            return -1;
    return 0;
}

/* Never written chunks are "missing" (a fresh storage holds nothing, as a disk
 * storage whose files did not exist); written ones hold data to hash. */
static int mem_present(bt_storage *s, uint32_t f, int64_t off, int64_t n)
{
    mem_store *m = bt_storage_impl(s);
    if (n <= 0)
        return BT_SPAN_DATA;
    int64_t pos = m->foff[f] + off;
    uint64_t first = (uint64_t)(pos / m->chunk), last = (uint64_t)((pos + n - 1) / m->chunk);
    for (uint64_t k = first; k <= last; k++)
        if (!__atomic_load_n(&m->c[k], __ATOMIC_ACQUIRE))
            return BT_SPAN_MISSING;
    return BT_SPAN_DATA;
}

static void mem_close(bt_storage *s)
{
    mem_store *m = bt_storage_impl(s);
    if (!m)
        return;
    if (m->c)
        for (uint64_t k = 0; k < m->nchunks; k++)
            free(m->c[k]);
    free(m->c);
    free(m->foff);
    free(m);
}

static const bt_storage_ops mem_ops = {mem_read, mem_writev, mem_present, NULL, mem_close};

bt_storage *bt_storage_open_memory(const bt_meta *meta, char *err, size_t errlen)
{
    mem_store *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* bt_storage_new validates the geometry (lengths add up, piece count):
     * everything below is computed from what it accepted. */
    bt_storage *s = bt_storage_new(meta, &mem_ops, m, err, errlen);
    if (!s)
        return NULL;   /* m freed by mem_close */
    m->nfiles = bt_storage_num_files(s);
    m->foff = malloc((size_t)m->nfiles * sizeof *m->foff);
    if (!m->foff)
        goto oom;
    for (uint32_t i = 0; i < m->nfiles; i++) {
        m->foff[i] = m->total;
        m->total += bt_storage_file_length(s, i);
    }
    m->chunk = bt_storage_piece_size(s, 0);
    if (m->chunk < BT_STORAGE_MEM_MIN_CHUNK)
        m->chunk = BT_STORAGE_MEM_MIN_CHUNK;
    if (m->chunk > BT_STORAGE_MEM_MAX_CHUNK)
        m->chunk = BT_STORAGE_MEM_MAX_CHUNK;
    m->nchunks = (uint64_t)((m->total + m->chunk - 1) / m->chunk);
    m->c = calloc(m->nchunks, sizeof *m->c);
    if (!m->c)
        goto oom;
    return s;
oom:
    snprintf(err, errlen, "out of memory");
    bt_storage_close(s);
    return NULL;
}

int64_t bt_storage_memory_used(const bt_storage *s)
{
    /* the ops pointer identifies the backend: only ours points at mem_ops */
    if (!s || bt_storage_ops_of(s) != &mem_ops)
        return -1;
    return __atomic_load_n(&((const mem_store *)bt_storage_impl(s))->used, __ATOMIC_RELAXED);
}
