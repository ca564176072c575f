/**
 * "As the seed ran it": small rewrites of a server's rendered bundle (and of a client profile)
 * that turn ovpn-fleet's data plane back into the seed article's, so the benchmark can put both
 * designs through the same events on the same lab. Only the lab uses this; the production
 * renderers stay as they are.
 */
import type { RenderedFile } from '../render/types.js';

/**
 * The seed's learn-address script. The article's listing lost its closing `fi` (verbatim,
 * /bin/sh rejects it and no route is ever added): it is added back here. Like the original it
 * ignores its add/update/delete argument, always exits 0, and adds a `::A.B.C.D` IPv6 route
 * that nothing ever removes.
 */
export const SEED_LEARN_ADDRESS = `#!/bin/sh
# The seed article's learn-address hook (its missing closing "fi" added back).
if [ ! -z "$ifconfig_pool_remote_ip" ]; then
ip route add "$ifconfig_pool_remote_ip" dev $dev
ip route add "::$ifconfig_pool_remote_ip" dev $dev
fi
exit 0
`;

/** The seed article's client-disconnect hook: removes the IPv4 host route only. */
export const SEED_CLIENT_DISCONNECT = `#!/bin/sh
# The seed article's client-disconnect hook.
ip route del "$ifconfig_pool_remote_ip"
`;

/**
 * The seed's FRR: kernel routes redistributed without any filter, plus connected routes. Every
 * `redistribute kernel route-map X` becomes `redistribute kernel` + `redistribute connected`;
 * BGP's outbound route-maps (same filter) go too. The now unused prefix-lists and route-maps
 * stay defined: harmless, and the rest of the file is byte-identical to ours.
 */
export function seedFrrConf(conf: string): string {
  return conf
    .replace(
      /^(\s*)redistribute kernel route-map \S+$/gm,
      '$1redistribute kernel\n$1redistribute connected',
    )
    .replace(/^\s*neighbor \S+ route-map \S+ out\n/gm, '');
}

/** A server's bundle with the seed's hooks and FRR configuration; every other file unchanged. */
export function seedBundle(files: RenderedFile[]): RenderedFile[] {
  return files.map((f) => {
    switch (f.path) {
      case 'hooks/learn-address':
        return { ...f, content: SEED_LEARN_ADDRESS };
      case 'hooks/client-disconnect':
        return { ...f, content: SEED_CLIENT_DISCONNECT };
      case 'frr.conf':
        return { ...f, content: seedFrrConf(f.content) };
      default:
        return f;
    }
  });
}

/** The seed's client profile: none of our failover settings (and none of our comments). */
export function seedProfile(profile: string): string {
  return profile
    .split('\n')
    .filter((l) => !l.startsWith('#') && !SEED_LACKS.test(l))
    .join('\n');
}

/** Profile settings of ours the seed's profiles do not have. */
const SEED_LACKS = /^(explicit-exit-notify|connect-retry|server-poll-timeout)\b/;
