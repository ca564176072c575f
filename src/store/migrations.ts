/**
 * Schema migrations, applied in order inside one transaction each; PRAGMA user_version holds
 * the number applied. Never edit a shipped migration: add a new one.
 */
export const MIGRATIONS: string[] = [
  `
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
    user         TEXT NOT NULL,
    real_address TEXT NOT NULL,
    ipv4         TEXT,
    ipv6         TEXT,
    since        TEXT NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    client_id    INTEGER NOT NULL,
    reported_at  TEXT NOT NULL,
    PRIMARY KEY (server, user, since)
  );
  CREATE INDEX sessions_user ON sessions(user);
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
  // 4: admin accounts of the console and the API, and their sign-in sessions. A session row is
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
];
