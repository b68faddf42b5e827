/**
 * A destination database that datasets are loaded into at `package` time and exposed from at `publish`
 * time (the `postgresql` destination, `cr8tor-contract.md` §4.3 and §4.6).
 *
 * Unlike the reference, a load replaces a dataset atomically (readers see the old tables or the new ones,
 * never a mix, and a failed load leaves the old ones as they were), loaded tables are found again through
 * a registry rather than a schema-name prefix (§9 item 11), and nothing is readable by the read-only role
 * until {@link DestinationDatabase.grantReadAccess} is called by the publish step.
 *
 * Every adapter passes `tests/contracts/destination_database_contract.ts`: the PostgreSQL adapter
 * (`adapters/postgres/postgres_destination.ts`) and the in-memory fake
 * (`adapters/memory/memory_destination_database.ts`).
 *
 * @module
 */
import type { ReadRowsOptions, TableExtract, TableReader } from "../domain/catalog.ts";
import { checkDestinationIdentifier, destinationSchemaName } from "../domain/destination_schema.ts";
import { AppError, type AppErrorOptions } from "../domain/errors.ts";
import type { LongWork } from "../domain/long_work.ts";
import type { StagedTable } from "../domain/staging_manifest.ts";

export {
  DestinationNameReservedError,
  DestinationNameTooLongError,
} from "../domain/destination_schema.ts";

/** One loaded table: its destination schema and name. */
export interface LoadedTable {
  readonly schema: string;
  readonly table: string;
}

/** The dataset a load is for, as the request names it. */
export interface DestinationDataset {
  /** The request's `project_name`, case as sent. */
  readonly project: string;
  /** The request's `project_start_time`. */
  readonly startTime: string;
  /** The request's `dataset.schema_name`. */
  readonly schemaName: string;
}

/**
 * A dataset a run loaded, with the tables its load released, for the release's RO-Crate: what a
 * filestore's staging manifest records per dataset.
 */
export interface ReleasedDataset {
  /** The request's `dataset.schema_name`. */
  readonly schemaName: string;
  /** The destination schema that holds it. */
  readonly schema: string;
  /**
   * The released tables (`releasedTables` in `domain/staging_manifest.ts`): the selected columns with
   * the source's types and descriptions, in the load's order. `null` when the load was recorded before
   * the destination kept them.
   */
  readonly tables: readonly StagedTable[] | null;
}

/** A run: every dataset of one project start. */
export interface DestinationRun {
  readonly project: string;
  readonly startTime: string;
}

/**
 * How much to do at once. The read limits (`batchBytes`, `maxValueBytes`) are passed on to every
 * `readRows` and `readCsv` call; left out, the source's defaults apply.
 */
export interface LoadOptions extends ReadRowsOptions, LongWork {
  /** How many tables to load at the same time (at least 1). */
  readonly concurrency: number;
  /** Rows per batch read from a source that has no CSV fast path. */
  readonly batchRows: number;
}

/** An open destination database. */
export interface DestinationDatabase extends AsyncDisposable {
  /**
   * Connects and proves the configured login may create schemas and that the read-only role exists;
   * creates the registry when it is missing.
   *
   * @throws {DestinationUnavailableError} when the server cannot be reached or the login lacks rights.
   */
  checkReady(): Promise<void>;

  /**
   * Loads every table into the dataset's destination schema (see `destinationSchemaName`), replacing
   * what the dataset held before in one transaction, and records the dataset in the registry. The tables
   * keep their column types, NOT NULL columns and primary keys. Nothing is granted to the read-only role.
   *
   * Aborting `options.signal` stops the load at once, also in the middle of a table whose source is
   * slow to read: no other table starts, nothing is changed (the previous tables, grants and registry
   * row stay as they were, nothing is left behind), and the call rejects with the signal's reason.
   * `options.onProgress` gets each table's `rows` (`null` on the CSV fast path) and `bytes` (the CSV
   * bytes handed to the destination) as they go, then exactly one report with
   * `done: { sha512: null, reused: false }` once the table is complete (still hidden until the load
   * commits).
   *
   * @param dataset the dataset, which decides the destination schema.
   * @param source where the rows come from; its CSV fast path is used when it has one.
   * @param tables the tables of one schema, with the selected columns.
   * @param options limits, the signal and the progress callback.
   * The registry also records the released tables (`releasedTables` of `tables`), which
   * {@link DestinationDatabase.releasedDatasets} gives back; a reload replaces them.
   *
   * @returns the loaded tables, sorted by name.
   * @throws the signal's reason when `options.signal` is aborted; nothing is changed.
   * @throws {RangeError} on a limit that is not a positive integer, or two tables of one name.
   * @throws {DestinationNameTooLongError} when the schema, a table or a column name is too long.
   * @throws {DestinationNameReservedError} when the schema name starts with `pg_`.
   * @throws {DestinationSchemaConflictError} when the schema belongs to another dataset or was not
   *   created by a load; nothing is changed.
   * @throws {DestinationProjectConflictError} when another project holds the project's identifier;
   *   nothing is changed.
   * @throws {DestinationValueError} when the destination refuses a value or a row; nothing is changed.
   * @throws {SourceUnavailableError} (from the source) when reading fails; nothing is changed.
   * @throws {DestinationUnavailableError} when the destination fails; nothing is changed.
   */
  load(
    dataset: DestinationDataset,
    source: TableReader,
    tables: readonly TableExtract[],
    options: LoadOptions,
  ): Promise<LoadedTable[]>;

  /**
   * Lists the tables loaded for a run, from the registry: exact matches of project name (case as sent)
   * and start time only, never a name prefix.
   *
   * @returns the tables that still exist, sorted by schema, then name.
   * @throws {DestinationUnavailableError} when the registry cannot be read.
   */
  packagedTables(run: DestinationRun): Promise<LoadedTable[]>;

  /**
   * The datasets loaded for a run, from the registry (exact matches of project name and start time), each
   * with the tables its latest load released.
   *
   * @returns sorted by the request's schema name.
   * @throws {DestinationUnavailableError} when the registry cannot be read.
   */
  releasedDatasets(run: DestinationRun): Promise<ReleasedDataset[]>;

  /**
   * A digest (lower-case hex SHA-256) of what the run has loaded: each dataset's schema, tables and
   * load. It changes with every load of a dataset of the run, even of the same rows, and at no other time.
   *
   * @returns `null` when the run has loaded nothing.
   * @throws {DestinationUnavailableError} when the registry cannot be read.
   */
  stagingDigest(run: DestinationRun): Promise<string | null>;

  /**
   * Grants the configured read-only role USAGE on each table's schema and SELECT on exactly these tables,
   * in one transaction; granting again changes nothing.
   *
   * @throws {DestinationTablesNotPackagedError} when a table is not in the registry; nothing is granted.
   * @throws {DestinationUnavailableError} when the grants fail.
   */
  grantReadAccess(tables: readonly LoadedTable[]): Promise<void>;

  /**
   * Counts the rows of each table exactly (`count(*)`), for a revocation's certificate.
   *
   * @returns one count per table, in the order given.
   * @throws {DestinationUnavailableError} when a table cannot be read (missing, or the server fails).
   */
  countRows(tables: readonly LoadedTable[]): Promise<{ table: LoadedTable; rows: number }[]>;

  /**
   * Drops every schema the run loaded (its tables and their grants with them) and removes the run's
   * registry rows, in one transaction: afterwards the run has no tables. Idempotent: a run with nothing
   * loaded (never, or already dropped) changes nothing.
   *
   * @returns the tables dropped, sorted by schema, then name.
   * @throws {DestinationUnavailableError} when the destination fails; nothing is dropped.
   */
  dropRun(run: DestinationRun): Promise<LoadedTable[]>;

  /**
   * Drops what interrupted loads left behind (their temporary schemas), leaving alone the ones whose
   * load is still running, in this process or another.
   *
   * @returns the names of the dropped schemas, sorted.
   * @throws {DestinationUnavailableError} when the destination fails.
   */
  recover(): Promise<string[]>;

  /** Closes every connection; safe to call twice. */
  close(): Promise<void>;
}

/** The destination cannot be reached, refused the login, lacks rights, or failed a statement. */
export class DestinationUnavailableError extends AppError {
  readonly code: string = "destination_unavailable";
}

/**
 * Connecting to the destination failed before a login was refused: unreachable, timed out, TLS or
 * protocol failure. The client gets a fixed sentence; the driver's message (redacted) goes to the
 * service log only, as `logDetail`.
 */
export class DestinationConnectionError extends DestinationUnavailableError {
  override readonly code = "destination_connection_failed";

  /** @param options.logDetail the driver's message, already redacted. */
  constructor(options: AppErrorOptions) {
    super("Cannot connect to the destination database", options);
  }
}

/** The destination refused the login. A fixed sentence for the client; the driver's message to the log. */
export class DestinationLoginRefusedError extends DestinationUnavailableError {
  override readonly code = "destination_login_refused";

  /** @param options.logDetail the driver's message, already redacted. */
  constructor(options: AppErrorOptions) {
    super("The destination database refused the login", options);
  }
}

/**
 * Another project already holds the project's identifier (`projectIdentifier` in `domain/names.ts`), the
 * name of its schemas and its OPAL project: two project names whose mapping met through a hash collision.
 * The first project to load keeps it; nothing is changed.
 */
export class DestinationProjectConflictError extends AppError {
  readonly code = "destination_project_conflict";

  /**
   * @param project the project that was to be loaded.
   * @param owner the project that holds the identifier.
   * @param identifier the identifier both names map to.
   */
  constructor(readonly project: string, readonly owner: string, readonly identifier: string) {
    super(
      `Cannot load project "${project}": its PostgreSQL and OPAL identifier "${identifier}" belongs to ` +
        `project "${owner}"; choose another project name`,
    );
  }
}

/**
 * The destination schema exists but belongs to another dataset (two schema names that differ only in
 * case, or two project, start time and schema names that join to the same text) or was not created by a
 * load; it is never dropped.
 */
export class DestinationSchemaConflictError extends AppError {
  readonly code = "destination_schema_conflict";

  /**
   * @param schema the destination schema.
   * @param owner the dataset the registry holds for it, or `undefined` when it is not registered.
   */
  constructor(readonly schema: string, readonly owner: DestinationDataset | undefined) {
    super(
      owner === undefined
        ? `Cannot load into destination schema "${schema}": it exists and was not created by the ` +
          `publish service`
        : `Cannot load into destination schema "${schema}": it holds dataset "${owner.schemaName}" ` +
          `of project "${owner.project}" started ${owner.startTime}`,
    );
  }
}

/** Where in a table the destination refused a value or a row. */
export interface DestinationValuePosition {
  readonly schema: string;
  readonly table: string;
  /** The column, when the destination named one. */
  readonly column?: string;
  /** The 1-based row of the table, when the destination named one. */
  readonly row?: number;
}

/**
 * The destination refused a value or a row (a MySQL `TIME` past 24 hours, a NUL character in text, a
 * duplicate key, ...). The message names the table, column, row and reason, never the value.
 */
export class DestinationValueError extends AppError {
  readonly code = "destination_value_refused";

  /**
   * @param where the table and, when known, the column and row.
   * @param reason why, without the value, e.g. `numeric value out of range (SQLSTATE 22003)`.
   */
  constructor(readonly where: DestinationValuePosition, readonly reason: string) {
    const at = [
      where.row === undefined ? undefined : `row ${where.row}`,
      where.column === undefined ? undefined : `column "${where.column}"`,
    ].filter((part) => part !== undefined).join(", ");
    super(
      `Cannot load table "${where.schema}.${where.table}" into the destination` +
        `${at === "" ? "" : ` (${at})`}: ${reason}`,
    );
  }
}

/** Tables to grant that the registry does not list (e.g. a newer load replaced them). */
export class DestinationTablesNotPackagedError extends AppError {
  readonly code = "destination_tables_not_packaged";

  constructor(readonly tables: readonly LoadedTable[]) {
    super(
      `Cannot grant read access to ${
        tables.map((t) => `"${t.schema}.${t.table}"`).join(", ")
      }: not packaged`,
    );
  }
}

/**
 * Checks a load before anything is touched, the same way in every adapter: positive whole limits, names
 * the destination would cut short, no table twice.
 *
 * @returns the dataset's destination schema (`destinationSchemaName`).
 * @throws {RangeError} on a limit that is not a positive integer, or two tables of one name.
 * @throws {DestinationNameTooLongError} when the schema, a table or a column name is too long.
 * @throws {DestinationNameReservedError} when the schema name starts with `pg_`.
 */
export function checkLoad(
  dataset: DestinationDataset,
  tables: readonly TableExtract[],
  options: LoadOptions,
): string {
  const limits: [string, number][] = [
    ["concurrency", options.concurrency],
    ["batchRows", options.batchRows],
  ];
  for (const [name, value] of limits) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`Cannot load with ${name} ${value}: must be a positive integer`);
    }
  }
  const schema = destinationSchemaName(dataset.project, dataset.startTime, dataset.schemaName);
  const seen = new Set<string>();
  for (const { table } of tables) {
    checkDestinationIdentifier("table", table.name);
    for (const column of table.columns) checkDestinationIdentifier("column", column.name);
    if (seen.has(table.name)) {
      throw new RangeError(`Cannot load two tables named "${table.name}" into one schema`);
    }
    seen.add(table.name);
  }
  return schema;
}
