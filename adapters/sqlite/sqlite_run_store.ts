/**
 * The embedded run store: one SQLite file (through `node:sqlite`) under the state directory, in WAL mode,
 * shared safely by every process on the machine that opens it. Writes are `BEGIN IMMEDIATE` transactions
 * that run start to end without awaiting, so the one-run-per-project rule holds across processes, and a
 * process killed in the middle of one leaves the file as it was before it.
 *
 * Needs `--allow-read` and `--allow-write` on the file's directory; no FFI.
 *
 * @module
 */
import { join } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import {
  ACTIVE_RUN_STATES,
  isActiveRunState,
  nextRunState,
  type Run,
  runRequestKey,
  runSchema,
  transition,
} from "../../domain/run.ts";
import {
  activeRunToAttach,
  applyRunPatch,
  checkRunPageSize,
  type CreateRunOptions,
  type CreateRunResult,
  decodeRunCursor,
  encodeRunCursor,
  type ListRunsQuery,
  RunAlreadyActiveError,
  RunNotFoundError,
  type RunPage,
  type RunPatch,
  type RunStore,
  RunStoreUnavailableError,
  RunVersionConflictError,
} from "../../ports/run_store.ts";
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

export { DEFAULT_STATE_DIR };

/** The run store's file name inside the state directory. */
export const SQLITE_RUN_STORE_FILE = "runs.sqlite";

/** Where a SQLite run store lives. */
export interface SqliteRunStoreOptions extends SqliteStoreOptions {}

/** The run store's file in `stateDir` (default {@link DEFAULT_STATE_DIR}). */
export function sqliteRunStorePath(stateDir: string = DEFAULT_STATE_DIR): string {
  return join(stateDir, SQLITE_RUN_STORE_FILE);
}

/**
 * The schema, one migration per version, applied in order, each once. Never edit one that has shipped:
 * add the next.
 */
export const SQLITE_RUN_STORE_MIGRATIONS: readonly SqliteMigration[] = [
  {
    version: 1,
    sql: `
      CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        project_name TEXT NOT NULL,
        state TEXT NOT NULL,
        request_key TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        version INTEGER NOT NULL,
        body TEXT NOT NULL
      ) STRICT;
      CREATE INDEX runs_newest ON runs (created_at DESC, id DESC);
      CREATE INDEX runs_project_newest ON runs (project_name, created_at DESC, id DESC);
      CREATE INDEX runs_active ON runs (project_name) WHERE state IN ('queued', 'running');
    `,
  },
];

const ACTIVE_SQL = `(${ACTIVE_RUN_STATES.map((s) => `'${s}'`).join(", ")})`;

/**
 * Opens (creating if needed) the run store at `options.path`, in WAL mode, and applies the migrations it
 * lacks. Several processes may open the same file at once: migrations are taken one at a time.
 *
 * @throws {RunStoreUnavailableError} when the file cannot be opened or migrated.
 */
export function openSqliteRunStore(
  options: SqliteRunStoreOptions,
): Promise<SqliteRunStore> {
  return openSqliteStore(
    options,
    "run store",
    { migrationsTable: "run_store_migrations", migrations: SQLITE_RUN_STORE_MIGRATIONS },
    (db) => new SqliteRunStore(db),
    (error) => new RunStoreUnavailableError(error),
  );
}

/** A run store in one SQLite file. Open it with {@link openSqliteRunStore}. */
export class SqliteRunStore implements RunStore {
  #db: DatabaseSync | undefined;

  /** Takes over an open, migrated database; use {@link openSqliteRunStore}. */
  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** The migration versions recorded in the file, in order. */
  migrationVersions(): Promise<number[]> {
    return this.#run(
      "read the migrations",
      (db) => sqliteMigrationVersions(db, "run_store_migrations"),
    );
  }

  /** {@inheritDoc RunStore.create} */
  create(run: Run, options: CreateRunOptions): Promise<CreateRunResult> {
    return this.#run("create a run", (db) => {
      const valid = runSchema.parse(run);
      const key = runRequestKey(valid);
      return inImmediateTransaction(db, () => {
        const active = db.prepare(
          `SELECT id, request_key, body FROM runs WHERE project_name = ? AND state IN ${ACTIVE_SQL}
           ORDER BY created_at, id`,
        ).all(valid.project_name);
        const same = activeRunToAttach(
          active.map(({ id, request_key, body }) => ({ id, request_key, body })),
          {
            project_name: valid.project_name,
            requestKey: key,
            exclusive: options.exclusive,
          },
        );
        if (same !== undefined) return { run: parseRun(same.body), attached: true };
        insertSqliteRow(db, "runs", {
          id: valid.id,
          project_name: valid.project_name,
          state: valid.state,
          request_key: key,
          created_at: valid.created_at,
          updated_at: valid.updated_at,
          version: valid.version,
          body: JSON.stringify(valid),
        });
        return { run: valid, attached: false };
      });
    });
  }

  /** {@inheritDoc RunStore.get} */
  get(id: string): Promise<Run | undefined> {
    return this.#run("read a run", (db) => selectSqliteById(db, "runs", id, parseRun));
  }

  /** {@inheritDoc RunStore.list} */
  list(query: ListRunsQuery): Promise<RunPage> {
    return this.#run("list runs", (db) => {
      checkRunPageSize(query.limit);
      const after = query.cursor === undefined ? undefined : decodeRunCursor(query.cursor);
      const page = selectSqliteNewestPage(
        db,
        "runs",
        { ...query, after },
        parseRun,
        encodeRunCursor,
      );
      return { runs: page.items, nextCursor: page.nextCursor };
    });
  }

  /** {@inheritDoc RunStore.update} */
  update(id: string, expectedVersion: number, patch: RunPatch): Promise<Run> {
    return this.#run("update a run", (db) =>
      inImmediateTransaction(db, () => {
        const run = selectSqliteById(db, "runs", id, parseRun);
        if (run === undefined) throw new RunNotFoundError(id);
        if (run.version !== expectedVersion) {
          throw new RunVersionConflictError(id, expectedVersion, run.version);
        }
        const next = applyRunPatch(run, patch);
        if (!isActiveRunState(run.state) && isActiveRunState(next.state)) {
          const other = db.prepare(
            `SELECT id FROM runs WHERE project_name = ? AND id <> ? AND state IN ${ACTIVE_SQL} LIMIT 1`,
          ).get(run.project_name, id);
          if (other !== undefined) {
            throw new RunAlreadyActiveError(run.project_name, String(other.id));
          }
        }
        write(db, next);
        return next;
      }));
  }

  /** {@inheritDoc RunStore.claim} */
  claim(id: string, now: () => string): Promise<Run | undefined> {
    return this.#run("claim a run", (db) =>
      inImmediateTransaction(db, () => {
        const run = selectSqliteById(db, "runs", id, parseRun);
        if (run === undefined) throw new RunNotFoundError(id);
        nextRunState(run.state, "start");
        const blocker = db.prepare(
          `SELECT id FROM runs WHERE project_name = ? AND id <> ? AND (state = 'running' OR
             (state = 'queued' AND (created_at < ? OR (created_at = ? AND id < ?)))) LIMIT 1`,
        ).get(run.project_name, id, run.created_at, run.created_at, id);
        if (blocker !== undefined) return undefined;
        const next = { ...transition(run, "start", now()), version: run.version + 1 };
        write(db, next);
        return next;
      }));
  }

  /** {@inheritDoc RunStore.markInterrupted} */
  markInterrupted(at: string, updatedBefore: string = at): Promise<number> {
    return this.#run("mark runs interrupted", (db) =>
      inImmediateTransaction(db, () => {
        const rows = db.prepare(
          `SELECT body FROM runs WHERE state IN ${ACTIVE_SQL} AND updated_at < ?`,
        ).all(updatedBefore);
        for (const row of rows) {
          const run = parseRun(row.body);
          write(db, { ...transition(run, "interrupt", at), version: run.version + 1 });
        }
        return rows.length;
      }));
  }

  /** {@inheritDoc RunStore.prune} */
  prune(olderThan: string): Promise<number> {
    return this.#run("prune runs", (db) =>
      Number(
        db.prepare(`DELETE FROM runs WHERE state NOT IN ${ACTIVE_SQL} AND updated_at < ?`)
          .run(olderThan).changes,
      ));
  }

  /** {@inheritDoc RunStore.close} */
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
    return callSqliteStore(this.#db, what, body, (error) => new RunStoreUnavailableError(error));
  }
}

/** Rewrites a run's row (its indexed columns and body) to `run`. */
function write(db: DatabaseSync, run: Run): void {
  db.prepare("UPDATE runs SET state = ?, updated_at = ?, version = ?, body = ? WHERE id = ?")
    .run(run.state, run.updated_at, run.version, JSON.stringify(run), run.id);
}

/** A stored body, checked: a row that is not a valid run is an unavailable store, not a crash. */
function parseRun(body: unknown): Run {
  if (typeof body !== "string") throw new Error("a run row has no body");
  return runSchema.parse(JSON.parse(body));
}
