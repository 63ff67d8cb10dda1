#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine as root or on one already set up.
#
# Installs what is missing (idempotently), starts the Docker daemon when none
# answers, then runs formatting, lints and every test against the real components.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

# git: tests make and serve their own repositories. busybox-static: the tests
# build their Docker image from it (nothing can be pulled here). chromium and
# its driver: the monitor page is tested in a real headless browser.
ensure_packages git:git dockerd:docker.io :busybox-static chromium:chromium chromedriver:chromium-driver
ensure_dockerd

# One build of everything, used once: incremental artifacts only cost disk
# (tens of GB for this workspace's test binaries) and time.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

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
