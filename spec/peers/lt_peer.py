# spec/peers/lt_peer.py: a libtorrent peer for the specs (python3-libtorrent, Debian's
# /usr/bin/python3). On loopback: no DHT, LSD, UPnP, NAT-PMP or uTP.
#   lt_peer.py seed|leech TORRENT DIR LISTEN LIFETIME [--connect HOST:PORT]... [--no-pex]
#              [--up-limit BYTES_PER_S]
# LISTEN is libtorrent's listen_interfaces ("127.0.0.2:6881", "[::1]:6881"). Prints
# "ready" once listening, then one line "peers ADDR ADDR ..." whenever the set of
# connected peers changes, "done" when a leecher has every piece. --no-pex: a session
# without libtorrent's default plugins (no ut_pex), so it tells nobody about anybody.
# --up-limit: the torrent's upload limit (libtorrent exempts loopback peers from the
# session-wide one), so that leechers stay leechers for a while.
# Exits after LIFETIME seconds.
import sys, time
import libtorrent as lt

mode, tor, d, listen, lifetime = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
rest = sys.argv[6:]
connect, no_pex, up_limit = [], False, 0
i = 0
while i < len(rest):
    if rest[i] == '--connect':
        connect.append(rest[i + 1]); i += 2
    elif rest[i] == '--no-pex':
        no_pex = True; i += 1
    elif rest[i] == '--up-limit':
        up_limit = int(rest[i + 1]); i += 2
    else:
        sys.exit("unknown option " + rest[i])
# outgoing connections leave from the listening host too (else from 127.0.0.1, and a
# peer that sees us there tells others an address nobody listens at)
settings = {'listen_interfaces': listen, 'outgoing_interfaces': listen.rsplit(':', 1)[0].strip('[]'),
            'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
            'enable_natpmp': False, 'enable_outgoing_utp': False, 'enable_incoming_utp': False,
            'allow_multiple_connections_per_ip': True, 'alert_mask': 0}
s = lt.session(settings, 0) if no_pex else lt.session(settings)
if no_pex:
    s.add_extension('smart_ban')   # ut_metadata and ut_pex stay off
ti = lt.torrent_info(tor)
flags = lt.torrent_flags.seed_mode if mode == 'seed' else 0
h = s.add_torrent({'ti': ti, 'save_path': d, 'flags': flags})
if up_limit:
    h.set_upload_limit(up_limit)
print("ready", flush=True)
for c in connect:
    host, port = c.rsplit(':', 1)
    h.connect_peer((host.strip('[]'), int(port)))
last, done, t0 = None, False, time.time()
while time.time() - t0 < lifetime:
    now = sorted(("[%s]:%d" if ':' in p.ip[0] else "%s:%d") % (p.ip[0], p.ip[1]) for p in h.get_peer_info())
    if now != last:
        print("peers " + " ".join(now), flush=True)
        last = now
    if mode == 'leech' and not done and h.status().is_seeding:
        print("done", flush=True)
        done = True
    time.sleep(0.2)
