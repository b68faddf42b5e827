/**
 * Use case: make everything a run staged visible to researchers (`POST /data-publish/publish`).
 *
 * @module
 */
import type { Destination, LongWork, Published } from "../ports/destination.ts";
import type { ProjectLocks } from "./project_locks.ts";

/** What to publish: every dataset of one project start. */
export interface PublishRequest {
  readonly project_name: string;
  readonly project_start_time: string;
}

/**
 * Publishes the run on its destination, under the project's lock.
 *
 * @returns the reply's items, the audit record's output and the log fields.
 * @throws {NothingStagedError} when the run staged nothing.
 */
export async function publishDataset(
  request: PublishRequest,
  ports: { readonly destination: Destination; readonly locks: ProjectLocks },
  work: LongWork = {},
): Promise<Published> {
  work.signal?.throwIfAborted();
  return await ports.locks.run(ports.destination.lockKey(request.project_name), () => {
    work.signal?.throwIfAborted();
    return ports.destination.publish({
      project: request.project_name,
      startTime: request.project_start_time,
    });
  });
}
