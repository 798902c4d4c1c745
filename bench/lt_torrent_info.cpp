// lt_torrent_info: the reference for bench/metainfo_bench.lua. Times
// libtorrent's lt::torrent_info constructed from a buffer (bdecode, validation,
// info-hash, file storage), best of N runs, and prints one line:
//   lt_torrent_info <bytes> <best seconds> <files> <info-hash hex>
// usage: lt_torrent_info FILE [ITERATIONS]
#include <libtorrent/torrent_info.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FILE [ITERATIONS]\n", argv[0]);
        return 2;
    }
    int iters = argc > 2 ? std::atoi(argv[2]) : 5;
    if (iters < 1)
        iters = 1;
    std::ifstream f(argv[1], std::ios::binary);
    std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (buf.empty()) {
        std::fprintf(stderr, "lt_torrent_info: cannot read %s\n", argv[1]);
        return 1;
    }
    // The defaults (10 MB buffer, 3 M tokens, 2 M pieces) are close to what a
    // 100,000-file torrent needs; raise them so only the speed is measured.
    lt::load_torrent_limits limits;
    limits.max_buffer_size = 1 << 30;
    limits.max_pieces = 1 << 24;          // BT_META_MAX_PIECES
    limits.max_decode_depth = 256;        // BT_BENC_MAX_DEPTH
    limits.max_decode_tokens = 100000000;
    double best = 1e30;
    int files = 0;
    std::string hash;
    try {
        for (int i = 0; i < iters; i++) {
            auto t0 = std::chrono::steady_clock::now();
            lt::torrent_info ti(lt::span<char const>(buf.data(), static_cast<std::ptrdiff_t>(buf.size())),
                                limits, lt::from_span);
            files = ti.num_files();   // forces nothing extra: file_storage is built by the constructor
            auto t1 = std::chrono::steady_clock::now();
            double s = std::chrono::duration<double>(t1 - t0).count();
            if (s < best)
                best = s;
            std::ostringstream os;
            os << ti.info_hashes().v1;
            hash = os.str();
        }
    } catch (std::exception const &e) {
        std::fprintf(stderr, "lt_torrent_info: %s\n", e.what());
        return 1;
    }
    std::printf("lt_torrent_info %zu %.9f %d %s\n", buf.size(), best, files, hash.c_str());
    return 0;
}
