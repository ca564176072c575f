/**
 * Policy: for each group, what the compiled firewall lets its members reach (network, family,
 * prefixes, protocols, ports, straight from core/policy's compiler output) and who its members
 * are. Only enabled users are in the compiled sets; the page says so.
 */
import { type CompiledPolicy, groupSetName } from '../../core/policy.js';
import { type Html, html, query } from '../html.js';
import type { Page, PageContext } from '../layout.js';

export interface PolicyData {
  groups: readonly { name: string; description?: string }[];
  compiled: CompiledPolicy;
  /** Group → enabled members' names, sorted. */
  members: ReadonlyMap<string, string[]>;
}

const MEMBERS_SHOWN = 30;

function groupSection(data: PolicyData, group: { name: string; description?: string }): Html {
  const sets = new Set([groupSetName(group.name, 4), groupSetName(group.name, 6)]);
  const rules = data.compiled.rules.filter((r) => sets.has(r.groupSet));
  const prefixes = new Map(data.compiled.networkSets.map((n) => [n.name, n.elements]));
  const members = data.members.get(group.name) ?? [];
  const id = `group-${group.name}`;
  return html`<section class="group" aria-labelledby="${id}" data-group="${group.name}">
    <h2 id="${id}">${group.name}</h2>
    ${group.description && html`<p>${group.description}</p>`}
    ${
      rules.length
        ? html`<table class="data">
            <thead>
              <tr>
                <th scope="col">Network</th>
                <th scope="col">Family</th>
                <th scope="col">Prefixes</th>
                <th scope="col">Protocols</th>
                <th scope="col">Ports</th>
                <th scope="col">Rule</th>
              </tr>
            </thead>
            <tbody>
              ${rules.map(
                (r) =>
                  html`<tr>
                    <td>${r.networkSet.replace(/^n_|_v[46]$/g, '')}</td>
                    <td>IPv${r.family}</td>
                    <td>
                      ${(prefixes.get(r.networkSet) ?? []).map((p, i) => html`${i ? ', ' : ''}<code>${p}</code>`)}
                    </td>
                    <td>${r.protocols?.join(', ') ?? 'any'}</td>
                    <td>${r.ports?.join(', ') ?? 'all'}</td>
                    <td class="muted">${r.comment}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p>No rule names this group: its members reach nothing (default deny).</p>`
    }
    <p data-testid="members">
      ${members.length} enabled
      ${members.length === 1 ? 'member' : 'members'}${
        members.length ? ': ' : '.'
      }${members.slice(0, MEMBERS_SHOWN).join(', ')}${
        members.length > MEMBERS_SHOWN
          ? html` …
              <a href="${`/console/users${query({ q: group.name })}`}">all ${members.length}</a>`
          : ''
      }
    </p>
  </section>`;
}

export function policyPage(_ctx: PageContext, data: PolicyData): Page {
  const live = html`<p class="summary">
      ${data.groups.length} groups, ${data.compiled.rules.length} compiled rules (IPv4 and IPv6
      counted apart). Everything not listed is refused.
    </p>
    ${data.groups.length ? data.groups.map((g) => groupSection(data, g)) : html`<p>fleet.yaml defines no groups.</p>`}`;
  return { title: 'Policy', section: 'policy', live, liveOn: ['fleet'] };
}
