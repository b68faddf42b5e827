/**
 * Use case: extract the approved tables of one dataset into a destination's staging area
 * (`POST /data-publish/package`).
 *
 * @module
 */
import { tableExtracts } from "../domain/catalog.ts";
import type { DatasetMetadata, Source } from "../domain/contract.ts";
import type { Destination, LongWork, Staged, StageOptions } from "../ports/destination.ts";
import type { ProjectLocks } from "./project_locks.ts";
import { describeSelection, type SourceOpener, watchedReader } from "./source.ts";

/** What to package. */
export interface PackageRequest {
  readonly source: Source;
  readonly dataset: DatasetMetadata;
  readonly project_name: string;
  readonly project_start_time: string;
}

/** What packaging needs: the destination the request names, the source opener and the project locks. */
export interface PackagePorts {
  readonly destination: Destination;
  readonly openSource: SourceOpener;
  /** Requests for the same project on the same destination never interleave. */
  readonly locks: ProjectLocks;
}

/** How much to do at once (the service's configuration). */
export type PackageLimits = Omit<StageOptions, keyof LongWork>;

/**
 * Opens the source, describes the requested tables and stages them, under the project's lock. The
 * signal is checked before the source is opened, before staging and between tables; progress is
 * reported per table (`watchedReader`).
 *
 * @returns the reply's items, the audit record's output and the log fields.
 */
export async function packageDataset(
  request: PackageRequest,
  ports: PackagePorts,
  options: PackageLimits & LongWork,
): Promise<Staged> {
  const { signal, onProgress, ...limits } = options;
  const { dataset } = request;
  signal?.throwIfAborted();
  await using db = await ports.openSource(request.source, dataset.schema_name);
  const extracts = tableExtracts(await describeSelection(db, dataset));
  const reader = watchedReader(db, { signal, onProgress });
  return await ports.locks.run(ports.destination.lockKey(request.project_name), () => {
    signal?.throwIfAborted();
    return ports.destination.stage(
      { project: request.project_name, startTime: request.project_start_time },
      dataset.schema_name,
      reader,
      extracts,
      { ...limits, signal, onProgress },
    );
  });
}
