/**
 * What the SQLite stores (runs, releases) share: opening a file in WAL mode, `BEGIN IMMEDIATE`
 * transactions, and versioned migrations applied once each, safely when several processes open one new
 * file at once.
 *
 * @module
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { AppError, type AppErrorOptions } from "../../domain/errors.ts";
import { isZodError, messageOf } from "../shared/errors.ts";

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

/** A store's own "unavailable" error, made from its log detail and cause. */
export type SqliteStoreUnavailable = (options: AppErrorOptions) => AppError;

/** `e` itself when it is an `AppError`, else the store's unavailable error: `context`, then e's message. */
function storeError(e: unknown, context: string, unavailable: SqliteStoreUnavailable): AppError {
  return e instanceof AppError
    ? e
    : unavailable({ logDetail: `${context}: ${messageOf(e)}`, cause: e });
}

/** Where a SQLite store lives. */
export interface SqliteStoreOptions {
  /** The database file. Its directory is created if missing. */
  readonly path: string;
  /** How long a write waits for another process's write before giving up. Default 5000 ms. */
  readonly busyTimeoutMs?: number;
}

/**
 * Opens the file at `options.path` as {@link openSqliteDatabase} does and hands it to `create`; a failure
 * is `unavailable`, its log detail `Cannot open the ${name} at ${path}: ` and the reason.
 */
export function openSqliteStore<S>(
  options: SqliteStoreOptions,
  name: string,
  schema: { readonly migrationsTable: string; readonly migrations: readonly SqliteMigration[] },
  create: (db: DatabaseSync) => S,
  unavailable: SqliteStoreUnavailable,
): Promise<S> {
  try {
    const db = openSqliteDatabase(
      options.path,
      schema.migrationsTable,
      schema.migrations,
      options.busyTimeoutMs,
    );
    return Promise.resolve(create(db));
  } catch (e) {
    return Promise.reject(
      storeError(e, `Cannot open the ${name} at ${options.path}`, unavailable),
    );
  }
}

/**
 * Runs a store call `body` on `db` and settles it as a promise. The store's own errors (`AppError`), a
 * bad page size (`RangeError`) and invalid input (zod) pass through; anything else becomes `unavailable`,
 * its log detail `Cannot ${what}: ` and the reason; a closed store (`db` undefined) is `unavailable` too.
 */
export function callSqliteStore<T>(
  db: DatabaseSync | undefined,
  what: string,
  body: (db: DatabaseSync) => T,
  unavailable: SqliteStoreUnavailable,
): Promise<T> {
  try {
    if (db === undefined) throw unavailable({ logDetail: "the store is closed" });
    return Promise.resolve(body(db));
  } catch (e) {
    const known = e instanceof AppError || e instanceof RangeError || isZodError(e);
    return Promise.reject(known ? e : storeError(e, `Cannot ${what}`, unavailable));
  }
}

/** The row `id` of `table`, its `body` read by `parse`, or undefined when there is none. */
export function selectSqliteById<T>(
  db: DatabaseSync,
  table: string,
  id: string,
  parse: (body: unknown) => T,
): T | undefined {
  const row = db.prepare(`SELECT body FROM ${table} WHERE id = ?`).get(id);
  return row === undefined ? undefined : parse(row.body);
}

/** Inserts one row into `table`: its columns are `row`'s keys, in order, their values its values. */
export function insertSqliteRow(
  db: DatabaseSync,
  table: string,
  row: Readonly<Record<string, SQLInputValue>>,
): void {
  const columns = Object.keys(row);
  db.prepare(
    `INSERT INTO ${table} (${columns.join(", ")}) VALUES (${columns.map(() => "?").join(", ")})`,
  ).run(...Object.values(row));
}

/** One page of a keyset-paged list, newest first; `after` is the decoded cursor of the previous page. */
export interface SqliteNewestQuery {
  readonly project?: string;
  readonly state?: string;
  readonly limit: number;
  readonly after?: { readonly created_at: string; readonly id: string } | undefined;
}

/**
 * The page of `table` (columns `project_name`, `state`, `created_at`, `id`, `body`) that `query` asks
 * for, newest first (`created_at`, then `id`, descending), each body read by `parse`, with the cursor of
 * the next page (`encodeCursor` of the last item) when there are more rows, else null.
 */
export function selectSqliteNewestPage<T>(
  db: DatabaseSync,
  table: string,
  query: SqliteNewestQuery,
  parse: (body: unknown) => T,
  encodeCursor: (last: T) => string,
): { readonly items: T[]; readonly nextCursor: string | null } {
  const where: string[] = [];
  const params: SQLInputValue[] = [];
  if (query.project !== undefined) {
    where.push("project_name = ?");
    params.push(query.project);
  }
  if (query.state !== undefined) {
    where.push("state = ?");
    params.push(query.state);
  }
  if (query.after !== undefined) {
    where.push("(created_at < ? OR (created_at = ? AND id < ?))");
    params.push(query.after.created_at, query.after.created_at, query.after.id);
  }
  const rows = db.prepare(
    `SELECT body FROM ${table} ${where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`}
     ORDER BY created_at DESC, id DESC LIMIT ?`,
  ).all(...params, query.limit + 1);
  const items = rows.slice(0, query.limit).map((row) => parse(row.body));
  const last = items.at(-1);
  return {
    items,
    nextCursor: rows.length > query.limit && last !== undefined ? encodeCursor(last) : null,
  };
}
