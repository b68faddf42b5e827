/**
 * The data half of the Databricks source: one session on a SQL warehouse (or cluster) through the
 * official `@databricks/sql` 1.17.0 driver (Thrift `TCLIService` over HTTPS, inline Arrow results), and
 * a `readRows` that streams one table as canonical text in bounded batches.
 *
 * Exact values: the driver turns every Arrow value into a JS object and loses information on three
 * paths, so the SELECT list has the server convert those first (see {@link databricksSelectExpression}):
 * - Arrow timestamps become JS `Date`s (milliseconds): timestamps are selected as
 *   `unix_micros(...)`, an exact BIGINT;
 * - Arrow dates become `Date`s too, invalid beyond ±275,000 years (Databricks dates reach ±5.8 million):
 *   dates are selected as `unix_date(...)`, days since 1970 as an INT;
 * - with `preserveBigNumericPrecision`, a negative DECIMAL whose unscaled value passes 2^53 comes back
 *   wrong (apache-arrow 13 hands the driver a string, which it negates as a JS number), so decimals are
 *   selected as `CAST(... AS STRING)` and normalised here (see {@link normalizeDecimal}).
 *
 * Transport security: the driver's `HttpConnection` builds its HTTPS agent with
 * `rejectUnauthorized: false`, i.e. it accepts any certificate. {@link openDatabricksSql} therefore
 * replaces the connection provider with one whose agent verifies the server against the system roots
 * (plus `caCertificates`, for a TLS-inspecting proxy) and refuses anything below TLS 1.2.
 *
 * @module
 */
import type { Agent } from "node:http";
import https from "node:https";
import tls from "node:tls";
import type { DBSQLClient } from "@databricks/sql";
import type { TableExtract } from "../../domain/catalog.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import {
  guardedColumnOf,
  readLimitsOf,
  type ReadRowsOptions,
  RowBatcher,
  SourceConnectionError,
  SourceLoginRefusedError,
  SourceUnavailableError,
  valueTooLarge,
  type ValueTooLargeError,
} from "../../ports/source_database.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import { messageOf as driverMessageOf } from "../shared/errors.ts";
import {
  databricksCanonicalConverter,
  databricksReadQuery,
  databricksTableName,
} from "./databricks_dialect.ts";
import { databricks } from "./databricks_driver.ts";

const { auth, connections } = databricks;

/** How to reach a warehouse; the token comes from the workspace's OAuth endpoint. */
export interface DatabricksSqlOptions {
  /** The workspace host, without scheme. */
  readonly host: string;
  readonly port: number;
  /** The warehouse or cluster HTTP path, such as `/sql/1.0/warehouses/abc123`. */
  readonly httpPath: string;
  /** The Unity Catalog catalog the session starts in and every read names. */
  readonly catalog: string;
  /** Returns a valid access token; called before every request, so it should cache. */
  readonly getToken: () => Promise<string>;
  /** Extra certificate authorities (PEM) to trust besides the system ones. */
  readonly caCertificates?: readonly string[];
  /** Gives up opening the session after this long. */
  readonly connectTimeoutMs: number;
  /**
   * Limits each statement: sent as the statement's `queryTimeout` (clusters honour it), enforced here
   * while waiting for the statement to finish (then the statement is cancelled), and used as the
   * timeout of each HTTP request. Streaming a finished result is not limited. `0` or a non-finite value:
   * no limit.
   */
  readonly statementTimeoutMs: number;
}

/** An open warehouse session. */
export interface DatabricksSql {
  /**
   * Runs `SELECT 1`.
   *
   * @throws {SourceUnavailableError} when the query fails.
   */
  ping(): Promise<void>;
  /**
   * Streams the extract's columns of `catalog`.`schema`.`table` as canonical text, in batches cut by
   * `RowBatcher` (at most `batchRows` rows, about `batchBytes` bytes); each fetch asks for as many rows
   * as `RowBatcher.fetchRows()` says. Stopping early closes the statement and keeps the session usable.
   *
   * @throws {ValueTooLargeError} when a value is over `maxValueBytes`.
   * @throws {SourceUnavailableError} when the query fails.
   * @throws {RangeError} when a limit is not a positive integer.
   */
  readRows(extract: TableExtract, options?: ReadRowsOptions): AsyncIterable<CanonicalRow[]>;
  /**
   * The row count in the table statistics of `catalog`.`schema`.`table`: the `N rows` of the
   * `Statistics` row that `DESCRIBE TABLE EXTENDED` shows once `ANALYZE TABLE ... COMPUTE STATISTICS`
   * (or predictive optimisation) has run. Reads metadata only, never rows.
   *
   * @returns the count, or undefined when the table has no row count in its statistics.
   * @throws {SourceUnavailableError} when the statement fails (an unknown table included).
   */
  statisticsRows(schema: string, table: string): Promise<number | undefined>;
  /** Closes the session and its connections; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Opens a session on the warehouse, in the catalog, with the session time zone set to UTC. A failure is
 * reported with a fixed sentence; the driver's message, without the token, is the error's `logDetail`.
 *
 * @throws {SourceLoginRefusedError} when the warehouse refuses the token (401, 403).
 * @throws {SourceConnectionError} when the warehouse cannot be reached, refuses the certificate, or the
 *   session cannot be opened in time.
 * @throws {SourceUnavailableError} as thrown by `getToken` (the token source's own failures).
 */
export async function openDatabricksSql(options: DatabricksSqlOptions): Promise<DatabricksSql> {
  const tokens = new TokenProvider(options.getToken);
  const client = new VerifyingDBSQLClient({
    caCertificates: options.caCertificates ?? [],
    requestTimeoutMs: limit(options.statementTimeoutMs),
  });
  const where = `${options.host}:${options.port}${options.httpPath}`;
  try {
    const session = await withDeadline(
      limit(options.connectTimeoutMs),
      `opening a session on ${where}`,
      async () => {
        await client.connect({
          host: options.host,
          port: options.port,
          path: options.httpPath,
          authType: "token-provider",
          tokenProvider: tokens,
          telemetryEnabled: false,
          preserveBigNumericPrecision: true,
          userAgentEntry: "cr8tor-publisher",
          ...(limit(options.statementTimeoutMs) > 0
            ? { socketTimeout: limit(options.statementTimeoutMs) }
            : {}),
        });
        const session = await client.openSession({ initialCatalog: options.catalog });
        // The timestamp select expressions read TIMESTAMP_NTZ wall clocks in the session time zone.
        const set = await session.executeStatement("SET TIME ZONE 'UTC'", STATEMENT_OPTIONS);
        await set.fetchAll();
        await set.close();
        return session;
      },
    );
    return new DatabricksSqlSession(client, session, tokens, options);
  } catch (e) {
    await client.close().catch(() => {});
    client.destroy();
    // The token source's own failures already carry their fixed sentence.
    if (e instanceof SourceUnavailableError) throw e;
    const logDetail = `Cannot open a Databricks SQL session on ${where}: ${
      tokens.redact(messageOf(e))
    }`;
    throw refusedByWarehouse(e)
      ? new SourceLoginRefusedError({ logDetail, cause: e })
      : new SourceConnectionError({ logDetail, cause: e });
  }
}

/** Whether the warehouse answered 401 or 403 (the driver's `THTTPException.statusCode`), at any depth. */
function refusedByWarehouse(e: unknown): boolean {
  for (let current = e, depth = 0; current !== undefined && depth < 5; depth++) {
    if (typeof current !== "object" || current === null) return false;
    const status = (current as { statusCode?: unknown }).statusCode;
    if (status === 401 || status === 403) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** Options every statement is sent with: inline Arrow (no CloudFetch downloads), uncompressed. */
const STATEMENT_OPTIONS = { useCloudFetch: false, useLZ4Compression: false } as const;

type Session = Awaited<ReturnType<DBSQLClient["openSession"]>>;
type Operation = Awaited<ReturnType<Session["executeStatement"]>>;

class DatabricksSqlSession implements DatabricksSql, AsyncDisposable {
  readonly #client: VerifyingDBSQLClient;
  readonly #session: Session;
  readonly #tokens: TokenProvider;
  readonly #catalog: string;
  readonly #statementTimeoutMs: number;
  #closed: Promise<void> | undefined;

  constructor(
    client: VerifyingDBSQLClient,
    session: Session,
    tokens: TokenProvider,
    options: DatabricksSqlOptions,
  ) {
    this.#client = client;
    this.#session = session;
    this.#tokens = tokens;
    this.#catalog = options.catalog;
    this.#statementTimeoutMs = limit(options.statementTimeoutMs);
  }

  async ping(): Promise<void> {
    this.#assertOpen();
    try {
      const operation = await this.#execute("SELECT 1", 1);
      try {
        await this.#waitFinished(operation);
        await operation.fetchAll();
      } finally {
        await operation.close().catch(() => {});
      }
    } catch (e) {
      throw this.#unavailable("Cannot query Databricks", e);
    }
  }

  async *readRows(
    extract: TableExtract,
    options: ReadRowsOptions = {},
  ): AsyncGenerator<CanonicalRow[], void, undefined> {
    const limits = readLimitsOf(options);
    this.#assertOpen();
    const columns = extract.table.columns;
    const what = `Cannot read table ${
      databricksTableName(this.#catalog, extract.schema, extract.table.name)
    } from Databricks`;
    const sql = databricksReadQuery(this.#catalog, extract, limits.maxValueBytes);
    const converters = columns.map(databricksCanonicalConverter);
    const keys = columns.map((_, i) => `c${i}`);
    const batcher = new RowBatcher(extract, limits);
    let operation: Operation;
    try {
      operation = await this.#execute(sql, batcher.fetchRows());
    } catch (e) {
      throw this.#unavailable(what, e);
    }
    try {
      try {
        await this.#waitFinished(operation);
      } catch (e) {
        throw this.#readFailure(what, e, extract, limits.maxValueBytes);
      }
      while (true) {
        let chunk: Record<string, unknown>[];
        try {
          if (!(await operation.hasMoreRows())) break;
          chunk = await operation.fetchChunk({
            maxRows: batcher.fetchRows(),
          }) as Record<string, unknown>[];
        } catch (e) {
          throw this.#readFailure(what, e, extract, limits.maxValueBytes);
        }
        for (let r = 0; r < chunk.length; r++) {
          const record = chunk[r]!;
          const row: CanonicalRow = new Array(keys.length);
          for (let c = 0; c < keys.length; c++) {
            const value = record[keys[c]!];
            row[c] = value === null || value === undefined ? null : converters[c]!(value);
          }
          if (batcher.add(row)) yield batcher.take();
        }
        chunk = []; // not kept alive while the next fetch runs
      }
      if (batcher.size > 0) yield batcher.take();
    } finally {
      // Closing a statement that has not been read to the end cancels it on the server.
      await operation.close().catch(() => {});
    }
  }

  async statisticsRows(schema: string, table: string): Promise<number | undefined> {
    this.#assertOpen();
    const name = databricksTableName(this.#catalog, schema, table);
    try {
      const operation = await this.#execute(`DESCRIBE TABLE EXTENDED ${name}`, 1_000);
      try {
        await this.#waitFinished(operation);
        const rows = await operation.fetchAll() as Record<string, unknown>[];
        const statistics = rows.find((row) => row.col_name === "Statistics")?.data_type;
        return typeof statistics === "string" ? statisticsRowCount(statistics) : undefined;
      } finally {
        await operation.close().catch(() => {});
      }
    } catch (e) {
      throw this.#unavailable(`Cannot read the statistics of table ${name} from Databricks`, e);
    }
  }

  close(): Promise<void> {
    this.#closed ??= (async () => {
      try {
        await this.#session.close();
      } catch {
        // The server may already have dropped the session; the connections are closed below anyway.
      }
      await this.#client.close().catch(() => {});
      this.#client.destroy();
    })();
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #execute(sql: string, maxRows: number): Promise<Operation> {
    const timeout = this.#statementTimeoutMs;
    return this.#session.executeStatement(sql, {
      ...STATEMENT_OPTIONS,
      maxRows,
      ...(timeout > 0 ? { queryTimeout: Math.ceil(timeout / 1000) } : {}),
    });
  }

  /** Waits for the statement to finish, cancelling it when that takes longer than the timeout. */
  async #waitFinished(operation: Operation): Promise<void> {
    const finished = operation.finished();
    try {
      await withDeadline(this.#statementTimeoutMs, "the statement", () => finished);
    } catch (e) {
      if (e instanceof DeadlineError) {
        finished.catch(() => {});
        await operation.cancel().catch(() => {});
      }
      throw e;
    }
  }

  /** A read's failure: a guard's `raise_error` as {@link ValueTooLargeError}, else unavailability. */
  #readFailure(
    what: string,
    e: unknown,
    extract: TableExtract,
    maxValueBytes: number,
  ): ValueTooLargeError | SourceUnavailableError {
    const column = guardedColumnOf(messageOf(e));
    if (column === undefined) return this.#unavailable(what, e);
    return valueTooLarge(extract, column, maxValueBytes, { cause: e });
  }

  #unavailable(what: string, e: unknown): SourceUnavailableError {
    return new SourceUnavailableError(`${what}: ${this.#tokens.redact(messageOf(e))}`, {
      cause: e,
    });
  }

  #assertOpen(): void {
    if (this.#closed !== undefined) {
      throw new SourceUnavailableError("The Databricks SQL session is closed");
    }
  }
}

/**
 * The row count in the text of a `Statistics` row, e.g. `1234 bytes, 100 rows`; undefined when it names
 * only the size (`ANALYZE TABLE ... NOSCAN`).
 */
export function statisticsRowCount(statistics: string): number | undefined {
  const match = /\b(\d+) rows\b/.exec(statistics);
  return match === null ? undefined : Number(match[1]);
}

// ---------------------------------------------------------------------------------------------------
// Driver plumbing

type ConnectionOptions = Parameters<DBSQLClient["connect"]>[0];
type ClientOptions = NonNullable<ConstructorParameters<typeof DBSQLClient>[0]>;
type HttpConnectionOptions = ConstructorParameters<typeof connections.HttpConnection>[0];
type ClientContext = ConstructorParameters<typeof connections.HttpConnection>[1];
type TokenProviderContract = Extract<ConnectionOptions, { authType: "token-provider" }>[
  "tokenProvider"
];

/**
 * Hands the driver a fresh token on every request. The driver wraps any provider in a cache that keeps
 * a token until five minutes before the expiry it can see, and forever when it sees none (an opaque
 * token, or `external-token` with a non-JWT string). Marking each token as due for refresh (expiry one
 * minute ahead: inside the refresh window, outside the 30-second "expired" margin) makes the driver call
 * `getToken` each time, so the caller's own cache decides when to roll over.
 */
class TokenProvider implements TokenProviderContract {
  readonly #getToken: () => Promise<string>;
  #last: string | undefined;

  constructor(getToken: () => Promise<string>) {
    this.#getToken = getToken;
  }

  async getToken(): Promise<InstanceType<typeof auth.Token>> {
    const token = await this.#getToken();
    this.#last = token;
    return new auth.Token(token, { expiresAt: new Date(Date.now() + 60_000) });
  }

  getName(): string {
    return "cr8tor-token-source";
  }

  /** Removes the last token handed out from an error message. */
  redact(message: string): string {
    return this.#last === undefined ? message : redactSecrets(message, [this.#last]);
  }
}

/** The driver's HTTP connection with a verifying HTTPS agent in place of its own. */
class VerifyingHttpConnection extends connections.HttpConnection {
  readonly #agent: https.Agent;

  constructor(
    options: HttpConnectionOptions,
    context: ClientContext,
    tlsOptions: { readonly caCertificates: readonly string[]; readonly timeoutMs: number },
  ) {
    super(options, context);
    this.#agent = new https.Agent({
      keepAlive: true,
      keepAliveMsecs: 10_000,
      minVersion: "TLSv1.2",
      rejectUnauthorized: true,
      ...(tlsOptions.caCertificates.length > 0
        ? { ca: [...tls.rootCertificates, ...tlsOptions.caCertificates] }
        : {}),
      ...(tlsOptions.timeoutMs > 0 ? { timeout: tlsOptions.timeoutMs } : {}),
    });
  }

  override getAgent(): Promise<Agent | undefined> {
    return Promise.resolve(this.#agent);
  }

  destroy(): void {
    this.#agent.destroy();
  }
}

/** `DBSQLClient.getConnectionOptions`, private in the 1.17.0 typings but present at runtime. */
interface DBSQLClientInternals {
  getConnectionOptions(options: ConnectionOptions): HttpConnectionOptions;
}

for (const name of ["getConnectionOptions", "createConnectionProvider"]) {
  if (typeof Reflect.get(databricks.DBSQLClient.prototype, name) !== "function") {
    throw new Error(
      `@databricks/sql no longer has DBSQLClient.${name}; the verifying TLS override needs updating`,
    );
  }
}

/**
 * `DBSQLClient` seen without its private members: TypeScript does not let a subclass replace a private
 * method, and the connection provider can only be swapped through the private
 * `createConnectionProvider` (checked above, and by the certificate tests).
 */
const DBSQLClientBase = databricks.DBSQLClient as unknown as new (
  options?: ClientOptions,
) => Pick<DBSQLClient, keyof DBSQLClient> & DBSQLClientInternals;

/** A DBSQLClient whose HTTPS connections verify the server's certificate. */
class VerifyingDBSQLClient extends DBSQLClientBase {
  readonly #tls: { readonly caCertificates: readonly string[]; readonly timeoutMs: number };
  #connection: VerifyingHttpConnection | undefined;

  constructor(settings: { caCertificates: readonly string[]; requestTimeoutMs: number }) {
    super({ logger: SILENT_LOGGER });
    this.#tls = { caCertificates: settings.caCertificates, timeoutMs: settings.requestTimeoutMs };
  }

  /** Replaces `DBSQLClient.createConnectionProvider` (see {@link DBSQLClientBase}). */
  createConnectionProvider(options: ConnectionOptions): VerifyingHttpConnection {
    this.#connection?.destroy();
    this.#connection = new VerifyingHttpConnection(
      this.getConnectionOptions(options),
      this,
      this.#tls,
    );
    return this.#connection;
  }

  /** Closes the pooled sockets (`DBSQLClient.close` leaves them to time out). */
  destroy(): void {
    this.#connection?.destroy();
  }
}

/** The driver logs through winston to the console by default; the publisher keeps it quiet. */
const SILENT_LOGGER: NonNullable<ClientOptions["logger"]> = { log: () => {} };

class DeadlineError extends Error {}

/** Runs `work`, rejecting if it takes longer than `ms` (`0`: no limit). */
async function withDeadline<T>(ms: number, what: string, work: () => Promise<T>): Promise<T> {
  if (ms <= 0) return await work();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const promise = work();
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new DeadlineError(`${what} took longer than ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } catch (e) {
    if (e instanceof DeadlineError) promise.catch(() => {});
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

function limit(ms: number): number {
  return Number.isFinite(ms) && ms > 0 ? Math.ceil(ms) : 0;
}

/**
 * The most useful text of a driver error: the server's message for a failed statement (the driver's
 * own message for a failed operation is generic), with the SQLSTATE when it is not already in it;
 * otherwise what the shared `messageOf` reads (the driver's StatusError is a plain object).
 */
function messageOf(e: unknown): string {
  if (e instanceof AggregateError && e.errors.length > 0) {
    return e.errors.map(messageOf).join("; ");
  }
  let message = driverMessageOf(e);
  if (typeof e !== "object" || e === null) return message;
  const error = e as { response?: unknown };
  const response = error.response;
  if (typeof response === "object" && response !== null) {
    const details = response as {
      displayMessage?: unknown;
      errorMessage?: unknown;
      sqlState?: unknown;
    };
    const server = details.displayMessage ?? details.errorMessage;
    if (typeof server === "string" && server !== "") message = server;
    const sqlState = details.sqlState;
    if (typeof sqlState === "string" && sqlState !== "" && !message.includes(sqlState)) {
      message = `${message} (SQLSTATE ${sqlState})`;
    }
  }
  return message;
}
