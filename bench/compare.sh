#!/usr/bin/env bash
# Tessera vs nginx on loopback, one command: installs nginx (Debian) if missing, builds Tessera
# and tessera-bench in release mode, then runs `tessera-bench compare`, which starts both servers
# on free loopback ports, runs identical workloads (GET/PUT of 4 KiB and 1 MiB over
# /cas/<sha256>) against each in alternation, and prints a side-by-side table with
# Tessera/nginx ratios. Everything lands in bench/results/<UTC timestamp>/.
#
#   bash bench/compare.sh                          # defaults: 2 rounds × 10 s per run and phase
#   bash bench/compare.sh --duration 20s --rounds 3 --connections 128
#   NO_TESSERA=1 bash bench/compare.sh             # nginx only (before Tessera exists)
#
# Extra arguments go to `tessera-bench compare` (see `tessera-bench compare --help`).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! dpkg -s nginx >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends nginx
fi
# The packaged service must not hold resources we measure against; our nginx runs from its own
# prefix and port, so the system one is only stopped if it is running.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx
fi

cargo build --release -p tessera-bench
server_args=()
if [ -n "${NO_TESSERA:-}" ]; then
  server_args+=(--no-tessera)
else
  cargo build --release -p tessera
  server_args+=(--tessera-bin target/release/tessera)
fi

out="bench/results/$(date -u +%Y%m%d-%H%M%S)"
mkdir -p "$out"
set +e
target/release/tessera-bench compare "${server_args[@]}" --out "$out" "$@" 2>&1 | tee "$out/compare.log"
status=${PIPESTATUS[0]}
set -e
rm -rf "$out/tessera-data" "$out/nginx/root" "$out/nginx/client_body"
echo "results: $out (table in $out/compare.md, plots in $out/*.svg)"
exit "$status"
