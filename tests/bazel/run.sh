#!/usr/bin/env bash
# Drives the real Bazel 4.2.3 (Debian `bazel-bootstrap`) against a remote cache with the genrule
# workspace in tests/bazel/workspace, and reports Bazel's own count of remote cache hits.
#
#   tests/bazel/run.sh roundtrip --cache http://127.0.0.1:PORT [-- EXTRA_BAZEL_FLAGS...]
#       Fresh workspace copy and output root, build, `bazel clean`, rebuild. Succeeds only if the
#       rebuild took every action from the remote cache and no remote-cache warning was printed.
#   tests/bazel/run.sh build --state DIR --cache URL [--expect-hits all|none|N] [-- FLAGS...]
#       One build in DIR (created on first use, kept afterwards), for scenarios that restart or
#       kill the cache server between builds. Add --clean-first to run `bazel clean` before it.
#   tests/bazel/run.sh clean --state DIR        `bazel clean` in DIR.
#   tests/bazel/run.sh shutdown --state DIR     stop the Bazel server of DIR.
#
# Every command except `shutdown` stops the Bazel server when it ends unless --keep-server is
# given, so no JVM is left running. The last line on stdout of `build` and `roundtrip` is
#   summary: processes=P internal=I actions=A remote_hits=H local=L cache_warnings=W
# where actions = processes - internal (the cacheable actions) and cache_warnings counts Bazel's
# "WARNING: Reading from Remote Cache:" / "Writing to Remote Cache:" lines.
# Exit status: 0 ok, 1 an expectation failed, 2 usage error, 3 Bazel itself failed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
workspace_src="$here/workspace"
stderr_tail_lines=40

usage() {
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() { echo "run.sh: $*" >&2; exit 2; }

command -v bazel >/dev/null 2>&1 ||
  { echo "run.sh: bazel not found; run: bash tests/install-deps.sh" >&2; exit 3; }

[ $# -ge 1 ] || usage
case "$1" in -h|--help) usage ;; esac
cmd="$1"; shift
cache_url=""; state=""; expect=""; clean_first=0; keep_server=0; extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) [ $# -ge 2 ] || die "--cache needs a URL"; cache_url="$2"; shift 2 ;;
    --state) [ $# -ge 2 ] || die "--state needs a directory"; state="$2"; shift 2 ;;
    --expect-hits) [ $# -ge 2 ] || die "--expect-hits needs all|none|N"; expect="$2"; shift 2 ;;
    --clean-first) clean_first=1; shift ;;
    --keep-server) keep_server=1; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) usage ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$expect" in ''|all|none|[0-9]|[0-9][0-9]|[0-9][0-9][0-9]) ;; *) die "--expect-hits: '$expect' is not all|none|N" ;; esac

temp_state=0
if [ -z "$state" ]; then
  [ "$cmd" = roundtrip ] || die "$cmd needs --state DIR"
  state="$(mktemp -d "${TMPDIR:-/tmp}/tessera-bazel.XXXXXX")"
  temp_state=1
fi
mkdir -p "$state/logs"
state="$(cd "$state" && pwd)"
ws="$state/workspace"
if [ ! -f "$ws/WORKSPACE" ]; then
  mkdir -p "$ws"
  cp -a "$workspace_src/." "$ws/"
fi

# Startup flags: a private output root (tests never share a Bazel server or output tree) and no
# ~/.bazelrc (the caller's settings must not change the actions). /etc/bazel/bazelrc stays: it
# points Bazel at Debian's install base and local JDK.
bazel_in_ws() { (cd "$ws" && bazel --nohome_rc --output_user_root="$state/root" "$@"); }

shutdown_server() { bazel_in_ws shutdown >/dev/null 2>&1 || true; }

finish() {
  local status=$?
  if [ "$keep_server" = 0 ] && [ "$cmd" != shutdown ]; then shutdown_server; fi
  if [ "$temp_state" = 1 ]; then
    # Bazel makes its outputs read-only; make them writable so the temp dir can go.
    chmod -R u+w "$state" 2>/dev/null || true
    rm -rf "$state"
  fi
  exit "$status"
}
trap finish EXIT

# Runs one Bazel command, output to logs/NAME.log; on failure prints the log's tail.
run_logged() {
  local name="$1"; shift
  local log="$state/logs/$name.log"
  if ! bazel_in_ws "$@" >"$log" 2>&1; then
    echo "run.sh: 'bazel $*' failed; last $stderr_tail_lines lines of $log:" >&2
    tail -n "$stderr_tail_lines" "$log" >&2
    exit 3
  fi
}

# Parses "INFO: 12 processes: 11 remote cache hit, 1 internal." (also "1 process: ...",
# "0 processes.") from a build log into the summary line.
summarize() {
  local log="$1" line processes internal=0 hits=0 local_=0 warnings
  line="$(grep -E '^INFO: [0-9]+ process(es)?[.:]' "$log" | tail -n 1 || true)"
  if [ -z "$line" ]; then
    echo "run.sh: no 'INFO: N processes' line in $log; last $stderr_tail_lines lines:" >&2
    tail -n "$stderr_tail_lines" "$log" >&2
    exit 3
  fi
  processes="$(sed -E 's/^INFO: ([0-9]+) process.*/\1/' <<<"$line")"
  local part count kind
  while IFS= read -r part; do
    [ -n "$part" ] || continue
    count="${part%% *}"; kind="${part#* }"
    case "$kind" in
      internal) internal=$((internal + count)) ;;
      "remote cache hit") hits=$((hits + count)) ;;
      local|linux-sandbox|processwrapper-sandbox|worker) local_=$((local_ + count)) ;;
    esac
  done < <(sed -E 's/^INFO: [0-9]+ process(es)?:? ?//; s/\.$//' <<<"$line" | tr ',' '\n' | sed 's/^ *//')
  warnings="$(grep -cE '^WARNING: (Reading from|Writing to) Remote Cache' "$log" || true)"
  echo "bazel: $line"
  echo "summary: processes=$processes internal=$internal actions=$((processes - internal)) remote_hits=$hits local=$local_ cache_warnings=$warnings"
}

# Reads a field (e.g. remote_hits) from a summary line.
field() { sed -E "s/.* $2=([0-9]+).*/\1/" <<<" $1"; }

build_once() {
  local name="$1"
  [ -n "$cache_url" ] || die "$cmd needs --cache URL"
  run_logged "$name" build //:all --remote_cache="$cache_url" "${extra[@]+"${extra[@]}"}"
  summarize "$state/logs/$name.log"
}

check_expectation() {
  local summary="$1" want="$2" log="$3" actions hits warnings
  actions="$(field "$summary" actions)"; hits="$(field "$summary" remote_hits)"
  warnings="$(field "$summary" cache_warnings)"
  case "$want" in
    all) want="$actions" ;;
    none) want=0 ;;
  esac
  if [ "$hits" != "$want" ] || [ "$warnings" != 0 ]; then
    echo "run.sh: expected $want remote cache hits and 0 remote-cache warnings, got $hits hits of $actions actions and $warnings warnings" >&2
    grep -A3 -E '^WARNING: (Reading from|Writing to) Remote Cache' "$log" >&2 || true
    return 1
  fi
}

case "$cmd" in
  roundtrip)
    echo "== first build"
    build_once build-1
    run_logged clean clean
    echo "== rebuild after bazel clean"
    out="$(build_once build-2)"
    echo "$out"
    check_expectation "$(tail -n 1 <<<"$out")" all "$state/logs/build-2.log" || exit 1
    ;;
  build)
    [ "$clean_first" = 0 ] || run_logged clean clean
    n=$(( $(find "$state/logs" -name 'build-*.log' | wc -l) + 1 ))
    out="$(build_once "build-$n")"
    echo "$out"
    [ -z "$expect" ] || check_expectation "$(tail -n 1 <<<"$out")" "$expect" "$state/logs/build-$n.log" || exit 1
    ;;
  clean) run_logged clean clean ;;
  shutdown) shutdown_server ;;
  *) die "unknown command '$cmd' (roundtrip|build|clean|shutdown)" ;;
esac
