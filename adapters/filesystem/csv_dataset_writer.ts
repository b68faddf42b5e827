/**
 * Writes each table of a dataset as one canonical CSV file, `data/outputs/{schema}/{table}.csv`, hashing
 * the bytes as they are written. When the source can produce canonical CSV itself (PostgreSQL `COPY`), its
 * bytes pass straight through; otherwise rows are encoded batch by batch.
 *
 * With the opt-in formula escape ({@link CsvDatasetWriterOptions.formulaPrefix}) text values that a
 * spreadsheet would evaluate get a `'` in front (`domain/csv.ts`, `prefixFormulas`), header names
 * included; rows are then always encoded here, and each file is marked as escaped so that the bag's
 * `bag-info.txt` says so.
 *
 * @module
 */
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { TableExtract } from "../../domain/catalog.ts";
import { mapConcurrent } from "../../domain/concurrency.ts";
import {
  CSV_FORMULA_PREFIX,
  encodeCsvRow,
  encodeCsvRows,
  prefixFormulas,
  utf8Bytes,
} from "../../domain/csv.ts";
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

/** Options of {@link CsvDatasetWriter}. */
export interface CsvDatasetWriterOptions {
  /**
   * Prefix text values (and header names) that start with `=`, `+`, `-`, `@`, tab, CR or `'` with
   * {@link CSV_FORMULA_PREFIX}, for readers who open the files in a spreadsheet. Off by default: values
   * are exact.
   */
  readonly formulaPrefix?: boolean;
}

/** The CSV format of the filestore destination. */
export class CsvDatasetWriter implements DatasetWriter {
  readonly #formulaPrefix: boolean;

  constructor(options: CsvDatasetWriterOptions = {}) {
    this.#formulaPrefix = options.formulaPrefix ?? false;
  }

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
        const chunks = this.#formulaPrefix
          ? escapedCsvChunks(source, extract, options)
          : csvChunks(source, extract, options);
        for await (const chunk of chunks) await out.write(chunk);
      } catch (e) {
        await out.abandon();
        throw e;
      }
      const written = await out.finish();
      return this.#formulaPrefix
        ? { path, ...written, csvFormulaPrefix: CSV_FORMULA_PREFIX }
        : { path, ...written };
    });
  }
}

async function* csvChunks(
  source: TableReader,
  extract: TableExtract,
  options: WriteOptions,
): AsyncIterable<Uint8Array> {
  if (source.readCsv !== undefined) {
    yield* source.readCsv(extract, options);
    return;
  }
  yield encoder.encode(encodeCsvRow(extract.table.columns.map((c) => c.name)));
  const kinds = extract.table.columns.map((c) => c.logicalType.kind);
  for await (const batch of source.readRows(extract, options)) {
    yield utf8Bytes(encodeCsvRows(batch, kinds));
  }
}

/** The rows encoded here, with the formula escape applied to text values and header names. */
async function* escapedCsvChunks(
  source: TableReader,
  extract: TableExtract,
  options: WriteOptions,
): AsyncIterable<Uint8Array> {
  const names = extract.table.columns.map((c) => c.name);
  const kinds = extract.table.columns.map((c) => c.logicalType.kind);
  const [header] = prefixFormulas([names], names.map(() => "text"));
  yield encoder.encode(encodeCsvRow(header!));
  for await (const batch of source.readRows(extract, options)) {
    yield utf8Bytes(encodeCsvRows(prefixFormulas(batch, kinds), kinds));
  }
}
