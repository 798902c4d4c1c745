/* metainfo.h: .torrent parsing and validation (BEP 3, 47 pad files). Pure C
 * over bencode.h and sha1.h: no I/O, no Lua. Top-level optional keys (announce,
 * announce-list, url-list, comment...) are not interpreted here; callers read
 * them from m->doc (lua/bt/torrent.lua does, and checks their types).
 *
 * The info-hash is SHA-1 over the exact original bytes of the info dictionary.
 * Every string in the result points into the caller's buffer (lengths given), or
 * into the meta's own allocations; nothing is NUL-terminated unless noted.
 *
 * What bt_meta_parse accepts: what libtorrent 2.0 loads (v1 and the v1 part of
 * hybrid torrents), made safe the way it makes it safe; everything else is an
 * error with an offset.
 * - bytes after the top-level dictionary are ignored (m->trailing counts them);
 *   the info-hash covers exactly the raw info dictionary;
 * - the bencode libtorrent's decoder tolerates (BT_BDEC_TOLERANT, bencode.h):
 *   keys in any order (real torrents have unsorted keys); duplicate keys, the
 *   first one counting everywhere (libtorrent's dict_find finds the first: so
 *   the first "info" is the one hashed); leading zeros in integers and string
 *   lengths, "-0", integers of up to 20 digits (a value outside int64 is 0);
 * - name (`name.utf-8` preferred when it is a string): any string; its disk
 *   form (m->disk_name) is sanitized like a path component (below). A
 *   single-file torrent whose name sanitizes to nothing is refused; a
 *   multi-file one is then named after its info-hash (40 hex digits), as
 *   libtorrent does;
 * - piece length: 1 .. BT_META_MAX_PIECE_LEN (not necessarily a power of two);
 *   pieces over 16 MiB (BT_PIECE_BUF_MAX) go block by block to storage and are
 *   hashed from it in chunks, so their size costs no memory;
 * - pieces: a string of 20-byte hashes, exactly ceil(total / piece length) of them;
 * - `files` when it is a list (at least one file; a `length` beside it is then
 *   ignored), otherwise a single-file `length`;
 * - every length >= 0, the sum fits in int64 and is > 0: a torrent with no data
 *   has nothing to download or verify and zero pieces, so it is refused (as
 *   libtorrent does), which spares the engine a zero-piece special case;
 * - a file's path (`path.utf-8` preferred when it is a list): a list of at least
 *   one string (a pad file may have none), as many as the token limit allows
 *   (libtorrent has no other limit); the torrent's own components are kept as
 *   they are (bt_meta_path_comp) and the path used on disk is sanitized
 *   (bt_meta_disk_path), and must then be at most BT_META_MAX_DISK_PATH bytes
 *   (so at most BT_META_MAX_PATH_DEPTH components), else the torrent is refused
 *   with "file path too long on disk (limit 4095 bytes)": no file system takes a
 *   longer path (PATH_MAX), libtorrent loads such a torrent but cannot create
 *   the file (ENAMETOOLONG); storage also refuses a file whose path with the
 *   download folder reaches PATH_MAX:
 *   - '/' and '\' are removed from a component (libtorrent 2.0 does the same, so
 *     both lay out the same names; an absolute "/etc" becomes "etc"), as are the
 *     Unicode direction overrides U+202A..U+202E, U+200E, U+200F;
 *   - control bytes (< 0x20, NUL included) and bytes that are not valid UTF-8
 *     become '_';
 *   - a component that is then empty, "." or ".." is dropped (so "a/../b" is
 *     "a/b" and cannot climb out); a path with nothing left is "_";
 *   - a component over BT_META_MAX_NAME bytes is cut to that length at a
 *     character boundary, keeping its extension (the last '.' and up to 15 bytes
 *     after it);
 *   no other byte is changed (names are compared byte for byte: case matters, as
 *   on the file systems this runs on);
 * - two non-pad files with the same disk path, or a file whose disk path is a
 *   folder of another file's: the later file (for the folder case: the file) is
 *   renamed "base.N.ext", N = 1, 2, ... the first name no other file or folder
 *   uses (libtorrent's rule);
 * - BEP 47 `attr` (ignored unless a string): 'p' pad file (also a path holding
 *   "_____padding_file_", BitComet's, as libtorrent does); 'x' executable; 'h'
 *   hidden; 'l' symlink: its length is 0 whatever `length` says (it may be
 *   absent); with a `symlink path` list it is a link to that path, relative to
 *   the torrent's folder, resolved lexically ("." and "" skipped, ".." goes up);
 *   a target that leaves the folder, is absolute, or is the folder itself makes
 *   the link skipped (BT_META_F_LINK_OUT): storage never creates it. Without a
 *   `symlink path` it is an ordinary empty file (libtorrent's reading);
 * - `private` is private when it is a non-zero integer; other types are ignored,
 *   as are all other keys, including BEP 52 (v2) keys: a v2-only torrent fails
 *   for lack of `pieces`.
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
#define BT_META_MAX_NAME 255                /* bytes in one path component (NAME_MAX) */
#define BT_META_MAX_DISK_PATH  4095         /* bytes of a disk path under the torrent's folder
                                               (PATH_MAX - 1: no longer path can be opened) */
#define BT_META_MAX_PATH_DEPTH 2048         /* components of a disk path: each takes 2 bytes
                                               at least ("a/"), so this follows from the above */
#define BT_META_MAX_PIECE_LEN  1073741823   /* libtorrent's limit (INT_MAX / 2): no client
                                               makes pieces over 256 MiB, but it loads them */
#define BT_META_MAX_PIECES     2097152      /* 2^21 (libtorrent's limit): 32 TiB in 16 MiB pieces,
                                               40 MiB of hashes */

typedef struct bt_str { const char *p; size_t n; } bt_str;

/* bt_meta_file.flags */
#define BT_META_F_PAD      0x01u   /* pad file (pad is 1 too): never on disk, reads as zeros */
#define BT_META_F_EXEC     0x02u   /* 'x': created with the executable bits */
#define BT_META_F_HIDDEN   0x04u   /* 'h': nothing to do on POSIX (names are what they are) */
#define BT_META_F_SYMLINK  0x08u   /* 'l' with a symlink path: no data, length 0 */
#define BT_META_F_LINK_OUT 0x10u   /* a symlink whose target leaves the folder: not created */
#define BT_META_F_DISK     0x20u   /* the disk path differs from the torrent's */
#define BT_META_F_RENAMED  0x40u   /* ... because another file had it: ".N" was added */
#define BT_META_F_EXTRA    0x80u   /* has an entry in m->extra (disk path, link target) */

typedef struct bt_meta_file {   /* 24 bytes: there may be a million */
    int64_t length;
    int64_t offset;           /* offset of the file's first byte in the torrent's byte stream */
    uint32_t path_tok;        /* token of the path list (multi-file), or 0: single-file (path =
                                 name), or a pad file without a path (no component); the
                                 number of components is bt_meta_ncomp() */
    uint8_t pad;              /* BEP 47 padding file: 1, else 0 */
    uint8_t flags;            /* BT_META_F_* */
} bt_meta_file;

/* A file whose disk path is not its torrent path joined, or a symlink: only
 * those files have one (sorted by file), so a torrent that needs no
 * sanitizing costs nothing here. */
typedef struct bt_meta_extra {  /* 20 bytes */
    uint32_t file;
    uint32_t path_off, path_len;  /* disk path in m->arena (components joined by '/'); len 0:
                                     the torrent path is the disk path */
    uint32_t link_off, link_len;  /* symlink: what the link holds ("../a/b", relative to the
                                     link's own folder); len 0: none or skipped */
} bt_meta_extra;

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
    bt_str disk_name;         /* the name as used on disk (sanitized; may point into arena) */
    size_t trailing;          /* bytes after the top-level dictionary, ignored */
    uint32_t num_sanitized;   /* non-pad files whose disk path differs from the torrent's */
    uint32_t num_renamed;     /* ... of them, renamed because another file had the name */
    uint32_t num_links_skipped;
    bt_meta_extra *extra;     /* sorted by file */
    uint32_t num_extra, extra_cap, extra_sorted;
    char *arena;              /* disk paths and link targets */
    size_t arena_len, arena_cap;
    uint32_t name_off;        /* disk_name in the arena (when name_in_arena) */
    int name_in_arena;
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
 * (kept), and while the paths are checked 32-64 bytes per file and ~100 KiB of
 * fixed scratch (one disk path, 2,048 components: freed before returning). At the limits that is at most 160 MB of tokens, however the
 * input is built. Only files that sanitizing changed, and symlinks, cost more:
 * 20 bytes each plus their disk path (no longer than the torrent's path + 12
 * bytes) and link target (at most 3 bytes a component + the symlink path)
 * kept in m->arena, so at most ~3x the input. When some file must be renamed,
 * a set of folder hashes (16 bytes a path component at most, so at most what
 * the tokens cost) lives while the new names are chosen. */
int  bt_meta_parse(bt_meta *m, const char *buf, size_t len, const char **err, size_t *err_off);
void bt_meta_free(bt_meta *m);

/* Components of file f's path in the torrent (not on disk: see bt_meta_disk_path). */
static inline uint32_t bt_meta_ncomp(const bt_meta *m, uint32_t f)
{
    uint32_t pt = m->files[f].path_tok;
    return pt ? m->doc.tok[pt].aux : !m->multi_file;
}
/* Component k (< bt_meta_ncomp) of file f's path, O(1). For a single-file
 * torrent, the one component is the name. For a multi-file torrent the name is
 * the folder holding the paths and is not a component. */
bt_str bt_meta_path_comp(const bt_meta *m, uint32_t f, uint32_t k);
/* Disk path of file f: relative to the torrent's folder (disk_name) for a
 * multi-file torrent, to the download folder (= disk_name) for a single file;
 * components joined by '/', each safe (non-empty, not "." or "..", no '/', no
 * NUL, at most BT_META_MAX_NAME bytes). A pad file without a path is
 * ".pad/LENGTH" (libtorrent's name; it is never on disk). Written to buf
 * NUL-terminated when it fits; returns the length it needs (without the NUL),
 * which is at most BT_META_MAX_DISK_PATH. */
size_t bt_meta_disk_path(const bt_meta *m, uint32_t f, char *buf, size_t cap);
/* A symlink's content (relative to the link's folder): {NULL, 0} for a file
 * that is not a symlink or whose link is skipped (BT_META_F_LINK_OUT). */
bt_str bt_meta_link_target(const bt_meta *m, uint32_t f);
/* Length of piece i < num_pieces (the last one may be short). */
int64_t bt_meta_piece_size(const bt_meta *m, uint32_t i);

#endif
