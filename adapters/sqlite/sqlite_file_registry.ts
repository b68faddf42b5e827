/**
 * The embedded file registry: one table in its own SQLite file under the state directory
 * (`file-registry.sqlite`), opened like the run store (`sqlite_database.ts`: WAL, migrations once).
 *
 * @module
 */
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { type FileRecord, fileRecordSchema } from "../../domain/http_file_sources.ts";
import { type FileRegistry, FileRegistryUnavailableError } from "../../ports/file_registry.ts";
import {
  callSqliteStore,
  DEFAULT_STATE_DIR,
  inImmediateTransaction,
  openSqliteStore,
  type SqliteMigration,
  type SqliteStoreOptions,
} from "./sqlite_database.ts";

/** The registry's file name inside the state directory. */
export const SQLITE_FILE_REGISTRY_FILE = "file-registry.sqlite";

/** The registry's file in `stateDir` (default `./state`). */
export function sqliteFileRegistryPath(stateDir: string = DEFAULT_STATE_DIR): string {
  return join(stateDir, SQLITE_FILE_REGISTRY_FILE);
}

/** The schema, one migration per version; never edit one that has shipped. */
export const SQLITE_FILE_REGISTRY_MIGRATIONS: readonly SqliteMigration[] = [{
  version: 1,
  sql: `
    CREATE TABLE http_files (
      source TEXT NOT NULL,
      url TEXT NOT NULL,
      body TEXT NOT NULL,
      PRIMARY KEY (source, url)
    ) STRICT;
  `,
}];

/**
 * Opens (creating if needed) the registry at `options.path`.
 *
 * @throws {FileRegistryUnavailableError} when the file cannot be opened or migrated.
 */
export function openSqliteFileRegistry(options: SqliteStoreOptions): Promise<SqliteFileRegistry> {
  return openSqliteStore(
    options,
    "file registry",
    { migrationsTable: "file_registry_migrations", migrations: SQLITE_FILE_REGISTRY_MIGRATIONS },
    (db) => new SqliteFileRegistry(db),
    (error) => new FileRegistryUnavailableError(error),
  );
}

/** A {@link FileRegistry} in one SQLite file. Open it with {@link openSqliteFileRegistry}. */
export class SqliteFileRegistry implements FileRegistry {
  #db: DatabaseSync | undefined;

  /** Takes over an open, migrated database; use {@link openSqliteFileRegistry}. */
  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** {@inheritDoc FileRegistry.records} */
  records(source: string): Promise<FileRecord[]> {
    return this.#run(
      "read the file registry",
      (db) =>
        db.prepare("SELECT body FROM http_files WHERE source = ? ORDER BY url").all(source)
          .map((row) => fileRecordSchema.parse(JSON.parse(String(row.body)))),
    );
  }

  /** {@inheritDoc FileRegistry.put} */
  put(records: readonly FileRecord[]): Promise<void> {
    return this.#run("write the file registry", (db) => {
      const valid = records.map((r) => fileRecordSchema.parse(r));
      inImmediateTransaction(db, () => {
        const upsert = db.prepare(
          `INSERT INTO http_files (source, url, body) VALUES (?, ?, ?)
           ON CONFLICT (source, url) DO UPDATE SET body = excluded.body`,
        );
        for (const r of valid) upsert.run(r.source, r.url, JSON.stringify(r));
      });
    });
  }

  /** {@inheritDoc FileRegistry.close} */
  close(): Promise<void> {
    this.#db?.close();
    this.#db = undefined;
    return Promise.resolve();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #run<T>(what: string, body: (db: DatabaseSync) => T): Promise<T> {
    return callSqliteStore(this.#db, what, body, (e) => new FileRegistryUnavailableError(e));
  }
}
