/* mem.h: memory for the engine's large tables and its many small records.
 *
 * Large tables indexed by piece (availability counts, piece-to-record index: 4 and 8
 * bytes a piece, megabytes at a million pieces) are read at random by every pick:
 * on 4 KiB pages nearly every access is a TLB miss. bt_mem_huge asks the kernel for
 * transparent huge pages on the 2 MiB-aligned part of such a block (a hint: with
 * THP "never" it does nothing; "madvise", Debian's and this machine's setting, needs
 * it; "always" does it anyway).
 *
 * A slab hands out zeroed records of one size from chunks that grow from 64 KiB to
 * 2 MiB (the 2 MiB ones aligned and hinted huge), and keeps freed records for reuse:
 * with 16 KiB pieces a pick starts 64 pieces in progress, and records from malloc
 * took a page fault every ~20 of them (measured: 9 of the 20 us of such a pick).
 * Memory goes back to the system only at bt_slab_free: a slab holds its peak.
 * Pure C; not thread-safe (one owner, the loop thread).
 */
#ifndef BT_MEM_H
#define BT_MEM_H

#include <stddef.h>
#include <stdint.h>

void bt_mem_huge(void *p, size_t n);

typedef struct bt_slab {
    size_t size;          /* bytes per record, a multiple of 16 */
    void *free;           /* freed records, linked through their first word */
    void *chunks;         /* chunks, linked through their first word */
    char *cur;            /* unused tail of the newest chunk */
    size_t left;          /* its bytes */
    size_t next_chunk;    /* bytes of the next chunk */
    uint64_t bytes;       /* all chunks */
} bt_slab;

void bt_slab_init(bt_slab *s, size_t size);
/* A zeroed record, or NULL out of memory. */
void *bt_slab_alloc(bt_slab *s);
/* p from bt_slab_alloc on the same slab. */
void bt_slab_put(bt_slab *s, void *p);
/* Every chunk back to the system; the slab is empty and may be used again. */
void bt_slab_free(bt_slab *s);

#endif
