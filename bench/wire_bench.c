/* wire_bench.c: peer-wire decoding speed in C, run by bench/wire_bench.lua.
 *
 *   wire_bench FILE NAME    FILE: a stream of encoded messages (no handshake)
 *
 * Measures, on the same bytes, each repeated for at least MIN_SECONDS:
 *   parse:   bt_wire_parse over the whole stream in memory (framing cost only;
 *            zero-copy, so piece payloads are never touched)
 *   socket:  what the engine does: 64 KiB "reads" memcpy'd into a buffer, the
 *            whole messages in it parsed, the tail moved to the front
 *   memcpy:  the reference, copying the same bytes in 64 KiB chunks (the bandwidth
 *            ceiling of any decoder that looks at its input once)
 * Prints one line per measure: "NAME MEASURE MB/s msgs/s" with MB = 10^6 bytes. */
#include "codec/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK       (64 * 1024)   /* one socket read, as in the Lua bench */
#define MIN_SECONDS 0.4           /* long enough to dwarf timer noise, short enough for ~10 s total */

/* CPU time, like Lua's os.clock in wire_bench.lua, so C and Lua rows compare
 * and another process sharing the two cores does not count against us. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile size_t sink;   /* keeps the compiler from dropping the work */

static size_t run_parse(const uint8_t *s, size_t n, const bt_wire_limits *lim)
{
    size_t pos = 0, msgs = 0, acc = 0;
    while (pos < n) {
        bt_msg m;
        size_t used;
        const char *err;
        if (bt_wire_parse(s + pos, n - pos, lim, &m, &used, &err) != 1) {
            fprintf(stderr, "wire_bench: stream does not parse at %zu\n", pos);
            exit(1);
        }
        acc += m.index + m.payload_len;
        pos += used;
        msgs++;
    }
    sink += acc;
    return msgs;
}

static size_t run_socket(const uint8_t *s, size_t n, const bt_wire_limits *lim, uint8_t *rbuf, size_t rcap)
{
    size_t fed = 0, have = 0, msgs = 0, acc = 0;
    while (fed < n) {
        size_t c = n - fed < CHUNK ? n - fed : CHUNK;
        if (have + c > rcap) {
            fprintf(stderr, "wire_bench: read buffer too small\n");
            exit(1);
        }
        memcpy(rbuf + have, s + fed, c);   /* the recv() */
        fed += c;
        have += c;
        size_t pos = 0;
        for (;;) {
            bt_msg m;
            size_t used;
            const char *err;
            int r = bt_wire_parse(rbuf + pos, have - pos, lim, &m, &used, &err);
            if (r < 0) {
                fprintf(stderr, "wire_bench: %s\n", err);
                exit(1);
            }
            if (r == 0)
                break;
            acc += m.index + m.payload_len;
            pos += used;
            msgs++;
        }
        memmove(rbuf, rbuf + pos, have - pos);
        have -= pos;
    }
    sink += acc;
    return msgs;
}

static void run_memcpy(const uint8_t *s, size_t n, uint8_t *dst)
{
    for (size_t pos = 0; pos < n; pos += CHUNK) {
        size_t c = n - pos < CHUNK ? n - pos : CHUNK;
        memcpy(dst, s + pos, c);
        sink += dst[c - 1];
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: wire_bench FILE NAME\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len <= 0) {
        fprintf(stderr, "wire_bench: empty stream\n");
        return 1;
    }
    size_t n = (size_t)len;
    uint8_t *s = malloc(n);
    if (!s || fread(s, 1, n, f) != n) {
        fprintf(stderr, "wire_bench: cannot read %s\n", argv[1]);
        return 1;
    }
    fclose(f);

    bt_wire_limits lim;
    bt_wire_limits_default(&lim);
    /* A read buffer holds at most one incomplete message plus one read. */
    size_t rcap = lim.max_message + 4 + CHUNK;
    uint8_t *rbuf = malloc(rcap), *dst = malloc(CHUNK);
    if (!rbuf || !dst)
        return 1;

    const char *names[3] = {"parse", "socket", "memcpy"};
    for (int k = 0; k < 3; k++) {
        size_t reps = 0, msgs = 0;
        double t0 = now(), t;
        do {
            if (k == 0)
                msgs = run_parse(s, n, &lim);
            else if (k == 1)
                msgs = run_socket(s, n, &lim, rbuf, rcap);
            else
                run_memcpy(s, n, dst);
            reps++;
            t = now() - t0;
        } while (t < MIN_SECONDS);
        double mbs = (double)n * reps / t / 1e6;
        double mps = k == 2 ? 0 : (double)msgs * reps / t;
        printf("%s %s %.1f %.0f\n", argv[2], names[k], mbs, mps);
    }
    free(s);
    free(rbuf);
    free(dst);
    return 0;
}
