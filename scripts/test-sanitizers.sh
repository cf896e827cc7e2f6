#!/usr/bin/env bash
# The native-path lab tests again, with the addon built under ASan + UBSan (scripts/build-addon-asan.sh).
# node itself is not instrumented, so libasan is preloaded; leak checking is off (node's own
# allocations at exit are not ours). Any sanitizer report aborts the agent and fails its test.
set -euo pipefail
cd "$(dirname "$0")/.."
addon=$(bash scripts/build-addon-asan.sh)
tests=(dist/test/lab/native-datapath.test.js dist/test/lab/udp-batch.test.js dist/test/unit/native-flows.test.js dist/test/unit/destination-check.test.js dist/test/unit/tun-offload.test.js dist/test/unit/addon-sodium.test.js)
start=$(date +%s)
export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PINHOLE_ADDON_PATH="$addon"
# Preflight: the instrumented addon is the one that loads, next to the ASan runtime.
node --input-type=module -e '
  const { loadNative } = await import(process.cwd() + "/dist/agent/tun/native.js");
  loadNative();
  const maps = (await import("node:fs")).readFileSync("/proc/self/maps", "utf8");
  if (!maps.includes(process.env.PINHOLE_ADDON_PATH) || !maps.includes("libasan")) { console.error("sanitizer pass: the ASan addon did not load"); process.exit(1); }'
node --test --test-concurrency=1 --test-reporter=spec "${tests[@]}"
echo "sanitizer pass (ASan+UBSan addon: ${tests[*]}) took $(( $(date +%s) - start )) s"
