#!/bin/bash
# ThreadSanitizer smoke for the engine's storage (csrc/storage.h, "Threads"): run by
# hand, not by busted (busted's shell children crash with libtsan preloaded here).
#   spec/tsan/storage_tsan.sh [memory|disk]      (from the checkout; exit 0 = no report)
# bt-lua (built with -fsanitize=thread into build/tsan/) downloads 91 files (more than
# the 64 cached descriptors; the first one large enough for direct writes) from a rate-limited aria2c seed while a second bt-lua
# (plain build) leeches from it: the loop thread serves reads while the worker writes.
# Every process is killed by PID; every wait is bounded by timeout.
set -u
KIND=${1:-disk}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$ROOT/build/tsan
mkdir -p "$OUT/bt"
gcc -O1 -g -fsanitize=thread -Wall -Wextra -Werror -fPIC -fvisibility=hidden -shared \
  -I"$ROOT/csrc" $(pkg-config --cflags lua5.4 libcurl libcrypto) -o "$OUT/bt/core.so" "$ROOT"/csrc/*/*.c \
  $(pkg-config --libs libcurl libcrypto) -lev || exit 1
D=$(mktemp -d /tmp/bt-spec.XXXXXX)
mkdir -p "$D/seed/set" "$D/out" "$D/out2"
for i in $(seq 1 90); do head -c $((60 * 1024 + i * 101)) /dev/urandom > "$D/seed/set/f$(printf %03d "$i").bin"; done
# first in the torrent (names sort), at offset 0: runs of its pieces are written around the
# page cache (storage.h, BT_STORAGE_DIRECT_*) by the worker, on a second descriptor
head -c $((3 * 1024 * 1024 + 5)) /dev/urandom > "$D/seed/set/big.bin"
mktorrent -l 16 -a http://127.0.0.1:1/announce -o "$D/t.torrent" "$D/seed/set" > /dev/null
AP=$((30000 + RANDOM % 10000)); P=$((40000 + RANDOM % 10000))
aria2c -V --seed-ratio=0.0 --enable-dht=false --bt-enable-lpd=false --enable-peer-exchange=false \
  --max-upload-limit=1500K --listen-port=$AP -d "$D/seed" "$D/t.torrent" > "$D/aria.log" 2>&1 &
APID=$!
sleep 2
LP="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;;"
rm -f "$OUT"/report.*
LD_PRELOAD=$(gcc -print-file-name=libtsan.so) TSAN_OPTIONS="log_path=$OUT/report" \
  LUA_PATH_5_4="$LP" LUA_CPATH_5_4="$OUT/?.so;;" \
  timeout 90 lua5.4 "$ROOT/spec/tsan/storage_tsan.lua" "$KIND" "$D/t.torrent" "$D/out" $AP $P &
TPID=$!
sleep 1
LUA_PATH_5_4="$LP" LUA_CPATH_5_4="$ROOT/build/?.so;;" timeout 60 lua5.4 "$ROOT/scripts/bt-lua" run \
  bt.policy.default "$D/t.torrent" -o "$D/out2" --peer 127.0.0.1:$P --no-trackers -q --timeout 30
CRC=$?
wait $TPID; TRC=$?
kill $APID 2>/dev/null
A=$(cd "$D/seed" && cat set/* | sha256sum); B=$(cd "$D/out2" && cat set/* | sha256sum)
rm -rf "$D"
echo "storage $KIND: leecher exit $CRC, tsan process exit $TRC"
if ls "$OUT"/report.* > /dev/null 2>&1; then echo "ThreadSanitizer reports:"; ls "$OUT"/report.*; exit 1; fi
[ "$A" = "$B" ] || { echo "the leecher's copy differs"; exit 1; }
[ $CRC = 0 ] && [ $TRC = 0 ] || exit 1
echo "no ThreadSanitizer report"
