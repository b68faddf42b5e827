/**
 * The one HTTP stack every service is built on, in this order: request ids, access logs, `x-api-key`
 * authentication, the audit trail, reading the body (size, time and concurrency limits), a JSON depth
 * limit; the CR8TOR envelope for every outcome; `/health`, `/ready`, `/openapi.json` and `/docs`
 * (Swagger UI, `api_docs.ts`); and, given metrics, one more middleware in front of all of them that counts
 * every request by its matched route pattern, and `GET /metrics` (`service_metrics.ts`).
 *
 * Routes that `ServiceOptions.people` names take a person's bearer token instead (`person_auth.ts`).
 *
 * The key is checked before anything touches the body: a request without the right key is answered 403
 * whatever its `Content-Length` or `Transfer-Encoding`, and not a byte of its body is read. Such refusals
 * are counted ({@link RefusalTally}) instead of being logged and audited one by one. `POST` routes that
 * are reads (`ServiceOptions.reads`) are audited in batches (`data_read_audit.ts`), not one by one.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import { HTTPException } from "hono/http-exception";
import { timingSafeEqual } from "hono/utils/buffer";
import type { ZodError } from "zod";
import { AppError } from "../../domain/errors.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { DOCS_ASSETS_PREFIX, registerApiDocs } from "./api_docs.ts";
import { auditTrailMiddleware, markAuthenticated } from "./audit.ts";
import { type DataReadAction, type DataReadAudit, keyedReadAudit } from "./data_read_audit.ts";
import { ErrorEnvelope, type Issue, success, successEnvelope } from "./envelope.ts";
import {
  errorBody,
  errorReply,
  type ErrorStyle,
  headersOf,
  payloadFieldsOf,
  statusOf,
} from "./http_errors.ts";
import type { Logger } from "./log.ts";
import { jsonDepthLimit, MAX_JSON_DEPTH } from "./json_depth.ts";
import { type PeopleAuthentication, requirePerson } from "./person_auth.ts";
import { DEFAULT_REFUSAL_INTERVAL_MS, RefusalTally } from "./refusals.ts";
import {
  type BodyRefusal,
  DEFAULT_BODY_READING,
  type RequestBodyLimits,
  requestBodyReader,
} from "./request_body.ts";
import { requestIdOf, requestIds, requestLogFields } from "./request_ids.ts";
import { SOFTWARE_VERSION } from "../../domain/service_identity.ts";
import {
  mayReadMetrics,
  METRICS_PATH,
  METRICS_WITH_KEY,
  type MetricsAccess,
  type ServiceMetrics,
} from "./service_metrics.ts";

/** One dependency the service needs, as `/ready` reports it. */
export interface ReadinessCheck {
  readonly name: string;
  readonly ok: boolean;
  readonly detail?: string;
}

/** What every service passes to {@link createServiceApp}. */
export interface ServiceOptions {
  /** `approval`, `metadata` or `publish`. */
  readonly service: string;
  /** OpenAPI title. */
  readonly title: string;
  /** This service's own API key (at least 16 characters). */
  readonly apiKey: string;
  readonly log: Logger;
  /** Requests with a larger body get 413. */
  readonly maxBodyBytes: number;
  /** Checks what the service depends on, for `/ready`. */
  readonly readiness: () => Promise<readonly ReadinessCheck[]>;
  /** Put in front of every error detail, e.g. `MetadataService: ` (empty for the gateway). */
  readonly detailPrefix: string;
  /** Where every POST is recorded (`AUDIT_LOG_PATH`); without it the service keeps no audit trail. */
  readonly auditTrail?: AuditTrail | undefined;
  /** Time and concurrency limits on reading bodies; {@link DEFAULT_BODY_READING} by default. */
  readonly bodyReading?: BodyReading | undefined;
  /**
   * Counts key refusals and writes their summaries; by default one of its own, with the service's audit
   * trail and a 60 s period. The composition root passes one so that it can close it at shutdown.
   */
  readonly refusals?: RefusalTally | undefined;
  /** What the service counts; with it, every request is counted and `GET /metrics` is served. */
  readonly metrics?: ServiceMetrics | undefined;
  /** Who may read `GET /metrics` besides a caller with the key; {@link METRICS_WITH_KEY} by default. */
  readonly metricsAccess?: MetricsAccess | undefined;
  /**
   * People's sign-in (`apps/_shared/person_auth.ts`): the routes it names take a person's bearer token
   * instead of (or besides) the key. Without it every route takes the key only.
   */
  readonly people?: PeopleAuthentication | undefined;
  /**
   * Paths under this prefix (e.g. `/ui`, the dashboard) sign people in themselves with their own sessions,
   * so no key is asked for there; every other middleware still applies.
   */
  readonly signsInItselfUnder?: string | undefined;
  /**
   * Paths under `prefix` (e.g. `/data/v1`, the data API) authenticate requests with their own scheme:
   * `authenticate` runs where the key check would (before the audit trail and before any byte of a body
   * is read) and answers or calls `next`. Such requests are not recorded by the audit middleware: the
   * scheme keeps its own records.
   */
  readonly ownAuthentication?: {
    readonly prefix: string;
    readonly authenticate: MiddlewareHandler;
  } | undefined;
  /**
   * `POST` routes that are reads (the publish service's `/data-publish/read/*`), by path: each is
   * recorded as a read in `audit`'s batch (`data_reads`, `data_read_audit.ts`) instead of one operation
   * record each, so that paging costs no disk sync per page.
   */
  readonly reads?: {
    readonly actions: ReadonlyMap<string, DataReadAction>;
    readonly audit: DataReadAudit;
  } | undefined;
}

/** Whether `path` is `prefix` or under it. */
function isUnder(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(prefix + "/");
}

/** The limits on reading a body other than its size (`BODY_TIMEOUT_SECONDS`, ...). */
export type BodyReading = Omit<RequestBodyLimits, "maxBytes">;

/**
 * Paths anyone may `GET` (or `HEAD`) without a key, besides the docs' assets (`api_docs.ts`, no data); any
 * other method needs the key there too. `/.well-known/release-keys` holds public keys only
 * (`docs/provenance.md`).
 */
const PUBLIC_PATHS = new Set([
  "/health",
  "/ready",
  "/openapi.json",
  "/docs",
  // The public keys that verify release receipts (`docs/provenance.md`): anyone may check a receipt.
  "/.well-known/release-keys",
]);

/** Whether a request may go without a key. */
function isPublic(c: Context): boolean {
  const path = c.req.path;
  return (PUBLIC_PATHS.has(path) || path.startsWith(DOCS_ASSETS_PREFIX)) &&
    (c.req.method === "GET" || c.req.method === "HEAD");
}

const REFUSED_KEY = "keyRefused";

const FORBIDDEN_DETAIL =
  "Could not validate API key. Please provide a valid API key in the header.";

/** The security requirement every protected route declares. */
export const API_KEY_SECURITY = [{ ApiKey: [] }];

/**
 * The security requirement of a route that takes a person's token (with `ServiceOptions.people`); a route
 * taking either credential declares `[...API_KEY_SECURITY, ...PERSON_TOKEN_SECURITY]`.
 */
export const PERSON_TOKEN_SECURITY = [{ PersonToken: [] }];

/** Error replies every protected route may give, for the OpenAPI document. */
export function errorResponses(...statuses: number[]) {
  const descriptions: Record<number, string> = {
    400: "The request cannot be carried out as sent (e.g. a cursor this service did not issue)",
    401: "A person's bearer token is missing or not valid (WWW-Authenticate says so)",
    403: "Missing or wrong x-api-key",
    408: "The request body did not arrive in time; the connection is closed",
    404: "Something the request names does not exist",
    409: "The request conflicts with the staged or published state",
    413: "Request body too large",
    422: "The request body is invalid; payload.issues lists every offending field",
    500: "Server-side failure",
    501: "Not supported by this version",
    502: "A database or sub-service could not be reached",
    503: "The audit trail cannot be written, or too many bodies are being read; nothing was done",
    504: "A sub-service did not answer in time",
  };
  return Object.fromEntries(
    [403, 408, 413, 422, 500, 503, ...statuses].map((status) => [status, {
      description: descriptions[status] ?? "Error",
      content: { "application/json": { schema: ErrorEnvelope } },
    }]),
  );
}

/** Turns zod issues into `{ path, message }` pairs, `path` dotted from the body root. */
export function issuesOf(error: ZodError): Issue[] {
  return error.issues.map((issue) => ({
    path: issue.path.length === 0 ? "body" : issue.path.map(String).join("."),
    message: issue.message,
  }));
}

/** Builds the 422 reply for a rejected body. */
export function validationReply(c: Context, style: ErrorStyle, error: ZodError): Response {
  const issues = issuesOf(error);
  const detail = "Invalid request body: " + issues.map((i) => `${i.path}: ${i.message}`).join("; ");
  return errorReply(c, style, 422, { detail, code: "invalid_request", issues });
}

/**
 * Creates a service app with the shared stack in place. Register the service's own routes on the result with
 * `app.openapi(route, handler)`.
 */
export function createServiceApp(options: ServiceOptions): OpenAPIHono {
  const style: ErrorStyle = { detailPrefix: options.detailPrefix };
  const { log } = options;
  const app = new OpenAPIHono({
    defaultHook: (result, c) => {
      if (!result.success) return validationReply(c, style, result.error);
    },
  });

  const refusals = options.refusals ?? new RefusalTally({
    service: options.service,
    log,
    trail: options.auditTrail,
    intervalMs: DEFAULT_REFUSAL_INTERVAL_MS,
  });
  const bodyLimits: RequestBodyLimits = {
    ...DEFAULT_BODY_READING,
    ...options.bodyReading,
    maxBytes: options.maxBodyBytes,
  };

  /** Whether the request carries this service's key (compared in constant time). */
  async function hasServiceKey(c: Context): Promise<boolean> {
    return await timingSafeEqual(options.apiKey, c.req.header("x-api-key") ?? "");
  }

  if (options.metrics !== undefined) app.use(requestMetrics(options.metrics));
  app.use(requestIds());
  app.use(async function accessLog(c, next) {
    const started = performance.now();
    await next();
    // Key refusals are counted and summarised (RefusalTally), never logged one by one.
    if (c.get(REFUSED_KEY as never) === true) return;
    log.info("request", {
      ...requestLogFields(c),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      duration_ms: Math.round(performance.now() - started),
    });
  });
  const people = options.people;
  const personAuth = people === undefined ? undefined : requirePerson(people.verifier);
  const ownSignIn = options.signsInItselfUnder;
  const ownAuthentication = options.ownAuthentication;
  app.use(async function apiKeyAuth(c, next) {
    if (isPublic(c)) return next();
    if (ownAuthentication !== undefined && isUnder(c.req.path, ownAuthentication.prefix)) {
      return await ownAuthentication.authenticate(c, next);
    }
    if (
      ownSignIn !== undefined &&
      (c.req.path === ownSignIn || c.req.path.startsWith(ownSignIn + "/"))
    ) return next();
    if (people !== undefined && personAuth !== undefined) {
      const credential = people.credentialFor(c);
      if (
        credential === "person" ||
        (credential === "key_or_person" && c.req.header("x-api-key") === undefined)
      ) {
        return personAuth(c, next);
      }
    }
    if (options.metrics !== undefined && isMetricsRead(c)) {
      // Not a key refusal: a scraper with the wrong token is logged, never tallied or audited.
      const access = options.metricsAccess ?? METRICS_WITH_KEY;
      if (await mayReadMetrics(c, access, () => hasServiceKey(c))) return next();
      return errorReply(c, style, 403, {
        detail: "Could not validate the credentials for the metrics",
        code: "forbidden",
      });
    }
    if (!(await hasServiceKey(c))) {
      refusals.count((c.req.header("x-api-key") ?? "") === "" ? "missing_key" : "wrong_key");
      c.set(REFUSED_KEY as never, true as never);
      return errorReply(c, style, 403, { detail: FORBIDDEN_DETAIL, code: "forbidden" });
    }
    markAuthenticated(c);
    return next();
  });
  const reads = options.reads;
  const readAudit = reads === undefined
    ? undefined
    : keyedReadAudit({ ...reads, apiKey: options.apiKey });
  const audited = options.auditTrail === undefined ? undefined : auditTrailMiddleware({
    trail: options.auditTrail,
    service: options.service,
    apiKey: options.apiKey,
    log,
    style,
  });
  if (audited !== undefined || readAudit !== undefined) {
    app.use(async function auditTrail(c, next) {
      if (ownAuthentication !== undefined && isUnder(c.req.path, ownAuthentication.prefix)) {
        return await next();
      }
      if (readAudit !== undefined && c.req.method === "POST" && reads!.actions.has(c.req.path)) {
        return await readAudit(c, next);
      }
      return audited === undefined ? await next() : await audited(c, next);
    });
  }
  app.use(requestBodyReader({
    limits: bodyLimits,
    onRefused: (c, refusal) => bodyRefusalReply(c, style, bodyLimits, refusal),
  }));
  app.use(jsonDepthLimit({
    maxDepth: MAX_JSON_DEPTH,
    onError: (c) =>
      errorReply(c, style, 422, {
        detail: `Request body nests arrays and objects deeper than ${MAX_JSON_DEPTH} levels`,
        code: "body_too_deep",
        issues: [{ path: "body", message: `nests deeper than ${MAX_JSON_DEPTH} levels` }],
      }),
  }));

  app.notFound((c) => {
    const methods = app.routes.filter((r) => r.path === c.req.path && r.method !== "ALL")
      .map((r) => r.method);
    const url = c.req.url;
    if (methods.length > 0) {
      c.header("Allow", [...new Set(methods)].join(", "));
      return errorReply(c, style, 405, {
        detail: `Url: ${url}. Error: Method Not Allowed`,
        code: "method_not_allowed",
      });
    }
    return errorReply(c, style, 404, {
      detail: `Url: ${url}. Error: Not Found`,
      code: "not_found",
    });
  });

  app.onError((error, c) => {
    const status = statusOf(error);
    if (status !== undefined && error instanceof AppError) {
      const code = error.code;
      // `logDetail` (a driver's message behind a fixed sentence, already redacted) is for the log only.
      log.info("request_failed", {
        ...requestLogFields(c),
        code,
        status,
        ...(error.logDetail === undefined ? {} : { reason: error.logDetail }),
      });
      for (const [name, value] of Object.entries(headersOf(error))) c.header(name, value);
      return errorReply(c, style, status, {
        detail: error.message,
        code,
        extra: { ...payloadFieldsOf(error) },
      });
    }
    if (error instanceof HTTPException && error.status === 400) {
      // Hono's JSON validator: the body is not valid JSON.
      return errorReply(c, style, 422, {
        detail: "Invalid request body: not valid JSON",
        code: "invalid_request",
        issues: [{ path: "body", message: "not valid JSON" }],
      });
    }
    if (error instanceof HTTPException && error.status >= 400 && error.status < 500) {
      // Raised by Hono's own middleware, e.g. 415 for a body that is not declared as JSON.
      return errorReply(c, style, error.status, {
        detail: error.message,
        code: `http_${error.status}`,
      });
    }
    log.error("unhandled_error", {
      ...requestLogFields(c),
      error: error instanceof Error ? error.name : typeof error,
      message: error instanceof Error ? error.message : undefined,
      stack: error instanceof Error ? error.stack : undefined,
    });
    return errorReply(c, style, 500, {
      detail: `Internal server error; the service log has the details under request id ${
        requestIdOf(c)
      }`,
      code: "internal_error",
    });
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "ApiKey", {
    type: "apiKey",
    in: "header",
    name: "x-api-key",
  });
  if (people !== undefined) {
    app.openAPIRegistry.registerComponent("securitySchemes", "PersonToken", {
      type: "http",
      scheme: "bearer",
      bearerFormat: "JWT",
      description: "A person's OpenID Connect access token (OIDC_ISSUER_URL, OIDC_AUDIENCE)",
    });
  }

  app.openapi(
    createRoute({
      method: "get",
      path: "/health",
      summary: "Liveness: the process is up",
      tags: ["operations"],
      responses: {
        200: {
          description: "Alive",
          content: {
            "application/json": {
              schema: successEnvelope(z.object({ service: z.string(), alive: z.literal(true) })),
            },
          },
        },
      },
    }),
    (c) => c.json(success({ service: options.service, alive: true as const }), 200),
  );

  const Check = z.object({ name: z.string(), ok: z.boolean(), detail: z.string().optional() })
    .openapi("ReadinessCheck");
  app.openapi(
    createRoute({
      method: "get",
      path: "/ready",
      summary: "Readiness: everything the service depends on is usable",
      description:
        "Without a key the reply says only ready (200) or not ready (503). With the service's x-api-key " +
        "it also lists each check (`checks`) and names the failed ones in `detail`.",
      tags: ["operations"],
      responses: {
        200: {
          description: "Ready",
          content: {
            "application/json": {
              schema: successEnvelope(
                z.object({ ready: z.literal(true), checks: z.array(Check).optional() }),
              ),
            },
          },
        },
        503: {
          description: "Not ready; with the key, payload.checks says which dependency failed",
          content: {
            "application/json": {
              schema: z.object({
                status: z.literal("error"),
                payload: ErrorEnvelope.shape.payload.extend({ checks: z.array(Check).optional() }),
              }).openapi("NotReadyEnvelope"),
            },
          },
        },
      },
    }),
    async (c) => {
      const checks = [...await options.readiness()];
      if (options.auditTrail !== undefined) checks.push(await auditTrailCheck(options.auditTrail));
      const failed = checks.filter((check) => !check.ok);
      if (!(await hasServiceKey(c))) {
        if (failed.length === 0) return c.json(success({ ready: true as const }), 200);
        return c.json(errorBody(c, style, { detail: "Not ready", code: "not_ready" }), 503);
      }
      if (failed.length === 0) return c.json(success({ ready: true as const, checks }), 200);
      const detail = "Not ready: " +
        failed.map((f) => f.detail === undefined ? f.name : `${f.name}: ${f.detail}`).join("; ");
      const body = errorBody(c, style, { detail, code: "not_ready" });
      return c.json({ ...body, payload: { ...body.payload, checks } }, 503);
    },
  );

  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: options.title,
      version: SOFTWARE_VERSION,
      description: "CR8TOR Publisher. Every reply is a {status, payload} envelope.",
    },
  });
  registerApiDocs(app, options.title);
  const metrics = options.metrics;
  if (metrics !== undefined) {
    app.get(METRICS_PATH, async (c) => {
      c.header("Content-Type", metrics.contentType);
      c.header("Cache-Control", "no-store");
      return c.body(await metrics.render(), 200);
    });
  }

  return app;
}

/** Whether the request reads `/metrics` (GET, or HEAD). */
function isMetricsRead(c: Context): boolean {
  return c.req.path === METRICS_PATH && (c.req.method === "GET" || c.req.method === "HEAD");
}

/** The route label of requests no route matched (404, 405): never the raw path. */
export const UNMATCHED_ROUTE = "unmatched";

/**
 * The pattern of the route that answers the request (`/runs/:id`), or {@link UNMATCHED_ROUTE}: the first
 * matched route registered for a method, as middleware is registered for all methods (`ALL`).
 */
function routeLabelOf(c: Context): string {
  const route = matchedRoutes(c).find((r) => r.method !== "ALL");
  return route?.path ?? UNMATCHED_ROUTE;
}

/**
 * Counts every request, refused ones included, by method, matched route pattern and status, with the
 * time to its response (for a stream, to its first byte).
 */
function requestMetrics(metrics: ServiceMetrics): MiddlewareHandler {
  return async function requestMetrics(c, next) {
    const started = performance.now();
    try {
      await next();
    } finally {
      metrics.requestAnswered({
        method: c.req.method,
        route: routeLabelOf(c),
        status: c.res.status,
        seconds: (performance.now() - started) / 1000,
      });
    }
  };
}

/** The audit trail as `/ready` reports it. The detail names no path, even to a caller with the key. */
async function auditTrailCheck(trail: AuditTrail): Promise<ReadinessCheck> {
  try {
    await trail.checkWritable();
    return { name: "audit trail", ok: true };
  } catch {
    return { name: "audit trail", ok: false, detail: "cannot be appended to" };
  }
}

/** The reply to a body {@link requestBodyReader} refused; a timed-out body also closes the connection. */
function bodyRefusalReply(
  c: Context,
  style: ErrorStyle,
  limits: RequestBodyLimits,
  refusal: BodyRefusal,
): Response {
  switch (refusal) {
    case "too_large":
      return errorReply(c, style, 413, {
        detail: `Request body is larger than ${limits.maxBytes} bytes`,
        code: "body_too_large",
      });
    case "timeout":
    case "idle": {
      c.header("Connection", "close");
      const detail = refusal === "timeout"
        ? `Request body did not arrive within ${limits.timeoutMs / 1000} seconds`
        : `Request body sent nothing for ${limits.idleTimeoutMs / 1000} seconds`;
      return errorReply(c, style, 408, { detail, code: "request_timeout" });
    }
    case "busy":
      c.header("Retry-After", "1");
      return errorReply(c, style, 503, {
        detail:
          `Too many request bodies are being read at once (at most ${limits.maxConcurrent}); try again`,
        code: "too_many_uploads",
      });
    case "incomplete":
      c.header("Connection", "close");
      return errorReply(c, style, 400, {
        detail: "Request body ended before it was complete",
        code: "body_incomplete",
      });
  }
}
