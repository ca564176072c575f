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
];
