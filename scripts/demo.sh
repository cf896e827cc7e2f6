#!/usr/bin/env bash
# The pinhole demo, in network namespaces (root): a relay, a coordinator and five agents behind
# five different NATs that join with an auth key, ping each other and show which pairs went direct
# and which are relayed, and a client behind symmetric NAT fetches a page through an exit node;
# then two NATed sites joined by a static pinhole tunnel.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/scripts/demo-mesh.js "$@"
echo
exec node dist/scripts/demo.js "$@"
