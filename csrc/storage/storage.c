/* storage.c: pieces on disk. See storage.h for the layout and the rules.
 *
 * Two parts: the mapping (piece, begin) -> spans of files, common to every
 * backend, and the disk backend (openat walk, an LRU of descriptors, pread/pwrite).
 */
#define _GNU_SOURCE   /* SEEK_DATA */
#include "storage/storage.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/sha1.h"

typedef struct st_file {
    int64_t offset;     /* first byte in the torrent's stream */
    int64_t length;
    unsigned pad : 1;   /* BEP 47: never on disk, reads as zeros */
} st_file;

struct bt_storage {
    const bt_storage_ops *ops;
    void *impl;                 /* the backend's state */
    uint32_t num_pieces;
    int64_t piece_length;
    int64_t total_length;
    uint8_t *hashes;            /* num_pieces * 20, copied from the metainfo */
    st_file *files;
    uint32_t nfiles;
    uint8_t *chunk;             /* BT_STORAGE_HASH_CHUNK bytes, allocated on first hash */
    bt_sha1_ctx md;             /* initialized on first hash */
    uint8_t zero_hash[2][20];   /* SHA-1 of a full / the last piece of zeros */
    int zero_hash_ok[2];
    pthread_mutex_t errmu;      /* two threads may fail at once (see storage.h) */
    char err[BT_STORAGE_ERRLEN];
};

/* Keeps errno: the engine reports what the failed system call said. */
void bt_storage_seterr(bt_storage *s, const char *fmt, ...)
{
    int e = errno;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&s->errmu);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    pthread_mutex_unlock(&s->errmu);
    va_end(ap);
    errno = e;
}

const char *bt_storage_error(const bt_storage *s) { return s->err; }
uint32_t bt_storage_num_pieces(const bt_storage *s) { return s->num_pieces; }

int64_t bt_storage_piece_size(const bt_storage *s, uint32_t i)
{
    if (i >= s->num_pieces)
        return 0;
    if (i + 1 < s->num_pieces)
        return s->piece_length;
    return s->total_length - (int64_t)(s->num_pieces - 1) * s->piece_length;
}

/* ------------------------------------------------------------------------ */
/* The disk backend.                                                        */

typedef struct disk_file {
    char *path;        /* relative to dir: components joined by '/' (each one checked) */
    int64_t orig_size; /* size when opened (-1 missing); INT64_MAX once written past it */
    int slot;          /* index in the descriptor cache, or -1 */
    dev_t dev;         /* the file opened at init: its path must still name it */
    ino_t ino;
    unsigned known : 1;   /* dev/ino recorded */
    unsigned exec : 1;    /* BEP 47 'x': created 0755 (minus the umask) */
    unsigned dirty : 1;   /* written since the last sync: a descriptor evicted from the
                           * cache is closed without fsync, so sync must reopen it */
    int64_t unkicked;     /* bytes written since its writeback was last started */
} disk_file;

typedef struct disk_slot {
    int fd;
    int dfd;           /* the same file opened with O_DIRECT, DFD_UNTRIED or DFD_NONE */
    uint32_t file;
    uint32_t users;    /* I/O calls using fd right now: the slot is not evicted (closed) */
    uint64_t used;     /* LRU clock */
} disk_slot;

typedef struct disk {
    int dirfd;
    int ro;            /* opened read-only: nothing is created, sized or written */
    disk_file *f;
    /* mu guards slot[], nslots, clock and f[].slot/orig_size/dirty; the pread and
     * pwrite themselves run outside it, on a descriptor pinned by slot.users. */
    pthread_mutex_t mu;
    disk_slot slot[BT_STORAGE_MAX_OPEN_FILES];
    int nslots;
    uint64_t clock;
    int no_direct;     /* the file system refused O_DIRECT: every write is buffered */
} disk;

#define DFD_UNTRIED (-1)
#define DFD_NONE    (-2)

/* Defence in depth: metainfo already refuses these, but storage is the one that
 * touches the file system, so it checks again what it is about to open. */
static int safe_component(const char *p, size_t n)
{
    if (n == 0 || n > BT_META_MAX_NAME)   /* metainfo refused these already */
        return 0;
    if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] == '/' || p[i] == '\0')
            return 0;
    return 1;
}


/* Relative path of file f as metainfo sanitized it (bt_meta_disk_path): NAME
 * for a single file, NAME/c1/.../cn otherwise, every component checked again. */
static char *build_path(const bt_meta *m, uint32_t f, char *err, size_t errlen)
{
    size_t pre = m->multi_file ? m->disk_name.n + 1 : 0;
    size_t n = m->multi_file ? bt_meta_disk_path(m, f, NULL, 0) : 0;
    if (n > BT_META_MAX_DISK_PATH) {
        snprintf(err, errlen, "file %u: path too long", f);
        return NULL;
    }
    char *p = malloc(pre + n + m->disk_name.n + 1);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (m->multi_file) {
        memcpy(p, m->disk_name.p, m->disk_name.n);
        p[m->disk_name.n] = '/';
        bt_meta_disk_path(m, f, p + pre, n + 1);
    } else {
        memcpy(p, m->disk_name.p, m->disk_name.n);
        p[m->disk_name.n] = '\0';
        n = 0;
    }
    size_t len = pre + n + (m->multi_file ? 0 : m->disk_name.n);
    uint32_t ncomp = 0;
    for (size_t st = 0, j = 0; j <= len; j++)
        if (j == len || p[j] == '/') {
            if (!safe_component(p + st, j - st) || ++ncomp > BT_META_MAX_PATH_DEPTH + 1) {
                snprintf(err, errlen, "file %u: unsafe path component %u", f, ncomp);
                free(p);
                return NULL;
            }
            st = j + 1;
        }
    return p;
}

/* Open the folder holding `path` (everything before its last '/'), walking from
 * dirfd one component at a time with O_NOFOLLOW, creating folders if asked.
 * Returns a descriptor (dirfd itself, dup'ed, when there is no folder part) or -1
 * with errno set; *symlink tells that a component was a symlink. */
static int walk_parent(int dirfd, const char *path, int create, int *symlink)
{
    int cur = dup(dirfd);
    if (cur < 0)
        return -1;
    const char *p = path;
    for (;;) {
        const char *slash = strchr(p, '/');
        if (!slash)
            return cur;
        char comp[256];
        size_t n = (size_t)(slash - p);
        if (n >= sizeof comp) {
            close(cur);
            errno = ENAMETOOLONG;
            return -1;
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        int fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
            if (mkdirat(cur, comp, 0755) < 0 && errno != EEXIST) {
                int e = errno;
                close(cur);
                errno = e;
                return -1;
            }
            fd = openat(cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        if (fd < 0) {
            int e = errno;
            struct stat st;
            if ((e == ELOOP || e == ENOTDIR) && fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW) == 0
                && S_ISLNK(st.st_mode))
                *symlink = 1;
            close(cur);
            errno = e;
            return -1;
        }
        close(cur);
        cur = fd;
        p = slash + 1;
    }
}

/* Open file i of the torrent. On first open (create=1) the folders and the file are
 * created. Returns an fd or -1 with the storage's error set and errno kept. */
static int disk_open_file(bt_storage *s, uint32_t i, int create, struct stat *stp)
{
    disk *d = s->impl;
    const char *path = d->f[i].path;
    int symlink = 0;
    int parent = walk_parent(d->dirfd, path, create, &symlink);
    if (parent < 0) {
        if (symlink)
            bt_storage_seterr(s, "%s: refusing to follow a symlink in the download folder", path);
        else
            bt_storage_seterr(s, "%s: %s", path, strerror(errno));
        return -1;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    /* O_NONBLOCK: a FIFO planted under the file's name must not block the loop;
     * it has no effect on the regular file we insist on below. */
    int flags = (d->ro ? O_RDONLY : O_RDWR) | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
                (create ? O_CREAT : 0);
    int fd = openat(parent, base, flags, d->f[i].exec ? 0755 : 0644);
    int e = errno;
    struct stat st;
    if (fd < 0 && e == ELOOP && fstatat(parent, base, &st, AT_SYMLINK_NOFOLLOW) == 0
        && S_ISLNK(st.st_mode))
        symlink = 1;
    close(parent);
    if (fd < 0) {
        errno = e;
        if (symlink)
            bt_storage_seterr(s, "%s: refusing to follow a symlink in the download folder", path);
        else
            bt_storage_seterr(s, "%s: %s", path, strerror(e));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        errno = EINVAL;
        bt_storage_seterr(s, "%s: not a regular file", path);
        close(fd);
        return -1;
    }
    /* BEP 47 'x' on a file that was there already: add x where r is. */
    if (create && d->f[i].exec && !(st.st_mode & S_IXUSR)
        && fchmod(fd, (st.st_mode & 07777) | ((st.st_mode & 0444) >> 2)) == 0)
        st.st_mode |= (st.st_mode & 0444) >> 2;
    if (stp)
        *stp = st;
    return fd;
}

/* Put fd for file i in the cache (d->mu held), evicting the least recently used
 * descriptor that no I/O is using. Returns the slot, or -1 if every slot is in
 * use (cannot happen with the engine's two threads, each using one at a time). */
static int disk_cache(disk *d, uint32_t i, int fd)
{
    int k;
    if (d->nslots < BT_STORAGE_MAX_OPEN_FILES) {
        k = d->nslots++;
    } else {
        k = -1;
        for (int j = 0; j < d->nslots; j++)
            if (d->slot[j].users == 0 && (k < 0 || d->slot[j].used < d->slot[k].used))
                k = j;
        if (k < 0)
            return -1;
        d->f[d->slot[k].file].slot = -1;
        close(d->slot[k].fd);
        if (d->slot[k].dfd >= 0)
            close(d->slot[k].dfd);
    }
    d->slot[k].fd = fd;
    d->slot[k].dfd = DFD_UNTRIED;
    d->slot[k].file = i;
    d->slot[k].users = 0;
    d->slot[k].used = ++d->clock;
    d->f[i].slot = k;
    return k;
}

/* A descriptor of file i pinned for one I/O call: release it with disk_fd_put.
 * Opening an evicted file happens under the lock (rare: > 64 files in use). */
static int disk_fd_get(bt_storage *s, uint32_t i, int *slot)
{
    disk *d = s->impl;
    pthread_mutex_lock(&d->mu);
    int k = d->f[i].slot;
    if (k < 0) {
        int fd = disk_open_file(s, i, 0, NULL);
        if (fd < 0) {
            pthread_mutex_unlock(&d->mu);
            return -1;
        }
        k = disk_cache(d, i, fd);
        if (k < 0) {
            close(fd);
            errno = EMFILE;
            bt_storage_seterr(s, "%s: every cached descriptor is in use", d->f[i].path);
            pthread_mutex_unlock(&d->mu);
            return -1;
        }
    }
    d->slot[k].used = ++d->clock;
    d->slot[k].users++;
    int fd = d->slot[k].fd;
    pthread_mutex_unlock(&d->mu);
    *slot = k;
    return fd;
}

/* wrote: [0, end) of the file was written: it is dirty (set after the write, so a
 * concurrent sync that cleared the flag before our data landed syncs again). */
static void disk_fd_put(disk *d, int slot, int wrote, int64_t end)
{
    pthread_mutex_lock(&d->mu);
    d->slot[slot].users--;
    if (wrote) {
        disk_file *f = &d->f[d->slot[slot].file];
        f->dirty = 1;
        if (end > f->orig_size)
            f->orig_size = INT64_MAX;   /* no longer "too short": check reads it */
    }
    pthread_mutex_unlock(&d->mu);
}

static int disk_read(bt_storage *s, uint32_t f, void *buf, size_t n, int64_t off)
{
    int slot;
    int fd = disk_fd_get(s, f, &slot);
    if (fd < 0)
        return -1;
    int rc = 0;
    uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            bt_storage_seterr(s, "%s: read: %s", ((disk *)s->impl)->f[f].path, strerror(errno));
            rc = -1;
            break;
        }
        if (r == 0) {
            /* Someone shortened the file behind our back: what is gone reads as
             * zeros (as a sparse extension would) and fails the hash. */
            memset(p, 0, n);
            break;
        }
        p += r;
        n -= (size_t)r;
        off += r;
    }
    disk_fd_put(s->impl, slot, 0, 0);
    return rc;
}

/* The O_DIRECT descriptor of a pinned slot whose fd is `fd`, opened on first use through
 * /proc/self/fd (the very file fd names: no path to walk again), or -1. */
static int disk_direct_fd(disk *d, int slot, int fd)
{
    pthread_mutex_lock(&d->mu);
    int dfd = d->slot[slot].dfd;
    if (dfd == DFD_UNTRIED) {
        dfd = DFD_NONE;
        if (!d->no_direct) {
            char self[32];
            snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
            int x = open(self, O_WRONLY | O_DIRECT | O_CLOEXEC);
            if (x >= 0)
                dfd = x;
            else if (errno == EINVAL)
                d->no_direct = 1;   /* the file system's answer; no /proc: try the next file */
        }
        d->slot[slot].dfd = dfd;
    }
    pthread_mutex_unlock(&d->mu);
    return dfd >= 0 ? dfd : -1;
}

/* Write around the page cache what can be (BT_STORAGE_DIRECT_*): the aligned bulk of a
 * span whose buffer and file offset are aligned (the tail of a file is not); advances
 * *p, *n and *off past what was written. 0, or -1 with errno (not EINVAL: a refusal
 * leaves the rest to the buffered path and stops direct writes to this file system). */
static int disk_write_direct(disk *d, int slot, int fd, const uint8_t **p, size_t *n, int64_t *off)
{
    const size_t mask = BT_STORAGE_DIRECT_ALIGN - 1;
    size_t bulk = *n & ~mask;
    if (bulk < BT_STORAGE_DIRECT_MIN || (((uintptr_t)*p | (uint64_t)*off) & mask))
        return 0;
    int dfd = disk_direct_fd(d, slot, fd);
    while (dfd >= 0 && bulk > 0) {
        ssize_t w = pwrite(dfd, *p, bulk, (off_t)*off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EINVAL) {
            pthread_mutex_lock(&d->mu);
            d->no_direct = 1;
            pthread_mutex_unlock(&d->mu);
            return 0;
        }
        if (w < 0)
            return -1;
        if (w == 0 || ((size_t)w & mask))
            dfd = -1;   /* stop here: the buffered path goes on from wherever this left off */
        *p += w;
        *n -= (size_t)w;
        *off += w;
        bulk = w > 0 && (size_t)w < bulk ? bulk - (size_t)w : 0;
    }
    return 0;
}

static int disk_write(bt_storage *s, uint32_t f, const void *buf, size_t n, int64_t off)
{
    disk *d = s->impl;
    if (d->ro) {
        errno = EROFS;
        bt_storage_seterr(s, "%s: storage opened read-only", d->f[f].path);
        return -1;
    }
    int slot;
    int fd = disk_fd_get(s, f, &slot);
    if (fd < 0)
        return -1;
    int rc = 0;
    int64_t end = off + (int64_t)n;
    const uint8_t *p = buf;
    if (disk_write_direct(d, slot, fd, &p, &n, &off) != 0) {
        bt_storage_seterr(s, "%s: write: %s", d->f[f].path, strerror(errno));
        disk_fd_put(d, slot, 1, end);
        return -1;
    }
    int64_t start = off;   /* the buffered part, for the writeback below */
    while (n > 0) {
        size_t chunk = n < BT_STORAGE_WRITE_CHUNK ? n : BT_STORAGE_WRITE_CHUNK;
        ssize_t w = pwrite(fd, p, chunk, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            bt_storage_seterr(s, "%s: write: %s", d->f[f].path, strerror(errno));
            rc = -1;
            break;
        }
        if (w == 0) {
            errno = EIO;
            bt_storage_seterr(s, "%s: write: no progress", d->f[f].path);
            rc = -1;
            break;
        }
        p += w;
        n -= (size_t)w;
        off += w;
    }
    /* start writing back what piled up (BT_STORAGE_WRITEBACK): the sync that makes it
     * durable then finds little left; a failure here is the sync's to report */
    pthread_mutex_lock(&d->mu);
    d->f[f].unkicked += off - start;
    int kick = d->f[f].unkicked >= BT_STORAGE_WRITEBACK;
    if (kick)
        d->f[f].unkicked = 0;
    pthread_mutex_unlock(&d->mu);
    if (kick && rc == 0)
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    disk_fd_put(d, slot, 1, end);
    return rc;
}

/* iov[0..cnt) from off on. A run whose buffers, lengths and offset are all aligned and
 * that is long enough goes to the O_DIRECT descriptor in one pwritev (no copy, no page
 * cache); the rest (or what a refusal or a short write left) buffer by buffer through
 * disk_write. */
static int disk_writev(bt_storage *s, uint32_t f, const struct iovec *iov, int cnt, int64_t off)
{
    disk *d = s->impl;
    const size_t mask = BT_STORAGE_DIRECT_ALIGN - 1;
    size_t total = 0;
    int aligned = cnt > 1 && !d->ro && ((uint64_t)off & mask) == 0;
    for (int i = 0; i < cnt; i++) {
        total += iov[i].iov_len;
        aligned = aligned && ((((uintptr_t)iov[i].iov_base) | iov[i].iov_len) & mask) == 0;
    }
    int i = 0;
    size_t done = 0;   /* bytes of iov[i] already written */
    if (aligned && total >= BT_STORAGE_DIRECT_MIN) {
        int slot;
        int fd = disk_fd_get(s, f, &slot);
        if (fd < 0)
            return -1;
        int dfd = disk_direct_fd(d, slot, fd);
        ssize_t w = 0;
        if (dfd >= 0) {
            do
                w = pwritev(dfd, iov, cnt, (off_t)off);
            while (w < 0 && errno == EINTR);
        }
        if (w < 0 && errno != EINVAL) {
            bt_storage_seterr(s, "%s: write: %s", d->f[f].path, strerror(errno));
            disk_fd_put(d, slot, 1, off + (int64_t)total);
            return -1;
        }
        if (w < 0) {   /* the file system's refusal: buffered from now on */
            pthread_mutex_lock(&d->mu);
            d->no_direct = 1;
            pthread_mutex_unlock(&d->mu);
            w = 0;
        }
        disk_fd_put(d, slot, w > 0, off + w);
        for (done = (size_t)w; i < cnt && done >= iov[i].iov_len; i++) {
            done -= iov[i].iov_len;
            off += (int64_t)iov[i].iov_len;
        }
    }
    for (; i < cnt; off += (int64_t)iov[i].iov_len, i++, done = 0)
        if (disk_write(s, f, (const uint8_t *)iov[i].iov_base + done, iov[i].iov_len - done,
                       off + (int64_t)done) != 0)
            return -1;
    return 0;
}

static int disk_present(bt_storage *s, uint32_t f, int64_t off, int64_t n)
{
    disk *d = s->impl;
    pthread_mutex_lock(&d->mu);
    int64_t orig = d->f[f].orig_size;
    pthread_mutex_unlock(&d->mu);
    if (orig < off + n)
        return BT_SPAN_MISSING;
    int slot;
    int fd = disk_fd_get(s, f, &slot);
    if (fd < 0)
        return -1;
    off_t data = lseek(fd, (off_t)off, SEEK_DATA);
    int e = errno;
    disk_fd_put(d, slot, 0, 0);
    if (data < 0) {
        if (e == ENXIO)
            return BT_SPAN_HOLE;   /* no data from off to the end of the file */
        return BT_SPAN_DATA;       /* no SEEK_DATA here: read it */
    }
    return data >= off + n ? BT_SPAN_HOLE : BT_SPAN_DATA;
}

/* fsync every file written since the last sync, reopening those whose
 * descriptor was evicted (close() does not make data durable). Resume data
 * relies on this: what it claims must be on disk before the claim is. The flag
 * is cleared before the fsync, so a write landing meanwhile marks it again. */
/* Each file's path still names the file we opened: one replaced by a folder, deleted
 * or renamed while we wrote to it through a cached descriptor would otherwise be
 * synced, claimed by resume data and reported done while the path holds nothing. */
static int disk_same_files(bt_storage *s)
{
    disk *d = s->impl;
    for (uint32_t i = 0; i < s->nfiles; i++) {
        if (!d->f[i].known)
            continue;
        struct stat st;
        if (fstatat(d->dirfd, d->f[i].path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            bt_storage_seterr(s, "%s was removed or renamed while being written (%s)", d->f[i].path,
                              strerror(errno));
            return -1;
        }
        if (!S_ISREG(st.st_mode) || st.st_dev != d->f[i].dev || st.st_ino != d->f[i].ino) {
            bt_storage_seterr(s, "%s was replaced while being written: it is no longer the file bt-lua wrote",
                              d->f[i].path);
            return -1;
        }
    }
    return 0;
}

static int disk_sync(bt_storage *s)
{
    disk *d = s->impl;
    if (disk_same_files(s) != 0)
        return -1;
    for (uint32_t i = 0; i < s->nfiles; i++) {
        pthread_mutex_lock(&d->mu);
        int dirty = d->f[i].dirty;
        d->f[i].dirty = 0;
        pthread_mutex_unlock(&d->mu);
        if (!dirty)
            continue;
        int slot;
        int fd = disk_fd_get(s, i, &slot);
        int rc = fd < 0 ? -1 : fsync(fd);
        if (fd >= 0) {
            if (rc < 0)
                bt_storage_seterr(s, "%s: fsync: %s", d->f[i].path, strerror(errno));
            disk_fd_put(d, slot, 0, 0);
        }
        if (rc < 0) {
            pthread_mutex_lock(&d->mu);
            d->f[i].dirty = 1;   /* still not durable: the next sync tries again */
            pthread_mutex_unlock(&d->mu);
            return -1;
        }
    }
    return 0;
}

static void disk_close(bt_storage *s)
{
    disk *d = s->impl;
    if (!d)
        return;
    for (int k = 0; k < d->nslots; k++) {
        close(d->slot[k].fd);
        if (d->slot[k].dfd >= 0)
            close(d->slot[k].dfd);
    }
    if (d->f)
        for (uint32_t i = 0; i < s->nfiles; i++)
            free(d->f[i].path);
    free(d->f);
    if (d->dirfd >= 0)
        close(d->dirfd);
    pthread_mutex_destroy(&d->mu);
    free(d);
    s->impl = NULL;
}

static const bt_storage_ops disk_ops = {
    disk_read, disk_writev, disk_present, disk_sync, disk_close,
};

/* mkdir -p of the download folder itself (`-o a/b/c` with a/b missing). The folder
 * is the caller's choice, so this path may follow symlinks; what lies inside it is
 * walked with O_NOFOLLOW. 0, or -1 with errno. */
static int mkdir_p(const char *dir)
{
    size_t n = strlen(dir);
    char *p = malloc(n + 1);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    memcpy(p, dir, n + 1);
    for (char *c = p + 1; *c; c++) {
        if (*c != '/')
            continue;
        *c = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            int e = errno;
            free(p);
            errno = e;
            return -1;
        }
        *c = '/';
    }
    int r = mkdir(p, 0755) != 0 && errno != EEXIST ? -1 : 0;
    int e = errno;
    free(p);
    errno = e;
    return r;
}

/* BEP 47 symlink i, after every file exists (paths are unique, so no file's
 * folder walk goes through a link). metainfo resolved the target inside the
 * torrent's folder, or marked it skipped (no target: nothing is made). A name
 * that is taken already is left as it is: it may be the link from a previous
 * run, or the user's. 0, or -1 with s->err set. */
static int make_link(bt_storage *s, const bt_meta *m, uint32_t i)
{
    disk *d = s->impl;
    bt_str target = bt_meta_link_target(m, i);
    if (!target.n || target.n > BT_META_MAX_DISK_PATH)
        return 0;
    char *path = build_path(m, i, s->err, sizeof s->err);
    if (!path)
        return -1;
    char *t = malloc(target.n + 1);
    int symlink = 0, rc = 0;
    int parent = t ? walk_parent(d->dirfd, path, 1, &symlink) : -1;
    if (parent < 0) {
        bt_storage_seterr(s, "%s: %s", path, !t ? "out of memory" : symlink
                          ? "refusing to follow a symlink in the download folder" : strerror(errno));
        rc = -1;
    } else {
        memcpy(t, target.p, target.n);
        t[target.n] = '\0';
        const char *base = strrchr(path, '/');
        base = base ? base + 1 : path;
        if (symlinkat(t, parent, base) < 0 && errno != EEXIST) {
            bt_storage_seterr(s, "%s: symlink: %s", path, strerror(errno));
            rc = -1;
        }
        close(parent);
    }
    free(t);
    free(path);
    return rc;
}

/* Create the folders and files, size them (ro: open what exists, change
 * nothing; a missing file is "missing" to the check). 0 / -1 with s->err set. */
static int disk_init(bt_storage *s, const bt_meta *m, const char *dir, int ro)
{
    disk *d = calloc(1, sizeof *d);
    if (!d) {
        bt_storage_seterr(s, "out of memory");
        return -1;
    }
    d->dirfd = -1;
    d->ro = ro;
    pthread_mutex_init(&d->mu, NULL);
    s->impl = d;
    s->ops = &disk_ops;
    d->f = calloc(s->nfiles, sizeof *d->f);
    if (!d->f) {
        bt_storage_seterr(s, "out of memory");
        return -1;
    }
    for (uint32_t i = 0; i < s->nfiles; i++)
        d->f[i].slot = -1;
    /* Every file stays within PATH_MAX as the user will name it (DIR/NAME/PATH),
     * checked before anything is created. The walk below opens one component
     * at a time and would go deeper, but nothing else could open the file:
     * libtorrent fails such a file with ENAMETOOLONG when it writes it. */
    size_t dlen = strlen(dir);
    for (uint32_t i = 0; i < s->nfiles; i++) {
        if (s->files[i].pad)
            continue;
        size_t n = dlen + 1 + m->disk_name.n
                   + (m->multi_file ? 1 + bt_meta_disk_path(m, i, NULL, 0) : 0);
        if (n >= PATH_MAX) {
            bt_storage_seterr(s, "file %u: path too long for the file system (%zu bytes with the "
                              "download folder; PATH_MAX is %d)", i + 1, n, PATH_MAX);
            return -1;
        }
    }
    d->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (!ro && d->dirfd < 0 && errno == ENOENT && mkdir_p(dir) == 0)
        d->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d->dirfd < 0) {
        bt_storage_seterr(s, "%s: %s", dir, strerror(errno));
        return -1;
    }
    uint32_t nlinks = 0;
    for (uint32_t i = 0; i < s->nfiles; i++) {
        if (s->files[i].pad)
            continue;
        if (m->files[i].flags & BT_META_F_SYMLINK) {
            nlinks++;   /* no data: made after the files, below */
            continue;
        }
        d->f[i].exec = (m->files[i].flags & BT_META_F_EXEC) != 0;
        d->f[i].path = build_path(m, i, s->err, sizeof s->err);
        if (!d->f[i].path)
            return -1;
        struct stat st;
        int fd = disk_open_file(s, i, !ro, &st);
        if (fd < 0 && ro && (errno == ENOENT || errno == ENOTDIR)) {
            d->f[i].orig_size = -1;   /* missing: never read, no descriptor */
            continue;
        }
        if (fd < 0)
            return -1;
        d->f[i].orig_size = st.st_size;
        d->f[i].dev = st.st_dev;
        d->f[i].ino = st.st_ino;
        d->f[i].known = 1;
        if (!ro && st.st_size < s->files[i].length && ftruncate(fd, (off_t)s->files[i].length) < 0) {
            bt_storage_seterr(s, "%s: cannot size to %lld bytes: %s", d->f[i].path,
                              (long long)s->files[i].length, strerror(errno));
            close(fd);
            return -1;
        }
        if (disk_cache(d, i, fd) < 0) {   /* only at init: every slot is free */
            close(fd);
            bt_storage_seterr(s, "internal: descriptor cache full");
            return -1;
        }
    }
    for (uint32_t i = 0; i < s->nfiles && nlinks && !ro; i++)
        if ((m->files[i].flags & BT_META_F_SYMLINK) && make_link(s, m, i) < 0)
            return -1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The mapping, common to every backend.                                    */

void bt_storage_close(bt_storage *s)
{
    if (!s)
        return;
    if (s->ops && s->ops->close)
        s->ops->close(s);
    free(s->hashes);
    free(s->files);
    free(s->chunk);
    bt_sha1_free(&s->md);
    pthread_mutex_destroy(&s->errmu);
    free(s);
}

static int copy_geometry(bt_storage *s, const bt_meta *m)
{
    if (m->piece_length <= 0 || m->num_pieces == 0 || m->num_files == 0 || !m->files
        || !m->pieces || m->total_length <= 0) {
        bt_storage_seterr(s, "metainfo without pieces or files");
        return -1;
    }
    /* Recomputed rather than trusted: everything below indexes with these.
     * total > 0 here, so this form cannot overflow as total + pl - 1 could. */
    int64_t want = (m->total_length - 1) / m->piece_length + 1;
    if (want != (int64_t)m->num_pieces) {
        bt_storage_seterr(s, "metainfo: %u pieces for %lld bytes", m->num_pieces,
                          (long long)m->total_length);
        return -1;
    }
    s->num_pieces = m->num_pieces;
    s->piece_length = m->piece_length;
    s->total_length = m->total_length;
    s->nfiles = m->num_files;
    s->hashes = malloc((size_t)m->num_pieces * 20);
    s->files = calloc(m->num_files, sizeof *s->files);
    if (!s->hashes || !s->files) {
        bt_storage_seterr(s, "out of memory");
        return -1;
    }
    memcpy(s->hashes, m->pieces, (size_t)m->num_pieces * 20);
    int64_t off = 0;
    for (uint32_t i = 0; i < m->num_files; i++) {
        int64_t len = m->files[i].length;
        if (len < 0 || len > m->total_length - off) {
            bt_storage_seterr(s, "metainfo: file %u has a bad length", i);
            return -1;
        }
        s->files[i].offset = off;
        s->files[i].length = len;
        s->files[i].pad = m->files[i].pad;
        off += len;
    }
    if (off != m->total_length) {
        bt_storage_seterr(s, "metainfo: file lengths do not add up to the total");
        return -1;
    }
    return 0;
}

static bt_storage *open_disk(const bt_meta *m, const char *dir, int ro, char *err, size_t errlen)
{
    bt_storage *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&s->errmu, NULL);
    if (copy_geometry(s, m) < 0 || disk_init(s, m, dir, ro) < 0) {
        snprintf(err, errlen, "%s", s->err);
        bt_storage_close(s);
        return NULL;
    }
    s->err[0] = '\0';
    return s;
}

bt_storage *bt_storage_open(const bt_meta *m, const char *dir, char *err, size_t errlen)
{
    return open_disk(m, dir, 0, err, errlen);
}

bt_storage *bt_storage_open_readonly(const bt_meta *m, const char *dir, char *err, size_t errlen)
{
    return open_disk(m, dir, 1, err, errlen);
}

bt_storage *bt_storage_new(const bt_meta *m, const bt_storage_ops *ops, void *impl, char *err,
                           size_t errlen)
{
    bt_storage *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        if (ops && ops->close) {   /* close() takes a storage: lend it a stack one */
            bt_storage tmp;
            memset(&tmp, 0, sizeof tmp);
            pthread_mutex_init(&tmp.errmu, NULL);
            tmp.impl = impl;
            ops->close(&tmp);
            pthread_mutex_destroy(&tmp.errmu);
        }
        return NULL;
    }
    pthread_mutex_init(&s->errmu, NULL);
    s->ops = ops;
    s->impl = impl;
    if (copy_geometry(s, m) < 0) {
        snprintf(err, errlen, "%s", s->err);
        bt_storage_close(s);
        return NULL;
    }
    return s;
}

void *bt_storage_impl(const bt_storage *s) { return s->impl; }
const bt_storage_ops *bt_storage_ops_of(const bt_storage *s) { return s->ops; }
uint32_t bt_storage_num_files(const bt_storage *s) { return s->nfiles; }
int64_t bt_storage_file_length(const bt_storage *s, uint32_t f)
{
    return f < s->nfiles ? s->files[f].length : 0;
}
int bt_storage_file_is_pad(const bt_storage *s, uint32_t f) { return f < s->nfiles && s->files[f].pad; }

/* Index of the file holding stream byte `pos` (< total_length): the last file
 * whose offset is <= pos; zero-length files share their offset with the next one
 * and lose to it. */
static uint32_t file_at(const bt_storage *s, int64_t pos)
{
    uint32_t lo = 0, hi = s->nfiles;   /* answer in [lo, hi) */
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->files[mid].offset <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}


/* Check (piece, begin, len) and turn it into a stream position. */
static int locate(bt_storage *s, uint32_t piece, uint32_t begin, size_t len, int64_t *pos)
{
    if (piece >= s->num_pieces) {
        bt_storage_seterr(s, "piece %u out of range (%u pieces)", piece, s->num_pieces);
        errno = EINVAL;
        return -1;
    }
    int64_t size = bt_storage_piece_size(s, piece);
    if ((int64_t)begin > size || (uint64_t)len > (uint64_t)(size - begin)) {
        bt_storage_seterr(s, "block %u+%zu past the end of piece %u (%lld bytes)", begin, len,
                          piece, (long long)size);
        errno = EINVAL;
        return -1;
    }
    *pos = (int64_t)piece * s->piece_length + begin;
    return 0;
}

/* Read len bytes from stream position pos, file by file (pad files read as zeros). */
static int span_read(bt_storage *s, int64_t pos, uint8_t *buf, size_t len)
{
    if (len == 0)
        return 0;
    uint32_t i = file_at(s, pos);
    while (len > 0) {
        if (i >= s->nfiles) {   /* cannot happen after locate(): lengths add up */
            bt_storage_seterr(s, "internal: past the last file");
            return -1;
        }
        const st_file *f = &s->files[i];
        int64_t within = pos - f->offset;
        if (within >= f->length) {
            i++;
            continue;
        }
        size_t n = len;
        if ((int64_t)n > f->length - within)
            n = (size_t)(f->length - within);
        if (f->pad)
            memset(buf, 0, n);
        else if (s->ops->read(s, i, buf, n, within) < 0)
            return -1;
        buf += n;
        pos += (int64_t)n;
        len -= n;
        i++;
    }
    return 0;
}

/* Write iov[0..cnt) (cnt <= BT_STORAGE_RUN_MAX) one after the other from stream position
 * pos, file by file: each file gets the slices of the buffers that fall in it, in one
 * writev call (a buffer may straddle files); pad files get nothing. */
static int span_writev(bt_storage *s, int64_t pos, const struct iovec *iov, int cnt)
{
    struct iovec seg[BT_STORAGE_RUN_MAX];
    int i = 0;
    size_t o = 0;   /* bytes of iov[i] already placed */
    uint32_t fi = file_at(s, pos);
    while (i < cnt) {
        if (iov[i].iov_len == 0) {
            i++;
            continue;
        }
        if (fi >= s->nfiles) {   /* cannot happen after the callers' checks: lengths add up */
            bt_storage_seterr(s, "internal: past the last file");
            return -1;
        }
        const st_file *f = &s->files[fi];
        int64_t within = pos - f->offset;
        if (within >= f->length) {
            fi++;
            continue;
        }
        int64_t room = f->length - within, n = 0;
        int k = 0;
        while (i < cnt && n < room) {
            size_t take = iov[i].iov_len - o;
            if ((int64_t)take > room - n)
                take = (size_t)(room - n);
            seg[k++] = (struct iovec){ .iov_base = (uint8_t *)iov[i].iov_base + o, .iov_len = take };
            n += (int64_t)take;
            o += take;
            if (o == iov[i].iov_len) {
                i++;
                o = 0;
            }
        }
        if (!f->pad && s->ops->writev(s, fi, seg, k, within) < 0)
            return -1;
        pos += n;
        fi++;
    }
    return 0;
}

int bt_storage_write(bt_storage *s, uint32_t piece, uint32_t begin, const void *buf, size_t len)
{
    int64_t pos;
    if (locate(s, piece, begin, len, &pos) < 0)
        return -1;
    struct iovec one = { .iov_base = (void *)(uintptr_t)buf, .iov_len = len };
    return span_writev(s, pos, &one, 1);
}

int bt_storage_write_run(bt_storage *s, uint32_t piece, const struct iovec *iov, int cnt)
{
    int64_t pos;
    if (locate(s, piece, 0, 0, &pos) < 0)
        return -1;
    if (cnt < 0 || cnt > BT_STORAGE_RUN_MAX) {
        bt_storage_seterr(s, "run of %d buffers from piece %u: at most %d", cnt, piece, BT_STORAGE_RUN_MAX);
        errno = EINVAL;
        return -1;
    }
    uint64_t len = 0;
    for (int i = 0; i < cnt; i++)
        len += iov[i].iov_len;
    if (len > (uint64_t)(s->total_length - pos)) {
        bt_storage_seterr(s, "run of %llu bytes from piece %u past the end of the torrent", (unsigned long long)len,
                          piece);
        errno = EINVAL;
        return -1;
    }
    return span_writev(s, pos, iov, cnt);
}

int bt_storage_read(bt_storage *s, uint32_t piece, uint32_t begin, void *buf, size_t len)
{
    int64_t pos;
    if (locate(s, piece, begin, len, &pos) < 0)
        return -1;
    return span_read(s, pos, buf, len);
}

static int hash_ready(bt_storage *s)
{
    if (!s->chunk && !(s->chunk = malloc(BT_STORAGE_HASH_CHUNK))) {
        bt_storage_seterr(s, "out of memory");
        return -1;
    }
    if (!s->md.md && bt_sha1_init(&s->md) < 0) {
        bt_storage_seterr(s, "out of memory (SHA-1)");
        return -1;
    }
    return 0;
}

int bt_storage_hash_piece(bt_storage *s, uint32_t piece, uint8_t out[20])
{
    int64_t pos;
    memset(out, 0, 20);
    if (locate(s, piece, 0, 0, &pos) < 0 || hash_ready(s) < 0)
        return -1;
    int64_t size = bt_storage_piece_size(s, piece);
    if (bt_sha1_reset(&s->md) < 0) {
        bt_storage_seterr(s, "SHA-1 init failed");
        return -1;
    }
    for (int64_t done = 0; done < size;) {
        size_t n = BT_STORAGE_HASH_CHUNK;
        if ((int64_t)n > size - done)
            n = (size_t)(size - done);
        if (span_read(s, pos + done, s->chunk, n) < 0)
            return -1;
        bt_sha1_update(&s->md, s->chunk, n);
        done += (int64_t)n;
    }
    if (bt_sha1_final(&s->md, out) < 0) {
        bt_storage_seterr(s, "SHA-1 failed");
        memset(out, 0, 20);
        return -1;
    }
    return 0;
}

int bt_storage_verify(bt_storage *s, uint32_t piece)
{
    uint8_t h[20];
    if (bt_storage_hash_piece(s, piece, h) < 0)
        return -1;
    return memcmp(h, s->hashes + (size_t)piece * 20, 20) == 0;
}

/* SHA-1 of `size` zero bytes, computed once per size class (full / last piece). */
static int zero_hash(bt_storage *s, uint32_t piece, const uint8_t **out)
{
    int k = piece + 1 == s->num_pieces;
    if (!s->zero_hash_ok[k]) {
        if (hash_ready(s) < 0 || bt_sha1_reset(&s->md) < 0) {
            bt_storage_seterr(s, "SHA-1 init failed");
            return -1;
        }
        int64_t size = bt_storage_piece_size(s, piece);
        memset(s->chunk, 0, BT_STORAGE_HASH_CHUNK);
        for (int64_t done = 0; done < size;) {
            size_t n = BT_STORAGE_HASH_CHUNK;
            if ((int64_t)n > size - done)
                n = (size_t)(size - done);
            bt_sha1_update(&s->md, s->chunk, n);
            done += (int64_t)n;
        }
        if (bt_sha1_final(&s->md, s->zero_hash[k]) < 0) {
            bt_storage_seterr(s, "SHA-1 failed");
            return -1;
        }
        s->zero_hash_ok[k] = 1;
    }
    *out = s->zero_hash[k];
    return 0;
}

/* What the piece's spans hold, without reading: BT_SPAN_MISSING if any span is,
 * BT_SPAN_HOLE if all are holes (or pad), else BT_SPAN_DATA; -1 on error. */
static int piece_presence(bt_storage *s, uint32_t piece)
{
    int64_t pos = (int64_t)piece * s->piece_length;
    int64_t len = bt_storage_piece_size(s, piece);
    uint32_t i = file_at(s, pos);
    int all_hole = 1;
    while (len > 0 && i < s->nfiles) {
        const st_file *f = &s->files[i];
        int64_t within = pos - f->offset;
        if (within >= f->length) {
            i++;
            continue;
        }
        int64_t n = len < f->length - within ? len : f->length - within;
        if (!f->pad) {
            int r = s->ops->present(s, i, within, n);
            if (r < 0 || r == BT_SPAN_MISSING)
                return r;
            if (r == BT_SPAN_DATA)
                all_hole = 0;
        }
        pos += n;
        len -= n;
        i++;
    }
    return all_hole ? BT_SPAN_HOLE : BT_SPAN_DATA;
}

int bt_storage_check_piece(bt_storage *s, uint32_t p)
{
    int64_t pos;
    if (locate(s, p, 0, 0, &pos) < 0)
        return -1;
    int r = piece_presence(s, p);
    if (r < 0)
        return -1;
    if (r == BT_SPAN_HOLE) {
        const uint8_t *z;
        if (zero_hash(s, p, &z) < 0)
            return -1;
        return memcmp(z, s->hashes + (size_t)p * 20, 20) == 0;
    }
    if (r == BT_SPAN_DATA)
        return bt_storage_verify(s, p);
    return 0;
}

int bt_storage_copy_piece(bt_storage *dst, bt_storage *src, uint32_t piece)
{
    if (dst->num_pieces != src->num_pieces || dst->piece_length != src->piece_length
        || dst->total_length != src->total_length) {
        bt_storage_seterr(dst, "copy: storages of different torrents");
        return -1;
    }
    int good = bt_storage_check_piece(src, piece);
    if (good < 0) {
        bt_storage_seterr(dst, "%s", src->err);
        return -1;
    }
    if (!good || piece_presence(src, piece) == BT_SPAN_HOLE)
        return good;   /* a good hole is zeros: what dst reads where nothing was written */
    /* Read again, chunk by chunk, into dst: the first pass left it in the page
     * cache, and dst never holds a piece that failed its hash. */
    int64_t size = bt_storage_piece_size(src, piece);
    for (int64_t done = 0; done < size;) {
        size_t n = BT_STORAGE_HASH_CHUNK;
        if ((int64_t)n > size - done)
            n = (size_t)(size - done);
        if (bt_storage_read(src, piece, (uint32_t)done, src->chunk, n) < 0) {
            bt_storage_seterr(dst, "%s", src->err);
            return -1;
        }
        if (bt_storage_write(dst, piece, (uint32_t)done, src->chunk, n) < 0)
            return -1;
        done += (int64_t)n;
    }
    return 1;
}

int bt_storage_check_cb(bt_storage *s, bt_ranges *have, bt_storage_progress_cb cb, void *ud)
{
    if (have->size != s->num_pieces) {
        bt_storage_seterr(s, "check: set of %u pieces for a torrent of %u", have->size,
                          s->num_pieces);
        return -1;
    }
    for (uint32_t p = 0; p < s->num_pieces; p++) {
        int good = bt_storage_check_piece(s, p);
        if (good < 0)
            return -1;
        if (good && bt_ranges_set(have, p) < 0) {
            bt_storage_seterr(s, "out of memory");
            return -1;
        }
        if (cb && cb(ud, p + 1, s->num_pieces))
            return 1;
    }
    return 0;
}

int bt_storage_check(bt_storage *s, bt_ranges *have)
{
    return bt_storage_check_cb(s, have, NULL, NULL);
}

int bt_storage_sync(bt_storage *s)
{
    return s->ops->sync ? s->ops->sync(s) : 0;
}

/* ------------------------------------------------------------------------ */
/* Atomic replacement of a small file (resume data).                        */

int bt_fsync_dir(const char *dir, char *err, size_t errlen)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (fsync(fd) < 0 && errno != EINVAL) {   /* EINVAL: a file system without dir fsync */
        snprintf(err, errlen, "%s: fsync: %s", dir, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

int bt_write_atomic(const char *path, const void *buf, size_t len, char *err, size_t errlen)
{
    static unsigned counter;   /* distinct names within the process; pid across processes */
    size_t plen = strlen(path);
    if (plen == 0 || path[plen - 1] == '/') {
        snprintf(err, errlen, "%s: not a file name", path);
        return -1;
    }
    char *tmp = malloc(plen + 48);
    /* the folder, for the final fsync: "." when path has no '/' */
    char *dir = malloc(plen + 2);
    if (!tmp || !dir) {
        free(tmp);
        free(dir);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    int fd = -1;
    for (int tries = 0; tries < BT_ATOMIC_MAX_TRIES && fd < 0; tries++) {
        snprintf(tmp, plen + 48, "%s.tmp.%ld.%u", path, (long)getpid(), counter++);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto fail_noclean;
    }
    const uint8_t *p = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            snprintf(err, errlen, "%s: write: %s", tmp, w < 0 ? strerror(errno) : "no progress");
            goto fail;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) < 0) {
        snprintf(err, errlen, "%s: fsync: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) < 0) {
        fd = -1;
        snprintf(err, errlen, "%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        snprintf(err, errlen, "%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    /* The new content is in place; an fsync failure of the folder means it may
     * not survive a power cut, which the caller should hear about. */
    int r = bt_fsync_dir(dir, err, errlen);
    free(tmp);
    free(dir);
    return r;
fail:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
fail_noclean:
    free(tmp);
    free(dir);
    return -1;
}
