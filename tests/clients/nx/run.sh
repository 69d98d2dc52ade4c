#!/usr/bin/env bash
# Drives the real Nx (npm `nx`, installed by tests/install-deps.sh) against a self-hosted remote
# cache (`{URL}/v1/cache/<hash>`) and checks Nx's own output for the remote hit.
#
#   tests/clients/nx/run.sh [--token T] [--salt S] [--expect-refused | --expect-unauthorized]
#                           [--keep] URL
#   (options may also follow URL)
#
# In a fresh temp copy of tests/clients/nx/workspace:
#   1. `nx run proj:build` must execute the task (a miss) and succeed; Nx uploads the entry.
#   2. `nx reset` and `rm -rf proj/dist .nx`: no local cache, no outputs are left.
#   3. `nx run proj:build` must print `[remote cache]` on its task line and `Cache: 1/1 hit`,
#      must not execute the task, and must restore proj/dist byte for byte.
# URL is NX_SELF_HOSTED_REMOTE_CACHE_SERVER (Nx appends `/v1/cache/<hash>` to it as a string).
# --token  NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN (default `tessera-test`; '' sends none).
# --salt   content of proj/salt.txt, a task input (default: fresh per run, so step 1 must miss
#          and upload even against a cache that has served this script before).
# --expect-refused  the cache refuses the upload (e.g. an entry over its size bound): step 1
#          must still succeed (Nx fails the task on a refusal it does not tolerate), and step 3
#          must miss and execute the task again.
# --expect-unauthorized  the cache refuses the token (401, `Content-Type: text/plain`): Nx
#          stops the run at its first cache read, so step 1 must fail with Nx's
#          `Unauthorized: …` message without executing the task; nothing else runs.
# --keep   keep the temp workspace and print its path.
# The last stdout line is
#   summary: client=nx version=V first=miss second=remote-hit first_s=A reset_s=B second_s=C
# (second=miss with --expect-refused), or with --expect-unauthorized
#   summary: client=nx version=V first=unauthorized first_s=A
# Exit status: 0 ok, 1 an expectation failed (message on stderr with the client's output),
# 2 usage error, 3 Nx not installed. TESSERA_SKIP_REAL_CLIENTS=1 turns 3 into a printed skip.
set -euo pipefail

driver="nx/run.sh"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../node-clients.sh
. "$here/../node-clients.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
url=""
token="tessera-test"; salt="$(fresh_salt)"; keep=0; expect_refused=0; expect_unauthorized=0
while [ $# -gt 0 ]; do
  case "$1" in
    --token) [ $# -ge 2 ] || die_usage "--token needs a value"; token="$2"; shift 2 ;;
    --salt) [ $# -ge 2 ] || die_usage "--salt needs a value"; salt="$2"; shift 2 ;;
    --expect-refused) expect_refused=1; shift ;;
    --expect-unauthorized) expect_unauthorized=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    -*) die_usage "unknown option '$1' (see --help)" ;;
    *) [ -z "$url" ] || die_usage "two URLs, '$url' and '$1' (see --help)"; url="$1"; shift ;;
  esac
done
[ -n "$url" ] || die_usage "no cache URL (see --help)"
require_loopback_url "$url"
require_client nx

nx="$node_clients_dir/node_modules/.bin/nx"
version="$(node -p "require('$node_clients_dir/node_modules/nx/package.json').version")"
state="$(mktemp -d "${TMPDIR:-/tmp}/tessera-nx.XXXXXX")"
ws="$state/workspace"
run_log="$state/executions"
finish() {
  local status=$?
  if [ "$keep" = 1 ]; then echo "kept: $state" >&2; else rm -rf "$state"; fi
  exit "$status"
}
trap finish EXIT

cp -a "$here/workspace" "$ws"
cp "$here/../make-output.js" "$ws/proj/make-output.js"
printf '%s\n' "$salt" >"$ws/proj/salt.txt"
link_package "$ws" nx

# Only the cache under test: no Nx Cloud, no daemon, no terminal UI, no proxy for loopback.
export NX_SELF_HOSTED_REMOTE_CACHE_SERVER="$url"
if [ -n "$token" ]; then
  export NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN="$token"
else
  unset NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN
fi
unset NX_SKIP_NX_CACHE NX_CLOUD_ACCESS_TOKEN NX_CLOUD_ID NX_BASE NX_HEAD http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
export NX_NO_CLOUD=true NX_DAEMON=false NX_TUI=false
export NO_PROXY=127.0.0.1,localhost,::1 no_proxy=127.0.0.1,localhost,::1
export FIXTURE_RUN_LOG="$run_log"

# One `nx` command in the workspace, output to $state/NAME.log with colours stripped.
nx_step() {
  local name="$1"; shift
  local log="$state/$name.log" status=0
  run_client "$ws" "$log.raw" "$nx" "$@" || status=$?
  sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$log.raw" >"$log"
  if [ "$status" != 0 ]; then
    show_log "$log"
    [ "$status" = 124 ] && fail "'nx $*' ($name) did not finish within ${client_timeout_secs}s"
    fail "'nx $*' ($name) exited $status (Nx fails the run when the cache is unreachable or answers a status it calls 'Misconfigured')"
  fi
}

tree_digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

echo "== nx $version, cache $url"
t="$(now_s)"
if [ "$expect_unauthorized" = 1 ]; then
  log="$state/first.log" status=0
  run_client "$ws" "$log.raw" "$nx" run proj:build || status=$?
  sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$log.raw" >"$log"
  first_s="$(elapsed_s "$t")"
  [ "$status" != 124 ] || fail "'nx run proj:build' did not finish within ${client_timeout_secs}s"
  # Nx 24: " NX   Unauthorized: <the server's text/plain body>", exit 1.
  if [ "$status" = 0 ] || ! grep -qE 'NX +Unauthorized: ' "$log"; then
    show_log "$log"
    fail "step 1: expected Nx to stop with 'Unauthorized: …' (exit $status)"
  fi
  if [ "$(executions "$run_log")" != 0 ]; then
    fail "step 1: Nx reported the cache unauthorized but the task executed"
  fi
  echo "first build: refused, $(grep -oE 'Unauthorized: .*' "$log" | head -n 1), ${first_s}s"
  echo "summary: client=nx version=$version first=unauthorized first_s=$first_s"
  exit 0
fi
nx_step first run proj:build
first_s="$(elapsed_s "$t")"
if [ "$(executions "$run_log")" != 1 ]; then
  show_log "$state/first.log"
  fail "step 1: the build should have executed once (a cache miss), executions=$(executions "$run_log")"
fi
if grep -q '\[remote cache\]' "$state/first.log"; then
  show_log "$state/first.log"
  fail "step 1: Nx took the task from the remote cache although the salt '$salt' should be new"
fi
digest_before="$(tree_digest "$ws/proj/dist")"
echo "first build: executed, ${first_s}s"

t="$(now_s)"
nx_step reset reset
rm -rf "$ws/proj/dist" "$ws/.nx"
reset_s="$(elapsed_s "$t")"

t="$(now_s)"
nx_step second run proj:build
second_s="$(elapsed_s "$t")"
log="$state/second.log"
if [ "$expect_refused" = 1 ]; then
  if grep -q '\[remote cache\]' "$log" || [ "$(executions "$run_log")" != 2 ]; then
    show_log "$log"
    fail "step 3: the cache should have refused the upload, so the task must execute again (executions=$(executions "$run_log"), want 2)"
  fi
  echo "second build: miss (the upload was refused), executed again, ${second_s}s"
  echo "summary: client=nx version=$version first=miss second=miss first_s=$first_s reset_s=$reset_s second_s=$second_s"
  exit 0
fi
if ! grep -qE '^> nx run proj:build +\[remote cache\]' "$log" ||
   ! grep -qE 'Cache: +1/1 hit' "$log"; then
  show_log "$log"
  fail "step 3: Nx did not take the task from the remote cache (want '> nx run proj:build  [remote cache]' and 'Cache: 1/1 hit')"
fi
if [ "$(executions "$run_log")" != 1 ]; then
  fail "step 3: Nx reported a remote hit but the build executed again"
fi
if [ ! -d "$ws/proj/dist" ] || [ "$(tree_digest "$ws/proj/dist")" != "$digest_before" ]; then
  fail "step 3: proj/dist restored from the remote cache differs from the built one"
fi
echo "second build: remote cache hit, outputs identical, ${second_s}s"
echo "summary: client=nx version=$version first=miss second=remote-hit first_s=$first_s reset_s=$reset_s second_s=$second_s"
