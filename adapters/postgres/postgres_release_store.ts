/**
 * The shared release store of the approval service: a schema of its own (`cr8tor_releases` by default) in
 * a PostgreSQL database, for several approval replicas. Connections are made as for the sources
 * (`postgresClientOptions`: verified TLS by default, never a fallback to plain text).
 *
 * Concurrency: migrations run in one transaction under an advisory lock on the schema (replicas starting
 * together apply each version once); a release is found or created with `insert … on conflict do nothing`
 * on its unique project-run key, so one release per project run; a decision is made on the release row
 * locked `for update`, so concurrent decisions from any replica are recorded one after the other, each on
 * the release as the previous left it.
 *
 * @module
 */
import type { Sql } from "postgres";
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

/** The schema the release store uses when none is given. */
export const DEFAULT_RELEASE_STORE_SCHEMA = "cr8tor_releases";

const MIGRATIONS_TABLE = "release_store_migrations";

/** Where the shared release store lives. */
export interface PostgresReleaseStoreOptions extends PostgresStorePoolOptions {
  /** The store's own schema, created if missing. Default {@link DEFAULT_RELEASE_STORE_SCHEMA}. */
  readonly schema?: string;
}

/**
 * The schema, one migration per version, applied in order, each once; `%s` is the quoted schema. Never
 * edit one that has shipped: add the next. `release_key` (`releaseKey`) is unique: one release per
 * project run.
 */
export const POSTGRES_RELEASE_STORE_MIGRATIONS: readonly PostgresMigration[] = [
  {
    version: 1,
    sql: `
      create table %s.releases (
        id text collate "C" primary key,
        release_key text not null unique,
        project_name text not null,
        state text not null,
        created_at text collate "C" not null,
        body jsonb not null
      );
      create index releases_newest on %s.releases (created_at desc, id desc);
      create index releases_project_newest on %s.releases (project_name, created_at desc, id desc);
    `,
  },
];

/**
 * Connects, creates the schema if needed and applies the migrations it lacks. Several replicas may open
 * the same schema at once.
 *
 * @throws {ReleaseStoreUnavailableError} when the server cannot be reached or the migrations fail; the
 *   driver's message, without the user name and password, is its `logDetail`.
 */
export function openPostgresReleaseStore(
  options: PostgresReleaseStoreOptions,
): Promise<PostgresReleaseStore> {
  return openPostgresStore(options, (sql) => new PostgresReleaseStore(sql, options));
}

/** A release store in a PostgreSQL schema. Open it with {@link openPostgresReleaseStore}. */
export class PostgresReleaseStore implements ReleaseStore {
  readonly #call: PostgresStoreCall;
  readonly #schema: string;
  readonly #releases: string;

  /** Takes over a client; use {@link openPostgresReleaseStore}. */
  constructor(sql: Sql, options: PostgresReleaseStoreOptions) {
    this.#schema = options.schema ?? DEFAULT_RELEASE_STORE_SCHEMA;
    this.#releases = `${quotePostgresIdentifier(this.#schema)}.releases`;
    this.#call = newPostgresStoreCall(
      sql,
      options,
      (error) => new ReleaseStoreUnavailableError(error),
    );
  }

  /** Applies the migrations the schema lacks, under an advisory lock on the schema. */
  migrate(): Promise<void> {
    return this.#do(
      "migrate the release store",
      (sql) =>
        applyPostgresMigrations(
          sql,
          this.#schema,
          "cr8tor release store",
          MIGRATIONS_TABLE,
          POSTGRES_RELEASE_STORE_MIGRATIONS,
        ),
    );
  }

  /** The migration versions recorded in the schema, in order. */
  migrationVersions(): Promise<number[]> {
    return this.#do(
      "read the migrations",
      (sql) => postgresMigrationVersions(sql, this.#schema, MIGRATIONS_TABLE),
    );
  }

  /** {@inheritDoc ReleaseStore.ensure} */
  ensure(release: Release): Promise<EnsureReleaseResult> {
    return this.#do("ensure a release", async (sql) => {
      const valid = releaseSchema.parse(release);
      const key = releaseKey(valid);
      const [inserted] = await sql.unsafe(
        `insert into ${this.#releases} (id, release_key, project_name, state, created_at, body)
         values ($1, $2, $3, $4, $5, $6::jsonb)
         on conflict (release_key) do nothing
         returning id`,
        [valid.id, key, valid.project_name, valid.state, valid.created_at, JSON.stringify(valid)],
      );
      if (inserted !== undefined) return { release: valid, created: true };
      return await sql.begin(async (tx) => {
        const [row] = await tx.unsafe(
          `select body from ${this.#releases} where release_key = $1 for update`,
          [key],
        );
        if (row === undefined) throw new Error("a conflicting release vanished");
        const existing = parseStoredRelease(row.body);
        const updated = withRequest(existing, valid.request);
        if (updated === undefined) return { release: existing, created: false };
        await tx.unsafe(`update ${this.#releases} set body = $1::jsonb where id = $2`, [
          JSON.stringify(updated),
          updated.id,
        ]);
        return { release: updated, created: false };
      });
    });
  }

  /** {@inheritDoc ReleaseStore.get} */
  get(id: string): Promise<Release | undefined> {
    return this.#do(
      "read a release",
      (sql) => selectPostgresById(sql, this.#releases, id, parseStoredRelease),
    );
  }

  /** {@inheritDoc ReleaseStore.list} */
  async list(query: ListReleasesQuery): Promise<ReleasePage> {
    checkReleasePageSize(query.limit);
    const after = query.cursor === undefined ? undefined : decodeReleaseCursor(query.cursor);
    const page = await this.#do(
      "list releases",
      (sql) =>
        selectPostgresNewestPage(
          sql,
          this.#releases,
          { ...query, after },
          parseStoredRelease,
          encodeReleaseCursor,
        ),
    );
    return { releases: page.items, nextCursor: page.nextCursor };
  }

  /** {@inheritDoc ReleaseStore.decide} */
  decide(id: string, decide: (release: Release) => Decision): Promise<DecideResult> {
    return this.#do("record a decision", (sql) =>
      sql.begin(async (tx) => {
        const [row] = await tx.unsafe(
          `select body from ${this.#releases} where id = $1 for update`,
          [id],
        );
        if (row === undefined) throw new ReleaseNotFoundError(id);
        const result = applyDecision(parseStoredRelease(row.body), decide);
        await tx.unsafe(
          `update ${this.#releases} set state = $1, body = $2::jsonb where id = $3`,
          [result.release.state, JSON.stringify(result.release), id],
        );
        return result;
      }));
  }

  /** {@inheritDoc ReleaseStore.update} */
  update(id: string, change: (release: Release) => Release): Promise<Release> {
    return this.#do("change a release", (sql) =>
      sql.begin(async (tx) => {
        const [row] = await tx.unsafe(
          `select body from ${this.#releases} where id = $1 for update`,
          [id],
        );
        if (row === undefined) throw new ReleaseNotFoundError(id);
        const release = parseStoredRelease(row.body);
        const next = applyReleaseChange(release, change);
        if (next === undefined) return release;
        await tx.unsafe(
          `update ${this.#releases} set state = $1, body = $2::jsonb where id = $3`,
          [next.state, JSON.stringify(next), id],
        );
        return next;
      }));
  }

  /** {@inheritDoc ReleaseStore.close} */
  async close(): Promise<void> {
    if (this.#call.closed) return;
    this.#call.closed = true;
    await this.#call.sql.end({ timeout: 5 });
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #do<T>(what: string, body: (sql: Sql) => Promise<T>): Promise<T> {
    return callPostgresStore(this.#call, what, body);
  }
}
