/**
 * The one place where errors become HTTP replies: a table from error class to status, and the function
 * that turns any thrown value into a CR8TOR error envelope.
 *
 * @module
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  AppError,
  DatasetItemsNotFoundError,
  SourceTypeNotSupportedError,
  UnsafeTableNameError,
} from "../../domain/errors.ts";
import {
  FilestoreNotReadyError,
  NothingStagedError,
  StagingIntegrityError,
  UnknownDestinationError,
  UnsafeFilesystemEntryError,
} from "../../ports/filestore.ts";
import {
  DataSourceClosedError,
  DataSourceNotFoundError,
  NotUploaderError,
  UploadIntegrityError,
  UploadLimitReachedError,
  UploadNameUnsafeError,
  UploadRequestInvalidError,
  UploadsOffError,
  UploadStepRefusedError,
  UploadTooLargeError,
  UploadTypeRefusedError,
} from "../../domain/upload_files.ts";
import { ReleaseKeyUnavailableError } from "../../ports/release_signer.ts";
import { CsvLoadRefusedError } from "../../domain/csv_tables.ts";
import {
  InvalidSecretNameError,
  SecretNotFoundError,
  SecretStoreUnavailableError,
} from "../../ports/secret_store.ts";
import {
  SchemaNotFoundError,
  SourceUnavailableError,
  ValueTooLargeError,
} from "../../ports/source_database.ts";
import {
  DestinationNameReservedError,
  DestinationNameTooLongError,
  DestinationProjectConflictError,
  DestinationSchemaConflictError,
  DestinationTablesNotPackagedError,
  DestinationUnavailableError,
  DestinationValueError,
} from "../../ports/destination_database.ts";
import { OpalError } from "../../ports/opal_client.ts";
import { SourceNotAllowedError } from "../../domain/allowed_sources.ts";
import {
  InvalidOpalProjectNameError,
  InvalidOpalResourceError,
  OpalResourceNameClashError,
} from "../../domain/opal.ts";
import { OpalStepFailedError } from "../../application/opal_publication.ts";
import {
  DuckdbConstraintError,
  DuckdbMemoryError,
  DuckdbNameClashError,
  DuckdbValueError,
} from "../../adapters/duckdb/duckdb_errors.ts";
import {
  PostgresqlDestinationNotConfiguredError,
  StagingChangedError,
} from "../../ports/destination.ts";
import { RunInterruptedError } from "../../domain/interruption.ts";
import { InvalidRunTransitionError } from "../../domain/run.ts";
import {
  InvalidRunCursorError,
  RunAlreadyActiveError,
  RunNotFoundError,
  RunStoreUnavailableError,
  RunVersionConflictError,
} from "../../ports/run_store.ts";
import { NonceStoreFullError, NonceStoreUnavailableError } from "../../ports/nonce_store.ts";
import { RequestNotAuthenticatedError } from "../../ports/signed_request_verifier.ts";
import {
  DataRequestBodyError,
  DataTableAmbiguousError,
  DataTableNotFoundError,
} from "../../domain/data_api_scopes.ts";
import { InvalidRunQueryError, RunCancelledError } from "../../application/runs.ts";
import { RunExecutionFailedError } from "../../application/remote_runs.ts";
import {
  ApprovalRequiredError,
  AwaitingNeedsPersonError,
  InvalidReleaseQueryError,
  ReleaseRejectedError,
} from "../../application/releases.ts";
import {
  ApprovalTypeTakenError,
  InvalidExpiryError,
  InvalidReleaseTransitionError,
  NotEntitledError,
  NotEntitledToRevokeError,
  NothingStagedToApproveError,
  ReleaseClosedError,
  ReleaseNotPublishedError,
  ReleaseRevokedError,
  SelfApprovalError,
  UnknownApprovalTypeError,
  UnknownGateError,
} from "../../domain/release.ts";
import { PublicationRevokedError } from "../../domain/revocation.ts";
import { InvalidCursorError, InvalidReadLimitError } from "../../domain/release_read.ts";
import {
  ReleaseChangedError,
  ReleaseNotReadableError,
  ReleaseTableNotFoundError,
} from "../../ports/release_reader.ts";
import {
  InvalidReleaseCursorError,
  ReleaseNotFoundError,
  ReleaseStoreUnavailableError,
} from "../../ports/release_store.ts";
import {
  IdentityProviderUnavailableError,
  PersonTokenRejectedError,
} from "../../ports/identity.ts";
import {
  HttpSourceRunTimedOutError,
  UnknownHttpSourceError,
} from "../../domain/http_file_sources.ts";
import { HttpIndexUnavailableError } from "../../application/fetch_http_files.ts";
import { FileRegistryUnavailableError } from "../../ports/file_registry.ts";
import {
  PublishRunUnreadableError,
  RevocationFailedError,
  StagingUnavailableError,
  SubServiceProtocolError,
  SubServiceReplyTooLargeError,
  SubServiceTimeoutError,
  SubServiceUnavailableError,
} from "./app_errors.ts";
import type { ErrorEnvelope, Issue } from "./envelope.ts";
import { requestIdOf } from "./request_ids.ts";

// deno-lint-ignore no-explicit-any
type ErrorClass = abstract new (...args: any[]) => AppError;

const STATUS = new Map<ErrorClass, ContentfulStatusCode>([
  [InvalidCursorError, 400],
  [InvalidReadLimitError, 400],
  [ReleaseNotReadableError, 404],
  [ReleaseTableNotFoundError, 404],
  [ReleaseChangedError, 409],
  [InvalidRunCursorError, 400],
  [InvalidRunQueryError, 400],
  [PersonTokenRejectedError, 401],
  [InvalidReleaseCursorError, 400],
  [AwaitingNeedsPersonError, 400],
  [InvalidReleaseQueryError, 400],
  [NotEntitledError, 403],
  [NotEntitledToRevokeError, 403],
  [UploadNameUnsafeError, 400],
  [UploadRequestInvalidError, 400],
  [UploadTypeRefusedError, 415],
  [UploadTooLargeError, 413],
  [UploadLimitReachedError, 409],
  [DataSourceNotFoundError, 404],
  [NotUploaderError, 403],
  [DataSourceClosedError, 409],
  [UploadIntegrityError, 409],
  [CsvLoadRefusedError, 422],
  [UploadsOffError, 501],
  [UploadStepRefusedError, 409],
  [InvalidExpiryError, 422],
  [ReleaseNotPublishedError, 404],
  [ReleaseRevokedError, 409],
  [InvalidReleaseTransitionError, 409],
  [RevocationFailedError, 502],
  [SelfApprovalError, 403],
  [SourceNotAllowedError, 403],
  [InvalidSecretNameError, 422],
  [DestinationNameTooLongError, 422],
  [DestinationNameReservedError, 422],
  [DestinationValueError, 422],
  [InvalidOpalProjectNameError, 422],
  [DuckdbValueError, 422],
  [DuckdbConstraintError, 422],
  [DuckdbNameClashError, 422],
  // The service cannot store this dataset as DuckDB with its configured memory (RFC 4918).
  [DuckdbMemoryError, 507],
  [UnsafeTableNameError, 422],
  [UnknownGateError, 422],
  [UnknownApprovalTypeError, 422],
  [ValueTooLargeError, 422],
  [RunNotFoundError, 404],
  [UnknownHttpSourceError, 404],
  [HttpIndexUnavailableError, 502],
  [HttpSourceRunTimedOutError, 502],
  [FileRegistryUnavailableError, 503],
  [ReleaseNotFoundError, 404],
  [DatasetItemsNotFoundError, 404],
  [SchemaNotFoundError, 404],
  [SecretNotFoundError, 404],
  [UnknownDestinationError, 404],
  [PostgresqlDestinationNotConfiguredError, 404],
  [RunAlreadyActiveError, 409],
  [PublicationRevokedError, 409],
  [RunVersionConflictError, 409],
  [InvalidRunTransitionError, 409],
  [RunCancelledError, 409],
  // A run's Job died (evicted, out of memory, past its deadline) before the run could record its end.
  [RunExecutionFailedError, 502],
  [ReleaseClosedError, 409],
  [ApprovalRequiredError, 409],
  [ReleaseRejectedError, 409],
  [ApprovalTypeTakenError, 409],
  [NothingStagedToApproveError, 409],
  [NothingStagedError, 409],
  [StagingChangedError, 409],
  [StagingIntegrityError, 409],
  // The request is valid; the filestore's state (a link where a folder or file must be) refuses it.
  [UnsafeFilesystemEntryError, 409],
  [DestinationSchemaConflictError, 409],
  [DestinationProjectConflictError, 409],
  [DestinationTablesNotPackagedError, 409],
  [OpalResourceNameClashError, 409],
  [SecretStoreUnavailableError, 500],
  [ReleaseKeyUnavailableError, 500],
  [FilestoreNotReadyError, 500],
  [InvalidOpalResourceError, 500],
  [SourceTypeNotSupportedError, 501],
  [SourceUnavailableError, 502],
  [DestinationUnavailableError, 502],
  [OpalStepFailedError, 502],
  [OpalError, 502],
  [SubServiceUnavailableError, 502],
  [SubServiceProtocolError, 502],
  [StagingUnavailableError, 502],
  [PublishRunUnreadableError, 502],
  [SubServiceReplyTooLargeError, 502],
  [SubServiceTimeoutError, 504],
  [RunStoreUnavailableError, 503],
  [ReleaseStoreUnavailableError, 503],
  [RunInterruptedError, 503],
  [IdentityProviderUnavailableError, 503],
  [NonceStoreFullError, 503],
  [RequestNotAuthenticatedError, 401],
  [NonceStoreUnavailableError, 503],
  [DataTableNotFoundError, 404],
  [DataTableAmbiguousError, 422],
  [DataRequestBodyError, 400],
]);

/** Headers some errors' replies carry beside the envelope. */
const HEADERS = new Map<ErrorClass, Readonly<Record<string, string>>>([
  // RFC 6750 §3: a refused bearer token says so in a challenge.
  [PersonTokenRejectedError, { "WWW-Authenticate": 'Bearer error="invalid_token"' }],
  [IdentityProviderUnavailableError, { "Retry-After": "5" }],
  [NonceStoreFullError, { "Retry-After": "1" }],
  [RequestNotAuthenticatedError, { "WWW-Authenticate": "Hawk" }],
]);

/**
 * Fields some errors' envelopes carry beside `detail`, `code` and `request_id`, for a client to act on
 * (`approval_required`: which release, which gate, which approval types are still missing).
 */
// deno-lint-ignore no-explicit-any
const PAYLOAD_FIELDS = new Map<ErrorClass, (error: any) => Readonly<Record<string, unknown>>>([
  [ApprovalRequiredError, (e: ApprovalRequiredError) => ({
    release_id: e.releaseId,
    gate: e.gate,
    missing: e.missing,
  })],
  [ReleaseRejectedError, (e: ReleaseRejectedError) => ({ release_id: e.releaseId })],
  [ReleaseRevokedError, (e: ReleaseRevokedError) => ({ release_id: e.releaseId })],
]);

/** The fields the envelope of a known error carries beside its detail and code (none for most errors). */
export function payloadFieldsOf(error: unknown): Readonly<Record<string, unknown>> {
  for (const [cls, fields] of PAYLOAD_FIELDS) if (error instanceof cls) return fields(error);
  return {};
}

/** The headers the reply to a known error carries besides the envelope (none for most errors). */
export function headersOf(error: unknown): Readonly<Record<string, string>> {
  for (const [cls, headers] of HEADERS) if (error instanceof cls) return headers;
  return {};
}

/** Returns the status for a known error class, or `undefined` for anything unexpected. */
export function statusOf(error: unknown): ContentfulStatusCode | undefined {
  if (!(error instanceof AppError)) return undefined;
  for (const [cls, status] of STATUS) if (error instanceof cls) return status;
  return undefined;
}

/** What a service puts in front of its error details (`MetadataService: `), as the reference did. */
export interface ErrorStyle {
  readonly detailPrefix: string;
}

/** Builds an error envelope. */
export function errorBody(
  c: Context,
  style: ErrorStyle,
  fields: { detail: string; code: string; issues?: Issue[]; extra?: Record<string, unknown> },
): ErrorEnvelope {
  const { extra, ...own } = fields;
  return {
    status: "error",
    payload: {
      ...extra,
      ...own,
      detail: style.detailPrefix + fields.detail,
      request_id: requestIdOf(c),
    },
  };
}

/**
 * The stored end of a failed run (`RunOutcome`): its status and error envelope as `onError` would
 * send it, without a request id (each caller that reads it adds its own). An unexpected error is a 500
 * whose detail names nothing internal.
 */
export function errorOutcome(
  error: unknown,
  style: ErrorStyle,
): {
  status: ContentfulStatusCode;
  body: { status: "error"; payload: { detail: string; code: string } };
} {
  const status = statusOf(error);
  if (status !== undefined && error instanceof AppError) {
    return {
      status,
      body: {
        status: "error",
        payload: { detail: style.detailPrefix + error.message, code: error.code },
      },
    };
  }
  return {
    status: 500,
    body: {
      status: "error",
      payload: {
        detail: `${style.detailPrefix}Internal server error; the service log has the details`,
        code: "internal_error",
      },
    },
  };
}

/** Sends an error envelope with the given status. */
export function errorReply(
  c: Context,
  style: ErrorStyle,
  status: ContentfulStatusCode,
  fields: { detail: string; code: string; issues?: Issue[]; extra?: Record<string, unknown> },
): Response {
  return c.json(errorBody(c, style, fields), status);
}

export { requestIdOf };
