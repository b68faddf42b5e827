/**
 * What the SQLite stores (runs, releases) share: opening a file in WAL mode, `BEGIN IMMEDIATE`
 * transactions, and versioned migrations applied once each, safely when several processes open one new
 * file at once.
 *
 * @module
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

/** The state directory when none is configured (`STATE_DIR`). */
export const DEFAULT_STATE_DIR = "./state";

/** One schema version: applied in order, each once. Never edit one that has shipped: add the next. */
export interface SqliteMigration {
  readonly version: number;
  readonly sql: string;
}

/**
 * Opens (creating it and its directory if needed) the SQLite file at `path` in WAL mode and applies the
 * `migrations` it lacks, recorded in the table `migrationsTable`. Closes the file when that fails.
 *
 * @param busyTimeoutMs how long a write waits for another process's write (default 5000 ms).
 */
export function openSqliteDatabase(
  path: string,
  migrationsTable: string,
  migrations: readonly SqliteMigration[],
  busyTimeoutMs = 5000,
): DatabaseSync {
  let db: DatabaseSync | undefined;
  try {
    mkdirSync(join(path, ".."), { recursive: true });
    db = new DatabaseSync(path);
    db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.round(busyTimeoutMs))}`);
    db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    applySqliteMigrations(db, migrationsTable, migrations);
    return db;
  } catch (e) {
    db?.close();
    throw e;
  }
}

/** Applies the migrations the file lacks, in one `BEGIN IMMEDIATE` transaction. */
export function applySqliteMigrations(
  db: DatabaseSync,
  migrationsTable: string,
  migrations: readonly SqliteMigration[],
): void {
  inImmediateTransaction(db, () => {
    db.exec(`CREATE TABLE IF NOT EXISTS ${migrationsTable} (
      version INTEGER PRIMARY KEY,
      applied_at TEXT NOT NULL
    ) STRICT`);
    const applied = new Set(
      db.prepare(`SELECT version FROM ${migrationsTable}`).all().map((row) => Number(row.version)),
    );
    for (const migration of migrations) {
      if (applied.has(migration.version)) continue;
      db.exec(migration.sql);
      db.prepare(`INSERT INTO ${migrationsTable} (version, applied_at) VALUES (?, ?)`)
        .run(migration.version, new Date().toISOString());
    }
  });
}

/** The migration versions recorded in `migrationsTable`, in order. */
export function sqliteMigrationVersions(db: DatabaseSync, migrationsTable: string): number[] {
  return db.prepare(`SELECT version FROM ${migrationsTable} ORDER BY version`).all()
    .map((row) => Number(row.version));
}

/**
 * Runs `body` in a `BEGIN IMMEDIATE` transaction (the write lock is taken first, so no other process
 * writes in between), committing when it returns and rolling back when it throws. `body` must not await.
 */
export function inImmediateTransaction<T>(db: DatabaseSync, body: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = body();
    db.exec("COMMIT");
    return result;
  } catch (e) {
    if (db.isTransaction) db.exec("ROLLBACK");
    throw e;
  }
}
