/* metainfo.c: .torrent parsing and validation; what is accepted is listed in
 * metainfo.h. One pass over the bencode tokens, then one sort of the file paths
 * to find duplicates. */
#include "codec/metainfo.h"

#include <stdlib.h>
#include <string.h>

#include "core/sha1.h"

/* A limit's value inside an error message (the limits are decimal literals). */
#define LIMIT_STR_(x) #x
#define LIMIT_STR(x) LIMIT_STR_(x)
_Static_assert(BT_META_MAX_SIZE == 64u << 20, "the size error message says 64 MiB");
_Static_assert(sizeof(bt_meta_file) == 24, "the memory figures in metainfo.h count on it");
_Static_assert(BT_META_MAX_PATH_DEPTH <= UINT8_MAX, "bt_meta_file.ncomp is 8 bits");

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

/* A path component that cannot climb out of the download folder nor be absolute. */
static const char *component_problem(const char *p, size_t n)
{
    if (n == 0)
        return "empty path component";
    if (n > BT_META_MAX_NAME)
        return "path component is longer than 255 bytes (the file systems' name limit)";
    if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
        return "path component is '.' or '..'";
    if (memchr(p, '/', n))
        return "path component contains '/'";
    if (memchr(p, '\\', n))
        return "path component contains '\\'";
    if (memchr(p, '\0', n))
        return "path component contains a NUL byte";
    return NULL;
}

/* ---- duplicate paths ------------------------------------------------------
 * The full paths of the non-pad files go into one open-addressing hash table
 * (sequential walk over the files: sorting them was 20x slower on 100,000
 * files for lack of cache locality). A path already there is a duplicate.
 * Then the proper prefixes of every path are looked up: a prefix that is a
 * file means that file is a folder of another. Only the depths some file has
 * are looked up (none when all paths have the same depth, as in a torrent of
 * one folder level).
 *
 * Only files are stored, never their folders: the table is sized once, 2 to 4
 * slots of 16 bytes a file. Storing every folder prefix too (as this once did)
 * let a torrent of long paths of distinct folders cost an entry per path
 * component: 1 GB for 140,000 paths 64 deep. Now such a torrent costs lookups.
 *
 * The hash is 64-bit and seeded per parse (from an allocation address, which
 * ASLR varies), so a hostile torrent cannot aim many paths at one slot. Every
 * match is confirmed by comparing the paths, so an error is never a hash
 * accident.
 *
 * Which file is reported is the same as one pass in file order would: the
 * first file that clashes with an earlier one (as a duplicate, as a folder of
 * it, or because it is a folder of the later file). */

typedef struct path_ent {
    uint64_t h;       /* hash of the file's whole path */
    uint32_t file;    /* UINT32_MAX: empty slot */
} path_ent;

typedef struct path_set {
    path_ent *e;
    size_t mask;      /* slots - 1; slots is a power of two >= 2 x files */
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

/* h[k] = hash of the first k components of file f's path, k = 0..upto. */
static void path_hashes(const bt_meta *m, uint32_t f, uint32_t upto, uint64_t seed, uint64_t *h)
{
    const bt_meta_file *file = &m->files[f];
    h[0] = seed;
    for (uint32_t k = 0; k < upto; k++) {
        size_t n;
        const char *p = bt_bstr(&m->doc, file->path_tok + 1 + k, &n);
        h[k + 1] = comp_hash(h[k], p, n);
    }
}

/* The first `depth` components of file fb's path are file fa's whole path. */
static int is_prefix(const bt_meta *m, uint32_t fa, uint32_t fb, uint32_t depth)
{
    const bt_bdoc *d = &m->doc;
    if (m->files[fa].ncomp != depth)
        return 0;
    /* Components of a validated path are consecutive string tokens. */
    for (uint32_t k = 0; k < depth; k++) {
        size_t na, nb;
        const char *pa = bt_bstr(d, m->files[fa].path_tok + 1 + k, &na);
        const char *pb = bt_bstr(d, m->files[fb].path_tok + 1 + k, &nb);
        if (na != nb || memcmp(pa, pb, na))
            return 0;
    }
    return 1;
}

/* The slot holding the file whose whole path is the first `depth` components
 * of file f's (hash h), or the empty slot where it would go. */
static path_ent *set_slot(const path_set *s, const bt_meta *m, uint64_t h, uint32_t depth, uint32_t f)
{
    size_t j = h & s->mask;
    for (; s->e[j].file != UINT32_MAX; j = (j + 1) & s->mask)
        if (s->e[j].h == h && is_prefix(m, s->e[j].file, f, depth))
            break;
    return &s->e[j];
}

static int check_duplicates(bt_meta *m, parse_err *e)
{
    path_set s;
    size_t slots = 1024;
    while (slots < 2 * (size_t)m->num_files)
        slots *= 2;
    s.e = malloc(slots * sizeof *s.e);
    if (!s.e)
        return fail(e, "out of memory", 0);
    s.mask = slots - 1;
    for (size_t i = 0; i < slots; i++)
        s.e[i].file = UINT32_MAX;
    const uint64_t seed = mix(0x243f6a8885a308d3ull, (uint64_t)(uintptr_t)s.e);
    uint64_t h[BT_META_MAX_PATH_DEPTH + 1];

    /* Whole paths, in file order, up to the first duplicate. */
    uint32_t dup = m->num_files;
    uint64_t depths = 0;   /* bit d - 1: a stored file has d components */
    for (uint32_t f = 0; f < m->num_files && dup == m->num_files; f++) {
        if (m->files[f].pad)
            continue;
        uint32_t n = m->files[f].ncomp;
        path_hashes(m, f, n, seed, h);
        path_ent *slot = set_slot(&s, m, h[n], n, f);
        if (slot->file != UINT32_MAX)
            dup = f;
        else
            *slot = (path_ent){ .h = h[n], .file = f };
        depths |= 1ull << (n - 1);
    }
    /* Prefixes of the files before it: a pair (a file, a file inside it)
     * clashes at the later of the two; keep the earliest such. */
    uint32_t clash = dup;
    for (uint32_t f = 0; f < clash; f++) {
        uint32_t n = m->files[f].ncomp;
        /* depths 1 .. n - 1 that some file has (n <= 64: the shift is < 64) */
        uint64_t want = depths & ((1ull << (n - 1)) - 1);
        if (m->files[f].pad || !want)
            continue;
        uint32_t deepest = 64 - (uint32_t)__builtin_clzll(want);   /* < n: the name is not hashed */
        path_hashes(m, f, deepest, seed, h);
        for (uint32_t d = 1; d <= deepest; d++) {
            if (!(want >> (d - 1) & 1))
                continue;
            uint32_t other = set_slot(&s, m, h[d], d, f)->file;
            if (other != UINT32_MAX) {
                uint32_t later = other > f ? other : f;
                if (later < clash)
                    clash = later;
            }
        }
    }
    free(s.e);
    if (clash < dup)
        return fail(e, "file path is also a folder of another file",
                    tok_off(&m->doc, m->files[clash].path_tok));
    if (dup < m->num_files)
        return fail(e, "duplicate file path", tok_off(&m->doc, m->files[dup].path_tok));
    return 0;
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

static int parse_file(bt_meta *m, uint32_t ft, bt_meta_file *f, parse_err *e)
{
    const bt_bdoc *d = &m->doc;
    uint32_t lt, pt, at;
    if (bt_btype_of(d, ft) != BT_BDICT)
        return fail(e, "file entry is not a dictionary", tok_off(d, ft));
    if (get_typed(d, ft, "length", BT_BINT, "file length is not an integer", &lt, e)
        || get_typed(d, ft, "path", BT_BLIST, "file path is not a list", &pt, e)
        || get_typed(d, ft, "attr", BT_BSTR, "file attr is not a string", &at, e))
        return -1;
    if (!lt)
        return fail(e, "file has no length", tok_off(d, ft));
    if (!pt)
        return fail(e, "file has no path", tok_off(d, ft));
    f->length = bt_bint(d, lt);
    if (f->length < 0)
        return fail(e, "file length is negative", tok_off(d, lt));
    uint32_t ncomp = d->tok[pt].aux;
    if (ncomp == 0)
        return fail(e, "file path is empty", tok_off(d, pt));
    if (ncomp > BT_META_MAX_PATH_DEPTH)
        return fail(e, "file path has too many components", tok_off(d, pt));
    for (uint32_t c = bt_bfirst(d, pt); c; c = bt_bnext(d, pt, c)) {
        if (bt_btype_of(d, c) != BT_BSTR)
            return fail(e, "path component is not a string", tok_off(d, c));
        size_t n;
        const char *p = bt_bstr(d, c, &n);
        const char *why = component_problem(p, n);
        if (why)
            return fail(e, why, tok_off(d, c));
    }
    f->path_tok = pt;
    f->ncomp = (uint8_t)ncomp;
    f->pad = 0;
    if (at) {
        size_t n;
        const char *p = bt_bstr(d, at, &n);
        f->pad = memchr(p, 'p', n) != NULL;
    }
    return 0;
}

static int parse_files(bt_meta *m, uint32_t info, parse_err *e)
{
    const bt_bdoc *d = &m->doc;
    uint32_t lt, ft;
    if (get_typed(d, info, "length", BT_BINT, "length is not an integer", &lt, e)
        || get_typed(d, info, "files", BT_BLIST, "files is not a list", &ft, e))
        return -1;
    if (lt && ft)
        return fail(e, "info has both length and files", tok_off(d, ft));
    if (!lt && !ft)
        return fail(e, "info has neither length nor files", tok_off(d, info));

    if (lt) {
        int64_t len = bt_bint(d, lt);
        if (len < 0)
            return fail(e, "length is negative", tok_off(d, lt));
        m->files = calloc(1, sizeof *m->files);
        if (!m->files)
            return fail(e, "out of memory", 0);
        m->num_files = 1;
        m->files[0] = (bt_meta_file){ .path_tok = 0, .ncomp = 1, .length = len, .offset = 0 };
        m->total_length = len;
        return 0;
    }

    uint32_t n = d->tok[ft].aux;
    if (n == 0)
        return fail(e, "files list is empty", tok_off(d, ft));
    if (n > BT_META_MAX_FILES)
        return fail(e, "too many files (limit " LIMIT_STR(BT_META_MAX_FILES) ")", tok_off(d, ft));
    m->files = calloc(n, sizeof *m->files);
    if (!m->files)
        return fail(e, "out of memory", 0);
    m->multi_file = 1;
    int64_t total = 0;
    uint32_t i = 0;
    for (uint32_t c = bt_bfirst(d, ft); c; c = bt_bnext(d, ft, c), i++) {
        bt_meta_file *f = &m->files[i];
        if (parse_file(m, c, f, e))
            return -1;
        m->num_files = i + 1;   /* files[0..i] are valid from here on */
        if (f->length > INT64_MAX - total)
            return fail(e, "total length overflows", tok_off(d, c));
        f->offset = total;
        total += f->length;
    }
    m->total_length = total;
    return check_duplicates(m, e);
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
    const bt_btok *it = &d->tok[info];
    if (bt_sha1(d->buf + it->start, it->end - it->start, m->info_hash))
        return fail(e, "SHA-1 failed", 0);

    uint32_t nt, plt, pt, prt;
    if (get_typed(d, info, "name", BT_BSTR, "name is not a string", &nt, e)
        || get_typed(d, info, "piece length", BT_BINT, "piece length is not an integer", &plt, e)
        || get_typed(d, info, "pieces", BT_BSTR, "pieces is not a string", &pt, e)
        || get_typed(d, info, "private", BT_BINT, "private is not an integer", &prt, e))
        return -1;
    if (!nt)
        return fail(e, "info has no name", tok_off(d, info));
    m->name.p = bt_bstr(d, nt, &m->name.n);
    if (m->name.n == 0)
        return fail(e, "name is empty", tok_off(d, nt));
    const char *why = component_problem(m->name.p, m->name.n);
    if (why)
        return fail(e, why, tok_off(d, nt));

    if (!plt)
        return fail(e, "info has no piece length", tok_off(d, info));
    m->piece_length = bt_bint(d, plt);
    if (m->piece_length <= 0)
        return fail(e, "piece length is not positive", tok_off(d, plt));
    if (m->piece_length > (int64_t)BT_META_MAX_PIECE_LEN)
        return fail(e, "piece length too large", tok_off(d, plt));

    if (!pt)
        return fail(e, "info has no pieces", tok_off(d, info));
    size_t plen;
    m->pieces = (const uint8_t *)bt_bstr(d, pt, &plen);
    if (plen % 20)
        return fail(e, "pieces length is not a multiple of 20", tok_off(d, pt));
    if (plen / 20 > BT_META_MAX_PIECES)
        return fail(e, "too many pieces (limit " LIMIT_STR(BT_META_MAX_PIECES) ")", tok_off(d, pt));
    m->num_pieces = (uint32_t)(plen / 20);

    m->is_private = prt && bt_bint(d, prt) != 0;

    if (parse_files(m, info, e))
        return -1;
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
    if (bt_bdecode(&m->doc, buf, len, BT_BDEC_ALLOW_UNSORTED, BT_META_MAX_TOKENS, &be)) {
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

int64_t bt_meta_piece_size(const bt_meta *m, uint32_t i)
{
    if (i + 1 < m->num_pieces)
        return m->piece_length;
    return m->total_length - (int64_t)(m->num_pieces - 1) * m->piece_length;
}
