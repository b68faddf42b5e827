/**
 * Where a run's files live. A run is one project at one start time; its staging and production folders
 * are `{base}/staging/{project}/{start}/` and `{base}/production/{project}/{start}/`, and its payload sits
 * under `data/outputs/` inside them (a BagIt payload directory).
 *
 * @module
 */
import { posix } from "node:path/posix";
import { UnsafeTableNameError } from "./errors.ts";
import { isSafeIdentifier, PROJECT_START_TIME_PATTERN, projectNameProblem } from "./names.ts";

/** One project at one start time. */
export interface RunRef {
  readonly project: string;
  readonly startTime: string;
}

/** Where payload files go inside a run folder. */
export const PAYLOAD_DIR = "data/outputs";

/** The DuckDB database of a run, shared by all its datasets. */
export const DUCKDB_PAYLOAD_PATH = `${PAYLOAD_DIR}/database.duckdb`;

/** The staging manifest's name, directly in the staging run folder. */
export const STAGING_MANIFEST_NAME = ".cr8tor-staging.json";

/**
 * The folder of a staging run folder that holds what interrupted stages left for a resumed run: one
 * folder per dataset, `.resumable/{schema}/`, with that dataset's finished files at their payload paths
 * (`.resumable/{schema}/data/outputs/{schema}/{table}.csv`). It is not in the manifest and never
 * published.
 */
export const RESUMABLE_DIR = ".resumable";

/**
 * The run folder relative to the filestore base, e.g. `staging/Pr042/20250611_093000`.
 *
 * @throws {RangeError} when the project or start time could leave its folder (the request schema already
 *   refuses them; this is the second lock on the door).
 */
export function runFolder(area: "staging" | "production", run: RunRef): string {
  const problem = projectNameProblem(run.project);
  if (problem !== undefined) throw new RangeError(`Cannot use project name: ${problem}`);
  if (!PROJECT_START_TIME_PATTERN.test(run.startTime)) {
    throw new RangeError("Cannot use project start time: must match YYYYMMDD_HHMMSS");
  }
  return posix.join(area, run.project, run.startTime);
}

/**
 * The payload path of one table's CSV file: `data/outputs/{schema}/{table}.csv`.
 *
 * @throws {UnsafeTableNameError} when the table's name (from the source's catalogue) is not a safe name.
 * @throws {RangeError} when the schema name is unsafe (the request schema already refuses it).
 */
export function csvPayloadPath(schema: string, table: string): string {
  if (!isSafeIdentifier(schema)) {
    throw new RangeError("Cannot build a CSV path from an unsafe schema name");
  }
  if (!isSafeIdentifier(table)) throw new UnsafeTableNameError(schema, table);
  return `${PAYLOAD_DIR}/${schema}/${table}.csv`;
}

/** True when `path` is a normalised relative path under `data/outputs/` (no `..`, no empty segment). */
export function isPayloadPath(path: string): boolean {
  if (!path.startsWith(`${PAYLOAD_DIR}/`)) return false;
  return path.split("/").every((segment) => segment !== "" && segment !== "." && segment !== "..");
}

/** A file a writer staged, with its checksum computed as it was written. */
export interface StagedFile {
  /** Path relative to the run root, always under `data/outputs/`, `/`-separated. */
  readonly path: string;
  /** SHA-512 of the file's bytes, 128 lower-case hex characters. */
  readonly sha512: string;
  readonly bytes: number;
  /**
   * The prefix put before text values a spreadsheet would take for a formula (`'`), when the file was
   * written with the opt-in formula escape; absent when its values are exact.
   */
  readonly csvFormulaPrefix?: string;
}

/** The private place a writer writes one dataset into, provided by the filestore. */
export interface StagingWork {
  /**
   * An empty directory standing for the run root, created for this write alone (owner-only); write
   * payload files under `data/outputs/` in it.
   */
  readonly dir: string;
  /**
   * Copies the file the run has staged at a payload path into `dir` at the same path, so a writer can
   * extend it (DuckDB keeps every dataset of a run in one database file). The staged file is checked
   * first: a plain file inside the run folder (no link, one name), matching its manifest entry.
   *
   * @returns `false` when the run has no staged file at that path.
   * @throws {UnsafeFilesystemEntryError} when the staged file or a folder above it is a link or a hard link.
   * @throws {StagingIntegrityError} when the staged file does not match its manifest entry.
   */
  copyPrevious(path: string): Promise<boolean>;
  /**
   * Keeps a file an interrupted stage of this dataset left at a payload path (`.resumable/{schema}/`):
   * when it is a plain file with one name whose bytes have exactly `sha512`, it is moved into `dir` at the
   * same path and the writer need not extract it again.
   *
   * @param path the payload path, e.g. `data/outputs/{schema}/{table}.csv`.
   * @param sha512 the SHA-512 recorded when the interrupted run finished the file.
   * @returns the file, now in `dir`; `undefined` when there is no such left-over or its bytes differ
   *   (extract it again).
   * @throws {UnsafeFilesystemEntryError} when the left-over or a folder above it is a link, a hard link or
   *   not a plain file; nothing is moved.
   */
  reuse(path: string, sha512: string): Promise<StagedFile | undefined>;
  /**
   * Reads a file this write put in `dir` (a payload path), from its start, in chunks: what a stage
   * loads elsewhere too (CSV files into the PostgreSQL destination, `application/load_csv_files.ts`).
   *
   * @throws {UnsafeFilesystemEntryError} when it or a folder above it is a link or not a plain file.
   * @throws {Error} when there is no such file.
   */
  read(path: string): AsyncIterable<Uint8Array>;
}
