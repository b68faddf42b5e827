/**
 * The PostgreSQL destination: loads datasets into a PostgreSQL database with postgres.js.
 *
 * **A load never shows a half-loaded dataset.** It creates a fresh schema named
 * `Cr8torLoad_<24 hex digits>` (the capital letters mean no lower-cased destination name can ever look
 * like one), creates the tables there with faithful types (`postgres_columns.ts`), and streams each table
 * in with `COPY ... FROM STDIN (FORMAT csv)`. Then one transaction drops the dataset's previous schema,
 * renames the new one into place and records the dataset in the registry table
 * `cr8tor_publisher.datasets` (with the released tables, their columns and source types, as `jsonb`, for
 * the release's RO-Crate). If anything fails before that commit, the new schema is dropped and the
 * previous one is untouched.
 *
 * **Leftovers of a crashed process are found safely.** Each load holds a session advisory lock keyed on
 * its temporary schema, on a connection of its own, from before the schema is created until after the
 * rename. {@link PostgresDestinationDatabase.recover} drops only temporary schemas whose lock it can take,
 * so it never touches a load that is still running, in any process.
 *
 * **Rows stream with bounded memory** (`postgres_copy.ts`): a source's CSV fast path or its batches of
 * canonical rows go into `COPY ... FROM STDIN`, at most a batch or a chunk in memory per table. Tables
 * load concurrently, each on its own connection (a postgres.js pool would pipeline a second statement onto
 * a connection that is in the middle of a COPY).
 *
 * **A load stops when its signal is aborted**: no new table starts, every running COPY is abandoned at
 * once (CopyFail, then its connection is closed), the temporary schema is dropped, and `load` rejects with
 * the signal's reason; the dataset's previous tables and registry row are untouched. Progress (rows,
 * bytes) is reported per table as chunks reach the server, then once with `done` per table.
 *
 * **Found by registry, read by grant.** `packagedTables` reads the registry, never a schema-name prefix
 * (`cr8tor-contract.md` §9 item 11). The read-only role is granted nothing at load time; even default
 * privileges are revoked from it on the new tables, so OPAL sees the data only after `grantReadAccess`.
 * A reload drops the grants with the old tables: the new data is hidden again until the next publish.
 *
 * Errors (`postgres_destination_errors.ts`) never include the password; a refused login or a failed
 * connection is reported with a fixed sentence (the driver's message only in `logDetail`, for the service
 * log); a refused value is reported by table, row, column and SQLSTATE, never with the value itself.
 *
 * @module
 */
import { createHash } from "node:crypto";
import postgres, { type Options, type Sql } from "postgres";
import type { TableExtract, TableReader } from "../../domain/catalog.ts";
import { mapConcurrent } from "../../domain/concurrency.ts";
import { AppError } from "../../domain/errors.ts";
import { projectIdentifier } from "../../domain/names.ts";
import { parseStagedTables, releasedTables } from "../../domain/staging_manifest.ts";
import {
  checkLoad,
  type DestinationDatabase,
  type DestinationDataset,
  DestinationProjectConflictError,
  type DestinationRun,
  DestinationSchemaConflictError,
  DestinationTablesNotPackagedError,
  DestinationUnavailableError,
  type LoadedTable,
  type LoadOptions,
  type ReleasedDataset,
} from "../../ports/destination_database.ts";
import { postgresCreateTableSql } from "./postgres_columns.ts";
import { compareNames } from "../shared/collections.ts";
import { copyTable } from "./postgres_copy.ts";
import { destinationFailure, isSqlError, loadFailure } from "./postgres_destination_errors.ts";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";
import {
  postgresClientOptions,
  type PostgresConnectionOptions,
} from "./postgres_source_database.ts";

/** How to reach the destination database (TLS included), and who may read it. */
export interface PostgresDestinationOptions extends PostgresConnectionOptions {
  /**
   * The role OPAL reads with (`DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME`). It must exist; it is
   * granted access only by `grantReadAccess`. The statement timeout does not apply to `COPY`, whose pace
   * is the source's.
   */
  readonly readOnlyRole: string;
}

/** Every temporary schema starts with this; no lower-cased destination schema name can. */
export const TEMPORARY_SCHEMA_PREFIX = "Cr8torLoad_";

const TEMPORARY_SCHEMA = /^Cr8torLoad_([0-9a-f]{24})$/;

/** The schema of the registry table. */
export const REGISTRY_SCHEMA = "cr8tor_publisher";

/** The registry table: one row per loaded dataset. */
export const REGISTRY_TABLE = "datasets";

const REGISTRY = `${quotePostgresIdentifier(REGISTRY_SCHEMA)}.${
  quotePostgresIdentifier(REGISTRY_TABLE)
}`;

/** First keys of this adapter's advisory locks ("cr8L", "cr8S", "cr8R", "cr8P" as 32-bit integers). */
const LOAD_LOCK = 0x6372384c;
const SWAP_LOCK = 0x63723853;
const REGISTRY_LOCK = 0x63723852;
const PROJECT_LOCK = 0x63723850;

/** A fresh temporary schema name with 96 random bits. */
export function temporarySchemaName(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return TEMPORARY_SCHEMA_PREFIX +
    Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The second key of the advisory lock a load holds on its temporary schema (the first is "cr8L"), or
 * `undefined` when the name is not a temporary schema's.
 */
export function loadLockKey(temporarySchema: string): number | undefined {
  const match = TEMPORARY_SCHEMA.exec(temporarySchema);
  return match === null ? undefined : parseInt(match[1]!.slice(0, 8), 16) | 0;
}

/** A load in progress: its own connection, which holds the lock, and its temporary schema. */
interface LoadSession {
  readonly sql: Sql;
  readonly temporary: string;
}

/** A destination database backed by postgres.js clients. */
export class PostgresDestinationDatabase implements DestinationDatabase {
  readonly #options: PostgresDestinationOptions;
  /** One connection for checks, the registry, grants and recovery. */
  readonly #admin: Sql;
  /** Clients of running loads, ended by {@link close} too. */
  readonly #loadClients = new Set<Sql>();
  #registry: Promise<void> | undefined;
  #closed = false;
  #lost = false;

  /**
   * Connects lazily: nothing is sent before the first call.
   *
   * @param options where the destination is and who may read it.
   */
  constructor(options: PostgresDestinationOptions) {
    this.#options = options;
    this.#admin = postgres(this.#clientOptions({ copy: false }));
  }

  /**
   * Checks that the login may create schemas in the database and that the read-only role exists, then
   * creates the registry if it is missing and checks that the login may write it.
   *
   * @throws {DestinationLoginRefusedError} when the server refuses the login.
   * @throws {DestinationConnectionError} when the server cannot be reached.
   * @throws {DestinationUnavailableError} when a check fails.
   */
  async checkReady(): Promise<void> {
    this.#assertOpen();
    await this.#run("Cannot check the PostgreSQL destination", async () => {
      const [facts] = await this.#admin<
        { login: string; database: string; can_create: boolean; reader_exists: boolean }[]
      >`
        select current_user as login, current_database() as database,
               pg_catalog.has_database_privilege(current_database(), 'CREATE') as can_create,
               exists (select 1 from pg_catalog.pg_roles where rolname = ${this.#options.readOnlyRole})
                 as reader_exists`;
      if (facts === undefined) throw new Error("the server returned no row");
      if (!facts.can_create) {
        throw new DestinationUnavailableError(
          `Cannot create schemas in PostgreSQL database "${facts.database}": login "${facts.login}" ` +
            `lacks the CREATE privilege on it`,
        );
      }
      if (!facts.reader_exists) {
        throw new DestinationUnavailableError(
          `Cannot use read-only role "${this.#options.readOnlyRole}": it does not exist in ` +
            `PostgreSQL database "${facts.database}"`,
        );
      }
      await this.#ensureRegistry();
      const [registry] = await this.#admin<{ writable: boolean }[]>`
        select pg_catalog.has_table_privilege(${REGISTRY}, 'SELECT, INSERT, UPDATE') as writable`;
      if (registry?.writable !== true) {
        throw new DestinationUnavailableError(
          `Cannot write the registry ${REGISTRY_SCHEMA}.${REGISTRY_TABLE}: login "${facts.login}" ` +
            `lacks SELECT, INSERT or UPDATE on it`,
        );
      }
    });
  }

  /**
   * Loads the tables into a fresh temporary schema, then swaps it in for the dataset's schema in one
   * transaction. An aborted `options.signal` stops it at any point before that commit: the temporary
   * schema is dropped and the signal's reason is thrown.
   */
  async load(
    dataset: DestinationDataset,
    source: TableReader,
    tables: readonly TableExtract[],
    options: LoadOptions,
  ): Promise<LoadedTable[]> {
    this.#assertOpen();
    const schema = checkLoad(dataset, tables, options);
    const { signal } = options;
    signal?.throwIfAborted();
    await this.#run(`Cannot load into destination schema "${schema}"`, async () => {
      await this.#ensureRegistry();
      await checkProjectIdentifier(this.#admin, dataset.project);
      await checkOwner(this.#admin, schema, dataset);
    });

    signal?.throwIfAborted();
    const session = await this.#run(
      `Cannot load into destination schema "${schema}"`,
      () => this.#startLoad(tables),
    );
    let failed = false;
    try {
      signal?.throwIfAborted();
      await this.#copyTables(session.temporary, schema, source, tables, options);
      await this.#swap(session, schema, dataset, tables, signal);
    } catch (e) {
      failed = true;
      await this.#discard(session);
      if (signal?.aborted === true) throw signal.reason;
      throw loadFailure(e, `Cannot load into destination schema "${schema}"`, this.#password);
    } finally {
      this.#loadClients.delete(session.sql);
      await session.sql.end({ timeout: failed ? 0 : 5 }).catch(() => {});
    }
    return tables.map((t) => ({ schema, table: t.table.name })).sort(byTable);
  }

  async packagedTables(run: DestinationRun): Promise<LoadedTable[]> {
    this.#assertOpen();
    return await this.#run("Cannot list packaged tables in PostgreSQL", async () => {
      await this.#ensureRegistry();
      const rows = await this.#admin<{ schema: string; table: string }[]>`
        select d.destination_schema as "schema", t.name as "table"
          from ${this.#admin(REGISTRY_SCHEMA)}.${this.#admin(REGISTRY_TABLE)} d
         cross join lateral unnest(d.tables) as t(name)
         where d.project_name = ${run.project}
           and d.project_start_time = ${run.startTime}
           and to_regclass(format('%I.%I', d.destination_schema, t.name)) is not null
         order by d.destination_schema collate "C", t.name collate "C"`;
      return rows.map((r) => ({ schema: r.schema, table: r.table }));
    });
  }

  /** A registry row without `released` (written before the column existed) gives `tables: null`. */
  async releasedDatasets(run: DestinationRun): Promise<ReleasedDataset[]> {
    this.#assertOpen();
    return await this.#run("Cannot read the released tables in PostgreSQL", async () => {
      await this.#ensureRegistry();
      const rows = await this.#admin<{ schema: string; schema_name: string; released: unknown }[]>`
        select destination_schema as "schema", schema_name, released
          from ${this.#admin(REGISTRY_SCHEMA)}.${this.#admin(REGISTRY_TABLE)}
         where project_name = ${run.project}
           and project_start_time = ${run.startTime}
         order by schema_name collate "C"`;
      return rows.map((r) => ({
        schemaName: r.schema_name,
        schema: r.schema,
        tables: r.released === null ? null : parseStagedTables(r.released) ?? null,
      }));
    });
  }

  async stagingDigest(run: DestinationRun): Promise<string | null> {
    this.#assertOpen();
    return await this.#run("Cannot read the packaged tables in PostgreSQL", async () => {
      await this.#ensureRegistry();
      // A load builds a new schema and renames it into place, so the tables' oids change with every
      // load; the registry row's packaged_at and xmin do too.
      const rows = await this.#admin<{ schema: string; load: string }[]>`
        select d.destination_schema as "schema",
               concat_ws(' ', d.xmin::text, d.packaged_at::text, array_to_string(array(
                 select t.name || '=' || coalesce(to_regclass(format('%I.%I', d.destination_schema, t.name))::oid::text, '')
                   from unnest(d.tables) as t(name) order by t.name collate "C"), ',')) as "load"
          from ${this.#admin(REGISTRY_SCHEMA)}.${this.#admin(REGISTRY_TABLE)} d
         where d.project_name = ${run.project}
           and d.project_start_time = ${run.startTime}
         order by d.destination_schema collate "C"`;
      if (rows.length === 0) return null;
      const loads = rows.map((r) => [r.schema, r.load]);
      return createHash("sha256").update(JSON.stringify(loads)).digest("hex");
    });
  }

  async grantReadAccess(tables: readonly LoadedTable[]): Promise<void> {
    this.#assertOpen();
    if (tables.length === 0) return;
    const reader = quotePostgresIdentifier(this.#options.readOnlyRole);
    await this.#run("Cannot grant read access in PostgreSQL", async () => {
      await this.#ensureRegistry();
      await this.#admin.begin(async (tx) => {
        const schemas = [...new Set(tables.map((t) => t.schema))].sort();
        // FOR SHARE waits for a load that is replacing one of these schemas, then sees its tables.
        const registered = await tx<{ schema: string; tables: string[] }[]>`
          select destination_schema as "schema", tables
            from ${tx(REGISTRY_SCHEMA)}.${tx(REGISTRY_TABLE)}
           where destination_schema = any(${tx.array(schemas)}::text[])
             for share`;
        const known = new Set(registered.flatMap((r) => r.tables.map((t) => `${r.schema}\0${t}`)));
        const missing = tables.filter((t) => !known.has(`${t.schema}\0${t.table}`));
        if (missing.length > 0) throw new DestinationTablesNotPackagedError(missing);
        for (const schema of schemas) {
          await tx.unsafe(`grant usage on schema ${quotePostgresIdentifier(schema)} to ${reader}`);
        }
        for (const { schema, table } of tables) {
          await tx.unsafe(
            `grant select on table ${quotePostgresIdentifier(schema)}.${
              quotePostgresIdentifier(table)
            } to ${reader}`,
          );
        }
      });
    });
  }

  async countRows(tables: readonly LoadedTable[]): Promise<{ table: LoadedTable; rows: number }[]> {
    this.#assertOpen();
    return await this.#run("Cannot count the rows of a destination table", async () => {
      const counts: { table: LoadedTable; rows: number }[] = [];
      for (const table of tables) {
        const [row] = await this.#admin.unsafe<{ rows: string }[]>(
          `select count(*)::text as rows from ${quotePostgresIdentifier(table.schema)}.${
            quotePostgresIdentifier(table.table)
          }`,
        );
        counts.push({
          table: { schema: table.schema, table: table.table },
          rows: Number(row!.rows),
        });
      }
      return counts;
    });
  }

  async dropRun(run: DestinationRun): Promise<LoadedTable[]> {
    this.#assertOpen();
    return await this.#run("Cannot drop the run's tables in PostgreSQL", async () => {
      await this.#ensureRegistry();
      return await this.#admin.begin(async (tx) => {
        // The same locks as a load's swap, in the same order: a load of this run waits, or goes first.
        await tx`select pg_advisory_xact_lock(${PROJECT_LOCK}::int4,
                                              hashtext(${projectIdentifier(run.project)}))`;
        const rows = await tx<{ schema: string; tables: string[] }[]>`
          select destination_schema as "schema", tables
            from ${tx(REGISTRY_SCHEMA)}.${tx(REGISTRY_TABLE)}
           where project_name = ${run.project} and project_start_time = ${run.startTime}
           order by destination_schema collate "C"
             for update`;
        const dropped: LoadedTable[] = [];
        for (const { schema, tables } of rows) {
          await tx`select pg_advisory_xact_lock(${SWAP_LOCK}::int4, hashtext(${schema}))`;
          const [exists] = await tx<{ exists: boolean }[]>`
            select exists (select 1 from pg_catalog.pg_namespace where nspname = ${schema})`;
          if (exists?.exists === true) {
            await tx.unsafe(`drop schema ${quotePostgresIdentifier(schema)} cascade`);
            dropped.push(...tables.map((table) => ({ schema, table })));
          }
          await tx`
            delete from ${tx(REGISTRY_SCHEMA)}.${tx(REGISTRY_TABLE)}
             where destination_schema = ${schema}`;
        }
        return dropped.sort(byTable);
      });
    });
  }

  async recover(): Promise<string[]> {
    this.#assertOpen();
    return await this.#run("Cannot recover interrupted loads in PostgreSQL", async () => {
      const rows = await this.#admin<{ name: string }[]>`
        select nspname as name from pg_catalog.pg_namespace
         where left(nspname, ${TEMPORARY_SCHEMA_PREFIX.length}::int) = ${TEMPORARY_SCHEMA_PREFIX}
         order by nspname collate "C"`;
      const dropped: string[] = [];
      for (const { name } of rows) {
        if (await dropIfAbandoned(this.#admin, name)) dropped.push(name);
      }
      return dropped;
    });
  }

  /**
   * Ends every connection, waiting up to five seconds for running statements (not at all once a
   * connection was lost); running loads then fail and leave their temporary schema to {@link recover}.
   * Safe to call twice.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const timeout = this.#lost ? 0 : 5;
    await Promise.all([
      this.#admin.end({ timeout }),
      ...[...this.#loadClients].map((sql) => sql.end({ timeout })),
    ]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  get #password(): string {
    return this.#options.password;
  }

  /**
   * postgres.js options: those of the sources (one connection, TLS, canonical session, timeouts,
   * `application_name`). The connections that run `COPY` have no statement timeout, and skip
   * postgres.js's array-type query at connect time: they send no parameters, and an aborted load closes
   * them at once, which would leave that query's failure unhandled inside the driver.
   */
  #clientOptions({ copy }: { copy: boolean }): Options<never> {
    const base = postgresClientOptions(this.#options);
    return copy
      ? { ...base, fetch_types: false, connection: { ...base.connection, statement_timeout: 0 } }
      : base;
  }

  #newLoadClient(copy: boolean): Sql {
    const sql = postgres(this.#clientOptions({ copy }));
    this.#loadClients.add(sql);
    return sql;
  }

  /** Creates the registry once per instance (again after a failure), under a lock, if it is missing. */
  #ensureRegistry(): Promise<void> {
    this.#registry ??= this.#admin.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${REGISTRY_LOCK}::int4, 0)`;
      await tx.unsafe(`
        create schema if not exists ${quotePostgresIdentifier(REGISTRY_SCHEMA)};
        create table if not exists ${REGISTRY} (
          destination_schema text primary key,
          project_name text not null,
          project_start_time text not null,
          schema_name text not null,
          tables text[] not null,
          packaged_at timestamptz not null default now()
        );
        alter table ${REGISTRY} add column if not exists released jsonb;
        create index if not exists datasets_by_run on ${REGISTRY} (project_name, project_start_time);
        comment on table ${REGISTRY} is
          'Datasets loaded by the CR8TOR publish service: which schema holds which dataset';
        revoke all on schema ${quotePostgresIdentifier(REGISTRY_SCHEMA)} from public;
        revoke all on table ${REGISTRY} from public;`);
      // Default privileges may have handed the new registry to the read-only role: take them back.
      const [reader] = await tx<{ exists: boolean }[]>`
        select exists (select 1 from pg_catalog.pg_roles where rolname = ${this.#options.readOnlyRole})`;
      if (reader?.exists === true) {
        const role = quotePostgresIdentifier(this.#options.readOnlyRole);
        await tx.unsafe(
          `revoke all on schema ${quotePostgresIdentifier(REGISTRY_SCHEMA)} from ${role};
           revoke all on table ${REGISTRY} from ${role}`,
        );
      }
    }).then(
      () => {},
      (e: unknown) => {
        this.#registry = undefined;
        throw e;
      },
    );
    return this.#registry;
  }

  /**
   * Opens the load's own connection, takes the advisory lock on a fresh temporary schema name, and
   * creates that schema with empty tables, all privileges revoked from PUBLIC and the read-only role.
   */
  async #startLoad(tables: readonly TableExtract[]): Promise<LoadSession> {
    const sql = this.#newLoadClient(false);
    try {
      let temporary: string | undefined;
      for (let attempt = 0; attempt < 5 && temporary === undefined; attempt++) {
        const name = temporarySchemaName();
        const [row] = await sql<{ locked: boolean }[]>`
          select pg_try_advisory_lock(${LOAD_LOCK}::int4, ${loadLockKey(name)!}::int4) as locked`;
        if (row?.locked === true) temporary = name;
      }
      if (temporary === undefined) throw new Error("no free temporary schema name after 5 tries");
      const schema = quotePostgresIdentifier(temporary);
      const reader = quotePostgresIdentifier(this.#options.readOnlyRole);
      await sql.begin(async (tx) => {
        await tx.unsafe(`create schema ${schema}`);
        for (const { table } of tables) await tx.unsafe(postgresCreateTableSql(temporary, table));
        await tx.unsafe(`revoke all on schema ${schema} from public, ${reader}`);
        await tx.unsafe(`revoke all on all tables in schema ${schema} from public, ${reader}`);
      });
      return { sql, temporary };
    } catch (e) {
      this.#loadClients.delete(sql);
      await sql.end({ timeout: 0 }).catch(() => {});
      throw e;
    }
  }

  /**
   * Streams every table into the temporary schema, `concurrency` at a time, one connection each. The
   * first failure, or an abort of `options.signal`, stops every running COPY and starts no other table.
   */
  async #copyTables(
    temporary: string,
    schema: string,
    source: TableReader,
    tables: readonly TableExtract[],
    options: LoadOptions,
  ): Promise<void> {
    if (tables.length === 0) return;
    const clients = Array.from(
      { length: Math.min(options.concurrency, tables.length) },
      () => this.#newLoadClient(true),
    );
    const free = [...clients];
    const stop = new AbortController();
    const signal = options.signal === undefined
      ? stop.signal
      : AbortSignal.any([options.signal, stop.signal]);
    try {
      await mapConcurrent(tables, options.concurrency, async (extract) => {
        signal.throwIfAborted();
        const sql = free.pop()!;
        try {
          await copyTable(sql, { temporary, schema }, source, extract, {
            read: options,
            signal,
            onProgress: options.onProgress,
          });
        } catch (e) {
          stop.abort(e);
          throw e;
        } finally {
          free.push(sql);
        }
      });
    } finally {
      const timeout = signal.aborted ? 0 : 5;
      await Promise.all(clients.map(async (sql) => {
        this.#loadClients.delete(sql);
        await sql.end({ timeout }).catch(() => {});
      }));
    }
  }

  /**
   * Replaces the dataset's schema with the loaded one and records it, in one transaction on the load's
   * connection, serialised per project identifier and then per destination schema by transaction advisory
   * locks (always taken in that order). The signal is checked once the locks are held and again just
   * before the commit; an abort after that finds the load done.
   */
  async #swap(
    session: LoadSession,
    schema: string,
    dataset: DestinationDataset,
    tables: readonly TableExtract[],
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const names = tables.map((t) => t.table.name).sort(compareNames);
    const released = releasedTables(tables);
    await session.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${PROJECT_LOCK}::int4,
                                            hashtext(${projectIdentifier(dataset.project)}))`;
      await checkProjectIdentifier(tx, dataset.project);
      await tx`select pg_advisory_xact_lock(${SWAP_LOCK}::int4, hashtext(${schema}))`;
      const exists = await checkOwner(tx, schema, dataset, { forUpdate: true });
      signal?.throwIfAborted();
      if (exists) await tx.unsafe(`drop schema ${quotePostgresIdentifier(schema)} cascade`);
      await tx.unsafe(
        `alter schema ${quotePostgresIdentifier(session.temporary)} rename to ${
          quotePostgresIdentifier(schema)
        }`,
      );
      await tx`
        insert into ${tx(REGISTRY_SCHEMA)}.${tx(REGISTRY_TABLE)}
               (destination_schema, project_name, project_start_time, schema_name, tables, released,
                packaged_at)
        values (${schema}, ${dataset.project}, ${dataset.startTime}, ${dataset.schemaName},
                ${tx.array(names)}::text[], ${tx.json(released)}, now())
        on conflict (destination_schema) do update
           set project_name = excluded.project_name,
               project_start_time = excluded.project_start_time,
               schema_name = excluded.schema_name,
               tables = excluded.tables,
               released = excluded.released,
               packaged_at = excluded.packaged_at`;
      signal?.throwIfAborted();
    });
  }

  /**
   * Drops a failed load's temporary schema on its own connection; if that connection is gone (and with
   * it the lock), through the admin connection the way {@link recover} would. What cannot be dropped now
   * is left to {@link recover}.
   */
  async #discard(session: LoadSession): Promise<void> {
    try {
      await session.sql.unsafe(
        `drop schema if exists ${quotePostgresIdentifier(session.temporary)} cascade`,
      );
      return;
    } catch {
      // The load's connection is gone; its lock went with it.
    }
    await dropIfAbandoned(this.#admin, session.temporary).catch(() => {});
  }

  #assertOpen(): void {
    if (this.#closed) {
      throw new DestinationUnavailableError("Cannot use a closed PostgreSQL destination");
    }
  }

  /** Runs `work`, turning anything but an {@link AppError} into a {@link DestinationUnavailableError}. */
  async #run<T>(action: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (e) {
      if (e instanceof AppError || e instanceof RangeError) throw e;
      if (!isSqlError(e)) this.#lost = true;
      throw destinationFailure(e, action, this.#password);
    }
  }
}

/**
 * Opens a PostgreSQL destination and proves it with {@link PostgresDestinationDatabase.checkReady}.
 *
 * @throws {DestinationLoginRefusedError} when the server refuses the login.
 * @throws {DestinationConnectionError} when the server cannot be reached.
 * @throws {DestinationUnavailableError} when a check fails.
 */
export async function connectPostgresDestination(
  options: PostgresDestinationOptions,
): Promise<PostgresDestinationDatabase> {
  const destination = new PostgresDestinationDatabase(options);
  try {
    await destination.checkReady();
  } catch (e) {
    await destination.close().catch(() => {});
    throw e;
  }
  return destination;
}

/** Either the whole client or a transaction of it: what the registry queries run on. */
type Queryable = Sql | postgres.TransactionSql;

/**
 * Checks that the destination schema is free for this dataset: either absent, or registered to the same
 * (project, start time, schema name). With `forUpdate` the registry row is locked until the transaction
 * ends.
 *
 * @returns whether the schema exists.
 * @throws {DestinationSchemaConflictError} when it is registered to another dataset or not registered.
 */
async function checkOwner(
  sql: Queryable,
  schema: string,
  dataset: DestinationDataset,
  { forUpdate = false }: { forUpdate?: boolean } = {},
): Promise<boolean> {
  const [owner] = await sql<{ project: string; start_time: string; schema_name: string }[]>`
    select project_name as project, project_start_time as start_time, schema_name
      from ${sql(REGISTRY_SCHEMA)}.${sql(REGISTRY_TABLE)}
     where destination_schema = ${schema}
     ${forUpdate ? sql`for update` : sql``}`;
  const [namespace] = await sql<{ exists: boolean }[]>`
    select exists (select 1 from pg_catalog.pg_namespace where nspname = ${schema}) as exists`;
  const exists = namespace?.exists === true;
  if (owner === undefined) {
    if (exists) throw new DestinationSchemaConflictError(schema, undefined);
    return false;
  }
  if (
    owner.project !== dataset.project || owner.start_time !== dataset.startTime ||
    owner.schema_name !== dataset.schemaName
  ) {
    throw new DestinationSchemaConflictError(schema, {
      project: owner.project,
      startTime: owner.start_time,
      schemaName: owner.schema_name,
    });
  }
  return exists;
}

/**
 * Checks that no other project holds the project's identifier (`projectIdentifier`), which names its
 * schemas and its OPAL project. Two names meet there only through a 32-bit hash collision, which someone
 * could craft; the registry makes the first project the identifier's owner. The registry is narrowed by
 * schema prefix (every schema of the identifier starts with `{identifier}_`), then the candidates'
 * identifiers are computed exactly.
 *
 * @throws {DestinationProjectConflictError} when another project name has the same identifier.
 */
async function checkProjectIdentifier(sql: Queryable, project: string): Promise<void> {
  const identifier = projectIdentifier(project);
  const prefix = `${identifier}_`;
  const candidates = await sql<{ project: string }[]>`
    select distinct project_name as project
      from ${sql(REGISTRY_SCHEMA)}.${sql(REGISTRY_TABLE)}
     where left(destination_schema, ${prefix.length}::int) = ${prefix}
       and project_name <> ${project}`;
  const owner = candidates.find((c) => projectIdentifier(c.project) === identifier);
  if (owner !== undefined) {
    throw new DestinationProjectConflictError(project, owner.project, identifier);
  }
}

/**
 * Drops a temporary schema if no load holds its lock, in one transaction that holds the lock itself.
 *
 * @returns whether it was dropped.
 */
async function dropIfAbandoned(sql: Sql, temporary: string): Promise<boolean> {
  const key = loadLockKey(temporary);
  if (key === undefined) return false;
  return await sql.begin(async (tx) => {
    const [row] = await tx<{ locked: boolean }[]>`
      select pg_try_advisory_xact_lock(${LOAD_LOCK}::int4, ${key}::int4) as locked`;
    if (row?.locked !== true) return false;
    await tx.unsafe(`drop schema if exists ${quotePostgresIdentifier(temporary)} cascade`);
    return true;
  });
}

function byTable(a: LoadedTable, b: LoadedTable): number {
  return compareNames(a.schema, b.schema) || compareNames(a.table, b.table);
}
