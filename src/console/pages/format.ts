/** Small formatters the pages share: times, ages, byte counts, health words. */
import { type Html, html } from '../html.js';

/** "2024-05-01 12:00:00Z" from an ISO time: sortable, unambiguous, one zone. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** A `<time>` element showing `when(iso)`. */
export function time(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="muted">—</span>`;
  return html`<time datetime="${iso}">${when(iso)}</time>`;
}

/** "5 s", "3 min", "2 h", "4 d": how long ago (or "in …" for the future). */
export function age(now: Date, iso: string | null | undefined): string {
  if (!iso) return 'never';
  const ms = now.getTime() - new Date(iso).getTime();
  if (Number.isNaN(ms)) return iso;
  const s = Math.round(Math.abs(ms) / 1000);
  const text =
    s < 90
      ? `${s} s`
      : s < 5400
        ? `${Math.round(s / 60)} min`
        : s < 172_800
          ? `${Math.round(s / 3600)} h`
          : `${Math.round(s / 86_400)} d`;
  return ms >= 0 ? `${text} ago` : `in ${text}`;
}

/** Whole days from now until `iso` (negative once past). */
export function daysUntil(now: Date, iso: string): number {
  return Math.floor((new Date(iso).getTime() - now.getTime()) / 86_400_000);
}

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

export function bytes(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1000 && u < UNITS.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(v < 10 ? 1 : 0)} ${UNITS[u]}`;
}

/** A state shown as a word with a class for its colour: never colour alone. */
export function badge(kind: 'ok' | 'bad' | 'warn' | 'off', text: string): Html {
  return html`<span class="badge badge-${kind}">${text}</span>`;
}

export function upDown(up: boolean | undefined): Html {
  if (up === undefined) return badge('off', 'unknown');
  return up ? badge('ok', 'up') : badge('bad', 'DOWN');
}

/** First characters of a digest: enough to compare by eye. */
export function shortDigest(digest: string | null | undefined): string {
  return digest ? digest.slice(0, 12) : '—';
}

/** One line saying the data is not there yet, and why. */
export function unavailable(what: string): Html {
  return html`<p class="notice" data-testid="unavailable">${what}</p>`;
}
