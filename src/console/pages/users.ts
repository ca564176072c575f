/**
 * Users: search and pagination done by the server (see data.ts: findUsers), add, CSV import,
 * per-row actions and bulk actions on a selection. Writes go to the JSON API from the browser
 * script; an admin sees the write controls, others see the list.
 */
import { type User, UserStatus } from '../../api/index.js';
import { type Html, html, path, query } from '../html.js';
import { type Page, type PageContext, may } from '../layout.js';
import { badge, time } from './format.js';

export interface UsersData {
  users: User[];
  total: number;
  q: string;
  /** Only users of this status / members of this group ('' : any). */
  status: UserStatus | '';
  group: string;
  page: number;
  pageSize: number;
  groups: string[];
  /** Users with at least one session. */
  online: ReadonlySet<string>;
}

export function statusBadge(status: User['status']): Html {
  return badge(status === 'enabled' ? 'ok' : status === 'revoked' ? 'bad' : 'warn', status);
}

/** The buttons an admin gets for one user (the user page shows the same ones). */
export function userActions(user: User): Html {
  const b = (op: string, label: string, cls = '') =>
    html`<button
      type="button"
      class="${cls}"
      data-action="user"
      data-op="${op}"
      data-user="${user.name}"
      data-testid="${op}"
    >
      ${label}<span class="sr"> ${user.name}</span>
    </button>`;
  if (user.status === 'revoked') return b('delete', 'Delete', 'danger');
  return html`${user.status === 'enabled' ? b('disable', 'Disable') : b('enable', 'Enable')}
  ${b('revoke', 'Revoke', 'danger')} ${b('delete', 'Delete', 'danger')}`;
}

function searchForm(data: UsersData): Html {
  return html`<form
    class="filters"
    method="get"
    action="/console/users"
    role="search"
    aria-label="Search users"
  >
    <div class="field">
      <label for="f-q">Search</label>
      <input
        id="f-q"
        name="q"
        type="search"
        value="${data.q}"
        placeholder="name, address or group"
        autocomplete="off"
      />
    </div>
    <div class="field">
      <label for="f-status">Status</label>
      <select id="f-status" name="status">
        <option value="" ${data.status === '' ? html` selected` : ''}>any</option>
        ${UserStatus.options.map(
          (st) =>
            html`<option value="${st}" ${data.status === st ? html` selected` : ''}>${st}</option>`,
        )}
      </select>
    </div>
    <div class="field">
      <label for="f-group">Group</label>
      <select id="f-group" name="group">
        <option value="" ${data.group === '' ? html` selected` : ''}>any</option>
        ${data.groups.map(
          (g) =>
            html`<option value="${g}" ${data.group === g ? html` selected` : ''}>${g}</option>`,
        )}
      </select>
    </div>
    <button type="submit">Search</button>
    <a href="/console/users">Clear</a>
  </form>`;
}

function adminForms(data: UsersData): Html {
  return html`<div class="forms">
    <form class="card" data-form="add-user" aria-labelledby="add-title">
      <h2 id="add-title">Add a user</h2>
      <div class="field">
        <label for="new-name">Name</label>
        <input
          id="new-name"
          name="name"
          required
          maxlength="64"
          pattern="[A-Za-z0-9][A-Za-z0-9._\\-]*"
          autocomplete="off"
          data-testid="new-user-name"
        />
      </div>
      ${
        data.groups.length
          ? html`<fieldset>
              <legend>Groups</legend>
              ${data.groups.map(
                (g, i) =>
                  html`<label class="check"
                    ><input type="checkbox" name="groups" value="${g}" id="new-group-${i}" />
                    ${g}</label
                  >`,
              )}
            </fieldset>`
          : html`<p class="muted">fleet.yaml defines no groups.</p>`
      }
      <button type="submit" data-testid="add-user">Add user</button>
    </form>
    <form class="card" data-form="import" aria-labelledby="import-title">
      <h2 id="import-title">Import from CSV</h2>
      <p class="muted">
        Rows of <code>name,groups</code>, groups separated by <code>;</code>. All rows or none.
      </p>
      <div class="field">
        <label for="import-file">CSV file</label>
        <input id="import-file" name="file" type="file" accept=".csv,text/csv" required />
      </div>
      <button type="submit">Import</button>
    </form>
  </div>`;
}

function bulkBar(): Html {
  return html`<form class="bulk" data-form="bulk" aria-label="Bulk action on the selected users">
    <label for="bulk-action">With the selected users</label>
    <select id="bulk-action" name="action">
      <option value="enable">enable</option>
      <option value="disable">disable</option>
      <option value="revoke">revoke</option>
      <option value="delete">delete</option>
    </select>
    <button type="submit" data-testid="bulk-apply">Apply</button>
  </form>`;
}

function pager(data: UsersData): Html {
  const pages = Math.max(1, Math.ceil(data.total / data.pageSize));
  const link = (p: number, label: string, rel: string) =>
    html`<a
      href="${`/console/users${query({ q: data.q, status: data.status, group: data.group, page: p })}`}"
      rel="${rel}"
      >${label}</a
    >`;
  return html`<nav class="pager" aria-label="Pages">
    ${data.page > 1 ? link(data.page - 1, '← Previous', 'prev') : ''}
    <span>Page ${data.page} of ${pages}</span>
    ${data.page < pages ? link(data.page + 1, 'Next →', 'next') : ''}
  </nav>`;
}

function usersTable(ctx: PageContext, data: UsersData): Html {
  const admin = may(ctx, 'admin');
  return html`<table class="data" data-testid="users">
    <thead>
      <tr>
        ${admin && html`<th scope="col"><input type="checkbox" data-select-all="sel" aria-label="Select every user on this page" /></th>`}
        <th scope="col">Name</th>
        <th scope="col">Status</th>
        <th scope="col">Online</th>
        <th scope="col">IPv4</th>
        <th scope="col">IPv6</th>
        <th scope="col">Groups</th>
        <th scope="col">Certificate expires</th>
        ${admin && html`<th scope="col">Actions</th>`}
      </tr>
    </thead>
    <tbody>
      ${data.users.map(
        (u) =>
          html`<tr data-testid="user-row" data-user="${u.name}">
            ${admin && html`<td><input type="checkbox" name="sel" value="${u.name}" aria-label="Select ${u.name}" /></td>`}
            <th scope="row"><a href="${path`/console/users/${u.name}`}">${u.name}</a></th>
            <td>${statusBadge(u.status)}</td>
            <td>
              ${data.online.has(u.name) ? badge('ok', 'online') : html`<span class="muted">offline</span>`}
            </td>
            <td><code>${u.ipv4}</code></td>
            <td><code>${u.ipv6}</code></td>
            <td>${u.groups.join(', ')}</td>
            <td>
              ${u.certNotAfter ? time(u.certNotAfter) : html`<span class="muted">not issued</span>`}
            </td>
            ${
              admin &&
              html`<td class="actions">
                ${userActions(u)}
                ${u.status !== 'revoked' && html`<a href="${path`/v1/users/${u.name}/profile`}" download="${`${u.name}.ovpn`}">Profile<span class="sr"> of ${u.name}</span></a>`}
              </td>`
            }
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export function usersPage(ctx: PageContext, data: UsersData): Page {
  const admin = may(ctx, 'admin');
  const first = (data.page - 1) * data.pageSize + 1;
  const last = first + data.users.length - 1;
  const live = html`<p class="summary" data-testid="summary">
      ${
        data.total === 0
          ? 'No user matches.'
          : `Users ${first}–${last} of ${data.total}${data.q ? ` matching “${data.q}”` : ''}${
              data.status ? `, ${data.status}` : ''
            }${data.group ? `, in ${data.group}` : ''}.`
      }
    </p>
    ${data.users.length > 0 && usersTable(ctx, data)} ${pager(data)}`;
  return {
    title: 'Users',
    section: 'users',
    controls: html`${searchForm(data)}${admin && adminForms(data)}${admin && bulkBar()}`,
    live,
    liveOn: ['fleet', 'sessions'],
  };
}
