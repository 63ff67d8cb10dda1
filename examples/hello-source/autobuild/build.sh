#!/bin/sh
# A build script as a repository of the configuration would carry it:
# build something, and leave the artifact in the archives directory.
set -e
echo "building hello from $(dirname "$0")/.."
mkdir -p /tmp/hello/bin /target
printf '#!/bin/sh\necho hello from zos-build\n' > /tmp/hello/bin/hello
chmod +x /tmp/hello/bin/hello
echo "warning: this is stderr" >&2
tar -czf /target/hello.tar.gz -C /tmp/hello .
echo "artifact ready: /target/hello.tar.gz"
