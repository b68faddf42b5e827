/**
 * Writes each table of a dataset as one canonical CSV file, `data/outputs/{schema}/{table}.csv`, hashing
 * the bytes as they are written. When the source can produce canonical CSV itself (PostgreSQL `COPY`), its
 * bytes pass straight through; otherwise rows are encoded batch by batch.
 *
 * @module
 */
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { TableExtract } from "../../domain/catalog.ts";
import { mapConcurrent } from "../../domain/concurrency.ts";
import { encodeCsvRow, encodeCsvRows, utf8Bytes } from "../../domain/csv.ts";
import { csvPayloadPath } from "../../domain/staging_layout.ts";
import type {
  DatasetWriter,
  StagedFile,
  StagingWork,
  WriteOptions,
} from "../../ports/dataset_writer.ts";
import type { TableReader } from "../../domain/catalog.ts";
import { HashingFileWriter } from "./sha512.ts";

const encoder = new TextEncoder();

/** The CSV format of the filestore destination. */
export class CsvDatasetWriter implements DatasetWriter {
  async write(
    work: StagingWork,
    source: TableReader,
    tables: readonly TableExtract[],
    options: WriteOptions,
  ): Promise<StagedFile[]> {
    // Every path first: a table whose name cannot be a file name stops the write before any is read.
    const paths = tables.map((extract) => csvPayloadPath(extract.schema, extract.table.name));
    return await mapConcurrent(tables, options.concurrency, async (extract, index) => {
      const path = paths[index]!;
      const file = join(work.dir, path);
      await mkdir(dirname(file), { recursive: true });
      const out = await HashingFileWriter.create(file);
      try {
        for await (const chunk of csvChunks(source, extract, options.batchRows)) {
          await out.write(chunk);
        }
      } catch (e) {
        await out.abandon();
        throw e;
      }
      return { path, ...await out.finish() };
    });
  }
}

async function* csvChunks(
  source: TableReader,
  extract: TableExtract,
  batchRows: number,
): AsyncIterable<Uint8Array> {
  if (source.readCsv !== undefined) {
    yield* source.readCsv(extract);
    return;
  }
  yield encoder.encode(encodeCsvRow(extract.table.columns.map((c) => c.name)));
  const kinds = extract.table.columns.map((c) => c.logicalType.kind);
  for await (const batch of source.readRows(extract, { batchRows })) {
    yield utf8Bytes(encodeCsvRows(batch, kinds));
  }
}
