/**
 * Application services: spec + store + PKI + renderers. The CLI commands (and later the
 * controller's API) are thin callers of this class; it owns no process or network I/O.
 */
import { randomBytes, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { type Document, isNode, isSeq, parseDocument } from 'yaml';
import { Conflict, InputError, NotFound, SpecError } from '../errors.js';
import { mustParsePrefix } from '../core/ip.js';
import { userNameProblem } from '../core/names.js';
import type { CrlInfo, IssuedCert } from '../core/pki.js';
import {
  type Bundle,
  type PinnedSnapshot,
  renderBundle,
  renderFleet,
  serverContexts,
} from '../render/bundle.js';
import { renderProfile } from '../render/profile.js';
import { DEFAULT_RENDER_OPTIONS, type RenderOptions, serverCommonName } from '../render/types.js';
import type { FleetSpec } from '../spec/schema.js';
import { type Validation, parseSpecText } from '../spec/validate.js';
import type {
  FleetStore,
  Pools,
  RevocationState,
  RevokedCert,
  User,
  UserStatus,
} from '../store/types.js';
import { writeFileAtomic } from '../sys/files.js';

/**
 * The PKI pulls in @peculiar/x509, which takes ~0.2 s to load: only commands that sign or read
 * certificates pay for it (`user list`, `lab status` and friends stay quick).
 */
const loadPki = () => import('../core/pki.js');

export const SPEC_FILE = 'fleet.yaml';
export const STORE_FILE = 'fleet.db';
/** fleet.yaml holds routing keys and BGP passwords: its owner's only. */
export const SPEC_FILE_MODE = 0o600;
/** Bound on re-signing a CRL that other writers keep replacing under us. */
const CRL_ATTEMPTS = 50;

export const VALIDITY = {
  caDays: 3650,
  serverDays: 825,
  userDays: 365,
  /** A CRL is valid this long; an expired CRL makes OpenVPN refuse every client. */
  crlDays: 30,
  /** …and is re-issued once less than this remains, long before anyone is locked out. */
  crlRenewDays: 15,
};

export interface AddUserRequest {
  name: string;
  groups?: string[];
  ipv4?: string;
  ipv6?: string;
}

export interface PkiStatusRow {
  kind: 'ca' | 'server' | 'client' | 'crl';
  subject: string;
  serial: string;
  notAfter: string;
  daysLeft: number;
  state: string;
}

export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

/** Who the audit log names for changes made from this process by default. */
export function actorName(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli';
  }
}

export class Fleet {
  /** Takes an open store: which implementation is the composition's choice (open.ts). */
  constructor(
    readonly dir: string,
    readonly spec: FleetSpec,
    readonly store: FleetStore,
    private readonly clock: Clock,
    private readonly actor: string,
  ) {}

  static specPath(dir: string): string {
    return join(dir, SPEC_FILE);
  }

  close(): void {
    this.store.close();
  }

  pools(): Pools {
    return {
      ipv4: mustParsePrefix(this.spec.pools.ipv4),
      ipv6: mustParsePrefix(this.spec.pools.ipv6),
      quarantineDays: this.spec.pools.quarantineDays,
    };
  }

  /** Validates fleet.yaml against the store's contents (the pool must hold every user). */
  validate(): Validation {
    const text = readFileSync(Fleet.specPath(this.dir), 'utf8');
    return parseSpecText(text, {
      addressesHeld: this.store.addressesHeld(this.pools(), this.clock.now()),
    });
  }

  // ---- PKI ----

  async ensurePki(): Promise<void> {
    const now = this.clock.now();
    if (!this.store.getCa()) {
      const { createCa } = await loadPki();
      const ca = await createCa({ fleet: this.spec.fleet, now, validDays: VALIDITY.caDays });
      this.store.putCert({
        serial: ca.serial,
        kind: 'ca',
        subject: `${this.spec.fleet} VPN CA`,
        notAfter: ca.notAfter.toISOString(),
        certPem: ca.certPem,
        keyPem: ca.keyPem,
      });
    }
    if (!this.store.getSetting('tls-crypt.key'))
      this.store.setSetting(
        'tls-crypt.key',
        (await loadPki()).generateTlsCryptKey((n) => randomBytes(n)),
      );
    if (!this.store.getSetting('management.secret'))
      this.store.setSetting('management.secret', randomBytes(32).toString('hex'));
    for (const site of this.spec.sites) {
      for (const server of site.servers) {
        if (this.store.serverCert(server.name)) continue;
        const cert = await (
          await loadPki()
        ).issueCertificate(this.caPair(), {
          kind: 'server',
          commonName: serverCommonName(this.spec.fleet, server.name),
          now,
          validDays: VALIDITY.serverDays,
        });
        this.store.putCert({
          serial: cert.serial,
          kind: 'server',
          subject: server.name,
          notAfter: cert.notAfter.toISOString(),
          certPem: cert.certPem,
          keyPem: cert.keyPem,
        });
      }
    }
    await this.ensureCrl();
  }

  private caPair(): { certPem: string; keyPem: string } {
    const ca = this.store.getCa();
    if (!ca) throw new NotFound('no CA in the store: run "ovpn-fleet init"');
    return { certPem: ca.certPem, keyPem: ca.keyPem };
  }

  /**
   * Issues a new CRL when forced, when none exists, when its nextUpdate is getting close, or
   * when its serials differ from the store's revoked certificates (so any snapshot heals a CRL
   * that missed a revocation). Signing is async (WebCrypto) and SQLite transactions are not,
   * so the CRL is signed from a snapshot and written only if, inside the write transaction,
   * the revoked set and the CRL number are still those it was signed from; otherwise another
   * writer got there first and we look again. CRL numbers therefore only ever increase.
   */
  async ensureCrl(force = false): Promise<string> {
    const pki = await loadPki();
    for (let attempt = 1; ; attempt++) {
      const now = this.clock.now();
      const seen = this.store.revocationState();
      if (seen.crlPem && !force && crlIsCurrent(pki.crlInfo(seen.crlPem), seen, now))
        return seen.crlPem;
      const number = seen.crlNumber + 1;
      const pem = await pki.createCrl(this.caPair(), {
        revoked: seen.revoked.map((r) => ({ serial: r.serial, revokedAt: new Date(r.revokedAt) })),
        now,
        nextUpdateDays: VALIDITY.crlDays,
        crlNumber: number,
      });
      const written = this.store.transaction(() => {
        const latest = this.store.revocationState();
        if (latest.crlNumber !== seen.crlNumber || !sameRevoked(latest.revoked, seen.revoked))
          return false;
        this.store.setSetting('crl.pem', pem);
        this.store.setSetting('crl.number', String(number));
        return true;
      });
      if (written) return pem;
      // Whatever the other writer signed may already cover what we were forced for.
      force = false;
      if (attempt >= CRL_ATTEMPTS)
        throw new Conflict(`crl: still changing under us after ${CRL_ATTEMPTS} attempts`);
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }

  // ---- users ----

  private checkGroups(groups: string[], field = 'group'): void {
    const known = new Set(this.spec.groups.map((g) => g.name));
    for (const g of groups) {
      if (!known.has(g)) {
        throw new InputError(
          field,
          `unknown group "${g}" (groups in ${SPEC_FILE}: ${[...known].join(', ') || 'none'})`,
        );
      }
    }
  }

  /**
   * Adds users in one transaction. With `issueCerts` (the default for `user add`) each gets a
   * client certificate now; a bulk import defers them to the user's first profile (or
   * `pki issue`), because signing costs milliseconds per user and most of an import never
   * needs a profile the same day.
   */
  async addUsers(reqs: AddUserRequest[], opts: { issueCerts?: boolean } = {}): Promise<User[]> {
    const seen = new Set<string>();
    for (const r of reqs) {
      const problem = this.userNameProblem(r.name);
      if (problem) throw new InputError('name', problem);
      if (seen.has(r.name)) throw new InputError('name', `user ${r.name} appears twice`);
      seen.add(r.name);
      this.checkGroups(r.groups ?? []);
      if (this.store.getUser(r.name)) throw new Conflict(`user ${r.name} already exists`);
    }
    const now = this.clock.now();
    // Certificates are made before the transaction: WebCrypto is async, SQLite's is not.
    const certs =
      opts.issueCerts === false
        ? []
        : await this.issueClientCerts(
            reqs.map((r) => r.name),
            now,
          );
    return this.store.createUsers(
      reqs.map((r, i) => ({
        name: r.name,
        groups: r.groups ?? [],
        ...(r.ipv4 !== undefined ? { ipv4: r.ipv4 } : {}),
        ...(r.ipv6 !== undefined ? { ipv6: r.ipv6 } : {}),
        ...(certs[i] ? { cert: certs[i] } : {}),
      })),
      this.pools(),
      now,
      this.actor,
    );
  }

  /** Signs a few at a time so both cores work. */
  private async issueClientCerts(names: string[], now: Date): Promise<IssuedCert[]> {
    const { issueCertificate } = await loadPki();
    const ca = this.caPair();
    const out: IssuedCert[] = [];
    const BATCH = 64;
    for (let i = 0; i < names.length; i += BATCH) {
      const issued = await Promise.all(
        names
          .slice(i, i + BATCH)
          .map((commonName) =>
            issueCertificate(ca, { kind: 'client', commonName, now, validDays: VALIDITY.userDays }),
          ),
      );
      out.push(...issued);
    }
    return out;
  }

  /**
   * Issues certificates for the given users (default: every enabled user without one). The
   * check that a user still has none is made again inside the write transaction that attaches
   * it, so concurrent callers (two CLI processes, the controller's parallel requests) attach at
   * most one certificate per user; a certificate that lost the race is stored revoked and the
   * CRL re-issued. Within one process issuance is also serialised per user, so the losers are
   * rare and cost no signing. Returns how many certificates were attached.
   */
  async issueMissingCerts(names?: string[]): Promise<number> {
    const targets = names ?? this.store.usersWithoutCert();
    for (const n of targets) this.getUser(n);
    return serialisedPerUser(this.store, targets, async () => {
      const todo = targets.filter((n) => {
        const u = this.store.getUser(n);
        return u !== undefined && !u.certSerial && u.status !== 'revoked';
      });
      if (todo.length === 0) return 0;
      const now = this.clock.now();
      const certs = await this.issueClientCerts(todo, now);
      const attached = this.store.transaction(
        () =>
          todo.filter((n, i) => this.store.attachCertIfNone(n, certs[i], now, this.actor).attached)
            .length,
      );
      if (attached < todo.length) await this.ensureCrl(true);
      return attached;
    });
  }

  /** CSV with a header `name,groups`; groups separated by ";". All rows or none. */
  async importCsv(text: string, file = 'import.csv'): Promise<User[]> {
    const lines = text.split(/\r?\n/);
    const reqs: AddUserRequest[] = [];
    let headerSeen = false;
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith('#')) return;
      const cells = line.split(',').map((c) => c.trim());
      if (!headerSeen && cells[0].toLowerCase() === 'name') {
        headerSeen = true;
        return;
      }
      headerSeen = true;
      if (cells.length > 2)
        throw new InputError(
          `${file}:${i + 1}`,
          `expected "name,groups", got ${cells.length} fields`,
        );
      const groups = (cells[1] ?? '')
        .split(';')
        .map((g) => g.trim())
        .filter(Boolean);
      const problem = this.userNameProblem(cells[0]);
      if (problem) throw new InputError(`${file}:${i + 1}`, problem);
      try {
        this.checkGroups(groups);
      } catch (err) {
        if (err instanceof InputError)
          throw new InputError(`${file}:${i + 1}`, err.message.replace(/^group: /, ''));
        throw err;
      }
      reqs.push({ name: cells[0], groups });
    });
    if (reqs.length === 0) throw new InputError(file, 'no users in file');
    return this.addUsers(reqs, { issueCerts: false });
  }

  /**
   * The general name rules, and no name in the servers' certificate namespace: a client whose
   * CN equals a server's would share its ccd file name and its identity in every log. The
   * whole `<fleet>-server-` prefix is refused, so that a server added later cannot collide.
   */
  private userNameProblem(name: string): string | undefined {
    const general = userNameProblem(name);
    if (general) return general;
    const prefix = serverCommonName(this.spec.fleet, '').toLowerCase();
    if (name.toLowerCase().startsWith(prefix))
      return `"${name}" is reserved: names starting with "${prefix}" are server certificate names`;
    return undefined;
  }

  listUsers(): User[] {
    return this.store.listUsers();
  }

  getUser(name: string): User {
    const problem = userNameProblem(name);
    if (problem) throw new InputError('name', problem);
    const u = this.store.getUser(name);
    if (!u) throw new NotFound(`no user named ${name}`);
    return u;
  }

  async setStatus(name: string, status: UserStatus): Promise<User> {
    this.getUser(name);
    const now = this.clock.now();
    const user = this.store.transaction(() => {
      const changed = this.store.setStatus(name, status, now, this.actor);
      if (status === 'revoked') this.store.revokeClientCerts(name, now);
      return changed;
    });
    if (status === 'revoked') await this.ensureCrl(true);
    return user;
  }

  setGroups(name: string, groups: string[]): User {
    this.getUser(name);
    this.checkGroups(groups);
    return this.store.setGroups(name, groups, this.clock.now(), this.actor);
  }

  /**
   * Deletes the user, revokes every certificate ever issued under the name (a user added again
   * later under the same name must not be reachable with any of them) and keeps the addresses
   * in quarantine.
   */
  async deleteUser(name: string): Promise<User> {
    this.getUser(name);
    const now = this.clock.now();
    const user = this.store.transaction(() => {
      const deleted = this.store.deleteUser(name, now, this.actor);
      this.store.revokeClientCerts(name, now);
      return deleted;
    });
    await this.ensureCrl(true);
    return user;
  }

  // ---- groups (declared in fleet.yaml, where the policy refers to them) ----

  addGroup(name: string, description?: string): void {
    if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) {
      throw new InputError(
        'group',
        `"${name}" is not a valid group name: lower-case letters, digits and "-", starting with a letter`,
      );
    }
    if (this.spec.groups.some((g) => g.name === name))
      throw new Conflict(`group ${name} already exists`);
    const path = Fleet.specPath(this.dir);
    const original = readFileSync(path, 'utf8');
    const doc = parseDocument(original);
    const entry = description ? { name, description } : { name };
    let text = appendToBlockSequence(
      original,
      doc,
      'groups',
      `{ name: ${name}${description ? `, description: ${JSON.stringify(description)}` : ''} }`,
    );
    if (text === undefined) {
      if (doc.has('groups')) doc.addIn(['groups'], doc.createNode(entry, { flow: true }));
      else doc.set('groups', [entry]);
      text = doc.toString();
    }
    const v = parseSpecText(text);
    if (!v.spec) throw new SpecError(v.errors, path);
    writeFileAtomic(path, text, SPEC_FILE_MODE);
    this.store.audit({
      at: this.clock.now().toISOString(),
      actor: this.actor,
      action: 'group.add',
      subject: name,
    });
  }

  listGroups(): { name: string; description?: string; members: number }[] {
    const counts = new Map<string, number>();
    for (const u of this.store.listUsers())
      for (const g of u.groups) counts.set(g, (counts.get(g) ?? 0) + 1);
    return this.spec.groups.map((g) => ({ ...g, members: counts.get(g.name) ?? 0 }));
  }

  // ---- output ----

  /**
   * `anyStatus` is for the lab, which must show that a revoked or disabled user's existing
   * profile is refused by the servers.
   */
  async profile(name: string, opts: { anyStatus?: boolean } = {}): Promise<string> {
    let user = this.getUser(name);
    if (user.status !== 'enabled' && !opts.anyStatus)
      throw new Conflict(`user ${name} is ${user.status}: no profile is issued`);
    if (!user.certSerial && user.status === 'enabled') {
      await this.issueMissingCerts([name]);
      user = this.getUser(name);
    }
    const cert = user.certSerial ? this.store.getCert(user.certSerial) : undefined;
    if (!cert) throw new NotFound(`user ${name} has no certificate`);
    return renderProfile({
      spec: this.spec,
      user: name,
      caPem: this.caPair().certPem,
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      tlsCryptKey: this.mustSetting('tls-crypt.key'),
    });
  }

  private mustSetting(key: string): string {
    const v = this.store.getSetting(key);
    if (v === undefined) throw new NotFound(`store has no ${key}: run "ovpn-fleet init"`);
    return v;
  }

  managementPassword(server: string): string {
    return createHmac('sha256', this.mustSetting('management.secret'))
      .update(`management:${server}`)
      .digest('hex')
      .slice(0, 32);
  }

  /**
   * The bearer token of one server's agent: HMAC of a fleet secret (created on first use) and
   * the server name, so the controller can check it without storing one token per server.
   */
  agentToken(server: string): string {
    if (!this.serverNames().includes(server))
      throw new NotFound(`no server named ${server} in ${SPEC_FILE}`);
    let secret = this.store.getSetting('agent.secret');
    if (secret === undefined) {
      secret = this.store.transaction(() => {
        const existing = this.store.getSetting('agent.secret');
        if (existing !== undefined) return existing;
        const fresh = randomBytes(32).toString('hex');
        this.store.setSetting('agent.secret', fresh);
        return fresh;
      });
    }
    return createHmac('sha256', secret).update(`agent:${server}`).digest('hex');
  }

  /** Every server of fleet.yaml, in file order. */
  serverNames(): string[] {
    return this.spec.sites.flatMap((site) => site.servers.map((s) => s.name));
  }

  /** The same store, clock and actor with another (already validated) spec: a reloaded fleet.yaml. */
  withSpec(spec: FleetSpec): Fleet {
    return new Fleet(this.dir, spec, this.store, this.clock, this.actor);
  }

  /** Every server's bundle from one snapshot, each with its own base directory. */
  async bundlesFor(
    baseDir: (server: string) => string,
    options: Partial<Omit<RenderOptions, 'baseDir'>> = {},
  ): Promise<Bundle[]> {
    return renderFleet(
      this.spec,
      await this.snapshot(),
      { ...DEFAULT_RENDER_OPTIONS, ...options },
      baseDir,
    );
  }

  async snapshot(): Promise<PinnedSnapshot> {
    await this.ensurePki();
    const servers = new Map<
      string,
      { certPem: string; keyPem: string; managementPassword: string }
    >();
    for (const site of this.spec.sites) {
      for (const s of site.servers) {
        const cert = this.store.serverCert(s.name)!;
        servers.set(s.name, {
          certPem: cert.certPem,
          keyPem: cert.keyPem,
          managementPassword: this.managementPassword(s.name),
        });
      }
    }
    return {
      users: this.store.listUsers().map((u) => ({
        name: u.name,
        ipv4: u.ipv4,
        ipv6: u.ipv6,
        groups: u.groups,
        enabled: u.status === 'enabled',
        certSerials: u.certSerial ? [u.certSerial] : [],
      })),
      caPem: this.caPair().certPem,
      crlPem: await this.ensureCrl(),
      tlsCryptKey: this.mustSetting('tls-crypt.key'),
      servers,
    };
  }

  async bundles(options: Partial<RenderOptions> = {}): Promise<Bundle[]> {
    return renderFleet(this.spec, await this.snapshot(), { ...DEFAULT_RENDER_OPTIONS, ...options });
  }

  /** One server's bundle. */
  async bundle(server: string, options: Partial<RenderOptions> = {}): Promise<Bundle> {
    const ctx = serverContexts(this.spec, { ...DEFAULT_RENDER_OPTIONS, ...options }).find(
      (c) => c.server.name === server,
    );
    if (!ctx) throw new NotFound(`no server named ${server} in ${SPEC_FILE}`);
    return renderBundle(ctx, await this.snapshot());
  }

  async pkiStatus(): Promise<PkiStatusRow[]> {
    const { crlInfo } = await loadPki();
    const now = this.clock.now().getTime();
    const days = (iso: string) => Math.floor((new Date(iso).getTime() - now) / 86_400_000);
    const state = (d: number, warnDays: number, revoked?: string) =>
      revoked ? 'revoked' : d < 0 ? 'EXPIRED' : d < warnDays ? 'renew soon' : 'ok';
    const rows: PkiStatusRow[] = this.store.listCerts().map((c) => {
      const d = days(c.notAfter);
      return {
        kind: c.kind,
        subject: c.subject,
        serial: c.serial,
        notAfter: c.notAfter,
        daysLeft: d,
        state: state(d, 30, c.revokedAt),
      };
    });
    const crl = this.store.getSetting('crl.pem');
    if (crl) {
      const info = crlInfo(crl);
      const next = info.nextUpdate?.toISOString() ?? '';
      const d = days(next);
      rows.push({
        kind: 'crl',
        subject: `${info.revokedSerials.length} revoked`,
        serial: String(info.crlNumber ?? ''),
        notAfter: next,
        daysLeft: d,
        state: state(d, VALIDITY.crlRenewDays),
      });
    }
    return rows;
  }
}

/**
 * Appends `item` to the top-level block sequence `key` as a text edit, so the rest of the file
 * keeps its layout (re-serialising the document would re-space every flow map and comment).
 * Undefined when the sequence is missing, empty or written in flow style.
 */
function appendToBlockSequence(
  text: string,
  doc: Document,
  key: string,
  item: string,
): string | undefined {
  const seq = doc.get(key, true);
  if (!isSeq(seq) || seq.flow || seq.items.length === 0) return undefined;
  const first = seq.items[0];
  const last = seq.items[seq.items.length - 1];
  if (!isNode(first) || !isNode(last) || !first.range || !last.range) return undefined;
  const lineStart = text.lastIndexOf('\n', first.range[0] - 1) + 1;
  const dash = text.slice(lineStart, first.range[0]);
  if (!/^ *- +$/.test(dash)) return undefined;
  const eol = text.indexOf('\n', last.range[1]);
  const at = eol === -1 ? text.length : eol;
  return `${text.slice(0, at)}\n${dash}${item}${text.slice(at)}`;
}

/** Whether a CRL lists exactly the store's revoked serials and is far from its nextUpdate. */
function crlIsCurrent(info: CrlInfo, state: RevocationState, now: Date): boolean {
  const left = (info.nextUpdate?.getTime() ?? 0) - now.getTime();
  if (left <= VALIDITY.crlRenewDays * 86_400_000) return false;
  if (info.crlNumber !== state.crlNumber) return false;
  const listed = [...info.revokedSerials].sort();
  const stored = state.revoked.map((r) => r.serial).sort();
  return listed.length === stored.length && listed.every((s, i) => s === stored[i]);
}

function sameRevoked(a: RevokedCert[], b: RevokedCert[]): boolean {
  return (
    a.length === b.length &&
    a.every((r, i) => r.serial === b[i].serial && r.revokedAt === b[i].revokedAt)
  );
}

/**
 * In-process queue of certificate issuance per user, keyed by store so that Fleet objects
 * sharing one store (withSpec) share it; other processes are kept out by the transaction.
 */
const issuance = new WeakMap<FleetStore, Map<string, Promise<unknown>>>();

async function serialisedPerUser<T>(
  store: FleetStore,
  names: string[],
  fn: () => Promise<T>,
): Promise<T> {
  let queue = issuance.get(store);
  if (!queue) issuance.set(store, (queue = new Map<string, Promise<unknown>>()));
  const ahead = [...new Set(names)].flatMap((n) => queue.get(n) ?? []);
  const run = Promise.allSettled(ahead).then(fn);
  const done = run.catch(() => undefined);
  for (const n of names) queue.set(n, done);
  try {
    return await run;
  } finally {
    for (const n of names) if (queue.get(n) === done) queue.delete(n);
  }
}
