/**
 * A MySQL or MariaDB source database, read through mysql2. The "schema" is the MySQL database; the
 * catalogue comes from `information_schema` with server-side prepared statements only: one round trip for
 * the database, one for its tables and views, one for their columns and one for their primary keys.
 *
 * `information_schema` compares names case-insensitively, so every lookup also compares the bytes
 * (`BINARY`) or filters in code: names match exactly, as everywhere else in this project.
 *
 * Rows are streamed with `query().stream()` and converted column by column to canonical text (see
 * `mysqlCanonicalConverter` in `mysql_dialect.ts`); the session runs in UTC so `TIMESTAMP` values come out as UTC.
 * The CSV fast path (`readCsv`) runs the same query but encodes each row packet's bytes directly
 * (`mysql_csv.ts`), without a JavaScript string per value.
 *
 * @module
 */
import type { Readable } from "node:stream";
import mysql, { type Connection, type QueryOptions, type RowDataPacket } from "mysql2/promise";
import type {
  CatalogColumn,
  CatalogTable,
  SchemaCatalog,
  TableExtract,
} from "../../domain/catalog.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import { compareNames, groupBy } from "../shared/collections.ts";
import { messageOf } from "../shared/errors.ts";
import {
  maxValueBytesOf,
  type ReadCsvOptions,
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
  valueTooLarge,
  ValueTooLargeError,
} from "../../ports/source_database.ts";
import {
  DEFAULT_MYSQL_TLS,
  describeMysqlTlsFailure,
  mysqlSslOptions,
  type MysqlTlsOptions,
} from "./mysql_tls.ts";
import { mysqlCsvEncoding, mysqlLogicalType, mysqlReadQuery } from "./mysql_dialect.ts";
import { MysqlCsvEncoder } from "./mysql_csv.ts";
import { encodeCsvRow } from "../../domain/csv.ts";

/** A source database backed by one mysql2 connection. */
export class MysqlSourceDatabase implements SourceDatabase {
  readonly #connection: Connection;
  #closed = false;
  #lost: unknown = undefined;

  /**
   * @param connection an open mysql2/promise connection; this object owns it from now on and ends it in
   *   {@link close}.
   */
  constructor(connection: Connection) {
    this.#connection = connection;
    // A connection that dies while idle emits "error"; without a listener that would crash the process.
    // The next call then fails with a "closed state" error, which becomes a SourceUnavailableError.
    connection.on("error", (e: unknown) => {
      this.#lost = e;
    });
  }

  /**
   * Runs `SELECT 1`.
   *
   * @throws {SourceUnavailableError} when the query fails.
   */
  async ping(): Promise<void> {
    this.#assertOpen();
    try {
      await this.#connection.query("SELECT 1 AS ok");
    } catch (e) {
      throw new SourceUnavailableError(`Cannot query MySQL: ${this.#messageOf(e)}`, { cause: e });
    }
  }

  /**
   * Describes one database from `information_schema`: base and system-versioned tables (kind "table"),
   * views (kind "view"). Sequences are left out. MySQL has no database comments, so the description is
   * always null; MySQL views cannot have comments either.
   *
   * @throws {SchemaNotFoundError} when the database does not exist or the user has no privilege in it.
   * @throws {SourceUnavailableError} when the catalogue cannot be read.
   */
  async describeSchema(
    schema: string,
    options: { tables?: readonly string[] } = {},
  ): Promise<SchemaCatalog> {
    this.#assertOpen();
    try {
      return await this.#describe(schema, options.tables);
    } catch (e) {
      if (e instanceof SchemaNotFoundError) throw e;
      throw new SourceUnavailableError(
        `Cannot read the catalogue of database "${schema}" from MySQL: ${this.#messageOf(e)}`,
        { cause: e },
      );
    }
  }

  /**
   * How many rows the server's statistics expect: `information_schema.tables.table_rows` of each named
   * base or system-versioned table (views are left out). For InnoDB it is an estimate from sampled pages,
   * refreshed by `ANALYZE TABLE` and as the table changes (MySQL 8 may cache it for
   * `information_schema_stats_expiry`); a table without a count (NULL) is left out, as are names that are
   * not there and tables the user cannot see. Names match exactly. Reads the catalogue only.
   *
   * @throws {SourceUnavailableError} when the catalogue cannot be read.
   */
  async estimateRows(
    schema: string,
    tables: readonly string[],
  ): Promise<ReadonlyMap<string, number>> {
    this.#assertOpen();
    const estimates = new Map<string, number>();
    if (tables.length === 0) return estimates;
    try {
      const rows = await this.#rows(
        `SELECT table_name AS name, table_rows AS estimate
           FROM information_schema.tables
          WHERE table_schema = ? AND BINARY table_schema = BINARY ?
            AND table_name IN (${tables.map(() => "?").join(", ")})
            AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED')`,
        [schema, schema, ...tables],
      );
      for (const row of rows) {
        const name = text(row.name);
        if (row.estimate === null || row.estimate === undefined || !tables.includes(name)) continue;
        estimates.set(name, Number(row.estimate));
      }
      return estimates;
    } catch (e) {
      throw new SourceUnavailableError(
        `Cannot read the row estimates of database "${schema}" from MySQL: ${this.#messageOf(e)}`,
        { cause: e },
      );
    }
  }

  /**
   * Streams the extract's columns with `query().stream()`, converting each value to canonical text as
   * mysql2 parses it, cut into batches by {@link RowBatcher}. When a batch is full the stream and the
   * connection's socket are paused until the caller asks for more, so what is held beyond one batch is
   * about one socket read of packets, whatever the row size.
   *
   * Values that can be over the per-value limit are measured by the server first (see
   * {@link mysqlReadQuery}): such a value is sent as NULL, with the column flagged, and fails the read.
   *
   * The session is set to UTC first (`TIMESTAMP` values are read as UTC) and `net_write_timeout` raised
   * to at least ten minutes, so that a slow caller pausing the socket is not taken for a dead client.
   * Stopping early discards the rest of the result as the server sends it (the connection stays usable).
   *
   * @throws {ValueTooLargeError} when a value is over `maxValueBytes`.
   * @throws {SourceUnavailableError} when the query fails or the connection is lost mid-stream.
   * @throws {RangeError} when a limit is not a positive integer.
   */
  async *readRows(
    extract: TableExtract,
    options: ReadRowsOptions = {},
  ): AsyncGenerator<CanonicalRow[], void, undefined> {
    const limits = readLimitsOf(options);
    this.#assertOpen();
    const query = mysqlReadQuery(extract, limits.maxValueBytes);
    const highWaterMark = Math.min(limits.batchRows, STREAM_HIGH_WATER_MARK);
    yield* this.#read(
      extract,
      (core) => streamFeed(core, query, highWaterMark),
      rowBatches(extract, limits, query.guarded),
    );
  }

  /**
   * Streams the extract as canonical CSV, header first, in chunks of about {@link CSV_CHUNK_BYTES}:
   * the same bytes as {@link readRows} encoded by `domain/csv.ts`, made from the bytes of each row
   * packet (`mysql_csv.ts`) instead of a JavaScript string per value. The query, its guards, the
   * session, pauses and failures are those of {@link readRows}.
   *
   * @throws {ValueTooLargeError} when a value is over `maxValueBytes`.
   * @throws {SourceUnavailableError} when the query fails or the connection is lost mid-stream.
   */
  async *readCsv(
    extract: TableExtract,
    options: ReadCsvOptions = {},
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const maxValueBytes = maxValueBytesOf(options);
    this.#assertOpen();
    const query = mysqlReadQuery(extract, maxValueBytes);
    const encoder = new MysqlCsvEncoder(
      extract.table.columns.map(mysqlCsvEncoding),
      CSV_CHUNK_BYTES,
    );
    yield utf8Encoder.encode(encodeCsvRow(extract.table.columns.map((c) => c.name)));
    yield* this.#read(extract, (core) => packetFeed(core, query), {
      add(packet: RowPacket) {
        const after = encoder.addRow(packet.buffer, packet.offset, packet.end);
        if (query.guarded && packet.buffer[after] !== NULL_VALUE) {
          // The guard column is the index of the first value over the limit, as text.
          const { buffer } = packet;
          let index = "";
          for (let i = after + 1; i < after + 1 + buffer[after]!; i++) {
            index += String.fromCharCode(buffer[i]!);
          }
          throw valueTooLarge(extract, Number(index), maxValueBytes);
        }
        return encoder.full ? encoder.take() : undefined;
      },
      end: () => encoder.size > 0 ? encoder.take() : undefined,
    });
  }

  /**
   * Runs a read query, with `collect` turning its rows into what is yielded. The session is set to UTC
   * first (`TIMESTAMP` values are read as UTC) and `net_write_timeout` raised to at least ten minutes,
   * so that a slow caller pausing the socket is not taken for a dead client. Stopping early discards
   * the rest of the result as the server sends it (the connection stays usable).
   */
  async *#read<R, T>(
    extract: TableExtract,
    open: (core: StreamingConnection) => RowFeed<R>,
    collect: Collector<R, T>,
  ): AsyncGenerator<T, void, undefined> {
    const what = `table "${extract.schema}"."${extract.table.name}"`;
    try {
      await this.#connection.query(READ_SESSION);
      const core = (this.#connection as unknown as { connection: StreamingConnection }).connection;
      // mysql2 tells a streaming query nothing when the connection drops (it only has a callback to
      // call, and a stream has none), so the read would wait forever: the connection's "error"
      // event ends it instead.
      let feed: RowFeed<R> | undefined;
      let lost: Error | undefined;
      const onLost = (e: unknown) => {
        lost ??= e instanceof Error ? e : new Error(String(e));
        feed?.fail(lost);
      };
      core.on("error", onLost);
      try {
        feed = open(core);
        yield* collected(feed, core, collect, lost);
      } finally {
        core.off("error", onLost);
      }
    } catch (e) {
      if (e instanceof SourceUnavailableError || e instanceof ValueTooLargeError) throw e;
      throw new SourceUnavailableError(
        `Cannot read ${what} from MySQL: ${this.#messageOf(e)}`,
        { cause: e },
      );
    }
  }

  /** Ends the connection (destroying it if it cannot end cleanly); safe to call twice. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#connection.end();
    } catch {
      // Already broken: nothing is left to flush, so just release the socket.
      this.#connection.destroy();
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #describe(
    schema: string,
    only: readonly string[] | undefined,
  ): Promise<SchemaCatalog> {
    const found = await this.#rows(
      `SELECT schema_name AS name FROM information_schema.schemata
        WHERE schema_name = ? AND BINARY schema_name = BINARY ?`,
      [schema, schema],
    );
    if (found.length === 0) throw new SchemaNotFoundError(schema);
    const empty: SchemaCatalog = { name: schema, description: null, tables: [] };
    if (only !== undefined && only.length === 0) return empty;

    // The same condition for all three queries: this database, and the requested tables if any
    // (compared case-insensitively here, exactly in `wanted` below).
    const inSchema = "table_schema = ? AND BINARY table_schema = BINARY ?";
    const inTables = only === undefined
      ? ""
      : ` AND table_name IN (${only.map(() => "?").join(", ")})`;
    const params = [schema, schema, ...(only ?? [])];
    const wanted = only === undefined ? () => true : (name: string) => only.includes(name);

    const tables = (await this.#rows(
      `SELECT table_name AS name, table_type AS type, table_comment AS comment
         FROM information_schema.tables
        WHERE ${inSchema}${inTables}
          AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED', 'VIEW', 'SYSTEM VIEW')`,
      params,
    )).filter((t) => wanted(text(t.name)));
    if (tables.length === 0) return empty;

    const columns = await this.#rows(
      `SELECT table_name AS tbl, column_name AS name, column_type AS type,
              data_type AS dtype, numeric_precision AS prec, numeric_scale AS scale,
              is_nullable AS nullable, column_comment AS comment
         FROM information_schema.columns
        WHERE ${inSchema}${inTables}
        ORDER BY table_name, ordinal_position`,
      params,
    );
    const keys = await this.#rows(
      `SELECT table_name AS tbl, column_name AS name
         FROM information_schema.key_column_usage
        WHERE ${inSchema}${inTables} AND constraint_name = 'PRIMARY'
        ORDER BY table_name, ordinal_position`,
      params,
    );

    const jsonColumns = columns.some((c) => text(c.dtype).toLowerCase() === "longtext")
      ? await this.#jsonAliasColumns(schema)
      : new Set<string>();

    const columnsOf = groupBy(columns, (c) => text(c.tbl));
    const keysOf = groupBy(keys, (k) => text(k.tbl));
    const described = tables.map((t): CatalogTable => {
      const name = text(t.name);
      const isView = text(t.type).endsWith("VIEW");
      return {
        name,
        kind: isView ? "view" : "table",
        // MySQL reports "VIEW" as every view's comment.
        description: isView ? null : comment(t.comment),
        columns: (columnsOf.get(name) ?? []).map((c): CatalogColumn => {
          const columnName = text(c.name);
          return {
            name: columnName,
            dataType: text(c.type),
            logicalType: mysqlLogicalType({
              dataType: text(c.dtype),
              columnType: text(c.type),
              precision: c.prec === null ? null : Number(c.prec),
              scale: c.scale === null ? null : Number(c.scale),
              jsonCheck: jsonColumns.has(columnKey(name, columnName)),
            }),
            nullable: text(c.nullable) === "YES",
            description: comment(c.comment),
          };
        }),
        primaryKey: (keysOf.get(name) ?? []).map((k) => text(k.name)),
      };
    });
    described.sort((a, b) => compareNames(a.name, b.name));
    return { ...empty, tables: described };
  }

  /**
   * MariaDB's `JSON` is `LONGTEXT` plus a `json_valid(col)` check constraint, which
   * `information_schema.check_constraints` shows with the table name. MySQL has a real JSON type, and
   * its `check_constraints` has no table name (8.0) or does not exist (5.7): then there are no aliases.
   *
   * @returns `columnKey(table, column)` of every column with such a check.
   */
  async #jsonAliasColumns(schema: string): Promise<Set<string>> {
    let checks: RowDataPacket[];
    try {
      checks = await this.#rows(
        `SELECT table_name AS tbl, check_clause AS clause
           FROM information_schema.check_constraints
          WHERE constraint_schema = ? AND BINARY constraint_schema = BINARY ?
            AND check_clause LIKE 'json\\_valid(%'`,
        [schema, schema],
      );
    } catch (e) {
      if (errno(e) === BAD_FIELD || errno(e) === UNKNOWN_TABLE) return new Set();
      throw e;
    }
    const found = new Set<string>();
    for (const check of checks) {
      const match = /^json_valid\(`((?:[^`]|``)+)`\)$/.exec(text(check.clause).trim());
      if (match?.[1] !== undefined) {
        found.add(columnKey(text(check.tbl), match[1].replaceAll("``", "`")));
      }
    }
    return found;
  }

  async #rows(sql: string, params: readonly string[]): Promise<RowDataPacket[]> {
    const [rows] = await this.#connection.execute<RowDataPacket[]>(sql, [...params]);
    return rows;
  }

  #assertOpen(): void {
    if (this.#closed) throw new SourceUnavailableError("Cannot use a closed MySQL connection");
  }

  #messageOf(e: unknown): string {
    const message = messageOf(e);
    const lost = this.#lost === undefined ? undefined : messageOf(this.#lost);
    return lost === undefined || lost === message
      ? message
      : `${message} (connection lost: ${lost})`;
  }
}

/** Where a MySQL or MariaDB database is, and how its connections are encrypted. */
export interface MysqlConnectionOptions extends SqlConnectionOptions {
  /** TLS; without it {@link DEFAULT_MYSQL_TLS}: required, certificate and host name checked. */
  readonly tls?: MysqlTlsOptions;
}

/**
 * Opens a mysql2 connection the way {@link connectMysql} does: TLS as `options.tls` says (never a
 * fallback to plain text, see `mysql_tls.ts`), connect timeout, big numbers and dates as strings, the
 * session in UTC, and the statement timeout set on the session (best effort: MariaDB's
 * `max_statement_time`, else MySQL's `max_execution_time`, which only limits `SELECT`).
 *
 * @returns the open connection; the caller must end it.
 * @throws the driver's own error when the connection fails, or an error naming the ssl-mode when TLS
 *   cannot be had.
 */
export async function openMysqlConnection(options: MysqlConnectionOptions): Promise<Connection> {
  const tls = options.tls ?? DEFAULT_MYSQL_TLS;
  const ssl = mysqlSslOptions(options.host, tls);
  const connection = await mysql.createConnection({
    host: options.host,
    port: options.port,
    user: options.username,
    password: options.password,
    ...(options.database === "" ? {} : { database: options.database }),
    ...(ssl === undefined ? {} : { ssl }),
    connectTimeout: options.connectTimeoutMs,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
    jsonStrings: true,
  }).catch((e: unknown) => {
    const tlsFailure = describeMysqlTlsFailure(e, tls);
    throw tlsFailure === undefined ? e : new Error(tlsFailure, { cause: e });
  });
  try {
    await connection.query("SET time_zone = '+00:00'");
    await applyStatementTimeout(connection, options.statementTimeoutMs);
  } catch (e) {
    connection.destroy();
    throw e;
  }
  return connection;
}

/**
 * Opens a MySQL or MariaDB source and proves it with a ping. A failure is reported with a fixed
 * sentence; the driver's message, without the user name and password, is the error's `logDetail`.
 *
 * @throws {SourceLoginRefusedError} when the server refuses the login.
 * @throws {SourceConnectionError} when the server cannot be reached the connection fails otherwise, or
 *   it cannot give the TLS `options.tls` asks for (verified TLS by default).
 */
export const connectMysql = async function connectMysql(
  options: MysqlConnectionOptions,
): Promise<SourceDatabase> {
  let connection: Connection | undefined;
  try {
    connection = await openMysqlConnection(options);
    await connection.query("SELECT 1 AS ok");
  } catch (e) {
    connection?.destroy();
    const logDetail = `Cannot connect to MySQL at ${options.host}:${options.port}: ${
      redactSecrets(messageOf(e), [options.username, options.password])
    }`;
    throw LOGIN_REFUSED.has(errno(e) as number)
      ? new SourceLoginRefusedError({ logDetail, cause: e })
      : new SourceConnectionError({ logDetail, cause: e });
  }
  return new MysqlSourceDatabase(connection);
};

/**
 * The server errors that refuse a login: ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR,
 * ER_HOST_NOT_PRIVILEGED, ER_ACCESS_DENIED_NO_PASSWORD_ERROR and ER_MUST_CHANGE_PASSWORD_LOGIN.
 */
const LOGIN_REFUSED: ReadonlySet<number> = new Set([1044, 1045, 1130, 1698, 1862]);

/** The most rows mysql2's stream buffers before it pauses the socket. */
export const STREAM_HIGH_WATER_MARK = 1_000;

const READ_SESSION =
  "SET time_zone = '+00:00', net_write_timeout = GREATEST(@@SESSION.net_write_timeout, 600)";

/** The part of mysql2's callback connection that `readRows` uses. */
interface StreamingConnection {
  query(options: QueryOptions): { stream(options: { highWaterMark: number }): Readable };
  on(event: "error", listener: (e: unknown) => void): unknown;
  off(event: "error", listener: (e: unknown) => void): unknown;
  /** Stops reading the socket; packets already read wait, unparsed, until {@link resume}. */
  pause(): void;
  resume(): void;
}

/** The bytes of one row packet of the text protocol: its values are `buffer[offset..end)`. */
interface RowPacket {
  readonly buffer: Uint8Array;
  readonly offset: number;
  readonly end: number;
}

/** Rows as a query delivers them, whatever carries them; {@link collected} paces them. */
interface RowFeed<R> {
  /** Starts delivering: every row to `onRow`, then `onEnd` or `onError` once. */
  start(onRow: (row: R) => void, onEnd: () => void, onError: (e: unknown) => void): void;
  /** Holds the rows back until {@link resume} (the connection stops reading its socket). */
  pause(): void;
  resume(): void;
  /** Ends the read early: the rest of the result is read and discarded, the connection stays usable. */
  stop(): void;
  /** Ends the read with an error (the connection was lost). */
  fail(e: Error): void;
}

/** The rows of a query as arrays, through mysql2's row parser and stream. */
function streamFeed(
  core: StreamingConnection,
  query: QueryOptions,
  highWaterMark: number,
): RowFeed<unknown[]> {
  const stream = core.query(query).stream({ highWaterMark });
  return {
    start(onRow, onEnd, onError) {
      stream.on("data", onRow);
      stream.on("end", onEnd);
      stream.on("error", onError);
    },
    pause() {
      stream.pause();
      core.pause();
    },
    resume() {
      stream.resume();
      core.resume();
    },
    stop() {
      if (!stream.destroyed) stream.destroy();
      core.resume();
    },
    fail: (e) => stream.destroy(e),
  };
}

/**
 * The row packets of a query, unparsed: the query command's row state is replaced by one that hands
 * each packet over (mysql2's own handles the end of the result), so that no value becomes a
 * JavaScript string or object.
 */
function packetFeed(core: StreamingConnection, query: QueryOptions): RowFeed<RowPacket> {
  const command = core.query(query) as unknown as QueryCommand;
  const rowState = Object.getPrototypeOf(command).row as QueryCommand["row"];
  let discard = false;
  let done = false;
  let onFail: ((e: unknown) => void) | undefined;
  return {
    start(onRow, onEnd, onError) {
      onFail = onError;
      const row = function (this: QueryCommand, packet: MysqlPacket, connection: unknown) {
        if (packet.isEOF()) return rowState.call(this, packet, connection);
        if (!discard && !done) onRow(packet);
        return row;
      };
      command.row = row;
      command.on("end", () => {
        if (done) return;
        done = true;
        onEnd();
      });
      command.on("error", (e: unknown) => {
        if (done) return;
        done = true;
        onError(e);
      });
    },
    pause: () => core.pause(),
    resume: () => core.resume(),
    stop() {
      discard = true;
      core.resume();
    },
    fail(e) {
      if (done) return;
      done = true;
      onFail?.(e);
    },
  };
}

/** The parts of mysql2's query command and packet that {@link packetFeed} uses. */
interface QueryCommand {
  row(packet: MysqlPacket, connection: unknown): unknown;
  on(event: "end" | "error", listener: (e?: unknown) => void): unknown;
}
interface MysqlPacket extends RowPacket {
  isEOF(): boolean;
}

/**
 * Turns a row feed into what `collect` makes of its rows (batches, CSV chunks). When `collect` has
 * something ready the feed is paused until the caller asks for more. Stopping early (or a failure in
 * `collect`) stops the feed, which then discards the rest of the result as it arrives.
 *
 * @param lost set when the connection was lost before the feed started.
 */
async function* collected<R, T>(
  feed: RowFeed<R>,
  connection: StreamingConnection,
  collect: Collector<R, T>,
  lost: Error | undefined,
): AsyncGenerator<T, void, undefined> {
  const ready: T[] = [];
  let ended = false;
  let failed = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    wake?.();
    wake = undefined;
  };
  const fail = (e: unknown) => {
    if (failed) return;
    failed = true;
    failure = e;
    notify();
  };
  feed.start(
    (row) => {
      if (failed) return;
      try {
        const out = collect.add(row);
        if (out !== undefined) {
          ready.push(out);
          feed.pause();
          notify();
        }
      } catch (e) {
        fail(e);
        feed.stop();
      }
    },
    () => {
      try {
        const last = collect.end();
        if (last !== undefined) ready.push(last);
        ended = true;
        notify();
      } catch (e) {
        fail(e);
      }
    },
    fail,
  );
  if (lost !== undefined) feed.fail(lost);
  try {
    for (;;) {
      while (ready.length === 0 && !ended && !failed) {
        await new Promise<void>((resolve) => wake = resolve);
      }
      if (failed) throw failure;
      const next = ready.shift();
      if (next === undefined) return;
      yield next;
      if (ready.length === 0 && !ended) feed.resume();
    }
  } finally {
    if (!ended) {
      feed.stop();
      // The rest of the result must still be read (and discarded) for the connection to be usable.
      connection.resume();
    }
  }
}

/** What a read makes of its rows: `add` takes a row and returns what is ready, `end` what is left. */
interface Collector<R, T> {
  add(row: R): T | undefined;
  end(): T | undefined;
}

/** The size of the chunks `readCsv` yields. */
export const CSV_CHUNK_BYTES = 256 * 1024;

const utf8Encoder = new TextEncoder();

/** The first byte of a NULL value in a row packet. */
const NULL_VALUE = 0xfb;

/** Fails the read when the guard column (last, removed here) names a value over the limit. */
function checkGuard(row: unknown[], extract: TableExtract, maxValueBytes: number): void {
  const flagged = row.pop();
  if (flagged !== null && flagged !== undefined) {
    throw valueTooLarge(extract, Number(flagged), maxValueBytes);
  }
}

/** The batches of a {@link mysqlReadQuery} stream, gathered by a {@link RowBatcher}. */
function rowBatches(
  extract: TableExtract,
  limits: ReadLimits,
  guarded: boolean,
): Collector<unknown[], CanonicalRow[]> {
  const batcher = new RowBatcher(extract, limits);
  return {
    add(row) {
      if (guarded) checkGuard(row, extract, limits.maxValueBytes);
      return batcher.add(row as CanonicalRow) ? batcher.take() : undefined;
    },
    end: () => batcher.size > 0 ? batcher.take() : undefined,
  };
}

function columnKey(table: string, column: string): string {
  return `${table}\u0000${column}`;
}

// ER_BAD_FIELD_ERROR and ER_UNKNOWN_TABLE (information_schema tables MySQL lacks).
const BAD_FIELD = 1054;
const UNKNOWN_TABLE = 1109;

// ER_UNKNOWN_SYSTEM_VARIABLE: the server does not have this variable.
const UNKNOWN_VARIABLE = 1193;

async function applyStatementTimeout(connection: Connection, timeoutMs: number): Promise<void> {
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) return;
  const ms = Math.ceil(timeoutMs);
  try {
    // MariaDB: seconds, fractions allowed, every statement.
    await connection.query(`SET SESSION max_statement_time = ${ms / 1000}`);
  } catch (e) {
    if (errno(e) !== UNKNOWN_VARIABLE) throw e;
    try {
      // MySQL 5.7.8+: milliseconds, read-only SELECT statements only.
      await connection.query(`SET SESSION max_execution_time = ${ms}`);
    } catch (e2) {
      if (errno(e2) !== UNKNOWN_VARIABLE) throw e2;
      // Neither exists (old MySQL): run without a server-side statement timeout.
    }
  }
}

function errno(e: unknown): unknown {
  return typeof e === "object" && e !== null && "errno" in e ? e.errno : undefined;
}

function text(value: unknown): string {
  if (value instanceof Uint8Array) return new TextDecoder().decode(value);
  return value === null || value === undefined ? "" : String(value);
}

function comment(value: unknown): string | null {
  const s = text(value);
  return s === "" ? null : s;
}
