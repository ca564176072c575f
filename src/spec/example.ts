/** The commented example written by `ovpn-fleet init --example`, shaped like the seed's cluster. */
export const EXAMPLE_FLEET_YAML = `# ovpn-fleet — one file describes the whole cluster.
# Check it with: ovpn-fleet validate      Schema: schema/fleet.schema.json
fleet: acme

# Every user owns one address from each pool, for life, on every server.
# The first address of each pool is the tun address all servers share (the gateway).
pools:
  ipv4: 10.200.0.0/16
  ipv6: fd7a:6ca6:e640:8000::/64
  quarantineDays: 30            # a deleted user's addresses stay unused this long

openvpn:
  port: 1194
  proto: udp
  keepalive: { interval: 3, timeout: 10 }   # clients: ping 3 s, restart after 10 s silence
  handWindow: 10                # seconds a client waits for the TLS handshake of one remote
  serverPollTimeout: 1          # seconds a client waits for a silent remote before the next one
  dataCiphers: [AES-256-GCM, CHACHA20-POLY1305]
  push:
    dns: [10.20.0.53]
    domain: corp.example
    routes: [10.20.0.0/24, 10.30.0.0/24, fd00:20::/64, fd00:30::/64]

# dc1 and dc2 face the internet behind a load balancer; dc3 is internal, dialled directly.
sites:
  - name: dc1
    loadBalancer: 198.51.100.10
    servers:
      - { name: vpn11, address: 198.51.100.11, backbone: 10.255.1.2/30, routerId: 10.255.1.2 }
      - { name: vpn12, address: 198.51.100.12, backbone: 10.255.1.6/30, routerId: 10.255.1.6 }
  - name: dc2
    loadBalancer: 203.0.113.10
    servers:
      - { name: vpn21, address: 203.0.113.11, backbone: 10.255.2.2/30, routerId: 10.255.2.2 }
      - { name: vpn22, address: 203.0.113.12, backbone: 10.255.2.6/30, routerId: 10.255.2.6 }
  - name: dc3
    servers:
      - { name: vpn31, address: 192.0.2.31, backbone: 10.255.3.2/30, routerId: 10.255.3.2 }
      - { name: vpn32, address: 192.0.2.32, backbone: 10.255.3.6/30, routerId: 10.255.3.6 }

# How servers tell the datacenter where each user is: only users' /32 and /128 are announced.
routing:
  protocol: ospf                # or bgp (asn + neighbors), or rip
  frrVersion: "8.4"             # FRR on the servers: Debian 12 ships 8.4 (zebra --version)
  ospf:
    area: 0.0.0.0
    auth: { keyId: 1, key: change-me-ospf }   # OSPFv2 MD5; replace it
    # OSPFv3 without authentication: FRR before 9.1 computes the RFC 7166 trailer wrongly, and
    # then never forms an adjacency with BIRD, IOS-XR or FRR 9.1+ (no user's IPv6 route would
    # reach the datacenter). With FRR 9.1+ on the servers: { type: trailer, key: … }.
    ipv6Auth: { type: none }
    helloInterval: 1
    deadInterval: 3

groups:
  - { name: staff, description: everybody with a laptop }
  - { name: engineering }
  - { name: dba }

networks:
  - { name: intranet, ipv4: [10.20.0.0/24], ipv6: ["fd00:20::/64"] }
  - { name: databases, ipv4: [10.30.0.0/24], ipv6: ["fd00:30::/64"] }

# Default deny: a user reaches a network only through a rule of one of their groups.
policy:
  - { from: staff, to: intranet, proto: [tcp], ports: [80, 443] }
  - { from: staff, to: intranet, proto: [icmp] }
  - { from: engineering, to: intranet }
  - { from: engineering, to: databases, proto: [icmp] }
  - { from: dba, to: databases, proto: [tcp], ports: [5432] }
  - { from: dba, to: databases, proto: [icmp] }

# The servers' own input: off by default. When on, only OpenVPN, the routing protocol on the
# backbone interface, ICMP and these rules get in (a ruleset that cuts routing off is rolled
# back by the agent).
# firewall:
#   protectServers: true
#   allowInput:
#     - { proto: tcp, ports: [22], from: [10.0.0.0/8] }
`;
