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
 * Resuming: a table an interrupted run finished is kept when its left-over file still has the SHA-512
 * recorded then (`WriteOptions.reuse`, `StagingWork.reuse`); kept files are marked as escaped or not by
 * this writer's current setting, so a resumed run must use the same setting as the interrupted one.
 *
 * @module
 */
import { mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { TableExtract } from "../../domain/catalog.ts";
import { mapConcurrent } from "../../domain/concurrency.ts";
import { untilAborted } from "../../domain/interruption.ts";
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
import { type FileDigest, HashingFileWriter } from "./sha512.ts";

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

  /**
   * Writes one file per table, up to `concurrency` at a time. A table named in `options.reuse` whose
   * left-over still has that SHA-512 is kept (`work.reuse`) instead of read. Each table reports `done`
   * once, with its file's SHA-512; rows and bytes while reading are reported by the caller's reader
   * (`application/source.ts`, `watchedReader`), not here. When `options.signal` aborts, every read stops
   * at once, unfinished files are deleted, and the write rejects with the signal's reason; when one table
   * fails, the others stop too.
   */
  async write(
    work: StagingWork,
    source: TableReader,
    tables: readonly TableExtract[],
    options: WriteOptions,
  ): Promise<StagedFile[]> {
    const { signal } = options;
    signal?.throwIfAborted();
    // Every path first: a table whose name cannot be a file name stops the write before any is read.
    const paths = tables.map((extract) => csvPayloadPath(extract.schema, extract.table.name));
    const failed = new AbortController();
    const stop = signal === undefined ? failed.signal : AbortSignal.any([signal, failed.signal]);
    const read = { ...options, signal: stop };
    try {
      return await mapConcurrent(tables, options.concurrency, async (extract, index) => {
        try {
          stop.throwIfAborted();
          return await this.#stageTable(work, paths[index]!, source, extract, read);
        } catch (e) {
          failed.abort(e);
          throw e;
        }
      });
    } catch (e) {
      throw signal?.aborted ? signal.reason : e;
    }
  }

  /** Keeps the table's left-over, or writes its file; reports it done either way. */
  async #stageTable(
    work: StagingWork,
    path: string,
    source: TableReader,
    extract: TableExtract,
    read: WriteOptions & { signal: AbortSignal },
  ): Promise<StagedFile> {
    const table = extract.table.name;
    const recorded = read.reuse?.get(table);
    const kept = recorded === undefined ? undefined : await work.reuse(path, recorded);
    if (kept !== undefined) {
      read.onProgress?.({
        table,
        rows: null,
        bytes: kept.bytes,
        done: { sha512: kept.sha512, reused: true },
      });
      return this.#marked(kept);
    }
    const { rows, ...digest } = await this.#writeTable(join(work.dir, path), source, extract, read);
    read.onProgress?.({
      table,
      rows,
      bytes: digest.bytes,
      done: { sha512: digest.sha512, reused: false },
    });
    return this.#marked({ path, ...digest });
  }

  /** Writes one table's file; an unfinished file is deleted. */
  async #writeTable(
    file: string,
    source: TableReader,
    extract: TableExtract,
    read: WriteOptions & { signal: AbortSignal },
  ): Promise<FileDigest & { rows: number | null }> {
    await mkdir(dirname(file), { recursive: true });
    const out = await HashingFileWriter.create(file);
    const counted = { rows: 0 as number | null };
    try {
      const chunks = this.#formulaPrefix
        ? escapedCsvChunks(source, extract, read, counted)
        : csvChunks(source, extract, read, counted);
      for await (const chunk of untilAborted(chunks, read.signal)) await out.write(chunk);
    } catch (e) {
      await out.abandon();
      throw e;
    }
    return { ...await out.finish(), rows: counted.rows };
  }

  #marked(file: StagedFile): StagedFile {
    const { csvFormulaPrefix: _, ...plain } = file;
    return this.#formulaPrefix ? { ...plain, csvFormulaPrefix: CSV_FORMULA_PREFIX } : plain;
  }
}

/** Rows counted as they are encoded; `null` on the fast path, where the source's CSV passes through. */
interface RowCount {
  rows: number | null;
}

async function* csvChunks(
  source: TableReader,
  extract: TableExtract,
  options: WriteOptions,
  counted: RowCount,
): AsyncIterable<Uint8Array> {
  if (source.readCsv !== undefined) {
    counted.rows = null;
    yield* source.readCsv(extract, options);
    return;
  }
  yield encoder.encode(encodeCsvRow(extract.table.columns.map((c) => c.name)));
  const kinds = extract.table.columns.map((c) => c.logicalType.kind);
  for await (const batch of source.readRows(extract, options)) {
    counted.rows! += batch.length;
    yield utf8Bytes(encodeCsvRows(batch, kinds));
  }
}

/** The rows encoded here, with the formula escape applied to text values and header names. */
async function* escapedCsvChunks(
  source: TableReader,
  extract: TableExtract,
  options: WriteOptions,
  counted: RowCount,
): AsyncIterable<Uint8Array> {
  const names = extract.table.columns.map((c) => c.name);
  const kinds = extract.table.columns.map((c) => c.logicalType.kind);
  const [header] = prefixFormulas([names], names.map(() => "text"));
  yield encoder.encode(encodeCsvRow(header!));
  for await (const batch of source.readRows(extract, options)) {
    counted.rows! += batch.length;
    yield utf8Bytes(encodeCsvRows(prefixFormulas(batch, kinds), kinds));
  }
}
