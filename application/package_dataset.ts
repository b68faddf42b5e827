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
import type { TableDisclosure } from "../domain/disclosure.ts";
import { describeSelection, DisclosureChecks, type SourceOpener, watchedReader } from "./source.ts";

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

/**
 * How much to do at once (the service's configuration), the tables a resumed run may reuse, and the
 * disclosure pre-checks: on with a small-cell threshold, or off (`undefined`).
 */
export type PackageLimits = Omit<StageOptions, keyof LongWork | "checks"> & {
  readonly disclosure?: { readonly smallCellThreshold: number } | undefined;
};

/** How packaging is stopped and reports progress, and where the source's row estimates go. */
export interface PackageWork extends LongWork {
  /**
   * Called once before staging with the rows the source expects per table, when the source can
   * estimate them (`SourceDatabase.estimateRows`); an estimate that fails is skipped.
   */
  readonly onExpectedRows?: ((rows: ReadonlyMap<string, number>) => void) | undefined;
  /** Called with each table's disclosure pre-checks when its read ends (checks on). */
  readonly onTableChecked?: ((checks: TableDisclosure) => void) | undefined;
}

/**
 * Opens the source, describes the requested tables and stages them, under the project's lock. The
 * signal is checked before the source is opened, before staging and between tables; progress is
 * reported per table (`watchedReader`), after the source's row estimates (`onExpectedRows`). With
 * `options.disclosure`, every table read is checked (`DisclosureChecks`) and the checks are staged with
 * the dataset; each table's are also handed to `onTableChecked`. Tables in
 * `options.reuse` whose staged file still has that SHA-512 are kept instead of read again.
 *
 * @returns the reply's items, the audit record's output and the log fields.
 */
export async function packageDataset(
  request: PackageRequest,
  ports: PackagePorts,
  options: PackageLimits & PackageWork,
): Promise<Staged> {
  const { signal, onProgress, onExpectedRows, onTableChecked, disclosure, ...limits } = options;
  const { dataset } = request;
  signal?.throwIfAborted();
  await using db = await ports.openSource(request.source, dataset.schema_name);
  const extracts = tableExtracts(await describeSelection(db, dataset));
  if (onExpectedRows !== undefined && db.estimateRows !== undefined) {
    try {
      const tables = extracts.map((extract) => extract.table.name);
      onExpectedRows(await db.estimateRows(dataset.schema_name, tables));
    } catch {
      // An estimate is only a nicety for progress: packaging goes on without it.
    }
  }
  const checks = disclosure === undefined
    ? undefined
    : new DisclosureChecks(extracts, disclosure.smallCellThreshold, onTableChecked);
  const watched = watchedReader(db, { signal, onProgress });
  const reader = checks === undefined ? watched : checks.reader(watched);
  return await ports.locks.run(ports.destination.lockKey(request.project_name), () => {
    signal?.throwIfAborted();
    return ports.destination.stage(
      { project: request.project_name, startTime: request.project_start_time },
      dataset.schema_name,
      reader,
      extracts,
      { ...limits, signal, onProgress, checks: () => checks?.result() ?? null },
    );
  });
}
