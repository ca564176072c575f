/**
 * Schema migrations of both engines, from this one definition: forward-only, versioned by their
 * position, applied at start in order, each in its own transaction (SQLite: PRAGMA user_version
 * holds the number applied; PostgreSQL: the schema_migrations table). Never edit a shipped
 * migration: add a new one.
 *
 * Written in SQLite's dialect; postgresDdl() (sql.ts) turns it into PostgreSQL's with three
 * visible rules (INTEGER PRIMARY KEY → identity, INTEGER → BIGINT, TEXT → TEXT COLLATE "C").
 * Quote `"user"`: a bare `user` is CURRENT_USER in PostgreSQL.
 */
export const MIGRATIONS: string[] = [
  // 1 (certs first: PostgreSQL checks that a REFERENCES target exists when the table is made)
  `
  CREATE TABLE certs (
    serial     TEXT PRIMARY KEY,
    kind       TEXT NOT NULL CHECK (kind IN ('ca', 'server', 'client')),
    subject    TEXT NOT NULL,
    not_after  TEXT NOT NULL,
    cert_pem   TEXT NOT NULL,
    key_pem    TEXT NOT NULL,
    revoked_at TEXT
  );
  CREATE INDEX certs_kind_subject ON certs(kind, subject);
  CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    ipv4        TEXT NOT NULL UNIQUE,
    ipv6        TEXT NOT NULL UNIQUE,
    status      TEXT NOT NULL CHECK (status IN ('enabled', 'disabled', 'revoked')),
    cert_serial TEXT REFERENCES certs(serial),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
  );
  CREATE TABLE user_groups (
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    group_name TEXT NOT NULL,
    PRIMARY KEY (user_id, group_name)
  );
  CREATE INDEX user_groups_group ON user_groups(group_name);
  -- Addresses of deleted users, kept out of use until the quarantine ends.
  CREATE TABLE released_addresses (
    address     TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL,
    released_at TEXT NOT NULL
  );
  CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
  CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT
  );
  `,
  // 2: the controller's view of the servers: live sessions as last reported by each agent, and
  // per-server state (drain flag, last health, applied bundle digest).
  `
  CREATE TABLE sessions (
    server       TEXT NOT NULL,
    "user"       TEXT NOT NULL,
    real_address TEXT NOT NULL,
    ipv4         TEXT,
    ipv6         TEXT,
    since        TEXT NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    client_id    INTEGER NOT NULL,
    reported_at  TEXT NOT NULL,
    PRIMARY KEY (server, "user", since)
  );
  CREATE INDEX sessions_user ON sessions("user");
  CREATE TABLE servers (
    name          TEXT PRIMARY KEY,
    draining      INTEGER NOT NULL DEFAULT 0,
    health        TEXT,
    bundle_digest TEXT,
    reported_at   TEXT
  );
  `,
  // 3: when the controller first saw each session. OpenVPN's "connected since" has one-second
  // resolution: a user who moves within the same second has two sessions with equal `since`,
  // and only the order in which they were first reported tells the newer one.
  `
  ALTER TABLE sessions ADD COLUMN first_seen TEXT;
  `,
  // 4: the location history (one row per session a user had, closed with why it ended), seeded
  // with the sessions live now; and each server's host routes as its agent last reported them
  // (JSON {ipv4, ipv6}), kept in the store so that any controller can show them.
  `
  CREATE TABLE session_history (
    id           INTEGER PRIMARY KEY,
    "user"       TEXT NOT NULL,
    server       TEXT NOT NULL,
    real_address TEXT NOT NULL,
    ipv4         TEXT,
    ipv6         TEXT,
    since        TEXT NOT NULL,
    client_id    INTEGER NOT NULL,
    until        TEXT,
    bytes_in     INTEGER NOT NULL DEFAULT 0,
    bytes_out    INTEGER NOT NULL DEFAULT 0,
    reason       TEXT CHECK (reason IN ('disconnect', 'eviction', 'revoke', 'disable', 'delete',
                                        'drain', 'killed', 'server-lost')),
    UNIQUE (server, "user", since, client_id)
  );
  CREATE INDEX session_history_user ON session_history("user", since);
  CREATE INDEX session_history_until ON session_history(until) WHERE until IS NOT NULL;
  INSERT INTO session_history ("user", server, real_address, ipv4, ipv6, since, client_id, bytes_in, bytes_out)
    SELECT "user", server, real_address, ipv4, ipv6, since, client_id, bytes_in, bytes_out FROM sessions;
  ALTER TABLE servers ADD COLUMN routes TEXT;
  `,
  // 5 (users search, audit filters and sinks): indexes for the console's user search and the
  // audit filters, and audit ids that are never reused. Without AUTOINCREMENT SQLite hands out
  // max(id)+1, so after a retention prune that empties the table ids would start again at 1 and
  // an audit sink that remembers "shipped up to id N" would skip the new entries.
  `
  CREATE TABLE audit_v4 (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT
  );
  INSERT INTO audit_v4 (id, at, actor, action, subject, detail)
    SELECT id, at, actor, action, subject, detail FROM audit;
  DROP TABLE audit;
  ALTER TABLE audit_v4 RENAME TO audit;
  CREATE INDEX IF NOT EXISTS audit_actor ON audit(actor, id);
  CREATE INDEX IF NOT EXISTS audit_subject ON audit(subject, id);
  CREATE INDEX IF NOT EXISTS audit_action ON audit(action, id);
  CREATE INDEX IF NOT EXISTS audit_at ON audit(at);
  CREATE INDEX IF NOT EXISTS users_created ON users(created_at, name);
  CREATE INDEX IF NOT EXISTS users_status ON users(status, name);
  `,
  // 6: admin accounts of the console and the API, and their sign-in sessions. A session row is
  // keyed by the SHA-256 of the cookie's value: whoever reads the store (a backup, a copy of
  // the file) learns no cookie that signs in. Deleting an admin takes its sessions with it.
  `
  CREATE TABLE admins (
    name                 TEXT PRIMARY KEY,
    role                 TEXT NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    password_hash        TEXT NOT NULL,
    must_change_password INTEGER NOT NULL DEFAULT 0,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL,
    password_changed_at  TEXT NOT NULL
  );
  CREATE TABLE admin_sessions (
    id_sha256    TEXT PRIMARY KEY,
    admin        TEXT NOT NULL REFERENCES admins(name) ON DELETE CASCADE,
    csrf_token   TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    address      TEXT
  );
  CREATE INDEX admin_sessions_admin ON admin_sessions(admin);
  `,
  // 7 (certificate lifecycle): which CA signed each certificate (the CRL it belongs in, the CA
  // it keeps alive), when it was signed (the newest server certificate is the current one) and
  // first handed out in a profile (a renewed certificate not yet picked up), and each CA's
  // place in a rollover. Rows from before are the one CA's: it is active and signed them all.
  `
  ALTER TABLE certs ADD COLUMN issuer TEXT;
  ALTER TABLE certs ADD COLUMN issued_at TEXT;
  ALTER TABLE certs ADD COLUMN delivered_at TEXT;
  ALTER TABLE certs ADD COLUMN ca_state TEXT
    CHECK (ca_state IS NULL OR ca_state IN ('next', 'active', 'retiring', 'retired'));
  UPDATE certs SET ca_state = 'active' WHERE kind = 'ca';
  UPDATE certs SET issuer = (SELECT c.serial FROM certs c WHERE c.kind = 'ca' ORDER BY c.not_after DESC LIMIT 1)
    WHERE kind <> 'ca';
  CREATE INDEX certs_issuer ON certs(issuer);
  `,
  // 8 (rolling restarts): the controller's rollouts, so that one survives a controller restart
  // (its steps as JSON: one small row per rollout, rewritten at each step), and each server's
  // restart generation, which only ever grows: an agent restarts OpenVPN when its directive's
  // generation passes the one it carried out last.
  `
  CREATE TABLE rollouts (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    strategy   TEXT NOT NULL CHECK (strategy IN ('rolling', 'all-at-once')),
    status     TEXT NOT NULL CHECK (status IN ('running', 'paused', 'failed', 'done', 'aborted')),
    started_by TEXT NOT NULL,
    started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    steps      TEXT NOT NULL,
    detail     TEXT
  );
  CREATE TABLE restart_generations (
    server     TEXT PRIMARY KEY,
    generation INTEGER NOT NULL CHECK (generation >= 0)
  );
  `,
  // 9 (connect-time TOTP): each user's TOTP secret, sealed with AES-256-GCM under a key in the
  // settings (a row read alone, in a log or a dump of this table, gives no code), confirmed by
  // a first code, with the last time step accepted so that a code is used once; and the user's
  // recovery codes, only their SHA-256, each usable once. A user deleted takes them along.
  `
  CREATE TABLE user_totp (
    user_name    TEXT PRIMARY KEY REFERENCES users(name) ON DELETE CASCADE,
    secret       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    confirmed_at TEXT,
    last_step    INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE user_totp_recovery (
    user_name   TEXT NOT NULL REFERENCES user_totp(user_name) ON DELETE CASCADE,
    code_sha256 TEXT NOT NULL,
    used_at     TEXT,
    PRIMARY KEY (user_name, code_sha256)
  );
  `,
  // 10 (SSO at connect): web sign-ins in progress, in the store because several controllers
  // share it and the browser's callback may land on another controller than the one that began.
  // `id` is the capability in the start URL; `state` is set when the browser starts, unique so
  // the callback finds its row; `finished_at` is set once (a replayed callback finds it set);
  // `result` is the outcome as JSON, for the controller that began it to hand to its waiters.
  `
  CREATE TABLE sso_sign_ins (
    id             TEXT PRIMARY KEY,
    request_id     TEXT NOT NULL,
    "user"         TEXT NOT NULL,
    server         TEXT NOT NULL,
    remote         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    state          TEXT UNIQUE,
    nonce          TEXT,
    code_verifier  TEXT,
    browser_sha256 TEXT,
    started_at     TEXT,
    finished_at    TEXT,
    result         TEXT
  );
  CREATE INDEX sso_sign_ins_created ON sso_sign_ins(created_at);
  `,
  // 11 (rollouts across controllers): what each server's agent last said about OpenVPN restarts,
  // with its health, so the leader sees a restart reported to another controller. JSON of the
  // report's `restart`; the JSON null when its last report had none (an agent older than
  // rollouts); SQL NULL when no report has come since this column exists.
  `
  ALTER TABLE servers ADD COLUMN restart TEXT;
  `,
  // 12 (groups from the identity provider): the groups a user's last successful SSO sign-in
  // gave (ours, after auth.sso.groupMap; JSON array, possibly empty) and when. Kept beside the
  // spec's groups (user_groups), never instead of them: core/session-groups.ts decides which
  // count, so a fleet that turns SSO off is back on the spec's groups without a migration.
  `
  ALTER TABLE users ADD COLUMN session_groups TEXT;
  ALTER TABLE users ADD COLUMN session_groups_at TEXT;
  `,
  // 13 (sign-ins in the console's location history): a user's TOTP and SSO sign-in results read
  // by (subject, action), newest first, LIMIT n: with this index each action is a bounded range
  // scan, where audit_subject would walk every connect and disconnect of the user until n
  // sign-ins turn up.
  `
  CREATE INDEX IF NOT EXISTS audit_subject_action ON audit(subject, action, id);
  `,
];
