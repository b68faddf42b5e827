/**
 * An in-memory destination database for tests and demos: the `DestinationDatabase` port
 * (`ports/destination_database.ts`) without a server, passing the same contract suite as the PostgreSQL
 * adapter (`tests/contracts/destination_database_contract.ts`). Do not use it in production.
 *
 * It keeps what the port promises: a load replaces a dataset atomically (the new tables are swapped in
 * only after every table was read, so a failed or aborted load leaves the old ones), the registry decides
 * ownership (schema and project-identifier conflicts), nothing is readable before `grantReadAccess`, and a
 * reload hides the data again. Values are stored as the canonical text they arrive in; the fake refuses
 * what PostgreSQL refuses for any column type (a NUL character, an unpaired surrogate, a NULL in a NOT
 * NULL column, a duplicate primary key) but does not check values against their types.
 *
 * @module
 */
import { createHash, randomUUID } from "node:crypto";
import type { TableExtract, TableReader } from "../../domain/catalog.ts";
import { mapConcurrent } from "../../domain/concurrency.ts";
import { encodeCsvRows, parseCsv, utf8Bytes } from "../../domain/csv.ts";
import type { ProgressReport } from "../../domain/long_work.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import { projectIdentifier } from "../../domain/names.ts";
import { releasedTables, type StagedTable } from "../../domain/staging_manifest.ts";
import {
  checkLoad,
  DestinationConnectionError,
  type DestinationDatabase,
  type DestinationDataset,
  DestinationProjectConflictError,
  type DestinationRun,
  DestinationSchemaConflictError,
  DestinationTablesNotPackagedError,
  DestinationUnavailableError,
  DestinationValueError,
  type LoadedTable,
  type LoadOptions,
  type ReleasedDataset,
} from "../../ports/destination_database.ts";

/** One loaded schema: the dataset the registry holds for it and its tables' rows. */
interface LoadedSchema {
  readonly dataset: DestinationDataset;
  /** A fresh id per load: what `stagingDigest` changes with. */
  readonly loadId: string;
  readonly tables: ReadonlyMap<string, readonly CanonicalRow[]>;
  /** What the load released (`releasedTables`). */
  readonly released: readonly StagedTable[];
}

/** What every connection to one in-memory database shares. */
interface Storage {
  /** Loaded schemas by name: the schemas and the registry in one. */
  readonly loaded: Map<string, LoadedSchema>;
  /** Schemas that exist but that no load created. */
  readonly foreign: Set<string>;
  /** Tables the read-only role may read, as `schema\0table`. */
  readonly granted: Set<string>;
  unavailable: boolean;
}

/**
 * A connection to a destination database held in memory. `new` creates an empty database;
 * {@link reopen} opens another connection to the same one (what a composition root's `connect()` does).
 */
export class MemoryDestinationDatabase implements DestinationDatabase {
  #storage: Storage;
  #closed = false;

  constructor() {
    this.#storage = {
      loaded: new Map(),
      foreign: new Set(),
      granted: new Set(),
      unavailable: false,
    };
  }

  /** Another connection to the same database, open even when this one is closed. */
  reopen(): MemoryDestinationDatabase {
    const other = new MemoryDestinationDatabase();
    other.#share(this.#storage);
    return other;
  }

  #share(storage: Storage): void {
    this.#storage = storage;
  }

  get #loaded(): Map<string, LoadedSchema> {
    return this.#storage.loaded;
  }

  get #foreign(): Set<string> {
    return this.#storage.foreign;
  }

  get #granted(): Set<string> {
    return this.#storage.granted;
  }

  /** Adds a schema that no load created (a DBA's, say); loads refuse it. */
  addForeignSchema(name: string): void {
    this.#foreign.add(name);
  }

  /** Makes every later call, on every connection, fail as if the server went away. */
  breakConnection(): void {
    this.#storage.unavailable = true;
  }

  /** Every schema, loaded or foreign, sorted. */
  schemas(): string[] {
    return [...this.#loaded.keys(), ...this.#foreign].sort(compareNames);
  }

  /** A loaded table's rows in load order, or `undefined` when there is no such table. */
  rows(table: LoadedTable): readonly CanonicalRow[] | undefined {
    return this.#loaded.get(table.schema)?.tables.get(table.table);
  }

  /** The tables the read-only role may read, sorted by schema, then name. */
  readableTables(): LoadedTable[] {
    return [...this.#granted].map(splitKey).filter((t) => this.rows(t) !== undefined).sort(byTable);
  }

  /** True once {@link close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  async checkReady(): Promise<void> {
    await Promise.resolve();
    this.#assertUsable();
  }

  async load(
    dataset: DestinationDataset,
    source: TableReader,
    tables: readonly TableExtract[],
    options: LoadOptions,
  ): Promise<LoadedTable[]> {
    this.#assertUsable();
    const schema = checkLoad(dataset, tables, options);
    const { signal } = options;
    signal?.throwIfAborted();
    this.#checkFree(schema, dataset);

    const stop = new AbortController();
    const stopped = signal === undefined ? stop.signal : AbortSignal.any([signal, stop.signal]);
    let read: (readonly CanonicalRow[])[];
    try {
      read = await mapConcurrent(tables, options.concurrency, async (extract) => {
        stopped.throwIfAborted();
        try {
          return await readTable(source, extract, schema, options, stopped);
        } catch (e) {
          stop.abort(e);
          throw e;
        }
      });
    } catch (e) {
      if (signal?.aborted === true) throw signal.reason;
      throw e;
    }

    // The swap: checked again, then done in one step.
    signal?.throwIfAborted();
    this.#assertUsable();
    this.#checkFree(schema, dataset);
    const previous = this.#loaded.get(schema);
    for (const name of previous?.tables.keys() ?? []) this.#granted.delete(key(schema, name));
    this.#loaded.set(schema, {
      dataset: { ...dataset },
      loadId: randomUUID(),
      tables: new Map(tables.map((t, i) => [t.table.name, read[i]!])),
      released: releasedTables(tables),
    });
    return tables.map((t) => ({ schema, table: t.table.name })).sort(byTable);
  }

  async packagedTables(run: DestinationRun): Promise<LoadedTable[]> {
    await Promise.resolve();
    this.#assertUsable();
    return [...this.#loaded].filter(([, s]) =>
      s.dataset.project === run.project && s.dataset.startTime === run.startTime
    ).flatMap(([schema, s]) => [...s.tables.keys()].map((table) => ({ schema, table })))
      .sort(byTable);
  }

  async releasedDatasets(run: DestinationRun): Promise<ReleasedDataset[]> {
    await Promise.resolve();
    this.#assertUsable();
    return [...this.#loaded].filter(([, s]) =>
      s.dataset.project === run.project && s.dataset.startTime === run.startTime
    ).map(([schema, s]) => ({
      schemaName: s.dataset.schemaName,
      schema,
      tables: structuredClone(s.released),
    })).sort((a, b) => compareNames(a.schemaName, b.schemaName));
  }

  async stagingDigest(run: DestinationRun): Promise<string | null> {
    await Promise.resolve();
    this.#assertUsable();
    const loads = [...this.#loaded].filter(([, s]) =>
      s.dataset.project === run.project && s.dataset.startTime === run.startTime
    ).map(([schema, s]) => [schema, s.loadId, [...s.tables.keys()].sort()] as const)
      .sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0);
    if (loads.length === 0) return null;
    return createHash("sha256").update(JSON.stringify(loads)).digest("hex");
  }

  async grantReadAccess(tables: readonly LoadedTable[]): Promise<void> {
    await Promise.resolve();
    this.#assertUsable();
    const missing = tables.filter((t) => this.rows(t) === undefined);
    if (missing.length > 0) throw new DestinationTablesNotPackagedError(missing);
    for (const t of tables) this.#granted.add(key(t.schema, t.table));
  }

  async countRows(tables: readonly LoadedTable[]): Promise<{ table: LoadedTable; rows: number }[]> {
    await Promise.resolve();
    this.#assertUsable();
    return tables.map((table) => {
      const rows = this.rows(table);
      if (rows === undefined) {
        throw new DestinationUnavailableError(
          `Cannot count the rows of ${table.schema}.${table.table}: it does not exist`,
        );
      }
      return { table: { schema: table.schema, table: table.table }, rows: rows.length };
    });
  }

  async dropRun(run: DestinationRun): Promise<LoadedTable[]> {
    const tables = await this.packagedTables(run);
    for (const schema of new Set(tables.map((t) => t.schema))) this.#loaded.delete(schema);
    for (const t of tables) this.#granted.delete(key(t.schema, t.table));
    return tables;
  }

  /** Nothing is ever left behind in memory: always `[]`. */
  async recover(): Promise<string[]> {
    await Promise.resolve();
    this.#assertUsable();
    return [];
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * @throws {DestinationProjectConflictError} when another project holds the project's identifier.
   * @throws {DestinationSchemaConflictError} when the schema is foreign or another dataset's.
   */
  #checkFree(schema: string, dataset: DestinationDataset): void {
    const identifier = projectIdentifier(dataset.project);
    for (const { dataset: other } of this.#loaded.values()) {
      if (other.project !== dataset.project && projectIdentifier(other.project) === identifier) {
        throw new DestinationProjectConflictError(dataset.project, other.project, identifier);
      }
    }
    if (this.#foreign.has(schema)) throw new DestinationSchemaConflictError(schema, undefined);
    const owner = this.#loaded.get(schema)?.dataset;
    if (
      owner !== undefined &&
      (owner.project !== dataset.project || owner.startTime !== dataset.startTime ||
        owner.schemaName !== dataset.schemaName)
    ) {
      throw new DestinationSchemaConflictError(schema, owner);
    }
  }

  #assertUsable(): void {
    if (this.#closed) {
      throw new DestinationUnavailableError("Cannot use a closed destination database");
    }
    if (this.#storage.unavailable) {
      throw new DestinationConnectionError({ logDetail: "the memory destination was broken" });
    }
  }
}

/**
 * Reads one table, through the source's CSV when it has one, reporting progress as PostgreSQL's COPY
 * does (rows and bytes after every chunk, `rows: null` on the CSV path, then one `done`), and checks
 * its rows.
 */
async function readTable(
  source: TableReader,
  extract: TableExtract,
  schema: string,
  options: LoadOptions,
  signal: AbortSignal,
): Promise<CanonicalRow[]> {
  const { table } = extract;
  const report = (rows: number | null, bytes: number, done?: ProgressReport["done"]) =>
    options.onProgress?.({
      table: table.name,
      rows,
      bytes,
      ...(done === undefined ? {} : { done }),
    });
  let rows: CanonicalRow[] = [];
  let bytes = 0;
  if (source.readCsv !== undefined) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of untilAborted(source.readCsv(extract, options), signal)) {
      chunks.push(chunk);
      bytes += chunk.byteLength;
      report(null, bytes);
    }
    try {
      rows = parseCsv(new TextDecoder().decode(concat(chunks))).slice(1);
    } catch (e) {
      if (!(e instanceof SyntaxError)) throw e;
      throw new DestinationValueError({ schema, table: table.name }, "a CSV line is malformed");
    }
  } else {
    const kinds = table.columns.map((c) => c.logicalType.kind);
    for await (const batch of untilAborted(source.readRows(extract, options), signal)) {
      if (batch.length === 0) continue;
      rows.push(...batch);
      bytes += utf8Bytes(encodeCsvRows(batch, kinds)).byteLength;
      report(rows.length, bytes);
    }
  }
  checkRows(rows, extract, schema);
  signal.throwIfAborted();
  report(source.readCsv !== undefined ? null : rows.length, bytes, { sha512: null, reused: false });
  return rows;
}

/** Refuses what PostgreSQL would refuse for any column type, naming row and column, never the value. */
function checkRows(rows: readonly CanonicalRow[], extract: TableExtract, schema: string): void {
  const { table } = extract;
  const where = { schema, table: table.name };
  const keyColumns = table.primaryKey.map((k) => table.columns.findIndex((c) => c.name === k))
    .filter((i) => i >= 0);
  const keys = new Set<string>();
  rows.forEach((row, r) => {
    table.columns.forEach((column, c) => {
      const value = row[c] ?? null;
      const at = { ...where, row: r + 1, column: column.name };
      if (value === null) {
        if (!column.nullable) {
          throw new DestinationValueError(at, "a NULL in a NOT NULL column (SQLSTATE 23502)");
        }
        return;
      }
      if (value.includes("\0")) {
        throw new DestinationValueError(
          at,
          "the text holds a NUL character, which PostgreSQL cannot store",
        );
      }
      if (!value.isWellFormed()) {
        throw new DestinationValueError(
          at,
          "the text holds an unpaired UTF-16 surrogate, which UTF-8 cannot encode",
        );
      }
    });
    if (keyColumns.length > 0) {
      const rowKey = JSON.stringify(keyColumns.map((i) => row[i] ?? null));
      if (keys.has(rowKey)) {
        throw new DestinationValueError(
          { ...where, row: r + 1 },
          "a duplicate primary key (SQLSTATE 23505)",
        );
      }
      keys.add(rowKey);
    }
  });
}

/**
 * The same items, but an abort of `signal` ends the iteration at once with the signal's reason, even
 * while the source is waiting for its next item (which is then abandoned).
 */
async function* untilAborted<T>(
  items: AsyncIterable<T>,
  signal: AbortSignal,
): AsyncGenerator<T, void, undefined> {
  const iterator = items[Symbol.asyncIterator]();
  const aborted = Promise.withResolvers<never>();
  aborted.promise.catch(() => {});
  const onAbort = () => aborted.reject(signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  let finished = false;
  try {
    for (;;) {
      signal.throwIfAborted();
      const next = iterator.next();
      next.catch(() => {});
      const result = await Promise.race([next, aborted.promise]);
      if (result.done === true) {
        finished = true;
        return;
      }
      yield result.value;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    // Not awaited: a source stuck in a read would hold the abort up.
    if (!finished) iterator.return?.()?.catch(() => {});
  }
}

function concat(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

function key(schema: string, table: string): string {
  return `${schema}\0${table}`;
}

function splitKey(joined: string): LoadedTable {
  const [schema, table] = joined.split("\0") as [string, string];
  return { schema, table };
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byTable(a: LoadedTable, b: LoadedTable): number {
  return compareNames(a.schema, b.schema) || compareNames(a.table, b.table);
}
