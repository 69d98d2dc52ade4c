#!/usr/bin/env bash
# Drives the real Gradle 4.4.1 (Debian `gradle`) against an HTTP build cache with the Java
# project in tests/clients/gradle/project, and checks Gradle's own output for the remote hit.
#
#   tests/clients/gradle/run.sh [--credentials | --token T] [--expect-refused] [--nonce N]
#                               [--first-build miss|hit] URL
#       URL is the cache root and must end with '/' (Gradle 4.4 refuses it otherwise), e.g.
#       http://127.0.0.1:PORT/cache/ or http://u:p@127.0.0.1:PORT/cache/.
#       In a temp copy of the project (and a private Gradle user home): `compileJava`, `clean`,
#       `compileJava` again. Succeeds only if the first build ran javac (a remote miss, by
#       default) and uploaded without a cache warning, and the second printed
#       `:compileJava FROM-CACHE` and `1 actionable task: 1 from cache` with the class restored.
#   --credentials      add `credentials { username = 'u'; password = 'p' }` (HTTP Basic)
#   --token T          add `credentials { username = 'ci'; password = T }`: a Tessera token as
#                      the Basic password (Gradle 4.4 sends Basic preemptively, no 401 first)
#   --expect-refused   the cache refuses this client (a bad token): one `compileJava` only,
#                      which must run javac and print Gradle's remote-cache warning naming the
#                      refusal's status (401 or 403); nothing is taken from the cache.
#   --nonce N          the string compiled into the class; a random one (a fresh cache key)
#                      unless given. Repeat a nonce to reuse the keys of an earlier run.
#   --first-build hit  expect the first build to come from the cache too (with a repeated
#                      nonce, e.g. after the server restarted); the default is miss.
#
# The local build cache is off, so FROM-CACHE can only mean the remote one. `--offline` is never
# passed (it disables the remote cache); the project declares no repositories, so nothing is
# downloaded. The last line on stdout is
#   summary: first=executed|from-cache second=from-cache cache_warnings=W elapsed_ms=MS
# or, with --expect-refused,
#   summary: first=executed refused=STATUS cache_warnings=W elapsed_ms=MS
# Exit status: 0 ok, 1 an expectation failed, 2 usage error, 3 Gradle itself failed or is missing.
# With TESSERA_SKIP_REAL_CLIENTS=1 it prints a skip message and exits 0 without running Gradle.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
project_src="$here/project"
log_tail_lines=40

usage() {
  sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() { echo "gradle/run.sh: $*" >&2; exit 2; }

if [ "${TESSERA_SKIP_REAL_CLIENTS:-}" = 1 ]; then
  echo "gradle/run.sh: SKIPPED: TESSERA_SKIP_REAL_CLIENTS=1 (Gradle not run)" >&2
  exit 0
fi

credentials=0; token=""; expect_refused=0; nonce=""; first_expected=miss; url=""
while [ $# -gt 0 ]; do
  case "$1" in
    --credentials) credentials=1; shift ;;
    --token) [ $# -ge 2 ] || die "--token needs a value"; token="$2"; shift 2 ;;
    --expect-refused) expect_refused=1; shift ;;
    --nonce) [ $# -ge 2 ] || die "--nonce needs a value"; nonce="$2"; shift 2 ;;
    --first-build) [ $# -ge 2 ] || die "--first-build needs miss|hit"; first_expected="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) die "unknown option '$1' (see --help)" ;;
    *) [ -z "$url" ] || die "more than one URL given"; url="$1"; shift ;;
  esac
done
[ -n "$url" ] || usage
case "$url" in http://*/) ;; *) die "URL '$url' must start with http:// and end with '/'" ;; esac
case "$first_expected" in miss|hit) ;; *) die "--first-build: '$first_expected' is not miss|hit" ;; esac
case "$nonce" in *[!A-Za-z0-9_-]*) die "--nonce: only letters, digits, '_' and '-'" ;; esac
[ -n "$nonce" ] || nonce="$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

command -v gradle >/dev/null 2>&1 ||
  { echo "gradle/run.sh: gradle not found; run: bash tests/install-deps.sh" >&2; exit 3; }

work="$(mktemp -d "${TMPDIR:-/tmp}/tessera-gradle.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp -a "$project_src" "$work/project"
cat >"$work/project/src/main/java/tessera/Nonce.java" <<EOF
package tessera;

/** Written by run.sh: makes the cache key of this run its own. */
final class Nonce {
    static final String VALUE = "$nonce";
}
EOF

export TESSERA_GRADLE_CACHE_URL="$url"
if [ -n "$token" ]; then
  export TESSERA_GRADLE_CACHE_USER=ci TESSERA_GRADLE_CACHE_PASSWORD="$token"
elif [ "$credentials" = 1 ]; then
  export TESSERA_GRADLE_CACHE_USER=u TESSERA_GRADLE_CACHE_PASSWORD=p
else
  unset TESSERA_GRADLE_CACHE_USER TESSERA_GRADLE_CACHE_PASSWORD
fi
# A private user home: no init scripts or gradle.properties of the caller, no daemon registry.
export GRADLE_USER_HOME="$work/gradle-home"
unset JAVA_TOOL_OPTIONS JAVA_OPTS
# With --no-daemon and no org.gradle.jvmargs the client JVM runs the build itself, so these
# options are the build's: C1 only and the serial collector halve its CPU time (8-9 s -> 4-5 s
# per invocation, measured on the CI machine's 2 cores), which is what a loaded machine waits
# for. Neither changes a byte of what Gradle sends.
export GRADLE_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"

# Runs one Gradle invocation with its output in $work/NAME.log; on failure prints the log's tail.
run_gradle() {
  local name="$1"; shift
  local log="$work/$name.log" step_start_ns
  step_start_ns=$(date +%s%N)
  if ! (cd "$work/project" && gradle --build-cache --no-daemon --console=plain "$@") >"$log" 2>&1; then
    echo "gradle/run.sh: 'gradle $*' failed; last $log_tail_lines lines of its output:" >&2
    tail -n "$log_tail_lines" "$log" >&2
    exit 3
  fi
  echo "$name: gradle $* took $((($(date +%s%N) - step_start_ns) / 1000000)) ms" >&2
}

# Gradle 4.4.1's remote-cache complaints: "Could not load entry …", "Could not store entry …",
# "The remote build cache was disabled during the build due to errors."
cache_warning_pattern='^(Could not (load|store) entry |The remote build cache was disabled)'

# Prints "executed" or "from-cache" for the compileJava of a build log, or fails.
outcome() {
  local log="$1"
  if grep -qx ':compileJava FROM-CACHE' "$log" && grep -qx '1 actionable task: 1 from cache' "$log"; then
    echo from-cache
  elif grep -qx ':compileJava' "$log" && grep -qx '1 actionable task: 1 executed' "$log"; then
    echo executed
  else
    echo "gradle/run.sh: neither ':compileJava' nor ':compileJava FROM-CACHE' with its task count in $log:" >&2
    tail -n "$log_tail_lines" "$log" >&2
    exit 1
  fi
}

expect() {
  local name="$1" want="$2" got warnings
  got="$(outcome "$work/$name.log")"
  warnings="$(grep -cE "$cache_warning_pattern" "$work/$name.log" || true)"
  echo "$name: compileJava $got, remote-cache warnings $warnings" >&2
  if [ "$got" != "$want" ] || [ "$warnings" != 0 ]; then
    echo "gradle/run.sh: $name: expected compileJava $want and no remote-cache warning, got $got and $warnings warning(s):" >&2
    grep -E "$cache_warning_pattern" "$work/$name.log" >&2 || true
    exit 1
  fi
  total_warnings=$((total_warnings + warnings))
}

start_ns=$(date +%s%N)
total_warnings=0
if [ "$expect_refused" = 1 ]; then
  run_gradle build-1 compileJava
  got="$(outcome "$work/build-1.log")"
  warnings="$(grep -cE "$cache_warning_pattern" "$work/build-1.log" || true)"
  # Gradle 4.4.1: "Could not load entry … response status 401: Unauthorized".
  refused="$(grep -oE 'response status (401|403)' "$work/build-1.log" | head -n 1 | awk '{print $3}')"
  echo "build-1: compileJava $got, remote-cache warnings $warnings, refused with ${refused:-nothing}" >&2
  if [ "$got" != executed ] || [ -z "$refused" ]; then
    echo "gradle/run.sh: build-1: expected compileJava executed and a remote-cache warning with status 401 or 403, got $got:" >&2
    grep -E "$cache_warning_pattern" "$work/build-1.log" >&2 || true
    exit 1
  fi
  echo "summary: first=executed refused=$refused cache_warnings=$warnings elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))"
  exit 0
fi
[ "$first_expected" = miss ] && first_want=executed || first_want=from-cache
run_gradle build-1 compileJava
expect build-1 "$first_want"
run_gradle clean clean
[ ! -e "$work/project/build" ] || { echo "gradle/run.sh: 'gradle clean' left build/ behind" >&2; exit 1; }
run_gradle build-2 compileJava
expect build-2 from-cache
class_file="$work/project/build/classes/java/main/tessera/Hello.class"
[ -s "$class_file" ] || { echo "gradle/run.sh: FROM-CACHE but $class_file was not restored" >&2; exit 1; }
echo "summary: first=$first_want second=from-cache cache_warnings=$total_warnings elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))"
