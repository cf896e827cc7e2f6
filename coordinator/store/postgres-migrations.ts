// The PostgreSQL schema: the same versions as migrations.ts (SQLite), in PostgreSQL's dialect,
// applied in order, each in its own transaction and recorded in schema_migrations. Never edit a
// released migration: add the next one, here and in migrations.ts (or, if its SQL is the same in
// both dialects, once in portable-migrations.ts).
// Differences that matter: booleans are BOOLEAN, times BIGINT (ms since the epoch), and the
// highest ids ever handed out live in id_high_water (SQLite keeps them in sqlite_sequence).
// A CHECK keeps a single-use key at one use whatever any coordinator does.
import { V2_OWNER, V3_AGENT_INFO, V5_NAT_KIND, type Migration } from './portable-migrations.js';

export const POSTGRES_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'nodes, auth keys, policy, server key',
    sql: `
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
      );
      CREATE TABLE id_high_water (
        name    TEXT PRIMARY KEY,
        last_id BIGINT NOT NULL
      );
      INSERT INTO id_high_water (name, last_id) VALUES ('nodes', 0), ('auth_keys', 0);
      CREATE TABLE auth_keys (
        id          BIGINT PRIMARY KEY,
        prefix      TEXT NOT NULL CONSTRAINT auth_keys_prefix_unique UNIQUE,
        secret_hash TEXT NOT NULL,
        reusable    BOOLEAN NOT NULL,
        ephemeral   BOOLEAN NOT NULL,
        tags        TEXT NOT NULL,
        created_at  BIGINT NOT NULL,
        expires_at  BIGINT,
        used_count  INTEGER NOT NULL DEFAULT 0 CHECK (used_count >= 0),
        revoked_at  BIGINT,
        CONSTRAINT auth_keys_single_use CHECK (reusable OR used_count <= 1)
      );
      CREATE TABLE nodes (
        id                   BIGINT PRIMARY KEY,
        node_key             TEXT NOT NULL CONSTRAINT nodes_node_key_unique UNIQUE,
        disco_key            TEXT NOT NULL,
        hostname             TEXT NOT NULL,
        name                 TEXT NOT NULL CONSTRAINT nodes_name_unique UNIQUE,
        ipv4                 TEXT NOT NULL CONSTRAINT nodes_ipv4_unique UNIQUE,
        ipv6                 TEXT NOT NULL CONSTRAINT nodes_ipv6_unique UNIQUE,
        created_at           BIGINT NOT NULL,
        key_expires_at       BIGINT,
        ephemeral            BOOLEAN NOT NULL,
        tags                 TEXT NOT NULL,
        auth_key_id          BIGINT,
        advertised_routes    TEXT NOT NULL,
        advertised_exit_node BOOLEAN NOT NULL,
        approved_routes      TEXT NOT NULL,
        endpoints            TEXT NOT NULL DEFAULT '[]',
        home_relay           TEXT,
        last_seen            BIGINT
      );
      CREATE TABLE policy (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        json       TEXT,
        updated_at BIGINT
      );
      INSERT INTO policy (id, json, updated_at) VALUES (1, NULL, NULL);
    `,
  },
  V2_OWNER,
  V3_AGENT_INFO,
  {
    // Coordinators sharing the database (replicas): every committed change a netmap depends on
    // appends one row to changes (ids from id_high_water 'changes', see postgres-feed.ts); each
    // replica heartbeats in replicas; nodes.online_by names the replica holding the node's stream.
    version: 4,
    name: 'replica change feed',
    sql: `
      INSERT INTO id_high_water (name, last_id) VALUES ('changes', 0);
      CREATE TABLE changes (
        id           BIGINT PRIMARY KEY,
        at           BIGINT NOT NULL,
        replica      TEXT NOT NULL,
        node_ids     BIGINT[] NOT NULL,
        auth_key_ids BIGINT[] NOT NULL,
        policy       BOOLEAN NOT NULL
      );
      CREATE INDEX changes_at ON changes (at);
      CREATE TABLE replicas (
        id           TEXT PRIMARY KEY,
        started_at   BIGINT NOT NULL,
        heartbeat_at BIGINT NOT NULL
      );
      ALTER TABLE nodes ADD COLUMN online_by TEXT;
    `,
  },
  V5_NAT_KIND,
  {
    version: 6,
    name: 'coordinator key rotations in the replica change feed',
    sql: 'ALTER TABLE changes ADD COLUMN server_keys BOOLEAN NOT NULL DEFAULT false;',
  },
];
