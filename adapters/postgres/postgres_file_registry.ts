/**
 * The shared file registry: one table in the run store's PostgreSQL database, in its own schema
 * (`cr8tor_http_files` by default), for publish service replicas that share their runs. Migrations and
 * the error rule are the other PostgreSQL stores' (`postgres_store.ts`, `postgres_migrations.ts`).
 *
 * @module
 */
import type { Sql } from "postgres";
import { type FileRecord, fileRecordSchema } from "../../domain/http_file_sources.ts";
import { type FileRegistry, FileRegistryUnavailableError } from "../../ports/file_registry.ts";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";
import { applyPostgresMigrations, type PostgresMigration } from "./postgres_migrations.ts";
import {
  callPostgresStore,
  newPostgresStoreCall,
  openPostgresStore,
  type PostgresStoreCall,
  type PostgresStorePoolOptions,
} from "./postgres_store.ts";

/** The schema the registry uses when none is given. */
export const DEFAULT_FILE_REGISTRY_SCHEMA = "cr8tor_http_files";

/** Where the shared registry lives. */
export interface PostgresFileRegistryOptions extends PostgresStorePoolOptions {
  /** The registry's own schema, created if missing. Default {@link DEFAULT_FILE_REGISTRY_SCHEMA}. */
  readonly schema?: string;
}

/** The schema, one migration per version; `%s` is the quoted schema. Never edit one that has shipped. */
export const POSTGRES_FILE_REGISTRY_MIGRATIONS: readonly PostgresMigration[] = [{
  version: 1,
  sql: `
    create table %s.http_files (
      source text collate "C" not null,
      url text collate "C" not null,
      body jsonb not null,
      primary key (source, url)
    );
  `,
}];

/**
 * Connects, creates the schema if needed and applies the migrations it lacks.
 *
 * @throws {FileRegistryUnavailableError} when the server cannot be reached or the migrations fail.
 */
export function openPostgresFileRegistry(
  options: PostgresFileRegistryOptions,
): Promise<PostgresFileRegistry> {
  return openPostgresStore(options, (sql) => new PostgresFileRegistry(sql, options));
}

/** A {@link FileRegistry} in a PostgreSQL schema. Open it with {@link openPostgresFileRegistry}. */
export class PostgresFileRegistry implements FileRegistry {
  readonly #call: PostgresStoreCall;
  readonly #schema: string;
  readonly #table: string;

  /** Takes over a client; use {@link openPostgresFileRegistry}. */
  constructor(sql: Sql, options: PostgresFileRegistryOptions) {
    this.#schema = options.schema ?? DEFAULT_FILE_REGISTRY_SCHEMA;
    this.#table = `${quotePostgresIdentifier(this.#schema)}.http_files`;
    this.#call = newPostgresStoreCall(
      sql,
      options,
      (error) => new FileRegistryUnavailableError(error),
    );
  }

  /** Applies the migrations the schema lacks, under an advisory lock on the schema. */
  migrate(): Promise<void> {
    return callPostgresStore(
      this.#call,
      "migrate the file registry",
      (sql) =>
        applyPostgresMigrations(
          sql,
          this.#schema,
          "cr8tor file registry",
          "file_registry_migrations",
          POSTGRES_FILE_REGISTRY_MIGRATIONS,
        ),
    );
  }

  /** {@inheritDoc FileRegistry.records} */
  records(source: string): Promise<FileRecord[]> {
    return callPostgresStore(this.#call, "read the file registry", async (sql) => {
      const rows = await sql.unsafe(
        `select body from ${this.#table} where source = $1 order by url`,
        [source],
      );
      // The driver gives jsonb back as text or as an object, depending on its type parsers.
      return rows.map((row) =>
        fileRecordSchema.parse(typeof row.body === "string" ? JSON.parse(row.body) : row.body)
      );
    });
  }

  /** {@inheritDoc FileRegistry.put} */
  put(records: readonly FileRecord[]): Promise<void> {
    return callPostgresStore(this.#call, "write the file registry", async (sql) => {
      const valid = records.map((r) => fileRecordSchema.parse(r));
      await sql.begin(async (tx) => {
        for (const r of valid) {
          await tx.unsafe(
            `insert into ${this.#table} (source, url, body) values ($1, $2, $3::jsonb)
             on conflict (source, url) do update set body = excluded.body`,
            [r.source, r.url, JSON.stringify(r)],
          );
        }
      });
    });
  }

  /** {@inheritDoc FileRegistry.close} */
  async close(): Promise<void> {
    if (this.#call.closed) return;
    this.#call.closed = true;
    await this.#call.sql.end({ timeout: 5 });
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
