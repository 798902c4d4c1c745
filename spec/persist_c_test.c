/* persist_c_test.c: the C API the engine calls for issue 4, under ASan+UBSan,
 * run by spec/ratelimit_spec.lua:
 *     persist_c_test TORRENT_FILE STREAM_FILE TMPDIR
 * - bt_storage_open_memory: geometry errors free everything; writes across
 *   files; check; bt_storage_memory_used (and -1 for a disk storage);
 * - bt_bucket_*: chains with NULL entries, the default burst, wait above the
 *   burst, NaN and negative inputs;
 * - bt_write_atomic / bt_fsync_dir: content replaced, errors reported.
 * Prints "all passed" or FAIL lines.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec/metainfo.h"
#include "core/ratelimit.h"
#include "storage/storage.h"

#include "c_test.h"

static void test_memory(const char *torrent, const char *stream_path, const char *tmp)
{
    size_t tlen, slen;
    char *tor = slurp(torrent, &tlen), *stream = slurp(stream_path, &slen);
    CHECK(tor && stream, "fixtures");
    if (!tor || !stream)
        return;
    bt_meta m;
    const char *perr;
    size_t off;
    if (bt_meta_parse(&m, tor, tlen, &perr, &off)) {
        printf("FAIL meta: %s at %zu\n", perr, off);
        failures++;
        return;
    }
    char err[256];

    /* a metainfo whose lengths do not add up: refused, nothing leaked */
    int64_t keep = m.files[0].length;
    m.files[0].length = keep + 1;
    CHECK(bt_storage_open_memory(&m, err, sizeof err) == NULL, "bad geometry accepted");
    CHECK(strlen(err) > 0, "no message for bad geometry");
    m.files[0].length = keep;

    /* a total near INT64_MAX: refused without signed overflow (UBSan) in the
     * piece-count check, however the caller built the metainfo */
    int64_t keep_total = m.total_length;
    m.total_length = INT64_MAX;
    CHECK(bt_storage_open_memory(&m, err, sizeof err) == NULL, "huge total accepted");
    m.total_length = keep_total;

    bt_storage *s = bt_storage_open_memory(&m, err, sizeof err);
    CHECK(s != NULL, "open_memory: %s", err);
    bt_meta_free(&m);
    free(tor);
    if (!s) {
        free(stream);
        return;
    }
    CHECK(bt_storage_memory_used(s) == 0, "fresh: %lld", (long long)bt_storage_memory_used(s));
    bt_ranges have;
    bt_ranges_init(&have, bt_storage_num_pieces(s));
    CHECK(bt_storage_check(s, &have) == 0 && have.count == 0, "fresh check: %u", have.count);
    int64_t plen = bt_storage_piece_size(s, 0);
    for (uint32_t p = 0; p < bt_storage_num_pieces(s); p++) {
        int64_t size = bt_storage_piece_size(s, p);
        for (int64_t b = 0; b < size; b += 777) {
            size_t n = (size_t)(size - b < 777 ? size - b : 777);
            CHECK(bt_storage_write(s, p, (uint32_t)b, stream + p * plen + b, n) == 0, "write: %s",
                  bt_storage_error(s));
        }
    }
    CHECK(bt_storage_memory_used(s) > 0 && bt_storage_memory_used(s) <= (int64_t)slen + 0,
          "used %lld for %zu bytes", (long long)bt_storage_memory_used(s), slen);
    CHECK(bt_storage_check(s, &have) == 0 && have.count == bt_storage_num_pieces(s), "full: %u",
          have.count);
    CHECK(bt_storage_sync(s) == 0, "sync");
    bt_ranges_free(&have);
    bt_storage_close(s);

    /* a disk storage is not a memory one */
    tor = slurp(torrent, &tlen);
    if (tor && bt_meta_parse(&m, tor, tlen, &perr, &off) == 0) {
        bt_storage *d = bt_storage_open(&m, tmp, err, sizeof err);
        CHECK(d && bt_storage_memory_used(d) == -1, "disk storage: %s", d ? "used != -1" : err);
        bt_storage_close(d);
        bt_meta_free(&m);
    }
    free(tor);
    free(stream);
}

static void test_buckets(void)
{
    bt_bucket a, b;
    bt_bucket_init(&a, 1000, 0);
    CHECK(a.burst == BT_BUCKET_MIN_BURST, "default burst %f", a.burst);
    bt_bucket_init(&b, 1e6, 0);
    CHECK(b.burst == 1e6, "default burst %f", b.burst);
    bt_bucket_init(&a, NAN, -5);
    CHECK(a.rate == 0 && a.burst == 0, "NaN/negative are 0 (unlimited)");
    CHECK(bt_bucket_take(&a, 123) == 123 && bt_bucket_wait(&a, 123) == 0, "unlimited");
    CHECK(bt_bucket_take(&a, -1) == 0, "negative take");

    bt_bucket_init(&a, 100, 1000);
    bt_bucket_init(&b, 1000, 500);
    bt_bucket *chain[3] = {&a, NULL, &b};
    bt_bucket_refill(&a, 0);
    bt_bucket_refill(&b, 0);
    CHECK(bt_bucket_take_chain(chain, 3, 800) == 500, "chain grants the minimum");
    CHECK(bt_bucket_available(&a) == 500 && bt_bucket_available(&b) == 0, "both charged");
    CHECK(fabs(bt_bucket_wait_chain(chain, 3, 500) - 0.5) < 1e-9, "chain wait is the longest: %f",
          bt_bucket_wait_chain(chain, 3, 500));
    CHECK(fabs(bt_bucket_wait(&a, 1 << 30) - 5) < 1e-9, "wait above the burst waits for a full bucket");
    bt_bucket_spend_chain(chain, 3, 100);
    CHECK(bt_bucket_available(&a) == 400 && bt_bucket_available(&b) == -100, "spend chain");
    bt_bucket_refill(&a, NAN);
    bt_bucket_refill(&a, INFINITY);
    CHECK(bt_bucket_available(&a) == 400, "non-finite times ignored");
    bt_bucket_spend(&a, INT64_MAX);
    CHECK(bt_bucket_available(&a) < 0 && isfinite(a.tokens), "debt bounded and finite");
}

static void test_atomic(const char *tmp)
{
    char path[4096], err[512];
    snprintf(path, sizeof path, "%s/atomic", tmp);
    CHECK(bt_write_atomic(path, "hello", 5, err, sizeof err) == 0, "write: %s", err);
    CHECK(bt_write_atomic(path, "bye", 3, err, sizeof err) == 0, "rewrite: %s", err);
    size_t n;
    char *back = slurp(path, &n);
    CHECK(back && n == 3 && memcmp(back, "bye", 3) == 0, "content");
    free(back);
    CHECK(bt_write_atomic("", "x", 1, err, sizeof err) == -1, "empty path");
    CHECK(bt_write_atomic("/nonexistent-dir-bt/x", "x", 1, err, sizeof err) == -1, "missing dir");
    CHECK(bt_fsync_dir(tmp, err, sizeof err) == 0, "fsync_dir: %s", err);
    CHECK(bt_fsync_dir("/nonexistent-dir-bt", err, sizeof err) == -1, "fsync missing dir");
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return 2;
    test_memory(argv[1], argv[2], argv[3]);
    test_buckets();
    test_atomic(argv[3]);
    return c_test_finish();
}
