/* metainfo_fuzz.c: bt_meta_parse on arbitrary bytes. On success, every field
 * and every path component is read and checked against the promises of
 * metainfo.h, so a broken invariant crashes here instead of in the engine. */
#include <stdlib.h>
#include <string.h>

#include "codec/metainfo.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

/* A component of a disk path: what storage opens under the download folder. */
static void check_safe(const char *p, size_t n)
{
    CHECK(n > 0 && n <= BT_META_MAX_NAME);
    CHECK(!(n == 1 && p[0] == '.'));
    CHECK(!(n == 2 && p[0] == '.' && p[1] == '.'));
    CHECK(!memchr(p, '/', n) && !memchr(p, '\\', n) && !memchr(p, '\0', n));
}

/* Every component of a '/'-joined disk path is safe. */
static void check_disk_path(const char *p, size_t n)
{
    size_t st = 0;
    for (size_t j = 0; j <= n; j++)
        if (j == n || p[j] == '/') {
            check_safe(p + st, j - st);
            st = j + 1;
        }
}

static char path_buf[BT_META_MAX_DISK_PATH + 1];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (!buf)
        return 0;
    memcpy(buf, data, size);
    bt_meta m;
    const char *err = NULL;
    size_t off = 0;
    if (bt_meta_parse(&m, buf, size, &err, &off)) {
        CHECK(err && *err);
        CHECK(off <= size);
        bt_meta_free(&m);
        free(buf);
        return 0;
    }
    check_safe(m.disk_name.p, m.disk_name.n);
    CHECK(m.piece_length > 0 && m.piece_length <= (int64_t)BT_META_MAX_PIECE_LEN);
    CHECK(m.total_length > 0);
    CHECK(m.num_pieces == (uint32_t)((m.total_length - 1) / m.piece_length + 1));
    CHECK((const char *)m.pieces >= buf && (const char *)m.pieces + (size_t)m.num_pieces * 20 <= buf + size);
    CHECK(m.info_tok < m.doc.ntok);
    CHECK(m.num_files >= 1 && m.num_files <= BT_META_MAX_FILES);
    CHECK(m.multi_file || m.num_files == 1);
    int64_t sum = 0, piece_sum = 0;
    unsigned acc = 0;
    for (uint32_t f = 0; f < m.num_files; f++) {
        const bt_meta_file *file = &m.files[f];
        CHECK(file->length >= 0 && file->offset == sum);
        uint32_t ncomp = bt_meta_ncomp(&m, f);
        CHECK(ncomp >= 1 || file->pad);
        sum += file->length;
        for (uint32_t k = 0; k < ncomp; k++) {
            bt_str s = bt_meta_path_comp(&m, f, k);
            CHECK(s.p >= buf && s.p + s.n <= buf + size);
            acc += s.n ? (unsigned char)s.p[0] : 0;
        }
        size_t n = bt_meta_disk_path(&m, f, path_buf, sizeof path_buf);
        CHECK(n <= BT_META_MAX_DISK_PATH);
        check_disk_path(path_buf, n);
        bt_str link = bt_meta_link_target(&m, f);
        CHECK(!link.n || (file->flags & BT_META_F_SYMLINK));
        CHECK(link.n <= BT_META_MAX_DISK_PATH);
        CHECK(!(file->flags & BT_META_F_SYMLINK) || file->length == 0);
        acc += file->pad;
    }
    CHECK(sum == m.total_length);
    for (uint32_t i = 0; i < m.num_pieces; i++) {
        int64_t ps = bt_meta_piece_size(&m, i);
        CHECK(ps > 0 && ps <= m.piece_length);
        piece_sum += ps;
        acc += m.pieces[(size_t)i * 20 + 19];
    }
    CHECK(piece_sum == m.total_length);
    acc += m.info_hash[0] + (unsigned)m.is_private;
    bt_meta_free(&m);
    free(buf);
    return (int)(acc & 0);
}
