/* metainfo.h: .torrent parsing and validation (BEP 3, 12, 19). Pure C over
 * bencode.h and OpenSSL's SHA-1: no I/O, no Lua.
 *
 * The info-hash is SHA-1 over the exact original bytes of the info dictionary.
 * Every string in the result points into the caller's buffer (lengths given), or
 * into the meta's own allocations; nothing is NUL-terminated unless noted.
 */
#ifndef BT_METAINFO_H
#define BT_METAINFO_H

#include <stddef.h>
#include <stdint.h>

#include "bencode.h"

#define BT_META_MAX_FILES      (1u << 22)   /* 4 M files: far past any real torrent */
#define BT_META_MAX_PATH_DEPTH 64           /* components in one file path */
#define BT_META_MAX_PIECE_LEN  (1u << 28)   /* 256 MiB pieces: no client makes larger */
#define BT_META_MAX_PIECES     (1u << 24)   /* 16 M pieces */

typedef struct bt_str { const char *p; size_t n; } bt_str;

typedef struct bt_meta_file {
    uint32_t path_tok;        /* token of the path list (multi-file) or 0 for single-file (path = name) */
    uint32_t ncomp;           /* components in the path */
    int64_t length;
    int64_t offset;           /* offset of the file's first byte in the torrent's byte stream */
    unsigned pad : 1;         /* BEP 47 padding file ("attr" holds 'p') */
} bt_meta_file;

typedef struct bt_meta {
    bt_bdoc doc;              /* tokens of the whole file (keeps pointing into buf) */
    uint8_t info_hash[20];
    uint32_t info_tok;        /* token of the info dict */
    bt_str name;
    int64_t piece_length;
    uint32_t num_pieces;
    const uint8_t *pieces;    /* num_pieces * 20 bytes of SHA-1 */
    int64_t total_length;
    int is_private;
    int multi_file;
    bt_meta_file *files;
    uint32_t num_files;
} bt_meta;

/* Parse and validate. Returns 0, or -1 with *err (static message) and *err_off
 * (byte offset of the offending value, or of the bencode error). buf must outlive m. */
int  bt_meta_parse(bt_meta *m, const char *buf, size_t len, const char **err, size_t *err_off);
void bt_meta_free(bt_meta *m);

/* Component k of file f's path (for a single-file torrent: the name). */
bt_str bt_meta_path_comp(const bt_meta *m, uint32_t f, uint32_t k);
/* Length of piece i (the last one may be short). */
int64_t bt_meta_piece_size(const bt_meta *m, uint32_t i);

#endif
