/**
 * Use case: make everything a run staged visible to researchers (`POST /data-publish/publish`).
 *
 * @module
 */
import {
  type Destination,
  type LongWork,
  type Published,
  StagingChangedError,
} from "../ports/destination.ts";
import type { ReleaseSigning } from "../domain/release_signing.ts";
import type { ProjectLocks } from "./project_locks.ts";

/** What to publish: every dataset of one project start. */
export interface PublishRequest {
  readonly project_name: string;
  readonly project_start_time: string;
  /**
   * The staging digest the approvers saw (`Destination.stagingDigest`), sent by the gateway: publish
   * only if staging still hashes to it. Absent: publish whatever is staged.
   */
  readonly expected_staging_digest?: string | undefined;
}

/**
 * Publishes the run on its destination, under the project's lock. With `expected_staging_digest`, the
 * staging digest is compared under the lock first, before anything moves. With `ports.release`, the
 * release's crate is built and its receipt signed (`docs/provenance.md`); the provenance is gathered
 * under the lock too, so it describes exactly what is published.
 *
 * @returns the reply's items, the audit record's output and the log fields.
 * @throws {NothingStagedError} when the run staged nothing.
 * @throws {StagingChangedError} when staging no longer hashes to `expected_staging_digest`.
 */
export async function publishDataset(
  request: PublishRequest,
  ports: {
    readonly destination: Destination;
    readonly locks: ProjectLocks;
    /** Gathers the release's provenance and names its signer; without it, no crate or receipt. */
    readonly release?: (() => Promise<ReleaseSigning>) | undefined;
  },
  work: LongWork = {},
): Promise<Published> {
  work.signal?.throwIfAborted();
  const run = { project: request.project_name, startTime: request.project_start_time };
  return await ports.locks.run(ports.destination.lockKey(request.project_name), async () => {
    work.signal?.throwIfAborted();
    const expected = request.expected_staging_digest;
    if (expected !== undefined && await ports.destination.stagingDigest(run) !== expected) {
      throw new StagingChangedError(run);
    }
    const release = await ports.release?.();
    return await ports.destination.publish(run, release);
  });
}
