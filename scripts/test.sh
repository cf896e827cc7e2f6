#!/usr/bin/env bash
# The one command that runs every test: installs what is missing, builds, then runs the unit
# tests and the lab tests (real TUN devices, namespaces, NAT, wireguard-go; needs root), after a
# sanitizer pass over the native data path (scripts/test-sanitizers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Only *.test.js: node --test would otherwise also run every helper module under a test/ folder.
mapfile -t unit < <(find dist/test/unit -name '*.test.js' | sort)
mapfile -t lab < <(find dist/test/lab -name '*.test.js' | sort)
# The native-path lab tests once more against the addon built with ASan + UBSan (a minute or two),
# first, so the full suite's summary stays the last thing printed.
sanitizers=0
bash scripts/test-sanitizers.sh || sanitizers=$?
suite=0
node --test --test-concurrency=1 --test-reporter=spec "${unit[@]}" "${lab[@]}" || suite=$?
if [ "$sanitizers" -ne 0 ]; then echo "test.sh: the sanitizer pass failed (exit $sanitizers)" >&2; fi
if [ "$suite" -ne 0 ]; then exit "$suite"; fi
exit "$sanitizers"
