#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as root or on one already set up.
#
# Installs what is missing (idempotently), starts the Docker daemon when none
# answers, then runs formatting, lints and every test against the real components.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '==> %s\n' "$*"; }

need_pkgs=()
command -v git >/dev/null 2>&1 || need_pkgs+=(git)
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
# The tests build their image from the static busybox (nothing can be pulled here).
dpkg -s busybox-static >/dev/null 2>&1 || need_pkgs+=(busybox-static)
# The monitor page is tested in a real headless Chromium, driven over WebDriver.
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need_pkgs+=(chromium-driver)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  log "installing ${need_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  log "starting dockerd"
  (dockerd >/tmp/zos-build-dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/zos-build-dockerd.log" >&2; exit 1; }
fi

log "cargo fmt --check"
cargo fmt --all -- --check
log "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
log "cargo test"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
cargo test --workspace 2>&1 | tee "$results"

# One closing line for the whole suite (cargo prints one per test binary,
# and the last of those is usually an empty doc-test run).
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "zos-build: %d passed, %d failed, %d skipped\n", p, f, i }' "$results"
