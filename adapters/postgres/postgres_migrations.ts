/**
 * What the PostgreSQL stores (runs, releases) share: versioned migrations of a store's own schema,
 * applied in one transaction under a transaction-level advisory lock on the schema, so replicas starting
 * together apply each version once.
 *
 * @module
 */
import type { Sql } from "postgres";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";

/**
 * One schema version; `%s` in its SQL is the quoted schema. Applied in order, each once. Never edit one
 * that has shipped: add the next.
 */
export interface PostgresMigration {
  readonly version: number;
  readonly sql: string;
}

/**
 * Creates `schema` if needed and applies the `migrations` it lacks, recorded in `schema.migrationsTable`,
 * in one transaction under an advisory lock named after `lockName` and the schema.
 */
export async function applyPostgresMigrations(
  sql: Sql,
  schema: string,
  lockName: string,
  migrationsTable: string,
  migrations: readonly PostgresMigration[],
): Promise<void> {
  const quoted = quotePostgresIdentifier(schema);
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtextextended(${`${lockName} ${schema}`}, 0))`;
    await tx.unsafe(`
      create schema if not exists ${quoted};
      create table if not exists ${quoted}.${migrationsTable} (
        version integer primary key,
        applied_at timestamptz not null default now()
      );
    `);
    const rows = await tx.unsafe(`select version from ${quoted}.${migrationsTable}`);
    const applied = new Set(rows.map((row) => Number(row.version)));
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      await tx.unsafe(migration.sql.replaceAll("%s", quoted));
      await tx.unsafe(`insert into ${quoted}.${migrationsTable} (version) values ($1)`, [
        migration.version,
      ]);
    }
  });
}

/** The migration versions recorded in `schema.migrationsTable`, in order. */
export async function postgresMigrationVersions(
  sql: Sql,
  schema: string,
  migrationsTable: string,
): Promise<number[]> {
  const rows = await sql.unsafe(
    `select version from ${quotePostgresIdentifier(schema)}.${migrationsTable} order by version`,
  );
  return rows.map((row) => Number(row.version));
}
