/**
 * The upload data sources of the quarantine area as the operator uses them (`docs/operator.md`,
 * "Uploaded resources"): it creates the data source an `Uploaded` resource asks for, follows its state
 * and files into the resource's status, and removes it when the resource is deleted before anything
 * was staged.
 *
 * @module
 */
import type { UploadedDataSource } from "../domain/upload_files.ts";
import type { QuarantinedFileView } from "../domain/workspace_upload.ts";

/** Upload data sources and their files. */
export interface UploadDataSources {
  /** The data source `id`, or `undefined`. */
  source(id: string): Promise<UploadedDataSource | undefined>;
  /**
   * Records a new data source unless one with its id exists (left as it is).
   *
   * @returns whether this call created it.
   */
  createSource(source: UploadedDataSource): Promise<boolean>;
  /** The uploads (finished or not) of data source `id`, oldest first. */
  files(id: string): Promise<readonly QuarantinedFileView[]>;
  /** Removes data source `id` and every upload of it. */
  removeSource(id: string): Promise<void>;
}
