#!/usr/bin/env bash
# The pinhole demo, in network namespaces (root): a coordinator and three agents that join with
# an auth key and ping each other; then two NATed sites joined by a static pinhole tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/scripts/demo-mesh.js "$@"
echo
exec node dist/scripts/demo.js "$@"
