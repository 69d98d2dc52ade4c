# Shared by tests/clients/nx/run.sh and tests/clients/turbo/run.sh (sourced, not run).
# shellcheck shell=bash
#
# The clients live outside the repository in $TESSERA_NODE_CLIENTS (default below), installed by
# tests/install-deps.sh. Each driver builds its fixture in a fresh temp directory, so runs never
# share a workspace or a local cache, and talks to nothing but the cache URL it is given.

# The sourcing driver sets $driver, its name in messages.
: "${driver:?set driver before sourcing node-clients.sh}"
node_clients_dir="${TESSERA_NODE_CLIENTS:-/opt/tessera-tests/node-clients}"
# Bound on one client command: the slowest expected path is Nx retrying a PUT it calls
# misconfigured (6 tries, up to ~20 s); a cache that hangs must fail the driver, not hang the run.
client_timeout_secs="${TESSERA_CLIENT_TIMEOUT_SECS:-180}"
log_tail_lines=40

die_usage() { echo "$driver: $*" >&2; exit 2; }
fail() { echo "$driver: FAIL: $*" >&2; exit 1; }

# Exits 3 when the client's binary is missing, or prints an explicit skip and exits 0 when
# TESSERA_SKIP_REAL_CLIENTS=1 (the same rule as the Rust real-client tests).
require_client() {
  local name="$1" bin="$node_clients_dir/node_modules/.bin/$1"
  if [ -x "$bin" ] && command -v node >/dev/null 2>&1; then return 0; fi
  if [ "${TESSERA_SKIP_REAL_CLIENTS:-}" = 1 ]; then
    echo "SKIPPED: $name is not installed in $node_clients_dir and TESSERA_SKIP_REAL_CLIENTS=1"
    exit 0
  fi
  echo "$driver: $name is not installed in $node_clients_dir (or node is missing): run" \
    "bash tests/install-deps.sh (or set TESSERA_SKIP_REAL_CLIENTS=1 to skip)" >&2
  exit 3
}

# The cache must be on this machine: tests only ever talk to loopback.
require_loopback_url() {
  case "$1" in
    http://127.*|http://localhost:*|http://localhost/*|http://localhost|http://\[::1\]*) ;;
    *) die_usage "cache URL '$1' is not http:// on loopback (127.0.0.0/8, localhost, [::1])" ;;
  esac
}

# Links one installed package into the workspace's own node_modules (a real directory, so the
# clients' local caches and metadata under node_modules stay in the temp workspace).
link_package() {
  local ws="$1" pkg="$2"
  mkdir -p "$ws/node_modules/$(dirname "$pkg")"
  ln -s "$node_clients_dir/node_modules/$pkg" "$ws/node_modules/$pkg"
}

# Seconds since the epoch with milliseconds, for step timings.
now_s() { date +%s.%3N; }
elapsed_s() { awk -v a="$1" -v b="$(now_s)" 'BEGIN { printf "%.2f", b - a }'; }

# Runs a client command in DIR, output to LOG; returns the client's exit status (124 on timeout).
run_client() {
  local dir="$1" log="$2"; shift 2
  local status=0
  (cd "$dir" && timeout "$client_timeout_secs" "$@") >"$log" 2>&1 || status=$?
  return "$status"
}

show_log() {
  echo "---- last $log_tail_lines lines of $1" >&2
  tail -n "$log_tail_lines" "$1" >&2
  echo "----" >&2
}

# Number of real executions of the fixture's build recorded so far.
executions() { if [ -f "$1" ]; then wc -l <"$1" | tr -d ' '; else echo 0; fi; }

# A fresh value for the fixture's salt file, so each driver run hashes to new cache keys and its
# first build has to upload (a cache left over from an earlier run cannot make it pass).
fresh_salt() { echo "$$-$(date +%s%N)-$RANDOM"; }
