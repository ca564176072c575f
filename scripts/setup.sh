#!/bin/sh
# Installs what ovpn-fleet needs on a Debian machine (as root): the daemons the lab runs and
# the project's npm dependencies, then builds. Safe to run again.
set -eu
cd "$(dirname "$0")/.."

need_pkgs=""
# python3, make and g++: better-sqlite3 compiles from source (npm ci, and the global install test).
for pair in openvpn:/usr/sbin/openvpn frr:/usr/lib/frr/zebra nftables:/usr/sbin/nft \
  iproute2:/usr/sbin/ip iputils-ping:/usr/bin/ping conntrack:/usr/sbin/conntrack \
  iperf3:/usr/bin/iperf3 iptables:/usr/sbin/iptables openssl:/usr/bin/openssl \
  chromium:/usr/bin/chromium prometheus:/usr/bin/promtool curl:/usr/bin/curl \
  python3:/usr/bin/python3 make:/usr/bin/make g++:/usr/bin/g++ bird2:/usr/sbin/bird \
  frr-pythontools:/usr/lib/frr/frr-reload.py; do
  [ -e "${pair#*:}" ] || need_pkgs="$need_pkgs ${pair%%:*}"
done
if [ -n "$need_pkgs" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: need root to install:$need_pkgs" >&2
    exit 1
  fi
  echo "setup: installing$need_pkgs"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $need_pkgs
fi
# Debian starts FRR's (and bird2's) own service when systemd runs; the lab starts its own
# instances per namespace and never touches the host's FRR or BIRD.

node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js 20 or newer is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run build --silent
