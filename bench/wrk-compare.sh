#!/usr/bin/env bash
# Tessera vs nginx 1.22 (Debian) with the same load generator, wrk 4.1 (Debian), in one run:
# GET and PUT of 4 KiB and 1 MiB blobs, the two servers alternating round by round (order flipped
# every round), medians over the rounds and the Tessera/nginx ratio per row.
#
#   bash bench/wrk-compare.sh                     # ROUNDS=5 DURATION=5 THREADS=1
#   ROUNDS=7 DURATION=10 bash bench/wrk-compare.sh
#   ROWS="get-4k put-4k" bash bench/wrk-compare.sh
#   TESSERA_PREV_BIN=/tmp/tessera-602ecf4 ROWS=get-4k bash bench/wrk-compare.sh   # + a previous build
#   TLS=1 ROWS="get-4k get-1m" bash bench/wrk-compare.sh   # HTTPS: both servers, one certificate
#
# With TLS=1 both servers serve HTTPS only on their port with the same certificate (an EC P-256
# key signed by a CA made in the temp directory with openssl): Tessera with tls_cert/tls_key
# (TLS recognised by the ClientHello on its one port), nginx with `listen … ssl` (TLSv1.2 and
# 1.3, its defaults otherwise). wrk speaks TLS itself (OpenSSL; it negotiates TLS 1.3 and sends
# no ALPN, so Tessera serves HTTP/1.1) and keeps its connections, so the rows measure the
# record layer (encryption of every response), not handshakes. nginx's `sendfile` does not
# apply under TLS (no kernel TLS here): both servers copy the bytes through user space.
#
# With TESSERA_PREV_BIN a second Tessera ("prev", e.g. the release binary of an earlier commit)
# joins the alternation with the same flags, placement and data: each round runs all three
# servers in an order rotated every round, and the table adds Tessera/prev (the regression
# check of one build against another, measured in the same run as against nginx).
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
for pkg in nginx wrk curl openssl; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if [ -z "${TESSERA_BIN:-}" ]; then
  cargo build --release -p tessera
  TESSERA_BIN=target/release/tessera
fi
LUA=$PWD/bench/wrk-put.lua
TLS=${TLS:-0}

DIR=$(mktemp -d /tmp/tessera-wrk-compare.XXXXXX)
TESSERA_PID=
PREV_PID=
NGINX_PID=
# SIGTERM, then SIGKILL for a server still alive 30 s later (a server that hangs must not hang
# the script).
cleanup() {
  for pid in $TESSERA_PID $PREV_PID $NGINX_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $TESSERA_PID $PREV_PID $NGINX_PID; do
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

# --- TLS: one CA and one server certificate for both servers --------------------------------------
SCHEME=http
CURL=(curl -fsS)
TESSERA_TLS=()
NGINX_LISTEN_TLS=
NGINX_TLS=
if [ "$TLS" = 1 ]; then
  SCHEME=https
  (
    cd "$DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
      -days 2 -subj "/CN=bench CA" -addext basicConstraints=critical,CA:TRUE \
      -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout server.key -out server.csr \
      -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
      -extfile server.ext 2>/dev/null
  )
  CURL=(curl -fsS --cacert "$DIR/ca.pem")
  TESSERA_TLS=(--tls-cert "$DIR/server.pem" --tls-key "$DIR/server.key" --tls-required)
  NGINX_LISTEN_TLS=ssl
  NGINX_TLS="ssl_certificate $DIR/server.pem; ssl_certificate_key $DIR/server.key; ssl_protocols TLSv1.2 TLSv1.3;"
fi

# --- Tessera (and the previous build) ------------------------------------------------------------
# start_tessera NAME BINARY: starts it in $DIR/NAME-data, sets STARTED_PID and STARTED_ADDR.
start_tessera() {
  local name=$1 bin=$2
  mkdir -p "$DIR/$name-data"
  "${ON_SERVER[@]}" "$bin" serve --listen 127.0.0.1:0 --data "$DIR/$name-data" --max-size "$TESSERA_MAX_SIZE" \
    --log warn "${TESSERA_TLS[@]}" >"$DIR/$name.out" 2>"$DIR/$name.err" &
  STARTED_PID=$!
  for _ in $(seq 600); do
    grep -q '^tessera listening on' "$DIR/$name.out" 2>/dev/null && break
    kill -0 "$STARTED_PID" 2>/dev/null || { cat "$DIR/$name.err" >&2; exit 1; }
    sleep 0.05
  done
  STARTED_ADDR=$(awk '/^tessera listening on/ {print $4; exit}' "$DIR/$name.out")
  [ -n "$STARTED_ADDR" ] || { echo "$name did not print its ready line within 30 s" >&2; cat "$DIR/$name.err" >&2; exit 1; }
}
start_tessera tessera "$TESSERA_BIN"
TESSERA_PID=$STARTED_PID
TESSERA_ADDR=$STARTED_ADDR
PREV_ADDR=
if [ -n "${TESSERA_PREV_BIN:-}" ]; then
  start_tessera prev "$TESSERA_PREV_BIN"
  PREV_PID=$STARTED_PID
  PREV_ADDR=$STARTED_ADDR
fi

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
        listen 127.0.0.1:$NGINX_PORT $NGINX_LISTEN_TLS backlog=4096;
        $NGINX_TLS
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

# The servers of a round, in order before rotation, and their addresses.
SERVERS=(tessera)
declare -A ADDR=([tessera]=$TESSERA_ADDR [nginx]=$NGINX_ADDR)
declare -A PID=([tessera]=$TESSERA_PID [nginx]=$NGINX_PID)
if [ -n "$PREV_ADDR" ]; then SERVERS+=(prev); ADDR[prev]=$PREV_ADDR; PID[prev]=$PREV_PID; fi
SERVERS+=(nginx)

# --- the same blobs in every server -------------------------------------------------------------
declare -A GET_PATH
for size in 4k 1m; do
  case $size in 4k) bytes=4096 ;; 1m) bytes=1048576 ;; esac
  head -c "$bytes" /dev/urandom >"$DIR/blob-$size"
  sha=$(sha256sum "$DIR/blob-$size" | cut -d' ' -f1)
  GET_PATH[$size]=/cas/$sha
  for addr in "${ADDR[@]}"; do
    "${CURL[@]}" -o /dev/null -T "$DIR/blob-$size" "$SCHEME://$addr/cas/$sha"
    "${CURL[@]}" -o "$DIR/check" "$SCHEME://$addr/cas/$sha"
    cmp -s "$DIR/check" "$DIR/blob-$size" || { echo "$addr returned other bytes for /cas/$sha" >&2; exit 1; }
  done
done
# One PUT through the Lua script's path shape, read back from each.
for addr in "${ADDR[@]}"; do
  key=/ac/$(printf 'b%.0s' $(seq 56))00000000
  "${CURL[@]}" -o /dev/null -T "$DIR/blob-4k" "$SCHEME://$addr$key"
  "${CURL[@]}" -o "$DIR/check" "$SCHEME://$addr$key"
  cmp -s "$DIR/check" "$DIR/blob-4k" || { echo "$addr: /ac/ PUT then GET differs" >&2; exit 1; }
done

# --- runs --------------------------------------------------------------------------------------
# One wrk run; prints "req/s MB/s bad" (bad = non-2xx/3xx responses + socket errors).
run_wrk() {
  local row=$1 addr=$2 conns size bytes out
  size=${row#*-}
  case $size in 4k) bytes=4096; conns=$CONNECTIONS_SMALL ;; 1m) bytes=1048576; conns=$CONNECTIONS_LARGE ;; esac
  if [ "${row%%-*}" = get ]; then
    out=$("${ON_CLIENT[@]}" wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" "$SCHEME://$addr${GET_PATH[$size]}" 2>&1)
  else
    out=$(WRK_PUT_SIZE=$bytes WRK_PUT_KEYS=$KEYS "${ON_CLIENT[@]}" wrk -t"$THREADS" -c"$conns" -d"${DURATION}s" \
      -s "$LUA" "$SCHEME://$addr/" 2>&1)
  fi
  echo "$out" >>"$DIR/wrk.log"
  awk -v bytes="$bytes" '
    / requests in / { requests = $1 }
    /^Requests\/sec/ { rps = $2 }
    /Non-2xx or 3xx responses/ { bad += $NF }
    /Socket errors/ { gsub(",", ""); bad += $4 + $6 + $8 + $10 }
    END { printf "%.0f %.1f %d %d\n", rps, rps * bytes / 1e6, bad, requests }' <<<"$out"
}

# CPU time a server has used, in ns: every thread of the process and of its child processes
# (nginx's workers), from /proc/*/task/*/schedstat. Divided by the requests of a run, this is the
# server's CPU per request, which other load on the machine disturbs far less than req/s (a
# busy neighbour takes CPU time from a server, not CPU work per request).
# A thread that exits between the glob and the read is skipped (hence the `|| true`s: with
# pipefail a vanished thread must not end the script).
cpu_ns() {
  local pid=$1 p
  for p in "$pid" $(cat /proc/"$pid"/task/*/children 2>/dev/null || true); do
    cat /proc/"$p"/task/*/schedstat 2>/dev/null || true
  done | awk '{ s += $1 } END { printf "%.0f\n", s }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
echo "tessera $TESSERA_ADDR ($("$TESSERA_BIN" --version), $TESSERA_BIN sha256 $(sha256sum "$TESSERA_BIN" | cut -c1-12)), nginx $NGINX_ADDR ($(/usr/sbin/nginx -v 2>&1 | sed 's/.*\///')), wrk $(wrk -v 2>&1 | awk 'NR==1 {print $2}')"
if [ -n "$PREV_ADDR" ]; then
  echo "prev $PREV_ADDR ($("$TESSERA_PREV_BIN" --version), $TESSERA_PREV_BIN sha256 $(sha256sum "$TESSERA_PREV_BIN" | cut -c1-12))"
fi
case $PLACEMENT in
  split) echo "placement split: wrk on CPU $CLIENT_CPUS; servers on CPU $SERVER_CPUS (nginx $WORKERS workers, Tessera $(awk '/^tessera listening on/ {print $NF; exit}' "$DIR/tessera.out"))" ;;
  shared) echo "placement shared: no pinning, $CPUS CPUs (nginx $WORKERS workers, Tessera $(awk '/^tessera listening on/ {print $NF; exit}' "$DIR/tessera.out"))" ;;
esac
echo "warm-up: $WARMUP s per server and row; Tessera budget $TESSERA_MAX_SIZE; scheme $SCHEME"
echo "wrk -t$THREADS, $CONNECTIONS_SMALL connections (4 KiB) / $CONNECTIONS_LARGE (1 MiB), ${DURATION} s per run, $ROUNDS rounds, order rotated every round; load average at start: $load_start"
printf '%-7s %5s' row round
for server in "${SERVERS[@]}"; do printf ' %10s %8s' "$server/s" "µs CPU"; done
printf ' %8s' "t/nginx"
[ -n "$PREV_ADDR" ] && printf ' %8s %9s' "t/prev" "CPU t/p"
printf '\n'
failed=0
declare -A RESULT CPU_US
# per_round ROW NAME VALUE: appends VALUE to the row's per-round list NAME.
per_round() { echo "$3" >>"$DIR/$1.$2"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
for row in $ROWS; do
  if [ "${row%%-*}" = get ]; then
    # Again before each GET row: a PUT row before it may have evicted it from Tessera's budget.
    for addr in "${ADDR[@]}"; do
      "${CURL[@]}" -o /dev/null -T "$DIR/blob-${row#*-}" "$SCHEME://$addr${GET_PATH[${row#*-}]}"
    done
  fi
  if [ "$WARMUP" != 0 ]; then
    for server in "${SERVERS[@]}"; do
      DURATION=$WARMUP run_wrk "$row" "${ADDR[$server]}" >/dev/null
    done
  fi
  for round in $(seq "$ROUNDS"); do
    # Rotate the order every round, so that no server always runs first or right after another.
    n=${#SERVERS[@]}
    order=()
    for i in $(seq 0 $((n - 1))); do order+=("${SERVERS[$(((i + round - 1) % n))]}"); done
    for server in "${order[@]}"; do
      before=$(cpu_ns "${PID[$server]}")
      read -r rps mbs bad requests < <(run_wrk "$row" "${ADDR[$server]}")
      after=$(cpu_ns "${PID[$server]}")
      if [ "$bad" != 0 ] || [ "$rps" = 0 ]; then
        echo "  $row round $round $server: $bad bad responses/socket errors, $rps req/s" >&2
        failed=1
      fi
      RESULT[$server]=$rps
      CPU_US[$server]=$(awk -v a="$before" -v b="$after" -v n="$requests" 'BEGIN { printf "%.2f", (n > 0 ? (b - a) / n / 1000 : 0) }')
      per_round "$row" "$server" "$rps"
      per_round "$row" "$server.mb" "$mbs"
      per_round "$row" "$server.cpu" "${CPU_US[$server]}"
    done
    per_round "$row" r "$(ratio "${RESULT[tessera]}" "${RESULT[nginx]}")"
    per_round "$row" rc "$(ratio "${CPU_US[tessera]}" "${CPU_US[nginx]}")"
    printf '%-7s %5s' "$row" "$round"
    for server in "${SERVERS[@]}"; do printf ' %10s %8s' "${RESULT[$server]}" "${CPU_US[$server]}"; done
    printf ' %7.2f×' "$(ratio "${RESULT[tessera]}" "${RESULT[nginx]}")"
    if [ -n "$PREV_ADDR" ]; then
      per_round "$row" rp "$(ratio "${RESULT[tessera]}" "${RESULT[prev]}")"
      per_round "$row" rpc "$(ratio "${CPU_US[tessera]}" "${CPU_US[prev]}")"
      printf ' %7.3f× %8.3f×' "$(ratio "${RESULT[tessera]}" "${RESULT[prev]}")" "$(ratio "${CPU_US[tessera]}" "${CPU_US[prev]}")"
    fi
    printf '\n'
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

echo
echo "medians over $ROUNDS rounds (load average: start $load_start, end $load_end)"
echo
range() { echo "$(sort -g "$1" | head -1)–$(sort -g "$1" | tail -1)"; }
echo "| row | conns | Tessera req/s | nginx req/s | Tessera MB/s | nginx MB/s | Tessera/nginx (median of per-round ratios) | per-round ratios min–max |"
echo "|---|---|---|---|---|---|---|---|"
for row in $ROWS; do
  case ${row#*-} in 4k) conns=$CONNECTIONS_SMALL ;; 1m) conns=$CONNECTIONS_LARGE ;; esac
  printf '| %s | %s | %s | %s | %s | %s | **%s×** | %s |\n' "$row" "$conns" \
    "$(median <"$DIR/$row.tessera")" "$(median <"$DIR/$row.nginx")" \
    "$(median <"$DIR/$row.tessera.mb")" "$(median <"$DIR/$row.nginx.mb")" \
    "$(median <"$DIR/$row.r")" "$(range "$DIR/$row.r")"
done
echo
echo "Server CPU per request (µs; lower is better):"
echo
echo "| row | Tessera µs/req | nginx µs/req | Tessera/nginx (median of per-round ratios) | per-round ratios min–max |"
echo "|---|---|---|---|---|"
for row in $ROWS; do
  printf '| %s | %s | %s | **%s×** | %s |\n' "$row" \
    "$(median <"$DIR/$row.tessera.cpu")" "$(median <"$DIR/$row.nginx.cpu")" \
    "$(median <"$DIR/$row.rc")" "$(range "$DIR/$row.rc")"
done
if [ -n "$PREV_ADDR" ]; then
  echo
  echo "This build against the previous one (req/s: higher is better; CPU per request: lower is better):"
  echo
  echo "| row | conns | Tessera req/s | prev req/s | Tessera/prev req/s (median of per-round ratios) | min–max | Tessera µs/req | prev µs/req | Tessera/prev CPU per request (median) | min–max |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for row in $ROWS; do
    case ${row#*-} in 4k) conns=$CONNECTIONS_SMALL ;; 1m) conns=$CONNECTIONS_LARGE ;; esac
    printf '| %s | %s | %s | %s | **%s×** | %s | %s | %s | **%s×** | %s |\n' "$row" "$conns" \
      "$(median <"$DIR/$row.tessera")" "$(median <"$DIR/$row.prev")" \
      "$(median <"$DIR/$row.rp")" "$(range "$DIR/$row.rp")" \
      "$(median <"$DIR/$row.tessera.cpu")" "$(median <"$DIR/$row.prev.cpu")" \
      "$(median <"$DIR/$row.rpc")" "$(range "$DIR/$row.rpc")"
  done
fi
if [ "$failed" != 0 ]; then
  echo "some runs had non-2xx responses or socket errors (wrk output: kept in the log above)" >&2
  tail -n 40 "$DIR/wrk.log" >&2
fi
exit "$failed"
