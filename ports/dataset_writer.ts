/**
 * Writers that turn extracted tables into staged files of one format (CSV files, a DuckDB database).
 *
 * @module
 */
import type { TableExtract } from "../domain/catalog.ts";
import type { SourceDatabase } from "./source_database.ts";

/** A file a writer staged, with its checksum computed as it was written. */
export interface StagedFile {
  /** Path relative to the run root, always under `data/outputs/`, `/`-separated. */
  readonly path: string;
  /** SHA-512 of the file's bytes, 128 lower-case hex characters. */
  readonly sha512: string;
  readonly bytes: number;
}

/** The private place a writer writes one dataset into, provided by the filestore. */
export interface StagingWork {
  /** An empty directory standing for the run root; write payload files under `data/outputs/` in it. */
  readonly dir: string;
  /**
   * The currently staged file at a payload path (absolute path), if there is one, so a writer can extend it
   * (DuckDB keeps every dataset of a run in one database file). Never modify it in place: copy it.
   */
  previous(path: string): string | undefined;
}

/** How much to do at once. */
export interface WriteOptions {
  /** How many tables to extract at the same time. */
  readonly concurrency: number;
  /** Rows per batch read from the source. */
  readonly batchRows: number;
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
    source: SourceDatabase,
    tables: readonly TableExtract[],
    options: WriteOptions,
  ): Promise<StagedFile[]>;
}
