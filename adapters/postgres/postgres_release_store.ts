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
import postgres, { type Sql } from "postgres";
import { AppError } from "../../domain/errors.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import { type Decision, type Release, releaseSchema, withRequest } from "../../domain/release.ts";
import {
  applyDecision,
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
import { isZodError, messageOf } from "../shared/errors.ts";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";
import {
  applyPostgresMigrations,
  type PostgresMigration,
  postgresMigrationVersions,
} from "./postgres_migrations.ts";
import {
  postgresClientOptions,
  type PostgresConnectionOptions,
} from "./postgres_source_database.ts";

/** The schema the release store uses when none is given. */
export const DEFAULT_RELEASE_STORE_SCHEMA = "cr8tor_releases";

const MIGRATIONS_TABLE = "release_store_migrations";

/** Where the shared release store lives. */
export interface PostgresReleaseStoreOptions extends PostgresConnectionOptions {
  /** The store's own schema, created if missing. Default {@link DEFAULT_RELEASE_STORE_SCHEMA}. */
  readonly schema?: string;
  /** Connections in the pool. Default 4. */
  readonly maxConnections?: number;
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
export async function openPostgresReleaseStore(
  options: PostgresReleaseStoreOptions,
): Promise<PostgresReleaseStore> {
  const sql = postgres({ ...postgresClientOptions(options), max: options.maxConnections ?? 4 });
  const store = new PostgresReleaseStore(sql, options);
  try {
    await store.migrate();
    return store;
  } catch (e) {
    await store.close();
    throw e;
  }
}

/** A release store in a PostgreSQL schema. Open it with {@link openPostgresReleaseStore}. */
export class PostgresReleaseStore implements ReleaseStore {
  readonly #sql: Sql;
  readonly #schema: string;
  readonly #releases: string;
  readonly #secrets: readonly string[];
  #closed = false;

  /** Takes over a client; use {@link openPostgresReleaseStore}. */
  constructor(sql: Sql, options: PostgresReleaseStoreOptions) {
    this.#sql = sql;
    this.#schema = options.schema ?? DEFAULT_RELEASE_STORE_SCHEMA;
    this.#releases = `${quotePostgresIdentifier(this.#schema)}.releases`;
    this.#secrets = [options.username, options.password].filter((s) => s !== "");
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
    return this.#do("read a release", async (sql) => {
      const [row] = await sql.unsafe(`select body from ${this.#releases} where id = $1`, [id]);
      return row === undefined ? undefined : parseStoredRelease(row.body);
    });
  }

  /** {@inheritDoc ReleaseStore.list} */
  list(query: ListReleasesQuery): Promise<ReleasePage> {
    let after: ReturnType<typeof decodeReleaseCursor> | undefined;
    try {
      checkReleasePageSize(query.limit);
      after = query.cursor === undefined ? undefined : decodeReleaseCursor(query.cursor);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#do("list releases", async (sql) => {
      const where: string[] = [];
      const params: (string | number)[] = [];
      const param = (value: string | number) => `$${params.push(value)}`;
      if (query.project !== undefined) where.push(`project_name = ${param(query.project)}`);
      if (query.state !== undefined) where.push(`state = ${param(query.state)}`);
      if (after !== undefined) {
        where.push(`(created_at, id) < (${param(after.created_at)}, ${param(after.id)})`);
      }
      const rows = await sql.unsafe(
        `select body from ${this.#releases}
         ${where.length === 0 ? "" : `where ${where.join(" and ")}`}
         order by created_at desc, id desc limit ${param(query.limit + 1)}`,
        params,
      );
      const releases = rows.slice(0, query.limit).map((row) => parseStoredRelease(row.body));
      const last = releases.at(-1);
      return {
        releases,
        nextCursor: rows.length > query.limit && last !== undefined
          ? encodeReleaseCursor(last)
          : null,
      };
    });
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

  /** {@inheritDoc ReleaseStore.close} */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#sql.end({ timeout: 5 });
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #do<T>(what: string, body: (sql: Sql) => Promise<T>): Promise<T> {
    if (this.#closed) {
      throw new ReleaseStoreUnavailableError({ logDetail: "the store is closed" });
    }
    try {
      return await body(this.#sql);
    } catch (e) {
      if (e instanceof AppError || e instanceof RangeError || isZodError(e)) throw e;
      throw new ReleaseStoreUnavailableError({
        logDetail: `Cannot ${what}: ${redactSecrets(messageOf(e), this.#secrets)}`,
        cause: e,
      });
    }
  }
}
