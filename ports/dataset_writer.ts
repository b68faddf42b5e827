/**
 * Writers that turn extracted tables into staged files of one format (CSV files, a DuckDB database).
 *
 * @module
 */
import type { ReadRowsOptions, TableExtract, TableReader } from "../domain/catalog.ts";
import type { StagedFile, StagingWork } from "../domain/staging_layout.ts";
import type { LongWork } from "../domain/long_work.ts";

export type { StagedFile, StagingWork };

/**
 * How much to do at once. The read limits (`batchBytes`, `maxValueBytes`) are passed on to every
 * `readRows` and `readCsv` call; left out, the source's defaults apply.
 */
export interface WriteOptions extends ReadRowsOptions, LongWork {
  /** How many tables to extract at the same time. */
  readonly concurrency: number;
  /** Rows per batch read from the source. */
  readonly batchRows: number;
  /** Tables an interrupted run left staged, with their recorded SHA-512 (`StageOptions.reuse`). */
  readonly reuse?: ReadonlyMap<string, string> | undefined;
}

/** Writes the tables of one dataset in one format. */
export interface DatasetWriter {
  /**
   * Extracts every table and writes it under `work.dir`, replacing what the dataset (schema) staged before.
   *
   * @param work where to write.
   * @param source the open source connection to read from.
   * @param tables the tables of one schema, with the selected columns.
   * @returns every file the dataset now has, with checksums.
   * @throws {SourceUnavailableError} when reading fails; the work directory is then discarded.
   */
  write(
    work: StagingWork,
    source: TableReader,
    tables: readonly TableExtract[],
    options: WriteOptions,
  ): Promise<StagedFile[]>;
}
