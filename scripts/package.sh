#!/usr/bin/env bash
# Builds the Debian package pinhole_VERSION_ARCH.deb and prints its path as the last line.
#
#   bash scripts/package.sh [--out DIR] [--no-build]
#
# --out DIR   where the .deb goes (default: dist/)
# --no-build  package dist/ and the addon as they are (default: build the TypeScript first, and the
#             addon if it is missing)
#
# The package holds /usr/lib/pinhole (bin/pinhole, the built JavaScript, the native addon and the
# production node_modules, pruned offline from this checkout's node_modules), /usr/bin/pinhole,
# three systemd units and their flag files under /etc/pinhole (conffiles). Layout and hardening:
# docs/packaging.md. Needs node, npm, dpkg-deb and dpkg-shlibdeps (dpkg-dev).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

out=$repo/dist
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || { echo "package.sh: --out needs a directory" >&2; exit 2; }; out=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "package.sh: unknown argument: $1 (usage: package.sh [--out DIR] [--no-build])" >&2; exit 2 ;;
  esac
done
for tool in node npm dpkg-deb dpkg-shlibdeps; do
  command -v "$tool" >/dev/null || { echo "package.sh: $tool not found (bash scripts/setup.sh installs it)" >&2; exit 1; }
done

addon=agent/tun/build/Release/pinhole_native.node
if [ "$build" = 1 ]; then
  [ -f "$addon" ] || npm run --silent build:addon >&2
  npm run --silent build:ts >&2
  npm run --silent build:console >&2
  npm run --silent build:bundle >&2
fi
for need in "$addon" dist/agent/cli/main.js dist/bundle/agent.js dist/coordinator/main.js dist/coordinator/console/assets/app.js dist/relay/main.js node_modules; do
  [ -e "$need" ] || { echo "package.sh: $need is missing: run bash scripts/setup.sh first" >&2; exit 1; }
done

version=$(node -p 'require("./package.json").version')
arch=$(dpkg --print-architecture)
node_arch=$(node -p 'process.arch')
mkdir -p "$out"
deb=$(cd "$out" && pwd)/pinhole_${version}_${arch}.deb

stage=$(mktemp -d "${TMPDIR:-/tmp}/pinhole-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/root
lib=$root/usr/lib/pinhole
mkdir -p "$lib/bin" "$lib/dist" "$lib/agent/tun/build/Release" "$root/usr/bin" \
         "$root/lib/systemd/system" "$root/etc/pinhole" "$root/usr/share/doc/pinhole" "$root/DEBIAN"

# The program: entry point, the compiled parts that run (no tests, scripts or source maps), the addon.
cp package.json package-lock.json "$lib/"
cp bin/pinhole "$lib/bin/pinhole"
# Timestamps kept: bin/pinhole runs the agent's bundle only if it is as new as dist/agent/.
for part in agent coordinator relay proto metrics bundle; do cp -r --preserve=timestamps "dist/$part" "$lib/dist/$part"; done
find "$lib/dist" -name '*.map' -delete
cp "$addon" "$lib/agent/tun/build/Release/"
ln -s ../lib/pinhole/bin/pinhole "$root/usr/bin/pinhole"

# Production dependencies: a copy of the installed tree, devDependencies pruned by npm (offline),
# then what only building needed: compiler output besides the .node files, other platforms' prebuilds.
cp -rL node_modules/. "$lib/node_modules/"
(cd "$lib" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
rm -rf "$lib/package-lock.json" "$lib/node_modules/.bin" "$lib/node_modules/.pinhole-lock"
while IFS= read -r gyp; do
  b=$(dirname "$gyp")/build
  compgen -G "$b/Release/*.node" >/dev/null || continue
  keep=$(mktemp -d "$stage/keep.XXXXXX")
  mv "$b"/Release/*.node "$keep/" && rm -rf "$b" && mkdir -p "$b" && mv "$keep" "$b/Release"
done < <(find "$lib/node_modules" -name binding.gyp -not -path '*/node-addon-api/*')
while IFS= read -r pre; do
  find "$pre" -mindepth 1 -maxdepth 1 -type d ! -name "linux-$node_arch" -exec rm -rf {} +
done < <(find "$lib/node_modules" -type d -name prebuilds)
find "$lib/node_modules" -depth -type d -empty -delete

# Units, flag files (conffiles), maintainer scripts, docs.
cp packaging/systemd/*.service "$root/lib/systemd/system/"
for f in agent coordinator relay; do cp "packaging/etc/$f.env" "$root/etc/pinhole/$f.env"; done
cp packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
cp docs/packaging.md "$root/usr/share/doc/pinhole/packaging.md"
printf 'pinhole\n\nLicense: MIT (see package.json); bundled node_modules keep their own licenses.\n' \
  > "$root/usr/share/doc/pinhole/copyright"
(cd "$root" && find etc -type f | sort | sed 's|^|/|') > "$root/DEBIAN/conffiles"

# Modes: 0755 for directories and executables, 0644 for the rest; owners are root (--root-owner-group).
chmod -R u=rwX,go=rX "$root"
chmod 0755 "$lib/bin/pinhole" "$root/DEBIAN/postinst" "$root/DEBIAN/prerm" "$root/DEBIAN/postrm"

# Depends: Node.js 20, iproute2 (the agent runs `ip`), and the libraries every native module links.
mkdir -p "$stage/debian"
printf 'Source: pinhole\n\nPackage: pinhole\nArchitecture: any\n' > "$stage/debian/control"
mapfile -t natives < <(find "$lib" -name '*.node' -type f | sort)
shlibs=$(cd "$stage" && dpkg-shlibdeps -O "${natives[@]/#/-e}" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "package.sh: dpkg-shlibdeps found no library dependencies" >&2; exit 1; }

size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<EOF
Package: pinhole
Version: $version
Architecture: $arch
Maintainer: pinhole developers <pinhole@localhost>
Installed-Size: $size
Depends: nodejs (>= 20), iproute2, $shlibs
Section: net
Priority: optional
Description: peer-to-peer mesh VPN speaking the WireGuard protocol
 pinhole gives each node an overlay address on a TUN device and talks to its
 peers over WireGuard tunnels, direct through NATs or through a relay. This
 package holds the agent (pinhole-agent.service), the coordinator
 (pinhole-coordinator.service) and the relay (pinhole-relay.service).
EOF
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles"

dpkg-deb --root-owner-group -Zgzip --build "$root" "$deb" >&2
echo "$deb"
