/**
 * COPY streaming for the PostgreSQL destination: one table from a source into its temporary table with
 * `COPY ... FROM STDIN (FORMAT csv)`, with bounded memory, reporting progress and stopping on a signal.
 *
 * A source with a CSV fast path (PostgreSQL `COPY TO`) is piped straight into `COPY FROM` (its header
 * line skipped by `HEADER`); otherwise each batch of canonical rows is encoded with `domain/csv.ts`, times
 * and timestamps first cut to microseconds (SQL Server's seventh fraction digit is truncated, never
 * rounded: `truncateToMicroseconds` in `domain/logical_type.ts`; the CSV fast path only ever comes from
 * PostgreSQL, which has six digits at most). Both go through a Node.js pipeline into postgres.js's COPY
 * stream, whose write callback waits for the socket, so at most a batch or a chunk is in memory per table.
 * Two postgres.js details shape the code, see {@link copyIn}.
 *
 * @module
 */
import { pipeline } from "node:stream/promises";
import type { Sql } from "postgres";
import type { ReadRowsOptions, TableExtract, TableReader } from "../../domain/catalog.ts";
import { encodeCsvRows, utf8Bytes } from "../../domain/csv.ts";
import type { ProgressReport } from "../../domain/long_work.ts";
import { type CanonicalRow, truncateToMicroseconds } from "../../domain/logical_type.ts";
import { DestinationValueError } from "../../ports/destination_database.ts";
import { refusedValue } from "./postgres_destination_errors.ts";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";

/** Where one table goes: the temporary schema it is written to, and the schema users know it by. */
export interface CopyTarget {
  readonly temporary: string;
  readonly schema: string;
}

/** How one table is copied: the source's read limits, what stops it, and where progress goes. */
export interface CopyOptions {
  readonly read: ReadRowsOptions;
  /** Aborting it stops the COPY at once: the server is told to abandon it (CopyFail). */
  readonly signal: AbortSignal;
  readonly onProgress?: ((progress: ProgressReport) => void) | undefined;
}

/** Rows (`null` on the CSV fast path, which does not count them) and bytes handed to the server so far. */
interface Tally {
  rows: number | null;
  bytes: number;
}

/**
 * Streams one table into its temporary table, through the source's CSV when it has one. Reports the
 * rows and bytes handed to the server after every chunk, and once more with `done` when the server has
 * taken every row (the table is then complete but still hidden: the dataset is replaced only when the
 * whole load commits).
 *
 * @throws {DestinationValueError} when the destination refuses a value or a row.
 * @throws the signal's reason when it is aborted; anything else the source or the driver throws.
 */
export async function copyTable(
  sql: Sql,
  target: CopyTarget,
  source: TableReader,
  extract: TableExtract,
  options: CopyOptions,
): Promise<void> {
  const { table } = extract;
  const columns = table.columns.map((c) => c.name);
  const into =
    `${quotePostgresIdentifier(target.temporary)}.${quotePostgresIdentifier(table.name)}` +
    (columns.length > 0 ? ` (${columns.map(quotePostgresIdentifier).join(", ")})` : "");
  const where = { schema: target.schema, table: table.name };
  const withHeader = source.readCsv !== undefined;
  const tally: Tally = { rows: withHeader ? null : 0, bytes: 0 };
  const chunks = source.readCsv !== undefined
    ? source.readCsv(extract, options.read)
    : encodedRows(source, extract, options.read, where, tally);
  const report = (done?: ProgressReport["done"]) =>
    options.onProgress?.({
      table: table.name,
      rows: tally.rows,
      bytes: tally.bytes,
      ...(done === undefined ? {} : { done }),
    });
  try {
    await copyIn(
      sql,
      `copy ${into} from stdin with (format csv${withHeader ? ", header true" : ""})`,
      counted(chunks, tally, () => report()),
      options.signal,
    );
  } catch (e) {
    if (options.signal.aborted) throw options.signal.reason;
    throw refusedValue(e, where, columns, withHeader ? 1 : 0) ?? e;
  }
  report({ sha512: null, reused: false });
}

/** The same chunks, adding each one's size to `tally` and calling `reported` once it was taken. */
async function* counted(
  chunks: AsyncIterable<Uint8Array>,
  tally: Tally,
  reported: () => void,
): AsyncGenerator<Uint8Array, void, undefined> {
  for await (const chunk of chunks) {
    yield chunk;
    tally.bytes += chunk.byteLength;
    reported();
  }
}

/**
 * Encodes the source's batches as canonical CSV lines (no header), one chunk per batch, counting the rows
 * in `tally`. Text that
 * PostgreSQL cannot take is refused here, where the row and column are known: a NUL character (no
 * PostgreSQL text type holds one) and an unpaired surrogate (UTF-8 would silently turn it into U+FFFD).
 */
async function* encodedRows(
  source: TableReader,
  extract: TableExtract,
  read: ReadRowsOptions,
  where: { readonly schema: string; readonly table: string },
  tally: Tally,
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
    tally.rows = rowsBefore;
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
 * taken every row, something failed, or `signal` was aborted.
 *
 * postgres.js resolves the query with the COPY stream as soon as the server is ready for data, so a
 * server error comes only through the stream, and only while the stream is still writing. An error the
 * server raises after the last chunk (a bad value in the last rows, a duplicate key found at the end)
 * arrives when postgres.js has already let go of the stream: it then calls only the query's `reject`,
 * whose promise has long been resolved, and the stream's `finish` never comes, so a plain pipeline would
 * wait forever. Wrapping the query's own `reject` catches that error too; `pipeline` reports a failed
 * source, and destroys the COPY stream, which makes postgres.js send CopyFail so the server abandons the
 * COPY.
 *
 * An abort destroys the pipeline the same way (CopyFail), and rejects at once with the signal's reason,
 * without waiting for a source that is in the middle of a slow read: the caller ends the connection.
 */
async function copyIn(
  sql: Sql,
  statement: string,
  chunks: AsyncIterable<Uint8Array>,
  signal: AbortSignal,
): Promise<void> {
  signal.throwIfAborted();
  const aborted = Promise.withResolvers<never>();
  aborted.promise.catch(() => {});
  const onAbort = () => aborted.reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    const query = sql.unsafe(statement);
    const refused = Promise.withResolvers<never>();
    refused.promise.catch(() => {});
    const handle = query as unknown as { reject: (error: unknown) => void };
    const reject = handle.reject;
    handle.reject = (error: unknown) => {
      refused.reject(error);
      reject(error);
    };
    // The COPY stream's errors reach us through the pipeline or `refused`; one the driver raises when
    // the connection is closed after an abort must not go unhandled, even if the stream arrives late.
    const writing = query.writable().then((stream) => {
      stream.on("error", () => {});
      if (signal.aborted) stream.destroy(signal.reason);
      return stream;
    });
    writing.catch(() => {});
    const writable = await Promise.race([writing, aborted.promise]);
    const piped = pipeline(chunks, writable, { signal });
    piped.catch(() => {});
    try {
      await Promise.race([piped, refused.promise, aborted.promise]);
    } finally {
      if (!writable.writableFinished && !writable.destroyed) writable.destroy(signal.reason);
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
