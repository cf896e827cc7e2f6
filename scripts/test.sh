#!/usr/bin/env bash
# The one command that runs every test: installs what is missing, builds, runs unit then lab tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node --test --test-concurrency=1 --test-reporter=spec dist/test/
