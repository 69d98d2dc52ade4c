#!/usr/bin/env bash
# The object-store tier's cost on the local paths (issue 11): two release Tessera servers in the
# same run, one with `[tier]` (SeaweedFS from tests/install-deps.sh on loopback, write-behind)
# and one without, alternating round by round:
#   GET 4 KiB local hit (target ≥ 0.98× of no tier), PUT 4 KiB and PUT 1 MiB /ac/ (each upload
#   really stored; with the tier every one is also uploaded in the background; target ≥ 0.9×).
#
#   bash bench/tier-compare.sh        # THREADS=2 CONNECTIONS=32 DURATION=10 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
WEED=${TESSERA_SEAWEEDFS_VENV:-/opt/tessera-tests/seaweedfs-venv}/bin/weed
[ -x "$WEED" ] || { echo "no $WEED: run bash tests/install-deps.sh" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing (Debian wrk)" >&2; exit 1; }

cargo build --release -p tessera
BIN=target/release/tessera
DIR=$(mktemp -d /tmp/tessera-tier-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

P1=$(port); P2=$(port); P3=$(port); P4=$(port)
mkdir -p "$DIR/weed"
AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SK "$WEED" mini -dir="$DIR/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$P1" -volume.port="$P2" -filer.port="$P3" -s3.port="$P4" -s3.port.iceberg=0 \
  -s3.port.lance=0 -webdav=false -admin.ui=false > "$DIR/weed.log" 2>&1 &
pids+=($!)
wait_port "$P4"
for _ in $(seq 100); do
  echo "s3.bucket.create -name bench" | "$WEED" shell -master="127.0.0.1:$P1" 2>/dev/null | grep -q "created bucket" && break
  sleep 0.3
done

start() { # name, extra args…
  local name=$1; shift
  "$BIN" serve --listen 127.0.0.1:0 --data "$DIR/$name" --max-size 1GiB "$@" > "$DIR/$name.out" 2> "$DIR/$name.log" &
  pids+=($!)
  for _ in $(seq 300); do grep -q "listening on" "$DIR/$name.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^tessera listening on \([0-9.:]*\).*/\1/p' "$DIR/$name.out"
}
LOCAL=$(start local)
TIER=$(start tier --tier-endpoint "http://127.0.0.1:$P4" --tier-bucket bench --tier-access-key AK --tier-secret-key SK)

head -c 4096 /dev/urandom > "$DIR/obj"
HASH=$(sha256sum "$DIR/obj" | cut -d' ' -f1)
for addr in "$LOCAL" "$TIER"; do curl -sf -X PUT --data-binary @"$DIR/obj" "http://$addr/cas/$HASH" > /dev/null; done

rps() { awk '/^Requests\/sec/ {print $2}'; }
printf '%-5s %-14s %12s %12s %8s\n' round workload "no tier" "tier" ratio
for round in $(seq "$ROUNDS"); do
  a=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "http://$LOCAL/cas/$HASH" | rps)
  b=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "http://$TIER/cas/$HASH" | rps)
  awk -v r="$round" -v a="$a" -v b="$b" 'BEGIN { printf "%-5s %-14s %12.0f %12.0f %8.3f\n", r, "GET 4KiB hit", a, b, b / a }'
  for size in 4096 1048576; do
    a=$(WRK_PUT_SIZE=$size wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s bench/wrk-put.lua "http://$LOCAL" | rps)
    b=$(WRK_PUT_SIZE=$size wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s bench/wrk-put.lua "http://$TIER" | rps)
    awk -v r="$round" -v s="$size" -v a="$a" -v b="$b" 'BEGIN { printf "%-5s %-14s %12.0f %12.0f %8.3f\n", r, "PUT " (s == 4096 ? "4KiB" : "1MiB") " ac", a, b, b / a }'
  done
done
echo "tier upload queue at the end: $(curl -s "http://$TIER/metrics" | awk '$1 == "tessera_tier_upload_queue" {print $2}')"
