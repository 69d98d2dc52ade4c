#!/usr/bin/env bash
# Tessera vs nginx 1.22 (Debian) with the same load generator, wrk 4.1 (Debian), in one run:
# GET and PUT of 4 KiB and 1 MiB blobs, the two servers alternating round by round (order flipped
# every round), medians over the rounds and the Tessera/nginx ratio per row.
#
#   bash bench/wrk-compare.sh                     # ROUNDS=5 DURATION=5 THREADS=1
#   ROUNDS=7 DURATION=10 bash bench/wrk-compare.sh
#   ROWS="get-4k put-4k" bash bench/wrk-compare.sh
#
# What it does:
# * installs nginx and wrk if missing (idempotent), builds `tessera` in release mode (or uses
#   TESSERA_BIN);
# * starts Tessera (`--listen 127.0.0.1:0`, port read from its "tessera listening on" line) and
#   nginx (static files + WebDAV PUT, `sendfile on`, 2 workers, access log off) on loopback, each
#   with a fresh temp directory under /tmp;
# * GET: stores one random blob per size in both (PUT /cas/<sha256>), checks that both return it
#   byte-exact, then runs plain `wrk` on `/cas/<sha256>`;
# * PUT: `wrk -s bench/wrk-put.lua`, `PUT /ac/<64 hex>` cycling over KEYS keys (at most 256 MiB
#   of prebuilt requests: 1000 keys of 4 KiB, 256 of 1 MiB), so that both servers store every
#   upload (Tessera deduplicates a repeated /cas/ PUT);
# * a row with a non-2xx response or a socket error fails the script (exit 1) after the table;
# * stops both servers and removes the temp directory on exit.
#
# CPU placement (PLACEMENT):
# * `split` (default on 2 or more CPUs): the load generator runs on CLIENT_CPUS (default: CPU 0)
#   and both servers on SERVER_CPUS (default: every other CPU), with `taskset`. nginx gets one
#   worker per server CPU and Tessera one executor per server CPU (it follows its affinity
#   mask). Each server then has the same cores to itself, and the number measures the server,
#   not how well it shares a core with wrk.
# * `shared`: no pinning; client and servers share every core (nginx WORKERS, default 2;
#   Tessera one executor per CPU). On a 2-core machine this mostly measures scheduling between
#   three busy threads on two cores (bench/RESULTS.md §3).
#
# Numbers are closed-loop maxima on loopback. On a shared machine compare only the ratios of one
# run; the load average is printed.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
THREADS=${THREADS:-1}
CONNECTIONS_SMALL=${CONNECTIONS_SMALL:-32} # 4 KiB rows
CONNECTIONS_LARGE=${CONNECTIONS_LARGE:-8}  # 1 MiB rows
KEYS=${KEYS:-1000}
ROWS=${ROWS:-"get-4k get-1m put-4k put-1m"}
CPUS=$(nproc --all)
if [ "$CPUS" -ge 2 ]; then PLACEMENT=${PLACEMENT:-split}; else PLACEMENT=${PLACEMENT:-shared}; fi
case $PLACEMENT in
  split)
    CLIENT_CPUS=${CLIENT_CPUS:-0}
    SERVER_CPUS=${SERVER_CPUS:-1-$((CPUS - 1))}
    # CPUs in a taskset list such as "1-3,6".
    count_cpus() { tr ',' '\n' <<<"$1" | awk -F- '{ n += (NF == 2 ? $2 - $1 + 1 : 1) } END { print n }'; }
    WORKERS=${WORKERS:-$(count_cpus "$SERVER_CPUS")}
    ON_CLIENT=(taskset -c "$CLIENT_CPUS")
    ON_SERVER=(taskset -c "$SERVER_CPUS")
    ;;
  shared)
    WORKERS=${WORKERS:-2}
    ON_CLIENT=()
    ON_SERVER=()
    ;;
  *) echo "PLACEMENT must be split or shared, not '$PLACEMENT'" >&2; exit 2 ;;
esac
# Tessera's budget. Small enough that the PUT rows run at the budget (evicting, as a cache in
# service does) after the warm-up, instead of measuring the store growing: on these VMs the
# first touch of guest memory the page cache never used is slow (bench/RESULTS.md §3), which a
# growing store pays and nginx, overwriting the same KEYS files, does not.
TESSERA_MAX_SIZE=${TESSERA_MAX_SIZE:-1GiB}
# Seconds of the same load on each server before a row's measured rounds (0: none).
WARMUP=${WARMUP:-5}

need=()
for pkg in nginx wrk curl; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ -z "${TESSERA_BIN:-}" ]; then
  cargo build --release -p tessera
  TESSERA_BIN=target/release/tessera
fi
LUA=$PWD/bench/wrk-put.lua

DIR=$(mktemp -d /tmp/tessera-wrk-compare.XXXXXX)
TESSERA_PID=
NGINX_PID=
# SIGTERM, then SIGKILL for a server still alive 30 s later (a server that hangs must not hang
# the script).
cleanup() {
  for pid in $TESSERA_PID $NGINX_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $TESSERA_PID $NGINX_PID; do
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid ignored SIGTERM for 30 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$DIR"
}
trap cleanup EXIT

# A loopback port nothing listens on (nginx needs a fixed one; Tessera binds port 0).
free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 30000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  echo "no free port found" >&2
  return 1
}

# --- Tessera -----------------------------------------------------------------------------------
mkdir -p "$DIR/tessera-data"
"${ON_SERVER[@]}" "$TESSERA_BIN" serve --listen 127.0.0.1:0 --data "$DIR/tessera-data" --max-size "$TESSERA_MAX_SIZE" \
  --log warn >"$DIR/tessera.out" 2>"$DIR/tessera.err" &
TESSERA_PID=$!
for _ in $(seq 600); do
  grep -q '^tessera listening on' "$DIR/tessera.out" 2>/dev/null && break
  kill -0 "$TESSERA_PID" 2>/dev/null || { cat "$DIR/tessera.err" >&2; exit 1; }
  sleep 0.05
done
TESSERA_ADDR=$(awk '/^tessera listening on/ {print $4; exit}' "$DIR/tessera.out")
[ -n "$TESSERA_ADDR" ] || { echo "tessera did not print its ready line within 30 s" >&2; cat "$DIR/tessera.err" >&2; exit 1; }

# --- nginx -------------------------------------------------------------------------------------
NGINX_PORT=$(free_port)
mkdir -p "$DIR/nginx/root" "$DIR/nginx/client_body"
cat >"$DIR/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
# Workers must be able to write the WebDAV directory, which root owns when this runs as root.
user $( [ "$(id -u)" = 0 ] && echo root || id -un );
worker_processes $WORKERS;
pid $DIR/nginx/nginx.pid;
error_log $DIR/nginx/error.log warn;
events { worker_connections 4096; multi_accept on; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 100000000;
    client_body_buffer_size 1m;
    client_max_body_size 4m;
    client_body_temp_path $DIR/nginx/client_body;
    proxy_temp_path $DIR/nginx/proxy;
    fastcgi_temp_path $DIR/nginx/fastcgi;
    uwsgi_temp_path $DIR/nginx/uwsgi;
    scgi_temp_path $DIR/nginx/scgi;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$NGINX_PORT backlog=4096;
        root $DIR/nginx/root;
        location / {
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw;
        }
    }
}
EOF
"${ON_SERVER[@]}" /usr/sbin/nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" >"$DIR/nginx/stderr.log" 2>&1 &
NGINX_PID=$!
for _ in $(seq 200); do
  (exec 3<>"/dev/tcp/127.0.0.1/$NGINX_PORT") 2>/dev/null && break
  kill -0 "$NGINX_PID" 2>/dev/null || { cat "$DIR/nginx/stderr.log" "$DIR/nginx/error.log" >&2; exit 1; }
  sleep 0.05
done
NGINX_ADDR=127.0.0.1:$NGINX_PORT

# --- the same blobs in both --------------------------------------------------------------------
declare -A GET_PATH
for size in 4k 1m; do
  case $size in 4k) bytes=4096 ;; 1m) bytes=1048576 ;; esac
  head -c "$bytes" /dev/urandom >"$DIR/blob-$size"
  sha=$(sha256sum "$DIR/blob-$size" | cut -d' ' -f1)
  GET_PATH[$size]=/cas/$sha
  for addr in "$TESSERA_ADDR" "$NGINX_ADDR"; do
    curl -fsS -o /dev/null -T "$DIR/blob-$size" "http://$addr/cas/$sha"
    curl -fsS -o "$DIR/check" "http://$addr/cas/$sha"
    cmp -s "$DIR/check" "$DIR/blob-$size" || { echo "$addr returned other bytes for /cas/$sha" >&2; exit 1; }
  done
done
# One PUT through the Lua script's path shape, read back from both.
for addr in "$TESSERA_ADDR" "$NGINX_ADDR"; do
  key=/ac/$(printf 'b%.0s' $(seq 56))00000000
  curl -fsS -o /dev/null -T "$DIR/blob-4k" "http://$addr$key"
  curl -fsS -o "$DIR/check" "http://$addr$key"
  cmp -s "$DIR/check" "$DIR/blob-4k" || { echo "$addr: /ac/ PUT then GET differs" >&2; exit 1; }
done

# --- runs --------------------------------------------------------------------------------------
# One wrk run; prints "req/s MB/s bad" (bad = non-2xx/3xx responses + socket errors).
run_wrk() {
  local row=$1 addr=$2 conns size bytes out
  size=${row#*-}
  case $size in 4k) bytes=4096; conns=$CONNECTIONS_SMALL ;; 1m) bytes=1048576; conns=$CONNECTIONS_LARGE ;; esac
  if [ "${row%%-*}" = get ]; then
    out=$("${ON_CLIENT[@]}" wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" "http://$addr${GET_PATH[$size]}" 2>&1)
  else
    out=$(WRK_PUT_SIZE=$bytes WRK_PUT_KEYS=$KEYS "${ON_CLIENT[@]}" wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" \
      -s "$LUA" "http://$addr/" 2>&1)
  fi
  echo "$out" >>"$DIR/wrk.log"
  awk -v bytes="$bytes" '
    /^Requests\/sec/ { rps = $2 }
    /Non-2xx or 3xx responses/ { bad += $NF }
    /Socket errors/ { gsub(",", ""); bad += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.1f %d\n", rps, rps * bytes / 1e6, bad }' <<<"$out"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "tessera $TESSERA_ADDR ($("$TESSERA_BIN" --version)), nginx $NGINX_ADDR ($(/usr/sbin/nginx -v 2>&1 | sed 's/.*\///')), wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}')"
case $PLACEMENT in
  split) echo "placement split: wrk on CPU $CLIENT_CPUS; servers on CPU $SERVER_CPUS (nginx $WORKERS workers, Tessera $(awk '/^tessera listening on/ {print $NF; exit}' "$DIR/tessera.out"))" ;;
  shared) echo "placement shared: no pinning, $CPUS CPUs (nginx $WORKERS workers, Tessera $(awk '/^tessera listening on/ {print $NF; exit}' "$DIR/tessera.out"))" ;;
esac
echo "warm-up: $WARMUP s per server and row; Tessera budget $TESSERA_MAX_SIZE"
echo "wrk -t$THREADS, $CONNECTIONS_SMALL connections (4 KiB) / $CONNECTIONS_LARGE (1 MiB), ${DURATION} s per run, $ROUNDS rounds alternating; load average at start: $load_start"
printf '%-7s %5s %12s %12s %8s\n' row round "tessera/s" "nginx/s" ratio
failed=0
declare -A RESULT
for row in $ROWS; do
  if [ "${row%%-*}" = get ]; then
    # Again before each GET row: a PUT row before it may have evicted it from Tessera's budget.
    for addr in "$TESSERA_ADDR" "$NGINX_ADDR"; do
      curl -fsS -o /dev/null -T "$DIR/blob-${row#*-}" "http://$addr${GET_PATH[${row#*-}]}"
    done
  fi
  if [ "$WARMUP" != 0 ]; then
    for addr in "$TESSERA_ADDR" "$NGINX_ADDR"; do
      DURATION=$WARMUP run_wrk "$row" "$addr" >/dev/null
    done
  fi
  : >"$DIR/$row.t"; : >"$DIR/$row.n"; : >"$DIR/$row.r"; : >"$DIR/$row.tm"; : >"$DIR/$row.nm"
  for round in $(seq "$ROUNDS"); do
    if [ $((round % 2)) = 1 ]; then order="tessera nginx"; else order="nginx tessera"; fi
    for server in $order; do
      if [ "$server" = tessera ]; then addr=$TESSERA_ADDR; else addr=$NGINX_ADDR; fi
      read -r rps mbs bad < <(run_wrk "$row" "$addr")
      if [ "$bad" != 0 ] || [ "$rps" = 0 ]; then
        echo "  $row round $round $server: $bad bad responses/socket errors, $rps req/s" >&2
        failed=1
      fi
      RESULT[$server]=$rps
      echo "$rps" >>"$DIR/$row.${server:0:1}"
      echo "$mbs" >>"$DIR/$row.${server:0:1}m"
    done
    ratio=$(awk -v t="${RESULT[tessera]}" -v n="${RESULT[nginx]}" 'BEGIN { printf "%.2f", (n > 0 ? t / n : 0) }')
    echo "$ratio" >>"$DIR/$row.r"
    printf '%-7s %5s %12s %12s %7s×\n' "$row" "$round" "${RESULT[tessera]}" "${RESULT[nginx]}" "$ratio"
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "medians over $ROUNDS rounds (load average: start $load_start, end $load_end)"
echo
echo "| row | conns | Tessera req/s | nginx req/s | Tessera MB/s | nginx MB/s | Tessera/nginx (median of per-round ratios) | per-round ratios min–max |"
echo "|---|---|---|---|---|---|---|---|"
for row in $ROWS; do
  case ${row#*-} in 4k) conns=$CONNECTIONS_SMALL ;; 1m) conns=$CONNECTIONS_LARGE ;; esac
  printf '| %s | %s | %s | %s | %s | %s | **%s×** | %s–%s |\n' "$row" "$conns" \
    "$(median <"$DIR/$row.t")" "$(median <"$DIR/$row.n")" \
    "$(median <"$DIR/$row.tm")" "$(median <"$DIR/$row.nm")" \
    "$(median <"$DIR/$row.r")" "$(sort -g "$DIR/$row.r" | head -1)" "$(sort -g "$DIR/$row.r" | tail -1)"
done
if [ "$failed" != 0 ]; then
  echo "some runs had non-2xx responses or socket errors (wrk output: kept in the log above)" >&2
  tail -n 40 "$DIR/wrk.log" >&2
fi
exit "$failed"
