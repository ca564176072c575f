#!/bin/sh
# The one demo line: installs what it needs, creates the example fleet (3 sites, 6 servers,
# OSPF, 2 load balancers), runs it in network namespaces with real OpenVPN, FRR and nftables,
# connects a handful of users and shows where each is and that the core router knows it.
set -eu
cd "$(dirname "$0")/.."
./scripts/setup.sh
dir=${OVPN_FLEET_DEMO_DIR:-/tmp/ovpn-fleet-demo}
fleet() { node bin/ovpn-fleet.js --dir "$dir" "$@"; }

if [ -f "$dir/fleet.db" ]; then fleet lab down >/dev/null 2>&1 || true; fi
rm -rf "$dir"
mkdir -p "$dir"
fleet init --example
fleet user add alice --group staff
fleet user add bob --group dba
fleet user add carol --group engineering
fleet user add dave --group staff --group engineering
fleet user add erin
fleet lab up
# Two users through dc1's load balancer (their full profile), the rest pinned to a server.
fleet lab connect alice
fleet lab connect bob
fleet lab connect carol --server vpn21
fleet lab connect dave --server vpn31
fleet lab connect erin --server vpn32
sleep 2
echo
fleet lab status
echo
echo "core router, users' host routes (learned by OSPF from the VPN servers):"
fleet lab exec core -- ip route show proto ospf | grep '^10\.200\.' || true
fleet lab exec core -- ip -6 route show proto ospf | grep '^fd7a:' || true
echo
printf 'service host (intranet) pings carol over IPv4 and IPv6: '
fleet lab exec intranet -- ping -c1 -W2 10.200.0.4 >/dev/null && printf 'v4 ok ' || printf 'v4 FAILED '
fleet lab exec intranet -- ping -c1 -W2 fd7a:6ca6:e640:8000::4 >/dev/null && echo 'v6 ok' || echo 'v6 FAILED'
echo
echo "The lab keeps running. Try:  node bin/ovpn-fleet.js --dir $dir lab exec alice -- ping -c1 10.20.0.10"
echo "Tear it down with:          node bin/ovpn-fleet.js --dir $dir lab down"
