/**
 * Reading what a run published, page by page (issue 19): a filestore's production bag (CSV files, or
 * the DuckDB file) or the PostgreSQL destination's published tables. Never staging: a table is readable
 * only once it is published, and a revoked release reads as not published.
 *
 * Every adapter passes `tests/contracts/release_reader_contract.ts`: the filestore
 * (`adapters/filesystem/filestore_release_reader.ts`, CSV and DuckDB), the PostgreSQL destination
 * (`adapters/postgres/postgres_release_reader.ts`) and the in-memory fake
 * (`adapters/memory/memory_release_reader.ts`).
 *
 * @module
 */
import { AppError } from "../domain/errors.ts";
import type {
  ReadOrientation,
  ReadPosition,
  ReadValue,
  ReleaseTable,
} from "../domain/release_read.ts";
import type { RunRef } from "../domain/staging_layout.ts";

export type {
  ReadOrientation,
  ReadPosition,
  ReadValue,
  ReleaseColumn,
  ReleaseTable,
} from "../domain/release_read.ts";

/** Which page to read. */
export interface ReadPageRequest {
  /** The dataset (schema name) and table. */
  readonly dataset: string;
  readonly table: string;
  /** The most rows (1 to `MAX_READ_LIMIT`). */
  readonly limit: number;
  /** Where the previous page ended; `null` for the first page. */
  readonly after: ReadPosition | null;
  /**
   * A page stops adding rows once its values hold this many characters (at least one row is
   * returned); `MAX_PAGE_CHARS` when absent.
   */
  readonly maxChars?: number;
}

/** One page of a table. */
export interface ReadPage {
  /** The columns, in the table's order, with their types as `listTables` gives them. */
  readonly columns: readonly { readonly name: string; readonly type: string }[];
  /** The rows, each value its canonical CSV text or `null`, in key (or file) order. */
  readonly rows: readonly (readonly ReadValue[])[];
  /** Where this page ended, when more rows may follow; `null` on the last page. */
  readonly next: ReadPosition | null;
}

/** One page already encoded as JSON by the destination: what {@link ReleaseReader.readPageJson} gives. */
export interface JsonPage {
  readonly columns: ReadPage["columns"];
  /** How many rows the page holds. */
  readonly rowCount: number;
  /**
   * The rows as UTF-8 JSON, separated by `,` without the enclosing brackets: each row an array of its
   * values (`tabular`) or an object by column name (`records`), values as {@link ReadPage.rows} has them.
   */
  readonly json: Uint8Array;
  readonly next: ReadPosition | null;
}

/** The published releases of one destination. */
export interface ReleaseReader {
  /**
   * The tables the run published on this destination.
   *
   * @returns the tables, sorted by dataset then name.
   * @throws {ReleaseNotReadableError} when the run published nothing here (never, or revoked).
   */
  listTables(run: RunRef): Promise<ReleaseTable[]>;

  /**
   * One page of a published table: up to `limit` rows after `after`, in key order (file order for a CSV
   * file). Paging from `null` to the last page gives every row exactly once, also while the table is
   * republished (by key), or refuses with {@link ReleaseChangedError} (a position bound to the bytes or
   * the version the table had).
   *
   * @throws {ReleaseNotReadableError} when the run published nothing here.
   * @throws {ReleaseTableNotFoundError} when the run published no such table.
   * @throws {InvalidCursorError} (`domain/release_read.ts`) when `after` is not a position of this
   *   table's kind (another destination's, or key values that do not fit the key).
   * @throws {ReleaseChangedError} when `after` is bound to a version the table no longer has.
   */
  readPage(run: RunRef, request: ReadPageRequest): Promise<ReadPage>;

  /**
   * Optional fast path: the same page as {@link readPage}, encoded as JSON by the destination itself (no
   * value passes through a JavaScript string). Same rows, order, `next` and errors; the values parse to
   * exactly what `readPage` gives.
   *
   * @returns `undefined` when this table has no fast path (then `readPage` it).
   */
  readPageJson?(
    run: RunRef,
    request: ReadPageRequest,
    orientation: ReadOrientation,
  ): Promise<JsonPage | undefined>;
}

/** The run has nothing published on the destination: never published, revoked, or expired. */
export class ReleaseNotReadableError extends AppError {
  readonly code = "release_not_published";

  constructor(readonly run: RunRef) {
    super(
      `Cannot read project "${run.project}" started ${run.startTime}: nothing of it is published ` +
        "on this destination",
    );
  }
}

/** The run published no table of that name in that dataset. */
export class ReleaseTableNotFoundError extends AppError {
  readonly code = "table_not_found";

  constructor(readonly dataset: string, readonly table: string) {
    super(`Cannot find table "${table}" of dataset "${dataset}" in the published release`);
  }
}

/**
 * The cursor is bound to the bytes (a CSV file's SHA-512) or the version (a table without a key) the
 * table had when the paging started, and a republish replaced them: the position means nothing in the
 * new version. The client starts again from the first page.
 */
export class ReleaseChangedError extends AppError {
  readonly code = "release_changed";

  constructor(readonly dataset: string, readonly table: string) {
    super(
      `Cannot continue reading table "${table}" of dataset "${dataset}": it was republished since ` +
        "the first page; start again without a cursor",
    );
  }
}
