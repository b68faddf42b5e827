/**
 * How long work (staging, loading, publishing) is stopped and how it reports progress: an `AbortSignal`
 * and a callback, shared by the ports that do long work (`ports/destination.ts`,
 * `ports/dataset_writer.ts`, `ports/destination_database.ts`).
 *
 * @module
 */

/** How far one table of a long step has got. */
export interface ProgressReport {
  /** The source table. */
  readonly table: string;
  /** Rows read so far; `null` where the read does not count them (the CSV fast path). */
  readonly rows: number | null;
  readonly bytes: number;
  /**
   * Present once, when the table is complete. `sha512` is the SHA-512 of the table's own staged file
   * (one CSV file per table), or `null` where the table is not a file of its own (DuckDB, PostgreSQL);
   * only tables with a SHA-512 can be reused by a resumed run (`StageOptions.reuse` in `ports/destination.ts`).
   */
  readonly done?: { readonly sha512: string | null; readonly reused: boolean };
}

/** How a long step is stopped and how it reports progress. */
export interface LongWork {
  /** Aborting it stops the work at the next point that checks it (at least between tables). */
  readonly signal?: AbortSignal | undefined;
  /** Called as tables are done; never with row data. */
  readonly onProgress?: ((progress: ProgressReport) => void) | undefined;
}
