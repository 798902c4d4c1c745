/* piece.c: a torrent's pieces in progress, and the engine's door to its storage.
 *
 * Bytes: every read and write of piece data goes through bt_storage_read/write on the
 * torrent's bt_storage t->st (storage.c: the file mapping, the openat/O_NOFOLLOW walk,
 * the descriptor cache; or storage_mem.c). There is no other file layer.
 * Partials: per-block request counts and received flags, the SHA-1 context fed
 * in order as blocks arrive; blocks that came out of order are read back from
 * disk when the gap closes.
 */
#define _GNU_SOURCE
#include "engine/session.h"
#include "engine/piece.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

uint32_t bt_piece_nblocks(const bt_torrent *t, uint32_t piece)
{
    int64_t sz = bt_piece_size(t, piece);
    return (uint32_t)((sz + BT_BLOCK_SIZE - 1) / BT_BLOCK_SIZE);
}

int64_t bt_piece_size(const bt_torrent *t, uint32_t piece)
{
    if (piece + 1 < t->npieces)
        return t->piece_len;
    return t->total - (int64_t)t->piece_len * piece;
}

uint32_t bt_block_len(const bt_torrent *t, uint32_t piece, uint32_t block)
{
    int64_t sz = bt_piece_size(t, piece);
    int64_t left = sz - (int64_t)block * BT_BLOCK_SIZE;
    return left >= BT_BLOCK_SIZE ? BT_BLOCK_SIZE : (uint32_t)left;
}

uint32_t bt_avail(const bt_torrent *t, uint32_t piece)
{
    return t->avail[piece] + t->nseeds;
}

/* ---- bytes ---- */

/* Hash-check what the storage holds, except pieces already had (trusted from
 * resume data, or loaded). The storage skips without reading what cannot be
 * good: spans of files that were missing or too short when opened (among them
 * files it just created), and holes (compared with the hash of zeros). */
int bt_files_check(bt_torrent *t, char *err, size_t errlen)
{
    for (uint32_t i = 0; i < t->npieces; i++) {
        if (bt_ranges_has(&t->have, i))
            continue;
        int good = bt_storage_check_piece(t->st, i);
        if (good < 0) {
            snprintf(err, errlen, "checking piece %u: %s", i, bt_storage_error(t->st));
            return -1;
        }
        if (good && bt_files_had(t, i) != 0) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Piece i is had (verified at start): counted and taken out of the pool. */
int bt_files_had(bt_torrent *t, uint32_t i)
{
    if (bt_ranges_set(&t->have, i) || bt_ranges_clear(&t->unrequested, i))
        return -1;
    t->have_bytes += (uint64_t)bt_piece_size(t, i);
    return 0;
}

/* ---- partials ---- */

bt_partial *bt_partial_find(bt_torrent *t, uint32_t piece)
{
    if (t->pmap)   /* every received block looks its piece up: O(1) when we can */
        return t->pmap[piece];
    for (bt_partial *p = t->partials; p; p = p->next)
        if (p->piece == piece)
            return p;
    return NULL;
}

bt_partial *bt_partial_get(bt_torrent *t, uint32_t piece)
{
    bt_partial *p = bt_partial_find(t, piece);
    if (p)
        return p;
    uint32_t nb = bt_piece_nblocks(t, piece);
    p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->piece = piece;
    p->nblocks = nb;
    p->nfree = nb;
    p->req = calloc(nb ? nb : 1, 1);
    p->got = calloc(nb ? nb : 1, 1);
    p->from = calloc(nb ? nb : 1, sizeof *p->from);
    p->t = t;
    p->sha = EVP_MD_CTX_new();
    if (!p->req || !p->got || !p->from || !p->sha ||
        !EVP_DigestInit_ex(p->sha, EVP_sha1(), NULL) || bt_ranges_clear(&t->unrequested, piece)) {
        free(p->req);
        free(p->got);
        free(p->from);
        EVP_MD_CTX_free(p->sha);
        free(p);
        return NULL;
    }
    if (t->pmap)
        t->pmap[piece] = p;
    /* newest last: partial(peer) finishes the oldest pieces first */
    bt_partial **pp = &t->partials;
    while (*pp)
        pp = &(*pp)->next;
    *pp = p;
    t->npartials++;
    return p;
}

/* Unlink and free; back_to_pool: the piece is requestable again (hash failure). */
void bt_partial_drop(bt_torrent *t, bt_partial *p, bool back_to_pool)
{
    for (bt_partial **pp = &t->partials; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    t->npartials--;
    if (t->pmap)
        t->pmap[p->piece] = NULL;
    if (back_to_pool)
        bt_ranges_set(&t->unrequested, p->piece);   /* OOM here leaves the piece unpickable until restart */
    if (p->buf) {
        t->bufmem -= (uint64_t)t->piece_len;
        if (t->npool < t->poolcap)
            t->pool[t->npool++] = p->buf;
        else
            free(p->buf);
    }
    free(p->req);
    free(p->got);
    free(p->from);
    EVP_MD_CTX_free(p->sha);
    free(p);
}

/* Store block b of the piece: into the piece buffer when there is one (allocated on
 * the first block, within BT_PIECE_BUF_TOTAL), else straight to disk. Then feed the
 * hash with every block now in order. Returns 0 or -1 (disk error, errno set). */
int bt_partial_store(bt_torrent *t, bt_partial *p, uint32_t b, const uint8_t *data, uint32_t len,
                     uint8_t *scratch)
{
    if (!p->buf && p->nreceived == 0 && t->piece_len <= BT_PIECE_BUF_MAX &&
        t->bufmem + t->piece_len <= BT_PIECE_BUF_TOTAL) {
        if (!t->pool) {   /* every buffer is piece_len bytes, so any spare fits any piece */
            t->poolcap = BT_PIECE_POOL_BYTES / t->piece_len;
            t->pool = t->poolcap ? calloc(t->poolcap, sizeof *t->pool) : NULL;
            if (!t->pool)
                t->poolcap = 0;
        }
        p->buf = t->npool > 0 ? t->pool[--t->npool] : malloc(t->piece_len);
        if (p->buf)
            t->bufmem += t->piece_len;
    }
    if (p->buf) {
        memcpy(p->buf + (size_t)b * BT_BLOCK_SIZE, data, len);
        if (t->s->worker)
            return 0;   /* the worker hashes the whole piece */
        while (p->hashed < p->nblocks && (p->got[p->hashed] || p->hashed == b)) {
            EVP_DigestUpdate(p->sha, p->buf + (size_t)p->hashed * BT_BLOCK_SIZE,
                             bt_block_len(t, p->piece, p->hashed));
            p->hashed++;
        }
        return 0;
    }
    if (bt_storage_write(t->st, p->piece, b * BT_BLOCK_SIZE, data, len) != 0)
        return -1;
    return bt_partial_hash(t, p, b, data, scratch);
}

/* A verified piece held in memory goes to disk in one write. */
int bt_partial_flush(bt_torrent *t, bt_partial *p)
{
    if (!p->buf)
        return 0;
    return bt_storage_write(t->st, p->piece, 0, p->buf, (size_t)bt_piece_size(t, p->piece));
}

/* Feed blocks [hashed, ...) that are on disk in order; `data` is block `b`'s bytes
 * straight from the read buffer when b == hashed. */
int bt_partial_hash(bt_torrent *t, bt_partial *p, uint32_t b, const uint8_t *data, uint8_t *scratch)
{
    if (b == p->hashed) {
        EVP_DigestUpdate(p->sha, data, bt_block_len(t, p->piece, b));
        p->hashed++;
        while (p->hashed < p->nblocks && p->got[p->hashed]) {
            uint32_t len = bt_block_len(t, p->piece, p->hashed);
            if (bt_storage_read(t->st, p->piece, p->hashed * BT_BLOCK_SIZE, scratch, len) != 0)
                return -1;
            EVP_DigestUpdate(p->sha, scratch, len);
            p->hashed++;
        }
    }
    return 0;
}

/* All blocks in: true if the SHA-1 matches. */
bool bt_partial_verify(bt_torrent *t, bt_partial *p)
{
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned len = 0;
    if (p->hashed != p->nblocks)
        return false;
    EVP_DigestFinal_ex(p->sha, md, &len);
    return memcmp(md, t->meta->pieces + (size_t)p->piece * 20, 20) == 0;
}
