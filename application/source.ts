/**
 * The source side of the use cases: how they open a source database, how they read the selected part of
 * its catalogue, and the reader that stops on a signal and reports progress.
 *
 * @module
 */
import {
  type ReadCsvOptions,
  type ReadRowsOptions,
  type SchemaCatalog,
  selectDataset,
  type TableExtract,
  type TableReader,
} from "../domain/catalog.ts";
import type { DatasetMetadata, Source } from "../domain/contract.ts";
import {
  CanonicalCsvParser,
  type DatasetDisclosure,
  DisclosureAccumulator,
  type DisclosureThresholds,
  disclosureThresholds,
  type TableDisclosure,
} from "../domain/disclosure.ts";
import type { CanonicalRow } from "../domain/logical_type.ts";
import type { LongWork } from "../ports/destination.ts";
import { estimatedBatchBytes, type SourceDatabase } from "../ports/source_database.ts";

/**
 * Opens the source a request names, checked against the allow-list (the composition root's
 * `openSource`, `apps/_shared/source_access.ts`).
 *
 * @param schemaName the schema the request reads, checked against the allow-list too (none for validate).
 */
export type SourceOpener = (source: Source, schemaName?: string) => Promise<SourceDatabase>;

/** Describes the tables a dataset names (all of the schema when it names none), narrowed to its columns. */
export async function describeSelection(
  db: SourceDatabase,
  dataset: DatasetMetadata,
): Promise<SchemaCatalog> {
  const requested = (dataset.tables ?? []).map((t) => t.name);
  const catalog = await db.describeSchema(dataset.schema_name, {
    ...(requested.length > 0 ? { tables: requested } : {}),
  });
  return selectDataset(catalog, dataset);
}

/**
 * The same reader, which throws the signal's reason before each table and each batch once it is aborted,
 * and reports each table's rows and bytes after every batch. Bytes are the CSV bytes on the fast path
 * (where rows are not counted, `rows: null`), otherwise the estimated size of the values
 * (`estimatedBatchBytes`).
 */
export function watchedReader(reader: TableReader, work: LongWork): TableReader {
  const { signal, onProgress } = work;
  if (signal === undefined && onProgress === undefined) return reader;
  const watched: TableReader = {
    async *readRows(
      extract: TableExtract,
      options?: ReadRowsOptions,
    ): AsyncGenerator<CanonicalRow[], void, undefined> {
      signal?.throwIfAborted();
      let rows = 0;
      let bytes = 0;
      for await (const batch of reader.readRows(extract, options)) {
        signal?.throwIfAborted();
        rows += batch.length;
        bytes += estimatedBatchBytes(batch);
        onProgress?.({ table: extract.table.name, rows, bytes });
        yield batch;
      }
    },
  };
  const readCsv = reader.readCsv?.bind(reader);
  if (readCsv === undefined) return watched;
  return {
    ...watched,
    async *readCsv(
      extract: TableExtract,
      options?: ReadCsvOptions,
    ): AsyncGenerator<Uint8Array, void, undefined> {
      signal?.throwIfAborted();
      let bytes = 0;
      for await (const chunk of readCsv(extract, options)) {
        signal?.throwIfAborted();
        bytes += chunk.byteLength;
        onProgress?.({ table: extract.table.name, rows: null, bytes });
        yield chunk;
      }
    },
  };
}

/**
 * The disclosure pre-checks of one dataset's stage (`domain/disclosure.ts`): {@link DisclosureChecks.reader}
 * wraps the use case's reader so that every table read to its end, row by row or on the CSV fast path
 * (parsed back from its canonical CSV bytes), is checked. The statistics hold no row data beyond what
 * `domain/disclosure.ts` allows.
 */
export class DisclosureChecks {
  readonly #extracts: readonly TableExtract[];
  readonly #thresholds: DisclosureThresholds;
  readonly #onTable: ((checks: TableDisclosure) => void) | undefined;
  readonly #done = new Map<string, TableDisclosure>();

  /**
   * @param extracts the dataset's tables.
   * @param smallCellThreshold values seen fewer times are flagged.
   * @param onTable called with each table's statistics when its read ends.
   */
  constructor(
    extracts: readonly TableExtract[],
    smallCellThreshold: number,
    onTable?: (checks: TableDisclosure) => void,
  ) {
    this.#extracts = extracts;
    this.#thresholds = disclosureThresholds(smallCellThreshold);
    this.#onTable = onTable;
  }

  /** The dataset's checks: `null` unless every table was read to its end (kept from a previous run). */
  result(): DatasetDisclosure | null {
    const tables = this.#extracts.map((e) => this.#done.get(e.table.name));
    if (tables.some((t) => t === undefined)) return null;
    return { thresholds: this.#thresholds, tables: tables as TableDisclosure[] };
  }

  #accumulator(extract: TableExtract): DisclosureAccumulator {
    return new DisclosureAccumulator(
      extract.table.name,
      extract.table.columns.map((c) => ({ name: c.name, kind: c.logicalType.kind })),
      this.#thresholds.small_cell_threshold,
    );
  }

  #finish(accumulator: DisclosureAccumulator): void {
    const checks = accumulator.result();
    this.#done.set(checks.table, checks);
    this.#onTable?.(checks);
  }

  /** The same reader, checking every table it reads to the end. */
  reader(reader: TableReader): TableReader {
    const checked: TableReader = {
      readRows: async function* (
        this: DisclosureChecks,
        extract: TableExtract,
        options?: ReadRowsOptions,
      ): AsyncGenerator<CanonicalRow[], void, undefined> {
        const accumulator = this.#accumulator(extract);
        for await (const batch of reader.readRows(extract, options)) {
          for (const row of batch) accumulator.addRow(row);
          yield batch;
        }
        this.#finish(accumulator);
      }.bind(this),
    };
    const readCsv = reader.readCsv?.bind(reader);
    if (readCsv === undefined) return checked;
    return {
      ...checked,
      readCsv: async function* (
        this: DisclosureChecks,
        extract: TableExtract,
        options?: ReadCsvOptions,
      ): AsyncGenerator<Uint8Array, void, undefined> {
        const accumulator = this.#accumulator(extract);
        const parser = new CanonicalCsvParser((row) => accumulator.addRow(row));
        for await (const chunk of readCsv(extract, options)) {
          parser.push(chunk);
          yield chunk;
        }
        parser.end();
        this.#finish(accumulator);
      }.bind(this),
    };
  }
}
