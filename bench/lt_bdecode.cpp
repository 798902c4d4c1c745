// lt_bdecode: the reference for bench/bencode_bench.lua. Times libtorrent's
// lt::bdecode over one file, best of N runs, and prints one line:
// (process CPU time, the clock Lua's os.clock reads, so both sides are measured
// alike and a busy shared machine does not inflate only one of them)
//   lt_bdecode <bytes> <best seconds> <MB/s>
// usage: lt_bdecode FILE [ITERATIONS]
#include <libtorrent/bdecode.hpp>

#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

static double cpu_seconds()
{
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: %s FILE [ITERATIONS]\n", argv[0]);
        return 2;
    }
    int iters = argc > 2 ? std::atoi(argv[2]) : 30;
    if (iters < 1)
        iters = 1;
    std::ifstream f(argv[1], std::ios::binary);
    std::vector<char> buf((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    if (buf.empty()) {
        std::fprintf(stderr, "lt_bdecode: cannot read %s\n", argv[1]);
        return 1;
    }
    // The default token limit (2,000,000) is below what a 100,000-file torrent
    // needs in the worst case; raise it so only the decoder's speed is measured.
    const int token_limit = 100000000;
    const int depth_limit = 256;   // same as BT_BENC_MAX_DEPTH
    double best = 1e30;
    for (int i = 0; i < iters; i++) {
        lt::error_code ec;
        int pos = 0;
        double t0 = cpu_seconds();
        lt::bdecode_node n = lt::bdecode(lt::span<char const>(buf.data(), static_cast<std::ptrdiff_t>(buf.size())),
                                         ec, &pos, depth_limit, token_limit);
        double t1 = cpu_seconds();
        if (ec) {
            std::fprintf(stderr, "lt_bdecode: %s at %d\n", ec.message().c_str(), pos);
            return 1;
        }
        double s = t1 - t0;
        if (s < best)
            best = s;
    }
    std::printf("lt_bdecode %zu %.9f %.1f\n", buf.size(), best, buf.size() / best / 1e6);
    return 0;
}
