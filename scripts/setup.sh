#!/usr/bin/env bash
# Installs what pinhole needs on a Debian machine (as root) and builds it. Safe to run twice.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(iproute2 nftables iputils-ping iperf3 conntrack tcpdump procps
      wireguard-go wireguard-tools nebula coturn curl
      prometheus  # test/lab/prometheus-scrape.test.ts scrapes --metrics-listen with the real server
      postgresql  # test/lab/postgres-store.test.ts: the coordinator on a real PostgreSQL (initdb/postgres)
      python3     # python3: natlab's link emulator (this kernel has no sch_netem)
      miniupnpd-nftables miniupnpc   # test/lab/portmap.test.ts: a real UPnP/NAT-PMP/PCP gateway, upnpc -l to cross-check
      libsodium-dev   # the addon's native data path encrypts with libsodium
      dpkg-dev systemd   # scripts/package.sh: dpkg-shlibdeps; its test: systemd-analyze verify
      openssl bind9-dnsutils   # lab certificates (test/lab/tls-endpoints, console); dig (magic-dns, console)
      chromium)          # test/lab/console*.test.ts: the web console in a real headless browser
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

# Native addons build from source against the machine's Node headers (no downloads here).
if [ -f /usr/include/node/node_api.h ]; then export npm_config_nodedir=/usr; fi
export npm_config_build_from_source=true
stamp=node_modules/.pinhole-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
fi
npm run --silent build
