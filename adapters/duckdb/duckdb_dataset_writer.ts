/**
 * Writes the datasets of a run into one DuckDB database, `data/outputs/database.duckdb`, one schema per
 * dataset, with faithful column types (see `duckdb_columns.ts`), NOT NULL columns and primary keys.
 *
 * - When the run already staged the database (another dataset, or an earlier version of this one), the
 *   filestore copies the staged file into the work folder first (`copyPrevious`, which checks it), it is
 *   never opened in place, and only this dataset's schema is dropped and rebuilt, so the other datasets
 *   stay as they were.
 * - DuckDB opens its database by path, so the file is opened only inside the work folder, which the
 *   filestore created for this write alone (owner-only), and is checked to be a plain file with one name
 *   (no link) before DuckDB opens it and again when it is hashed.
 * - Rows stream from the source batch by batch; each value is converted by its column's converter and
 *   collected into DuckDB data chunks of at most 2048 rows, appended through one appender per table. Per
 *   value appends are far slower under Deno (30-80 µs each for decimals and timestamps). The appender
 *   is flushed every {@link FLUSH_ROWS} rows, which bounds what it holds outside DuckDB's memory limit.
 * - Tables are written concurrently (up to `concurrency`), each through its own connection and appender
 *   on one instance; DuckDB takes concurrent appends to different tables of one file. Appends run on the
 *   JavaScript thread, so this mostly overlaps one table's conversion with another table's wait for the
 *   source: four tables of 250k rows took 10.9 s one by one and 5.3 s four at a time when each source
 *   batch took 40 ms to arrive (7.4 s and 6.8 s with no wait). When one table fails, the others stop at
 *   their next batch.
 * - After a CHECKPOINT every appender, connection and the instance are closed, so the file is complete
 *   and has no write-ahead log beside it; then it is hashed in one streaming read.
 *
 * - DuckDB runs within {@link FIRST_MEMORY_LIMIT} first. When it runs out of memory there (long text
 *   values, which DuckDB holds until a table is written), the attempt's file is discarded and the whole
 *   dataset written again within the configured limit, the source read again from the start; over that
 *   limit it fails with {@link DuckdbMemoryError}.
 * - Each table reports `done` once, when the file is complete, with `sha512: null`: the tables share one file,
 *   so none can be reused by a resumed run (`options.reuse` is ignored). Rows and bytes while reading
 *   are reported by the caller's reader (`application/source.ts`, `watchedReader`), not here.
 * - When `options.signal` aborts, every read stops at once (`untilAborted`), no CHECKPOINT is taken, and
 *   the write rejects with the signal's reason.
 *
 * A failure closes DuckDB and rethrows; the caller discards the work folder.
 *
 * @module
 */
import { openPlainFile } from "../filesystem/confined_tree.ts";
import { sha512File } from "../filesystem/sha512.ts";
import {
  type DuckDBAppender,
  type DuckDBConnection,
  DuckDBDataChunk,
  DuckDBInstance,
  type DuckDBValue,
  type DuckDBVector,
} from "./duckdb.ts";
import { mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { CatalogTable, ReadRowsOptions, TableExtract } from "../../domain/catalog.ts";
import { CanonicalCsvParser } from "../../domain/disclosure.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import { mapConcurrent } from "../../domain/concurrency.ts";
import { DUCKDB_PAYLOAD_PATH } from "../../domain/staging_layout.ts";
import type {
  DatasetWriter,
  StagedFile,
  StagingWork,
  WriteOptions,
} from "../../ports/dataset_writer.ts";
import type { TableReader } from "../../domain/catalog.ts";
import { untilAborted } from "../../domain/interruption.ts";
import type { LongWork, ProgressReport } from "../../domain/long_work.ts";
import { estimatedRowBytes } from "../../ports/source_database.ts";
import { duckdbColumn } from "./duckdb_columns.ts";
import {
  DuckdbConstraintError,
  DuckdbMemoryError,
  DuckdbNameClashError,
  DuckdbValueError,
} from "./duckdb_errors.ts";
import { DEFAULT_DUCKDB_MEMORY_LIMIT, DUCKDB_MEMORY_LIMIT_PATTERN } from "./duckdb_settings.ts";

/** Rows per data chunk: DuckDB's vector size, the most one chunk can hold. */
const CHUNK_ROWS = 2048;

/**
 * Rows an appender collects before it hands them to the table (`flushSync`, one commit). DuckDB's own
 * default is 204,800; its collection, and what a commit allocates to move it into the table, are
 * outside the buffer pool and its `memory_limit`, and the commit's share comes and goes within the
 * call. Flushing every 51,200 rows lowered the peak RSS of 10M W rows by about 50 MB; at 51,200 rows
 * DuckDB's allocations still rose by 18 MB during a median flush (31 MB at most), and at 10,240 rows by
 * 6 MB, in no more time (docs/benchmarks.md, issue 20).
 */
export const FLUSH_ROWS = 5 * CHUNK_ROWS;

/**
 * The memory limit a write tries first. At 10M W rows the service's peak RSS was 306 MB with 32 MB and
 * 319-332 MB with 64 MB; with 24 MB (and {@link FLUSH_ROWS} at 10,240) SQL Server → duckdb peaked at
 * 285 MB against 297 MB with 32 MB (docs/benchmarks.md, issue 20). DuckDB writes that table and its key
 * within 24 MB, not within 16 MB. Long text values are held in memory until a table is written, so a
 * dataset of them may need more: it is written again within the configured limit.
 */
export const FIRST_MEMORY_LIMIT = "24MB";

/** Where DuckDB may spill, inside the work folder but outside the payload. */
const TEMP_DIR = ".duckdb-tmp";

/** Tuning for the DuckDB instance each write opens. */
export interface DuckdbDatasetWriterOptions {
  /** DuckDB worker threads; defaults to DuckDB's own choice (one per core). */
  readonly threads?: number;
  /**
   * The most memory DuckDB may use per write, e.g. `"1GB"` (a write tries {@link FIRST_MEMORY_LIMIT}
   * first); beyond it DuckDB spills to a folder in the work folder. Defaults to
   * {@link DEFAULT_DUCKDB_MEMORY_LIMIT}, which says what needs more.
   */
  readonly memoryLimit?: string;
}

/** The DuckDB format of the filestore destination. */
export class DuckdbDatasetWriter implements DatasetWriter {
  readonly #options: DuckdbDatasetWriterOptions;

  constructor(options: DuckdbDatasetWriterOptions = {}) {
    this.#options = options;
  }

  async write(
    work: StagingWork,
    source: TableReader,
    tables: readonly TableExtract[],
    options: WriteOptions,
  ): Promise<StagedFile[]> {
    options.signal?.throwIfAborted();
    checkNames(tables);
    const file = join(work.dir, DUCKDB_PAYLOAD_PATH);
    const limits = memoryLimitsUpTo(this.#options.memoryLimit ?? DEFAULT_DUCKDB_MEMORY_LIMIT);
    for (let attempt = 0;; attempt++) {
      const limit = limits[attempt]!;
      try {
        const written = await this.#writeWithin(limit, work, file, source, tables, options);
        for (const table of written) options.onProgress?.(table);
        break;
      } catch (e) {
        if (!(e instanceof DuckdbMemoryError) || attempt === limits.length - 1) throw e;
        await discardDatabase(work.dir, file);
      }
    }
    return [{ path: DUCKDB_PAYLOAD_PATH, ...await sha512File(file, DUCKDB_PAYLOAD_PATH) }];
  }

  /**
   * One attempt: the whole database file, written with DuckDB's memory limit at `limit`.
   *
   * @returns each table's `done` report, for the caller to send once the file is complete.
   */
  async #writeWithin(
    limit: string,
    work: StagingWork,
    file: string,
    source: TableReader,
    tables: readonly TableExtract[],
    options: WriteOptions,
  ): Promise<ProgressReport[]> {
    const { signal } = options;
    const written: ProgressReport[] = [];
    await mkdir(dirname(file), { recursive: true });
    await work.copyPrevious(DUCKDB_PAYLOAD_PATH);
    await (await openPlainFile(file, DUCKDB_PAYLOAD_PATH))?.close();

    const instance = await DuckDBInstance.create(file, this.#config(work.dir, limit));
    const connections = new Set<DuckDBConnection>();
    async function connect(): Promise<DuckDBConnection> {
      const connection = await instance.connect();
      connections.add(connection);
      return connection;
    }
    function disconnect(connection: DuckDBConnection): void {
      connections.delete(connection);
      connection.closeSync();
    }
    const failed = new AbortController();
    const stop = signal === undefined ? failed.signal : AbortSignal.any([signal, failed.signal]);
    try {
      const main = await connect();
      const catalog = await currentCatalog(main);
      await replaceSchemas(main, catalog, tables);
      await mapConcurrent(tables, options.concurrency, async (extract) => {
        let connection: DuckDBConnection | undefined;
        try {
          stop.throwIfAborted();
          connection = await connect();
          const { rows, bytes } = await appendTable(connection, catalog, source, extract, {
            read: { ...options, signal: stop },
            signal: stop,
          });
          written.push({
            table: extract.table.name,
            rows,
            bytes,
            done: { sha512: null, reused: false },
          });
        } catch (e) {
          failed.abort(e);
          throw e;
        } finally {
          if (connection !== undefined) disconnect(connection);
        }
      });
      stop.throwIfAborted();
      await main.run("CHECKPOINT");
      return written;
    } catch (e) {
      if (signal?.aborted) throw signal.reason;
      throw isOutOfMemory(e) ? new DuckdbMemoryError(limit, e) : e;
    } finally {
      for (const connection of connections) connection.closeSync();
      instance.closeSync();
    }
  }

  #config(workDir: string, memoryLimit: string): Record<string, string> {
    const config: Record<string, string> = {
      memory_limit: memoryLimit,
      temp_directory: join(workDir, TEMP_DIR),
      autoinstall_known_extensions: "false",
      autoload_known_extensions: "false",
    };
    if (this.#options.threads !== undefined) config.threads = String(this.#options.threads);
    return config;
  }
}

/**
 * The memory limits a write tries, in order: {@link FIRST_MEMORY_LIMIT}, then the configured one when
 * that is higher. Most tables fit the first; a table of long values that does not is written again,
 * from the start, within the configured limit.
 */
export function memoryLimitsUpTo(configured: string): string[] {
  return memoryLimitBytes(configured) > memoryLimitBytes(FIRST_MEMORY_LIMIT)
    ? [FIRST_MEMORY_LIMIT, configured]
    : [configured];
}

const MEMORY_UNITS: Readonly<Record<string, number>> = {
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  KiB: 2 ** 10,
  MiB: 2 ** 20,
  GiB: 2 ** 30,
};

/** The bytes of a `memory_limit` as DuckDB reads it (`KB` = 1000 bytes, `KiB` = 1024). */
function memoryLimitBytes(limit: string): number {
  const unit = DUCKDB_MEMORY_LIMIT_PATTERN.exec(limit)?.[1];
  if (unit === undefined) throw new RangeError(`Cannot read the DuckDB memory limit "${limit}"`);
  return parseInt(limit, 10) * MEMORY_UNITS[unit]!;
}

/** Removes what a failed attempt left: the database file, its write-ahead log and DuckDB's spill folder. */
async function discardDatabase(workDir: string, file: string): Promise<void> {
  for (const path of [file, `${file}.wal`, join(workDir, TEMP_DIR)]) {
    await rm(path, { recursive: true, force: true });
  }
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

async function currentCatalog(connection: DuckDBConnection): Promise<string> {
  const result = await connection.runAndReadAll("SELECT current_database()");
  return String(result.getRows()[0]?.[0]);
}

/**
 * Refuses names DuckDB would treat as one: its identifiers are case-insensitive, even when quoted, so
 * tables `A` and `a` (or columns) cannot both exist.
 *
 * @throws {DuckdbNameClashError}
 */
function checkNames(tables: readonly TableExtract[]): void {
  const clash = firstCaseClash(tables.map((t) => `${t.schema}.${t.table.name}`));
  if (clash !== undefined) throw new DuckdbNameClashError("tables", clash);
  for (const { schema, table } of tables) {
    const column = firstCaseClash(table.columns.map((c) => c.name));
    if (column !== undefined) {
      throw new DuckdbNameClashError(`columns of table "${schema}.${table.name}"`, column);
    }
  }
}

function firstCaseClash(names: readonly string[]): [string, string] | undefined {
  const seen = new Map<string, string>();
  for (const name of names) {
    const other = seen.get(name.toLowerCase());
    if (other !== undefined) return [other, name];
    seen.set(name.toLowerCase(), name);
  }
  return undefined;
}

/**
 * Drops what the dataset's schemas held and creates them again with one empty table per extract, in one
 * transaction. Schema `main` cannot be dropped, so its tables and views are dropped instead.
 */
async function replaceSchemas(
  connection: DuckDBConnection,
  catalog: string,
  tables: readonly TableExtract[],
): Promise<void> {
  const schemas = [...new Set(tables.map((t) => t.schema))];
  await connection.run("BEGIN TRANSACTION");
  try {
    for (const schema of schemas) {
      const existing = await connection.runAndReadAll(
        `SELECT schema_name FROM duckdb_schemas() WHERE database_name = ${sqlString(catalog)} ` +
          `AND lower(schema_name) = lower(${sqlString(schema)})`,
      );
      for (const [name] of existing.getRows()) {
        if (name !== schema) throw new DuckdbNameClashError("schemas", [String(name), schema]);
      }
      if (schema.toLowerCase() === "main") {
        await dropMainObjects(connection, catalog);
      } else {
        await connection.run(`DROP SCHEMA IF EXISTS ${quote(catalog)}.${quote(schema)} CASCADE`);
        await connection.run(`CREATE SCHEMA ${quote(catalog)}.${quote(schema)}`);
      }
    }
    for (const { schema, table } of tables) {
      await connection.run(createTableSql(catalog, schema, table));
    }
    await connection.run("COMMIT");
  } catch (e) {
    await connection.run("ROLLBACK").catch(() => {});
    throw e;
  }
}

async function dropMainObjects(connection: DuckDBConnection, catalog: string): Promise<void> {
  const where = `database_name = ${sqlString(catalog)} AND schema_name = 'main' AND NOT internal`;
  const views = await connection.runAndReadAll(
    `SELECT view_name FROM duckdb_views() WHERE ${where}`,
  );
  for (const [name] of views.getRows()) {
    await connection.run(`DROP VIEW ${quote(catalog)}.main.${quote(String(name))}`);
  }
  const tables = await connection.runAndReadAll(
    `SELECT table_name FROM duckdb_tables() WHERE ${where}`,
  );
  for (const [name] of tables.getRows()) {
    await connection.run(`DROP TABLE ${quote(catalog)}.main.${quote(String(name))} CASCADE`);
  }
}

/** `CREATE TABLE` with the mapped types, NOT NULL where the source says so, and the primary key. */
export function createTableSql(catalog: string, schema: string, table: CatalogTable): string {
  const columns = table.columns.map((c) =>
    `${quote(c.name)} ${duckdbColumn(c.logicalType).sqlType}${c.nullable ? "" : " NOT NULL"}`
  );
  if (table.primaryKey.length > 0) {
    columns.push(`PRIMARY KEY (${table.primaryKey.map(quote).join(", ")})`);
  }
  return `CREATE TABLE ${quote(catalog)}.${quote(schema)}.${quote(table.name)} (${
    columns.join(", ")
  })`;
}

/**
 * Streams one table from the source into its DuckDB table.
 *
 * @returns the rows appended and their estimated size (`estimatedRowBytes`).
 */
async function appendTable(
  connection: DuckDBConnection,
  catalog: string,
  source: TableReader,
  extract: TableExtract,
  options: { readonly read: ReadRowsOptions & LongWork; readonly signal: AbortSignal },
): Promise<{ rows: number; bytes: number }> {
  const { schema, table } = extract;
  const converters = table.columns.map((c) => duckdbColumn(c.logicalType).convert);
  const width = converters.length;
  const appender = await connection.createAppender(table.name, schema, catalog);
  let closed = false;
  try {
    const types = Array.from({ length: appender.columnCount }, (_, i) => appender.columnType(i));
    const chunk = DuckDBDataChunk.create(types, CHUNK_ROWS);
    const vectors = types.map((_, i) => chunk.getColumnVector(i));
    const buffers: DuckDBValue[][] = converters.map(() => new Array<DuckDBValue>(CHUNK_ROWS));
    let filled = 0;
    let rowNumber = 0;
    let bytes = 0;
    for await (
      const batch of untilAborted(tableRows(source, extract, options.read), options.signal)
    ) {
      for (const row of batch) {
        rowNumber++;
        bytes += estimatedRowBytes(row);
        if (row.length !== width) {
          throw new RangeError(
            `Cannot write table "${schema}.${table.name}": the source returned ${row.length} values ` +
              `for ${width} columns (row ${rowNumber})`,
          );
        }
        let column = 0;
        try {
          for (; column < width; column++) {
            const text = row[column];
            buffers[column]![filled] = text === null || text === undefined
              ? null
              : converters[column]!(text);
          }
        } catch (e) {
          throw new DuckdbValueError(
            { schema, table: table.name, column: table.columns[column]!.name, row: rowNumber },
            e instanceof Error ? e : new Error(String(e)),
          );
        }
        if (++filled === CHUNK_ROWS) {
          appendFullChunk(appender, chunk, vectors, buffers, extract);
          filled = 0;
          if (rowNumber % FLUSH_ROWS === 0) flushAppender(appender, extract);
        }
      }
    }
    if (filled > 0) appendChunk(appender, chunk, buffers, filled, extract);
    closed = true;
    closeAppender(appender, extract);
    return { rows: rowNumber, bytes };
  } finally {
    if (!closed) {
      try {
        appender.closeSync();
      } catch {
        // The write already failed; closing only flushes rows of a database that will be discarded.
      }
    }
  }
}

/**
 * The extract's rows. From a source with the CSV fast path (PostgreSQL's `COPY`, MariaDB's row packets)
 * they are parsed back from its canonical CSV: one string per value, without the driver's own objects
 * per row and per value on the way, which lowered the service's peak memory (docs/benchmarks.md,
 * issue 20). The batches are what each chunk completes.
 */
async function* tableRows(
  source: TableReader,
  extract: TableExtract,
  options: ReadRowsOptions & LongWork,
): AsyncGenerator<CanonicalRow[], void, undefined> {
  if (source.readCsv === undefined) {
    yield* source.readRows(extract, options);
    return;
  }
  let batch: CanonicalRow[] = [];
  const parser = new CanonicalCsvParser((row) => batch.push(row));
  for await (const chunk of source.readCsv(extract, options)) {
    parser.push(chunk);
    if (batch.length > 0) {
      yield batch;
      batch = [];
    }
  }
  parser.end();
  if (batch.length > 0) yield batch;
}

/**
 * Appends a chunk of {@link CHUNK_ROWS} rows through the table's own column vectors, made once per
 * table. Each vector the DuckDB bindings make costs native memory that is freed only when V8 collects
 * its wrapper, and about 100 bytes that are never freed (measured: 300,000 vectors, 35 MB of glibc
 * still in use after five full collections; docs/benchmarks.md, issue 20, sixth session), so making
 * them for every chunk, as `setColumns` does, grew glibc's heap by about 3 KB per chunk of the 13
 * column W table. `reset()` drops the string values of the previous chunk and keeps each vector's
 * buffers, which the vectors made at the start write into.
 */
function appendFullChunk(
  appender: DuckDBAppender,
  chunk: DuckDBDataChunk,
  vectors: readonly DuckDBVector[],
  buffers: DuckDBValue[][],
  extract: TableExtract,
): void {
  chunk.reset();
  chunk.rowCount = CHUNK_ROWS;
  for (let column = 0; column < vectors.length; column++) {
    const vector = vectors[column]!;
    const values = buffers[column]!;
    for (let row = 0; row < CHUNK_ROWS; row++) vector.setItem(row, values[row] as never);
    vector.flush();
  }
  appendData(appender, chunk, extract);
}

/** Appends the table's last, shorter chunk (its vectors are made for its row count). */
function appendChunk(
  appender: DuckDBAppender,
  chunk: DuckDBDataChunk,
  buffers: DuckDBValue[][],
  rows: number,
  extract: TableExtract,
): void {
  chunk.reset();
  chunk.rowCount = rows;
  chunk.setColumns(buffers.map((b) => b.slice(0, rows)));
  appendData(appender, chunk, extract);
}

function appendData(appender: DuckDBAppender, chunk: DuckDBDataChunk, extract: TableExtract): void {
  try {
    appender.appendDataChunk(chunk);
  } catch (e) {
    throw translateAppendError(e, extract);
  }
}

/** Hands the collected rows to the table; a duplicate key is reported here (or at the close). */
function flushAppender(appender: DuckDBAppender, extract: TableExtract): void {
  try {
    appender.flushSync();
  } catch (e) {
    throw translateAppendError(e, extract);
  }
}

function closeAppender(appender: DuckDBAppender, extract: TableExtract): void {
  try {
    appender.closeSync();
  } catch (e) {
    throw translateAppendError(e, extract);
  }
}

/** DuckDB's failures for want of memory within its `memory_limit` (`failed to pin block`, `Out of Memory`). */
function isOutOfMemory(error: unknown): error is Error {
  return error instanceof Error && !(error instanceof DuckdbMemoryError) &&
    /failed to pin block|out of memory/i.test(error.message);
}

/** DuckDB reports `Failed to append: PRIMARY KEY or UNIQUE constraint violation: ...` and the like. */
function translateAppendError(error: unknown, extract: TableExtract): unknown {
  if (error instanceof Error && /constraint/i.test(error.message)) {
    return new DuckdbConstraintError(extract.schema, extract.table.name, error);
  }
  return error;
}
