/**
 * The shared run store: a schema of its own (`cr8tor_runs` by default) in a PostgreSQL database, for
 * several publish replicas. Connections are made as for the sources (`postgresClientOptions`: verified
 * TLS by default, never a fallback to plain text).
 *
 * Concurrency: migrations run in one transaction under a transaction-level advisory lock on the schema,
 * so replicas starting together apply each version once; a run is created under an advisory lock on its
 * project, so the one-run-per-project rule holds across replicas; a run is claimed (started) under the
 * same lock, so one run per project runs; updates lock the row and check the version.
 *
 * @module
 */
import type { Sql, TransactionSql } from "postgres";
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
import { quotePostgresIdentifier } from "./postgres_dialect.ts";
import {
  applyPostgresMigrations,
  type PostgresMigration,
  postgresMigrationVersions,
} from "./postgres_migrations.ts";
import {
  callPostgresStore,
  newPostgresStoreCall,
  openPostgresStore,
  type PostgresStoreCall,
  type PostgresStorePoolOptions,
  selectPostgresById,
  selectPostgresNewestPage,
} from "./postgres_store.ts";

/** The schema the run store uses when none is given. */
export const DEFAULT_RUN_STORE_SCHEMA = "cr8tor_runs";

/** Where the shared run store lives. */
export interface PostgresRunStoreOptions extends PostgresStorePoolOptions {
  /** The store's own schema, created if missing. Default {@link DEFAULT_RUN_STORE_SCHEMA}. */
  readonly schema?: string;
}

/**
 * The schema, one migration per version, applied in order, each once; `%s` is the quoted schema. Never
 * edit one that has shipped: add the next.
 */
export const POSTGRES_RUN_STORE_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    sql: `
      create table %s.runs (
        id text collate "C" primary key,
        project_name text not null,
        state text not null,
        request_key text not null,
        created_at text collate "C" not null,
        updated_at text collate "C" not null,
        version integer not null,
        body jsonb not null
      );
      create index runs_newest on %s.runs (created_at desc, id desc);
      create index runs_project_newest on %s.runs (project_name, created_at desc, id desc);
      create index runs_active on %s.runs (project_name) where state in ('queued', 'running');
    `,
  },
];

/**
 * Connects, creates the schema if needed and applies the migrations it lacks. Several replicas may open
 * the same schema at once.
 *
 * @throws {RunStoreUnavailableError} when the server cannot be reached or the migrations fail; the
 *   driver's message, without the user name and password, is its `logDetail`.
 */
export function openPostgresRunStore(
  options: PostgresRunStoreOptions,
): Promise<PostgresRunStore> {
  return openPostgresStore(options, (sql) => new PostgresRunStore(sql, options));
}

/** A run store in a PostgreSQL schema. Open it with {@link openPostgresRunStore}. */
export class PostgresRunStore implements RunStore {
  readonly #call: PostgresStoreCall;
  readonly #schema: string;
  readonly #runs: string;

  /** Takes over a client; use {@link openPostgresRunStore}. */
  constructor(sql: Sql, options: PostgresRunStoreOptions) {
    this.#schema = options.schema ?? DEFAULT_RUN_STORE_SCHEMA;
    this.#runs = `${quotePostgresIdentifier(this.#schema)}.runs`;
    this.#call = newPostgresStoreCall(sql, options, (error) => new RunStoreUnavailableError(error));
  }

  /** Applies the migrations the schema lacks, under an advisory lock on the schema. */
  migrate(): Promise<void> {
    return this.#do(
      "migrate the run store",
      (sql) =>
        applyPostgresMigrations(
          sql,
          this.#schema,
          "cr8tor run store",
          "run_store_migrations",
          POSTGRES_RUN_STORE_MIGRATIONS,
        ),
    );
  }

  /** The migration versions recorded in the schema, in order. */
  migrationVersions(): Promise<number[]> {
    return this.#do(
      "read the migrations",
      (sql) => postgresMigrationVersions(sql, this.#schema, "run_store_migrations"),
    );
  }

  /** {@inheritDoc RunStore.create} */
  create(run: Run, options: CreateRunOptions): Promise<CreateRunResult> {
    return this.#do("create a run", (sql) =>
      sql.begin(async (tx): Promise<CreateRunResult> => {
        const valid = runSchema.parse(run);
        const key = runRequestKey(valid);
        await this.#lockProject(tx, valid.project_name);
        const active = await tx.unsafe(
          `select id, request_key, body from ${this.#runs}
           where project_name = $1 and state in ('queued', 'running') order by created_at, id`,
          [valid.project_name],
        );
        const same = activeRunToAttach(
          active.map(({ id, request_key, body }) => ({ id, request_key, body })),
          {
            project_name: valid.project_name,
            requestKey: key,
            exclusive: options.exclusive,
          },
        );
        if (same !== undefined) return { run: parseRun(same.body), attached: true };
        await tx.unsafe(
          `insert into ${this.#runs}
             (id, project_name, state, request_key, created_at, updated_at, version, body)
           values ($1, $2, $3, $4, $5, $6, $7, $8::jsonb)`,
          [
            valid.id,
            valid.project_name,
            valid.state,
            key,
            valid.created_at,
            valid.updated_at,
            valid.version,
            JSON.stringify(valid),
          ],
        );
        return { run: valid, attached: false };
      }));
  }

  /** {@inheritDoc RunStore.get} */
  get(id: string): Promise<Run | undefined> {
    return this.#do("read a run", (sql) => selectPostgresById(sql, this.#runs, id, parseRun));
  }

  /** {@inheritDoc RunStore.list} */
  async list(query: ListRunsQuery): Promise<RunPage> {
    checkRunPageSize(query.limit);
    const after = query.cursor === undefined ? undefined : decodeRunCursor(query.cursor);
    const page = await this.#do(
      "list runs",
      (sql) =>
        selectPostgresNewestPage(sql, this.#runs, { ...query, after }, parseRun, encodeRunCursor),
    );
    return { runs: page.items, nextCursor: page.nextCursor };
  }

  /** {@inheritDoc RunStore.update} */
  update(id: string, expectedVersion: number, patch: RunPatch): Promise<Run> {
    return this.#do("update a run", (sql) =>
      sql.begin(async (tx) => {
        const [row] = await tx.unsafe(`select body from ${this.#runs} where id = $1 for update`, [
          id,
        ]);
        if (row === undefined) throw new RunNotFoundError(id);
        const run = parseRun(row.body);
        if (run.version !== expectedVersion) {
          throw new RunVersionConflictError(id, expectedVersion, run.version);
        }
        const next = applyRunPatch(run, patch);
        if (!isActiveRunState(run.state) && isActiveRunState(next.state)) {
          await this.#lockProject(tx, run.project_name);
          const [other] = await tx.unsafe(
            `select id from ${this.#runs}
             where project_name = $1 and id <> $2 and state in ('queued', 'running') limit 1`,
            [run.project_name, id],
          );
          if (other !== undefined) {
            throw new RunAlreadyActiveError(run.project_name, String(other.id));
          }
        }
        await this.#write(tx, next);
        return next;
      }));
  }

  /** {@inheritDoc RunStore.claim} */
  claim(id: string, now: () => string): Promise<Run | undefined> {
    return this.#do("claim a run", (sql) =>
      sql.begin(async (tx) => {
        const [found] = await tx.unsafe(`select project_name from ${this.#runs} where id = $1`, [
          id,
        ]);
        if (found === undefined) throw new RunNotFoundError(id);
        // Claims of one project are taken one at a time across replicas, so two never both start.
        await this.#lockProject(tx, String(found.project_name));
        const [row] = await tx.unsafe(`select body from ${this.#runs} where id = $1 for update`, [
          id,
        ]);
        if (row === undefined) throw new RunNotFoundError(id);
        const run = parseRun(row.body);
        nextRunState(run.state, "start");
        const [blocker] = await tx.unsafe(
          `select id from ${this.#runs} where project_name = $1 and id <> $2 and (state = 'running'
             or (state = 'queued' and (created_at, id) < ($3, $2)))
           limit 1`,
          [run.project_name, id, run.created_at],
        );
        if (blocker !== undefined) return undefined;
        const next = { ...transition(run, "start", now()), version: run.version + 1 };
        await this.#write(tx, next);
        return next;
      }));
  }

  /** {@inheritDoc RunStore.markInterrupted} */
  markInterrupted(at: string, updatedBefore: string = at): Promise<number> {
    return this.#do("mark runs interrupted", (sql) =>
      sql.begin(async (tx) => {
        const rows = await tx.unsafe(
          `select body from ${this.#runs} where state in (${
            ACTIVE_RUN_STATES.map((s) => `'${s}'`).join(", ")
          }) and updated_at < $1 for update`,
          [updatedBefore],
        );
        for (const row of rows) {
          const run = parseRun(row.body);
          await this.#write(tx, { ...transition(run, "interrupt", at), version: run.version + 1 });
        }
        return rows.length;
      }));
  }

  /** {@inheritDoc RunStore.prune} */
  prune(olderThan: string): Promise<number> {
    return this.#do("prune runs", async (sql) => {
      const result = await sql.unsafe(
        `delete from ${this.#runs} where state not in ('queued', 'running') and updated_at < $1`,
        [olderThan],
      );
      return result.count;
    });
  }

  /** {@inheritDoc RunStore.close} */
  async close(): Promise<void> {
    if (this.#call.closed) return;
    this.#call.closed = true;
    await this.#call.sql.end({ timeout: 5 });
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Serialises the creation of runs of one project across every client of this schema. */
  async #lockProject(tx: TransactionSql, project: string): Promise<void> {
    await tx`select pg_advisory_xact_lock(hashtextextended(${`cr8tor run ${this.#schema} ${project}`}, 0))`;
  }

  async #write(tx: TransactionSql, run: Run): Promise<void> {
    await tx.unsafe(
      `update ${this.#runs} set state = $1, updated_at = $2, version = $3, body = $4::jsonb
       where id = $5`,
      [run.state, run.updated_at, run.version, JSON.stringify(run), run.id],
    );
  }

  #do<T>(what: string, body: (sql: Sql) => Promise<T>): Promise<T> {
    return callPostgresStore(this.#call, what, body);
  }
}

/** A stored body, checked against the run schema. */
function parseRun(body: unknown): Run {
  return runSchema.parse(typeof body === "string" ? JSON.parse(body) : body);
}
