/* storage.h: a torrent's pieces mapped onto its files, on disk or in memory. Pure C
 * (POSIX I/O, pthreads, OpenSSL SHA-1): no Lua, no libev. The download engine does
 * all its piece I/O through bt_storage_read/write; bt.storage exposes it to Lua.
 *
 * The torrent is one byte stream [0, total_length) cut into pieces; files[i] covers
 * [offset, offset + length) of it. Reads and writes address (piece, begin) and may
 * span any number of files. A small vtable
 * (bt_storage_ops) does the per-file I/O: the disk backend below, the memory backend
 * in storage_mem.c (issue 4).
 *
 * Layout on disk (decided here, documented in the open function below):
 *   single-file torrent: DIR/NAME
 *   multi-file torrent:  DIR/NAME/comp1/.../compN
 * Folders are created 0755, files 0644 (both minus the umask). Files are opened with
 * O_NOFOLLOW and every folder is walked with openat(O_NOFOLLOW|O_DIRECTORY) from a
 * descriptor of DIR, so a symlink planted inside DIR cannot lead a write outside it.
 * DIR itself is the caller's choice and may be a symlink.
 * Files shorter than their torrent length are extended sparsely (ftruncate); a file
 * LONGER than its torrent length is never truncated: the extra bytes are left as
 * they are and never read (it may be the user's data; deleting it is their call).
 * BEP 47 pad files are neither created nor written; they read as zeros.
 *
 * Threads. The engine reads blocks on its loop thread (serving peers, hashing
 * out-of-order blocks) while its worker thread writes whole pieces, so:
 *   - bt_storage_read and bt_storage_write may run on two threads
 *     at once on one storage, for different bytes (the engine never reads a piece
 *     while writing it). Disk: a mutex guards the descriptor cache; the pread/pwrite
 *     run outside it on a descriptor pinned for the call, never closed under it (nor
 *     its O_DIRECT twin, opened on the first large aligned write and evicted with it).
 *     Direct writes cover whole 4 KiB blocks only, so they never share a page with a
 *     buffered write or read of other bytes. Memory: chunks are published with a compare-and-swap and never move.
 *   - bt_storage_sync may run on one thread while the other writes (a file written
 *     during the sync stays dirty and is synced by the next one).
 *   - everything else (check, check_piece, verify, hash_piece, copy_piece, close)
 *     belongs to one thread with no concurrent I/O: it uses the storage's one hash
 *     context and chunk buffer. bt_storage_error's text may mix up the messages of
 *     two threads failing at once; the engine reports errno instead (kept by every
 *     failing call).
 */
#ifndef BT_STORAGE_H
#define BT_STORAGE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "codec/metainfo.h"
#include "core/ranges.h"

/* Open descriptors kept per storage: a torrent of 100 000 files must not exhaust
 * the process's fd limit (often 1024), and 64 covers every file a piece spans in
 * practice plus the neighbours being downloaded at the same time. */
#define BT_STORAGE_MAX_OPEN_FILES 64
/* Piece hashing reads this much at a time: bounds the buffer for 256 MiB pieces. */
#define BT_STORAGE_HASH_CHUNK     (1u << 20)
/* Writes reach the kernel in calls of at most this size. Measured on this VM's
 * kernel (6.18, ext4 with large folios): 1 GiB written in 1 MiB pwrites cost 0.7
 * to 2.5 s of system time, in 128 KiB pwrites 0.26 to 0.31 s, in 16 KiB ones ~0.47 s. */
#define BT_STORAGE_WRITE_CHUNK    ((size_t)128 * 1024)
/* After this many bytes written to one file, its writeback starts (sync_file_range,
 * SYNC_FILE_RANGE_WRITE: queued, not waited for). With 24 GiB of RAM the kernel's own
 * flusher starts only past 2.4 GiB of dirty data, so a 1 GiB download left everything to
 * the fsync after the last piece: 0.44 s of the 0.5 s between the last byte and exit. */
#define BT_STORAGE_WRITEBACK      ((int64_t)4 << 20)
/* A write whose buffer, file offset and length are multiples of BT_STORAGE_DIRECT_ALIGN
 * (any device's logical block) and that is at least BT_STORAGE_DIRECT_MIN long goes
 * around the page cache (O_DIRECT, a second descriptor of the same file): no copy into
 * the cache, no dirty pages to write back. Measured, 1 GiB in 1 MiB pieces: system time
 * 0.44 -> 0.24 s. Smaller writes wait for the device once each, so they stay buffered;
 * so do file systems without O_DIRECT. Callers that want it allocate their buffers
 * aligned (the engine's piece buffers are; a run of them goes in one pwritev). */
#define BT_STORAGE_DIRECT_ALIGN   ((size_t)4096)
#define BT_STORAGE_DIRECT_MIN     ((size_t)256 * 1024)
/* Error message buffer (a path and an strerror text). */
#define BT_STORAGE_ERRLEN         512

typedef struct bt_storage bt_storage;

enum { BT_SPAN_MISSING = 0, BT_SPAN_DATA = 1, BT_SPAN_HOLE = 2 };

/* Per-file I/O of a backend. `f` is the file index in the torrent; `off` is
 * relative to the file's start; the mapping guarantees off + n <= file length and
 * never calls these for pad files. Return 0, or -1 after bt_storage_seterr(). */
typedef struct bt_storage_ops {
    int  (*read)(bt_storage *s, uint32_t f, void *buf, size_t n, int64_t off);
    /* iov[0..cnt) written one after the other from off on (a run of pieces from their
     * own buffers: the disk backend gives an aligned run to the device in one call) */
    int  (*writev)(bt_storage *s, uint32_t f, const struct iovec *iov, int cnt, int64_t off);
    /* What [off, off + n) holds, for the start-up check (no data is read):
     * BT_SPAN_DATA, BT_SPAN_MISSING (file missing or too short when opened),
     * BT_SPAN_HOLE (wholly a hole: reads as zeros), or -1 on error. */
    int  (*present)(bt_storage *s, uint32_t f, int64_t off, int64_t n);
    int  (*sync)(bt_storage *s);
    void (*close)(bt_storage *s);   /* frees the backend's state, not the storage */
} bt_storage_ops;

/* Open the on-disk storage of `m` under `dir` (see the layout above): creates the
 * folders and every non-pad file, sizes them sparse. m may be freed afterwards (the
 * storage copies what it needs). Returns NULL with a message in err on failure. */
bt_storage *bt_storage_open(const bt_meta *m, const char *dir, char *err, size_t errlen);

/* The files of `m` under `dir`, opened read-only: nothing is created, sized or
 * written (writes fail with EROFS). A missing file is "missing" to the check, a
 * short one is read as far as it goes. For loading data into another storage
 * (bt_storage_copy_piece) without touching the folder. */
bt_storage *bt_storage_open_readonly(const bt_meta *m, const char *dir, char *err, size_t errlen);

/* For other backends (issue 4: in memory): a storage with the geometry of m whose
 * per-file I/O goes to ops; impl is the backend's state, reached from the ops with
 * bt_storage_impl, and freed by ops->close (also when this call fails). */
bt_storage *bt_storage_new(const bt_meta *m, const bt_storage_ops *ops, void *impl, char *err,
                           size_t errlen);
void *bt_storage_impl(const bt_storage *s);
const bt_storage_ops *bt_storage_ops_of(const bt_storage *s);   /* which backend */
uint32_t bt_storage_num_files(const bt_storage *s);
int64_t  bt_storage_file_length(const bt_storage *s, uint32_t f);   /* 0 for f out of range */
int      bt_storage_file_is_pad(const bt_storage *s, uint32_t f);

/* Write/read len bytes at byte `begin` of `piece`, spanning files as needed.
 * Bounds are checked (piece < num_pieces, begin + len <= piece size). Loops on
 * short writes and EINTR. Return 0, or -1 with bt_storage_error() set. */
int bt_storage_write(bt_storage *s, uint32_t piece, uint32_t begin, const void *buf, size_t len);
int bt_storage_read(bt_storage *s, uint32_t piece, uint32_t begin, void *buf, size_t len);
/* Write whole consecutive pieces from `piece` on in one go, from cnt buffers (at most
 * BT_STORAGE_RUN_MAX) one after the other, ending inside the torrent: the worker writes
 * a run of small verified pieces so, from the pieces' own buffers, one call instead of
 * one per piece and no copy. 0, or -1 with bt_storage_error() set. */
#define BT_STORAGE_RUN_MAX 256
int bt_storage_write_run(bt_storage *s, uint32_t piece, const struct iovec *iov, int cnt);

/* SHA-1 of the piece as stored (read back in BT_STORAGE_HASH_CHUNK chunks). 0 / -1. */
int bt_storage_hash_piece(bt_storage *s, uint32_t piece, uint8_t out[20]);
/* 1 the piece matches its hash in the metainfo, 0 it does not, -1 I/O error. */
int bt_storage_verify(bt_storage *s, uint32_t piece);

/* Progress of bt_storage_check: called after each piece (done of total). Return
 * nonzero to stop the check early (bt_storage_check then returns 1). */
typedef int (*bt_storage_progress_cb)(void *ud, uint32_t done, uint32_t total);

/* Hash-check what is already on disk. `have` must be initialized with size
 * num_pieces; good pieces are set in it, others left as they were. Pieces touching
 * a file that was missing or too short at open, or lying wholly in a hole, are
 * skipped without reading (a hole counts as good only if the piece's hash is that
 * of zeros). Returns 0 done, 1 stopped by the callback, -1 error (I/O or memory). */
int bt_storage_check(bt_storage *s, bt_ranges *have);
int bt_storage_check_cb(bt_storage *s, bt_ranges *have, bt_storage_progress_cb cb, void *ud);

/* One step of the check, for a caller that spreads it over loop iterations:
 * 1 the piece is good, 0 not (missing, short, a hole that is not the hash of
 * zeros, or bad data), -1 error. Reads only when the spans hold data. */
int bt_storage_check_piece(bt_storage *s, uint32_t piece);

/* Check piece of src (as bt_storage_check_piece) and, if good, copy it into dst
 * (a storage of the same torrent). A piece that is a hole in src (zeros) is not
 * written: dst must read zeros there already (a fresh storage does). 1 copied
 * (good), 0 not good (dst untouched), -1 error (message in dst). */
int bt_storage_copy_piece(bt_storage *dst, bt_storage *src, uint32_t piece);

/* fsync every file written since the last sync (also those whose descriptor
 * was evicted from the cache: they are reopened). First, every file's path must
 * still name the file opened (same device and inode): -1 with a message naming
 * it when one was replaced, removed or renamed. 0 / -1. */
int bt_storage_sync(bt_storage *s);

/* The last error's message ("" if none). Valid until the next call on s. */
const char *bt_storage_error(const bt_storage *s);
/* For backends: set the error message (printf-style). */
void bt_storage_seterr(bt_storage *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Geometry, as copied from the metainfo. */
uint32_t bt_storage_num_pieces(const bt_storage *s);
int64_t  bt_storage_piece_size(const bt_storage *s, uint32_t piece);

/* Closes every file and frees s. NULL is fine. */
void bt_storage_close(bt_storage *s);

/* ---- The memory backend (storage_mem.c) ---------------------------------
 * The torrent's byte stream held in memory, in chunks of one piece length
 * (clamped to [BT_STORAGE_MEM_MIN_CHUNK, BT_STORAGE_MEM_MAX_CHUNK]) allocated on the first write that touches
 * them (so a sparse download of a big torrent allocates only what it wrote;
 * the total never exceeds the torrent's size rounded up to a chunk, plus one
 * pointer per chunk). Same semantics as the disk backend: unwritten bytes read
 * as zeros; check() on a fresh storage finds nothing (an unwritten chunk is
 * "missing", like a file that was not there at open); pad files are zeros;
 * sync() does nothing. For tests, simulations and seeding from memory. */
#define BT_STORAGE_MEM_MIN_CHUNK (64u * 1024)        /* fewer pointers for tiny pieces */
#define BT_STORAGE_MEM_MAX_CHUNK (4u * 1024 * 1024)  /* one block write of a huge piece
                                                       must not allocate 256 MiB */
bt_storage *bt_storage_open_memory(const bt_meta *m, char *err, size_t errlen);
/* Bytes of chunks allocated so far, or -1 if s is not a memory storage. */
int64_t bt_storage_memory_used(const bt_storage *s);

/* ---- Atomic file replacement (resume data) --------------------------------
 * Write `len` bytes to a new temporary file in path's folder (O_CREAT|O_EXCL,
 * mode 0644 minus the umask, never following a symlink), fsync it, rename it
 * over `path`, fsync the folder. After a crash at any moment, `path` holds
 * either its old content or the new one, never a mix; at worst a temporary
 * file "<path>.tmp.<pid>.<n>" is left behind. 0, or -1 with a message in err
 * (the temporary file is removed). */
#define BT_ATOMIC_MAX_TRIES 64   /* temporary names tried before giving up */
int bt_write_atomic(const char *path, const void *buf, size_t len, char *err, size_t errlen);
/* fsync a folder (makes a rename or a create in it durable). 0 / -1 with err. */
int bt_fsync_dir(const char *dir, char *err, size_t errlen);

#endif
