/* metadata.c: the BEP 9 metadata fetch state (metadata.h). */
#include "engine/metadata.h"

#include <stdlib.h>
#include <string.h>

#include "core/sha1.h"

void bt_md_init(bt_mdfetch *f, const uint8_t info_hash[20])
{
    memset(f, 0, sizeof *f);
    memcpy(f->info_hash, info_hash, 20);
}

int bt_md_start(bt_mdfetch *f, uint32_t size, double now)
{
    if (size == 0 || size > BT_MD_MAX_SIZE)
        return -2;
    bt_md_reset(f);
    uint32_t n = (size + BT_UTM_PIECE - 1) / BT_UTM_PIECE;
    f->buf = malloc(size);
    f->pc = calloc(n, sizeof *f->pc);
    if (!f->buf || !f->pc) {
        bt_md_reset(f);
        return -1;
    }
    f->size = size;
    f->npieces = n;
    f->progress_at = now;
    return 0;
}

void bt_md_reset(bt_mdfetch *f)
{
    free(f->buf);
    free(f->pc);
    f->buf = NULL;
    f->pc = NULL;
    f->size = f->npieces = f->nhave = 0;
    f->done = false;
}

void bt_md_free(bt_mdfetch *f)
{
    bt_md_reset(f);
}

uint32_t bt_md_piece_len(const bt_mdfetch *f, uint32_t i)
{
    return i + 1 < f->npieces ? BT_UTM_PIECE : f->size - (f->npieces - 1) * BT_UTM_PIECE;
}

int64_t bt_md_pick(const bt_mdfetch *f, double now, uint64_t *was)
{
    *was = 0;
    int64_t late = -1;
    for (uint32_t i = 0; i < f->npieces; i++) {
        const bt_mdpiece *p = &f->pc[i];
        if (p->state == BT_MD_NEED)
            return i;
        if (late < 0 && p->state == BT_MD_ASKED && now - p->asked > BT_MD_TIMEOUT)
            late = i;
    }
    if (late >= 0)
        *was = f->pc[late].from;
    return late;
}

void bt_md_asked(bt_mdfetch *f, uint32_t piece, uint64_t uid, double now)
{
    f->pc[piece] = (bt_mdpiece){ .from = uid, .asked = now, .state = BT_MD_ASKED };
}

int bt_md_got(bt_mdfetch *f, uint32_t piece, const uint8_t *data, uint64_t uid, double now)
{
    bt_mdpiece *p = &f->pc[piece];
    if (p->state == BT_MD_HAVE || f->done)
        return 1;
    memcpy(f->buf + (size_t)piece * BT_UTM_PIECE, data, bt_md_piece_len(f, piece));
    *p = (bt_mdpiece){ .from = uid, .state = BT_MD_HAVE };
    f->nhave++;
    f->progress_at = now;
    if (f->nhave < f->npieces)
        return 0;
    uint8_t h[20];
    if (bt_sha1(f->buf, f->size, h) != 0 || memcmp(h, f->info_hash, 20) != 0)
        return -1;
    f->done = true;
    return 2;
}

uint32_t bt_md_release(bt_mdfetch *f, uint64_t uid)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->npieces; i++)
        if (f->pc[i].state == BT_MD_ASKED && f->pc[i].from == uid) {
            f->pc[i] = (bt_mdpiece){ 0 };
            n++;
        }
    return n;
}

uint32_t bt_md_senders(const bt_mdfetch *f, uint64_t *out, uint32_t cap)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->npieces; i++) {
        if (f->pc[i].state != BT_MD_HAVE)
            continue;
        bool seen = false;
        for (uint32_t k = 0; k < n && !seen; k++)
            seen = out[k] == f->pc[i].from;
        if (!seen && n < cap)
            out[n++] = f->pc[i].from;
    }
    return n;
}
