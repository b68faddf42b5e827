/**
 * `Uploaded` AnalyticsWorkspaceDataSource resources (`docs/operator.md`, "Uploaded resources"): the
 * upload data source a resource asks for (the same one the dashboard makes, {@link newUploadedDataSource},
 * with the resource's uid as its id), and the resource's status as read from that data source and its
 * files in the quarantine area. Pure: no IO.
 *
 * @module
 */
import type { TabularReport } from "./tabular_checks.ts";
import {
  newUploadedDataSource,
  type UploadedDataSource,
  UploadRefusedError,
} from "./upload_files.ts";
import {
  type DataSourceResource,
  type DataSourceStatus,
  type PublishedFile,
} from "./workspace_datasource.ts";

/** The reasons of an `Uploaded` resource's status (besides `INVALID_RESOURCE`). */
export const UPLOAD_REASON_CODES = [
  "UPLOADED_NOT_SUPPORTED",
  "INVALID_UPLOAD",
  "INVALID_PROJECT",
  "UPLOAD_SPEC_CHANGED",
  "UPLOAD_SOURCE_MISSING",
  "WAITING_FOR_FILES",
  "UPLOADING",
  "FILE_CHECKS_FAILED",
  "FILES_UPLOADED",
  "AWAITING_APPROVAL",
  "AWAITING_PUBLICATION",
  "PUBLISHED",
] as const;

/** An upload reason code. */
export type UploadReasonCode = (typeof UPLOAD_REASON_CODES)[number];

/** A failure an `Uploaded` resource can recover from without a new generation (it stays followed). */
export const RECOVERABLE_UPLOAD_FAILURES: readonly string[] = ["FILE_CHECKS_FAILED"];

/** What an `Uploaded` resource is checked against. */
export interface UploadPolicy {
  /** The filestore destinations a data source may be published into (the approval policy's). */
  readonly destinations: readonly string[];
}

/** A refused `Uploaded` resource. */
export interface UploadRefusal {
  readonly reason: UploadReasonCode;
  readonly message: string;
}

/** The id of a resource's upload data source: its uid's 32 hex digits (one per resource, for ever). */
export function uploadSourceIdOf(uid: string): string {
  return uid.toLowerCase().replace(/[^0-9a-f]/g, "").slice(0, 32).padEnd(32, "0");
}

/**
 * The data source an `Uploaded` resource asks for: its id from the uid, the project (`project.id`), the
 * destination and uploader (`upload`), created (and so started) when the resource was. Or why not:
 * `INVALID_UPLOAD` (no `upload`, or a destination the policy does not list), `INVALID_PROJECT`.
 */
export function planUpload(
  resource: DataSourceResource,
  policy: UploadPolicy,
): UploadedDataSource | UploadRefusal {
  const { spec } = resource;
  if (spec.upload === undefined) {
    return {
      reason: "INVALID_UPLOAD",
      message: "An Uploaded resource needs upload.destination and upload.uploader (id, issuer)",
    };
  }
  const project = spec.project?.id ?? "";
  if (project.trim() === "") {
    return { reason: "INVALID_PROJECT", message: "project.id is required" };
  }
  const { destination, uploader } = spec.upload;
  try {
    return newUploadedDataSource({
      id: uploadSourceIdOf(resource.metadata.uid),
      projectName: project,
      destination,
      destinations: policy.destinations,
      owner: { id: uploader.id, issuer: uploader.issuer, name: uploader.name ?? uploader.id },
      at: new Date(Date.parse(resource.metadata.creationTimestamp) || 0),
    });
  } catch (e) {
    if (!(e instanceof UploadRefusedError)) throw e;
    return e.message.startsWith("The project name")
      ? { reason: "INVALID_PROJECT", message: `project.id: ${e.message}` }
      : {
        reason: "INVALID_UPLOAD",
        message: `upload.destination: ${e.message}; expected one of ${
          policy.destinations.join(", ") || "(none configured)"
        }`,
      };
  }
}

/**
 * Why an existing data source no longer matches its resource (`UPLOAD_SPEC_CHANGED`): the project,
 * destination and uploader are fixed once it exists.
 */
export function uploadSpecChange(
  wanted: UploadedDataSource,
  existing: UploadedDataSource,
): UploadRefusal | undefined {
  const changed = [
    wanted.project_name !== existing.project_name ? "project.id" : undefined,
    wanted.destination !== existing.destination ? "upload.destination" : undefined,
    wanted.owner.id !== existing.owner.id || wanted.owner.issuer !== existing.owner.issuer
      ? "upload.uploader"
      : undefined,
  ].filter((f) => f !== undefined);
  if (changed.length === 0) return undefined;
  return {
    reason: "UPLOAD_SPEC_CHANGED",
    message: `${
      changed.join(", ")
    } cannot change once the data source exists (${existing.id}); delete the resource and create a new one`,
  };
}

/** A file of a data source as the quarantine area reports it. */
export interface QuarantinedFileView {
  readonly name: string;
  readonly size: number;
  readonly offset: number;
  readonly result: {
    readonly sha512: string;
    readonly bytes: number;
    readonly refusal: string | null;
    readonly checks: unknown;
  } | null;
}

/**
 * The status of an `Uploaded` resource from its data source and files:
 *
 * | state of the data source           | dataState | reason                 |
 * | ---------------------------------- | --------- | ---------------------- |
 * | open, no file                      | Pending   | `WAITING_FOR_FILES`    |
 * | open, a file still arriving        | Pending   | `UPLOADING`            |
 * | open, a file refused or in error   | Failed    | `FILE_CHECKS_FAILED`   |
 * | open, every file in and checked    | Pending   | `FILES_UPLOADED`       |
 * | ready (its release awaits gates)   | Pending   | `AWAITING_APPROVAL`    |
 * | staged (awaits the publish gates)  | Running   | `AWAITING_PUBLICATION` |
 * | published                          | Completed | `PUBLISHED`            |
 */
export function uploadStatusOf(
  source: UploadedDataSource,
  files: readonly QuarantinedFileView[],
): DataSourceStatus & { reason: UploadReasonCode } {
  const base = {
    uploadId: source.id,
    ...(source.release_id === null ? {} : { releaseId: source.release_id }),
    files: files.filter((f) => f.result !== null && f.result.refusal === null).map((f) =>
      ({ path: f.name, bytes: f.result!.bytes, sha512: f.result!.sha512 }) satisfies PublishedFile
    ).sort((a, b) => a.path < b.path ? -1 : 1),
  };
  const count = `${files.length} file(s)`;
  switch (source.state) {
    case "published":
      return {
        ...base,
        dataState: "Completed",
        stage: "Published",
        reason: "PUBLISHED",
        message: `${count} published into ${source.destination} (release ${source.release_id})`,
      };
    case "staged":
      return {
        ...base,
        dataState: "Running",
        stage: "Staged",
        reason: "AWAITING_PUBLICATION",
        message: `${count} staged; the release ${source.release_id} awaits its publish gates`,
      };
    case "ready":
      return {
        ...base,
        dataState: "Pending",
        stage: "Ready",
        reason: "AWAITING_APPROVAL",
        message: `${count} marked ready; the release ${source.release_id} awaits approval`,
      };
  }
  if (files.length === 0) {
    return {
      ...base,
      dataState: "Pending",
      stage: "AwaitingFiles",
      reason: "WAITING_FOR_FILES",
      message: `Waiting for ${source.owner.name} to upload files to data source ${source.id}`,
    };
  }
  const failing = files.find((f) =>
    f.result !== null &&
    (f.result.refusal !== null ||
      ((f.result.checks as TabularReport | null)?.errors.length ?? 0) > 0)
  );
  if (failing !== undefined) {
    const why = failing.result!.refusal ??
      (failing.result!.checks as TabularReport).errors[0] ?? "";
    return {
      ...base,
      dataState: "Failed",
      stage: "Checked",
      reason: "FILE_CHECKS_FAILED",
      message: `${failing.name} failed its checks: ${why}`,
    };
  }
  const arriving = files.filter((f) => f.result === null);
  if (arriving.length > 0) {
    return {
      ...base,
      dataState: "Pending",
      stage: "Uploading",
      reason: "UPLOADING",
      message: `${files.length - arriving.length} of ${count} uploaded in full`,
    };
  }
  return {
    ...base,
    dataState: "Pending",
    stage: "Checked",
    reason: "FILES_UPLOADED",
    message: `${count} uploaded and checked; the uploader marks the data source ready`,
  };
}
