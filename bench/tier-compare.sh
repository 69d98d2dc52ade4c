#!/usr/bin/env bash
# The object-store tier's costs (issue 11), with SeaweedFS from tests/install-deps.sh on loopback.
#
# 1. Local paths, three release Tessera servers in the same run, alternating round by round:
#    `no tier`, `tier` ([tier] write-behind against SeaweedFS) and `journal` ([tier] against a
#    port nobody listens on: every PUT journals and queues its upload, none is ever sent, so
#    this is the journal's and the queue's cost alone, without upload CPU):
#      GET 4 KiB local hit (target ≥ 0.98× of no tier), PUT 4 KiB and PUT 1 MiB /ac/ (each upload
#      really stored; target ≥ 0.9×). CPU seconds of the server and of SeaweedFS are shown for
#      each run (from /proc/PID/stat), to see who the two cores went to. After each PUT
#      workload the tier node's backlog drains with no client load, and the CPU each upload cost
#      the tier node and SeaweedFS is printed.
# 2. Tier-hit latency: N objects are written through the tier node and uploaded; a fresh node
#    (empty data directory, same bucket) then GETs each once (local miss, object-store hit),
#    against SeaweedFS's own S3 GET of the same objects (curl --aws-sigv4, warm). One curl per
#    pass, one keep-alive connection, `time_total` per object; p50/p99.
# 3. Streaming tier hit (`PARTS=ttfb`): one TTFB_MIB MiB object (default 64) is written through
#    the tier node and uploaded; then, TTFB_ROUNDS times, a fresh node (empty data directory,
#    same bucket) GETs it once: curl's time to first byte and total time, median over the rounds,
#    against SeaweedFS's own S3 GET of the object. BASE_BIN=path/to/an/older/release/tessera
#    adds the same rows for that build, alternating with this one round by round (the
#    before/after of serving a tier hit while it streams in).
#
# Before each workload the tier node's backlog is drained, so that SeaweedFS is idle when the
# `no tier` and `journal` servers are measured (it is busy uploading during the `tier` run only);
# the `owed` line shows what the `tier` run left behind.
#
#   bash bench/tier-compare.sh    # THREADS=2 CONNECTIONS=32 DURATION=10 ROUNDS=3 HIT_OBJECTS=200
#                                 # PARTS="local latency" (any of "local latency ttfb")
#                                 # TTFB_MIB=64 TTFB_ROUNDS=5 BASE_BIN=…
#                                 # ORDER="local journal tier" (any order of the three)
#                                 # TESSERA_BIN=target/release/tessera (skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
HIT_OBJECTS=${HIT_OBJECTS:-200}
HIT_SIZES=${HIT_SIZES:-"4096 1048576"}
PARTS=${PARTS:-"local latency"}
TTFB_MIB=${TTFB_MIB:-64}
TTFB_ROUNDS=${TTFB_ROUNDS:-5}
BASE_BIN=${BASE_BIN:-}
# The order of the three servers within a workload. Later runs pay for the earlier ones'
# dirty pages being written back (a 1 MiB PUT run leaves ~1 GB), so compare both orders.
ORDER=${ORDER:-"local journal tier"}
WEED=${TESSERA_SEAWEEDFS_VENV:-/opt/tessera-tests/seaweedfs-venv}/bin/weed
[ -x "$WEED" ] || { echo "no $WEED: run bash tests/install-deps.sh" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing (Debian wrk)" >&2; exit 1; }

if [ -z "${TESSERA_BIN:-}" ]; then
  cargo build --release -p tessera
  TESSERA_BIN=target/release/tessera
fi
BIN=$TESSERA_BIN
DIR=$(mktemp -d /tmp/tessera-tier-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$DIR"; }
trap cleanup EXIT

# A free port below 55536: SeaweedFS puts each part's gRPC port at its port + 10000, and a
# kernel-chosen ephemeral port can be above 55535 (then `weed shell` finds no master and hangs).
port() {
  python3 -c '
import random, socket
while True:
    p = random.randint(20000, 45000)
    try:
        for q in (p, p + 10000):
            s = socket.socket(); s.bind(("127.0.0.1", q)); s.close()
        print(p); break
    except OSError:
        pass'
}
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
# CPU seconds (user + system, all threads) a process has used.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$1/stat"; }

P1=$(port); P2=$(port); P3=$(port); P4=$(port); DEAD=$(port)
mkdir -p "$DIR/weed"
AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SK "$WEED" mini -dir="$DIR/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
  -master.port="$P1" -volume.port="$P2" -filer.port="$P3" -s3.port="$P4" -s3.port.iceberg=0 \
  -s3.port.lance=0 -webdav=false -admin.ui=false > "$DIR/weed.log" 2>&1 &
WEED_PID=$!
pids+=("$WEED_PID")
wait_port "$P4"
for _ in $(seq 100); do
  echo "s3.bucket.create -name bench" | "$WEED" shell -master="127.0.0.1:$P1" 2>/dev/null | grep -q "created bucket" && break
  sleep 0.3
done
# `weed mini` runs its parts as children of one process: count them all.
weed_cpu() {
  local total=0 p
  for p in "$WEED_PID" $(pgrep -P "$WEED_PID" || true); do total=$(awk -v a="$total" -v b="$(cpu "$p")" 'BEGIN {print a + b}'); done
  echo "$total"
}

# start NAME ARGS…: starts a server (its pid in $DIR/NAME.pid, its address on stdout);
# SERVER_BIN=… starts another build.
start() {
  local name=$1; shift
  "${SERVER_BIN:-$BIN}" serve --listen 127.0.0.1:0 --data "$DIR/$name" --max-size 4GiB "$@" > "$DIR/$name.out" 2> "$DIR/$name.log" &
  echo $! > "$DIR/$name.pid"
  for _ in $(seq 300); do grep -q "listening on" "$DIR/$name.out" 2>/dev/null && break; sleep 0.1; done
  sed -n 's/^tessera listening on \([0-9.:]*\).*/\1/p' "$DIR/$name.out"
}
pid_of() { cat "$DIR/$1.pid"; }
TIER_ARGS=(--tier-bucket bench --tier-access-key AK --tier-secret-key SK)
LOCAL=$(start local); pids+=("$(pid_of local)")
TIER=$(start tier --tier-endpoint "http://127.0.0.1:$P4" "${TIER_ARGS[@]}"); pids+=("$(pid_of tier)")

head -c 4096 /dev/urandom > "$DIR/obj"
HASH=$(sha256sum "$DIR/obj" | cut -d' ' -f1)
for addr in "$LOCAL" "$TIER"; do curl -sf -X PUT --data-binary @"$DIR/obj" "http://$addr/cas/$HASH" > /dev/null; done

rps() { awk '/^Requests\/sec/ {print $2}'; }
owed() { curl -s "http://$1/metrics" | awk '$1 == "tessera_tier_upload_queue" {print $2}'; }
uploads() { curl -s "http://$1/metrics" | awk '$1 == "tessera_tier_uploads_total" {print $2}'; }
# drain ADDR: waits (at most 10 min) until a node owes no upload; prints how long it took.
drain() {
  local started=$SECONDS
  for _ in $(seq 1200); do [ "$(owed "$1")" = 0 ] && break; sleep 0.5; done
  echo $((SECONDS - started))
}
# measure NAME PID URL [wrk args…]: req/s, server CPU s, SeaweedFS CPU s.
measure() {
  local name=$1 pid=$2 url=$3; shift 3
  local c0 w0 r
  c0=$(cpu "$pid"); w0=$(weed_cpu)
  r=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$@" "$url" | rps)
  echo "$r $(awk -v a="$c0" -v b="$(cpu "$pid")" 'BEGIN {print b - a}') $(awk -v a="$w0" -v b="$(weed_cpu)" 'BEGIN {print b - a}')"
}
case " $PARTS " in *" local "*)
printf '%-5s %-14s %10s %10s %10s %7s %7s | %-26s %-26s\n' round workload "no tier" tier journal tier/no journ/no "cpu s tessera/weed: tier" "journal"
for round in $(seq "$ROUNDS"); do
  # A fresh journal-only node per round: its owed uploads never drain (tier.owed bound).
  rm -rf "$DIR/journal"
  JOURNAL=$(start journal --tier-endpoint "http://127.0.0.1:$DEAD" "${TIER_ARGS[@]}")
  JOURNAL_PID=$(pid_of journal); pids+=("$JOURNAL_PID")
  curl -sf -X PUT --data-binary @"$DIR/obj" "http://$JOURNAL/cas/$HASH" > /dev/null
  row() { # label, then the three measure lines
    read -r a _ _ <<< "$2"; read -r b bc bw <<< "$3"; read -r j jc jw <<< "$4"
    awk -v r="$round" -v l="$1" -v a="$a" -v b="$b" -v j="$j" -v bc="$bc" -v bw="$bw" -v jc="$jc" -v jw="$jw" \
      'BEGIN { printf "%-5s %-14s %10.0f %10.0f %10.0f %7.3f %7.3f | %8.1f / %-15.1f %8.1f / %.1f\n", r, l, a, b, j, b / a, j / a, bc, bw, jc, jw }'
  }
  # three PATH [wrk args…]: measures the three servers in ORDER into $l $j $t.
  three() {
    local path=$1 server; shift
    for server in $ORDER; do
      case $server in
        local) l=$(measure local "$(pid_of local)" "http://$LOCAL$path" "$@") ;;
        journal) j=$(measure journal "$JOURNAL_PID" "http://$JOURNAL$path" "$@") ;;
        tier) t=$(measure tier "$(pid_of tier)" "http://$TIER$path" "$@") ;;
      esac
    done
  }
  drain "$TIER" > /dev/null
  three "/cas/$HASH"
  row "GET 4KiB hit" "$l" "$t" "$j"
  for size in 4096 1048576; do
    export WRK_PUT_SIZE=$size
    drain "$TIER" > /dev/null
    three "" -s bench/wrk-put.lua
    row "PUT $([ "$size" = 4096 ] && echo 4KiB || echo 1MiB) ac" "$l" "$t" "$j"
    left=$(owed "$TIER")
    # CPU per upload while the backlog drains (no client load): what each upload costs the
    # tier node (its tier thread: object_store's S3 client, SigV4) and SeaweedFS.
    tc0=$(cpu "$(pid_of tier)"); wc0=$(weed_cpu); u0=$(uploads "$TIER")
    took=$(drain "$TIER")
    n=$(( $(uploads "$TIER") - u0 ))
    awk -v l="$left" -v t="$took" -v n="$n" -v tc="$(awk -v a="$tc0" -v b="$(cpu "$(pid_of tier)")" 'BEGIN {print b - a}')" \
      -v wc="$(awk -v a="$wc0" -v b="$(weed_cpu)" 'BEGIN {print b - a}')" 'BEGIN {
        printf "      tier: %d uploads owed after the run, drained in %d s with SeaweedFS alone", l, t
        if (n > 0) printf "; CPU per upload: Tessera %.0f µs, SeaweedFS %.0f µs", tc / n * 1e6, wc / n * 1e6
        printf "\n" }'
  done
  kill -9 "$JOURNAL_PID"; wait "$JOURNAL_PID" 2>/dev/null || true
done
;; esac
case " $PARTS " in *" latency "*)
# 2. Tier-hit latency.
echo "draining the tier node's uploads before the latency run…"
for _ in $(seq 1200); do
  [ "$(curl -s "http://$TIER/metrics" | awk '$1 == "tessera_tier_upload_queue" {print $2}')" = 0 ] && break
  sleep 0.5
done
pct() { sort -n | awk '{v[NR] = $1} END {p50 = v[int(NR * 0.50 + 0.5)]; p99 = v[int(NR * 0.99 + 0.5)]; printf "%8.0f %8.0f", p50 * 1e6, p99 * 1e6}'; }
printf '\n%-10s %-36s %8s %8s  (µs, %s objects each)\n' size path p50 p99 "$HIT_OBJECTS"
for size in $HIT_SIZES; do
  : > "$DIR/hashes"
  for i in $(seq "$HIT_OBJECTS"); do
    head -c "$size" /dev/urandom > "$DIR/hit"
    h=$(sha256sum "$DIR/hit" | cut -d' ' -f1)
    curl -sf -X PUT --data-binary @"$DIR/hit" "http://$TIER/cas/$h" > /dev/null
    echo "$h" >> "$DIR/hashes"
  done
  for _ in $(seq 1200); do
    [ "$(curl -s "http://$TIER/metrics" | awk '$1 == "tessera_tier_upload_queue" {print $2}')" = 0 ] && break
    sleep 0.5
  done
  rm -rf "$DIR/cold"
  COLD=$(start cold --tier-endpoint "http://127.0.0.1:$P4" "${TIER_ARGS[@]}")
  COLD_PID=$(pid_of cold); pids+=("$COLD_PID")
  # curl takes one `-o` per URL.
  weed_urls=(); cold_urls=()
  while read -r h; do
    weed_urls+=(-o /dev/null "http://127.0.0.1:$P4/bench/cas/${h:0:2}/$h")
    cold_urls+=(-o /dev/null "http://$COLD/cas/$h")
  done < "$DIR/hashes"
  s3get() { curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user AK:SK -w '%{time_total}\n' "$@"; }
  s3get "${weed_urls[@]}" > /dev/null # warm SeaweedFS (both passes below read it warm)
  s3get "${weed_urls[@]}" | pct | xargs printf '%-10s %-36s %8s %8s\n' "$size" "SeaweedFS S3 GET (direct)"
  curl -sf -w '%{time_total}\n' "${cold_urls[@]}" | pct | xargs printf '%-10s %-36s %8s %8s\n' "$size" "Tessera tier hit (local miss)"
  curl -sf -w '%{time_total}\n' "${cold_urls[@]}" | pct | xargs printf '%-10s %-36s %8s %8s\n' "$size" "Tessera local hit (same objects)"
  echo "           cold node: $(curl -s "http://$COLD/metrics" | awk '$1 == "tessera_tier_read_hits_total" {print "tier hits " $2}')"
  kill -9 "$COLD_PID"; wait "$COLD_PID" 2>/dev/null || true
done
;; esac
case " $PARTS " in *" ttfb "*)
# 3. Streaming tier hit: time to first byte and total, this build (and BASE_BIN's).
for _ in $(seq 1200); do [ "$(owed "$TIER")" = 0 ] && break; sleep 0.5; done
head -c "$((TTFB_MIB << 20))" /dev/urandom > "$DIR/big"
BIG=$(sha256sum "$DIR/big" | cut -d' ' -f1)
curl -sf -X PUT --data-binary @"$DIR/big" "http://$TIER/cas/$BIG" > /dev/null
for _ in $(seq 1200); do [ "$(owed "$TIER")" = 0 ] && break; sleep 0.5; done
rm -f "$DIR/big"
builds=("this:$BIN")
[ -n "$BASE_BIN" ] && builds=("base:$BASE_BIN" "${builds[@]}")
for round in $(seq "$TTFB_ROUNDS"); do
  curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user AK:SK -o /dev/null \
    -w '%{time_starttransfer} %{time_total}\n' "http://127.0.0.1:$P4/bench/cas/${BIG:0:2}/$BIG" >> "$DIR/ttfb.weed"
  for build in "${builds[@]}"; do
    name=${build%%:*}
    rm -rf "$DIR/cold-$name"
    COLD=$(SERVER_BIN=${build#*:} start "cold-$name" --tier-endpoint "http://127.0.0.1:$P4" "${TIER_ARGS[@]}")
    COLD_PID=$(pid_of "cold-$name"); pids+=("$COLD_PID")
    out=$(curl -sf -o "$DIR/got" -w '%{time_starttransfer} %{time_total}' "http://$COLD/cas/$BIG")
    [ "$(sha256sum "$DIR/got" | cut -d' ' -f1)" = "$BIG" ] || { echo "$name: the body is not byte-exact" >&2; exit 1; }
    echo "$out" >> "$DIR/ttfb.$name"
    kill -9 "$COLD_PID"; wait "$COLD_PID" 2>/dev/null || true
  done
done
rm -f "$DIR/got"
median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)] * 1000}'; }
printf '\n%s MiB tier hit, %s rounds, median ms: %-34s %10s %10s\n' "$TTFB_MIB" "$TTFB_ROUNDS" "" "first byte" total
for name in weed base this; do
  [ -f "$DIR/ttfb.$name" ] || continue
  case $name in weed) label="SeaweedFS S3 GET (direct)" ;; base) label="Tessera $BASE_BIN" ;; this) label="Tessera $BIN" ;; esac
  printf '%-70s %10.1f %10.1f\n' "$label" "$(cut -d' ' -f1 "$DIR/ttfb.$name" | median)" "$(cut -d' ' -f2 "$DIR/ttfb.$name" | median)"
done
;; esac
