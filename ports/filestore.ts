/**
 * A filestore destination: one mounted storage account with `staging/` and `production/` inside.
 *
 * @module
 */
import { AppError } from "../domain/errors.ts";

/** One filestore destination. */
export interface Filestore {
  /**
   * Checks that the storage is usable: `staging/` and `production/` exist and can be written.
   *
   * @throws {FilestoreNotReadyError} naming the first check that failed.
   */
  checkReady(): Promise<void>;
}

/** The filestore is missing or not writable. The message names the area, never the mount path. */
export class FilestoreNotReadyError extends AppError {
  readonly code = "filestore_not_ready";
}

/** The request names a filestore destination that this deployment has not configured. */
export class UnknownDestinationError extends AppError {
  readonly code = "unknown_destination";

  constructor(readonly destinationName: string) {
    super(
      `Cannot find filestore destination "${destinationName}": TARGET_STORAGE_ACCOUNT_${destinationName.toUpperCase()}_SDE_MNT_PATH is not set`,
    );
  }
}
