#!/usr/bin/env bash
# Sends GitHub's push webhook for the head of ./data/quickstart-git/zero-os/hello
# to the local server, signed as GitHub signs it (X-Hub-Signature-256, an
# HMAC-SHA256 of the body with the webhook secret).
set -euo pipefail
cd "$(dirname "$0")/../.."
server=${ZOS_BUILD_SERVER:-http://127.0.0.1:5560}
secret=${SECRET:-quickstart-secret}
commit=$(git -C ./data/quickstart-git/zero-os/hello rev-parse HEAD)
message=$(git -C ./data/quickstart-git/zero-os/hello log -1 --format=%s)
body=$(printf '{"ref":"refs/heads/master","after":"%s","repository":{"full_name":"zero-os/hello"},"head_commit":{"id":"%s","message":"%s"},"commits":[{"id":"%s","message":"%s","author":{"name":"quickstart"}}]}' \
  "$commit" "$commit" "$message" "$commit" "$message")
signature=$(printf '%s' "$body" | openssl dgst -sha256 -hmac "$secret" | sed 's/^.* //')
curl -sS -X POST "$server/hook/monitor-watch" \
  -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' \
  -H "X-GitHub-Delivery: quickstart-$(date +%s%N)" \
  -H "X-Hub-Signature-256: sha256=$signature" \
  --data-binary "$body"
echo
