#!/usr/bin/env bash
# Makes ./data/quickstart-git/zero-os/hello, a git repository holding
# examples/hello-source, as the quickstart's stand-in for GitHub. Run again
# to commit a change (every run adds a commit); prints the new commit.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=./data/quickstart-git/zero-os/hello
mkdir -p "$repo"
cp -R examples/hello-source/. "$repo/"
cd "$repo"
[ -d .git ] || git init -q -b master
git add -A
git -c user.name=quickstart -c user.email=quickstart@localhost \
  commit -q --allow-empty -m "hello, at $(date -u +%H:%M:%S)"
git rev-parse HEAD
