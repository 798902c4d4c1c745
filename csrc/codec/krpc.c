/* krpc.c: BEP 5 KRPC messages (krpc.h). */
#include "codec/krpc.h"

#include <string.h>

#include "codec/bencode.h"

static const char *const METHODS[] = { "unknown", "ping", "find_node", "get_peers", "announce_peer" };

const char *bt_krpc_method_name(bt_krpc_method m)
{
    return (unsigned)m < sizeof METHODS / sizeof *METHODS ? METHODS[m] : "unknown";
}

/* The string value of key in dict t: 1 found (p, n set), 0 absent, -1 present but not a string. */
static int get_str(const bt_bdoc *d, uint32_t t, const char *key, const uint8_t **p, size_t *n)
{
    uint32_t v = bt_bdict_get(d, t, key);
    if (!v)
        return 0;
    if (bt_btype_of(d, v) != BT_BSTR)
        return -1;
    *p = (const uint8_t *)bt_bstr(d, v, n);
    return 1;
}

/* A required 20-byte string: 0 ok, -1 absent or wrong. */
static int get_id(const bt_bdoc *d, uint32_t t, const char *key, const uint8_t **out)
{
    const uint8_t *p;
    size_t n;
    if (get_str(d, t, key, &p, &n) != 1 || n != 20)
        return -1;
    *out = p;
    return 0;
}

static int parse_query(const bt_bdoc *d, uint32_t top, bt_krpc_msg *m, const char **err)
{
    const uint8_t *q;
    size_t qn;
    if (get_str(d, top, "q", &q, &qn) != 1)
        return *err = "query without a method", -1;
    m->method = BT_KRPC_UNKNOWN;
    for (int i = 1; i < (int)(sizeof METHODS / sizeof *METHODS); i++)
        if (qn == strlen(METHODS[i]) && memcmp(q, METHODS[i], qn) == 0)
            m->method = (bt_krpc_method)i;
    uint32_t a = bt_bdict_get(d, top, "a");
    if (!a || bt_btype_of(d, a) != BT_BDICT)
        return *err = "query without arguments", -1;
    if (get_id(d, a, "id", &m->id) != 0)
        return *err = "query without a 20-byte id", -1;
    m->has_id = 1;
    switch (m->method) {
    case BT_KRPC_FIND_NODE:
        if (get_id(d, a, "target", &m->target) != 0)
            return *err = "find_node without a 20-byte target", -1;
        break;
    case BT_KRPC_GET_PEERS:
        if (get_id(d, a, "info_hash", &m->info_hash) != 0)
            return *err = "get_peers without a 20-byte info_hash", -1;
        break;
    case BT_KRPC_ANNOUNCE_PEER: {
        if (get_id(d, a, "info_hash", &m->info_hash) != 0)
            return *err = "announce_peer without a 20-byte info_hash", -1;
        if (get_str(d, a, "token", &m->token, &m->token_len) != 1 || m->token_len == 0 ||
            m->token_len > BT_KRPC_MAX_TOKEN)
            return *err = "announce_peer without a valid token", -1;
        uint32_t ip = bt_bdict_get(d, a, "implied_port");
        if (ip) {
            if (bt_btype_of(d, ip) != BT_BINT)
                return *err = "implied_port is not an integer", -1;
            m->implied_port = bt_bint(d, ip) != 0;
        }
        uint32_t port = bt_bdict_get(d, a, "port");
        if (port && bt_btype_of(d, port) != BT_BINT)
            return *err = "port is not an integer", -1;
        if (!m->implied_port) {
            int64_t pv = port ? bt_bint(d, port) : 0;
            if (pv < 1 || pv > 65535)
                return *err = "announce_peer without a port in 1..65535", -1;
            m->port = (uint16_t)pv;
        }
        break;
    }
    default:
        break;
    }
    return 0;
}

static int parse_reply(const bt_bdoc *d, uint32_t top, bt_krpc_msg *m, const char **err)
{
    uint32_t r = bt_bdict_get(d, top, "r");
    if (!r || bt_btype_of(d, r) != BT_BDICT)
        return *err = "reply without a dict", -1;
    if (get_id(d, r, "id", &m->id) != 0)
        return *err = "reply without a 20-byte id", -1;
    m->has_id = 1;
    int k = get_str(d, r, "nodes", &m->nodes, &m->nodes_len);
    if (k < 0 || m->nodes_len % BT_KRPC_NODE_LEN)
        return *err = "nodes is not a multiple of 26 bytes", -1;
    k = get_str(d, r, "nodes6", &m->nodes6, &m->nodes6_len);
    if (k < 0 || m->nodes6_len % BT_KRPC_NODE6_LEN)
        return *err = "nodes6 is not a multiple of 38 bytes", -1;
    k = get_str(d, r, "token", &m->token, &m->token_len);
    if (k < 0 || (k == 1 && (m->token_len == 0 || m->token_len > BT_KRPC_MAX_TOKEN)))
        return *err = "bad token", -1;
    if (k == 0)
        m->token = NULL;
    uint32_t vals = bt_bdict_get(d, r, "values");
    if (vals) {
        if (bt_btype_of(d, vals) != BT_BLIST)
            return *err = "values is not a list", -1;
        for (uint32_t c = bt_bfirst(d, vals); c; c = bt_bnext(d, vals, c)) {
            size_t n;
            const char *s;
            if (bt_btype_of(d, c) != BT_BSTR)
                return *err = "a value is not a string", -1;
            s = bt_bstr(d, c, &n);
            if (n != 6 && n != 18)
                return *err = "a value is not 6 or 18 bytes", -1;
            if (m->nvalues < BT_KRPC_MAX_VALUES) {
                m->values[m->nvalues] = (const uint8_t *)s;
                m->value_len[m->nvalues++] = (uint8_t)n;
            }
        }
    }
    return 0;
}

static int parse_error(const bt_bdoc *d, uint32_t top, bt_krpc_msg *m, const char **err)
{
    uint32_t e = bt_bdict_get(d, top, "e");
    if (!e || bt_btype_of(d, e) != BT_BLIST || d->tok[e].aux != 2)
        return *err = "error without a [code, message] list", -1;
    uint32_t c = bt_bfirst(d, e), s = bt_bnext(d, e, c);
    if (bt_btype_of(d, c) != BT_BINT || bt_btype_of(d, s) != BT_BSTR)
        return *err = "error without a [code, message] list", -1;
    m->err_code = bt_bint(d, c);
    size_t n;
    const char *txt = bt_bstr(d, s, &n);
    if (n > BT_KRPC_MAX_ERRMSG)
        n = BT_KRPC_MAX_ERRMSG;
    for (size_t i = 0; i < n; i++)   /* printable only: it may reach a log or a terminal */
        m->err_msg[i] = (txt[i] >= 0x20 && txt[i] < 0x7f) ? txt[i] : '?';
    m->err_msg[n] = '\0';
    return 0;
}

int bt_krpc_parse(const uint8_t *p, size_t n, bt_krpc_msg *m, const char **err)
{
    memset(m, 0, offsetof(bt_krpc_msg, values));
    m->nvalues = 0;
    m->err_code = 0;
    m->err_msg[0] = '\0';
    if (n == 0)
        return *err = "empty datagram", -1;
    if (n > BT_KRPC_MAX_DATAGRAM)
        return *err = "datagram too large", -1;
    if (p[0] != 'd')
        return *err = "not a dict", -1;
    bt_bdoc d;
    bt_berr be;
    if (bt_bdecode(&d, (const char *)p, n, BT_BDEC_ALLOW_UNSORTED, BT_KRPC_MAX_TOKENS, &be) != 0)
        return *err = be.msg, -1;
    int rc = -1;
    const uint8_t *y;
    size_t yn;
    if (get_str(&d, 0, "t", &m->tid, &m->tid_len) != 1 || m->tid_len == 0 || m->tid_len > BT_KRPC_MAX_TID) {
        m->tid = NULL;
        m->tid_len = 0;
        *err = "bad transaction id";
        goto out;
    }
    if (get_str(&d, 0, "y", &y, &yn) != 1 || yn != 1 || (y[0] != 'q' && y[0] != 'r' && y[0] != 'e')) {
        *err = "bad message type";
        goto out;
    }
    m->type = y[0] == 'q' ? BT_KRPC_QUERY : y[0] == 'r' ? BT_KRPC_REPLY : BT_KRPC_ERROR;
    rc = m->type == BT_KRPC_QUERY ? parse_query(&d, 0, m, err)
       : m->type == BT_KRPC_REPLY ? parse_reply(&d, 0, m, err) : parse_error(&d, 0, m, err);
out:
    bt_bdoc_free(&d);
    if (rc != 0)
        m->nvalues = 0;
    return rc;
}

/* ---- builders: keys in sorted order (BEP 3 dictionaries) ---- */

static int key(bt_buf *b, const char *k)
{
    return bt_benc_str(b, k, strlen(k));
}

static int kstr(bt_buf *b, const char *k, const void *v, size_t n)
{
    return key(b, k) || bt_benc_str(b, v, n);
}

static int kint(bt_buf *b, const char *k, int64_t v)
{
    return key(b, k) || bt_benc_int(b, v);
}

/* The envelope's tail after the body: t, v, y (sorted after a/e/r). */
static int tail(bt_buf *b, const uint8_t *tid, size_t tid_len, const uint8_t *v, char y)
{
    char ys[1] = { y };
    return kstr(b, "t", tid, tid_len) || (v && kstr(b, "v", v, 4)) || kstr(b, "y", ys, 1) || bt_buf_putc(b, 'e');
}

int bt_krpc_build_query(bt_buf *b, const bt_krpc_query *q)
{
    size_t start = b->len;
    int bad = bt_buf_putc(b, 'd') || key(b, "a") || bt_buf_putc(b, 'd') || kstr(b, "id", q->id, 20);
    switch (q->method) {
    case BT_KRPC_FIND_NODE:
        bad = bad || kstr(b, "target", q->target, 20);
        break;
    case BT_KRPC_GET_PEERS:
        bad = bad || kstr(b, "info_hash", q->target, 20);
        break;
    case BT_KRPC_ANNOUNCE_PEER:
        bad = bad || (q->implied_port && kint(b, "implied_port", 1)) || kstr(b, "info_hash", q->target, 20) ||
              kint(b, "port", q->port) || kstr(b, "token", q->token, q->token_len);
        break;
    default:
        break;
    }
    const char *name = bt_krpc_method_name(q->method);
    bad = bad || bt_buf_putc(b, 'e') || kstr(b, "q", name, strlen(name)) || tail(b, q->tid, q->tid_len, q->v, 'q');
    if (bad)
        b->len = start;
    return bad ? -1 : 0;
}

int bt_krpc_build_reply(bt_buf *b, const bt_krpc_reply *r)
{
    size_t start = b->len;
    int bad = bt_buf_putc(b, 'd') || key(b, "r") || bt_buf_putc(b, 'd') || kstr(b, "id", r->id, 20) ||
              (r->nodes && kstr(b, "nodes", r->nodes, r->nodes_len)) ||
              (r->token && kstr(b, "token", r->token, r->token_len));
    if (!bad && r->values) {
        bad = key(b, "values") || bt_buf_putc(b, 'l');
        for (uint32_t i = 0; !bad && i < r->nvalues; i++)
            bad = bt_benc_str(b, r->values + 6 * i, 6);
        bad = bad || bt_buf_putc(b, 'e');
    }
    bad = bad || bt_buf_putc(b, 'e') || tail(b, r->tid, r->tid_len, r->v, 'r');
    if (bad)
        b->len = start;
    return bad ? -1 : 0;
}

int bt_krpc_build_error(bt_buf *b, const uint8_t *tid, size_t tid_len, int code, const char *msg)
{
    size_t start = b->len;
    int bad = bt_buf_putc(b, 'd') || key(b, "e") || bt_buf_putc(b, 'l') || bt_benc_int(b, code) ||
              bt_benc_str(b, msg, strlen(msg)) || bt_buf_putc(b, 'e') || tail(b, tid, tid_len, NULL, 'e');
    if (bad)
        b->len = start;
    return bad ? -1 : 0;
}
