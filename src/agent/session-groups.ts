/**
 * A sign-in's groups, put into this server's firewall before the client is let in (issue 16).
 *
 * The controller stores the groups a sign-in gave and every server's next bundle carries them
 * (core/session-groups.ts), but that bundle lands ~0.3 s after the sign-in's answer: until then
 * the server the user connects to would filter them by their previous groups (the spec's,
 * possibly broader). So on an `ok` outcome that names groups the agent first rewrites the user's
 * membership of every group set itself, in one `nft -f -` transaction, and answers `client-auth`
 * only once nft has taken it; if nft refuses, the client is denied (fail closed).
 *
 * The batch says, for each group set, `add element` where the user belongs and `add element`
 * then `delete element` where they do not. nftables 1.0.6 (Debian 12) has no `destroy element`
 * (1.0.8 and later), and `delete element` of an element that is not in the set fails the whole
 * transaction (ENOENT); an `add` first makes the delete succeed whether or not the address was
 * there, and both happen in the same transaction, so no packet sees the address added
 * (checked with nft 1.0.6 in a network namespace: session-groups.test.ts). `add element` of an
 * element already there is no error (unlike `create element`). The bundle's own ruleset
 * replaces the table whole, so the next bundle (rendered from the same store) agrees.
 */
import { groupSetName } from '../core/policy.js';
import { USER_NAME_PATTERN } from '../core/names.js';
import { NFT_TABLE } from '../render/nftables.js';
import type { RunOptions, RunResult } from '../sys/exec.js';

/** A user's pushed addresses, as the bundle's ccd file has them. */
export interface CcdAddresses {
  ipv4: string;
  ipv6: string;
}

/**
 * The addresses `ifconfig-push` and `ifconfig-ipv6-push` give in a ccd file (render/openvpn.ts
 * renderCcd): what OpenVPN will push to the client, so what the sets must hold. Undefined when
 * either is missing.
 */
export function ccdAddresses(text: string): CcdAddresses | undefined {
  const v4 = /^ifconfig-push\s+(\d{1,3}(?:\.\d{1,3}){3})\s/m.exec(text)?.[1];
  const v6 = /^ifconfig-ipv6-push\s+([0-9A-Fa-f:]+)\/\d+/m.exec(text)?.[1];
  return v4 && v6 ? { ipv4: v4, ipv6: v6 } : undefined;
}

/**
 * The nft script that puts `addresses` in the sets of `wanted` and out of those of every other
 * group in `all` (the bundle's groups; a wanted group the bundle does not have is left out: its
 * set does not exist yet, the next bundle makes it). One transaction when given to `nft -f`.
 */
export function sessionGroupsScript(
  all: readonly string[],
  wanted: readonly string[],
  addresses: CcdAddresses,
): string {
  const want = new Set(wanted);
  const lines: string[] = [];
  for (const group of [...new Set(all)].sort())
    for (const family of [4, 6] as const) {
      const element = `add element inet ${NFT_TABLE} ${groupSetName(group, family)} { ${family === 4 ? addresses.ipv4 : addresses.ipv6} }`;
      lines.push(element);
      if (!want.has(group)) lines.push(element.replace(/^add /, 'delete '));
    }
  return `${lines.join('\n')}\n`;
}

export interface SessionGroupsHost {
  /** A bundle file's text, or undefined. */
  readFile(path: string): string | undefined;
  run(argv: readonly string[], opts?: RunOptions): Promise<RunResult>;
}

/**
 * Makes this server's group sets hold `user` in exactly `groups` (of the bundle's `all`). Throws
 * an Error saying why when it cannot (no ccd file, nft refused): the caller denies the client.
 */
export async function applySessionGroups(
  host: SessionGroupsHost,
  all: readonly string[],
  user: string,
  groups: readonly string[],
): Promise<void> {
  // The name comes from the client's certificate: it must be one of ours before it names a file.
  if (!USER_NAME_PATTERN.test(user)) throw new Error(`${JSON.stringify(user)} is no user name`);
  const ccd = host.readFile(`ccd/${user}`);
  const addresses = ccd === undefined ? undefined : ccdAddresses(ccd);
  if (!addresses) throw new Error(`no addresses for ${user} in this bundle (ccd/${user})`);
  const result = await host.run(['nft', '-f', '-'], {
    input: sessionGroupsScript(all, groups, addresses),
    allowFailure: true,
    timeoutMs: 5000,
  });
  if (result.code !== 0)
    throw new Error(
      `nft refused ${user}'s groups: ${result.stderr.trim().split('\n')[0] || `exit ${result.code}`}`,
    );
}
