# Shared by scripts/run.sh and scripts/test.sh: install what is missing
# (idempotently) and start the Docker daemon when none answers.

log() { printf '==> %s\n' "$*"; }

# ensure_packages COMMAND:PACKAGE...: installs PACKAGE when COMMAND is missing
# (a PACKAGE with no COMMAND is checked with dpkg).
ensure_packages() {
  local need=() item command package
  for item in "$@"; do
    command=${item%%:*}
    package=${item#*:}
    if [ -n "$command" ]; then
      command -v "$command" >/dev/null 2>&1 || need+=("$package")
    else
      dpkg -s "$package" >/dev/null 2>&1 || need+=("$package")
    fi
  done
  if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
  fi
}

ensure_dockerd() {
  if docker info >/dev/null 2>&1; then
    return
  fi
  log "starting dockerd"
  # In a session of its own: stopping whatever started it (a terminal, a
  # job killed with its process group) must not stop the daemon that every
  # later test run shares.
  (setsid dockerd >>/tmp/zos-build-dockerd.log 2>&1 </dev/null &)
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 1
  done
  echo "dockerd did not start; see /tmp/zos-build-dockerd.log" >&2
  exit 1
}
