/**
 * A PostgreSQL source database, read through postgres.js. The catalogue comes from `pg_catalog` with
 * parameterised queries only: one round trip for the schema, one for its tables and views, one for
 * their columns and one for their primary keys.
 *
 * Rows are read as server text: every column is selected as `"col"::text` (real columns through one
 * extra expression, see {@link postgresSelectList}) in a session with the canonical settings
 * ({@link CANONICAL_SESSION}), so values arrive in canonical form and JavaScript never parses them.
 * `readRows` uses a cursor of `batchRows` rows; `readCsv` streams `COPY (SELECT ...) TO STDOUT` as is.
 *
 * @module
 */
import type { Readable } from "node:stream";
import postgres, { type Options, type Sql } from "postgres";
import type {
  CatalogColumn,
  CatalogTable,
  SchemaCatalog,
  TableExtract,
} from "../../domain/catalog.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import { OneAtATime } from "../../domain/concurrency.ts";
import { AppError } from "../../domain/errors.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import { compareNames, groupBy } from "../shared/collections.ts";
import { messageOf } from "../shared/errors.ts";
import {
  guardedColumnOf,
  maxValueBytesOf,
  type ReadCsvOptions,
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
} from "../../ports/source_database.ts";
import {
  CANONICAL_SESSION,
  postgresLogicalType,
  postgresSelectList,
  quotePostgresIdentifier,
} from "./postgres_dialect.ts";
import {
  DEFAULT_POSTGRES_TLS,
  openPostgresTlsSocket,
  type PostgresTlsOptions,
} from "./postgres_tls.ts";

/** The `application_name` every connection reports, so DBAs can tell our sessions apart. */
export const POSTGRES_APPLICATION_NAME = "cr8tor-publisher";

const SET_CANONICAL_SESSION = Object.entries(CANONICAL_SESSION)
  .map(([name, value]) => `set ${name} = '${value}'`)
  .join("; ");

/** A source database backed by one postgres.js client. */
export class PostgresSourceDatabase implements SourceDatabase {
  readonly #sql: Sql;
  /**
   * Reads take turns on the one connection: postgres.js refuses any query (even the next read's
   * session SET) while a COPY is streaming, and a cursor holds the connection until it is done anyway.
   */
  readonly #reads = new OneAtATime();
  #closed = false;
  #lost = false;

  /**
   * @param sql a postgres.js client with one connection (`max: 1`), ideally built with
   *   {@link postgresClientOptions}; this object owns it from now on and ends it in {@link close}.
   */
  constructor(sql: Sql) {
    this.#sql = sql;
  }

  /**
   * Runs `select 1`.
   *
   * @throws {SourceUnavailableError} when the query fails.
   */
  async ping(): Promise<void> {
    this.#assertOpen();
    try {
      await this.#sql`select 1 as ok`;
    } catch (e) {
      this.#noteFailure(e);
      throw new SourceUnavailableError(`Cannot query PostgreSQL: ${messageOf(e)}`, { cause: e });
    }
  }

  /**
   * Describes one schema from `pg_catalog`: tables, partitioned and foreign tables (kind "table"), views
   * and materialized views (kind "view").
   *
   * @throws {SchemaNotFoundError} when the schema does not exist or the user lacks USAGE on it.
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
      this.#noteFailure(e);
      throw new SourceUnavailableError(
        `Cannot read the catalogue of schema "${schema}" from PostgreSQL: ${messageOf(e)}`,
        { cause: e },
      );
    }
  }

  /**
   * How many rows the planner statistics expect: `pg_class.reltuples` of each named table, partitioned
   * table or materialized view (views have no statistics and are left out). A table whose statistics were
   * never gathered (`reltuples` -1 since PostgreSQL 14: no VACUUM, ANALYZE or CREATE INDEX yet) is left
   * out, as are names that are not there and schemas the user may not use. Reads the catalogue only,
   * in turn with the reads (postgres.js refuses a query while a COPY streams on the connection).
   *
   * @throws {SourceUnavailableError} when the catalogue cannot be read.
   */
  async estimateRows(
    schema: string,
    tables: readonly string[],
  ): Promise<ReadonlyMap<string, number>> {
    this.#assertOpen();
    if (tables.length === 0) return new Map();
    const endTurn = await this.#reads.begin();
    try {
      this.#assertOpen();
      const rows = await this.#sql<{ name: string; rows: number }[]>`
        select c.relname as name, c.reltuples::float8 as rows
          from pg_catalog.pg_class c
          join pg_catalog.pg_namespace n on n.oid = c.relnamespace
         where n.nspname = ${schema}
           and pg_catalog.has_schema_privilege(n.oid, 'USAGE')
           and c.relkind in ('r', 'p', 'm')
           and c.relname = any(${this.#sql.array([...tables])}::text[])
           and c.reltuples >= 0`;
      return new Map(rows.map((r) => [r.name, Math.round(r.rows)]));
    } catch (e) {
      this.#noteFailure(e);
      if (e instanceof SourceUnavailableError) throw e;
      throw new SourceUnavailableError(
        `Cannot read the row estimates of schema "${schema}" from PostgreSQL: ${messageOf(e)}`,
        { cause: e },
      );
    } finally {
      endTurn();
    }
  }

  /**
   * Streams the extract's columns through a cursor, as canonical text, cut into batches by
   * {@link RowBatcher}. The first fetch asks for a few rows, every later one for as many rows as still
   * fit the batch at the size of the largest row seen so far (see `RowBatcher.fetchRows`). Values that
   * can be over the per-value limit are measured by the server first ({@link postgresSelectList}), so
   * such a value fails the query before it is sent.
   *
   * Only one batch and one fetch are held at a time: the next fetch is sent when the batch has room and
   * the caller has taken the full ones.
   * Stopping early closes the cursor. (postgres.js's own cursor iterator is not used: it ends quietly,
   * as if the table were exhausted, when the connection drops between two fetches.)
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
    const what = describeExtract(extract);
    const endTurn = await this.#reads.begin();
    try {
      await this.#canonicalSession();
      const query = this.#sql.unsafe(
        `select ${postgresSelectList(extract, { maxValueBytes: limits.maxValueBytes })} from ${
          from(extract)
        }`,
      ).values() as unknown as CursorQuery;
      yield* cursorBatches(query, new RowBatcher(extract, limits));
    } catch (e) {
      this.#noteFailure(e);
      throw unavailable(`Cannot read ${what} from PostgreSQL`, e, extract, limits.maxValueBytes);
    } finally {
      endTurn();
    }
  }

  /**
   * Streams the extract as canonical CSV, header first, straight from
   * `COPY (SELECT <the readRows select list>) TO STDOUT WITH (FORMAT csv, HEADER)`, in chunks of about
   * 256 KiB (less from a slow server, see {@link COPY_PARTIAL_BYTES}); the socket is paused while the
   * caller is busy. Stopping early drains the rest of the COPY (discarded), which keeps the connection
   * usable. The select list guards values as `readRows` does.
   *
   * @throws {ValueTooLargeError} when a value is over `maxValueBytes`.
   * @throws {SourceUnavailableError} when the query fails or the connection is lost mid-stream.
   */
  async *readCsv(
    extract: TableExtract,
    options: ReadCsvOptions = {},
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const maxValueBytes = maxValueBytesOf(options);
    const what = describeExtract(extract);
    const endTurn = await this.#reads.begin();
    try {
      await this.#canonicalSession();
      const query = this.#sql.unsafe(
        `copy (select ${postgresSelectList(extract, { maxValueBytes, via: "copy" })} from ${
          from(extract)
        }) ` +
          `to stdout with (format csv, header)`,
      );
      // Without this, an aborted read would wait for the server's next output, then drain the rest.
      const cancel = () => cancelQuery(query);
      options.signal?.addEventListener("abort", cancel, { once: true });
      try {
        options.signal?.throwIfAborted();
        yield* copyChunks(await query.readable());
      } finally {
        options.signal?.removeEventListener("abort", cancel);
      }
    } catch (e) {
      this.#noteFailure(e);
      throw unavailable(`Cannot read ${what} from PostgreSQL`, e, extract, maxValueBytes);
    } finally {
      endTurn();
    }
  }

  /**
   * Ends the client, waiting up to five seconds for running queries (not at all once a connection was
   * lost: postgres.js would wait for a query it has already failed); safe to call twice.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#sql.end({ timeout: this.#lost ? 0 : 5 });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #describe(
    schema: string,
    only: readonly string[] | undefined,
  ): Promise<SchemaCatalog> {
    const sql = this.#sql;
    const [namespace] = await sql<{ oid: string; description: string | null }[]>`
      select n.oid::int8::text as oid, pg_catalog.obj_description(n.oid, 'pg_namespace') as description
        from pg_catalog.pg_namespace n
       where n.nspname = ${schema}
         and pg_catalog.has_schema_privilege(n.oid, 'USAGE')`;
    if (namespace === undefined) throw new SchemaNotFoundError(schema);
    const empty = { name: schema, description: namespace.description, tables: [] };
    if (only !== undefined && only.length === 0) return empty;

    // The relations to describe, as a condition on `pg_class c`; built afresh for each query.
    const names = only === undefined ? undefined : [...only];
    const relations = () =>
      sql`c.relnamespace = ${namespace.oid}::oid
          and c.relkind in ('r', 'p', 'f', 'v', 'm')
          ${names === undefined ? sql`` : sql`and c.relname = any(${sql.array(names)}::text[])`}`;

    const tables = await sql<
      { oid: string; name: string; relkind: string; description: string | null }[]
    >`
      select c.oid::int8::text as oid, c.relname as name, c.relkind::text as relkind,
             pg_catalog.obj_description(c.oid, 'pg_class') as description
        from pg_catalog.pg_class c
       where ${relations()}`;
    if (tables.length === 0) return empty;

    const columns = await sql<
      {
        relid: string;
        name: string;
        data_type: string;
        base_type: string;
        builtin: boolean;
        base_format: string;
        nullable: boolean;
        description: string | null;
      }[]
    >`
      select a.attrelid::int8::text as relid, a.attname as name,
             pg_catalog.format_type(a.atttypid, a.atttypmod) as data_type,
             bt.typname as base_type,
             bt.typnamespace = 'pg_catalog'::regnamespace as builtin,
             pg_catalog.format_type(bt.oid, base.typmod) as base_format,
             not a.attnotnull as nullable,
             pg_catalog.col_description(a.attrelid, a.attnum) as description
        from pg_catalog.pg_attribute a
        join pg_catalog.pg_class c on c.oid = a.attrelid
       cross join lateral (
             -- Follows domains down to the type they are built on, keeping the innermost typmod.
             with recursive chain(type, typmod, depth) as (
               select a.atttypid, a.atttypmod, 0
               union all
               select t.typbasetype,
                      case when t.typtypmod <> -1 then t.typtypmod else chain.typmod end,
                      chain.depth + 1
                 from chain
                 join pg_catalog.pg_type t on t.oid = chain.type
                where t.typtype = 'd'
             )
             select chain.type, chain.typmod from chain order by chain.depth desc limit 1
           ) base
        join pg_catalog.pg_type bt on bt.oid = base.type
       where ${relations()}
         and a.attnum > 0
         and not a.attisdropped
       order by a.attrelid, a.attnum`;

    const keys = await sql<{ relid: string; name: string }[]>`
      select con.conrelid::int8::text as relid, a.attname as name
        from pg_catalog.pg_constraint con
        join pg_catalog.pg_class c on c.oid = con.conrelid
       cross join lateral unnest(con.conkey) with ordinality as k(attnum, position)
        join pg_catalog.pg_attribute a on a.attrelid = con.conrelid and a.attnum = k.attnum
       where ${relations()}
         and con.contype = 'p'
       order by con.conrelid, k.position`;

    const columnsOf = groupBy(columns, (c) => c.relid);
    const keysOf = groupBy(keys, (k) => k.relid);
    const described: CatalogTable[] = tables.map((t) => ({
      name: t.name,
      kind: t.relkind === "v" || t.relkind === "m" ? "view" : "table",
      description: t.description,
      columns: (columnsOf.get(t.oid) ?? []).map((c): CatalogColumn => ({
        name: c.name,
        dataType: c.data_type,
        logicalType: c.builtin ? postgresLogicalType(c.base_type, c.base_format) : { kind: "text" },
        nullable: c.nullable,
        description: c.description,
      })),
      primaryKey: (keysOf.get(t.oid) ?? []).map((k) => k.name),
    }));
    described.sort((a, b) => compareNames(a.name, b.name));
    return { name: schema, description: namespace.description, tables: described };
  }

  #assertOpen(): void {
    if (this.#closed) throw new SourceUnavailableError("Cannot use a closed PostgreSQL connection");
  }

  /** Remembers a failure that cost the connection (anything but an ordinary SQL error). */
  #noteFailure(e: unknown): void {
    const sqlError = e instanceof postgres.PostgresError && e.severity !== "FATAL" &&
      e.severity !== "PANIC";
    if (!sqlError && !(e instanceof AppError) && !(e instanceof RangeError)) this.#lost = true;
  }

  /**
   * Sets the canonical session again before a read, in case the client was built without
   * {@link CANONICAL_SESSION}. It reaches the connection the read runs on because the client has one
   * connection (`max: 1`). (`sql.reserve()` would pin it, but postgres.js puts a reserved connection
   * that died back into its pool on release, where the next query hangs.)
   */
  async #canonicalSession(): Promise<void> {
    this.#assertOpen();
    await this.#sql.unsafe(SET_CANONICAL_SESSION);
  }
}

/** Where a PostgreSQL database is, and how its connections are encrypted. */
export interface PostgresConnectionOptions extends SqlConnectionOptions {
  /** TLS; without it {@link DEFAULT_POSTGRES_TLS}: required, certificate and host name checked. */
  readonly tls?: PostgresTlsOptions;
}

/**
 * The postgres.js options {@link connectPostgres} uses: one connection, the connect and statement
 * timeouts, our `application_name`, the canonical session settings, TLS as `options.tls` says (never a
 * fallback to plain text, see `postgres_tls.ts`), and notices silenced.
 */
export function postgresClientOptions(options: PostgresConnectionOptions): Options<never> {
  const tls = options.tls ?? DEFAULT_POSTGRES_TLS;
  return {
    host: options.host,
    port: options.port,
    database: options.database,
    username: options.username,
    password: options.password,
    max: 1,
    // TLS is negotiated by our socket (postgres.js's documented `socket` option), so its own is off.
    ssl: false,
    ...(tls.mode === "disable" ? {} : {
      socket: () => openPostgresTlsSocket(options, tls),
    }),
    // postgres.js takes seconds and accepts fractions.
    connect_timeout: options.connectTimeoutMs / 1000,
    idle_timeout: 0,
    connection: {
      statement_timeout: Math.max(0, Math.round(options.statementTimeoutMs)),
      application_name: POSTGRES_APPLICATION_NAME,
      ...CANONICAL_SESSION,
    },
    onnotice: () => {},
  };
}

/**
 * Opens a PostgreSQL source and proves it with a ping. A failure is reported with a fixed sentence; the
 * driver's message, without the user name and password, is the error's `logDetail`.
 *
 * @throws {SourceLoginRefusedError} when the server refuses the login.
 * @throws {SourceConnectionError} when the server cannot be reached the connection fails otherwise, or
 *   it cannot give the TLS `options.tls` asks for (verified TLS by default).
 */
export const connectPostgres = async function connectPostgres(
  options: PostgresConnectionOptions,
): Promise<SourceDatabase> {
  const sql = postgres(postgresClientOptions(options));
  try {
    await sql`select 1 as ok`;
  } catch (e) {
    await sql.end({ timeout: 0 }).catch(() => {});
    const logDetail = `Cannot connect to PostgreSQL at ${options.host}:${options.port}: ${
      redactSecrets(messageOf(e), [options.username, options.password])
    }`;
    throw isPostgresLoginRefusal(e)
      ? new SourceLoginRefusedError({ logDetail, cause: e })
      : new SourceConnectionError({ logDetail, cause: e });
  }
  return new PostgresSourceDatabase(sql);
};

/**
 * Whether a postgres.js error is the server refusing the login: SQLSTATE class 28 (unknown role, wrong
 * password, no `pg_hba.conf` entry for it).
 */
export function isPostgresLoginRefusal(e: unknown): boolean {
  return e instanceof postgres.PostgresError && typeof e.code === "string" &&
    e.code.startsWith("28");
}

function from(extract: TableExtract): string {
  return `${quotePostgresIdentifier(extract.schema)}.${
    quotePostgresIdentifier(extract.table.name)
  }`;
}

function describeExtract(extract: TableExtract): string {
  return `table "${extract.schema}"."${extract.table.name}"`;
}

/** The part of a postgres.js values query that {@link cursorBatches} uses. */
interface CursorQuery {
  cursor(rows: number, fn: (rows: CanonicalRow[]) => Promise<void>): Promise<unknown>;
  /** How many rows postgres.js asks for in the next fetch (read when the callback's promise settles). */
  cursorRows: number;
}

/** Thrown into the cursor callback to make postgres.js close the portal when the caller stops early. */
class CursorStopped extends Error {}

/** What the cursor reported: a batch, the end of the rows, or a failure. */
type CursorEvent =
  | { readonly rows: CanonicalRow[] }
  | { readonly done: true }
  | { readonly error: unknown };

/**
 * Turns postgres.js's callback cursor into batches. The callback hands each fetch over and returns a
 * promise that is settled only when the caller has taken the batches it completed, so postgres.js
 * sends the next fetch then and not before, asking for the number of rows `batcher.fetchRows()` chose
 * (rows that do not complete a batch wait in the batcher for the next fetch). The
 * query's own promise carries the end of the rows and any failure, including a connection lost between
 * two fetches.
 *
 * Events go through a small queue rather than `Promise.race` against the query's promise: every race
 * would leave a reaction on that long-lived promise holding its batch, so nothing could be collected
 * before the query ended.
 */
async function* cursorBatches(
  query: CursorQuery,
  batcher: RowBatcher,
): AsyncGenerator<CanonicalRow[], void, undefined> {
  const events: CursorEvent[] = [];
  let wake: (() => void) | undefined;
  const push = (event: CursorEvent) => {
    events.push(event);
    wake?.();
    wake = undefined;
  };
  let resume: PromiseWithResolvers<void> | undefined;
  // Once the query has settled (ended, or failed while suspended, e.g. on a statement timeout),
  // postgres.js must not be resumed: it would send a fetch for a portal that is gone, on a connection
  // that may already run the next query.
  let querySettled = false;
  const settled = query
    .cursor(batcher.fetchRows(), (rows) => {
      push({ rows });
      resume = Promise.withResolvers<void>();
      return resume.promise;
    })
    .then(
      () => {
        querySettled = true;
        push({ done: true });
      },
      (error: unknown) => {
        querySettled = true;
        push({ error });
      },
    );
  let finished = false;
  try {
    for (;;) {
      while (events.length === 0) await new Promise<void>((resolve) => wake = resolve);
      // The last fetch is handed over just before the query completes, so it comes first.
      const event = events.shift()!;
      if ("rows" in event) {
        // postgres.js passes its own Array subclass; the batcher hands on plain arrays.
        for (const row of event.rows) if (batcher.add(row)) yield batcher.take();
        query.cursorRows = batcher.fetchRows();
        if (!querySettled) resume?.resolve();
        continue;
      }
      finished = true;
      if ("error" in event) throw event.error;
      if (batcher.size > 0) yield batcher.take();
      return;
    }
  } finally {
    if (!finished && !querySettled) {
      // The caller stopped early: failing the callback makes postgres.js close the portal. Whatever the
      // query reports after that concerns rows nobody wants; a broken connection shows on the next call.
      resume?.reject(new CursorStopped());
      await settled;
    }
  }
}

/**
 * Passes on the chunks of a `COPY ... TO STDOUT` stream, which postgres.js feeds with backpressure: it
 * pauses the socket when the stream's buffer is full and resumes it from the stream's `read()`.
 *
 * Two postgres.js details shape this. The stream is never destroyed here, because a destroyed stream
 * refuses data and the socket would stay paused for good. And once the stream has ended its `read()` is
 * not called again, so a COPY whose last messages arrived while the socket was paused leaves the
 * connection deaf to the next query; calling `read()` once more after the end resumes it. When the
 * caller stops early the rest is drained (`query.cancel()` does nothing once the COPY has started).
 */
export async function* copyChunks(stream: Readable): AsyncGenerator<Uint8Array, void, undefined> {
  let finished = false;
  try {
    // PostgreSQL sends one CopyData message per row, and postgres.js pushes each as its own chunk:
    // `read()` takes all that is buffered at once (an async iterator would take one row per turn),
    // and the pieces are gathered into chunks of about COPY_CHUNK_BYTES so callers write in sizeable
    // pieces.
    let parts: Uint8Array[] = [];
    let size = 0;
    let yieldedAt = performance.now();
    // The failure is read from `stream.errored`, set before "error" is emitted; without a listener
    // (kept: the event may come after this has thrown) it would be an uncaught error.
    stream.on("error", ignoreError);
    for (;;) {
      let chunk: Uint8Array | null;
      while ((chunk = stream.read() as Uint8Array | null) !== null) {
        parts.push(chunk);
        size += chunk.length;
        if (size >= COPY_CHUNK_BYTES) {
          yield concatBytes(parts, size);
          parts = [];
          size = 0;
          yieldedAt = performance.now();
        }
      }
      if (stream.errored) throw stream.errored;
      if (stream.readableEnded) break;
      if (stream.destroyed) throw new Error("The COPY stream closed before its end");
      // The server is slower than the caller: pass on what is gathered now and then, so that a slow
      // source's progress is seen while it is read rather than at its end.
      if (
        size >= COPY_PARTIAL_BYTES || (size > 0 && performance.now() - yieldedAt >= COPY_PARTIAL_MS)
      ) {
        yield concatBytes(parts, size);
        parts = [];
        size = 0;
        yieldedAt = performance.now();
        // The stream may have become readable or ended while the caller had the chunk: look again
        // before waiting for an event that has already been emitted.
        continue;
      }
      await readableOrDone(stream);
    }
    if (size > 0) yield concatBytes(parts, size);
    finished = true;
  } finally {
    if (!finished && !stream.destroyed) {
      for await (const _ of stream.iterator({ destroyOnReturn: false })) {
        // discarded: the caller has stopped reading
      }
      finished = true;
    }
    if (finished) resumeSocket(stream);
  }
}

/**
 * Hands each row of a postgres.js COPY stream to `onRow` as it arrives (PostgreSQL sends one CopyData
 * message per row, and postgres.js pushes each as its own chunk), in flowing mode: no buffering, no
 * promise per row. For a caller that keeps what it takes in memory anyway (a page of the read API);
 * `copyChunks` is for callers that write chunks on.
 *
 * A row handler that throws is not called again; the rest of the COPY is drained and the promise fails
 * with its error, so the connection stays usable.
 *
 * @throws the stream's failure, or an error when it closes before its end.
 */
export function eachCopyRow(stream: Readable, onRow: (row: Uint8Array) => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let failure: { error: unknown } | undefined;
    stream.on("data", (row: Uint8Array) => {
      if (failure !== undefined) return;
      try {
        onRow(row);
      } catch (error) {
        failure = { error };
      }
    });
    stream.once("end", () => failure === undefined ? resolve() : reject(failure.error));
    stream.once("error", (error) => reject(failure?.error ?? error));
    stream.once("close", () => {
      if (!stream.readableEnded) reject(new Error("The COPY stream closed before its end"));
    });
  }).finally(() => resumeSocket(stream));
}

function ignoreError(): void {}

/** Resolves when the stream has data to read, has ended, failed or closed. */
function readableOrDone(stream: Readable): Promise<void> {
  return new Promise((resolve) => {
    const events = ["readable", "end", "error", "close"] as const;
    const done = () => {
      for (const event of events) stream.off(event, done);
      resolve();
    };
    for (const event of events) stream.on(event, done);
  });
}

/**
 * Asks PostgreSQL to cancel `query` (a CancelRequest on a new connection); the query then fails with
 * `57014` and the connection stays usable. postgres.js's `cancel()` sends one only while the query is
 * `active`, which it clears as soon as it hands over a COPY's stream (the data then still flows), so the
 * flag is set again first.
 */
function cancelQuery(query: { cancel(): unknown }): void {
  (query as unknown as { active: boolean }).active = true;
  // Typed `void`, but postgres.js returns the promise of the cancel request.
  Promise.resolve(query.cancel()).catch(() => {
    // Best effort: the query may have just ended, and the read reports its own failure.
  });
}

/** The size `readCsv` gathers rows into before passing them on. */
const COPY_CHUNK_BYTES = 256 * 1024;

/**
 * When the server is slower than the caller, `readCsv` passes on a partial chunk of at least this
 * size, or any partial chunk gathered for {@link COPY_PARTIAL_MS}.
 */
const COPY_PARTIAL_BYTES = 64 * 1024;
const COPY_PARTIAL_MS = 250;

function concatBytes(parts: readonly Uint8Array[], size: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function resumeSocket(stream: Readable): void {
  try {
    (stream as unknown as { _read(size: number): void })._read(0);
  } catch {
    // The socket is already gone; the next query reports that itself.
  }
}

function unavailable(
  action: string,
  e: unknown,
  extract: TableExtract,
  maxValueBytes: number,
): Error {
  if (e instanceof AppError || e instanceof RangeError) return e;
  if (e instanceof postgres.PostgresError && e.code === INVALID_TEXT_REPRESENTATION) {
    const column = guardedColumnOf(e.message);
    if (column !== undefined) return valueTooLarge(extract, column, maxValueBytes, { cause: e });
  }
  return new SourceUnavailableError(`${action}: ${messageOf(e)}`, { cause: e });
}

/** SQLSTATE 22P02, which the cast of a guard's marker to an integer raises. */
const INVALID_TEXT_REPRESENTATION = "22P02";
