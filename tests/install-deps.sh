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
