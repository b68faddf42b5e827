/**
 * A filestore destination on a local or mounted filesystem (`TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH`).
 *
 * @module
 */
import { access, constants, stat } from "node:fs/promises";
import { join } from "node:path";
import { type Filestore, FilestoreNotReadyError } from "../../ports/filestore.ts";

const AREAS = ["staging", "production"] as const;

/** A filestore whose `staging/` and `production/` are directories under one base path. */
export class LocalFilestore implements Filestore {
  readonly #base: string;

  /** @param base the mount path; it is not touched until a method is called. */
  constructor(base: string) {
    this.#base = base;
  }

  async checkReady(): Promise<void> {
    for (const area of AREAS) {
      const path = join(this.#base, area);
      try {
        if (!(await stat(path)).isDirectory()) {
          throw new FilestoreNotReadyError(`Cannot use the ${area} area: it is not a directory`);
        }
      } catch (e) {
        if (e instanceof FilestoreNotReadyError) throw e;
        throw new FilestoreNotReadyError(`Cannot use the ${area} area: it does not exist`, {
          cause: e,
        });
      }
      try {
        await access(path, constants.W_OK);
      } catch (e) {
        throw new FilestoreNotReadyError(`Cannot use the ${area} area: it is not writable`, {
          cause: e,
        });
      }
    }
  }
}
