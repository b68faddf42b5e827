/**
 * Loads staged CSV files into the PostgreSQL destination (issue 18, point 4; `docs/http-sources.md`):
 * the files an HTTP-file source fetched become the tables of one dataset of the run, through the same
 * `Destination.stage` as database extracts (a fresh schema swapped in for the dataset's previous one in
 * one transaction, the registry's `released` tables, then publish's grants, OPAL, crate and receipt).
 *
 * Each file is read twice from the stage's work folder: once through the checks
 * (`domain/tabular_checks.ts`), which decide its columns' types and refuse a bad file before anything is
 * loaded (`domain/csv_tables.ts`); then its exact bytes go into `COPY ... FROM STDIN (FORMAT csv,
 * HEADER)`, hashed on the way: bytes that are not those staged (SHA-512 and size) fail the load, and a
 * failed load leaves the destination as it was.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { basename } from "node:path/posix";
import type { TableExtract, TableReader } from "../domain/catalog.ts";
import { CopyInputScanner, CsvLoadRefusedError, csvTableExtract } from "../domain/csv_tables.ts";
import type { RunRef, StagedFile, StagingWork } from "../domain/staging_layout.ts";
import { TabularChecker } from "../domain/tabular_checks.ts";
import type { Destination, Staged, StageOptions } from "../ports/destination.ts";
import { StagingIntegrityError } from "../ports/filestore.ts";

/**
 * Loads `files` (staged in `work`) as the tables of dataset `dataset` of run `run` on `destination`.
 *
 * @returns what `Destination.stage` returns: the tables loaded.
 * @throws {CsvLoadRefusedError} when a file cannot be loaded as it is (not a clean comma-separated
 *   CSV file, an unusable header, two files with one table name); nothing is loaded.
 * @throws {StagingIntegrityError} when a file's bytes changed since they were staged; nothing is loaded.
 * @throws the destination's errors (a value its column type refuses: `DestinationValueError`).
 */
export async function loadCsvFiles(
  work: Pick<StagingWork, "read">,
  files: readonly StagedFile[],
  target: { readonly destination: Destination; readonly run: RunRef; readonly dataset: string },
  options: StageOptions,
): Promise<Staged> {
  const extracts: TableExtract[] = [];
  const byTable = new Map<string, StagedFile>();
  for (const file of files) {
    options.signal?.throwIfAborted();
    const name = basename(file.path);
    const checker = new TabularChecker("csv");
    const scanner = new CopyInputScanner();
    for await (const chunk of work.read(file.path)) {
      checker.push(chunk);
      scanner.push(chunk);
    }
    const extract = csvTableExtract(target.dataset, name, checker.finish(), scanner.finish());
    const clash = byTable.get(extract.table.name);
    if (clash !== undefined) {
      throw new CsvLoadRefusedError(
        name,
        `its table "${extract.table.name}" is also ${basename(clash.path)}'s`,
      );
    }
    byTable.set(extract.table.name, file);
    extracts.push(extract);
  }
  const reader: TableReader = {
    readRows() {
      throw new TypeError("Cannot read staged CSV files as rows: they are loaded as they are");
    },
    readCsv: (extract) => verifiedBytes(work, byTable.get(extract.table.name)!),
  };
  return await target.destination.stage(target.run, target.dataset, reader, extracts, options);
}

/** The file's bytes, failing at the end unless they are exactly those staged. */
async function* verifiedBytes(
  work: Pick<StagingWork, "read">,
  file: StagedFile,
): AsyncGenerator<Uint8Array, void, undefined> {
  const hash = createHash("sha512");
  let bytes = 0;
  for await (const chunk of work.read(file.path)) {
    hash.update(chunk);
    bytes += chunk.byteLength;
    yield chunk;
  }
  if (bytes !== file.bytes || hash.digest("hex") !== file.sha512) {
    throw new StagingIntegrityError(file.path, "changed since it was staged");
  }
}
