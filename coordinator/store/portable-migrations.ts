// The schema versions whose SQL is the same in SQLite and PostgreSQL (plain ALTER TABLE ... ADD
// COLUMN of TEXT columns): written once here, listed by both dialects' migration lists
// (migrations.ts, postgres-migrations.ts). Never edit a released migration: add the next one.

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const V2_OWNER: Migration = {
  version: 2,
  name: 'owner (user) of auth keys and nodes',
  sql: `
    ALTER TABLE auth_keys ADD COLUMN user_name TEXT;
    ALTER TABLE nodes ADD COLUMN user_name TEXT;
  `,
};

export const V3_AGENT_INFO: Migration = {
  version: 3,
  name: 'OS and pinhole version the agent reports',
  sql: `
    ALTER TABLE nodes ADD COLUMN os TEXT;
    ALTER TABLE nodes ADD COLUMN agent_version TEXT;
  `,
};

export const V5_NAT_KIND: Migration = {
  version: 5,
  name: 'NAT kind the agent reports with its endpoints',
  sql: 'ALTER TABLE nodes ADD COLUMN nat_kind TEXT;',
};
