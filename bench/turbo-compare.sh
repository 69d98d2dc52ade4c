#!/usr/bin/env bash
# Tessera vs npm `turborepo-remote-cache` (the Node.js Turborepo remote cache most self-hosters
# run) over the Turborepo API, with tessera-bench, in one run: GET and PUT of 4 KiB and 1 MiB
# artifacts, `/v8/artifacts/<hash>?slug=TEAM` with turbo's headers (Bearer token,
# `x-artifact-duration` on uploads), the two servers alternating round by round (order flipped
# every round), then a side-by-side table with Tessera/turbo-rc ratios.
#
#   bash bench/turbo-compare.sh                             # ROUNDS=3 DURATION=4s WARMUP=3s
#   ROUNDS=5 DURATION=5s WORKLOADS=get-4k,put-4k bash bench/turbo-compare.sh
#
# What it does:
# * uses the package tests/install-deps.sh installs (/opt/tessera-tests/node-clients), else
#   installs turborepo-remote-cache@$TURBO_CACHE_VERSION with npm into $TURBO_CACHE_DIR (once);
# * builds tessera and tessera-bench in release mode (or uses TESSERA_BIN);
# * runs `tessera-bench compare --peer turbo-remote-cache`: both servers on loopback, local
#   storage under the result directory, the peer at log level warn (its default logs a line per
#   request); 4 KiB and 1 MiB keys as in `compare` (GETs of preloaded artifacts, PUTs cycling
#   over a bounded key set, which both servers store every time).
#
# CPU placement (as bench/wrk-compare.sh): on 2 or more CPUs the servers run under
# `taskset -c $SERVER_CPUS` (default: every CPU but 0) and tessera-bench's one load thread is
# pinned to CPU 0. The peer is one Node.js process (one JavaScript thread plus libuv's file
# threads), Tessera one executor per server CPU.
#
# Results (table, JSON, .hgrm, SVGs) land in bench/results/<UTC timestamp>-turbo/. On a shared
# machine compare only the ratios of one run.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-4s}
WARMUP=${WARMUP:-3s}
CONNECTIONS=${CONNECTIONS:-32}
WORKLOADS=${WORKLOADS:-get-4k,get-1m,put-4k,put-1m}
TESSERA_MAX_SIZE=${TESSERA_MAX_SIZE:-1GiB}
TURBO_CACHE_VERSION=${TURBO_CACHE_VERSION:-2.12.0}
TURBO_CACHE_DIR=${TURBO_CACHE_DIR:-/tmp/tessera-bench-turbo-remote-cache}
CPUS=$(nproc --all)

CLI_JS=/opt/tessera-tests/node-clients/node_modules/turborepo-remote-cache/dist/cli.js
if [ ! -f "$CLI_JS" ]; then
  CLI_JS=$TURBO_CACHE_DIR/node_modules/turborepo-remote-cache/dist/cli.js
  if [ ! -f "$CLI_JS" ]; then
    command -v npm >/dev/null || { echo "npm is needed to install turborepo-remote-cache" >&2; exit 1; }
    mkdir -p "$TURBO_CACHE_DIR"
    (cd "$TURBO_CACHE_DIR" && npm i --no-audit --no-fund "turborepo-remote-cache@$TURBO_CACHE_VERSION")
  fi
fi
command -v node >/dev/null || { echo "node is needed to run turborepo-remote-cache" >&2; exit 1; }

cargo build --release -p tessera-bench
if [ -z "${TESSERA_BIN:-}" ]; then
  cargo build --release -p tessera
  TESSERA_BIN=target/release/tessera
fi

placement=()
if [ "$CPUS" -ge 2 ]; then
  placement=(--server-cpus "${SERVER_CPUS:-1-$((CPUS - 1))}" --threads 1)
else
  placement=(--threads 1 --no-pin)
fi

out="bench/results/$(date -u +%Y%m%d-%H%M%S)-turbo"
mkdir -p "$out"
echo "turborepo-remote-cache $(node -p "require('$(dirname "$(dirname "$CLI_JS")")/package.json').version") on node $(node --version); load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/compare.log"
set +e
target/release/tessera-bench compare --peer turbo-remote-cache --turbo-cache-js "$CLI_JS" \
  --tessera-bin "$TESSERA_BIN" --max-size "$TESSERA_MAX_SIZE" "${placement[@]}" \
  --connections "$CONNECTIONS" --duration "$DURATION" --rounds "$ROUNDS" --warmup "$WARMUP" \
  --workloads "$WORKLOADS" --out "$out" "$@" 2>&1 | tee -a "$out/compare.log"
status=${PIPESTATUS[0]}
set -e
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/compare.log"
rm -rf "$out/tessera-data" "$out/turbo-remote-cache/store"
echo "results: $out (table in $out/compare.md, plots in $out/*.svg)"
exit "$status"
