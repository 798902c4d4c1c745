# spec/peers/lt_dht.py: a libtorrent (python3-libtorrent 2.0, Debian's /usr/bin/python3)
# DHT node on 127.0.0.1 for the DHT specs, optionally seeding or downloading.
#   lt_dht.py PORT [--node HOST:PORT]... [--seed TORRENT DIR] [--magnet URI DIR] [--leech TORRENT DIR]
#             [--get-peers HEX] [--time S]
# Prints, one a line, flushed: "ready PORT NODEID_HEX"; "live ID_HEX..." (its live nodes,
# every second); "peers HEX IP:PORT..." (answers to its own dht_get_peers, every second);
# "announced HEX IP:PORT" (an announce_peer it received); "finished" (its download
# completed). A torrent it seeds (or downloads) is announced to the DHT by libtorrent itself
# (session.dht_announce cannot be called from Python 2.0.8: its flags type is not bound).
# Runs until killed or --time seconds (default 120) have passed.
# On loopback libtorrent needs listen_interfaces 127.0.0.1:PORT (on 0.0.0.0 it starts no
# DHT on its loopback socket), no bootstrap nodes, no per-IP restrictions, and its DHT
# rate limits raised: every node shares one IP.
import sys, time, binascii, warnings
warnings.simplefilter('ignore', DeprecationWarning)   # dht_state(): its id, no newer way in 2.0.8
import libtorrent as lt

args = sys.argv[1:]
port = int(args.pop(0))
nodes, seed, magnet, leech, get_peers, limit = [], None, None, None, None, 120.0
while args:
    a = args.pop(0)
    if a == '--node': h, p = args.pop(0).rsplit(':', 1); nodes.append((h, int(p)))
    elif a == '--seed': seed = (args.pop(0), args.pop(0))
    elif a == '--magnet': magnet = (args.pop(0), args.pop(0))
    elif a == '--leech': leech = (args.pop(0), args.pop(0))
    elif a == '--get-peers': get_peers = args.pop(0)
    elif a == '--time': limit = float(args.pop(0))
    else: sys.exit('unknown argument ' + a)

settings = {
    'listen_interfaces': '127.0.0.1:%d' % port, 'enable_dht': True, 'dht_bootstrap_nodes': '',
    'enable_lsd': False, 'enable_upnp': False, 'enable_natpmp': False,
    'enable_outgoing_utp': False, 'enable_incoming_utp': False,
    'allow_multiple_connections_per_ip': True,
    'dht_restrict_routing_ips': False, 'dht_restrict_search_ips': False,
    'dht_prefer_verified_node_ids': False, 'dht_ignore_dark_internet': False,
    'dht_block_ratelimit': 100000, 'dht_upload_rate_limit': 10000000,
    'alert_mask': lt.alert.category_t.dht_notification | lt.alert.category_t.status_notification |
                  lt.alert.category_t.error_notification | lt.alert.category_t.dht_operation_notification,
}
s = lt.session(settings)
def out(*w):
    print(*w, flush=True)

deadline = time.time() + limit
for n in nodes:
    s.add_dht_node(n)
h = None
if seed:
    h = s.add_torrent({'ti': lt.torrent_info(seed[0]), 'save_path': seed[1], 'flags': lt.torrent_flags.seed_mode})
if magnet:
    p = lt.parse_magnet_uri(magnet[0])
    p.save_path = magnet[1]
    h = s.add_torrent(p)
if leech:
    h = s.add_torrent({'ti': lt.torrent_info(leech[0]), 'save_path': leech[1]})
node_id = None
ready = False
finished = False
next_poll = 0
while time.time() < deadline:
    now = time.time()
    if now >= next_poll:
        next_poll = now + 1
        s.post_dht_stats()
        if node_id is not None:
            s.dht_live_nodes(node_id)
        if get_peers:
            s.dht_get_peers(lt.sha1_hash(binascii.unhexlify(get_peers)))
        if h is not None and not finished and h.status().is_seeding and (magnet or leech):
            finished = True
            out('finished')
    s.wait_for_alert(200)
    for a in s.pop_alerts():
        if isinstance(a, lt.dht_live_nodes_alert):
            out('live', *[str(n['nid'] if isinstance(n, dict) else n[0]) for n in a.nodes])
        elif isinstance(a, lt.dht_get_peers_reply_alert):
            out('peers', str(a.info_hash), *['%s:%d' % (e[0], e[1]) for e in a.peers()])
        elif isinstance(a, lt.dht_announce_alert):
            out('announced', str(a.info_hash), '%s:%d' % (a.ip, a.port))
        elif isinstance(a, lt.dht_bootstrap_alert):
            out('bootstrapped')
    if node_id is None:   # its id, once the DHT runs: 20 bytes, then the address it is bound to
        ids = s.dht_state().get(b'node-id') or []
        if ids and len(ids[0]) >= 20:
            node_id = lt.sha1_hash(bytes(ids[0][:20]))
    if not ready and node_id is not None:
        ready = True
        out('ready', port, str(node_id))
