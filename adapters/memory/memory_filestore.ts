/**
 * An in-memory filestore for tests and demos. Do not use it in production.
 *
 * @module
 */
import { type Filestore, FilestoreNotReadyError } from "../../ports/filestore.ts";

/** A filestore whose readiness a test can switch off. */
export class MemoryFilestore implements Filestore {
  #problem: string | undefined;

  /** Makes {@link checkReady} fail with this reason, or succeed again with `undefined`. */
  setProblem(problem: string | undefined): void {
    this.#problem = problem;
  }

  checkReady(): Promise<void> {
    if (this.#problem !== undefined) {
      return Promise.reject(new FilestoreNotReadyError(this.#problem));
    }
    return Promise.resolve();
  }
}
