/* metainfo.c: .torrent parsing and validation; what is accepted is listed in
 * metainfo.h. One pass over the bencode tokens, then one sort of the file paths
 * to find duplicates. */
#define _GNU_SOURCE   /* memmem */
#include "codec/metainfo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sha1.h"

/* A limit's value inside an error message (the limits are decimal literals). */
#define LIMIT_STR_(x) #x
#define LIMIT_STR(x) LIMIT_STR_(x)
_Static_assert(BT_META_MAX_SIZE == 64u << 20, "the size error message says 64 MiB");
_Static_assert(sizeof(bt_meta_file) == 24, "the memory figures in metainfo.h count on it");
_Static_assert(BT_META_MAX_PATH_DEPTH == (BT_META_MAX_DISK_PATH + 1) / 2,
               "a disk path of MAX_DISK_PATH bytes has at most this many components");
_Static_assert(BT_META_MAX_DISK_PATH <= UINT16_MAX, "a disk path fits in the scratch buffers");

/* Scratch for one file's disk path or symlink content: a link's content is
 * "../" per folder of the link, then a target of at most MAX_DISK_PATH bytes. */
#define SCRATCH_LEN (3 * BT_META_MAX_PATH_DEPTH + BT_META_MAX_DISK_PATH + 32)

#define PATH_TOO_LONG "file path too long on disk (limit " LIMIT_STR(BT_META_MAX_DISK_PATH) " bytes)"

typedef struct parse_err {
    const char *msg;
    size_t off;
} parse_err;

static int fail(parse_err *e, const char *msg, size_t off)
{
    e->msg = msg;
    e->off = off;
    return -1;
}

static size_t tok_off(const bt_bdoc *d, uint32_t t) { return d->tok[t].start; }

/* ---- sanitizing -----------------------------------------------------------
 * The rules are listed in metainfo.h. Sanitizing never makes a component
 * longer (a byte becomes at most one '_'), so a disk path is at most as long as
 * the torrent's, plus the separators and a rename suffix. */

/* One UTF-8 character at p[0..n), n > 0: its code point and length; -1 and
 * length 1 for a byte that does not start a valid shortest-form sequence. */
static int32_t utf8_char(const unsigned char *p, size_t n, size_t *len)
{
    unsigned c = p[0];
    *len = 1;
    if (c < 0x80)
        return (int32_t)c;
    size_t need;
    uint32_t cp, min;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return -1;
    }
    if (n < need)
        return -1;
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return -1;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return -1;
    *len = need;
    return (int32_t)cp;
}

/* Removed from names: separators, and the direction overrides that make
 * "evil\u202Eexe.avi" display as "evilivaexe". */
static int dropped_char(int32_t cp)
{
    return cp == '/' || cp == '\\' || (cp >= 0x202a && cp <= 0x202e) || cp == 0x200e
        || cp == 0x200f;
}

/* Sanitized p[0..n) into out, whole characters only and at most cap bytes;
 * returns the bytes written and, in *full, what the whole would take. */
static size_t sanitize_run(const char *p, size_t n, char *out, size_t cap, size_t *full)
{
    size_t w = 0, total = 0;
    int stopped = 0;
    for (size_t i = 0; i < n;) {
        size_t l;
        int32_t cp = utf8_char((const unsigned char *)p + i, n - i, &l);
        if (!dropped_char(cp)) {
            const char *src = cp < 0x20 ? "_" : p + i;   /* control bytes and bad UTF-8 */
            size_t ol = cp < 0x20 ? 1 : l;
            total += ol;
            if (!stopped && w + ol <= cap) {
                memcpy(out + w, src, ol);
                w += ol;
            } else {
                stopped = 1;
            }
        }
        i += l;
    }
    if (full)
        *full = total;
    return w;
}

/* Extensions kept when a long name is cut: the last '.' and up to this many bytes after it. */
#define EXT_MAX 15

/* The disk form of one component, in out (BT_META_MAX_NAME bytes); 0 when the
 * component is dropped (nothing left, ".", ".."). */
static size_t sanitize_comp(const char *p, size_t n, char *out)
{
    size_t full;
    size_t w = sanitize_run(p, n, out, BT_META_MAX_NAME, &full);
    if (full > BT_META_MAX_NAME) {
        size_t dot = 0;   /* 0: no extension (a leading '.' is not one) */
        for (size_t i = n - 1; i > 0 && i + EXT_MAX + 1 >= n; i--)
            if (p[i] == '.') {
                dot = i;
                break;
            }
        char ext[EXT_MAX + 1];
        size_t el = dot ? sanitize_run(p + dot, n - dot, ext, sizeof ext, NULL) : 0;
        w = sanitize_run(p, dot ? dot : n, out, BT_META_MAX_NAME - el, NULL);
        memcpy(out + w, ext, el);
        w += el;
    }
    if ((w == 1 && out[0] == '.') || (w == 2 && out[0] == '.' && out[1] == '.'))
        return 0;
    return w;
}

/* Disk path of the path list pt into out (BT_META_MAX_DISK_PATH bytes): the
 * kept components joined by '/', "_" when none is left. *changed: it differs
 * from the torrent's components. *depth: components kept. SIZE_MAX: longer
 * than BT_META_MAX_DISK_PATH (the list itself may be as long as the input). */
static size_t sanitize_path(const bt_bdoc *d, uint32_t pt, char *out, int *changed, uint32_t *depth)
{
    size_t w = 0;
    uint32_t kept = 0;
    *changed = 0;
    for (uint32_t c = bt_bfirst(d, pt); c; c = bt_bnext(d, pt, c)) {
        size_t n;
        const char *p = bt_bstr(d, c, &n);
        char comp[BT_META_MAX_NAME];
        size_t cl = sanitize_comp(p, n, comp);
        if (cl == 0 || cl != n || memcmp(comp, p, n))
            *changed = 1;
        if (!cl)
            continue;
        if (w + (kept > 0) + cl > BT_META_MAX_DISK_PATH)
            return SIZE_MAX;
        if (kept++)
            out[w++] = '/';
        memcpy(out + w, comp, cl);
        w += cl;
    }
    if (!kept) {
        out[w++] = '_';
        kept = 1;
        *changed = 1;
    }
    *depth = kept;
    return w;
}

/* ---- extra entries (disk paths, link targets) ------------------------------ */

static int arena_add(bt_meta *m, const char *p, size_t n, uint32_t *off)
{
    if (n > m->arena_cap - m->arena_len) {
        size_t cap = m->arena_cap ? m->arena_cap : 4096;
        while (n > cap - m->arena_len)
            cap *= 2;
        if (cap > UINT32_MAX)
            return -1;
        char *a = realloc(m->arena, cap);
        if (!a)
            return -1;
        m->arena = a;
        m->arena_cap = cap;
    }
    memcpy(m->arena + m->arena_len, p, n);
    *off = (uint32_t)m->arena_len;
    m->arena_len += n;
    return 0;
}

/* Entries are appended in file order while the files are parsed (the sorted
 * part), then in file order again by the renames (a second sorted run); both
 * are binary-searched until they are merged at the end. */
static bt_meta_extra *extra_find(const bt_meta *m, uint32_t f)
{
    uint32_t runs[3] = { 0, m->extra_sorted, m->num_extra };
    for (int r = 0; r < 2; r++) {
        uint32_t lo = runs[r], hi = runs[r + 1];
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (m->extra[mid].file < f)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < runs[r + 1] && m->extra[lo].file == f)
            return &m->extra[lo];
    }
    return NULL;
}

static bt_meta_extra *extra_get(bt_meta *m, uint32_t f)
{
    if (m->files[f].flags & BT_META_F_EXTRA)
        return extra_find(m, f);
    if (m->num_extra == m->extra_cap) {
        uint32_t cap = m->extra_cap ? m->extra_cap * 2 : 64;
        bt_meta_extra *x = realloc(m->extra, (size_t)cap * sizeof *x);
        if (!x)
            return NULL;
        m->extra = x;
        m->extra_cap = cap;
    }
    bt_meta_extra *x = &m->extra[m->num_extra++];
    *x = (bt_meta_extra){ .file = f };
    m->files[f].flags |= BT_META_F_EXTRA;
    return x;
}

static int extra_cmp(const void *a, const void *b)
{
    uint32_t x = ((const bt_meta_extra *)a)->file, y = ((const bt_meta_extra *)b)->file;
    return x < y ? -1 : x > y;
}

/* ---- duplicate paths ------------------------------------------------------
 * The disk paths of the non-pad files go into one open-addressing hash table
 * (sequential walk over the files: sorting them was 20x slower on 100,000
 * files for lack of cache locality). A path already there is a duplicate.
 * Then the proper prefixes of every path are looked up: a prefix that is a
 * file means that file is a folder of another. Only the depths some file has
 * are looked up (none when all paths have the same depth, as in a torrent of
 * one folder level). Those files are marked; only if there is one, the
 * folders are hashed too and each marked file gets the first free
 * "base.N.ext".
 *
 * Only files are stored in the table of paths, never their folders: the table
 * is sized once, 2 to 4 slots of 16 bytes a file. Storing every folder prefix
 * too (as this once did) let a torrent of long paths of distinct folders cost
 * an entry per path component: 1 GB for 140,000 paths 64 deep. The folder set
 * of the renaming step holds bare hashes (16 bytes a component at most, ~ what
 * the tokens of those components cost): a hash accident there only skips a
 * free name.
 *
 * The hash is 64-bit and seeded per parse (from an allocation address, which
 * ASLR varies), so a hostile torrent cannot aim many paths at one slot. Every
 * match in the table of paths is confirmed by comparing the paths. */

typedef struct path_ent {
    uint64_t h;       /* hash of the file's whole path */
    uint32_t file;    /* UINT32_MAX: empty slot */
} path_ent;

typedef struct path_set {
    path_ent *e;
    size_t mask;      /* slots - 1; slots is a power of two >= 2 x files */
    bt_str *tmp;      /* BT_META_MAX_PATH_DEPTH components, for same_path */
} path_set;

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static uint64_t comp_hash(uint64_t h, const char *p, size_t n)
{
    h = mix(h, n);   /* the length separates ["ab"] from ["a", "b"] */
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = mix(h, v);
    }
    if (n) {
        uint64_t v = 0;
        memcpy(&v, p, n);
        h = mix(h, v);
    }
    return h;
}

/* The components of file f's disk path (pointing into the input or the
 * arena: valid until the arena grows); returns how many. */
static uint32_t disk_comps(const bt_meta *m, uint32_t f, bt_str *c)
{
    const bt_meta_file *file = &m->files[f];
    const bt_meta_extra *x = file->flags & BT_META_F_DISK ? extra_find(m, f) : NULL;
    if (!x) {
        /* Unchanged by sanitizing, so the torrent's path is the disk path and
         * has at most BT_META_MAX_PATH_DEPTH components. */
        uint32_t n = bt_meta_ncomp(m, f);
        for (uint32_t k = 0; k < n; k++)
            c[k].p = bt_bstr(&m->doc, file->path_tok + 1 + k, &c[k].n);
        return n;
    }
    const char *p = m->arena + x->path_off, *end = p + x->path_len;
    uint32_t n = 0;
    while (p < end) {
        const char *sl = memchr(p, '/', (size_t)(end - p));
        const char *ce = sl ? sl : end;
        c[n].p = p;
        c[n++].n = (size_t)(ce - p);
        p = sl ? sl + 1 : end;
    }
    return n;
}

/* h[k] = hash of c[0..k), k = 0..upto. */
static void path_hashes(const bt_str *c, uint32_t upto, uint64_t seed, uint64_t *h)
{
    h[0] = seed;
    for (uint32_t k = 0; k < upto; k++)
        h[k + 1] = comp_hash(h[k], c[k].p, c[k].n);
}

/* File fa's whole disk path is c[0..depth); a: room for its components. */
static int same_path(const bt_meta *m, uint32_t fa, const bt_str *c, uint32_t depth, bt_str *a)
{
    if (disk_comps(m, fa, a) != depth)
        return 0;
    for (uint32_t k = 0; k < depth; k++)
        if (a[k].n != c[k].n || memcmp(a[k].p, c[k].p, a[k].n))
            return 0;
    return 1;
}

/* The slot holding the file whose whole path is c[0..depth) (hash h), or the
 * empty slot where it would go. */
static path_ent *set_slot(const path_set *s, const bt_meta *m, uint64_t h, const bt_str *c,
                          uint32_t depth)
{
    size_t j = h & s->mask;
    for (; s->e[j].file != UINT32_MAX; j = (j + 1) & s->mask)
        if (s->e[j].h == h && same_path(m, s->e[j].file, c, depth, s->tmp))
            break;
    return &s->e[j];
}

/* Bare 64-bit hashes (0 marks an empty slot; a hash of 0 is stored as 1). */
typedef struct hash_set {
    uint64_t *h;
    uint32_t *val;    /* optional payload (the next N to try for a name) */
    size_t mask;
} hash_set;

static int hset_init(hash_set *hs, size_t n, int with_val)
{
    size_t slots = 1024;
    while (slots < 2 * n)
        slots *= 2;
    hs->h = calloc(slots, sizeof *hs->h);
    hs->val = with_val ? calloc(slots, sizeof *hs->val) : NULL;
    hs->mask = slots - 1;
    return hs->h && (!with_val || hs->val) ? 0 : -1;
}

/* The slot of h, or the empty one where it would go. */
static size_t hset_slot(const hash_set *hs, uint64_t h)
{
    h = h ? h : 1;
    size_t j = h & hs->mask;
    while (hs->h[j] && hs->h[j] != h)
        j = (j + 1) & hs->mask;
    return j;
}

static void hset_free(hash_set *hs)
{
    free(hs->h);
    free(hs->val);
}

/* Renames the marked files (BT_META_F_RENAMED) to the first free
 * "base.N.ext" of their last component. */
static int rename_marked(bt_meta *m, path_set *s, uint64_t seed, uint32_t nmarked, parse_err *e)
{
    size_t nprefix = 0;
    for (uint32_t f = 0; f < m->num_files; f++) {
        uint32_t n = bt_meta_ncomp(m, f);   /* >= the disk path's: an upper bound */
        if (!m->files[f].pad && n)
            nprefix += n - 1u;
    }
    hash_set folders = { 0 }, next = { 0 };
    char *buf = malloc(BT_META_MAX_DISK_PATH + 32);
    bt_str *c = malloc(2 * BT_META_MAX_PATH_DEPTH * sizeof *c);
    uint64_t *h = malloc((BT_META_MAX_PATH_DEPTH + 1) * sizeof *h);
    int bad = hset_init(&folders, nprefix, 0);
    bad |= hset_init(&next, nmarked, 1);
    if (bad || !buf || !c || !h) {
        hset_free(&folders);
        hset_free(&next);
        free(buf);
        free(c);
        free(h);
        return fail(e, "out of memory", 0);
    }
    bt_str *cand = c + BT_META_MAX_PATH_DEPTH;
    for (uint32_t f = 0; f < m->num_files; f++) {
        if (m->files[f].pad)
            continue;
        uint32_t n = disk_comps(m, f, c);
        path_hashes(c, n - 1, seed, h);
        for (uint32_t d = 1; d < n; d++)
            folders.h[hset_slot(&folders, h[d])] = h[d] ? h[d] : 1;
    }
    int rc = 0;
    for (uint32_t f = 0; f < m->num_files && rc == 0; f++) {
        if (!(m->files[f].flags & BT_META_F_RENAMED))
            continue;
        uint32_t n = disk_comps(m, f, c);
        path_hashes(c, n, seed, h);
        /* The new path is built in buf: the folders, then the last component. */
        size_t w = 0;
        for (uint32_t k = 0; k + 1 < n; k++) {
            memcpy(buf + w, c[k].p, c[k].n);
            w += c[k].n;
            buf[w++] = '/';
        }
        const char *last = c[n - 1].p;
        size_t ln = c[n - 1].n, bl = ln;
        for (size_t i = ln; i-- > 1;)
            if (last[i] == '.') {
                bl = i;
                break;
            }
        if (ln - bl > 32)
            bl = ln;   /* a "extension" that long is part of the name */
        char base[BT_META_MAX_NAME], ext[BT_META_MAX_NAME];
        memcpy(base, last, bl);
        memcpy(ext, last + bl, ln - bl);
        size_t el = ln - bl;
        size_t ns = hset_slot(&next, h[n]);
        uint32_t num = next.h[ns] ? next.val[ns] : 1;
        for (;; num++) {
            if (num == UINT32_MAX) {
                rc = fail(e, "cannot find a free name for a duplicate file",
                          tok_off(&m->doc, m->files[f].path_tok));
                break;
            }
            char suf[16];
            size_t sl = (size_t)snprintf(suf, sizeof suf, ".%u", num);
            size_t keep = bl;
            /* The component stays within NAME_MAX, the path within MAX_DISK_PATH. */
            size_t room = BT_META_MAX_NAME;
            if (room > BT_META_MAX_DISK_PATH - w)
                room = BT_META_MAX_DISK_PATH - w;
            if (sl + el > room) {
                rc = fail(e, PATH_TOO_LONG, tok_off(&m->doc, m->files[f].path_tok));
                break;
            }
            if (keep + sl + el > room) {
                keep = room - sl - el;
                while (keep > 0 && ((unsigned char)base[keep] & 0xc0) == 0x80)
                    keep--;   /* cut at a character boundary */
            }
            memcpy(cand, c, (n - 1) * sizeof *c);
            char *cp = buf + w;
            memcpy(cp, base, keep);
            memcpy(cp + keep, suf, sl);
            memcpy(cp + keep + sl, ext, el);
            cand[n - 1] = (bt_str){ cp, keep + sl + el };
            uint64_t hc = comp_hash(h[n - 1], cp, cand[n - 1].n);
            path_ent *slot = set_slot(s, m, hc, cand, n);
            if (slot->file != UINT32_MAX)
                continue;
            if (folders.h[hset_slot(&folders, hc)])
                continue;
            /* Free: c[] may point into the arena, which is about to grow. */
            uint32_t off;
            size_t len = w + cand[n - 1].n;
            int was = (m->files[f].flags & BT_META_F_DISK) != 0;
            bt_meta_extra *x = extra_get(m, f);
            if (!x || arena_add(m, buf, len, &off)) {
                rc = fail(e, "out of memory", 0);
                break;
            }
            x->path_off = off;
            x->path_len = (uint32_t)len;
            m->files[f].flags |= BT_META_F_DISK;
            m->num_sanitized += !was;
            m->num_renamed++;
            *slot = (path_ent){ .h = hc, .file = f };
            next.h[ns] = h[n] ? h[n] : 1;
            next.val[ns] = num + 1;
            break;
        }
    }
    hset_free(&folders);
    hset_free(&next);
    free(buf);
    free(c);
    free(h);
    return rc;
}

static int resolve_duplicates(bt_meta *m, parse_err *e)
{
    path_set s;
    size_t slots = 1024;
    while (slots < 2 * (size_t)m->num_files)
        slots *= 2;
    s.e = malloc(slots * sizeof *s.e);
    /* c and s.tmp: components of two paths; seen[d]: some stored file has d
     * components (bytes rather than bits: 2,048 depths). */
    bt_str *c = malloc(2 * BT_META_MAX_PATH_DEPTH * sizeof *c);
    uint64_t *h = malloc((BT_META_MAX_PATH_DEPTH + 1) * sizeof *h);
    uint8_t *seen = calloc(BT_META_MAX_PATH_DEPTH + 1, 1);
    if (!s.e || !c || !h || !seen) {
        free(s.e);
        free(c);
        free(h);
        free(seen);
        return fail(e, "out of memory", 0);
    }
    s.tmp = c + BT_META_MAX_PATH_DEPTH;
    s.mask = slots - 1;
    for (size_t i = 0; i < slots; i++)
        s.e[i].file = UINT32_MAX;
    const uint64_t seed = mix(0x243f6a8885a308d3ull, (uint64_t)(uintptr_t)s.e);

    /* Whole paths, in file order: a later file with the same path is marked. */
    uint32_t nmarked = 0;
    uint32_t maxdepth = 0;   /* deepest stored path */
    for (uint32_t f = 0; f < m->num_files; f++) {
        if (m->files[f].pad)
            continue;
        uint32_t n = disk_comps(m, f, c);
        path_hashes(c, n, seed, h);
        path_ent *slot = set_slot(&s, m, h[n], c, n);
        if (slot->file != UINT32_MAX) {
            m->files[f].flags |= BT_META_F_RENAMED;
            nmarked++;
        } else {
            *slot = (path_ent){ .h = h[n], .file = f };
        }
        seen[n] = 1;
        if (n > maxdepth)
            maxdepth = n;
    }
    /* A file that is a folder of another is marked (folders are not renamed). */
    for (uint32_t f = 0; f < m->num_files; f++) {
        if (m->files[f].pad)
            continue;
        uint32_t n = disk_comps(m, f, c);
        /* the deepest of depths 1 .. n - 1 that some file has */
        uint32_t deepest = n - 1 < maxdepth ? n - 1 : maxdepth;
        while (deepest > 0 && !seen[deepest])
            deepest--;
        if (!deepest)
            continue;
        path_hashes(c, deepest, seed, h);
        for (uint32_t d = 1; d <= deepest; d++) {
            if (!seen[d])
                continue;
            uint32_t other = set_slot(&s, m, h[d], c, d)->file;
            if (other != UINT32_MAX && !(m->files[other].flags & BT_META_F_RENAMED)) {
                m->files[other].flags |= BT_META_F_RENAMED;
                nmarked++;
            }
        }
    }
    int rc = nmarked ? rename_marked(m, &s, seed, nmarked, e) : 0;
    free(s.e);
    free(c);
    free(h);
    free(seen);
    return rc;
}

/* ---- fields ---------------------------------------------------------------- */

/* Value of `key` in dict `d`, which must have type `type`; 0 when absent. */
static int get_typed(const bt_bdoc *doc, uint32_t d, const char *key, bt_btype type,
                     const char *wrong, uint32_t *out, parse_err *e)
{
    uint32_t t = bt_bdict_get(doc, d, key);
    if (t && bt_btype_of(doc, t) != type)
        return fail(e, wrong, tok_off(doc, t));
    *out = t;
    return 0;
}

/* Value of `key` if it has type `type`, else 0 (libtorrent's dict_find_*). */
static uint32_t get_if(const bt_bdoc *doc, uint32_t d, const char *key, bt_btype type)
{
    uint32_t t = bt_bdict_get(doc, d, key);
    return t && bt_btype_of(doc, t) == type ? t : 0;
}

static uint8_t attr_flags(const bt_bdoc *d, uint32_t dict)
{
    uint32_t at = get_if(d, dict, "attr", BT_BSTR);
    uint8_t fl = 0;
    if (at) {
        size_t n;
        const char *p = bt_bstr(d, at, &n);
        for (size_t i = 0; i < n; i++)
            fl |= p[i] == 'p' ? BT_META_F_PAD : p[i] == 'x' ? BT_META_F_EXEC
                : p[i] == 'h' ? BT_META_F_HIDDEN : p[i] == 'l' ? BT_META_F_SYMLINK : 0;
    }
    return fl;
}

/* A symlink's target, relative to the torrent's folder, resolved lexically
 * into out (BT_META_MAX_DISK_PATH bytes). 1: it leaves the folder (or is the
 * folder, or absolute, or longer than a disk path may be): skipped. */
static int link_target(const bt_bdoc *d, uint32_t sp, char *out, size_t *outlen)
{
    uint32_t depth = 0;
    size_t w = 0;
    for (uint32_t c = bt_bfirst(d, sp); c; c = bt_bnext(d, sp, c)) {
        size_t n;
        const char *p = bt_bstr(d, c, &n);
        if (n == 0 || (n == 1 && p[0] == '.'))
            continue;
        if (n == 2 && p[0] == '.' && p[1] == '.') {
            if (depth == 0)
                return 1;
            /* Back to the previous '/': each byte is stepped over once more at
             * most, so a hostile "a/../a/../..." stays linear. */
            while (w > 0 && out[w - 1] != '/')
                w--;
            if (w > 0)
                w--;
            depth--;
            continue;
        }
        if (p[0] == '/' || p[0] == '\\')
            return 1;
        char comp[BT_META_MAX_NAME];
        size_t cl = sanitize_comp(p, n, comp);
        if (!cl)
            continue;
        if (w + (depth > 0) + cl > BT_META_MAX_DISK_PATH)
            return 1;
        if (depth)
            out[w++] = '/';
        memcpy(out + w, comp, cl);
        w += cl;
        depth++;
    }
    *outlen = w;
    return depth == 0;
}

/* BitComet's pad files carry no attr, only this in their name (libtorrent
 * recognizes it too). */
static int bitcomet_pad(const bt_bdoc *d, uint32_t pt)
{
    static const char mark[] = "_____padding_file_";
    for (uint32_t c = bt_bfirst(d, pt); c; c = bt_bnext(d, pt, c)) {
        size_t n;
        const char *p = bt_bstr(d, c, &n);
        if (n >= sizeof mark - 1 && memmem(p, n, mark, sizeof mark - 1))
            return 1;
    }
    return 0;
}

static int parse_file(bt_meta *m, uint32_t ft, uint32_t fi, char *scratch, parse_err *e)
{
    const bt_bdoc *d = &m->doc;
    bt_meta_file *f = &m->files[fi];
    if (bt_btype_of(d, ft) != BT_BDICT)
        return fail(e, "file entry is not a dictionary", tok_off(d, ft));
    uint8_t fl = attr_flags(d, ft);
    /* A symlink takes no room in the torrent: its length is 0 whatever it says. */
    if (!(fl & BT_META_F_SYMLINK)) {
        uint32_t lt;
        if (get_typed(d, ft, "length", BT_BINT, "file length is not an integer", &lt, e))
            return -1;
        if (!lt)
            return fail(e, "file has no length", tok_off(d, ft));
        f->length = bt_bint(d, lt);
        if (f->length < 0)
            return fail(e, "file length is negative", tok_off(d, lt));
    }
    uint32_t pt = get_if(d, ft, "path.utf-8", BT_BLIST);
    if (!pt)
        pt = get_if(d, ft, "path", BT_BLIST);
    if (!pt && bt_bdict_get(d, ft, "path") && !(fl & BT_META_F_PAD))
        return fail(e, "file path is not a list", tok_off(d, bt_bdict_get(d, ft, "path")));
    uint32_t ncomp = pt ? d->tok[pt].aux : 0;
    if (ncomp == 0 && !(fl & BT_META_F_PAD))
        return fail(e, pt ? "file path is empty" : "file has no path", tok_off(d, pt ? pt : ft));
    for (uint32_t c = pt ? bt_bfirst(d, pt) : 0; c; c = bt_bnext(d, pt, c))
        if (bt_btype_of(d, c) != BT_BSTR)
            return fail(e, "path component is not a string", tok_off(d, c));
    if (ncomp && bitcomet_pad(d, pt))
        fl |= BT_META_F_PAD;
    f->path_tok = ncomp ? pt : 0;
    f->pad = (fl & BT_META_F_PAD) != 0;
    f->flags = fl;   /* from here on f->flags is the truth (extra_get adds to it) */

    int changed = 0;
    uint32_t depth = 0;
    size_t plen = 0;
    if (ncomp) {
        plen = sanitize_path(d, pt, scratch, &changed, &depth);
        if (plen == SIZE_MAX)
            return fail(e, PATH_TOO_LONG, tok_off(d, pt));
    } else {
        plen = (size_t)snprintf(scratch, SCRATCH_LEN, ".pad/%lld", (long long)f->length);
        changed = 1;
    }
    bt_meta_extra *x;
    if (changed) {
        if (!(x = extra_get(m, fi)) || arena_add(m, scratch, plen, &x->path_off))
            return fail(e, "out of memory", 0);
        x->path_len = (uint32_t)plen;
        f->flags |= BT_META_F_DISK;
        m->num_sanitized += !f->pad;
    }

    if (f->flags & BT_META_F_SYMLINK) {
        uint32_t sp = get_if(d, ft, "symlink path", BT_BLIST);
        if (!sp) {
            f->flags &= (uint8_t)~BT_META_F_SYMLINK;   /* libtorrent: an ordinary (empty) file */
            return 0;
        }
        for (uint32_t c = bt_bfirst(d, sp); c; c = bt_bnext(d, sp, c))
            if (bt_btype_of(d, c) != BT_BSTR)
                return fail(e, "symlink path component is not a string", tok_off(d, c));
        /* The link's content: up from its folder to the torrent's, then the target. */
        size_t w = 0, tl;
        for (uint32_t k = 1; k < depth; k++, w += 3)
            memcpy(scratch + w, "../", 3);
        /* Skipped too when the content is longer than symlink(2) takes (PATH_MAX - 1). */
        if (link_target(d, sp, scratch + w, &tl) || w + tl > BT_META_MAX_DISK_PATH) {
            f->flags |= BT_META_F_LINK_OUT;
            m->num_links_skipped++;
            return 0;
        }
        if (!(x = extra_get(m, fi)) || arena_add(m, scratch, w + tl, &x->link_off))
            return fail(e, "out of memory", 0);
        x->link_len = (uint32_t)(w + tl);
    }
    return 0;
}

static int parse_files(bt_meta *m, uint32_t info, parse_err *e)
{
    const bt_bdoc *d = &m->doc;
    uint32_t ft = get_if(d, info, "files", BT_BLIST);
    if (!ft) {
        /* Single file: `length` (libtorrent ignores a `files` that is not a list). */
        uint8_t fl = attr_flags(d, info);
        uint32_t lt;
        if (get_typed(d, info, "length", BT_BINT, "length is not an integer", &lt, e))
            return -1;
        if (!lt && !(fl & BT_META_F_SYMLINK))
            return fail(e, "info has neither length nor files", tok_off(d, info));
        int64_t len = fl & BT_META_F_SYMLINK ? 0 : bt_bint(d, lt);
        if (len < 0)
            return fail(e, "length is negative", tok_off(d, lt));
        m->files = calloc(1, sizeof *m->files);
        if (!m->files)
            return fail(e, "out of memory", 0);
        m->num_files = 1;
        fl &= (uint8_t)~(BT_META_F_SYMLINK | BT_META_F_HIDDEN);   /* no link without a folder */
        m->files[0] = (bt_meta_file){ .path_tok = 0, .length = len, .offset = 0,
                                      .pad = (fl & BT_META_F_PAD) != 0, .flags = fl };
        m->total_length = len;
        return 0;
    }

    uint32_t n = d->tok[ft].aux;
    if (n == 0)
        return fail(e, "files list is empty", tok_off(d, ft));
    if (n > BT_META_MAX_FILES)
        return fail(e, "too many files (limit " LIMIT_STR(BT_META_MAX_FILES) ")", tok_off(d, ft));
    m->files = calloc(n, sizeof *m->files);
    char *scratch = malloc(SCRATCH_LEN);
    if (!m->files || !scratch) {
        free(scratch);
        return fail(e, "out of memory", 0);
    }
    m->multi_file = 1;
    int64_t total = 0;
    uint32_t i = 0;
    for (uint32_t c = bt_bfirst(d, ft); c; c = bt_bnext(d, ft, c), i++) {
        bt_meta_file *f = &m->files[i];
        if (parse_file(m, c, i, scratch, e)) {
            free(scratch);
            return -1;
        }
        m->num_files = i + 1;   /* files[0..i] are valid from here on */
        if (f->length > INT64_MAX - total) {
            free(scratch);
            return fail(e, "total length overflows", tok_off(d, c));
        }
        f->offset = total;
        total += f->length;
    }
    free(scratch);
    m->total_length = total;
    m->extra_sorted = m->num_extra;
    if (resolve_duplicates(m, e))
        return -1;
    if (m->num_extra > m->extra_sorted)
        qsort(m->extra, m->num_extra, sizeof *m->extra, extra_cmp);
    m->extra_sorted = m->num_extra;
    return 0;
}

static int parse(bt_meta *m, parse_err *e)
{
    const bt_bdoc *d = &m->doc;
    if (bt_btype_of(d, 0) != BT_BDICT)
        return fail(e, "torrent is not a dictionary", 0);
    uint32_t info = bt_bdict_get(d, 0, "info");
    if (!info)
        return fail(e, "missing info dictionary", 0);
    if (bt_btype_of(d, info) != BT_BDICT)
        return fail(e, "info is not a dictionary", tok_off(d, info));
    m->info_tok = info;
    m->trailing = d->len - d->tok[0].end;
    const bt_btok *it = &d->tok[info];
    if (bt_sha1(d->buf + it->start, it->end - it->start, m->info_hash))
        return fail(e, "SHA-1 failed", 0);

    uint32_t nt, plt, pt;
    nt = get_if(d, info, "name.utf-8", BT_BSTR);
    if (!nt && get_typed(d, info, "name", BT_BSTR, "name is not a string", &nt, e))
        return -1;
    if (get_typed(d, info, "piece length", BT_BINT, "piece length is not an integer", &plt, e)
        || get_typed(d, info, "pieces", BT_BSTR, "pieces is not a string", &pt, e))
        return -1;
    if (!nt)
        return fail(e, "info has no name", tok_off(d, info));
    m->name.p = bt_bstr(d, nt, &m->name.n);

    if (!plt)
        return fail(e, "info has no piece length", tok_off(d, info));
    m->piece_length = bt_bint(d, plt);
    if (m->piece_length <= 0)
        return fail(e, "piece length is not positive", tok_off(d, plt));
    if (m->piece_length > (int64_t)BT_META_MAX_PIECE_LEN)
        return fail(e, "piece length too large (limit " LIMIT_STR(BT_META_MAX_PIECE_LEN) ")",
                    tok_off(d, plt));

    if (!pt)
        return fail(e, "info has no pieces", tok_off(d, info));
    size_t plen;
    m->pieces = (const uint8_t *)bt_bstr(d, pt, &plen);
    if (plen % 20)
        return fail(e, "pieces length is not a multiple of 20", tok_off(d, pt));
    if (plen / 20 > BT_META_MAX_PIECES)
        return fail(e, "too many pieces (limit " LIMIT_STR(BT_META_MAX_PIECES) ")", tok_off(d, pt));
    m->num_pieces = (uint32_t)(plen / 20);

    uint32_t prt = get_if(d, info, "private", BT_BINT);   /* another type: not private */
    m->is_private = prt && bt_bint(d, prt) != 0;

    if (parse_files(m, info, e))
        return -1;

    /* The name on disk. */
    char comp[BT_META_MAX_NAME];
    size_t cl = sanitize_comp(m->name.p, m->name.n, comp);
    uint32_t off;
    if (cl == 0 && !m->multi_file)
        return fail(e, m->name.n ? "name has nothing usable as a file name" : "name is empty",
                    tok_off(d, nt));
    if (cl == 0) {
        /* A folder named after the torrent, as libtorrent does. */
        for (int i = 0; i < 20; i++) {
            static const char hex[] = "0123456789abcdef";
            comp[2 * i] = hex[m->info_hash[i] >> 4];
            comp[2 * i + 1] = hex[m->info_hash[i] & 15];
        }
        cl = 40;
    }
    if (cl == m->name.n && !memcmp(comp, m->name.p, cl)) {
        m->disk_name = m->name;
    } else {
        if (arena_add(m, comp, cl, &off))
            return fail(e, "out of memory", 0);
        m->disk_name.n = cl;
        m->name_off = off;
        m->name_in_arena = 1;
        if (!m->multi_file) {
            m->files[0].flags |= BT_META_F_DISK;
            m->num_sanitized += !m->files[0].pad;
        }
    }
    if (m->name_in_arena)
        m->disk_name.p = m->arena + m->name_off;   /* the arena is final now */

    if (m->total_length == 0)
        return fail(e, "torrent has no data (total length 0)", tok_off(d, info));
    /* total > 0 here, so the division cannot overflow the way total + pl - 1 could. */
    int64_t want = (m->total_length - 1) / m->piece_length + 1;
    if (want != (int64_t)m->num_pieces)
        return fail(e, "number of pieces does not match total length", tok_off(d, pt));
    return 0;
}

int bt_meta_parse(bt_meta *m, const char *buf, size_t len, const char **err, size_t *err_off)
{
    memset(m, 0, sizeof *m);
    if (len > BT_META_MAX_SIZE) {
        *err = "torrent larger than 64 MiB";
        *err_off = BT_META_MAX_SIZE;   /* the first byte past the limit */
        return -1;
    }
    bt_berr be = { 0 };
    if (bt_bdecode(&m->doc, buf, len, BT_BDEC_TOLERANT | BT_BDEC_ALLOW_TRAILING,
                   BT_META_MAX_TOKENS, &be)) {
        *err = be.msg ? be.msg : "invalid bencoding";
        if (be.limit)
            *err = "too many tokens (limit " LIMIT_STR(BT_META_MAX_TOKENS) ")";
        *err_off = be.offset;
        bt_bdoc_free(&m->doc);
        memset(m, 0, sizeof *m);
        return -1;
    }
    parse_err e = { 0 };
    if (parse(m, &e)) {
        *err = e.msg;
        *err_off = e.off;
        bt_meta_free(m);
        return -1;
    }
    return 0;
}

void bt_meta_free(bt_meta *m)
{
    bt_bdoc_free(&m->doc);
    free(m->files);
    free(m->extra);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

bt_str bt_meta_path_comp(const bt_meta *m, uint32_t f, uint32_t k)
{
    const bt_meta_file *file = &m->files[f];
    if (file->path_tok == 0)
        return m->name;
    bt_str s;
    s.p = bt_bstr(&m->doc, file->path_tok + 1 + k, &s.n);
    return s;
}

size_t bt_meta_disk_path(const bt_meta *m, uint32_t f, char *buf, size_t cap)
{
    const bt_meta_file *file = &m->files[f];
    const bt_meta_extra *x = file->flags & BT_META_F_EXTRA ? extra_find(m, f) : NULL;
    const char *p = NULL;
    size_t n = 0;
    if (!m->multi_file) {
        p = m->disk_name.p;
        n = m->disk_name.n;
    } else if (x && x->path_len) {
        p = m->arena + x->path_off;
        n = x->path_len;
    }
    if (p) {
        if (n < cap) {
            memcpy(buf, p, n);
            buf[n] = '\0';
        }
        return n;
    }
    for (uint32_t k = 0, nc = bt_meta_ncomp(m, f); k < nc; k++) {
        bt_str c = bt_meta_path_comp(m, f, k);
        if (k) {
            if (n + 1 < cap)
                buf[n] = '/';
            n++;
        }
        if (n + c.n < cap)
            memcpy(buf + n, c.p, c.n);
        n += c.n;
    }
    if (n < cap)
        buf[n] = '\0';
    return n;
}

bt_str bt_meta_link_target(const bt_meta *m, uint32_t f)
{
    const bt_meta_file *file = &m->files[f];
    const bt_meta_extra *x = file->flags & BT_META_F_EXTRA ? extra_find(m, f) : NULL;
    if (!x || !x->link_len)
        return (bt_str){ NULL, 0 };
    return (bt_str){ m->arena + x->link_off, x->link_len };
}

int64_t bt_meta_piece_size(const bt_meta *m, uint32_t i)
{
    if (i + 1 < m->num_pieces)
        return m->piece_length;
    return m->total_length - (int64_t)(m->num_pieces - 1) * m->piece_length;
}
