/**
 * Where a dataset goes: a filestore (BagIt bags) or the PostgreSQL destination + OPAL. The use cases
 * (`application/`) only ever talk to this port, so no route asks which kind of destination it has
 * (style guide §2.26). Revoking a publication (`revoke`) removes what publishing made visible (issue 16).
 *
 * @module
 */
import type { AuditOutput } from "../domain/audit.ts";
import type { ReadRowsOptions, TableExtract, TableReader } from "../domain/catalog.ts";
import type { PublishPayload, StageTransferPayload } from "../domain/contract.ts";
import type { DatasetDisclosure } from "../domain/disclosure.ts";
import { AppError } from "../domain/errors.ts";
import type { LongWork } from "../domain/long_work.ts";
import type { RunRef } from "../domain/staging_layout.ts";
import type {
  RecordedItem,
  Removed,
  RevocationItem,
  RevocationMode,
} from "../domain/revocation.ts";
import type { StagingSummary } from "../domain/staging_manifest.ts";
import type { PublishedRelease, ReleaseSigning } from "../domain/release_signing.ts";

export type { LongWork, ProgressReport } from "../domain/long_work.ts";

/**
 * How much to stage at once. The read limits (`batchBytes`, `maxValueBytes`) are passed on to every read
 * of the source.
 */
export interface StageOptions extends ReadRowsOptions, LongWork {
  /** How many tables to extract at the same time (at least 1). */
  readonly concurrency: number;
  /** Rows per batch read from a source that has no CSV fast path. */
  readonly batchRows: number;
  /**
   * Tables an interrupted run of the same request already staged, by table name, with the SHA-512
   * recorded when each was done. A destination that can prove a left-over file still has exactly these
   * bytes keeps it instead of extracting the table again (reporting `done.reused: true`); any other
   * table is extracted. Absent or empty: extract everything.
   */
  readonly reuse?: ReadonlyMap<string, string> | undefined;
  /**
   * The dataset's disclosure pre-checks, read once every table is written (`null`: checks off, or a
   * table kept from an interrupted run unread). A destination that records them keeps them with the
   * staged dataset.
   */
  readonly checks?: (() => DatasetDisclosure | null) | undefined;
}

/** What staging a dataset produced: the reply's items, the audit record's output and the log fields. */
export interface Staged {
  readonly dataRetrieved: StageTransferPayload["data_retrieved"];
  readonly audit: AuditOutput;
  /** What the `packaged` log line adds (names and checksums, never row data or secrets). */
  readonly logFields: Readonly<Record<string, unknown>>;
}

/** What publishing a run produced: the reply's items, the audit record's output and the log fields. */
export interface Published {
  readonly dataPublished: PublishPayload["data_published"];
  readonly audit: AuditOutput;
  /** What the `published` log line adds. */
  readonly logFields: Readonly<Record<string, unknown>>;
  /** The release's crate and signed receipt, when the publish was given a {@link ReleaseSigning}. */
  readonly release?: PublishedRelease | undefined;
}

/** How a destination revokes a run (`Destination.revoke`). */
export interface RevokeOptions {
  /** For a filestore: delete the files, or move them to the owner-only `revoked/` area. */
  readonly mode: RevocationMode;
  /** The release being revoked (names the quarantine folder). */
  readonly releaseId: string;
  /** Aborting it stops the revocation between items; revoking again finishes it. */
  readonly signal?: AbortSignal | undefined;
  /**
   * Records an item durably (its SHA-512 and bytes, or its rows) before it is removed; the destination
   * waits for it, and removes nothing it could not record.
   */
  readonly record: (item: RevocationItem, value: RecordedItem) => Promise<void>;
}

/** One destination a request can name. */
export interface Destination {
  /**
   * What a project occupies on this destination: requests with the same key never interleave (e.g. the
   * folder name as a case-insensitive share compares it, or the schemas named after the project).
   */
  lockKey(project: string): string;
  /**
   * Proves the destination is usable now.
   *
   * @throws {AppError} a typed error naming what is wrong (not ready, unreachable, not configured).
   */
  checkReady(): Promise<void>;
  /**
   * Extracts `extracts` from `source` into the run's staging area, replacing what this dataset (schema)
   * staged before. Nothing is visible to researchers until {@link Destination.publish}.
   */
  stage(
    run: RunRef,
    schemaName: string,
    source: TableReader,
    extracts: readonly TableExtract[],
    options: StageOptions,
  ): Promise<Staged>;
  /**
   * The digest of what the run has staged now: it changes whenever a dataset of the run is packaged
   * again, and at no other time. The gateway binds a `publish` approval to it.
   *
   * @returns `null` when the run has nothing staged.
   */
  stagingDigest(run: RunRef): Promise<string | null>;
  /** The digest and the staged tables' disclosure pre-checks, as approvers see them. */
  staging(run: RunRef): Promise<StagingSummary>;
  /**
   * Makes everything the run staged visible to researchers. With `release`, it also builds the release's
   * RO-Crate and signs its receipt (`docs/provenance.md`), kept with the release (a filestore's bag) and
   * returned. Publishing a run again with nothing new staged returns the release as it was.
   *
   * @throws {NothingStagedError} (`ports/filestore.ts`) when the run staged nothing.
   */
  publish(run: RunRef, release?: ReleaseSigning): Promise<Published>;
  /**
   * Removes what the run published and staged: a filestore's production and staging folders; the
   * PostgreSQL destination's OPAL resources (with the group's grants and the group once the project has
   * no resource left) and its tables. Every step is idempotent: revoking again finishes an interrupted
   * revocation, and revoking a revoked run removes nothing.
   *
   * @returns what this call removed (earlier calls' removals are in what they recorded).
   */
  revoke(run: RunRef, options: RevokeOptions): Promise<Removed>;
}

/** The request names the PostgreSQL destination, but this deployment has none. */
export class PostgresqlDestinationNotConfiguredError extends AppError {
  readonly code = "destination_not_configured";

  constructor() {
    super(
      'Cannot use destination type "postgresql": this deployment has none (DESTINATION_POSTGRESQL_HOST is not set)',
    );
  }
}

/**
 * The publish request carried the staging digest its approvers saw, and staging no longer hashes to it
 * (a dataset was packaged again, or the run was published). Nothing was published.
 */
export class StagingChangedError extends AppError {
  readonly code = "staging_changed";

  constructor(readonly run: RunRef) {
    super(
      `Cannot publish project "${run.project}" started ${run.startTime}: staging changed since it was ` +
        "approved; the approvers have to see it again",
    );
  }
}
