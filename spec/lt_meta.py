# spec/lt_meta.py: python3-libtorrent (Debian's /usr/bin/python3) for
# spec/metainfo_lt_spec.lua. On loopback only; no DHT/LSD/UPnP/NAT-PMP/uTP.
#   verdict DIR                       one line per DIR/*.torrent: NAME TAB OK TAB infohash
#                                     TAB total size TAB piece length TAB files TAB private
#                                     TAB name (hex), or NAME TAB ERR TAB message
#   hybrid DIR OUT                    make a hybrid (v1+v2) torrent of folder DIR with
#                                     libtorrent's own creator (pad files between files)
#   seed TORRENT STREAM DIR PORT      write the torrent's files under DIR, cut from STREAM
#                                     (the torrent's byte stream, pad bytes included) at
#                                     libtorrent's own paths, check them, print "ready",
#                                     seed until killed
import os, sys, time
sys.setrecursionlimit(20000)   # os.makedirs recurses once a folder: paths 1,000 deep
import libtorrent as lt

def verdict(d):
    for name in sorted(os.listdir(d)):
        if not name.endswith(".torrent"):
            continue
        try:
            ti = lt.torrent_info(os.path.join(d, name))
            try:
                nm = ti.name().encode("utf-8", "surrogateescape").hex()
            except Exception:
                nm = "?"
            print("%s\tOK\t%s\t%d\t%d\t%d\t%d\t%s" % (name, str(ti.info_hashes().v1),
                  ti.total_size(), ti.piece_length(), ti.num_files(), int(ti.priv()), nm),
                  flush=True)
        except Exception as e:
            print("%s\tERR\t%s" % (name, str(e).replace("\n", " ")), flush=True)

def hybrid(d, out):
    fs = lt.file_storage()
    lt.add_files(fs, d)
    ct = lt.create_torrent(fs, 16384)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(d)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))

def seed(tor, stream, d, port):
    ti = lt.torrent_info(tor)
    fs = ti.files()
    data = open(stream, "rb").read()
    for i in range(fs.num_files()):
        fl = fs.file_flags(i)
        if fl & lt.file_flags_t.flag_pad_file or fl & lt.file_flags_t.flag_symlink:
            continue
        p = os.path.join(d, fs.file_path(i))
        os.makedirs(os.path.dirname(p), exist_ok=True)
        off = fs.file_offset(i)
        with open(p, "wb") as f:
            f.write(data[off:off + fs.file_size(i)])
    s = lt.session({'listen_interfaces': '127.0.0.1:%d' % port,
                    'enable_dht': False, 'enable_lsd': False, 'enable_upnp': False,
                    'enable_natpmp': False, 'enable_outgoing_utp': False,
                    'enable_incoming_utp': False, 'allow_multiple_connections_per_ip': True,
                    'alert_mask': 0})
    h = s.add_torrent({'ti': ti, 'save_path': d})
    deadline = time.time() + 30
    while not h.status().is_seeding and time.time() < deadline:
        time.sleep(0.02)
    print("ready" if h.status().is_seeding else "not seeding", flush=True)
    end = time.time() + 120   # bounded even if nobody kills us
    while time.time() < end:
        time.sleep(0.2)

mode = sys.argv[1]
if mode == "verdict":
    verdict(sys.argv[2])
elif mode == "hybrid":
    hybrid(sys.argv[2], sys.argv[3])
elif mode == "seed":
    seed(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
