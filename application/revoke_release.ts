/**
 * Use case: revoke a release on the publish service (`POST /data-publish/revoke`, issue 16). The
 * destination removes what the run published and staged, recording each item (a file's SHA-512 and
 * size, a table's rows, an OPAL resource or group) in the run's progress, durably, before removing it;
 * the deletion certificate is built from those records, so a revocation resumed after a crash still
 * lists what an earlier attempt removed.
 *
 * @module
 */
import type { ProgressReport } from "../domain/long_work.ts";
import {
  type DeletionCertificate,
  deletionCertificate,
  parseRevocationEntryName,
  type PublishServiceRevokeRequest,
  type RecordedItem,
  type Removed,
  revocationEntryName,
  type RevocationMode,
  type RevokedFile,
  type RevokedTable,
} from "../domain/revocation.ts";
import type { Destination } from "../ports/destination.ts";
import type { ProjectLocks } from "./project_locks.ts";

/** What revoking needs. */
export interface RevokeReleasePorts {
  readonly destination: Destination;
  readonly locks: ProjectLocks;
  /** `REVOCATION_MODE` for filestores; the PostgreSQL destination always deletes. */
  readonly mode: RevocationMode;
  /** The clock. Default `new Date()`. */
  readonly now?: (() => Date) | undefined;
}

/** How the revocation is run: the run's signal, progress and checkpoint, and what was recorded before. */
export interface RevocationWork {
  readonly signal?: AbortSignal | undefined;
  /** Gets one `done` report per item, before the item is removed. */
  readonly onProgress?: ((progress: ProgressReport) => void) | undefined;
  /** Resolves once every report so far is stored; called after each report, before the removal. */
  readonly checkpoint?: (() => Promise<void>) | undefined;
  /** What earlier attempts of this revocation recorded: progress entry name → item. */
  readonly recorded?: ReadonlyMap<string, RecordedItem> | undefined;
  /** When the revocation was asked for (the certificate's `started_at`), an ISO instant. */
  readonly startedAt: string;
}

/** What a revocation produced: its certificate, and the log fields. */
export interface Revoked {
  readonly certificate: DeletionCertificate;
  readonly logFields: Readonly<Record<string, unknown>>;
}

/**
 * Revokes the run a release published, under the project's lock, and returns its certificate: what
 * this attempt removed together with what earlier attempts recorded.
 */
export async function revokeRelease(
  request: PublishServiceRevokeRequest,
  ports: RevokeReleasePorts,
  work: RevocationWork,
): Promise<Revoked> {
  const { signal } = work;
  signal?.throwIfAborted();
  const now = ports.now ?? (() => new Date());
  const recorded = work.recorded ?? new Map<string, RecordedItem>();
  const report = (name: string, value: RecordedItem, reused: boolean) =>
    work.onProgress?.({
      table: name,
      rows: value.rows,
      bytes: value.bytes,
      done: { sha512: value.sha512, reused },
    });
  // What earlier attempts recorded goes into this run's progress too, so a later resume still has it.
  for (const [name, value] of recorded) report(name, value, true);
  if (recorded.size > 0) await work.checkpoint?.();

  const run = { project: request.project_name, startTime: request.project_start_time };
  const destination = ports.destination;
  const removed = await ports.locks.run(destination.lockKey(request.project_name), async () => {
    signal?.throwIfAborted();
    return await destination.revoke(run, {
      mode: request.destination.type === "filestore" ? ports.mode : "delete",
      releaseId: request.release_id,
      signal,
      record: async (item, value) => {
        report(revocationEntryName(item), value, false);
        await work.checkpoint?.();
      },
    });
  });
  const certificate = deletionCertificate(
    request,
    withRecorded(removed, recorded),
    { started_at: work.startedAt, removed_at: now().toISOString() },
  );
  return {
    certificate,
    logFields: {
      release_id: certificate.release_id,
      mode: certificate.mode,
      files: certificate.files.length,
      tables: certificate.tables.length,
      opal_resources: certificate.opal?.resources.length ?? 0,
    },
  };
}

/** What this attempt removed, plus the items earlier attempts recorded (this attempt's values win). */
export function withRecorded(
  removed: Removed,
  recorded: ReadonlyMap<string, RecordedItem>,
): Removed {
  const files = new Map<string, RevokedFile>();
  const tables = new Map<string, RevokedTable>();
  const resources = new Set(removed.opal?.resources ?? []);
  let project = removed.opal?.project ?? null;
  let group = removed.opal?.group ?? null;
  for (const [name, value] of recorded) {
    const item = parseRevocationEntryName(name);
    if (item === undefined) continue;
    if (item.kind === "file" && value.sha512 !== null) {
      files.set(name, {
        area: item.area,
        path: item.path,
        sha512: value.sha512,
        bytes: value.bytes,
      });
    } else if (item.kind === "table") {
      tables.set(name, { schema: item.schema, table: item.table, rows: value.rows });
    } else if (item.kind === "opal_resource") {
      project ??= item.project;
      resources.add(item.resource);
    } else if (item.kind === "opal_group") {
      project ??= item.project;
      group ??= item.group;
    }
  }
  for (const file of removed.files) {
    files.set(revocationEntryName({ kind: "file", ...file }), file);
  }
  for (const table of removed.tables) {
    tables.set(revocationEntryName({ kind: "table", ...table }), table);
  }
  return {
    mode: removed.mode,
    files: [...files.values()],
    tables: [...tables.values()],
    opal: project === null ? null : { project, resources: [...resources], group },
  };
}
