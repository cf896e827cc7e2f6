#!/usr/bin/env bash
# The pinhole demo: two NATed sites joined by a static pinhole tunnel, in network namespaces (root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node dist/scripts/demo.js "$@"
