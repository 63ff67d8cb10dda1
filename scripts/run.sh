#!/usr/bin/env bash
# Runs the zos-build server, on a fresh Debian machine as root or on one
# already set up: installs git and Docker when missing, starts the Docker
# daemon when none answers, then starts the server (release build).
#
# Without arguments the server runs on its embedded defaults: data under
# ./data, http://127.0.0.1:5560, no GitHub, no Redis, nothing tracked yet.
# Arguments go to the server, e.g. --config examples/quickstart/zos-build.yaml.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

ensure_packages git:git dockerd:docker.io
ensure_dockerd
exec cargo run --release -q -p zos-build-server -- "$@"
