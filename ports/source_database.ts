/**
 * A source database the approved data comes from: its catalogue, and (later) its rows.
 *
 * @module
 */
import { AppError, type AppErrorOptions } from "../domain/errors.ts";
import type { SchemaCatalog, TableExtract, TableReader } from "../domain/catalog.ts";
import type { CanonicalRow } from "../domain/logical_type.ts";

/**
 * Rows per batch when the caller does not say: DuckDB's vector size. Smaller batches die young in V8's
 * nursery; 10,000-row batches raised the publish service's peak RSS by about 80 MB in `deno task bench`.
 */
export const DEFAULT_BATCH_ROWS = 2048;

/**
 * The batch size a `readRows` call asked for, or {@link DEFAULT_BATCH_ROWS}.
 *
 * @throws {RangeError} when it is not a positive integer.
 */
export function batchRowsOf(options: { batchRows?: number }): number {
  const batchRows = options.batchRows ?? DEFAULT_BATCH_ROWS;
  if (!Number.isSafeInteger(batchRows) || batchRows < 1) {
    throw new RangeError(`Cannot read in batches of ${batchRows} rows: must be a positive integer`);
  }
  return batchRows;
}

/** An open connection to one source database. */
export interface SourceDatabase extends TableReader, AsyncDisposable {
  /**
   * Runs a trivial query to prove the connection and credentials work.
   *
   * @throws {SourceUnavailableError} when the query fails.
   */
  ping(): Promise<void>;

  /**
   * Describes one schema: its tables and views (sorted by name), their columns in ordinal order with full
   * types, nullability and comments, and their primary keys.
   *
   * @param schema the schema (for MySQL, the database) to describe.
   * @param options.tables when given, only these tables need to be described (others may be left out).
   * @returns the catalogue; never row data.
   * @throws {SchemaNotFoundError} when the schema does not exist or is not visible to the user.
   * @throws {SourceUnavailableError} when the catalogue cannot be read.
   */
  describeSchema(schema: string, options?: { tables?: readonly string[] }): Promise<SchemaCatalog>;

  /**
   * Streams the selected columns of one table or view, in bounded batches of canonical values (see
   * `domain/logical_type.ts`). Only the extract's columns are selected, through quoted identifiers.
   *
   * @param extract the table and the columns to read, as described by {@link describeSchema}.
   * @param options.batchRows the largest batch to yield; memory stays bounded by it, whatever the table size.
   * @returns batches in the table's natural order; nothing is buffered beyond one batch.
   * @throws {SourceUnavailableError} when the query fails.
   */
  readRows(extract: TableExtract, options?: { batchRows?: number }): AsyncIterable<CanonicalRow[]>;

  /**
   * Optional fast path: the same rows as {@link readRows}, already encoded as canonical CSV (header row
   * first), straight from the database. Present only when the database can produce the canonical form
   * byte for byte.
   *
   * @throws {SourceUnavailableError} when the query fails.
   */
  readCsv?(extract: TableExtract): AsyncIterable<Uint8Array>;

  /** Closes the connection; safe to call twice. */
  close(): Promise<void>;
}

/** How to reach a SQL source; built from the request and the secret store. */
export interface SqlConnectionOptions {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly username: string;
  readonly password: string;
  /** Gives up connecting after this long. */
  readonly connectTimeoutMs: number;
  /** Cancels any single statement that runs longer. */
  readonly statementTimeoutMs: number;
}

/**
 * Opens a connection to a SQL source.
 *
 * @throws {SourceUnavailableError} when the server cannot be reached or refuses the credentials.
 */
export type SqlSourceConnector = (options: SqlConnectionOptions) => Promise<SourceDatabase>;

/** How to reach a Databricks SQL warehouse and its Unity Catalog; built from the request and the secrets. */
export interface DatabricksConnectionOptions {
  /** The workspace host, without scheme. */
  readonly host: string;
  readonly port: number;
  /** The warehouse or cluster path, such as `/sql/1.0/warehouses/abc123`. */
  readonly httpPath: string;
  /** The Unity Catalog catalog the schemas are read from. */
  readonly catalog: string;
  /** The service principal's OAuth client id and secret. */
  readonly clientId: string;
  readonly clientSecret: string;
  /** Gives up getting a token or opening a session after this long. */
  readonly connectTimeoutMs: number;
  /** Cancels any single catalogue call or statement that runs longer. */
  readonly statementTimeoutMs: number;
}

/**
 * Opens a Databricks source.
 *
 * @throws {SourceUnavailableError} when the workspace cannot be reached or refuses the service principal.
 */
export type DatabricksSourceConnector = (
  options: DatabricksConnectionOptions,
) => Promise<SourceDatabase>;

/** The source cannot be reached, refused the login, or failed a query. */
export class SourceUnavailableError extends AppError {
  readonly code: string = "source_unavailable";
}

/**
 * Connecting to the source failed before a login was refused: unreachable, timed out, TLS or protocol
 * failure. The client gets a fixed sentence; the driver's message (redacted) goes to the service log
 * only, as `logDetail`.
 */
export class SourceConnectionError extends SourceUnavailableError {
  override readonly code = "source_connection_failed";

  /** @param options.logDetail the driver's message, already redacted. */
  constructor(options: AppErrorOptions) {
    super("Cannot connect to the source database", options);
  }
}

/**
 * The source refused the login (wrong user name or password, unknown role, refused service principal).
 * The client gets a fixed sentence; the driver's message (redacted) goes to the service log only.
 */
export class SourceLoginRefusedError extends SourceUnavailableError {
  override readonly code = "source_login_refused";

  /** @param options.logDetail the driver's message, already redacted. */
  constructor(options: AppErrorOptions) {
    super("The source database refused the login", options);
  }
}

/** The schema does not exist in the source, or the user cannot see it. */
export class SchemaNotFoundError extends AppError {
  readonly code = "schema_not_found";

  constructor(readonly schema: string) {
    super(`Cannot find schema "${schema}" in the source database`);
  }
}
