#!/usr/bin/env bash
# Drives the real Turborepo (npm `turbo` 2.x, installed by tests/install-deps.sh) against a
# remote cache (`{URL}/v8/artifacts/<hash>?slug=TEAM`) and checks turbo's own output for remote
# hits, and that two teams never share an entry.
#
#   tests/clients/turbo/run.sh [--token T] [--team A] [--other-team B] [--salt S]
#                              [--expect-refused] [--keep] URL
#   (options may also follow URL)
#
# In a fresh temp git repository copied from tests/clients/turbo/workspace (npm workspaces, one
# package `app` whose build writes packages/app/dist):
#   1. team A, `turbo run build`: must execute the task (`cache miss, executing`); turbo uploads.
#   2. clear local state, team A, `--cache=remote:rw`: must print `cache hit, replaying logs`
#      and `FULL TURBO`, must not execute the task, must restore dist byte for byte.
#   3. clear local state, team B, `--cache=remote:rw`: must MISS and execute (A's entry must not
#      be visible to B); turbo uploads B's own entry.
#   4. clear local state, team B, `--cache=remote:rw`: must hit B's entry.
# Clearing local state removes packages/app/dist, .turbo, packages/app/.turbo and
# node_modules/.cache/turbo (where turbo 1.x kept its cache).
# URL is TURBO_API (turbo appends `/v8/...` as a string, so a trailing `/` gives `//v8`).
# --token       TURBO_TOKEN (default `tessera-test`); turbo skips the remote cache without one.
# --team/--other-team  TURBO_TEAM slugs, sent as `?slug=` (defaults `tessera-a`, `tessera-b`).
# --salt        content of packages/app/salt.txt, a task input (default: fresh per run, so
#               step 1 must miss even against a cache that has served this script before).
# --expect-refused  the cache refuses the token (401 or 403): step 1 only, which must execute
#               the task and print turbo's `WARNING failed to contact remote cache: … (401
#               Unauthorized)` (or 403); turbo itself still exits 0.
# --keep        keep the temp repository and print its path.
# The last stdout line is
#   summary: client=turbo version=V a1=miss a2=remote-hit b1=miss b2=remote-hit a1_s=.. a2_s=.. b1_s=.. b2_s=.. hash=H
# where H is the task hash turbo printed in step 1 (the artifact's name under /v8/artifacts/);
# with --expect-refused
#   summary: client=turbo version=V first=refused status=401|403 a1_s=..
# Exit status: 0 ok, 1 an expectation failed (message on stderr with the client's output),
# 2 usage error, 3 turbo not installed. TESSERA_SKIP_REAL_CLIENTS=1 turns 3 into a printed skip.
set -euo pipefail

driver="turbo/run.sh"
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=../node-clients.sh
. "$here/../node-clients.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }

[ $# -ge 1 ] || usage
url=""
token="tessera-test"; team_a="tessera-a"; team_b="tessera-b"; salt="$(fresh_salt)"; keep=0
expect_refused=0
while [ $# -gt 0 ]; do
  case "$1" in
    --token) [ $# -ge 2 ] || die_usage "--token needs a value"; token="$2"; shift 2 ;;
    --team) [ $# -ge 2 ] || die_usage "--team needs a slug"; team_a="$2"; shift 2 ;;
    --other-team) [ $# -ge 2 ] || die_usage "--other-team needs a slug"; team_b="$2"; shift 2 ;;
    --salt) [ $# -ge 2 ] || die_usage "--salt needs a value"; salt="$2"; shift 2 ;;
    --expect-refused) expect_refused=1; shift ;;
    --keep) keep=1; shift ;;
    -h|--help) usage ;;
    -*) die_usage "unknown option '$1' (see --help)" ;;
    *) [ -z "$url" ] || die_usage "two URLs, '$url' and '$1' (see --help)"; url="$1"; shift ;;
  esac
done
[ -n "$url" ] || die_usage "no cache URL (see --help)"
[ -n "$token" ] || die_usage "--token must not be empty: turbo silently skips the remote cache without one"
if [ -z "$team_a" ] || [ -z "$team_b" ]; then die_usage "team slugs must not be empty"; fi
[ "$team_a" != "$team_b" ] || die_usage "--team and --other-team must differ"
require_loopback_url "$url"
require_client turbo
command -v git >/dev/null 2>&1 || { echo "$driver: git is missing: run bash tests/install-deps.sh" >&2; exit 3; }

turbo="$node_clients_dir/node_modules/.bin/turbo"
version="$(node -p "require('$node_clients_dir/node_modules/turbo/package.json').version")"
state="$(mktemp -d "${TMPDIR:-/tmp}/tessera-turbo.XXXXXX")"
ws="$state/workspace"
run_log="$state/executions"
finish() {
  local status=$?
  if [ "$keep" = 1 ]; then echo "kept: $state" >&2; else rm -rf "$state"; fi
  exit "$status"
}
trap finish EXIT

cp -a "$here/workspace" "$ws"
cp "$here/../make-output.js" "$ws/packages/app/make-output.js"
printf '%s\n' "$salt" >"$ws/packages/app/salt.txt"
link_package "$ws" turbo
(
  cd "$ws"
  git init -q
  git add -A
  git -c user.name=tessera-test -c user.email=tessera-test@localhost -c commit.gpgsign=false \
    commit -q -m fixture
)

# Only the cache under test: no telemetry, no update check, no proxy for loopback.
export TURBO_API="$url" TURBO_TOKEN="$token"
unset TURBO_TEAM TURBO_TEAMID TURBO_REMOTE_ONLY TURBO_REMOTE_CACHE_READ_ONLY TURBO_CACHE TURBO_FORCE
unset TURBO_REMOTE_CACHE_SIGNATURE_KEY TURBO_PREFLIGHT http_proxy https_proxy HTTP_PROXY HTTPS_PROXY
export TURBO_TELEMETRY_DISABLED=1 DO_NOT_TRACK=1 TURBO_NO_UPDATE_NOTIFIER=1 NO_UPDATE_NOTIFIER=1
export NO_COLOR=1 NO_PROXY=127.0.0.1,localhost,::1 no_proxy=127.0.0.1,localhost,::1
export FIXTURE_RUN_LOG="$run_log"

clear_local() {
  rm -rf "$ws/packages/app/dist" "$ws/.turbo" "$ws/packages/app/.turbo" "$ws/node_modules/.cache/turbo"
}

# One `turbo run build` as TEAM, output to $state/NAME.log with colours stripped.
turbo_build() {
  local name="$1" team="$2"; shift 2
  local log="$state/$name.log" status=0
  TURBO_TEAM="$team" run_client "$ws" "$log.raw" "$turbo" run build --ui=stream \
    --no-update-notifier "$@" || status=$?
  sed 's/\x1b\[[0-9;]*[A-Za-z]//g' "$log.raw" >"$log"
  if [ "$status" != 0 ]; then
    show_log "$log"
    [ "$status" = 124 ] && fail "'turbo run build' ($name) did not finish within ${client_timeout_secs}s"
    fail "'turbo run build' ($name, team $team) exited $status"
  fi
  if ! grep -q 'Remote caching enabled' "$log"; then
    show_log "$log"
    fail "$name: turbo did not enable remote caching (token and team set?)"
  fi
}

# turbo prints these when a cache request fails and then carries on as on a miss.
cache_warnings() { grep -E 'WARNING +(failed to contact remote cache|.*[Rr]emote cach)' "$1" || true; }

expect_miss() {
  local name="$1" team="$2" want_executions="$3" log="$state/$1.log"
  if ! grep -qE '(^|: )cache miss, executing [0-9a-f]{16}' "$log" ||
     [ "$(executions "$run_log")" != "$want_executions" ]; then
    show_log "$log"
    fail "$name: team $team should have missed and executed the build (executions=$(executions "$run_log"), want $want_executions)"
  fi
  local warnings; warnings="$(cache_warnings "$log")"
  if [ -n "$warnings" ]; then
    show_log "$log"
    fail "$name: turbo reported a remote cache error: $warnings"
  fi
}

expect_hit() {
  local name="$1" team="$2" want_executions="$3" log="$state/$1.log"
  if ! grep -qE '(^|: )cache hit, replaying logs [0-9a-f]{16}' "$log" ||
     ! grep -q 'FULL TURBO' "$log"; then
    show_log "$log"
    fail "$name: team $team did not get a remote hit (want 'cache hit, replaying logs' and 'FULL TURBO')"
  fi
  if [ "$(executions "$run_log")" != "$want_executions" ]; then
    fail "$name: turbo reported a hit but the build executed (executions=$(executions "$run_log"))"
  fi
  if [ ! -d "$ws/packages/app/dist" ] || [ "$(tree_digest "$ws/packages/app/dist")" != "$digest_built" ]; then
    fail "$name: packages/app/dist restored from the remote cache differs from the built one"
  fi
}

tree_digest() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

echo "== turbo $version, cache $url, teams $team_a and $team_b"
t="$(now_s)"; turbo_build a1 "$team_a"; a1_s="$(elapsed_s "$t")"
if [ "$expect_refused" = 1 ]; then
  log="$state/a1.log"
  refused="$(cache_warnings "$log" | grep -oE 'HTTP status client error \((401|403)' | head -n 1 | grep -oE '[0-9]{3}' || true)"
  if [ "$(executions "$run_log")" != 1 ] || [ -z "$refused" ]; then
    show_log "$log"
    fail "a1: expected the build executed and turbo's remote-cache warning with status 401 or 403 (executions=$(executions "$run_log"))"
  fi
  echo "team $team_a, first build: executed, the cache refused the token ($refused), ${a1_s}s"
  echo "summary: client=turbo version=$version first=refused status=$refused a1_s=$a1_s"
  exit 0
fi
expect_miss a1 "$team_a" 1
digest_built="$(tree_digest "$ws/packages/app/dist")"
task_hash="$(grep -oE 'cache miss, executing [0-9a-f]{16}' "$state/a1.log" | head -n 1 | awk '{print $4}')"
echo "team $team_a, first build: miss, executed, ${a1_s}s"

clear_local
t="$(now_s)"; turbo_build a2 "$team_a" --cache=remote:rw; a2_s="$(elapsed_s "$t")"
expect_hit a2 "$team_a" 1
echo "team $team_a, after clearing local state: remote hit, outputs identical, ${a2_s}s"

clear_local
t="$(now_s)"; turbo_build b1 "$team_b" --cache=remote:rw; b1_s="$(elapsed_s "$t")"
expect_miss b1 "$team_b" 2
echo "team $team_b, same task: miss (not shared with $team_a), executed, ${b1_s}s"

clear_local
t="$(now_s)"; turbo_build b2 "$team_b" --cache=remote:rw; b2_s="$(elapsed_s "$t")"
expect_hit b2 "$team_b" 2
echo "team $team_b, after clearing local state: remote hit, outputs identical, ${b2_s}s"

echo "summary: client=turbo version=$version a1=miss a2=remote-hit b1=miss b2=remote-hit a1_s=$a1_s a2_s=$a2_s b1_s=$b1_s b2_s=$b2_s hash=$task_hash"
