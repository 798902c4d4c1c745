/* exchange.c: peer exchange for a torrent's connections (exchange.h). */
#include "engine/exchange.h"

#include <stdlib.h>
#include <string.h>

/* The address p accepts connections at, as PEX tells it; false when there is none
 * (an incoming peer that gave no port). */
static bool listen_addr(const bt_peer *p, bt_pex_addr *a)
{
    memset(a, 0, sizeof *a);
    uint16_t port;
    if (p->addr.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&p->addr;
        a->family = 4;
        memcpy(a->addr, &s->sin_addr, 4);
        port = ntohs(s->sin_port);
    } else if (p->addr.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&p->addr;
        a->family = 6;
        memcpy(a->addr, &s->sin6_addr, 16);
        port = ntohs(s->sin6_port);
    } else {
        return false;
    }
    a->port = p->incoming ? p->listen_port : port;
    a->flags = (p->sw.seed ? BT_PEX_F_SEED : 0) | (p->incoming ? 0 : BT_PEX_F_REACHABLE);
    return a->port != 0;
}

static bool tellable(const bt_peer *p)
{
    return !p->closing && p->state == BT_PS_ACTIVE;
}

static int cmp_addr(const void *a, const void *b)
{
    return bt_pex_cmp(a, b);
}

static struct bt_pex_book *book_of(bt_peer *p, double now)
{
    if (!p->sw.pex) {
        p->sw.pex = calloc(1, sizeof *p->sw.pex);
        if (p->sw.pex)
            p->sw.pex->next_send = (p->connected_at > 0 ? p->connected_at : now) + BT_PEX_FIRST;
    }
    return p->sw.pex;
}

/* Tell p what changed in `swarm` (n addresses, sorted, with the peer each came from
 * in `from`) since the last message: a merge of the two sorted sets. */
static void tell(bt_peer *p, struct bt_pex_book *bk, const bt_pex_addr *swarm, bt_peer *const *from, uint32_t n)
{
    bt_pex_addr me;
    listen_addr(p, &me);   /* its host, whether or not it gave a port */
    bool local = bt_pex_is_local(&me);
    bt_pex_addr *next = malloc(((size_t)bk->ntold + n + 1) * sizeof *next);
    if (!next)
        return;   /* out of memory: try again at the next interval */
    bt_pex_addr added[BT_PEX_MAX_SEND], dropped[BT_PEX_MAX_SEND];
    uint32_t na = 0, nd = 0, nn = 0, i = 0, j = 0;
    while (i < bk->ntold || j < n) {
        if (j < n && (from[j] == p || (!local && bt_pex_is_local(&swarm[j])))) {
            j++;   /* never told to p: itself, or a local address to a distant peer */
            continue;
        }
        int c = i == bk->ntold ? 1 : j == n ? -1 : bt_pex_cmp(&bk->told[i], &swarm[j]);
        if (c == 0) {
            next[nn++] = bk->told[i++];
            j++;
        } else if (c < 0) {   /* told, and gone since */
            if (nd < BT_PEX_MAX_SEND)
                dropped[nd++] = bk->told[i];
            else
                next[nn++] = bk->told[i];   /* still to be dropped next time */
            i++;
        } else {              /* new since */
            if (na < BT_PEX_MAX_SEND) {
                added[na++] = swarm[j];
                next[nn++] = swarm[j];
            }
            j++;
        }
    }
    if (na + nd > 0) {
        bt_buf b = { 0 };
        if (bt_pex_build(&b, added, na, dropped, nd) != 0 || !bt_peer_send_extended(p, BT_EXT_UT_PEX, b.data, b.len)) {
            bt_buf_free(&b);
            free(next);
            return;   /* nothing went out: the book stays as it was */
        }
        bt_buf_free(&b);
        bk->sent++;
    }
    free(bk->told);
    bk->told = next;
    bk->ntold = nn;
}

void bt_pex_tick(bt_peer *peers, double now)
{
    bool due = false;
    uint32_t n = 0;
    for (bt_peer *p = peers; p; p = p->next) {
        if (!tellable(p))
            continue;
        n++;
        if (!p->ext_ids[BT_EXT_UT_PEX])
            continue;
        struct bt_pex_book *bk = book_of(p, now);
        if (bk && now >= bk->next_send)
            due = true;
    }
    if (!due)
        return;
    /* the swarm as PEX tells it, sorted (ties: the first peer with that address) */
    struct entry { bt_pex_addr a; bt_peer *from; } *e = malloc((n ? n : 1) * sizeof *e);
    bt_pex_addr *swarm = malloc((n ? n : 1) * sizeof *swarm);
    bt_peer **from = malloc((n ? n : 1) * sizeof *from);
    if (e && swarm && from) {
        uint32_t k = 0;
        for (bt_peer *p = peers; p && k < n; p = p->next)
            if (tellable(p) && listen_addr(p, &e[k].a))
                e[k++].from = p;
        qsort(e, k, sizeof *e, cmp_addr);   /* the address comes first in the entry */
        uint32_t m = 0;
        for (uint32_t i = 0; i < k; i++) {
            if (m > 0 && bt_pex_cmp(&swarm[m - 1], &e[i].a) == 0)
                continue;   /* two connections to one address: told once */
            swarm[m] = e[i].a;
            from[m++] = e[i].from;
        }
        for (bt_peer *p = peers; p; p = p->next) {
            if (!tellable(p) || !p->ext_ids[BT_EXT_UT_PEX] || !p->sw.pex || now < p->sw.pex->next_send)
                continue;
            p->sw.pex->next_send = now + BT_PEX_INTERVAL;
            tell(p, p->sw.pex, swarm, from, m);
        }
    }
    free(e);
    free(swarm);
    free(from);
}

int bt_pex_receive(bt_peer *p, const uint8_t *d, size_t n, double now, bt_pex_addr *out, uint32_t max,
                   const char **why)
{
    struct bt_pex_book *bk = book_of(p, now);
    if (!bk) {
        *why = "out of memory";
        return -1;
    }
    if (bk->last_recv > 0 && now - bk->last_recv < BT_PEX_MIN_GAP) {
        *why = "PEX more often than once in 10 s";
        return -1;
    }
    bk->last_recv = now;
    bk->received++;
    bt_pex_msg m;
    if (bt_pex_parse(d, n, &m, why) != 0)
        return -1;
    bt_pex_addr sender;
    listen_addr(p, &sender);
    bool local = bt_pex_is_local(&sender);
    uint32_t got = 0;
    for (int k = BT_PEX_ADDED; k <= BT_PEX_ADDED6; k++)
        for (uint32_t i = 0; i < m.n[k] && got < max; i++) {
            bt_pex_entry(&m, k, i, &out[got]);
            if (out[got].port == 0 || (!local && bt_pex_is_local(&out[got])))
                continue;
            got++;
        }
    return (int)got;
}

void bt_pex_forget(bt_peer *p)
{
    if (!p->sw.pex)
        return;
    free(p->sw.pex->told);
    free(p->sw.pex);
    p->sw.pex = NULL;
}
