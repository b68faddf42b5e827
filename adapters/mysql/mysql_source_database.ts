/**
 * A MySQL or MariaDB source database, read through mysql2. The "schema" is the MySQL database; the
 * catalogue comes from `information_schema` with server-side prepared statements only: one round trip for
 * the database, one for its tables and views, one for their columns and one for their primary keys.
 *
 * `information_schema` compares names case-insensitively, so every lookup also compares the bytes
 * (`BINARY`) or filters in code: names match exactly, as everywhere else in this project.
 *
 * @module
 */
import mysql, { type Connection, type RowDataPacket } from "mysql2/promise";
import type { CatalogTable, SchemaCatalog } from "../../domain/catalog.ts";
import {
  SchemaNotFoundError,
  type SourceDatabase,
  SourceUnavailableError,
  type SqlConnectionOptions,
  type SqlSourceConnector,
} from "../../ports/source_database.ts";

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
        columns: (columnsOf.get(name) ?? []).map((c) => ({
          name: text(c.name),
          dataType: text(c.type),
          nullable: text(c.nullable) === "YES",
          description: comment(c.comment),
        })),
        primaryKey: (keysOf.get(name) ?? []).map((k) => text(k.name)),
      };
    });
    described.sort((a, b) => compareNames(a.name, b.name));
    return { ...empty, tables: described };
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
    return this.#lost === undefined
      ? message
      : `${message} (connection lost: ${messageOf(this.#lost)})`;
  }
}

/**
 * Opens a mysql2 connection the way {@link connectMysql} does: connect timeout, big numbers and dates as
 * strings, and the statement timeout set on the session (best effort: MariaDB's `max_statement_time`,
 * else MySQL's `max_execution_time`, which only limits `SELECT`).
 *
 * @returns the open connection; the caller must end it.
 * @throws the driver's own error when the connection fails.
 */
export async function openMysqlConnection(options: SqlConnectionOptions): Promise<Connection> {
  const connection = await mysql.createConnection({
    host: options.host,
    port: options.port,
    user: options.username,
    password: options.password,
    ...(options.database === "" ? {} : { database: options.database }),
    connectTimeout: options.connectTimeoutMs,
    supportBigNumbers: true,
    bigNumberStrings: true,
    dateStrings: true,
  });
  try {
    await applyStatementTimeout(connection, options.statementTimeoutMs);
  } catch (e) {
    connection.destroy();
    throw e;
  }
  return connection;
}

/**
 * Opens a MySQL or MariaDB source and proves it with a ping.
 *
 * @throws {SourceUnavailableError} when the server cannot be reached or refuses the login.
 */
export const connectMysql: SqlSourceConnector = async function connectMysql(options) {
  let connection: Connection | undefined;
  try {
    connection = await openMysqlConnection(options);
    await connection.query("SELECT 1 AS ok");
  } catch (e) {
    connection?.destroy();
    const detail = redact(messageOf(e), options.password);
    throw new SourceUnavailableError(
      `Cannot connect to MySQL at ${options.host}:${options.port}: ${detail}`,
      { cause: e },
    );
  }
  return new MysqlSourceDatabase(connection);
};

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

function messageOf(e: unknown): string {
  if (e instanceof AggregateError && e.message === "" && e.errors.length > 0) {
    return e.errors.map(messageOf).join("; ");
  }
  return e instanceof Error
    ? e.message || String((e as { code?: unknown }).code ?? e.name)
    : String(e);
}

function redact(message: string, secret: string): string {
  return secret === "" ? message : message.replaceAll(secret, "***");
}

function groupBy<T>(rows: Iterable<T>, key: (row: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const row of rows) {
    const k = key(row);
    const group = groups.get(k);
    if (group === undefined) groups.set(k, [row]);
    else group.push(row);
  }
  return groups;
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
