/* exchange_c_test.c: engine/exchange.c, PEX as the engine does it, on connections
 * that never touch the network (sockets that are not connected; what would be sent
 * is read back from each connection's output buffer): who is told what, when, how
 * much at once, and which received messages are refused. Built and run by
 * spec/pex_local_spec.lua (with ASan+UBSan); prints "all passed" or the failures. */
#include <arpa/inet.h>
#include <ev.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/exchange.h"

#include "c_test.h"

static bt_peer_env env;
static bt_peer *list;
static uint64_t uid;

/* An active connection to ip:port (v4 or v6); incoming ones give listen_port. */
static bt_peer *peer(const char *ip, int port, bool incoming, uint16_t listen_port, bool pex)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
        ss.ss_family = AF_INET;
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
        sl = sizeof(struct sockaddr_in);
    } else {
        inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr);
        ss.ss_family = AF_INET6;
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
        sl = sizeof(struct sockaddr_in6);
    }
    static const bt_peer_cb cb = { 0 };
    bt_peer *p = bt_peer_new(&env, socket(AF_INET, SOCK_STREAM, 0), incoming, (struct sockaddr *)&ss, sl, ++uid,
                             &cb, NULL);
    p->state = BT_PS_ACTIVE;
    p->ext = true;
    p->listen_port = listen_port;
    p->ext_ids[BT_EXT_UT_PEX] = pex ? 7 : 0;
    p->next = list;
    list = p;
    return p;
}

typedef struct told { int msgs; uint32_t added, dropped; char names[4096]; } told;

/* What p was sent since the last call: the PEX messages in its output, decoded. */
static told sent(bt_peer *p)
{
    told r = { 0 };
    bt_wire_limits lim;
    bt_wire_limits_default(&lim);
    size_t off = 0;
    while (off < p->wbuf.len) {
        bt_msg m;
        size_t used = 0;
        const char *err = NULL;
        if (bt_wire_parse(p->wbuf.data + off, p->wbuf.len - off, &lim, &m, &used, &err) != 1)
            break;
        off += used;
        CHECK(m.type == BT_MSG_EXTENDED && m.ext_id == 7, "sent something else than ut_pex under its id");
        bt_pex_msg x;
        const char *why;
        if (bt_pex_parse(m.payload, m.payload_len, &x, &why) != 0) {
            CHECK(0, "our own message does not parse: %s", why);
            continue;
        }
        r.msgs++;
        for (int k = 0; k < 4; k++)
            for (uint32_t i = 0; i < x.n[k]; i++) {
                bt_pex_addr a;
                bt_pex_entry(&x, k, i, &a);
                char ip[INET6_ADDRSTRLEN];
                inet_ntop(a.family == 4 ? AF_INET : AF_INET6, a.addr, ip, sizeof ip);
                size_t n = strlen(r.names);
                snprintf(r.names + n, sizeof r.names - n, "%s%s:%d/%d ", k >= BT_PEX_DROPPED ? "-" : "+", ip,
                         a.port, a.flags);
                if (k >= BT_PEX_DROPPED)
                    r.dropped++;
                else
                    r.added++;
            }
    }
    p->wbuf.len = 0;
    return r;
}

static bool has(const told *t, const char *name)
{
    return strstr(t->names, name) != NULL;
}

int main(void)
{
    env.loop = ev_loop_new(EVFLAG_AUTO);
    double t0 = ev_now(env.loop);
    bt_peer *far = peer("8.8.8.8", 1000, false, 0, true);
    bt_peer *near = peer("192.168.1.2", 1111, false, 0, true);
    bt_peer *a = peer("1.2.3.4", 2000, false, 0, false);
    peer("10.0.0.5", 3000, false, 0, false);       /* local */
    peer("5.6.7.8", 4000, true, 0, false);         /* incoming, no port given */
    bt_peer *d = peer("9.9.9.9", 555, true, 6881, false);
    d->sw.seed = true;
    peer("2001:db8::1", 7000, false, 0, false);
    peer("fe80::1", 7001, false, 0, false);        /* link-local */

    bt_pex_tick(list, t0 + 1);
    told r = sent(far);
    CHECK(r.msgs == 0, "a message before BT_PEX_FIRST");

    bt_pex_tick(list, t0 + BT_PEX_FIRST + 0.1);
    r = sent(far);
    CHECK(r.msgs == 1 && r.added == 3 && r.dropped == 0, "to the distant peer: %d msgs, +%u -%u: %s", r.msgs,
          r.added, r.dropped, r.names);
    CHECK(has(&r, "+1.2.3.4:2000/16 "), "a dialed peer is told, reachable: %s", r.names);
    CHECK(has(&r, "+9.9.9.9:6881/2 "), "an incoming peer is told at its BEP 10 port, as a seed: %s", r.names);
    CHECK(has(&r, "+2001:db8::1:7000/16 "), "IPv6 peers go in added6: %s", r.names);
    CHECK(!has(&r, "192.168.1.2") && !has(&r, "10.0.0.5") && !has(&r, "fe80::1"),
          "local addresses told to a distant peer: %s", r.names);
    CHECK(!has(&r, "5.6.7.8"), "an incoming peer without a port is told: %s", r.names);
    CHECK(!has(&r, "8.8.8.8"), "a peer is told of itself: %s", r.names);
    r = sent(near);
    CHECK(r.msgs == 1 && r.added == 6, "to the local peer: +%u: %s", r.added, r.names);
    CHECK(has(&r, "+10.0.0.5:3000") && has(&r, "+fe80::1:7001") && has(&r, "+8.8.8.8:1000"),
          "a local peer hears of every address: %s", r.names);
    CHECK(!has(&r, "192.168.1.2"), "a peer is told of itself: %s", r.names);

    bt_pex_tick(list, t0 + BT_PEX_FIRST + 30);
    CHECK(sent(far).msgs == 0, "a second message within a minute");

    a->closing = true;   /* gone: dropped in the next message */
    for (int i = 0; i < 60; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "3.0.%d.%d", i / 200, i % 200 + 1);
        peer(ip, 6881, false, 0, false);
    }
    bt_pex_tick(list, t0 + BT_PEX_FIRST + BT_PEX_INTERVAL + 0.2);
    r = sent(far);
    CHECK(r.msgs == 1 && r.added == BT_PEX_MAX_SEND && r.dropped == 1 && has(&r, "-1.2.3.4:2000"),
          "a minute later: +%u -%u (want +50 -1.2.3.4): %.200s", r.added, r.dropped, r.names);
    bt_pex_tick(list, t0 + BT_PEX_FIRST + 2 * BT_PEX_INTERVAL + 0.3);
    r = sent(far);
    CHECK(r.msgs == 1 && r.added == 10 && r.dropped == 0, "the rest a minute later: +%u -%u", r.added, r.dropped);
    bt_pex_tick(list, t0 + BT_PEX_FIRST + 3 * BT_PEX_INTERVAL + 0.4);
    CHECK(sent(far).msgs == 0, "a message with nothing new");

    /* received */
    bt_pex_addr in[BT_PEX_MAX_SEND] = { 0 };
    for (int i = 0; i < 3; i++) {
        in[i].family = 4;
        in[i].port = (uint16_t)(i == 2 ? 0 : 6881);
        in[i].addr[0] = (uint8_t)(i == 0 ? 10 : 4);
        in[i].addr[3] = 1;
    }
    bt_buf b = { 0 };
    bt_pex_build(&b, in, 3, NULL, 0);
    bt_pex_addr got[BT_PEX_MAX_TAKE];
    const char *why = NULL;
    int n = bt_pex_receive(far, b.data, b.len, t0 + 400, got, BT_PEX_MAX_TAKE, &why);
    CHECK(n == 1 && got[0].addr[0] == 4, "from a distant peer: only the distant, non-zero-port one (%d)", n);
    n = bt_pex_receive(near, b.data, b.len, t0 + 400, got, BT_PEX_MAX_TAKE, &why);
    CHECK(n == 2, "from a local peer: local addresses too (%d)", n);
    n = bt_pex_receive(far, b.data, b.len, t0 + 405, got, BT_PEX_MAX_TAKE, &why);
    CHECK(n == -1 && why && strstr(why, "10 s"), "a second message within 10 s is refused");
    n = bt_pex_receive(near, b.data, b.len, t0 + 411, got, 1, &why);
    CHECK(n == 1, "at most max taken (%d)", n);
    static uint8_t big[BT_PEX_MAX_MSG + 1];
    n = bt_pex_receive(d, big, sizeof big, t0 + 500, got, BT_PEX_MAX_TAKE, &why);
    CHECK(n == -1 && why && strstr(why, "64 KiB"), "a message over 64 KiB is refused");
    bt_buf_free(&b);

    while (list) {
        bt_peer *p = list;
        list = p->next;
        bt_pex_forget(p);
        bt_peer_free(p);
    }
    ev_loop_destroy(env.loop);
    return c_test_finish();
}
