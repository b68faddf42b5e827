/**
 * A SQL Server (or Azure SQL) source database, read through `tedious`. The "schema" is a SQL Server
 * schema (`dbo`, ...) of the connection's database; the catalogue comes from `INFORMATION_SCHEMA` with
 * descriptions from the `MS_Description` extended properties, in four round trips (schema, tables,
 * columns, primary keys).
 *
 * Catalogue queries are plain SQL batches whose only values are names written as `N'...'` literals with
 * the quotes doubled (T-SQL has no backslash escapes, so doubling is the whole escape). Data queries
 * select columns through `[...]` identifiers with `]` doubled.
 *
 * Exact values: tedious turns `DECIMAL`/`NUMERIC`/`MONEY` into JS numbers (lossy past ~15 digits) and
 * `DATETIME2`/`DATETIMEOFFSET` into `Date`s (milliseconds only), so the SELECT list converts those to text
 * on the server (see {@link mssqlSelectExpression}); everything else is converted in
 * {@link mssqlCanonicalConverter}. `datetime2(7)`, `datetimeoffset(7)` and `time(7)` keep all seven
 * fraction digits in canonical text (the destinations cut them to microseconds, see
 * `domain/logical_type.ts`).
 *
 * Only SQL batches are sent (`execSqlBatch`), never RPC calls: the only values in the SQL are names, as
 * literals or bracketed identifiers. `(max)` values arrive as PLP (chunked) streams, which tedious
 * reassembles whole.
 *
 * TLS: required by default with the certificate verified (TDS 7.4, TLS 1.2 negotiated inside PRELOGIN);
 * `encrypt: "strict"` is TDS 8.0 (TLS from the first byte, ALPN `tds/8.0`); a private CA is trusted with
 * {@link MssqlTlsOptions.ca}.
 *
 * @module
 */
import type { Connection, ConnectionConfiguration } from "tedious";
import type {
  CatalogColumn,
  CatalogTable,
  SchemaCatalog,
  TableExtract,
} from "../../domain/catalog.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import { OneAtATime } from "../../domain/concurrency.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import { compareNames, groupBy } from "../shared/collections.ts";
import { messageOf } from "../shared/errors.ts";
import {
  guardedColumnOf,
  type ReadLimits,
  readLimitsOf,
  type ReadRowsOptions,
  RowBatcher,
  SchemaNotFoundError,
  SourceConnectionError,
  type SourceDatabase,
  SourceLoginRefusedError,
  SourceUnavailableError,
  type SqlConnectionOptions,
  type SqlSourceConnector,
  valueTooLarge,
} from "../../ports/source_database.ts";
import {
  mssqlCanonicalConverter,
  mssqlFullType,
  mssqlLogicalType,
  mssqlReadQuery,
  sqlString,
} from "./mssql_dialect.ts";
import { deferred, replaceRequires } from "../shared/npm_requires.ts";

// tedious requires `@azure/identity` when it loads and reads it only for Azure AD logins, which this
// adapter does not make. Deferred, importing this adapter costs a fresh process about 15 MB less
// resident memory and 6.5 MB less V8 heap (docs/benchmarks.md, issue 20).
replaceRequires({ requiredBy: "tedious", specifier: "@azure/identity", answer: deferred });
const tedious = await import("tedious");

/** TLS settings for the connection; see {@link connectMssqlWith}. */
export interface MssqlTlsOptions {
  /**
   * `true` (default): TLS is required (TDS 7.4 with TLS after PRELOGIN); `"strict"`: TDS 8.0, TLS from
   * the first byte (SQL Server 2022+ / Azure with strict encryption); `false`: no TLS, only for local
   * test servers (such as the fake TDS server in the tests).
   */
  readonly encrypt?: boolean | "strict";
  /**
   * Accept the server's certificate without checking it. Default `false`: inside a TRE the SQL Server
   * certificate should chain to a CA the publisher trusts (see {@link ca}); turn this on only for a
   * known self-signed server on a private network, never over the internet. It has no effect with
   * `encrypt: "strict"`: tedious always verifies a TDS 8.0 certificate.
   */
  readonly trustServerCertificate?: boolean;
  /**
   * The CA certificates (PEM) the server's certificate must chain to, for a private CA. When given they
   * replace the public roots for this connection (Node's `ca` option, passed to tedious as
   * `cryptoCredentialsDetails.ca`), in both TDS 7.4 and strict mode.
   */
  readonly ca?: string | readonly string[];
  /**
   * The host name the certificate must name, when it differs from the host connected to (for example a
   * connection by IP address to a server whose certificate names its DNS name). Also sent as SNI in strict
   * mode.
   */
  readonly serverName?: string;
}

/**
 * Opens a SQL Server connection with TLS required and the certificate verified.
 *
 * @throws {SourceLoginRefusedError} when the server refuses the login.
 * @throws {SourceConnectionError} when the server cannot be reached or the connection fails otherwise.
 */
export const connectMssql: SqlSourceConnector = (options) => connectMssqlWith(options);

/**
 * Opens a SQL Server connection with explicit TLS settings.
 *
 * `requestTimeout` is the statement timeout: tedious stops that timer when the first response packet
 * arrives, so it limits waiting for a result to start, never the time spent streaming a long extract
 * (`0` or a non-finite value: no limit). A failure is reported with a fixed sentence; the driver's
 * message, without the user name and password, is the error's `logDetail`.
 *
 * @throws {SourceLoginRefusedError} when the server refuses the login.
 * @throws {SourceConnectionError} when the server cannot be reached or the connection fails otherwise.
 */
export async function connectMssqlWith(
  options: SqlConnectionOptions,
  tls: MssqlTlsOptions = {},
): Promise<MssqlSourceDatabase> {
  const timeout = (ms: number) => Number.isFinite(ms) && ms > 0 ? Math.ceil(ms) : 0;
  const config: ConnectionConfiguration = {
    server: options.host,
    authentication: {
      type: "default",
      options: { userName: options.username, password: options.password },
    },
    options: {
      port: options.port,
      database: options.database,
      encrypt: tls.encrypt ?? true,
      trustServerCertificate: tls.trustServerCertificate ?? false,
      // A fresh object per connection: tedious writes its TLS version limit into it.
      cryptoCredentialsDetails: tls.ca === undefined
        ? {}
        : { ca: typeof tls.ca === "string" ? tls.ca : [...tls.ca] },
      ...(tls.serverName === undefined ? {} : { serverName: tls.serverName }),
      useUTC: true,
      rowCollectionOnRequestCompletion: false,
      connectTimeout: timeout(options.connectTimeoutMs) || 15_000,
      requestTimeout: timeout(options.statementTimeoutMs),
      appName: "cr8tor-publisher",
    },
  };
  const connection = new tedious.Connection(config);
  try {
    await new Promise<void>((resolve, reject) => {
      connection.on("connect", (e?: Error) => e === undefined ? resolve() : reject(e));
      connection.connect();
    });
  } catch (e) {
    connection.close();
    const logDetail = `Cannot connect to SQL Server at ${options.host}:${options.port}: ${
      redactSecrets(messageOf(e), [options.username, options.password])
    }`;
    // tedious reports a refused login (error 18456 and its kin) as a ConnectionError "ELOGIN".
    throw (e as { code?: unknown } | undefined)?.code === "ELOGIN"
      ? new SourceLoginRefusedError({ logDetail, cause: e })
      : new SourceConnectionError({ logDetail, cause: e });
  }
  return new MssqlSourceDatabase(connection);
}

/**
 * A source database backed by one tedious connection. tedious refuses a second request while one is in
 * progress, so every request takes its turn: catalogue queries one after another, and a read holds the
 * connection until its stream ends or is cancelled (reads of several tables started together run one
 * after the other, each whole, as PostgreSQL's do).
 */
export class MssqlSourceDatabase implements SourceDatabase {
  readonly #connection: Connection;
  readonly #turns = new OneAtATime();
  #closed = false;

  /** @param connection a connected tedious connection; this object owns it and closes it. */
  constructor(connection: Connection) {
    this.#connection = connection;
    // An idle connection that dies emits "error"; without a listener that would crash the process.
    connection.on("error", () => {});
  }

  /**
   * Runs `SELECT 1`.
   *
   * @throws {SourceUnavailableError} when the query fails.
   */
  async ping(): Promise<void> {
    try {
      await this.#query("SELECT 1 AS ok");
    } catch (e) {
      throw new SourceUnavailableError(`Cannot query SQL Server: ${messageOf(e)}`, { cause: e });
    }
  }

  /**
   * Describes one schema: base tables (kind "table") and views (kind "view") from
   * `INFORMATION_SCHEMA`, descriptions from `MS_Description` extended properties (schema, table and
   * column level), primary keys in key order. Names are compared exactly (the catalogue's collation may
   * be case-insensitive, so results are filtered again in code).
   *
   * @throws {SchemaNotFoundError} when the schema does not exist or is not visible.
   * @throws {SourceUnavailableError} when the catalogue cannot be read.
   */
  async describeSchema(
    schema: string,
    options: { tables?: readonly string[] } = {},
  ): Promise<SchemaCatalog> {
    try {
      return await this.#describe(schema, options.tables);
    } catch (e) {
      if (e instanceof SchemaNotFoundError) throw e;
      throw new SourceUnavailableError(
        `Cannot read the catalogue of schema "${schema}" from SQL Server: ${messageOf(e)}`,
        { cause: e },
      );
    }
  }

  /**
   * How many rows SQL Server's metadata says each named table has: the sum of `sys.partitions.rows` over
   * its heap or clustered index (`index_id` 0 or 1), kept up to date by the engine without statistics
   * (approximate while transactions are open). Only user tables (`sys.tables`) are counted, so views are
   * left out, as are names that are not there. Names match exactly (filtered again in code). Reads the
   * catalogue only.
   *
   * @throws {SourceUnavailableError} when the catalogue cannot be read.
   */
  async estimateRows(
    schema: string,
    tables: readonly string[],
  ): Promise<ReadonlyMap<string, number>> {
    const estimates = new Map<string, number>();
    try {
      this.#assertOpen();
      if (tables.length === 0) return estimates;
      const rows = await this.#query(
        mssqlCatalogQueries.rowEstimates(sqlString(schema), tables.map(sqlString)),
      );
      for (const [schemaName, name, count] of rows) {
        if (schemaName !== schema || !tables.includes(String(name))) continue;
        const rowCount = num(count);
        if (rowCount !== null) estimates.set(String(name), rowCount);
      }
      return estimates;
    } catch (e) {
      if (e instanceof SourceUnavailableError) throw e;
      throw new SourceUnavailableError(
        `Cannot read the row estimates of schema "${schema}" from SQL Server: ${messageOf(e)}`,
        { cause: e },
      );
    }
  }

  /**
   * Streams the extract's columns with tedious' `row` events, cut into batches by {@link RowBatcher}.
   * The request is paused as soon as a full batch is queued and resumed when the consumer asks for the
   * next one, so at most about one batch (plus the rows of one TDS packet) is held. Stopping early, or a
   * value over the limit, cancels the request (an ATTENTION), which leaves the connection usable.
   *
   * @throws {ValueTooLargeError} when a value is over `maxValueBytes`.
   * @throws {SourceUnavailableError} when the query fails or the connection is lost.
   * @throws {RangeError} when a limit is not a positive integer.
   */
  async *readRows(
    extract: TableExtract,
    options: ReadRowsOptions = {},
  ): AsyncGenerator<CanonicalRow[], void, undefined> {
    const limits = readLimitsOf(options);
    this.#assertOpen();
    const endTurn = await this.#turns.begin();
    try {
      this.#assertOpen();
      yield* this.#stream(extract, limits);
    } finally {
      endTurn();
    }
  }

  async *#stream(
    extract: TableExtract,
    limits: ReadLimits,
  ): AsyncGenerator<CanonicalRow[], void, undefined> {
    const converters = extract.table.columns.map(mssqlCanonicalConverter);
    const batcher = new RowBatcher(extract, limits);
    const ready: CanonicalRow[][] = [];
    let done = false;
    let failure: unknown = undefined;
    let refused: unknown = undefined;
    let wake: (() => void) | undefined;
    const signal = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    const request = new tedious.Request(mssqlReadQuery(extract, limits.maxValueBytes), (e) => {
      if (e) failure = e;
      done = true;
      signal();
    });
    request.on("row", (columns: { value: unknown }[]) => {
      if (refused !== undefined) return;
      const row: CanonicalRow = new Array(columns.length);
      for (let i = 0; i < columns.length; i++) {
        const value = columns[i]?.value;
        row[i] = value === null || value === undefined
          ? null
          : (converters[i] ?? String)(value as never);
      }
      try {
        if (!batcher.add(row)) return;
        ready.push(batcher.take());
      } catch (e) {
        refused = e;
      }
      request.pause();
      signal();
    });
    this.#connection.execSqlBatch(request);
    try {
      while (true) {
        while (!done && ready.length === 0 && refused === undefined) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
        if (refused !== undefined) throw refused;
        if (failure !== undefined && !isCancel(failure)) break;
        const next = ready.shift();
        if (next !== undefined) {
          yield next;
          if (ready.length === 0 && !done) request.resume();
          continue;
        }
        if (batcher.size > 0) yield batcher.take();
        break;
      }
      if (failure !== undefined) {
        const column = guardedColumnOf(messageOf(failure));
        if (column !== undefined) {
          throw valueTooLarge(extract, column, limits.maxValueBytes, { cause: failure });
        }
        throw new SourceUnavailableError(
          `Cannot read table "${extract.schema}"."${extract.table.name}" from SQL Server: ${
            messageOf(failure)
          }`,
          { cause: failure },
        );
      }
    } finally {
      if (!done) {
        // The consumer stopped early: cancel, and wait for tedious to finish the request.
        const finished = new Promise<void>((resolve) => {
          wake = resolve;
        });
        request.resume();
        this.#connection.cancel();
        await finished;
      }
    }
  }

  /** Closes the connection; safe to call twice. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => {
      // A connection that already ended emits no second "end": give up waiting after a second.
      const timer = setTimeout(resolve, 1000);
      this.#connection.once("end", () => {
        clearTimeout(timer);
        resolve();
      });
      this.#connection.close();
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #describe(schema: string, only: readonly string[] | undefined): Promise<SchemaCatalog> {
    const s = sqlString(schema);
    const found = (await this.#query(mssqlCatalogQueries.schema(s)))
      .filter((r) => r[0] === schema);
    if (found.length === 0) throw new SchemaNotFoundError(schema);
    const empty: SchemaCatalog = {
      name: schema,
      description: text(found[0]?.[1]),
      tables: [],
    };
    if (only !== undefined && only.length === 0) return empty;
    const wanted = (name: string) => only === undefined || only.includes(name);

    const tables = (await this.#query(mssqlCatalogQueries.tables(s))).filter((r) =>
      wanted(String(r[0]))
    );
    const columns = await this.#query(mssqlCatalogQueries.columns(s));
    const keys = await this.#query(mssqlCatalogQueries.primaryKeys(s));
    const columnsOf = groupBy(columns, (c) => String(c[0]));
    const keysOf = groupBy(keys, (k) => String(k[0]));
    const described = tables.map((t): CatalogTable => {
      const name = String(t[0]);
      return {
        name,
        kind: String(t[1]) === "VIEW" ? "view" : "table",
        description: text(t[2]),
        columns: (columnsOf.get(name) ?? []).map((c): CatalogColumn => {
          const type = {
            dataType: String(c[2]),
            maxLength: num(c[4]),
            precision: num(c[5]),
            scale: num(c[6]),
            datetimePrecision: num(c[7]),
          };
          return {
            name: String(c[1]),
            dataType: mssqlFullType(type),
            logicalType: mssqlLogicalType(type),
            nullable: String(c[3]) === "YES",
            description: text(c[8]),
          };
        }),
        primaryKey: (keysOf.get(name) ?? []).map((k) => String(k[1])),
      };
    });
    described.sort((a, b) => compareNames(a.name, b.name));
    return { ...empty, tables: described };
  }

  /** Runs one SQL batch in its turn and collects its rows as arrays (catalogue-sized results only). */
  async #query(sql: string): Promise<unknown[][]> {
    this.#assertOpen();
    return await this.#turns.run(() => {
      this.#assertOpen();
      return new Promise<unknown[][]>((resolve, reject) => {
        const rows: unknown[][] = [];
        const request = new tedious.Request(sql, (e) => e ? reject(e) : resolve(rows));
        request.on(
          "row",
          (columns: { value: unknown }[]) => rows.push(columns.map((c) => c.value)),
        );
        this.#connection.execSqlBatch(request);
      });
    });
  }

  #assertOpen(): void {
    if (this.#closed) throw new SourceUnavailableError("The SQL Server connection is closed");
  }
}

/** The catalogue queries `describeSchema` sends, given the schema as an `N'...'` literal. */
export const mssqlCatalogQueries = {
  schema: (s: string): string =>
    `SELECT s.name, CONVERT(nvarchar(4000), ep.value) AS description FROM sys.schemas s ` +
    `LEFT JOIN sys.extended_properties ep ON ep.class = 3 AND ep.major_id = s.schema_id ` +
    `AND ep.minor_id = 0 AND ep.name = N'MS_Description' WHERE s.name = ${s}`,
  tables: (s: string): string =>
    `SELECT t.TABLE_NAME, t.TABLE_TYPE, CONVERT(nvarchar(4000), ep.value) AS description ` +
    `FROM INFORMATION_SCHEMA.TABLES t LEFT JOIN sys.extended_properties ep ON ep.class = 1 ` +
    `AND ep.major_id = OBJECT_ID(QUOTENAME(t.TABLE_SCHEMA) + N'.' + QUOTENAME(t.TABLE_NAME)) ` +
    `AND ep.minor_id = 0 AND ep.name = N'MS_Description' ` +
    `WHERE t.TABLE_SCHEMA = ${s} AND t.TABLE_TYPE IN (N'BASE TABLE', N'VIEW')`,
  columns: (s: string): string =>
    `SELECT c.TABLE_NAME, c.COLUMN_NAME, c.DATA_TYPE, c.IS_NULLABLE, c.CHARACTER_MAXIMUM_LENGTH, ` +
    `c.NUMERIC_PRECISION, c.NUMERIC_SCALE, c.DATETIME_PRECISION, ` +
    `CONVERT(nvarchar(4000), ep.value) AS description FROM INFORMATION_SCHEMA.COLUMNS c ` +
    `LEFT JOIN sys.extended_properties ep ON ep.class = 1 ` +
    `AND ep.major_id = OBJECT_ID(QUOTENAME(c.TABLE_SCHEMA) + N'.' + QUOTENAME(c.TABLE_NAME)) ` +
    `AND ep.minor_id = COLUMNPROPERTY(ep.major_id, c.COLUMN_NAME, 'ColumnId') ` +
    `AND ep.name = N'MS_Description' WHERE c.TABLE_SCHEMA = ${s} ` +
    `ORDER BY c.TABLE_NAME, c.ORDINAL_POSITION`,
  primaryKeys: (s: string): string =>
    `SELECT k.TABLE_NAME, k.COLUMN_NAME FROM INFORMATION_SCHEMA.TABLE_CONSTRAINTS tc ` +
    `JOIN INFORMATION_SCHEMA.KEY_COLUMN_USAGE k ON k.CONSTRAINT_NAME = tc.CONSTRAINT_NAME ` +
    `AND k.CONSTRAINT_SCHEMA = tc.CONSTRAINT_SCHEMA AND k.TABLE_NAME = tc.TABLE_NAME ` +
    `WHERE tc.CONSTRAINT_TYPE = N'PRIMARY KEY' AND tc.TABLE_SCHEMA = ${s} ` +
    `ORDER BY k.TABLE_NAME, k.ORDINAL_POSITION`,
  /** The row counts `estimateRows` reads, given the table names as `N'...'` literals too. */
  rowEstimates: (s: string, tables: readonly string[]): string =>
    `SELECT s.name, t.name, SUM(p.rows) AS row_count FROM sys.partitions p ` +
    `JOIN sys.tables t ON t.object_id = p.object_id ` +
    `JOIN sys.schemas s ON s.schema_id = t.schema_id ` +
    `WHERE p.index_id IN (0, 1) AND s.name = ${s} AND t.name IN (${tables.join(", ")}) ` +
    `GROUP BY s.name, t.name`,
};

function isCancel(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === "ECANCEL";
}

function num(value: unknown): number | null {
  return value === null || value === undefined ? null : Number(value);
}

function text(value: unknown): string | null {
  return value === null || value === undefined || value === "" ? null : String(value);
}
