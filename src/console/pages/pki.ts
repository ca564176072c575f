/**
 * PKI: the CA, server and user certificates sorted by expiry (soonest first), the CRL's next
 * update and the revoked certificates. Never a key: only subjects, serials and dates.
 */
import { type Html, html, path } from '../html.js';
import type { Page, PageContext } from '../layout.js';
import { badge, daysUntil, time } from './format.js';

export interface CertRow {
  kind: 'ca' | 'server' | 'client';
  subject: string;
  serial: string;
  notAfter: string;
  revokedAt?: string;
  /** CAs: their place in a rollover (next, active, retiring, retired). */
  caState?: string;
}

export interface PkiData {
  certs: CertRow[];
  crl?: { nextUpdate?: string; number?: number };
  revoked: { serial: string; revokedAt: string; subject?: string }[];
  /** At most this many certificates are listed (the soonest to expire). */
  limit: number;
}

const KIND: Record<CertRow['kind'], string> = { ca: 'CA', server: 'server', client: 'user' };

function expiry(ctx: PageContext, c: CertRow): Html {
  if (c.revokedAt) return badge('off', 'revoked');
  const d = daysUntil(ctx.now, c.notAfter);
  if (c.caState && c.caState !== 'active')
    return badge(c.caState === 'retired' ? 'off' : 'warn', `${c.caState} CA, ${d} days left`);
  if (d < 0) return badge('bad', 'EXPIRED');
  if (d < 30) return badge('warn', `${d} days left`);
  return badge('ok', `${d} days left`);
}

function subject(c: CertRow): Html | string {
  return c.kind === 'client'
    ? html`<a href="${path`/console/users/${c.subject}`}">${c.subject}</a>`
    : c.subject;
}

export function pkiPage(ctx: PageContext, data: PkiData): Page {
  const sorted = [...data.certs].sort(
    (a, b) =>
      Number(Boolean(a.revokedAt)) - Number(Boolean(b.revokedAt)) ||
      a.notAfter.localeCompare(b.notAfter),
  );
  const shown = sorted.slice(0, data.limit);
  const crl = data.crl;
  const crlDays = crl?.nextUpdate ? daysUntil(ctx.now, crl.nextUpdate) : undefined;
  const body = html`<section aria-labelledby="crl-title">
      <h2 id="crl-title">Certificate revocation list</h2>
      ${
        crl?.nextUpdate && crlDays !== undefined
          ? html`<p data-testid="crl">
              CRL ${crl.number !== undefined ? html`#${crl.number}` : ''} next update
              ${time(crl.nextUpdate)}
              ${badge(crlDays < 0 ? 'bad' : crlDays < 7 ? 'warn' : 'ok', crlDays < 0 ? 'EXPIRED' : `${crlDays} days left`)};
              the controller re-issues it 15 days before.
            </p>`
          : html`<p>${badge('bad', 'no CRL')} The store holds no CRL yet.</p>`
      }
    </section>
    <section aria-labelledby="certs-title">
      <h2 id="certs-title">Certificates by expiry</h2>
      <p class="summary">
        ${sorted.length}
        certificates${sorted.length > shown.length ? `; the ${shown.length} that expire first` : ''}.
      </p>
      <table class="data" data-testid="certs">
        <thead>
          <tr>
            <th scope="col">Kind</th>
            <th scope="col">Subject</th>
            <th scope="col">Serial</th>
            <th scope="col">Expires</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          ${shown.map(
            (c) =>
              html`<tr>
                <td>${KIND[c.kind]}</td>
                <td>${subject(c)}</td>
                <td><code>${c.serial}</code></td>
                <td>${time(c.notAfter)}</td>
                <td>${expiry(ctx, c)}</td>
              </tr>`,
          )}
        </tbody>
      </table>
    </section>
    <section aria-labelledby="revoked-title">
      <h2 id="revoked-title">Revoked</h2>
      ${
        data.revoked.length
          ? html`<table class="data" data-testid="revoked">
              <thead>
                <tr>
                  <th scope="col">Serial</th>
                  <th scope="col">Subject</th>
                  <th scope="col">Revoked at</th>
                </tr>
              </thead>
              <tbody>
                ${data.revoked.map(
                  (r) =>
                    html`<tr>
                      <td><code>${r.serial}</code></td>
                      <td>${r.subject ?? ''}</td>
                      <td>${time(r.revokedAt)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
          : html`<p>No certificate is revoked.</p>`
      }
    </section>`;
  return { title: 'PKI', section: 'pki', live: body, liveOn: ['fleet'] };
}
