/**
 * A source database the approved data comes from: its catalogue, and (later) its rows.
 *
 * @module
 */
import { AppError, type AppErrorOptions } from "../domain/errors.ts";
import type {
  CatalogColumn,
  ReadCsvOptions,
  ReadRowsOptions,
  SchemaCatalog,
  TableExtract,
  TableReader,
} from "../domain/catalog.ts";
import type { CanonicalRow } from "../domain/logical_type.ts";

export type { ReadCsvOptions, ReadRowsOptions };

/**
 * Rows per batch when the caller does not say: DuckDB's vector size. Smaller batches die young in V8's
 * nursery; 10,000-row batches raised the publish service's peak RSS by about 80 MB in `deno task bench`.
 */
export const DEFAULT_BATCH_ROWS = 2048;

/** The byte budget of one batch when the caller does not say: 16 MiB (see {@link estimatedRowBytes}). */
export const DEFAULT_BATCH_BYTES = 16 * 1024 * 1024;

/** The largest value, in UTF-8 bytes of its canonical text, when the caller does not say: 64 MiB. */
export const DEFAULT_MAX_VALUE_BYTES = 64 * 1024 * 1024;

/**
 * Bytes counted for every value (NULL included) on top of its characters: about what V8 spends on the
 * array slot and the string header, so a batch of many small values is not taken for a small batch.
 */
export const VALUE_OVERHEAD_BYTES = 16;

/**
 * Rows the first fetch asks for, in sources whose driver fetches a given number of rows at a time
 * (PostgreSQL's cursor, Databricks): before any row has been seen its size is unknown, so the first
 * fetch is small and later fetches are sized from the largest row seen ({@link RowBatcher.fetchRows}).
 */
export const FIRST_FETCH_ROWS = 16;

/** The limits of one `readRows` call, defaults applied. */
export interface ReadLimits {
  /** The most rows in one batch. */
  readonly batchRows: number;
  /** A batch is handed over once its {@link estimatedRowBytes} add up to this many bytes. */
  readonly batchBytes: number;
  /** The largest value, in UTF-8 bytes of its canonical text. */
  readonly maxValueBytes: number;
}

/**
 * The limits a `readRows` call asked for, with {@link DEFAULT_BATCH_ROWS}, {@link DEFAULT_BATCH_BYTES}
 * and {@link DEFAULT_MAX_VALUE_BYTES} for those it left out.
 *
 * @throws {RangeError} when one is not a positive integer.
 */
export function readLimitsOf(options: ReadRowsOptions): ReadLimits {
  return {
    batchRows: positive("rows", options.batchRows ?? DEFAULT_BATCH_ROWS),
    batchBytes: positive("bytes", options.batchBytes ?? DEFAULT_BATCH_BYTES),
    maxValueBytes: maxValueBytesOf(options),
  };
}

/**
 * The per-value limit a `readRows` or `readCsv` call asked for, or {@link DEFAULT_MAX_VALUE_BYTES}.
 *
 * @throws {RangeError} when it is not a positive integer.
 */
export function maxValueBytesOf(options: ReadCsvOptions): number {
  const bytes = options.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES;
  if (!Number.isSafeInteger(bytes) || bytes < 1) {
    throw new RangeError(`Cannot read values of up to ${bytes} bytes: must be a positive integer`);
  }
  return bytes;
}

function positive(unit: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`Cannot read in batches of ${value} ${unit}: must be a positive integer`);
  }
  return value;
}

/**
 * What one row is taken to cost in memory: the characters of its values plus
 * {@link VALUE_OVERHEAD_BYTES} per value. Characters, not UTF-8 bytes, so that it costs one `length`
 * read per value on the hot path.
 */
export function estimatedRowBytes(row: readonly (string | null)[]): number {
  let bytes = row.length * VALUE_OVERHEAD_BYTES;
  for (let i = 0; i < row.length; i++) bytes += row[i]?.length ?? 0;
  return bytes;
}

// The estimated bytes of each batch a `RowBatcher` handed over, so that a reader of the batch (the use
// cases' progress) does not size every row a second time on the hot path.
const BATCH_BYTES = new WeakMap<readonly CanonicalRow[], number>();

/**
 * The {@link estimatedRowBytes} of a batch's rows added up: remembered from the {@link RowBatcher} that
 * cut it, computed otherwise.
 */
export function estimatedBatchBytes(batch: readonly CanonicalRow[]): number {
  const known = BATCH_BYTES.get(batch);
  if (known !== undefined) return known;
  let bytes = 0;
  for (const row of batch) bytes += estimatedRowBytes(row);
  return bytes;
}

/** The UTF-8 length of a string, without encoding it (a lone surrogate counts 3, as U+FFFD). */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        bytes += 2; // a pair: 2 UTF-16 units, 4 UTF-8 bytes
        i++;
      } else bytes += 2;
    } else bytes += 2;
  }
  return bytes;
}

/**
 * The one rule every `readRows` follows to cut rows into batches: a batch is handed over as soon as it
 * holds `batchRows` rows or its rows' {@link estimatedRowBytes} reach `batchBytes`, whichever comes
 * first (so a batch passes the byte budget by at most its last row, and always holds at least one row).
 * It also enforces the per-value limit on every value it is given.
 *
 * Adapters whose driver streams rows one by one stop reading when {@link add} reports a full batch;
 * those whose driver fetches a number of rows at a time ask {@link fetchRows} how many to fetch next.
 */
export class RowBatcher {
  readonly #extract: TableExtract;
  readonly #batchRows: number;
  readonly #batchBytes: number;
  readonly #maxValueBytes: number;
  /** A row whose characters add up to no more than this cannot hold a value over the limit. */
  readonly #rowCharsSafe: number;
  #rows: CanonicalRow[] = [];
  #bytes = 0;
  #largestRow = 0;

  /**
   * @param extract the table read, named in a {@link ValueTooLargeError}.
   * @param limits the call's limits, from {@link readLimitsOf}.
   */
  constructor(extract: TableExtract, limits: ReadLimits) {
    this.#extract = extract;
    this.#batchRows = limits.batchRows;
    this.#batchBytes = limits.batchBytes;
    this.#maxValueBytes = limits.maxValueBytes;
    // A UTF-16 unit is at most 3 UTF-8 bytes (a surrogate pair: 2 units, 4 bytes).
    this.#rowCharsSafe = Math.floor(limits.maxValueBytes / 3);
  }

  /**
   * Adds a row to the batch.
   *
   * @returns true when the batch is now full: take it with {@link take} before adding more.
   * @throws {ValueTooLargeError} when a value of the row is over the per-value limit.
   */
  add(row: CanonicalRow): boolean {
    const bytes = estimatedRowBytes(row);
    if (bytes - row.length * VALUE_OVERHEAD_BYTES > this.#rowCharsSafe) this.#checkValues(row);
    this.#rows.push(row);
    this.#bytes += bytes;
    if (bytes > this.#largestRow) this.#largestRow = bytes;
    return this.#rows.length >= this.#batchRows || this.#bytes >= this.#batchBytes;
  }

  /** How many rows the batch holds. */
  get size(): number {
    return this.#rows.length;
  }

  /** Hands over the batch and starts a new, empty one. */
  take(): CanonicalRow[] {
    const rows = this.#rows;
    BATCH_BYTES.set(rows, this.#bytes);
    this.#rows = [];
    this.#bytes = 0;
    return rows;
  }

  /**
   * How many rows the next fetch should ask for: as many as still fit the batch, at the size of the
   * largest row so far for the bytes (at least one); {@link FIRST_FETCH_ROWS} before any row was added.
   */
  fetchRows(): number {
    const room = this.#batchRows - this.#rows.length;
    if (this.#largestRow === 0) return Math.max(1, Math.min(room, FIRST_FETCH_ROWS));
    const fit = Math.floor((this.#batchBytes - this.#bytes) / this.#largestRow);
    return Math.max(1, Math.min(room, fit));
  }

  #checkValues(row: CanonicalRow): void {
    for (let i = 0; i < row.length; i++) {
      const value = row[i];
      if (value === null || value === undefined || value.length <= this.#rowCharsSafe) continue;
      if (value.length > this.#maxValueBytes || utf8Length(value) > this.#maxValueBytes) {
        throw valueTooLarge(this.#extract, i, this.#maxValueBytes);
      }
    }
  }
}

/**
 * Whether a value of this column can be longer than `maxValueBytes` as canonical text and is worth a
 * guard on the server: text, JSON and binary columns, unless a declared length (`varchar(n)`,
 * `nchar(n)`, `varbinary(n)`, `bit(n)`, ...) keeps them within the limit. Values of every other kind
 * are short (the longest, a PostgreSQL `numeric`, is 147,457 bytes) and only checked as they arrive.
 * Adapters guard the columns that can, on the server, so that such a value is refused before it is sent.
 */
export function valueCanExceed(
  column: Pick<CatalogColumn, "dataType" | "logicalType">,
  maxValueBytes: number,
): boolean {
  const kind = column.logicalType.kind;
  if (kind !== "text" && kind !== "json" && kind !== "binary") return false;
  const declared = DECLARED_LENGTH.exec(column.dataType);
  if (declared === null) return true;
  const length = Number(declared[2]);
  // A character is at most 4 UTF-8 bytes; a byte is 2 hex digits after `\x`.
  return (/binary/i.test(declared[1]!) ? 2 * length + 2 : 4 * length) > maxValueBytes;
}

const DECLARED_LENGTH =
  /^\s*(?:national\s+)?(character varying|varchar|character|char|nvarchar|nchar|varbinary|binary|bit)\s*\(\s*(\d+)\s*\)\s*$/i;

/**
 * The text a server-side guard puts into the error it raises for a value over the limit: adapters build
 * it into their SELECT and recognise it with {@link guardedColumnOf}.
 */
export function valueTooLargeMarker(columnIndex: number): string {
  return `${VALUE_TOO_LARGE_MARKER}${columnIndex}:`;
}

const VALUE_TOO_LARGE_MARKER = "cr8tor_value_too_large:";
const MARKER_PATTERN = /cr8tor_value_too_large:(\d+):/;

/** The column index in a server error raised by a guard built with {@link valueTooLargeMarker}. */
export function guardedColumnOf(message: string): number | undefined {
  const match = MARKER_PATTERN.exec(message);
  return match === null ? undefined : Number(match[1]);
}

/** The {@link ValueTooLargeError} for column `index` of an extract. */
export function valueTooLarge(
  extract: TableExtract,
  index: number,
  maxValueBytes: number,
  options?: ErrorOptions,
): ValueTooLargeError {
  const column = extract.table.columns[index]?.name ?? `#${index + 1}`;
  return new ValueTooLargeError(
    { schema: extract.schema, table: extract.table.name, column },
    maxValueBytes,
    options,
  );
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
   * Batches are cut by {@link RowBatcher}: at `batchRows` rows or `batchBytes` bytes, whichever comes
   * first. A value over `maxValueBytes` fails the read, refused by the server where the adapter can
   * guard it there (see {@link valueCanExceed}), so that it is never sent.
   *
   * @param extract the table and the columns to read, as described by {@link describeSchema}.
   * @param options the limits; see {@link readLimitsOf} for the defaults.
   * @returns batches in the table's natural order; nothing is buffered beyond about one batch.
   * @throws {ValueTooLargeError} when a value is over `maxValueBytes`.
   * @throws {SourceUnavailableError} when the query fails.
   * @throws {RangeError} when a limit is not a positive integer.
   */
  readRows(extract: TableExtract, options?: ReadRowsOptions): AsyncIterable<CanonicalRow[]>;

  /**
   * Optional fast path: the same rows as {@link readRows}, already encoded as canonical CSV (header row
   * first), straight from the database. Present only when the database can produce the canonical form
   * byte for byte.
   *
   * @throws {ValueTooLargeError} when a value is over `maxValueBytes`.
   * @throws {SourceUnavailableError} when the query fails.
   */
  readCsv?(extract: TableExtract, options?: ReadCsvOptions): AsyncIterable<Uint8Array>;

  /**
   * Optional: how many rows the source's statistics expect in each table (PostgreSQL `reltuples`, MySQL
   * `information_schema.tables.table_rows`, SQL Server `sys.partitions`, Databricks table statistics).
   * Only an estimate, for progress and ETA; a table the statistics do not know is left out of the map,
   * as are views, names that are not there (names match exactly) and every table of an unknown schema.
   * Never reads row data.
   *
   * @param schema the schema the tables are in.
   * @param tables the table names.
   * @throws {SourceUnavailableError} when the statistics cannot be read.
   */
  estimateRows?(schema: string, tables: readonly string[]): Promise<ReadonlyMap<string, number>>;

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

/** Where a value over the limit was found. */
export interface ValuePosition {
  readonly schema: string;
  readonly table: string;
  readonly column: string;
}

/**
 * A source value is larger than the per-value limit (`SOURCE_MAX_VALUE_BYTES`). The message names the
 * table, the column and the limit, never the value or its size.
 */
export class ValueTooLargeError extends AppError {
  readonly code = "value_too_large";

  constructor(
    readonly position: ValuePosition,
    readonly limitBytes: number,
    options?: ErrorOptions,
  ) {
    super(
      `Cannot read table "${position.schema}"."${position.table}": a value in column ` +
        `"${position.column}" is larger than the limit of ${bytesText(limitBytes)}; leave the ` +
        "column out of the dataset, or ask the operator to raise SOURCE_MAX_VALUE_BYTES",
      options,
    );
  }
}

function bytesText(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return Number.isInteger(mib) ? `${bytes} bytes (${mib} MiB)` : `${bytes} bytes`;
}
