/* direct_c_test.c: writes that go around the page cache (storage.h,
 * BT_STORAGE_DIRECT_*), under ASan+UBSan, run by spec/storage_spec.lua:
 *     direct_c_test TORRENT_FILE STREAM_FILE DIR REQUIRE_DIRECT
 * The torrent has 256 KiB pieces over files whose boundaries are not 4 KiB-aligned.
 * Pieces are written whole from aligned buffers (bt_storage_write, then one
 * bt_storage_write_run of two pieces from two buffers, the vectored path), one from
 * an unaligned buffer, one block by
 * block; every piece must read back and verify and sync must succeed (the spec then
 * compares the files with the stream). With REQUIRE_DIRECT 1 (a file system with O_DIRECT) a
 * descriptor opened with O_DIRECT must exist after the writes: the aligned spans
 * took that path, the unaligned ones (file boundaries) the buffered one.
 * Prints "all passed" or FAIL lines.
 */
#define _GNU_SOURCE   /* O_DIRECT */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/metainfo.h"
#include "storage/storage.h"

#include "c_test.h"

/* A descriptor of this process opened with O_DIRECT (its fdinfo flags, octal). */
static int have_direct_fd(void)
{
    DIR *dir = opendir("/proc/self/fdinfo");
    if (!dir)
        return 0;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(dir)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[300], line[128];
        snprintf(path, sizeof path, "/proc/self/fdinfo/%s", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        while (fgets(line, sizeof line, f)) {
            unsigned long flags;
            if (sscanf(line, "flags: %lo", &flags) == 1 && (flags & O_DIRECT))
                found = 1;
        }
        fclose(f);
    }
    closedir(dir);
    return found;
}

int main(int argc, char **argv)
{
    if (argc != 5)
        return 2;
    size_t tlen, slen;
    char *tor = slurp(argv[1], &tlen), *stream = slurp(argv[2], &slen);
    if (!tor || !stream)
        return 2;
    bt_meta m;
    const char *perr;
    size_t off;
    if (bt_meta_parse(&m, tor, tlen, &perr, &off)) {
        printf("FAIL meta: %s at %zu\n", perr, off);
        return 1;
    }
    char err[512];
    bt_storage *s = bt_storage_open(&m, argv[3], err, sizeof err);
    CHECK(s != NULL, "open: %s", err);
    if (!s)
        return 1;
    uint32_t n = bt_storage_num_pieces(s);
    int64_t plen = bt_storage_piece_size(s, 0);
    CHECK(n >= 6 && plen == 256 * 1024, "layout: %u pieces of %lld", n, (long long)plen);
    uint8_t *buf = aligned_alloc(BT_STORAGE_DIRECT_ALIGN, 2 * (size_t)plen);
    uint8_t *odd = malloc((size_t)plen + 1);
    for (uint32_t p = 0; p < n && buf && odd; p++) {
        size_t size = (size_t)bt_storage_piece_size(s, p);
        const char *src = stream + (size_t)p * (size_t)plen;
        if (p == 0) {   /* pieces 0 and 1 in one run */
            /* from two buffers, as the worker does: piece 1's is the second half of buf */
            memcpy(buf + plen, src, (size_t)plen);
            memcpy(buf, src + plen, (size_t)plen);
            struct iovec run[2] = { { buf + plen, (size_t)plen }, { buf, (size_t)plen } };
            CHECK(bt_storage_write_run(s, 0, run, 2) == 0, "run 0-1: %s", bt_storage_error(s));
        } else if (p == 1) {
            continue;
        } else if (p == 2) {   /* an unaligned buffer: buffered */
            memcpy(odd + 1, src, size);
            CHECK(bt_storage_write(s, p, 0, odd + 1, size) == 0, "piece %u: %s", p, bt_storage_error(s));
        } else if (p == 3) {   /* 16 KiB blocks: below BT_STORAGE_DIRECT_MIN */
            for (size_t b = 0; b < size; b += 16384) {
                size_t k = size - b < 16384 ? size - b : 16384;
                memcpy(buf, src + b, k);
                CHECK(bt_storage_write(s, p, (uint32_t)b, buf, k) == 0, "piece %u+%zu", p, b);
            }
        } else {
            memcpy(buf, src, size);
            CHECK(bt_storage_write(s, p, 0, buf, size) == 0, "piece %u: %s", p, bt_storage_error(s));
        }
    }
    if (atoi(argv[4]))
        CHECK(have_direct_fd(), "no descriptor with O_DIRECT after aligned writes");
    for (uint32_t p = 0; p < n && odd; p++) {
        size_t size = (size_t)bt_storage_piece_size(s, p);
        CHECK(bt_storage_read(s, p, 0, odd, size) == 0, "read %u", p);
        CHECK(memcmp(odd, stream + (size_t)p * (size_t)plen, size) == 0, "piece %u differs", p);
        CHECK(bt_storage_verify(s, p) == 1, "verify %u", p);
    }
    CHECK(bt_storage_sync(s) == 0, "sync: %s", bt_storage_error(s));
    bt_storage_close(s);

    free(buf);
    free(odd);
    bt_meta_free(&m);
    free(tor);
    free(stream);
    return c_test_finish();
}
