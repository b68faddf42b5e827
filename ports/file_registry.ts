/**
 * The port for the processed-file registry of HTTP-file sources (`domain/http_file_sources.ts`): per
 * source and URL, what a run last did with the file, so that the next run asks only for what is new or
 * changed and retries failed files after their backoff. Kept beside the runs (the same SQLite state
 * directory, or the same PostgreSQL database); every adapter passes
 * `tests/contracts/file_registry_contract.ts`.
 *
 * @module
 */
import { AppError, type AppErrorOptions } from "../domain/errors.ts";
import type { FileRecord } from "../domain/http_file_sources.ts";

/** Keeps file records. Every method may reject with {@link FileRegistryUnavailableError}. */
export interface FileRegistry extends AsyncDisposable {
  /** Every record of a source, sorted by URL. */
  records(source: string): Promise<FileRecord[]>;

  /**
   * Stores records, each replacing the record of its source and URL, all at once (a run records its
   * files when they are staged: all or none).
   *
   * @throws {Error} (a zod error) when a record is not valid; nothing is stored.
   */
  put(records: readonly FileRecord[]): Promise<void>;

  /** Releases the storage. Idempotent. */
  close(): Promise<void>;
}

/** The registry cannot be read or written (to be a 503). */
export class FileRegistryUnavailableError extends AppError {
  readonly code = "file_registry_unavailable";

  constructor(options?: AppErrorOptions) {
    super("The file registry is unavailable", options);
  }
}
