# bench/engine_lt.py: libtorrent (python3-libtorrent, Debian's /usr/bin/python3) for
# bench/engine_bench.lua. On loopback: listen on 127.0.0.1, no DHT/LSD/UPnP/NAT-PMP/uTP.
#   seed TORRENT DIR PORT [DIAL] seed until killed (prints "ready"); DIAL: also connect to
#                                127.0.0.1:DIAL (bench/load_bench.lua: a leecher that listens)
#   leech TORRENT DIR PEERPORT   download from 127.0.0.1:PEERPORT, print seconds, exit
import sys, time
import libtorrent as lt

mode, tor, d, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = lt.session({'listen_interfaces': '127.0.0.1:%d' % (port if mode == 'seed' else 0),
                'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
                'enable_natpmp': False, 'enable_outgoing_utp': False, 'enable_incoming_utp': False,
                'allow_multiple_connections_per_ip': True, 'alert_mask': 0})
ti = lt.torrent_info(tor)
if mode == 'seed':
    h = s.add_torrent({'ti': ti, 'save_path': d, 'flags': lt.torrent_flags.seed_mode})
    if len(sys.argv) > 5:
        h.connect_peer(("127.0.0.1", int(sys.argv[5])))
    print("ready", flush=True)
    while True:
        time.sleep(1)
t0 = time.time()
h = s.add_torrent({'ti': ti, 'save_path': d})
h.connect_peer(("127.0.0.1", port))
deadline = t0 + 120
while not h.status().is_seeding and time.time() < deadline:
    time.sleep(0.005)
print("%.3f" % (time.time() - t0), flush=True)
