/**
 * A filestore destination: one mounted storage account with `staging/` and `production/` inside. Staging
 * holds each run's extracted datasets; publishing turns a run's staging into a verified BagIt bag in
 * production, all at once.
 *
 * @module
 */
import type { DatasetDisclosure } from "../domain/disclosure.ts";
import { AppError } from "../domain/errors.ts";
import type { RevocationMode, RevokedFile } from "../domain/revocation.ts";
import type { RunRef, StagedFile, StagingWork } from "../domain/staging_layout.ts";
import type { StagedTable, StagingSummary } from "../domain/staging_manifest.ts";
import type { PublishedRelease, ReleaseSigning } from "../domain/release_signing.ts";

/** A published payload file, as the publish reply lists it. */
export interface PublishedFile {
  /** `data/outputs/...`, relative to the run folder. */
  readonly path: string;
  readonly sha512: string;
  readonly bytes: number;
}

/** How a run is revoked (`Filestore.revoke`). */
export interface RevokeFilesOptions {
  /** `delete` removes the files; `quarantine` moves them to the owner-only `revoked/` area. */
  readonly mode: RevocationMode;
  /** The release, which names the run's folder in the `revoked/` area. */
  readonly releaseId: string;
  /**
   * Called with each file, its SHA-512 and size, before it is deleted or moved; the revocation waits for
   * it (it records the file durably). When it rejects, the file stays.
   */
  readonly onRemoving: (file: RevokedFile) => Promise<void>;
  /** Aborting it stops the revocation between files; calling `revoke` again finishes it. */
  readonly signal?: AbortSignal | undefined;
}

/** What {@link Filestore.revoke} did this time. */
export interface RevokedFiles {
  readonly mode: "deleted" | "quarantined";
  /** The files removed (or moved) by this call, sorted by area then path. */
  readonly files: readonly RevokedFile[];
}

/** One filestore destination. */
export interface Filestore {
  /**
   * Checks that the storage is usable: `staging/` and `production/` exist and can be written.
   *
   * @throws {FilestoreNotReadyError} naming the first check that failed.
   */
  checkReady(): Promise<void>;

  /**
   * Stages one dataset of a run. `write` gets an empty private directory; when it resolves, its files replace
   * everything the dataset staged before (and nothing of other datasets), and the staging manifest records
   * their checksums. When it rejects, nothing in staging changes.
   *
   * Resuming: when `write` rejects with a `RunInterruptedError` (`domain/interruption.ts`, the signal's
   * reason at shutdown), the files it finished are kept aside as the dataset's left-overs (never in the
   * manifest, never published), where the next stage of the dataset can keep them through
   * `StagingWork.reuse`. Any other end of a stage (success, cancel, failure) removes the dataset's
   * left-overs.
   *
   * @param run the project and start time.
   * @param dataset the dataset's schema name, which owns the files.
   * @param write writes the dataset's files and returns them with their checksums.
   * @param checks called once `write` resolved: the dataset's disclosure pre-checks (or `null`), recorded
   *   in the signed manifest with a fresh stage id (so the staging digest changes with every stage).
   * @param tables the tables the dataset releases (selected columns, source types), recorded in the
   *   manifest for the release's RO-Crate.
   * @returns every file the dataset now has, sorted by path.
   * @throws {FilestoreNotReadyError} when staging cannot be written.
   * @throws {UnsafeFilesystemEntryError} when a folder or file of the run is a link, a hard link or not
   *   what it must be, or the writer left something other than plain files; nothing in staging changes.
   */
  stage(
    run: RunRef,
    dataset: string,
    write: (work: StagingWork) => Promise<StagedFile[]>,
    checks?: () => DatasetDisclosure | null,
    tables?: readonly StagedTable[],
  ): Promise<StagedFile[]>;

  /**
   * What the run has staged now: the staging digest (`stagingDigest` in `domain/staging_manifest.ts`)
   * and each dataset's disclosure pre-checks, from the verified staging manifest.
   *
   * @throws {StagingIntegrityError} when the staging manifest is not signed by this service for this run.
   * @throws {UnsafeFilesystemEntryError} when a folder of the run is a link or not a folder.
   */
  staging(run: RunRef): Promise<StagingSummary>;

  /**
   * Publishes a run: copies its staged files into a new BagIt bag on the production filesystem, verifies
   * every copy against the staging manifest, writes the tag files (with `disclosure-checks.json` when
   * any dataset has pre-checks), swaps the bag into place, then removes staging. Publishing a run
   * that is already published and has nothing new staged returns the published files again.
   *
   * With `release`, the bag also gets `ro-crate-metadata.json` (listed in the tag manifest) and
   * `release-receipt.jws` (the receipt over the tag manifest's SHA-512, not listed), both written into the
   * bag before the swap, so a production bag never lacks them.
   *
   * @returns the published payload files, sorted by path.
   * @throws {NothingStagedError} when the run has neither staged nor published files.
   * @throws {StagingIntegrityError} when the staging manifest is not signed by this service for this run,
   *   or a staged file does not match its manifest entry; production is unchanged.
   * @throws {UnsafeFilesystemEntryError} when a folder or file of the run, in staging or production, is a
   *   link, a hard link or not what it must be; production is unchanged.
   */
  publish(run: RunRef, release?: ReleaseSigning): Promise<PublishedFile[]>;

  /**
   * The crate and receipt of the run's production bag, as written at publish.
   *
   * @returns `undefined` when the run is not published, or its bag has no receipt (published before
   *   receipts, or without `release`).
   * @throws {UnsafeFilesystemEntryError} when a folder or tag file of the bag is a link or not what it must be.
   * @throws {StagingIntegrityError} when the bag's crate or receipt is not what a publish writes.
   */
  publishedRelease(run: RunRef): Promise<PublishedRelease | undefined>;

  /**
   * Sweeps what an interrupted `stage` or `publish` left behind: private work directories are removed (the
   * files a killed stage wrote for its dataset kept aside as left-overs for a resumed run, as when it is
   * interrupted), left-overs unchanged for a day are removed, and a production run whose swap was cut
   * short is restored to its previous complete bag. Links are never followed or removed.
   *
   * @returns the swept or restored paths, relative to the base.
   */
  recover(): Promise<string[]>;

  /**
   * Revokes a run: its production folder and its staging folder are first renamed, at once, to a hidden
   * name researchers do not see (`.revoking-{start}`), then each file is hashed, reported through
   * `options.onRemoving`, and deleted, or with `quarantine` the folder is moved to
   * `revoked/{project}/{start}-{release}/{area}`. Calling it again (after a crash, or after it finished)
   * finishes what is left and reports only files not removed yet; a run never published revokes its
   * staging only, or nothing. {@link recover} never removes a hidden revoking folder.
   *
   * @throws {UnsafeFilesystemEntryError} when a folder or file of the run is a link, a hard link or not
   *   what it must be; nothing of that folder is removed.
   */
  revoke(run: RunRef, options: RevokeFilesOptions): Promise<RevokedFiles>;
}

/** The filestore is missing or not writable. The message names the area, never the mount path. */
export class FilestoreNotReadyError extends AppError {
  readonly code = "filestore_not_ready";
}

/** The request names a filestore destination that this deployment has not configured. */
export class UnknownDestinationError extends AppError {
  readonly code = "unknown_destination";

  constructor(readonly destinationName: string) {
    super(
      `Cannot find filestore destination "${destinationName}": TARGET_STORAGE_ACCOUNT_${destinationName.toUpperCase()}_SDE_MNT_PATH is not set`,
    );
  }
}

/** Nothing is staged or published for the run. */
export class NothingStagedError extends AppError {
  readonly code = "nothing_staged";

  constructor(readonly run: RunRef) {
    super(
      `Cannot publish project "${run.project}" started ${run.startTime}: nothing is staged; package it first`,
    );
  }
}

/**
 * A staged file differs from what was recorded when it was written, or the staging manifest itself is not
 * one this service signed for the run (edited, moved from another run, written by an older version or
 * signed with a key since rotated).
 */
export class StagingIntegrityError extends AppError {
  readonly code = "staging_integrity";

  constructor(readonly path: string, readonly reason: string, options?: ErrorOptions) {
    super(`Cannot use staged file "${path}": it ${reason}; package the dataset again`, options);
  }
}

/**
 * A link, a hard link or another unexpected entry where the filestore needs a folder or a plain file. The
 * filestore never follows it, and refuses before changing anything. The message names the path relative
 * to the filestore base, never the base.
 */
export class UnsafeFilesystemEntryError extends AppError {
  readonly code = "unsafe_filesystem_entry";

  /**
   * @param path relative to the filestore base, e.g. `staging/Pr042/20250611_093000/data/outputs`.
   * @param reason completes "it ...", e.g. `is a symbolic link`.
   */
  constructor(readonly path: string, readonly reason: string, options?: ErrorOptions) {
    super(
      `Cannot use filestore entry "${path}": it ${reason}; the filestore never follows links, so an ` +
        "administrator has to remove it",
      options,
    );
  }
}
