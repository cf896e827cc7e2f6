#!/usr/bin/env bash
# Builds the native addon a second time with AddressSanitizer + UndefinedBehaviorSanitizer into
# agent/tun/build-asan/ (the normal build in agent/tun/build/ is untouched) and prints the path of
# the .node file. Load it with scripts/test-sanitizers.sh (PINHOLE_ADDON_PATH + LD_PRELOAD).
set -euo pipefail
cd "$(dirname "$0")/.."
out=agent/tun/build-asan
mkdir -p "$out"
# A copy of the sources (times kept, so make rebuilds only what changed); removed files go too.
rm -rf "$out/src.new" && cp -rp agent/tun/src "$out/src.new"
if [ -d "$out/src" ] && diff -rq "$out/src" "$out/src.new" >/dev/null; then rm -rf "$out/src.new"; else rm -rf "$out/src" && mv "$out/src.new" "$out/src"; fi
# A changed binding.gyp (new sources) needs a fresh configure.
if ! cmp -s agent/tun/binding.gyp "$out/binding.gyp"; then cp -p agent/tun/binding.gyp "$out/binding.gyp"; rm -rf "$out/build"; fi
if [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
export CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
export LDFLAGS="-fsanitize=address,undefined"
gyp=node_modules/.bin/node-gyp
log="$out/build.log"
{ [ -f "$out/build/Makefile" ] || "$gyp" configure --directory "$out"; } >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
"$gyp" build --directory "$out" >>"$log" 2>&1 || { cat "$log" >&2; exit 1; }
echo "$PWD/$out/build/Release/pinhole_native.node"
