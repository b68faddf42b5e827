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
import type { CanonicalRow } from "../domain/logical_type.ts";
import type { LongWork } from "../ports/destination.ts";
import { estimatedRowBytes, type SourceDatabase } from "../ports/source_database.ts";

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
 * (`estimatedRowBytes`).
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
        for (const row of batch) bytes += estimatedRowBytes(row);
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
