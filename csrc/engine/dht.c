/* dht.c: a BEP 5 node on the libev loop (dht.h). */
#define _GNU_SOURCE
#include "engine/dht.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/sha1.h"

#define TICK_S        0.2     /* query timeouts, lookup steps */
#define MAINT_S       1.0     /* table upkeep, token rotation, peer expiry */
#define REFRESH_MAX   24      /* ranges refreshed after the self lookup (2^24 nodes' worth) */
#define SELF_LOOKUP_S 10.0    /* s between lookups of our own id while the table is thin */
#define PING_AGAIN_S  60.0    /* s before a questionable node is pinged again */
#define PINGS_PER_S   8       /* questionable nodes pinged per upkeep round */
#define STORE_SLOTS   4096    /* hash chains of the peer store (a power of two) */

static const uint8_t VERSION[4] = { 'B', 'L', 0x01, 0x00 };

typedef struct rnode {
    uint8_t id[20];
    uint8_t ip[4];
    uint16_t port;            /* host order */
    double last_reply;        /* 0: never answered */
    double last_query;        /* it queried us */
    double last_ping;
    uint8_t fails;
} rnode;

typedef struct bucket {
    rnode n[BT_DHT_K];
    int count;
    rnode repl;               /* the replacement candidate (BEP 5) */
    bool has_repl;
    double changed;           /* last time a node in it answered or was added */
} bucket;

enum { C_NEW = 0, C_QUERIED, C_REPLIED, C_FAILED };

typedef struct cand {
    uint8_t id[20];
    uint8_t ip[4];
    uint16_t port;
    uint8_t state;
    uint8_t tlen;
    uint8_t token[BT_KRPC_MAX_TOKEN];
} cand;

typedef struct lookup {
    struct lookup *next;
    int id;                   /* 0: internal (no callback) */
    bt_dht_kind kind;
    uint8_t target[20];
    uint16_t port;            /* announce: 0 = implied */
    bool announcing, finished;
    cand c[BT_DHT_LOOKUP_CANDS];
    int nc;
    int inflight;
    uint32_t replied, announced;
    double started;
    uint8_t *peers;           /* 6 bytes each */
    uint32_t npeers, pcap;
} lookup;

typedef struct txn {
    bool used;
    uint16_t seq;
    uint8_t ip[4];
    uint16_t port;
    bt_krpc_method method;
    lookup *lk;               /* NULL: a table ping, a bootstrap, or a direct query */
    int qid;                  /* a direct query's id (0: none) */
    uint8_t node[20];         /* the node asked (lookups), to find its candidate */
    double sent;
} txn;

typedef struct speer { uint8_t ip[4]; uint16_t port; double at; } speer;
typedef struct sentry {
    struct sentry *next;
    uint8_t ih[20];
    speer *p;
    uint32_t n, cap;
} sentry;

typedef struct ipslot { uint8_t ip[4]; bool used; bt_bucket b; } ipslot;

struct bt_dht {
    struct ev_loop *loop;
    bt_dht_cb cb;
    int fd;
    uint16_t port;
    uint8_t id[20];
    bool restrict_ips;
    ev_io rw;
    ev_timer tick, maint;
    bucket b[160];
    int nb;
    txn tx[BT_DHT_MAX_TXN];
    uint32_t ntx;
    uint16_t seq;
    lookup *lookups;
    int next_id;
    double last_self;
    bool want_self;           /* a lookup of our own id at the next tick */
    bool want_refresh;        /* the self lookup ended: refresh the ranges farther than our neighbour */
    uint8_t secret[16], prev_secret[16];
    double rotated, token_rotate, peer_ttl;
    sentry *store[STORE_SLOTS];
    uint32_t nhashes, npeers;
    bt_bucket answers, queries;
    double answer_rate_ip;
    ipslot *ips;              /* BT_DHT_IP_SLOTS, NULL: no per-IP limit */
    int depth;                /* callbacks into the owner in progress */
    bool dead;                /* freed while in a callback: free when it returns */
    bt_buf out;
    size_t reflect_left;      /* bytes we may still send because of the query being handled:
                                 BT_DHT_AMPLIFY times its size (SIZE_MAX otherwise) */
    bt_dht_stats st;
};

/* ---- small helpers ---- */

static void rnd(void *p, size_t n)
{
    uint8_t *b = p;
    while (n) {
        ssize_t r = getrandom(b, n, 0);
        if (r <= 0) {   /* no pool (never on Linux >= 3.17): a weak fallback beats aborting */
            for (size_t i = 0; i < n; i++)
                b[i] = (uint8_t)(rand() ^ (int)(ev_time() * 1e6));
            return;
        }
        b += r;
        n -= (size_t)r;
    }
}

static int cpl(const uint8_t *a, const uint8_t *b)
{
    for (int i = 0; i < 20; i++) {
        uint8_t x = a[i] ^ b[i];
        if (x)
            return i * 8 + __builtin_clz(x) - 24;
    }
    return 160;
}

/* <0: a is closer to t than b. */
static int closer(const uint8_t *t, const uint8_t *a, const uint8_t *b)
{
    for (int i = 0; i < 20; i++) {
        uint8_t x = a[i] ^ t[i], y = b[i] ^ t[i];
        if (x != y)
            return x < y ? -1 : 1;
    }
    return 0;
}

static void compact(uint8_t out[26], const uint8_t id[20], const uint8_t ip[4], uint16_t port)
{
    memcpy(out, id, 20);
    memcpy(out + 20, ip, 4);
    out[24] = (uint8_t)(port >> 8);
    out[25] = (uint8_t)port;
}

static bool good(const rnode *n, double now)
{
    return n->fails < BT_DHT_BAD_FAILS && n->last_reply > 0 &&
           (now - n->last_reply < BT_DHT_GOOD_TIME || now - n->last_query < BT_DHT_GOOD_TIME);
}

static bool bad(const rnode *n)
{
    return n->fails >= BT_DHT_BAD_FAILS;
}

static double now_of(const bt_dht *d)
{
    return ev_now(d->loop);
}

/* ---- sending ---- */

static void send_to(bt_dht *d, const uint8_t ip[4], uint16_t port, const bt_buf *b)
{
    if (b->len > d->reflect_left)
        return;
    if (d->reflect_left != SIZE_MAX)
        d->reflect_left -= b->len;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
    memcpy(&sa.sin_addr, ip, 4);
    ssize_t w = sendto(d->fd, b->data, b->len, 0, (struct sockaddr *)&sa, sizeof sa);
    if (w > 0)
        d->st.bytes_out += (uint64_t)w;
}

static void txn_free(bt_dht *d, txn *t)
{
    t->used = false;
    d->ntx--;
}

/* Send a query; NULL when no slot or the outgoing cap says wait. */
static txn *send_query(bt_dht *d, const uint8_t ip[4], uint16_t port, bt_krpc_query *q)
{
    if (d->ntx >= BT_DHT_MAX_TXN)
        return NULL;
    bt_bucket_refill(&d->queries, now_of(d));
    if (bt_bucket_take(&d->queries, 1) < 1)
        return NULL;
    uint32_t slot = 0;
    while (d->tx[slot].used)   /* ntx < MAX, so one is free */
        slot++;
    txn *t = &d->tx[slot];
    memset(t, 0, sizeof *t);
    t->used = true;
    t->seq = ++d->seq;
    memcpy(t->ip, ip, 4);
    t->port = port;
    t->method = q->method;
    t->sent = now_of(d);
    uint8_t tid[4] = { (uint8_t)(slot >> 8), (uint8_t)slot, (uint8_t)(t->seq >> 8), (uint8_t)t->seq };
    q->tid = tid;
    q->tid_len = 4;
    q->id = d->id;
    q->v = VERSION;
    d->out.len = 0;
    if (bt_krpc_build_query(&d->out, q) != 0 || d->out.len > d->reflect_left) {
        t->used = false;   /* out of memory, or over what a query we answer lets us send */
        return NULL;
    }
    d->ntx++;
    d->st.sent++;
    send_to(d, ip, port, &d->out);
    return t;
}

static txn *send_simple(bt_dht *d, const uint8_t ip[4], uint16_t port, bt_krpc_method m, const uint8_t *target)
{
    bt_krpc_query q = { .method = m, .target = target };
    return send_query(d, ip, port, &q);
}

/* ---- the routing table ---- */

static int bucket_of(const bt_dht *d, const uint8_t *id)
{
    int c = cpl(id, d->id);
    return c < d->nb - 1 ? c : d->nb - 1;
}

static rnode *find_addr(bt_dht *d, const uint8_t ip[4], uint16_t port, bucket **bk)
{
    for (int i = 0; i < d->nb; i++)
        for (int j = 0; j < d->b[i].count; j++) {
            rnode *n = &d->b[i].n[j];
            if (memcmp(n->ip, ip, 4) == 0 && (port == 0 || n->port == port)) {
                *bk = &d->b[i];
                return n;
            }
        }
    return NULL;
}

static void remove_node(bucket *b, rnode *n)
{
    int i = (int)(n - b->n);
    memmove(&b->n[i], &b->n[i + 1], (size_t)(b->count - i - 1) * sizeof *n);
    b->count--;
    if (b->has_repl) {   /* the candidate takes the place */
        b->n[b->count++] = b->repl;
        b->has_repl = false;
    }
}

static void split(bt_dht *d)
{
    bucket *last = &d->b[d->nb - 1], *nw = &d->b[d->nb];
    memset(nw, 0, sizeof *nw);
    rnode tmp[BT_DHT_K];
    int cnt = last->count;
    memcpy(tmp, last->n, sizeof tmp);
    d->nb++;
    last->count = 0;
    nw->changed = last->changed;
    for (int i = 0; i < cnt; i++) {
        bucket *to = &d->b[bucket_of(d, tmp[i].id)];
        to->n[to->count++] = tmp[i];
    }
    if (last->has_repl && bucket_of(d, last->repl.id) == d->nb - 1) {
        nw->repl = last->repl;
        nw->has_repl = true;
        last->has_repl = false;
    }
}

/* A query to ip:port is in flight. */
static bool pending_to(const bt_dht *d, const uint8_t ip[4], uint16_t port)
{
    for (uint32_t i = 0; i < BT_DHT_MAX_TXN; i++)
        if (d->tx[i].used && d->tx[i].port == port && memcmp(d->tx[i].ip, ip, 4) == 0)
            return true;
    return false;
}

/* A node answered one of our queries (replied) or queried us. */
static void heard(bt_dht *d, const uint8_t id[20], const uint8_t ip[4], uint16_t port, bool replied)
{
    double now = now_of(d);
    if (memcmp(id, d->id, 20) == 0 || port == 0)
        return;
    bucket *bk;
    rnode *n = find_addr(d, ip, port, &bk);
    if (n) {
        if (memcmp(n->id, id, 20) != 0) {   /* its id changed: a poisoning attempt or a restart */
            remove_node(bk, n);
            return;
        }
        if (replied) {
            n->last_reply = now;
            n->fails = 0;
            bk->changed = now;
        } else {
            n->last_query = now;
        }
        return;
    }
    if (d->restrict_ips && find_addr(d, ip, 0, &bk))
        return;   /* one entry per IP: one host cannot fill the table */
    int bi = bucket_of(d, id);
    bucket *b = &d->b[bi];
    if (!replied) {
        /* unknown querier: ask it something, and its answer puts it in the table */
        if ((b->count < BT_DHT_K || bi == d->nb - 1) && !pending_to(d, ip, port))
            send_simple(d, ip, port, BT_KRPC_PING, NULL);
        return;
    }
    for (int i = 0; i < b->count; i++)   /* the same id from another address: keep the first */
        if (memcmp(b->n[i].id, id, 20) == 0)
            return;
    while (b->count == BT_DHT_K && bi == d->nb - 1 && d->nb < 160) {
        split(d);
        bi = bucket_of(d, id);
        b = &d->b[bi];
    }
    rnode nn = { .port = port, .last_reply = now };
    memcpy(nn.id, id, 20);
    memcpy(nn.ip, ip, 4);
    if (b->count < BT_DHT_K) {
        b->n[b->count++] = nn;
        b->changed = now;
        if (d->nb == 1 && b->count == 1)   /* the first node (a bootstrap): look for our neighbours now */
            d->want_self = true;
        return;
    }
    for (int i = 0; i < b->count; i++)
        if (bad(&b->n[i])) {
            b->n[i] = nn;
            b->changed = now;
            return;
        }
    b->repl = nn;
    b->has_repl = true;
    /* ping the least recently heard questionable node: if it fails twice, the candidate takes its place */
    rnode *worst = NULL;
    for (int i = 0; i < b->count; i++)
        if (!good(&b->n[i], now) && (!worst || b->n[i].last_reply < worst->last_reply))
            worst = &b->n[i];
    if (worst && now - worst->last_ping > BT_DHT_QUERY_TIMEOUT) {
        worst->last_ping = now;
        send_simple(d, worst->ip, worst->port, BT_KRPC_PING, NULL);
    }
}

static void failed(bt_dht *d, const uint8_t ip[4], uint16_t port)
{
    bucket *bk;
    rnode *n = find_addr(d, ip, port, &bk);
    if (n && ++n->fails >= BT_DHT_BAD_FAILS && bk->has_repl)
        remove_node(bk, n);
}

/* The k closest non-bad nodes to target, 26-byte compact into out; returns the count. */
static int closest(const bt_dht *d, const uint8_t *target, uint8_t *out, int max, const rnode **pick)
{
    const rnode *best[BT_DHT_K * 2];
    int nbest = 0;
    if (max > BT_DHT_K * 2)
        max = BT_DHT_K * 2;
    for (int i = 0; i < d->nb; i++)
        for (int j = 0; j < d->b[i].count; j++) {
            const rnode *n = &d->b[i].n[j];
            if (bad(n))
                continue;
            int pos = nbest;
            while (pos > 0 && closer(target, n->id, best[pos - 1]->id) < 0)
                pos--;
            if (pos >= max)
                continue;
            int last = nbest < max ? nbest : max - 1;
            memmove(&best[pos + 1], &best[pos], (size_t)(last - pos) * sizeof *best);
            best[pos] = n;
            if (nbest < max)
                nbest++;
        }
    for (int i = 0; i < nbest; i++) {
        if (out)
            compact(out + 26 * i, best[i]->id, best[i]->ip, best[i]->port);
        if (pick)
            pick[i] = best[i];
    }
    return nbest;
}

/* ---- lookups ---- */

static void cand_add(bt_dht *d, lookup *l, const uint8_t *id, const uint8_t ip[4], uint16_t port)
{
    if (port == 0 || memcmp(id, d->id, 20) == 0)
        return;
    for (int i = 0; i < l->nc; i++)
        if (memcmp(l->c[i].id, id, 20) == 0 ||
            (memcmp(l->c[i].ip, ip, 4) == 0 && (d->restrict_ips || l->c[i].port == port)))
            return;
    int pos = l->nc;
    while (pos > 0 && closer(l->target, id, l->c[pos - 1].id) < 0)
        pos--;
    if (pos >= BT_DHT_LOOKUP_CANDS)
        return;
    int last = l->nc < BT_DHT_LOOKUP_CANDS ? l->nc : BT_DHT_LOOKUP_CANDS - 1;
    memmove(&l->c[pos + 1], &l->c[pos], (size_t)(last - pos) * sizeof *l->c);
    memset(&l->c[pos], 0, sizeof *l->c);
    memcpy(l->c[pos].id, id, 20);
    memcpy(l->c[pos].ip, ip, 4);
    l->c[pos].port = port;
    if (l->nc < BT_DHT_LOOKUP_CANDS)
        l->nc++;
}

static cand *cand_find(lookup *l, const uint8_t *id)
{
    for (int i = 0; i < l->nc; i++)
        if (memcmp(l->c[i].id, id, 20) == 0)
            return &l->c[i];
    return NULL;
}

static void found_peer(lookup *l, const uint8_t *v)
{
    if (l->npeers >= BT_DHT_FOUND_MAX || (v[4] == 0 && v[5] == 0))
        return;
    for (uint32_t i = 0; i < l->npeers; i++)
        if (memcmp(l->peers + 6 * i, v, 6) == 0)
            return;
    if (l->npeers == l->pcap) {
        uint32_t cap = l->pcap ? l->pcap * 2 : 32;
        uint8_t *p = realloc(l->peers, (size_t)cap * 6);
        if (!p)
            return;
        l->peers = p;
        l->pcap = cap;
    }
    memcpy(l->peers + 6 * l->npeers++, v, 6);
}

static void deliver(bt_dht *d, int id, const bt_dht_result *r)
{
    if (!id || !d->cb.done || d->dead)
        return;
    d->depth++;
    d->cb.done(d->cb.ud, id, r);
    d->depth--;
}

static void lookup_finish(bt_dht *d, lookup *l, const char *error)
{
    l->finished = true;
    if (l->id == 0 && l->kind == BT_DHT_FIND_NODE && memcmp(l->target, d->id, 20) == 0 && l->replied)
        d->want_refresh = true;
    for (uint32_t i = 0; i < BT_DHT_MAX_TXN; i++)
        if (d->tx[i].used && d->tx[i].lk == l)
            d->tx[i].lk = NULL;   /* a late answer still feeds the table */
    uint8_t close[26 * BT_DHT_K];
    uint32_t nclose = 0;
    for (int i = 0; i < l->nc && nclose < BT_DHT_K; i++)
        if (l->c[i].state == C_REPLIED)
            compact(close + 26 * nclose++, l->c[i].id, l->c[i].ip, l->c[i].port);
    bt_dht_result r = { .kind = l->kind, .error = l->replied ? NULL : (error ? error : "no node answered"),
                        .peers = l->peers, .npeers = l->npeers, .closest = close, .nclosest = nclose,
                        .replied = l->replied, .announced = l->announced };
    deliver(d, l->id, &r);
}

static void lookup_step(bt_dht *d, lookup *l)
{
    if (l->finished)
        return;
    if (l->announcing) {
        if (l->inflight == 0)
            lookup_finish(d, l, NULL);
        return;
    }
    int seen = 0, waiting = 0;
    for (int i = 0; i < l->nc && seen < BT_DHT_K; i++) {
        cand *c = &l->c[i];
        if (c->state == C_FAILED)
            continue;
        seen++;
        if (c->state != C_NEW)
            continue;
        txn *t = NULL;
        if (l->inflight < BT_DHT_ALPHA) {
            bt_krpc_method m = l->kind == BT_DHT_FIND_NODE ? BT_KRPC_FIND_NODE : BT_KRPC_GET_PEERS;
            t = send_simple(d, c->ip, c->port, m, l->target);
        }
        if (!t) {
            waiting++;   /* alpha reached or the outgoing cap: next tick */
            continue;
        }
        t->lk = l;
        memcpy(t->node, c->id, 20);
        c->state = C_QUERIED;
        l->inflight++;
    }
    if (l->inflight || waiting)
        return;
    if (l->kind != BT_DHT_ANNOUNCE) {
        lookup_finish(d, l, NULL);
        return;
    }
    /* the closest nodes that answered get our announce, with their own token */
    l->announcing = true;
    int sent = 0;
    for (int i = 0; i < l->nc && sent < BT_DHT_K; i++) {
        cand *c = &l->c[i];
        if (c->state != C_REPLIED || !c->tlen)
            continue;
        bt_krpc_query q = { .method = BT_KRPC_ANNOUNCE_PEER, .target = l->target, .token = c->token,
                            .token_len = c->tlen, .port = l->port ? l->port : d->port,
                            .implied_port = l->port == 0 };
        txn *t = send_query(d, c->ip, c->port, &q);
        if (!t)
            continue;
        t->lk = l;
        memcpy(t->node, c->id, 20);
        l->inflight++;
        sent++;
    }
    if (!l->inflight)
        lookup_finish(d, l, NULL);
}

static lookup *lookup_start(bt_dht *d, bt_dht_kind kind, const uint8_t target[20], int port, int id)
{
    const rnode *pick[BT_DHT_K * 2];
    int n = closest(d, target, NULL, BT_DHT_K * 2, pick);
    if (n == 0)
        return NULL;
    lookup *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->kind = kind;
    l->id = id;
    memcpy(l->target, target, 20);
    l->port = (uint16_t)port;
    l->started = now_of(d);
    for (int i = 0; i < n; i++)
        cand_add(d, l, pick[i]->id, pick[i]->ip, pick[i]->port);
    l->next = d->lookups;
    d->lookups = l;
    lookup_step(d, l);
    return l;
}

/* A find_node lookup of a random id that shares `bits` leading bits with ours; `flip`: and
 * differs in the next one (one bucket's range), else anything past them (our own bucket). */
static void refresh_range(bt_dht *d, int bits, bool flip)
{
    uint8_t t[20];
    rnd(t, 20);
    for (int k = 0; k < bits / 8; k++)
        t[k] = d->id[k];
    if (bits % 8) {
        uint8_t mask = (uint8_t)(0xff << (8 - bits % 8));
        t[bits / 8] = (uint8_t)((d->id[bits / 8] & mask) | (t[bits / 8] & ~mask));
    }
    if (flip)
        t[bits / 8] = (uint8_t)((t[bits / 8] & ~(0x80 >> (bits % 8))) | (~d->id[bits / 8] & (0x80 >> (bits % 8))));
    lookup_start(d, BT_DHT_FIND_NODE, t, 0, 0);
}

/* Kademlia's join: once the lookup of our own id has found our neighbours, one lookup in
 * each range farther than the closest of them, so that every bucket learns its nodes (else
 * a node that joined through its own half of the id space may know nobody in the other,
 * and its lookups end there). */
static void refresh_far(bt_dht *d)
{
    const rnode *near[1];
    if (closest(d, d->id, NULL, 1, near) == 0)
        return;
    int p = cpl(near[0]->id, d->id);
    for (int bits = 0; bits < p && bits < REFRESH_MAX; bits++)
        refresh_range(d, bits, true);
}

/* Free finished lookups (after their callback returned). */
static void lookups_reap(bt_dht *d)
{
    for (lookup **pp = &d->lookups; *pp;) {
        lookup *l = *pp;
        if (l->finished) {
            *pp = l->next;
            free(l->peers);
            free(l);
        } else {
            pp = &l->next;
        }
    }
}

/* ---- the peer store ---- */

static uint32_t slot_of(const uint8_t ih[20])
{
    uint32_t h;
    memcpy(&h, ih, 4);   /* info-hashes are uniform */
    return h & (STORE_SLOTS - 1);
}

static sentry *store_find(bt_dht *d, const uint8_t ih[20])
{
    for (sentry *e = d->store[slot_of(ih)]; e; e = e->next)
        if (memcmp(e->ih, ih, 20) == 0)
            return e;
    return NULL;
}

static void store_add(bt_dht *d, const uint8_t ih[20], const uint8_t ip[4], uint16_t port)
{
    double now = now_of(d);
    sentry *e = store_find(d, ih);
    if (!e) {
        if (d->nhashes >= BT_DHT_MAX_HASHES || !(e = calloc(1, sizeof *e)))
            return;
        memcpy(e->ih, ih, 20);
        e->next = d->store[slot_of(ih)];
        d->store[slot_of(ih)] = e;
        d->nhashes++;
    }
    uint32_t oldest = 0;
    for (uint32_t i = 0; i < e->n; i++) {
        if (memcmp(e->p[i].ip, ip, 4) == 0 && e->p[i].port == port) {
            e->p[i].at = now;
            return;
        }
        if (e->p[i].at < e->p[oldest].at)
            oldest = i;
    }
    if (e->n == BT_DHT_MAX_PEERS) {   /* full: the oldest announce makes room */
        memcpy(e->p[oldest].ip, ip, 4);
        e->p[oldest].port = port;
        e->p[oldest].at = now;
        return;
    }
    if (e->n == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 8;
        speer *p = realloc(e->p, (size_t)cap * sizeof *p);
        if (!p)
            return;
        e->p = p;
        e->cap = cap;
    }
    speer *s = &e->p[e->n++];
    memcpy(s->ip, ip, 4);
    s->port = port;
    s->at = now;
    d->npeers++;
}

static void store_expire(bt_dht *d, double now, bool all)
{
    for (uint32_t s = 0; s < STORE_SLOTS; s++)
        for (sentry **pp = &d->store[s]; *pp;) {
            sentry *e = *pp;
            uint32_t k = 0;
            for (uint32_t i = 0; i < e->n; i++)
                if (!all && now - e->p[i].at < d->peer_ttl)
                    e->p[k++] = e->p[i];
            d->npeers -= e->n - k;
            e->n = k;
            if (k == 0) {
                *pp = e->next;
                free(e->p);
                free(e);
                d->nhashes--;
            } else {
                pp = &e->next;
            }
        }
}

/* ---- tokens ---- */

static void make_token(const uint8_t secret[16], const uint8_t ip[4], uint8_t out[BT_DHT_TOKEN_LEN])
{
    uint8_t in[20], h[BT_SHA1_LEN];
    memcpy(in, secret, 16);
    memcpy(in + 16, ip, 4);
    bt_sha1(in, sizeof in, h);
    memcpy(out, h, BT_DHT_TOKEN_LEN);
}

static bool token_ok(const bt_dht *d, const uint8_t ip[4], const uint8_t *tok, size_t n)
{
    uint8_t a[BT_DHT_TOKEN_LEN], b[BT_DHT_TOKEN_LEN];
    if (n != BT_DHT_TOKEN_LEN)
        return false;
    make_token(d->secret, ip, a);
    make_token(d->prev_secret, ip, b);
    return memcmp(a, tok, n) == 0 || memcmp(b, tok, n) == 0;
}

/* ---- answering ---- */

static bool answer_allowed(bt_dht *d, const uint8_t ip[4])
{
    double now = now_of(d);
    bt_bucket_refill(&d->answers, now);
    if (bt_bucket_available(&d->answers) < 1)
        return false;
    if (d->ips) {
        uint32_t h;
        memcpy(&h, ip, 4);
        h = (h * 2654435761u) >> 22;   /* BT_DHT_IP_SLOTS = 1024 = 2^10 */
        ipslot *s = &d->ips[h % BT_DHT_IP_SLOTS];
        if (!s->used || memcmp(s->ip, ip, 4) != 0) {
            s->used = true;
            memcpy(s->ip, ip, 4);
            bt_bucket_init(&s->b, d->answer_rate_ip, 2 * d->answer_rate_ip);
        }
        bt_bucket_refill(&s->b, now);
        if (bt_bucket_take(&s->b, 1) < 1)
            return false;
    }
    bt_bucket_take(&d->answers, 1);
    return true;
}

static void send_error(bt_dht *d, const uint8_t ip[4], uint16_t port, const bt_krpc_msg *m, int code,
                       const char *msg)
{
    d->out.len = 0;
    if (bt_krpc_build_error(&d->out, m->tid, m->tid_len, code, msg) == 0) {
        d->st.errors_sent++;
        send_to(d, ip, port, &d->out);
    }
}

static void answer(bt_dht *d, const uint8_t ip[4], uint16_t port, const bt_krpc_msg *m)
{
    size_t budget = d->reflect_left;
    uint8_t nodes[26 * BT_DHT_K], token[BT_DHT_TOKEN_LEN];
    uint8_t vals[6 * BT_DHT_MAX_VALUES];
    bt_krpc_reply r = { .tid = m->tid, .tid_len = m->tid_len, .id = d->id, .v = VERSION };
    switch (m->method) {
    case BT_KRPC_PING:
        break;
    case BT_KRPC_FIND_NODE:
        r.nodes = nodes;
        r.nodes_len = 26 * (size_t)closest(d, m->target, nodes, BT_DHT_K, NULL);
        break;
    case BT_KRPC_GET_PEERS: {
        make_token(d->secret, ip, token);
        r.token = token;
        r.token_len = sizeof token;
        r.nodes = nodes;
        r.nodes_len = 26 * (size_t)closest(d, m->info_hash, nodes, BT_DHT_K, NULL);
        sentry *e = store_find(d, m->info_hash);
        if (e && e->n) {
            uint32_t start = e->n > BT_DHT_MAX_VALUES ? (uint32_t)rand() % e->n : 0;
            for (uint32_t i = 0; i < e->n && r.nvalues < BT_DHT_MAX_VALUES; i++) {
                const speer *s = &e->p[(start + i) % e->n];
                uint8_t *v = vals + 6 * r.nvalues++;
                memcpy(v, s->ip, 4);
                v[4] = (uint8_t)(s->port >> 8);
                v[5] = (uint8_t)s->port;
            }
            r.values = vals;
        }
        break;
    }
    case BT_KRPC_ANNOUNCE_PEER:
        if (!token_ok(d, ip, m->token, m->token_len)) {
            send_error(d, ip, port, m, BT_KRPC_ERR_PROTOCOL, "bad token");
            return;
        }
        store_add(d, m->info_hash, ip, m->implied_port ? port : m->port);
        break;
    default:
        send_error(d, ip, port, m, BT_KRPC_ERR_METHOD, "method unknown");
        return;
    }
    /* the size rule: drop values, then nodes, until the reply fits */
    for (;;) {
        d->out.len = 0;
        if (bt_krpc_build_reply(&d->out, &r) != 0)
            return;
        if (d->out.len <= budget)
            break;
        if (r.nvalues > 0) {
            size_t over = (d->out.len - budget + 7) / 8;   /* a value costs 8 bytes */
            r.nvalues = over >= r.nvalues ? 0 : r.nvalues - (uint32_t)over;
            if (!r.nvalues)
                r.values = NULL;
        } else if (r.nodes_len > 0) {
            r.nodes_len -= 26;
        } else {
            return;   /* even the bare reply is too large for this query: no answer */
        }
    }
    d->st.answered++;
    send_to(d, ip, port, &d->out);
}

/* ---- receiving ---- */

static void on_reply(bt_dht *d, const uint8_t ip[4], uint16_t port, const bt_krpc_msg *m)
{
    if (m->tid_len != 4) {
        d->st.unexpected++;
        return;
    }
    uint32_t slot = (uint32_t)m->tid[0] << 8 | m->tid[1];
    uint16_t seq = (uint16_t)(m->tid[2] << 8 | m->tid[3]);
    txn *t = slot < BT_DHT_MAX_TXN ? &d->tx[slot] : NULL;
    if (!t || !t->used || t->seq != seq || memcmp(t->ip, ip, 4) != 0 || t->port != port) {
        d->st.unexpected++;   /* a reply to a query never sent (or from elsewhere): ignored */
        return;
    }
    txn tc = *t;
    txn_free(d, t);
    d->st.replies++;
    if (m->type == BT_KRPC_REPLY)
        heard(d, m->id, ip, port, true);
    if (tc.qid) {
        bt_dht_result r = { .kind = BT_DHT_QUERY, .msg = m };
        deliver(d, tc.qid, &r);
        return;
    }
    if (!tc.lk) {
        /* a bootstrap or a table ping: nothing more, except nodes that may fill the table */
        return;
    }
    lookup *l = tc.lk;
    cand *c = cand_find(l, tc.node);
    l->inflight--;
    if (l->announcing) {
        if (m->type == BT_KRPC_REPLY)
            l->announced++;
        lookup_step(d, l);
        return;
    }
    if (m->type != BT_KRPC_REPLY) {
        if (c)
            c->state = C_FAILED;
        lookup_step(d, l);
        return;
    }
    if (c) {
        c->state = C_REPLIED;
        if (m->token && m->token_len <= BT_KRPC_MAX_TOKEN) {
            memcpy(c->token, m->token, m->token_len);
            c->tlen = (uint8_t)m->token_len;
        }
    }
    l->replied++;
    for (size_t i = 0; i + 26 <= m->nodes_len; i += 26)
        cand_add(d, l, m->nodes + i, m->nodes + i + 20, (uint16_t)(m->nodes[i + 24] << 8 | m->nodes[i + 25]));
    if (l->kind != BT_DHT_FIND_NODE)
        for (uint32_t i = 0; i < m->nvalues; i++)
            if (m->value_len[i] == 6)   /* IPv6 values are dropped: the node is IPv4 (docs/dht.md) */
                found_peer(l, m->values[i]);
    lookup_step(d, l);
}

static void on_datagram(bt_dht *d, const uint8_t *p, size_t n, const uint8_t ip[4], uint16_t port)
{
    bt_krpc_msg m;
    const char *err;
    d->st.received++;
    d->st.bytes_in += n;
    if (port == 0)
        return;
    if (bt_krpc_parse(p, n, &m, &err) != 0) {
        d->st.bad++;
        /* a malformed query is answered with 203 (within the limits); anything else dropped */
        if (m.type == BT_KRPC_QUERY && m.tid && answer_allowed(d, ip)) {
            d->reflect_left = n * BT_DHT_AMPLIFY;
            send_error(d, ip, port, &m, BT_KRPC_ERR_PROTOCOL, err);
            d->reflect_left = SIZE_MAX;
        }
        return;
    }
    if (m.type != BT_KRPC_QUERY) {
        on_reply(d, ip, port, &m);
        return;
    }
    d->st.queries++;
    if (!answer_allowed(d, ip)) {
        d->st.dropped++;
        return;
    }
    /* everything sent because of this query (the answer, a ping of an unknown querier)
       stays within BT_DHT_AMPLIFY times its bytes: a spoofed source gains little */
    d->reflect_left = n * BT_DHT_AMPLIFY;
    answer(d, ip, port, &m);
    heard(d, m.id, ip, port, false);
    d->reflect_left = SIZE_MAX;
}

static void dht_destroy(bt_dht *d);

static void on_read(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_dht *d = w->data;
    uint8_t buf[BT_KRPC_MAX_DATAGRAM + 1];
    for (int i = 0; i < BT_DHT_READS_PER_WAKE && !d->dead; i++) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        ssize_t r = recvfrom(d->fd, buf, sizeof buf, MSG_TRUNC, (struct sockaddr *)&sa, &sl);
        if (r < 0)
            break;
        if (sa.sin_family != AF_INET)
            continue;
        size_t n = (size_t)r > sizeof buf ? sizeof buf : (size_t)r;   /* too large: refused by the parser */
        on_datagram(d, buf, n, (const uint8_t *)&sa.sin_addr, ntohs(sa.sin_port));
    }
    lookups_reap(d);
    if (d->dead)
        dht_destroy(d);
}

/* ---- timers ---- */

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_dht *d = w->data;
    double now = now_of(d);
    for (uint32_t i = 0; i < BT_DHT_MAX_TXN && !d->dead; i++) {
        txn *t = &d->tx[i];
        if (!t->used || now - t->sent < BT_DHT_QUERY_TIMEOUT)
            continue;
        txn tc = *t;
        txn_free(d, t);
        d->st.timeouts++;
        failed(d, tc.ip, tc.port);
        if (tc.qid) {
            bt_dht_result r = { .kind = BT_DHT_QUERY, .error = "timeout" };
            deliver(d, tc.qid, &r);
        } else if (tc.lk) {
            cand *c = cand_find(tc.lk, tc.node);
            if (c && !tc.lk->announcing)
                c->state = C_FAILED;
            tc.lk->inflight--;
        }
    }
    if (d->want_self) {
        d->want_self = false;
        d->last_self = now;
        lookup_start(d, BT_DHT_FIND_NODE, d->id, 0, 0);
    }
    if (d->want_refresh) {
        d->want_refresh = false;
        refresh_far(d);
    }
    for (lookup *l = d->lookups; l && !d->dead; l = l->next) {
        if (l->finished)
            continue;
        if (now - l->started > BT_DHT_LOOKUP_TIME)
            lookup_finish(d, l, "lookup timed out");
        else
            lookup_step(d, l);
    }
    lookups_reap(d);
    if (d->dead)
        dht_destroy(d);
}

static int good_count(const bt_dht *d, double now)
{
    int g = 0;
    for (int i = 0; i < d->nb; i++)
        for (int j = 0; j < d->b[i].count; j++)
            g += good(&d->b[i].n[j], now);
    return g;
}

static void on_maint(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    bt_dht *d = w->data;
    double now = now_of(d);
    if (now - d->rotated >= d->token_rotate) {
        memcpy(d->prev_secret, d->secret, 16);
        rnd(d->secret, 16);
        d->rotated = now;
    }
    store_expire(d, now, false);
    if (good_count(d, now) < BT_DHT_K && now - d->last_self >= SELF_LOOKUP_S) {
        d->last_self = now;
        lookup_start(d, BT_DHT_FIND_NODE, d->id, 0, 0);
    }
    int pings = 0;
    for (int i = 0; i < d->nb; i++) {
        bucket *b = &d->b[i];
        for (int j = 0; j < b->count && pings < PINGS_PER_S; j++) {
            rnode *n = &b->n[j];
            if (!good(n, now) && now - n->last_ping >= PING_AGAIN_S) {
                n->last_ping = now;
                if (send_simple(d, n->ip, n->port, BT_KRPC_PING, NULL))
                    pings++;
            }
        }
        if (b->count && now - b->changed >= BT_DHT_GOOD_TIME) {
            b->changed = now;
            refresh_range(d, i, i < d->nb - 1);
        }
    }
}

/* ---- the node ---- */

bt_dht *bt_dht_new(struct ev_loop *loop, const bt_dht_opts *o, const bt_dht_cb *cb, const char **err)
{
    bt_dht *d = calloc(1, sizeof *d);
    if (!d)
        return *err = "out of memory", NULL;
    d->loop = loop;
    d->cb = *cb;
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (d->fd < 0) {
        *err = strerror(errno);
        free(d);
        return NULL;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o->port) };
    if (o->bind && inet_pton(AF_INET, o->bind, &sa.sin_addr) != 1) {
        *err = "DHT bind address is not a dotted IPv4 address";
        goto fail;
    }
    if (bind(d->fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        *err = strerror(errno);
        goto fail;
    }
    socklen_t sl = sizeof sa;
    getsockname(d->fd, (struct sockaddr *)&sa, &sl);
    d->port = ntohs(sa.sin_port);
    if (o->id)
        memcpy(d->id, o->id, 20);
    else
        rnd(d->id, 20);
    d->restrict_ips = o->restrict_ips;
    d->nb = 1;
    d->reflect_left = SIZE_MAX;
    rnd(d->secret, 16);
    memcpy(d->prev_secret, d->secret, 16);
    d->rotated = ev_now(loop);
    d->token_rotate = o->token_rotate > 0 ? o->token_rotate : BT_DHT_TOKEN_ROTATE;
    d->peer_ttl = o->peer_ttl > 0 ? o->peer_ttl : BT_DHT_PEER_TTL;
    d->last_self = -SELF_LOOKUP_S;
    double ar = o->answer_rate > 0 ? o->answer_rate : BT_DHT_ANSWER_RATE;
    double qr = o->query_rate > 0 ? o->query_rate : BT_DHT_QUERY_RATE;
    bt_bucket_init(&d->answers, ar, ar);
    bt_bucket_init(&d->queries, qr, qr);
    d->answer_rate_ip = o->answer_rate_ip > 0 ? o->answer_rate_ip : BT_DHT_ANSWER_RATE_IP;
    if (o->answer_rate_ip >= 0) {
        d->ips = calloc(BT_DHT_IP_SLOTS, sizeof *d->ips);
        if (!d->ips) {
            *err = "out of memory";
            goto fail;
        }
    }
    ev_io_init(&d->rw, on_read, d->fd, EV_READ);
    d->rw.data = d;
    ev_io_start(loop, &d->rw);
    ev_timer_init(&d->tick, on_tick, TICK_S, TICK_S);
    d->tick.data = d;
    ev_timer_start(loop, &d->tick);
    ev_timer_init(&d->maint, on_maint, MAINT_S, MAINT_S);
    d->maint.data = d;
    ev_timer_start(loop, &d->maint);
    return d;
fail:
    close(d->fd);
    free(d);
    return NULL;
}

static void dht_destroy(bt_dht *d)
{
    for (lookup *l = d->lookups; l;) {
        lookup *n = l->next;
        free(l->peers);
        free(l);
        l = n;
    }
    store_expire(d, 0, true);
    free(d->ips);
    bt_buf_free(&d->out);
    free(d);
}

void bt_dht_free(bt_dht *d)
{
    if (!d || d->dead)
        return;
    ev_io_stop(d->loop, &d->rw);
    ev_timer_stop(d->loop, &d->tick);
    ev_timer_stop(d->loop, &d->maint);
    close(d->fd);
    d->dead = true;
    if (d->depth == 0)
        dht_destroy(d);
}

uint16_t bt_dht_port(const bt_dht *d) { return d->port; }
const uint8_t *bt_dht_id(const bt_dht *d) { return d->id; }

void bt_dht_stats_get(const bt_dht *d, bt_dht_stats *st)
{
    double now = now_of(d);
    *st = d->st;
    st->nodes = st->good = st->questionable = st->replacements = 0;
    for (int i = 0; i < d->nb; i++) {
        st->nodes += (uint32_t)d->b[i].count;
        st->replacements += d->b[i].has_repl;
        for (int j = 0; j < d->b[i].count; j++) {
            const rnode *n = &d->b[i].n[j];
            if (good(n, now))
                st->good++;
            else if (!bad(n))
                st->questionable++;
        }
    }
    st->buckets = (uint32_t)d->nb;
    st->lookups = 0;
    for (const lookup *l = d->lookups; l; l = l->next)
        st->lookups += !l->finished;
    st->inflight = d->ntx;
    st->hashes = d->nhashes;
    st->stored_peers = d->npeers;
}

static int parse_ip(const char *ip, int port, uint8_t out[4], const char **err)
{
    if (inet_pton(AF_INET, ip, out) != 1)
        return *err = "not a dotted IPv4 address (the DHT is IPv4 only)", -1;
    if (port < 1 || port > 65535)
        return *err = "port out of range", -1;
    return 0;
}

int bt_dht_add_node(bt_dht *d, const char *ip, int port, const char **err)
{
    uint8_t a[4];
    if (parse_ip(ip, port, a, err) != 0)
        return -1;
    if (!send_simple(d, a, (uint16_t)port, BT_KRPC_FIND_NODE, d->id))
        return *err = "too many queries in flight", -1;
    return 0;
}

int bt_dht_lookup(bt_dht *d, bt_dht_kind kind, const uint8_t target[20], int port, const char **err)
{
    if (kind == BT_DHT_QUERY || port < 0 || port > 65535)
        return *err = "bad lookup", -1;
    int id = ++d->next_id > 0 ? d->next_id : (d->next_id = 1);
    if (!lookup_start(d, kind, target, port, id))
        return *err = "no DHT nodes", -1;
    return id;
}

int bt_dht_query(bt_dht *d, const char *ip, int port, bt_krpc_query *q, const char **err)
{
    uint8_t a[4];
    if (parse_ip(ip, port, a, err) != 0)
        return -1;
    txn *t = send_query(d, a, (uint16_t)port, q);
    if (!t)
        return *err = "too many queries in flight", -1;
    t->qid = ++d->next_id > 0 ? d->next_id : (d->next_id = 1);
    return t->qid;
}

uint32_t bt_dht_good_nodes(const bt_dht *d, uint8_t *out, uint32_t max)
{
    double now = now_of(d);
    uint32_t k = 0;
    for (int i = 0; i < d->nb; i++)
        for (int j = 0; j < d->b[i].count && k < max; j++)
            if (good(&d->b[i].n[j], now))
                compact(out + 26 * k++, d->b[i].n[j].id, d->b[i].n[j].ip, d->b[i].n[j].port);
    return k;
}
