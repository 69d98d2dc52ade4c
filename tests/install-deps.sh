#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine. Idempotent: a package that is
# already present is not fetched again.
set -euo pipefail

need_apt=()
want() { dpkg -s "$1" >/dev/null 2>&1 || need_apt+=("$1"); }

# Building: glommio's build.rs runs git and a C compiler (it vendors liburing).
want git
want gcc
want make
want pkg-config

if [ ${#need_apt[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# gRPC interop test (tests/grpc_driver.rs): a real gRPC client stack.
python3 -c 'import grpc' 2>/dev/null || python3 -m pip install -q grpcio \
  || python3 -m pip install -q --break-system-packages grpcio

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
