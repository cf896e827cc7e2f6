#!/usr/bin/env bash
# The one command that runs every test: installs what is missing, builds, then runs the unit
# tests and the lab tests (real TUN devices, namespaces, NAT, wireguard-go; needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Only *.test.js: node --test would otherwise also run every helper module under a test/ folder.
mapfile -t unit < <(find dist/test/unit -name '*.test.js' | sort)
mapfile -t lab < <(find dist/test/lab -name '*.test.js' | sort)
exec node --test --test-concurrency=1 --test-reporter=spec "${unit[@]}" "${lab[@]}"
