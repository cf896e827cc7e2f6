// Schema versions, applied in order at start, each in its own transaction and recorded in
// schema_migrations. Never edit a released migration: add the next one. Versions whose SQL is the
// same in PostgreSQL live in portable-migrations.ts.
import { V2_OWNER, V3_AGENT_INFO, V5_NAT_KIND, type Migration } from './portable-migrations.js';

export type { Migration };

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'nodes, auth keys, policy, server key',
    sql: `
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
      CREATE TABLE auth_keys (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        prefix      TEXT NOT NULL UNIQUE,
        secret_hash TEXT NOT NULL,
        reusable    INTEGER NOT NULL,
        ephemeral   INTEGER NOT NULL,
        tags        TEXT NOT NULL,             -- JSON array
        created_at  INTEGER NOT NULL,          -- ms since the epoch, like every time here
        expires_at  INTEGER,
        used_count  INTEGER NOT NULL DEFAULT 0,
        revoked_at  INTEGER
      );
      CREATE TABLE nodes (
        id                   INTEGER PRIMARY KEY AUTOINCREMENT,
        node_key             TEXT NOT NULL UNIQUE,
        disco_key            TEXT NOT NULL,
        hostname             TEXT NOT NULL,
        name                 TEXT NOT NULL UNIQUE,
        ipv4                 TEXT NOT NULL UNIQUE,
        ipv6                 TEXT NOT NULL UNIQUE,
        created_at           INTEGER NOT NULL,
        key_expires_at       INTEGER,
        ephemeral            INTEGER NOT NULL,
        tags                 TEXT NOT NULL,
        auth_key_id          INTEGER,
        advertised_routes    TEXT NOT NULL,
        advertised_exit_node INTEGER NOT NULL,
        approved_routes      TEXT NOT NULL,
        endpoints            TEXT NOT NULL DEFAULT '[]',
        home_relay           TEXT,
        last_seen            INTEGER
      );
      CREATE TABLE policy (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        json       TEXT,
        updated_at INTEGER
      );
      INSERT INTO policy (id, json, updated_at) VALUES (1, NULL, NULL);
    `,
  },
  V2_OWNER,
  V3_AGENT_INFO,
  {
    // PostgreSQL only (several coordinators on one database); a SQLite file has one coordinator.
    version: 4,
    name: 'replica change feed (PostgreSQL only)',
    sql: 'SELECT 1;',
  },
  V5_NAT_KIND,
  {
    // PostgreSQL only, like v4: a SQLite file has one coordinator and nobody to tell.
    version: 6,
    name: 'coordinator key rotations in the replica change feed (PostgreSQL only)',
    sql: 'SELECT 1;',
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]!.version;
