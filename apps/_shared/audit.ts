/**
 * The audit trail in the HTTP stack: one middleware that records every POST a service answers, and the
 * composition-root helper that builds the trail from `AUDIT_LOG_PATH`.
 *
 * Fail-closed: before the operation runs, the trail must be writable, or the request is answered 503
 * `audit_unavailable` and nothing is done. If the record cannot be appended after the operation ran, the
 * reply becomes 500 `audit_write_failed` (no success without a record), and the record goes to the service
 * log as an `audit_write_failed` error event so that it is not lost. Operations are idempotent, so the client
 * can repeat the request once the trail is back.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { FileAuditTrail, openAuditFileSync } from "../../adapters/filesystem/file_audit_trail.ts";
import {
  type AuditDecision,
  type AuditEntry,
  auditKeyId,
  type AuditOutput,
  auditRequestFields,
  canonicalJson,
  NO_REQUEST_FIELDS,
} from "../../domain/audit.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { ConfigError } from "./app_errors.ts";
import { errorReply, type ErrorStyle } from "./http_errors.ts";
import type { Logger } from "./log.ts";
import { personOf } from "./person_auth.ts";
import { bufferedBodyOf } from "./request_body.ts";
import { requestIdOf, requestLogFields, serviceRequestIdOf } from "./request_ids.ts";

const OUTPUT_KEY = "auditOutput";
const AUTHENTICATED_KEY = "auditAuthenticated";
const DECISION_KEY = "auditDecision";
const ERROR_CODE = /^[a-z0-9_]{1,64}$/;
const MAX_ACTION_LENGTH = 256;

/** What {@link auditTrailMiddleware} needs. */
export interface AuditMiddlewareOptions {
  readonly trail: AuditTrail;
  /** `approval`, `metadata` or `publish`. */
  readonly service: string;
  /** The key this service accepts; only its id is recorded. */
  readonly apiKey: string;
  readonly log: Logger;
  readonly style: ErrorStyle;
}

/** Adds what only the handler knows (files written, tables loaded, OPAL resources) to its record. */
export function recordAuditOutput(c: Context, output: AuditOutput): void {
  const previous = c.get(OUTPUT_KEY as never) as AuditOutput | undefined;
  c.set(OUTPUT_KEY as never, { ...previous, ...output } as never);
}

/** Adds the approval decision asked for to the request's record (recorded whether or not it is refused). */
export function recordAuditDecision(c: Context, decision: AuditDecision): void {
  c.set(DECISION_KEY as never, decision as never);
}

/** Marks the request as authenticated by the service's key (called by the auth middleware). */
export function markAuthenticated(c: Context): void {
  c.set(AUTHENTICATED_KEY as never, true as never);
}

/** Whether the request was authenticated by the service's key (see {@link markAuthenticated}). */
export function isAuthenticated(c: Context): boolean {
  return c.get(AUTHENTICATED_KEY as never) === true;
}

/**
 * Records every authenticated POST, refused ones included, after the rest of the stack answered it. Put it
 * after the key check (key refusals are summarised by `RefusalTally`, not recorded one by one, so a flood
 * costs no write) and before the body reader, so that its refusals (413, 408, 503) are recorded.
 */
export function auditTrailMiddleware(options: AuditMiddlewareOptions): MiddlewareHandler {
  const { trail, log, style } = options;
  const keyId = auditKeyId(options.apiKey);

  return async function auditTrail(c, next) {
    if (c.req.method !== "POST") return await next();
    try {
      await trail.checkWritable();
    } catch (e) {
      log.error("audit_unavailable", {
        ...requestLogFields(c),
        message: (e as Error).message,
      });
      return errorReply(c, style, 503, {
        detail:
          "The audit trail cannot be written, so the request was not carried out; try again later",
        code: "audit_unavailable",
      });
    }
    await next();
    const entry = await auditEntryOf(c, options.service, await keyId);
    try {
      await trail.append(entry);
    } catch (e) {
      log.error("audit_write_failed", {
        ...requestLogFields(c),
        message: (e as Error).message,
        record: canonicalJson(entry),
      });
      c.res = undefined;
      c.res = errorReply(c, style, 500, {
        detail:
          "The request was carried out but its audit record could not be written; repeat the request once the audit trail is writable",
        code: "audit_write_failed",
      });
    }
  };
}

/** An operation a service did on its own, with no request behind it (e.g. the expiry sweep's revocations). */
export interface ServiceOperation {
  readonly service: string;
  /** What was done, e.g. `release_expiry`. */
  readonly action: string;
  readonly project_name: string;
  readonly project_start_time: string;
  readonly output: AuditOutput;
}

/**
 * Appends the record of an operation nobody asked for: no caller key, no person, a request id of its
 * own. Like every record, it is durable once this resolves.
 *
 * @throws {AuditTrailUnavailableError} when the record cannot be stored.
 */
export async function recordServiceOperation(
  trail: AuditTrail,
  operation: ServiceOperation,
): Promise<void> {
  const id = crypto.randomUUID();
  await trail.append({
    kind: "operation",
    time: new Date().toISOString(),
    request_id: id,
    service_request_id: id,
    service: operation.service,
    caller_key_id: null,
    action: operation.action,
    ...NO_REQUEST_FIELDS,
    project_name: operation.project_name,
    project_start_time: operation.project_start_time,
    outcome: "success",
    status: 200,
    error_code: null,
    files: operation.output.files ?? null,
    destination_tables: operation.output.destination_tables ?? null,
    opal_resources: operation.output.opal_resources ?? null,
    ...(operation.output.certificate === undefined
      ? {}
      : { certificate: operation.output.certificate }),
  });
}

/** Builds the record of an answered request. The body is read only when the caller was authenticated. */
async function auditEntryOf(c: Context, service: string, keyId: string): Promise<AuditEntry> {
  const authenticated = isAuthenticated(c);
  const status = c.res.status;
  const ok = status >= 200 && status < 300;
  const output = (c.get(OUTPUT_KEY as never) as AuditOutput | undefined) ?? {};
  const person = personOf(c);
  const decision = c.get(DECISION_KEY as never) as AuditDecision | undefined;
  return {
    kind: "operation",
    time: new Date().toISOString(),
    request_id: requestIdOf(c),
    service_request_id: serviceRequestIdOf(c),
    service,
    caller_key_id: authenticated ? keyId : null,
    action: c.req.path.slice(0, MAX_ACTION_LENGTH),
    ...(authenticated ? auditRequestFields(auditedBodyOf(c)) : NO_REQUEST_FIELDS),
    outcome: ok ? "success" : "error",
    status,
    error_code: ok ? null : await replyErrorCode(c.res),
    files: output.files ?? null,
    destination_tables: output.destination_tables ?? null,
    opal_resources: output.opal_resources ?? null,
    ...(person === undefined ? {} : { person: { id: person.id, issuer: person.issuer } }),
    ...(decision === undefined ? {} : { decision }),
    ...(output.certificate === undefined ? {} : { certificate: output.certificate }),
  };
}

/**
 * The request body as the body reader read it, or `undefined` when it read none (refused for its size, its
 * time or the concurrency cap) or it is not JSON. The connection is never read from here.
 */
export function auditedBodyOf(c: Context): unknown {
  const bytes = bufferedBodyOf(c);
  if (bytes === undefined) return undefined;
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    return undefined;
  }
}

/** `payload.code` of an error envelope, when it is a well-formed code (what a record keeps of an error). */
export async function replyErrorCode(res: Response): Promise<string | null> {
  try {
    const code = (await res.clone().json())?.payload?.code;
    return typeof code === "string" && ERROR_CODE.test(code) ? code : null;
  } catch {
    return null;
  }
}

/**
 * The audit trail `AUDIT_LOG_PATH` names, checked to be writable, or `undefined` (with a warning) when it
 * is not set.
 *
 * @throws {ConfigError} when the file cannot be opened for appending.
 */
export function auditTrailFromEnv(
  env: Record<string, string | undefined>,
  log: Logger,
): AuditTrail | undefined {
  const path = env.AUDIT_LOG_PATH?.trim() ?? "";
  if (path === "") {
    log.warn("audit_trail_disabled", { hint: "set AUDIT_LOG_PATH to record every operation" });
    return undefined;
  }
  try {
    openAuditFileSync(path).close();
  } catch (e) {
    throw new ConfigError(
      `Cannot start: AUDIT_LOG_PATH cannot be opened for appending: ${(e as Error).message}`,
    );
  }
  log.info("audit_trail", { path });
  return new FileAuditTrail(path, {
    onPartialLineDropped: (bytes) => log.warn("audit_partial_record_dropped", { bytes }),
  });
}
