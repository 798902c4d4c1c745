/* metainfo.h: .torrent parsing and validation (BEP 3, 47 pad files). Pure C
 * over bencode.h and sha1.h: no I/O, no Lua. Top-level optional keys (announce,
 * announce-list, url-list, comment...) are not interpreted here; callers read
 * them from m->doc (lua/bt/torrent.lua does, and checks their types).
 *
 * The info-hash is SHA-1 over the exact original bytes of the info dictionary.
 * Every string in the result points into the caller's buffer (lengths given), or
 * into the meta's own allocations; nothing is NUL-terminated unless noted.
 *
 * What bt_meta_parse accepts (everything else is an error with an offset):
 * - keys in any order (real torrents have unsorted keys), no duplicates;
 * - name: a non-empty string that is a safe path component (see below);
 * - piece length: 1 .. BT_META_MAX_PIECE_LEN (not necessarily a power of two);
 * - pieces: a string of 20-byte hashes, exactly ceil(total / piece length) of them;
 * - exactly one of `length` (single file) and `files` (multi-file, at least one);
 * - every length >= 0, the sum fits in int64 and is > 0: a torrent with no data
 *   has nothing to download or verify and zero pieces, so it is refused (as
 *   libtorrent does), which spares the engine a zero-piece special case;
 * - every path: a list of 1 .. BT_META_MAX_PATH_DEPTH safe components;
 * - a safe component is a string of 1 .. BT_META_MAX_NAME bytes that is not "." or "..", and contains
 *   no '/', no '\' (a separator on Windows: a torrent made there must not climb
 *   out of the folder when moved to a system that honours it) and no NUL; so no
 *   path is absolute and none climbs out of the download folder;
 * - no two non-pad files with the same path, and no file whose path is a folder
 *   of another file ("a" and "a/b"): storage could not lay them out. Pad files
 *   (BEP 47, `attr` containing 'p') are exempt: they are never written, and pad
 *   files of equal size share one name by convention;
 * - `private`, when present, is an integer (non-zero means private);
 *   `attr`, when present, is a string. Other keys are ignored, including BEP 52
 *   (v2) keys: a v2-only torrent fails for lack of `pieces`.
 */
#ifndef BT_METAINFO_H
#define BT_METAINFO_H

#include <stddef.h>
#include <stdint.h>

#include "codec/bencode.h"

/* Limits, each with its reason. A .torrent is hostile input: these hold the
 * largest real torrents (libtorrent, under most clients, refuses a .torrent
 * over 10 MB, 3 M bencode tokens or 2 M pieces by default; qBittorrent sets
 * 100 MiB and 10 M tokens) and bound what parsing one may cost (see Memory
 * below). Counts are decimal so the error messages can quote them. */
#define BT_META_MAX_SIZE       (64u << 20)  /* 64 MiB of .torrent: 2 M pieces are 40 MiB of
                                               hashes; a list of 1 M files ~60 MB */
#define BT_META_MAX_TOKENS     10000000     /* bencode values (qBittorrent's limit): a file takes
                                               5 + its path depth, so MAX_FILES fit 4 deep */
#define BT_META_MAX_FILES      1000000      /* a real list that long is ~60 MB, near MAX_SIZE */
#define BT_META_MAX_PATH_DEPTH 64           /* components in one file path */
#define BT_META_MAX_NAME 255                /* bytes in one path component (NAME_MAX) */
#define BT_META_MAX_PIECE_LEN  (1u << 28)   /* 256 MiB pieces: no client makes larger */
#define BT_META_MAX_PIECES     2097152      /* 2^21 (libtorrent's limit): 32 TiB in 16 MiB pieces,
                                               40 MiB of hashes */

typedef struct bt_str { const char *p; size_t n; } bt_str;

typedef struct bt_meta_file {   /* 24 bytes: there may be a million */
    int64_t length;
    int64_t offset;           /* offset of the file's first byte in the torrent's byte stream */
    uint32_t path_tok;        /* token of the path list (multi-file) or 0 for single-file (path = name) */
    uint8_t ncomp;            /* components in the path (<= BT_META_MAX_PATH_DEPTH) */
    uint8_t pad;              /* BEP 47 padding file ("attr" holds 'p'): 1, else 0 */
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
    int is_private;           /* info.private is a non-zero integer (BEP 27) */
    int multi_file;           /* `files` list (1) or single `length` (0) */
    bt_meta_file *files;
    uint32_t num_files;       /* 1 for a single-file torrent */
} bt_meta;

/* Parse and validate. Returns 0, or -1 with *err (static message) and *err_off
 * (byte offset of the offending value, or of the bencode error; for a missing
 * key, the offset of the dictionary that lacks it). buf must outlive m. On
 * failure m is left empty (bt_meta_free is still safe to call).
 * The limits are refused with: "torrent larger than 64 MiB" (offset
 * BT_META_MAX_SIZE, before anything is read), "too many tokens (limit N)" (at
 * the first value over BT_META_MAX_TOKENS: decoding stops there), "too many
 * files (limit N)", "too many pieces (limit N)".
 *
 * Memory, beside the caller's buffer: 16 bytes a bencode token (kept with m;
 * a typical file list has 7-8 bytes a token, so ~2x the input), 24 bytes a file
 * (kept), and while the paths are checked 32-64 bytes per file (freed before
 * returning). At the limits that is at most 160 MB of tokens, however the
 * input is built. */
int  bt_meta_parse(bt_meta *m, const char *buf, size_t len, const char **err, size_t *err_off);
void bt_meta_free(bt_meta *m);

/* Component k (< files[f].ncomp) of file f's path, O(1). For a single-file
 * torrent, the one component is the name. For a multi-file torrent the name is
 * the folder holding the paths and is not a component. */
bt_str bt_meta_path_comp(const bt_meta *m, uint32_t f, uint32_t k);
/* Length of piece i < num_pieces (the last one may be short). */
int64_t bt_meta_piece_size(const bt_meta *m, uint32_t i);

#endif
