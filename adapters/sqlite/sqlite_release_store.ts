/**
 * The embedded release store of the approval service: one SQLite file (`${STATE_DIR}/releases.sqlite`,
 * through `node:sqlite`) in WAL mode, shared safely by every process on the machine that opens it. Writes
 * are `BEGIN IMMEDIATE` transactions that run start to end without awaiting: a release is found or
 * created atomically, and a decision is decided on the freshest release and appended in the same
 * transaction, so concurrent decisions are all recorded, one after the other.
 *
 * Needs `--allow-read` and `--allow-write` on the file's directory; no FFI.
 *
 * @module
 */
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { type Decision, type Release, releaseSchema, withRequest } from "../../domain/release.ts";
import {
  applyDecision,
  applyReleaseChange,
  checkReleasePageSize,
  type DecideResult,
  decodeReleaseCursor,
  encodeReleaseCursor,
  type EnsureReleaseResult,
  type ListReleasesQuery,
  parseStoredRelease,
  releaseKey,
  ReleaseNotFoundError,
  type ReleasePage,
  type ReleaseStore,
  ReleaseStoreUnavailableError,
} from "../../ports/release_store.ts";
import {
  callSqliteStore,
  DEFAULT_STATE_DIR,
  inImmediateTransaction,
  insertSqliteRow,
  openSqliteStore,
  selectSqliteById,
  selectSqliteNewestPage,
  type SqliteMigration,
  sqliteMigrationVersions,
  type SqliteStoreOptions,
} from "./sqlite_database.ts";

/** The release store's file name inside the state directory. */
export const SQLITE_RELEASE_STORE_FILE = "releases.sqlite";

const MIGRATIONS_TABLE = "release_store_migrations";

/** Where a SQLite release store lives. */
export interface SqliteReleaseStoreOptions extends SqliteStoreOptions {}

/** The release store's file in `stateDir` (default `./state`). */
export function sqliteReleaseStorePath(stateDir: string = DEFAULT_STATE_DIR): string {
  return join(stateDir, SQLITE_RELEASE_STORE_FILE);
}

/**
 * The schema, one migration per version, applied in order, each once. Never edit one that has shipped:
 * add the next. `release_key` (`releaseKey`) is unique: one release per project run.
 */
export const SQLITE_RELEASE_STORE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE releases (
        id TEXT PRIMARY KEY,
        release_key TEXT NOT NULL UNIQUE,
        project_name TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        body TEXT NOT NULL
      ) STRICT;
      CREATE INDEX releases_newest ON releases (created_at DESC, id DESC);
      CREATE INDEX releases_project_newest ON releases (project_name, created_at DESC, id DESC);
    `,
  },
];

/**
 * Opens (creating if needed) the release store at `options.path`, in WAL mode, and applies the
 * migrations it lacks. Several processes may open the same file at once.
 *
 * @throws {ReleaseStoreUnavailableError} when the file cannot be opened or migrated.
 */
export function openSqliteReleaseStore(
  options: SqliteReleaseStoreOptions,
): Promise<SqliteReleaseStore> {
  return openSqliteStore(
    options,
    "release store",
    { migrationsTable: MIGRATIONS_TABLE, migrations: SQLITE_RELEASE_STORE_MIGRATIONS },
    (db) => new SqliteReleaseStore(db),
    (error) => new ReleaseStoreUnavailableError(error),
  );
}

/** A release store in one SQLite file. Open it with {@link openSqliteReleaseStore}. */
export class SqliteReleaseStore implements ReleaseStore {
  #db: DatabaseSync | undefined;

  /** Takes over an open, migrated database; use {@link openSqliteReleaseStore}. */
  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** The migration versions recorded in the file, in order. */
  migrationVersions(): Promise<number[]> {
    return this.#run("read the migrations", (db) => sqliteMigrationVersions(db, MIGRATIONS_TABLE));
  }

  /** {@inheritDoc ReleaseStore.ensure} */
  ensure(release: Release): Promise<EnsureReleaseResult> {
    return this.#run("ensure a release", (db) => {
      const valid = releaseSchema.parse(release);
      const key = releaseKey(valid);
      return inImmediateTransaction(db, () => {
        const row = db.prepare("SELECT body FROM releases WHERE release_key = ?").get(key);
        if (row !== undefined) {
          const existing = parseStoredRelease(row.body);
          const updated = withRequest(existing, valid.request);
          if (updated === undefined) return { release: existing, created: false };
          db.prepare("UPDATE releases SET body = ? WHERE id = ?")
            .run(JSON.stringify(updated), updated.id);
          return { release: updated, created: false };
        }
        insertSqliteRow(db, "releases", {
          id: valid.id,
          release_key: key,
          project_name: valid.project_name,
          state: valid.state,
          created_at: valid.created_at,
          body: JSON.stringify(valid),
        });
        return { release: valid, created: true };
      });
    });
  }

  /** {@inheritDoc ReleaseStore.get} */
  get(id: string): Promise<Release | undefined> {
    return this.#run(
      "read a release",
      (db) => selectSqliteById(db, "releases", id, parseStoredRelease),
    );
  }

  /** {@inheritDoc ReleaseStore.list} */
  list(query: ListReleasesQuery): Promise<ReleasePage> {
    return this.#run("list releases", (db) => {
      checkReleasePageSize(query.limit);
      const after = query.cursor === undefined ? undefined : decodeReleaseCursor(query.cursor);
      const page = selectSqliteNewestPage(
        db,
        "releases",
        { ...query, after },
        parseStoredRelease,
        encodeReleaseCursor,
      );
      return { releases: page.items, nextCursor: page.nextCursor };
    });
  }

  /** {@inheritDoc ReleaseStore.decide} */
  decide(id: string, decide: (release: Release) => Decision): Promise<DecideResult> {
    return this.#run("record a decision", (db) =>
      inImmediateTransaction(db, () => {
        const release = selectSqliteById(db, "releases", id, parseStoredRelease);
        if (release === undefined) throw new ReleaseNotFoundError(id);
        const result = applyDecision(release, decide);
        db.prepare("UPDATE releases SET state = ?, body = ? WHERE id = ?")
          .run(result.release.state, JSON.stringify(result.release), id);
        return result;
      }));
  }

  /** {@inheritDoc ReleaseStore.update} */
  update(id: string, change: (release: Release) => Release): Promise<Release> {
    return this.#run("change a release", (db) =>
      inImmediateTransaction(db, () => {
        const release = selectSqliteById(db, "releases", id, parseStoredRelease);
        if (release === undefined) throw new ReleaseNotFoundError(id);
        const next = applyReleaseChange(release, change);
        if (next === undefined) return release;
        db.prepare("UPDATE releases SET state = ?, body = ? WHERE id = ?")
          .run(next.state, JSON.stringify(next), id);
        return next;
      }));
  }

  /** {@inheritDoc ReleaseStore.close} */
  close(): Promise<void> {
    const db = this.#db;
    this.#db = undefined;
    db?.close();
    return Promise.resolve();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #run<T>(what: string, body: (db: DatabaseSync) => T): Promise<T> {
    return callSqliteStore(
      this.#db,
      what,
      body,
      (error) => new ReleaseStoreUnavailableError(error),
    );
  }
}
