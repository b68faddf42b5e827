/**
 * An in-memory source database for tests and demos. Do not use it in production.
 *
 * @module
 */
import type { SchemaCatalog, TableExtract } from "../../domain/catalog.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import {
  readLimitsOf,
  type ReadRowsOptions,
  RowBatcher,
  SchemaNotFoundError,
  type SourceDatabase,
  SourceUnavailableError,
} from "../../ports/source_database.ts";
import { compareNames } from "../shared/collections.ts";

/** Rows of one table, keyed `schema.table`, each row holding every catalogue column in order. */
export type MemoryRows = ReadonlyMap<string, readonly CanonicalRow[]>;

/** A source database whose catalogue and rows are given up front. */
export class MemorySourceDatabase implements SourceDatabase {
  readonly #schemas: Map<string, SchemaCatalog>;
  readonly #rows: MemoryRows;
  #closed = false;
  #unavailable = false;
  #failAfterRows: number | undefined;

  /**
   * @param schemas the catalogue.
   * @param rows table contents by `schema.table`, canonical values in catalogue column order; a table
   *   without an entry is empty.
   */
  constructor(schemas: readonly SchemaCatalog[], rows: MemoryRows = new Map()) {
    this.#schemas = new Map(schemas.map((s) => [s.name, sortTables(s)]));
    this.#rows = rows;
  }

  /** Makes {@link readRows} fail after it has yielded this many rows, as if the connection dropped. */
  failAfterRows(rows: number): void {
    this.#failAfterRows = rows;
  }

  /** Makes every later call fail as if the server went away. */
  breakConnection(): void {
    this.#unavailable = true;
  }

  /** True once {@link close} has been called. */
  get closed(): boolean {
    return this.#closed;
  }

  async ping(): Promise<void> {
    await Promise.resolve();
    this.#assertOpen();
  }

  async describeSchema(
    schema: string,
    options: { tables?: readonly string[] } = {},
  ): Promise<SchemaCatalog> {
    await this.ping();
    const found = this.#schemas.get(schema);
    if (found === undefined) throw new SchemaNotFoundError(schema);
    const only = options.tables === undefined ? undefined : new Set(options.tables);
    return only === undefined
      ? found
      : { ...found, tables: found.tables.filter((t) => only.has(t.name)) };
  }

  async *readRows(
    extract: TableExtract,
    options: ReadRowsOptions = {},
  ): AsyncIterable<CanonicalRow[]> {
    const limits = readLimitsOf(options);
    const catalog = await this.describeSchema(extract.schema);
    const table = catalog.tables.find((t) => t.name === extract.table.name);
    if (table === undefined) {
      throw new SourceUnavailableError(
        `Cannot read table "${extract.table.name}": it does not exist`,
      );
    }
    const positions = extract.table.columns.map((c) =>
      table.columns.findIndex((t) => t.name === c.name)
    );
    if (positions.includes(-1)) {
      throw new SourceUnavailableError(`Cannot read table "${table.name}": unknown column`);
    }
    const rows = this.#rows.get(`${extract.schema}.${table.name}`) ?? [];
    const batcher = new RowBatcher(extract, limits);
    let handedOver = 0;
    const handOver = () => {
      const batch = batcher.take();
      handedOver += batch.length;
      if (this.#failAfterRows !== undefined && handedOver > this.#failAfterRows) {
        throw new SourceUnavailableError("Cannot read from the source database: connection lost");
      }
      this.#assertOpen();
      return batch;
    };
    for (const row of rows) {
      if (batcher.add(positions.map((p) => row[p] ?? null))) yield handOver();
    }
    if (batcher.size > 0) yield handOver();
  }

  /**
   * The exact row count of each named table (kind "table"), as the statistics of a freshly analysed
   * database would give it; views, unknown names and an unknown schema are left out.
   */
  async estimateRows(
    schema: string,
    tables: readonly string[],
  ): Promise<ReadonlyMap<string, number>> {
    await this.ping();
    const named = new Set(tables);
    const estimates = new Map<string, number>();
    for (const table of this.#schemas.get(schema)?.tables ?? []) {
      if (table.kind !== "table" || !named.has(table.name)) continue;
      estimates.set(table.name, this.#rows.get(`${schema}.${table.name}`)?.length ?? 0);
    }
    return estimates;
  }

  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new SourceUnavailableError("Cannot use a closed source connection");
    if (this.#unavailable) throw new SourceUnavailableError("Cannot reach the source database");
  }
}

function sortTables(schema: SchemaCatalog): SchemaCatalog {
  return {
    ...schema,
    tables: [...schema.tables].sort((a, b) => compareNames(a.name, b.name)),
  };
}
