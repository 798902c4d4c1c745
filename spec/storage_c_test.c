/* storage_c_test.c: the backend vtable of storage.h with a minimal in-memory
 * backend (one buffer per file), to show the mapping needs nothing of the disk
 * (the real one is csrc/storage_mem.c). Built with ASan+UBSan and run by
 * spec/storage_spec.lua:
 *     storage_c_test TORRENT_FILE STREAM_FILE
 * writes the stream in odd-sized blocks across file boundaries, reads it back,
 * verifies every piece and runs the check; then again in runs of three pieces, each
 * piece from its own buffer (bt_storage_write_run: buffers cut at file boundaries).
 * Prints "all passed" or FAIL lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/metainfo.h"
#include "storage/storage.h"

#include "c_test.h"

typedef struct mem {
    uint32_t n;
    uint8_t **buf;
    int writes;
} mem;

static int mem_read(bt_storage *s, uint32_t f, void *p, size_t n, int64_t off)
{
    mem *m = bt_storage_impl(s);
    memcpy(p, m->buf[f] + off, n);
    return 0;
}

static int mem_writev(bt_storage *s, uint32_t f, const struct iovec *iov, int cnt, int64_t off)
{
    mem *m = bt_storage_impl(s);
    for (int i = 0; i < cnt; off += (int64_t)iov[i].iov_len, i++) {
        size_t n = iov[i].iov_len;
        if (bt_storage_file_is_pad(s, f) || off < 0 || n == 0 || off + (int64_t)n > bt_storage_file_length(s, f)) {
            bt_storage_seterr(s, "mapping broke its promise on file %u", f);
            return -1;
        }
        memcpy(m->buf[f] + off, iov[i].iov_base, n);
    }
    m->writes++;
    return 0;
}

static int mem_present(bt_storage *s, uint32_t f, int64_t off, int64_t n)
{
    (void)s, (void)f, (void)off, (void)n;
    return BT_SPAN_DATA;
}

static void mem_close(bt_storage *s)
{
    mem *m = bt_storage_impl(s);
    if (!m)
        return;
    for (uint32_t i = 0; i < m->n; i++)
        free(m->buf[i]);
    free(m->buf);
    free(m);
}

static const bt_storage_ops mem_ops = {mem_read, mem_writev, mem_present, NULL, mem_close};

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    size_t tlen, slen;
    char *tor = slurp(argv[1], &tlen), *stream = slurp(argv[2], &slen);
    if (!tor || !stream)
        return 2;
    bt_meta m;
    const char *err;
    size_t off;
    if (bt_meta_parse(&m, tor, tlen, &err, &off)) {
        printf("FAIL meta: %s at %zu\n", err, off);
        return 1;
    }
    CHECK((int64_t)slen == m.total_length, "stream length");
    mem *mb = calloc(1, sizeof *mb);
    mb->n = m.num_files;
    mb->buf = calloc(m.num_files, sizeof *mb->buf);
    for (uint32_t i = 0; i < m.num_files; i++)
        mb->buf[i] = calloc(1, (size_t)m.files[i].length + 1);
    char e[256];
    bt_storage *s = bt_storage_new(&m, &mem_ops, mb, e, sizeof e);
    CHECK(s != NULL, "bt_storage_new: %s", e);
    bt_meta_free(&m);   /* the storage copied what it needs */
    free(tor);
    if (!s)
        return 1;

    bt_ranges have;
    bt_ranges_init(&have, bt_storage_num_pieces(s));
    CHECK(bt_storage_check(s, &have) == 0 && have.count == 0, "empty check: %u", have.count);

    /* 1000-byte blocks: not a divisor of the piece or file sizes. */
    int64_t plen = bt_storage_piece_size(s, 0);
    for (uint32_t p = 0; p < bt_storage_num_pieces(s); p++) {
        int64_t size = bt_storage_piece_size(s, p);
        for (int64_t b = 0; b < size; b += 1000) {
            size_t n = (size_t)(size - b < 1000 ? size - b : 1000);
            CHECK(bt_storage_write(s, p, (uint32_t)b, stream + p * plen + b, n) == 0, "write %u+%lld: %s",
                  p, (long long)b, bt_storage_error(s));
        }
    }
    char *back = malloc((size_t)plen);
    for (uint32_t p = 0; p < bt_storage_num_pieces(s); p++) {
        int64_t size = bt_storage_piece_size(s, p);
        CHECK(bt_storage_read(s, p, 0, back, (size_t)size) == 0, "read %u", p);
        CHECK(memcmp(back, stream + p * plen, (size_t)size) == 0, "piece %u differs", p);
        CHECK(bt_storage_verify(s, p) == 1, "verify %u", p);
    }
    CHECK(bt_storage_check(s, &have) == 0 && have.count == bt_storage_num_pieces(s), "full check: %u",
          have.count);

    /* again in runs of three pieces, each from its own buffer, over zeroed files */
    for (uint32_t i = 0; i < mb->n; i++)
        memset(mb->buf[i], 0, (size_t)bt_storage_file_length(s, i));
    uint32_t np = bt_storage_num_pieces(s);
    for (uint32_t p = 0; p < np; p += 3) {
        struct iovec iov[3];
        int k = 0;
        for (uint32_t q = p; q < np && k < 3; q++, k++) {
            iov[k].iov_len = (size_t)bt_storage_piece_size(s, q);
            iov[k].iov_base = malloc(iov[k].iov_len);
            memcpy(iov[k].iov_base, stream + q * plen, iov[k].iov_len);
        }
        CHECK(bt_storage_write_run(s, p, iov, k) == 0, "run from %u: %s", p, bt_storage_error(s));
        for (int j = 0; j < k; j++)
            free(iov[j].iov_base);
    }
    for (uint32_t p = 0; p < np; p++) {
        int64_t size = bt_storage_piece_size(s, p);
        CHECK(bt_storage_read(s, p, 0, back, (size_t)size) == 0 && memcmp(back, stream + p * plen, (size_t)size) == 0,
              "piece %u differs after the runs", p);
    }
    free(back);
    struct iovec two[2] = { { stream, (size_t)plen }, { stream, (size_t)plen } };
    CHECK(bt_storage_write_run(s, np - 1, two, 2) == -1, "a run past the end accepted");
    CHECK(bt_storage_write_run(s, 0, two, BT_STORAGE_RUN_MAX + 1) == -1, "a run of too many buffers accepted");
    CHECK(bt_storage_write(s, bt_storage_num_pieces(s), 0, "x", 1) == -1, "piece out of range accepted");
    CHECK(bt_storage_write(s, 0, (uint32_t)plen, "x", 1) == -1, "block past the piece accepted");
    CHECK(strlen(bt_storage_error(s)) > 0, "no message");
    CHECK(bt_storage_sync(s) == 0, "sync without a sync op");
    bt_ranges_free(&have);
    bt_storage_close(s);
    free(stream);
    return c_test_finish();
}
