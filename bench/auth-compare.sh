#!/usr/bin/env bash
# GET 4 KiB with a valid bearer token against the same without one, on one Tessera process
# (same build, same run), with wrk; then the per-call cost of token verification (token-bench).
#
#   bash bench/auth-compare.sh              # ROUNDS=5 DURATION=5 CONNECTIONS=32
#   TESSERA_BIN=target/release/tessera bash bench/auth-compare.sh
#   RATE=100000000/s bash bench/auth-compare.sh   # both sides also pass auth.rate's bucket
#
# Tessera runs with keys configured and `auth.anonymous = "read"`, so a request without a token is
# an anonymous read and a request with one is a verified token read (cached after its first use):
# the difference is the authorization layer's cost per request. Rounds alternate (order flipped
# every round); medians and the with/without ratio are printed. wrk runs on CLIENT_CPUS (default
# CPU 0), Tessera on SERVER_CPUS (default the others), as in wrk-compare.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNECTIONS=${CONNECTIONS:-32}
CPUS=$(nproc --all)
CLIENT_CPUS=${CLIENT_CPUS:-0}
SERVER_CPUS=${SERVER_CPUS:-1-$((CPUS - 1))}
for tool in wrk curl; do command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install $tool)"; exit 1; }; done
if [ -z "${TESSERA_BIN:-}" ]; then
  cargo build --release -q -p tessera -p tessera-bench
  TESSERA_BIN=target/release/tessera
fi
BENCH_BIN=${BENCH_BIN:-$(dirname "$TESSERA_BIN")/token-bench}

work=$(mktemp -d /tmp/tessera-auth-bench.XXXXXX)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

"$TESSERA_BIN" keygen --dir "$work/keys" --kid bench >/dev/null
cat >"$work/tessera.toml" <<TOML
[auth]
public_keys = "$work/keys"
anonymous = "read"
TOML
[ -z "${RATE:-}" ] || printf 'rate = "%s"\nburst = 1000000000\n' "$RATE" >>"$work/tessera.toml"
taskset -c "$SERVER_CPUS" "$TESSERA_BIN" serve --config "$work/tessera.toml" --listen 127.0.0.1:0 \
  --data "$work/data" --max-size 1GiB >"$work/stdout" 2>"$work/log" &
pid=$!
for _ in $(seq 100); do grep -q "tessera listening on" "$work/stdout" && break; sleep 0.1; done
addr=$(sed -n 's/^tessera listening on \([^ ]*\).*/\1/p' "$work/stdout")
[ -n "$addr" ] || { cat "$work/log"; exit 1; }

token=$("$TESSERA_BIN" token --key "$work/keys/bench.key" --subject bench --read '*' --write '*' --ttl 1h)
head -c 4096 /dev/urandom >"$work/blob"
hash=$(sha256sum "$work/blob" | cut -d' ' -f1)
curl -sf -X PUT -H "Authorization: Bearer $token" --data-binary @"$work/blob" "http://$addr/cas/$hash"
curl -sf -o /dev/null "http://$addr/cas/$hash"
curl -sf -o /dev/null -H "Authorization: Bearer $token" "http://$addr/cas/$hash"

run() { # $1: label, rest: extra wrk args
  local label=$1; shift
  taskset -c "$CLIENT_CPUS" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" "$@" "http://$addr/cas/$hash" \
    | awk -v l="$label" '/Requests\/sec/ { print l, $2 } /Non-2xx/ { print "non-2xx", $NF > "/dev/stderr"; exit 1 }'
}
: >"$work/results"
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then
    run anonymous >>"$work/results"; run token -H "Authorization: Bearer $token" >>"$work/results"
  else
    run token -H "Authorization: Bearer $token" >>"$work/results"; run anonymous >>"$work/results"
  fi
done
median() { grep "^$1 " "$work/results" | cut -d' ' -f2 | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
without=$(median anonymous); with=$(median token)
echo "GET 4 KiB, $ROUNDS rounds of ${DURATION}s, $CONNECTIONS connections, auth.rate ${RATE:-unset}, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "  without a token (anonymous read): $without req/s (median)"
echo "  with a valid token (verified, cached): $with req/s (median)"
awk -v a="$with" -v b="$without" 'BEGIN { printf "  ratio with/without: %.3f\n", a / b }'
[ -x "$BENCH_BIN" ] && "$BENCH_BIN"
