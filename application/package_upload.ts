/**
 * Stages the approved files of an uploaded data source (`docs/uploads.md`): each is copied from the
 * quarantine area into staging through `Filestore.stage`, hashed on the way, and refused (nothing
 * staged) unless its SHA-512 and size are exactly those recorded when it was uploaded, so what is later
 * published is the bytes the approvers saw. The files become the run's `uploads` dataset
 * (`data/outputs/uploads/<name>`), recorded in the signed staging manifest like any extract.
 *
 * @module
 */
import { join } from "node:path/posix";
import type { StagedFile } from "../domain/staging_layout.ts";
import { PAYLOAD_DIR, type RunRef } from "../domain/staging_layout.ts";
import { UPLOAD_DATASET, type UploadedFile, UploadIntegrityError } from "../domain/upload_files.ts";
import type { Filestore } from "../ports/filestore.ts";
import type { QuarantinedFiles } from "../ports/quarantine.ts";

/**
 * Stages `files` of run `run` from `quarantine` into `filestore`; returns the staged files.
 *
 * @throws {UploadIntegrityError} when a file's bytes differ from those recorded; nothing is staged.
 */
export async function packageUpload(
  filestore: Filestore,
  quarantine: QuarantinedFiles,
  run: RunRef,
  files: readonly UploadedFile[],
): Promise<StagedFile[]> {
  return await filestore.stage(run, UPLOAD_DATASET, async (work) => {
    const staged: StagedFile[] = [];
    for (const file of files) {
      const path = `${PAYLOAD_DIR}/${UPLOAD_DATASET}/${file.name}`;
      const copied = await quarantine.copyInto(file.id, join(work.dir, path));
      if (copied.sha512 !== file.sha512 || copied.bytes !== file.bytes) {
        throw new UploadIntegrityError(file.name);
      }
      staged.push({ path, sha512: copied.sha512, bytes: copied.bytes });
    }
    return staged;
  });
}
