#!/usr/bin/env bash
# Tessera's Bazel gRPC front-end next to its Bazel HTTP/1.1 front-end, same blobs, same server.
#
# For each blob size (4 KiB, 1 MiB) and protocol (HTTP `/cas/`, gRPC ByteStream), alternating:
#   write: the preload uploads every object once (HTTP PUT / ByteStream.Write of new blobs);
#          its line "preload: N PUTs in T s (req/s, MB/s, p50, p99)" is the write throughput;
#   read:  a closed loop of GETs / ByteStream.Reads of the stored objects for $DURATION.
# Then FindMissingBlobs with 1,000 stored digests per request (no HTTP equivalent: Bazel's
# HTTP client never asks for presence).
# Each protocol writes into its own instance (`/h` prefix, instance `g`), so every write is a
# new blob. Output: bench/results/grpc-<UTC timestamp>/{log,*.json,*.hgrm,*.svg}.
#
#   bash bench/grpc-vs-http.sh
#   DURATION=20s ROUNDS=3 CONNECTIONS=32 bash bench/grpc-vs-http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-16}
THREADS=${THREADS:-2}
EXECUTORS=${EXECUTORS:-2}

cargo build --release -p tessera -p tessera-bench
out="bench/results/grpc-$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
data="$out/tessera-data"

target/release/tessera serve --listen 127.0.0.1:0 --data "$data" --executors "$EXECUTORS" \
  --max-size 16GiB --max-blob-size 64MiB --log warn > "$out/tessera.out" 2> "$out/tessera.err" &
server=$!
trap 'kill -TERM $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 100); do
  grep -q "tessera listening on" "$out/tessera.out" 2>/dev/null && break
  sleep 0.1
done
addr=$(sed -n 's/^tessera listening on \([^ ]*\) .*/\1/p' "$out/tessera.out")
[ -n "$addr" ] || { echo "tessera did not start"; cat "$out/tessera.err"; exit 1; }
echo "tessera at $addr; results in $out" | tee "$out/log"

bench() { # label, then tessera-bench run flags
  local label=$1; shift
  echo "== $label" | tee -a "$out/log"
  target/release/tessera-bench run --target "http://$addr" --threads "$THREADS" \
    --connections "$CONNECTIONS" --duration "$DURATION" --label "$label" --out "$out" "$@" \
    2>&1 | tee -a "$out/log"
}

for round in $(seq "$ROUNDS"); do
  for size in 4KiB 1MiB; do
    objects=$([ "$size" = 4KiB ] && echo 20000 || echo 1000)
    for protocol in bazel grpc; do
      prefix=$([ "$protocol" = bazel ] && echo /h$round || echo g$round)
      bench "$protocol-read-$size-r$round" --protocol "$protocol" --prefix "$prefix" \
        --sizes "$size" --objects "$objects" --seed "$round"
    done
  done
  bench "grpc-find-missing-1000-r$round" --protocol grpc-find-missing --batch 1000 \
    --prefix "g$round" --sizes 4KiB --objects 20000 --seed "$round" --no-preload
done
echo "results: $out"
