/**
 * The PostgreSQL destination: loads datasets into a PostgreSQL database with postgres.js.
 *
 * **A load never shows a half-loaded dataset.** It creates a fresh schema named
 * `Cr8torLoad_<24 hex digits>` (the capital letters mean no lower-cased destination name can ever look
 * like one), creates the tables there with faithful types (`postgres_columns.ts`), and streams each table
 * in with `COPY ... FROM STDIN (FORMAT csv)`. Then one transaction drops the dataset's previous schema,
 * renames the new one into place and records the dataset in the registry table
 * `cr8tor_publisher.datasets`. If anything fails before that commit, the new schema is dropped and the
 * previous one is untouched.
 *
 * **Leftovers of a crashed process are found safely.** Each load holds a session advisory lock keyed on
 * its temporary schema, on a connection of its own, from before the schema is created until after the
 * rename. {@link PostgresDestinationDatabase.recover} drops only temporary schemas whose lock it can take,
 * so it never touches a load that is still running, in any process.
 *
 * **Rows stream with bounded memory.** A source with a CSV fast path (PostgreSQL `COPY TO`) is piped
 * straight into `COPY FROM` (its header line skipped by `HEADER`); otherwise each batch of canonical rows
 * is encoded with `domain/csv.ts`, times and timestamps first cut to microseconds (SQL Server's seventh
 * fraction digit is truncated, never rounded: `truncateToMicroseconds` in `domain/logical_type.ts`; the
 * CSV fast path only ever comes from PostgreSQL, which has six digits at most). Both go through a
 * Node.js pipeline into postgres.js's COPY stream, whose write callback waits for the socket, so at most
 * a batch or a chunk is in memory per table. Tables load concurrently, each on its own connection (a
 * postgres.js pool would pipeline a second statement onto a connection that is in the middle of a COPY).
 *
 * **Found by registry, read by grant.** `packagedTables` reads the registry, never a schema-name prefix
 * (`cr8tor-contract.md` §9 item 11). The read-only role is granted nothing at load time; even default
 * privileges are revoked from it on the new tables, so OPAL sees the data only after `grantReadAccess`.
 * A reload drops the grants with the old tables: the new data is hidden again until the next publish.
 *
 * Two postgres.js details shape the COPY code, see {@link copyIn}. Errors never include the password; a
 * refused login or a failed connection is reported with a fixed sentence (the driver's message only in
 * `logDetail`, for the service log); a refused value is reported by table, row, column and SQLSTATE, never
 * with the value itself.
 *
 * @module
 */
import { pipeline } from "node:stream/promises";
import postgres, { type Options, type Sql } from "postgres";
import type { ReadRowsOptions, TableExtract, TableReader } from "../../domain/catalog.ts";
import { mapConcurrent } from "../../domain/concurrency.ts";
import { encodeCsvRows, utf8Bytes } from "../../domain/csv.ts";
import {
  checkDestinationIdentifier,
  destinationSchemaName,
} from "../../domain/destination_schema.ts";
import { AppError } from "../../domain/errors.ts";
import { projectIdentifier } from "../../domain/names.ts";
import { type CanonicalRow, truncateToMicroseconds } from "../../domain/logical_type.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import {
  DestinationConnectionError,
  type DestinationDatabase,
  type DestinationDataset,
  DestinationLoginRefusedError,
  DestinationProjectConflictError,
  type DestinationRun,
  DestinationSchemaConflictError,
  DestinationTablesNotPackagedError,
  DestinationUnavailableError,
  DestinationValueError,
  type DestinationValuePosition,
  type LoadedTable,
  type LoadOptions,
} from "../../ports/destination_database.ts";
import { postgresCreateTableSql } from "./postgres_columns.ts";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";
import {
  isPostgresLoginRefusal,
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

  async load(
    dataset: DestinationDataset,
    source: TableReader,
    tables: readonly TableExtract[],
    options: LoadOptions,
  ): Promise<LoadedTable[]> {
    this.#assertOpen();
    checkLoadOptions(options);
    const schema = destinationSchemaName(dataset.project, dataset.startTime, dataset.schemaName);
    checkTables(tables);
    await this.#run(`Cannot load into destination schema "${schema}"`, async () => {
      await this.#ensureRegistry();
      await checkProjectIdentifier(this.#admin, dataset.project);
      await checkOwner(this.#admin, schema, dataset);
    });

    const session = await this.#run(
      `Cannot load into destination schema "${schema}"`,
      () => this.#startLoad(tables),
    );
    let failed = false;
    try {
      await this.#copyTables(session.temporary, schema, source, tables, options);
      await this.#swap(session, schema, dataset, tables);
    } catch (e) {
      failed = true;
      await this.#discard(session);
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
   * `application_name`), with no statement timeout for the connections that run `COPY`.
   */
  #clientOptions({ copy }: { copy: boolean }): Options<never> {
    const base = postgresClientOptions(this.#options);
    return copy ? { ...base, connection: { ...base.connection, statement_timeout: 0 } } : base;
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

  /** Streams every table into the temporary schema, `concurrency` at a time, one connection each. */
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
    try {
      await mapConcurrent(tables, options.concurrency, async (extract) => {
        const sql = free.pop()!;
        try {
          await copyTable(sql, { temporary, schema }, source, extract, {
            read: options,
            signal: stop.signal,
          });
        } catch (e) {
          stop.abort(e);
          throw e;
        } finally {
          free.push(sql);
        }
      });
    } finally {
      const timeout = stop.signal.aborted ? 0 : 5;
      await Promise.all(clients.map(async (sql) => {
        this.#loadClients.delete(sql);
        await sql.end({ timeout }).catch(() => {});
      }));
    }
  }

  /**
   * Replaces the dataset's schema with the loaded one and records it, in one transaction on the load's
   * connection, serialised per project identifier and then per destination schema by transaction advisory
   * locks (always taken in that order).
   */
  async #swap(
    session: LoadSession,
    schema: string,
    dataset: DestinationDataset,
    tables: readonly TableExtract[],
  ): Promise<void> {
    const names = tables.map((t) => t.table.name).sort(compareNames);
    await session.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${PROJECT_LOCK}::int4,
                                            hashtext(${projectIdentifier(dataset.project)}))`;
      await checkProjectIdentifier(tx, dataset.project);
      await tx`select pg_advisory_xact_lock(${SWAP_LOCK}::int4, hashtext(${schema}))`;
      const exists = await checkOwner(tx, schema, dataset, { forUpdate: true });
      if (exists) await tx.unsafe(`drop schema ${quotePostgresIdentifier(schema)} cascade`);
      await tx.unsafe(
        `alter schema ${quotePostgresIdentifier(session.temporary)} rename to ${
          quotePostgresIdentifier(schema)
        }`,
      );
      await tx`
        insert into ${tx(REGISTRY_SCHEMA)}.${tx(REGISTRY_TABLE)}
               (destination_schema, project_name, project_start_time, schema_name, tables, packaged_at)
        values (${schema}, ${dataset.project}, ${dataset.startTime}, ${dataset.schemaName},
                ${tx.array(names)}::text[], now())
        on conflict (destination_schema) do update
           set project_name = excluded.project_name,
               project_start_time = excluded.project_start_time,
               schema_name = excluded.schema_name,
               tables = excluded.tables,
               packaged_at = excluded.packaged_at`;
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

/** Where one table goes: the temporary schema it is written to, and the schema users know it by. */
interface CopyTarget {
  readonly temporary: string;
  readonly schema: string;
}

/** Streams one table into its temporary table, through the source's CSV when it has one. */
async function copyTable(
  sql: Sql,
  target: CopyTarget,
  source: TableReader,
  extract: TableExtract,
  options: { readonly read: ReadRowsOptions; readonly signal: AbortSignal },
): Promise<void> {
  const { table } = extract;
  const columns = table.columns.map((c) => c.name);
  const into =
    `${quotePostgresIdentifier(target.temporary)}.${quotePostgresIdentifier(table.name)}` +
    (columns.length > 0 ? ` (${columns.map(quotePostgresIdentifier).join(", ")})` : "");
  const where = { schema: target.schema, table: table.name };
  const withHeader = source.readCsv !== undefined;
  const chunks = source.readCsv !== undefined
    ? source.readCsv(extract, options.read)
    : encodedRows(source, extract, options.read, where);
  try {
    await copyIn(
      sql,
      `copy ${into} from stdin with (format csv${withHeader ? ", header true" : ""})`,
      chunks,
      options.signal,
    );
  } catch (e) {
    throw refusedValue(e, where, columns, withHeader ? 1 : 0) ?? e;
  }
}

/**
 * Encodes the source's batches as canonical CSV lines (no header), one chunk per batch. Text that
 * PostgreSQL cannot take is refused here, where the row and column are known: a NUL character (no
 * PostgreSQL text type holds one) and an unpaired surrogate (UTF-8 would silently turn it into U+FFFD).
 */
async function* encodedRows(
  source: TableReader,
  extract: TableExtract,
  read: ReadRowsOptions,
  where: { readonly schema: string; readonly table: string },
): AsyncGenerator<Uint8Array, void, undefined> {
  const columns = extract.table.columns.map((c) => c.name);
  const kinds = extract.table.columns.map((c) => c.logicalType.kind);
  const temporal = kinds.flatMap((k, i) => TEMPORAL.has(k) ? [i] : []);
  let rowsBefore = 0;
  for await (const sourceBatch of source.readRows(extract, read)) {
    if (sourceBatch.length === 0) continue;
    const batch = temporal.length === 0 ? sourceBatch : toMicroseconds(sourceBatch, temporal);
    const text = encodeCsvRows(batch, kinds);
    if (text.includes("\0") || !text.isWellFormed()) {
      throw unstorableText(batch, rowsBefore, where, columns);
    }
    rowsBefore += batch.length;
    yield utf8Bytes(text);
  }
}

const TEMPORAL: ReadonlySet<string> = new Set(["time", "timestamp", "timestamptz"]);

/**
 * The batch with every time and timestamp cut to microseconds (`truncateToMicroseconds`, the rule every
 * destination follows): PostgreSQL's input would round a seventh digit instead, and
 * `2020-12-31 23:59:59.9999999` would become a timestamp in 2021. Rows without such values are passed
 * through as they are.
 */
function toMicroseconds(
  batch: readonly CanonicalRow[],
  columns: readonly number[],
): readonly CanonicalRow[] {
  return batch.map((row) => {
    let copy: CanonicalRow | undefined;
    for (const i of columns) {
      const value = row[i];
      if (value === null || value === undefined) continue;
      const cut = truncateToMicroseconds(value);
      if (cut === value) continue;
      copy ??= [...row];
      copy[i] = cut;
    }
    return copy ?? row;
  });
}

/** Names the first value of a batch that holds a NUL character or an unpaired surrogate. */
function unstorableText(
  batch: readonly CanonicalRow[],
  rowsBefore: number,
  where: { readonly schema: string; readonly table: string },
  columns: readonly string[],
): DestinationValueError {
  for (let r = 0; r < batch.length; r++) {
    const row = batch[r]!;
    for (let c = 0; c < row.length; c++) {
      const value = row[c];
      if (value === null || value === undefined) continue;
      const at = { ...where, row: rowsBefore + r + 1, ...optionalColumn(columns[c]) };
      if (value.includes("\0")) {
        return new DestinationValueError(
          at,
          "the text holds a NUL character, which PostgreSQL cannot store",
        );
      }
      if (!value.isWellFormed()) {
        return new DestinationValueError(
          at,
          "the text holds an unpaired UTF-16 surrogate, which UTF-8 cannot encode",
        );
      }
    }
  }
  return new DestinationValueError(where, "the text cannot be stored in PostgreSQL");
}

function optionalColumn(column: string | undefined): { column?: string } {
  return column === undefined ? {} : { column };
}

/**
 * Runs `COPY ... FROM STDIN` and streams `chunks` into it, with back-pressure, until the server has
 * taken every row or something failed.
 *
 * postgres.js resolves the query with the COPY stream as soon as the server is ready for data, so a
 * server error comes only through the stream, and only while the stream is still writing. An error the
 * server raises after the last chunk (a bad value in the last rows, a duplicate key found at the end)
 * arrives when postgres.js has already let go of the stream: it then calls only the query's `reject`,
 * whose promise has long been resolved, and the stream's `finish` never comes, so a plain pipeline would
 * wait forever. Wrapping the query's own `reject` catches that error too; `pipeline` reports a failed
 * source, and destroys the COPY stream, which makes postgres.js send CopyFail so the server abandons the
 * COPY.
 */
async function copyIn(
  sql: Sql,
  statement: string,
  chunks: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
): Promise<void> {
  signal.throwIfAborted();
  const query = sql.unsafe(statement);
  const refused = Promise.withResolvers<never>();
  refused.promise.catch(() => {});
  const handle = query as unknown as { reject: (error: unknown) => void };
  const reject = handle.reject;
  handle.reject = (error: unknown) => {
    refused.reject(error);
    reject(error);
  };
  const writable = await query.writable();
  await Promise.race([pipeline(chunks, writable, { signal }), refused.promise]);
}

/** Why PostgreSQL refuses data, by SQLSTATE (classes 22 and 23); never the value itself. */
const REFUSAL_REASONS: Readonly<Record<string, string>> = {
  "22001": "a value is too long for the column",
  "22003": "a number is outside the range of the column's type",
  "22007": "a date or time has an invalid format",
  "22008": "a date or time is outside the range of the column's type",
  "22021": "the text holds a byte sequence that is not valid UTF-8, such as a NUL character",
  "22P02": "a value is not valid input for the column's type",
  "22P04": "a CSV line is malformed",
  "22P05": "the text holds a character the column's type cannot store, such as \\u0000 in jsonb",
  "23502": "a NULL in a NOT NULL column",
  "23505": "a duplicate primary key",
  "23514": "a value breaks a check constraint",
};

/**
 * Turns PostgreSQL's refusal of a value or row (SQLSTATE class 22 or 23) into a
 * {@link DestinationValueError} with the row and column taken from the error's context, or returns
 * `undefined` for any other error. The server's own message is not kept: it quotes the value.
 */
function refusedValue(
  e: unknown,
  where: { readonly schema: string; readonly table: string },
  columns: readonly string[],
  headerLines: number,
): DestinationValueError | undefined {
  if (!(e instanceof postgres.PostgresError)) return undefined;
  const code = e.code;
  if (!code.startsWith("22") && !code.startsWith("23")) return undefined;
  const position: DestinationValuePosition = { ...where, ...copyPosition(e, columns, headerLines) };
  const reason = REFUSAL_REASONS[code] ?? "the destination refused a value";
  return new DestinationValueError(position, `${reason} (SQLSTATE ${code})`);
}

/**
 * The 1-based table row and the column of a COPY error, read from its context
 * (`COPY t, line 3, column c: "..."`) and, for NOT NULL violations, from its column field. Only names from
 * `columns` are taken, so nothing of the value can slip through.
 */
function copyPosition(
  e: postgres.PostgresError,
  columns: readonly string[],
  headerLines: number,
): { row?: number; column?: string } {
  const context = e.where ?? "";
  const line = /^COPY .*?, line (\d+)/.exec(context);
  const row = line === null ? undefined : Number(line[1]) - headerLines;
  let column = e.column_name !== undefined && columns.includes(e.column_name)
    ? e.column_name
    : undefined;
  if (column === undefined) {
    for (const name of columns) {
      const named = context.includes(`, column ${name}:`) || context.endsWith(`, column ${name}`);
      if (named && name.length > (column?.length ?? -1)) column = name;
    }
  }
  return {
    ...(row !== undefined && row >= 1 ? { row } : {}),
    ...(column === undefined ? {} : { column }),
  };
}

/** What a failed load throws: typed errors as they are, anything else as unavailability. */
function loadFailure(e: unknown, action: string, password: string): unknown {
  if (e instanceof AppError || e instanceof RangeError) return e;
  return destinationFailure(e, action, password);
}

/**
 * A driver error as a {@link DestinationUnavailableError}, without the password. A refused login or a
 * failed connection gets a fixed sentence, the driver's message going to `logDetail` only; any other
 * failure keeps the driver's message.
 */
function destinationFailure(
  e: unknown,
  action: string,
  password: string,
): DestinationUnavailableError {
  const message = `${action}: ${redactSecrets(messageOf(e), [password])}`;
  if (isPostgresLoginRefusal(e)) return new DestinationLoginRefusedError({ logDetail: message });
  if (isConnectFailure(e)) return new DestinationConnectionError({ logDetail: message });
  return new DestinationUnavailableError(message, { cause: e });
}

/**
 * postgres.js and socket error codes, and SQLSTATEs, that mean a connection could not be set up (as
 * opposed to one lost while in use): refused, unknown host, unreachable, timed out, no such database,
 * too many connections, server starting up or shutting down.
 */
const CONNECT_FAILURES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "CONNECT_TIMEOUT",
  "3D000",
  "53300",
  "57P03",
]);

function isConnectFailure(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && CONNECT_FAILURES.has(code)) return true;
  // A TLS handshake failure: postgres.js passes on Node's error, whose code starts with ERR_TLS_ or
  // names a certificate problem.
  return typeof code === "string" &&
    /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_)/.test(code);
}

function checkLoadOptions(options: LoadOptions): void {
  const values: [string, number][] = [
    ["concurrency", options.concurrency],
    ["batchRows", options.batchRows],
  ];
  for (const [name, value] of values) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Cannot load with ${name} ${value}: must be a positive integer`);
    }
  }
}

/**
 * Refuses table and column names PostgreSQL would cut short, and two tables of one name.
 *
 * @throws {DestinationNameTooLongError}
 * @throws {RangeError} on a repeated table name.
 */
function checkTables(tables: readonly TableExtract[]): void {
  const seen = new Set<string>();
  for (const { table } of tables) {
    checkDestinationIdentifier("table", table.name);
    for (const column of table.columns) checkDestinationIdentifier("column", column.name);
    if (seen.has(table.name)) {
      throw new RangeError(`Cannot load two tables named "${table.name}" into one schema`);
    }
    seen.add(table.name);
  }
}

/** True for an error PostgreSQL reported that did not cost the connection. */
function isSqlError(e: unknown): boolean {
  return e instanceof postgres.PostgresError && e.severity !== "FATAL" && e.severity !== "PANIC";
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byTable(a: LoadedTable, b: LoadedTable): number {
  return compareNames(a.schema, b.schema) || compareNames(a.table, b.table);
}
