#!/usr/bin/env bash
# Is the harness the bottleneck? Runs wrk (Debian) and tessera-bench (closed loop; io_uring and
# epoll drivers) against nginx serving one 4 KiB static file, with the same threads and
# connections, alternating tools round by round, and prints throughput and the client's own CPU
# time per request (user+sys of the client process / requests) — the second number is robust on
# a shared, noisy machine where throughput is not.
#
#   bash bench/wrk-check.sh                 # THREADS=2 CONNECTIONS=64 DURATION=10 ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."

THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-64}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
PORT=${PORT:-$((20000 + RANDOM % 20000))}

need=()
for pkg in nginx wrk time; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
cargo build --release -p tessera-bench
BENCH=target/release/tessera-bench

DIR=$(mktemp -d /tmp/tessera-wrk-check.XXXXXX)
mkdir -p "$DIR/root"
"$BENCH" nginx-config --dir "$DIR" --port "$PORT" > "$DIR/nginx.conf"
/usr/sbin/nginx -p "$DIR" -c "$DIR/nginx.conf" > "$DIR/nginx.log" 2>&1 &
NGINX_PID=$!
cleanup() { kill "$NGINX_PID" 2>/dev/null || true; wait "$NGINX_PID" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.05; done

# Store the one 4 KiB object through WebDAV PUT (preload) and read it back once, checked.
"$BENCH" run --target "http://127.0.0.1:$PORT" --protocol template --path-template '/static/{key}' \
  --objects 1 --sizes 4KiB --threads 1 --connections 1 --requests 1 --no-pin > /dev/null 2>&1
KEY=$(ls "$DIR/root/static")
URL="http://127.0.0.1:$PORT/static/$KEY"

printf '%-5s %-18s %12s %10s %14s\n' round tool "req/s" "client CPU s" "CPU µs/request"
for round in $(seq "$ROUNDS"); do
  out=$( { /usr/bin/time -f "CPU %U %S" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" "$URL"; } 2>&1 )
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  cpu=$(awk '/^CPU/ {print $2 + $3}' <<<"$out")
  awk -v r="$round" -v rps="$rps" -v cpu="$cpu" -v d="$DURATION" \
    'BEGIN { printf "%-5s %-18s %12.0f %10.2f %14.2f\n", r, "wrk", rps, cpu, cpu * 1e6 / (rps * d) }'
  for driver in auto epoll; do
    out=$( { /usr/bin/time -f "CPU %U %S" "$BENCH" run --target "http://127.0.0.1:$PORT" --protocol template \
      --path-template '/static/{key}' --objects 1 --sizes 4KiB --threads "$THREADS" --connections "$CONNECTIONS" \
      --duration "${DURATION}s" --no-preload --driver "$driver" --label tb; } 2>&1 )
    rps=$(awk '$1 == "tb" {print $2}' <<<"$out")
    cpu=$(awk '/^CPU/ {print $2 + $3}' <<<"$out")
    awk -v r="$round" -v rps="$rps" -v cpu="$cpu" -v d="$DURATION" -v t="tessera-bench/$driver" \
      'BEGIN { printf "%-5s %-18s %12.0f %10.2f %14.2f\n", r, t, rps, cpu, cpu * 1e6 / (rps * d) }'
  done
done
