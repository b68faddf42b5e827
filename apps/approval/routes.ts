/**
 * The gateway's routes, declared as data. Bodies are validated with the same schemas the sub-services use,
 * then forwarded unchanged.
 *
 * @module
 */
import { TransferRequestComponent } from "../_shared/examples.ts";
import { createRoute, z } from "@hono/zod-openapi";
import {
  DataContractPublishRequest,
  DatasetMetadataPayload,
  PublishPayload,
  StageTransferPayload,
} from "../../domain/contract.ts";
import { runOutcomeSchema, runSchema } from "../../domain/run.ts";
import {
  DECISION_KINDS,
  MAX_EXPIRY_DAYS,
  MAX_REVOCATION_REASON_LENGTH,
  publicationSchema,
  RELEASE_STATES,
  releaseRequestSchema,
  releaseSchema,
} from "../../domain/release.ts";
import { API_KEY_SECURITY, errorResponses, PERSON_TOKEN_SECURITY } from "../_shared/create_app.ts";
import { ErrorEnvelope, openApiComponent, successEnvelope } from "../_shared/envelope.ts";
import {
  HttpSourceFilesEnvelope,
  httpSourceNameParams,
  HttpSourceRunEnvelope,
  HttpSourcesEnvelope,
} from "../_shared/http_source_schemas.ts";

function jsonBody<T>(schema: T) {
  return { body: { required: true, content: { "application/json": { schema } } } };
}

const GATEWAY_ERRORS = errorResponses(404, 409, 501, 502, 504);

/** 409 for package and publish includes `approval_required` (with an approval policy). */
const GATED_ERRORS = {
  ...GATEWAY_ERRORS,
  409: {
    description: "The request conflicts with the staged or published state, or (with an approval " +
      "policy) a gate before the step is not met: `approval_required` names `release_id`, `gate` " +
      "and the approval types still `missing`; `staging_changed`: staging changed since it was approved",
    content: { "application/json": { schema: ErrorEnvelope } },
  },
};

/**
 * A run as the publish service shows it (`domain/run.ts`): the stored run's public fields, relayed
 * unchanged. The outcome's body (a success or error envelope) is any JSON: the OpenAPI generator cannot
 * express zod's recursive `z.json()`.
 */
const RunView = openApiComponent(
  runSchema.pick({
    id: true,
    action: true,
    project_name: true,
    project_start_time: true,
    dataset: true,
    destination: true,
    state: true,
    tables: true,
    outcome: true,
    caller_key_id: true,
    created_at: true,
    updated_at: true,
    started_at: true,
    finished_at: true,
    version: true,
  }).extend({ outcome: runOutcomeSchema.extend({ body: z.unknown() }).nullable() }),
  "Run",
);

const RunEnvelope = successEnvelope(RunView);

/** `Prefer: respond-async` (RFC 7240) asks for a run instead of waiting for its end. */
const PreferHeader = z.object({
  prefer: z.string().optional().openapi({
    description: "`respond-async`: answer 202 with the run at once; without it the call waits",
    example: "respond-async",
  }),
});

/** The 202 a `Prefer: respond-async` call, or a resume, gets. */
const RUN_ACCEPTED = {
  description: "The run is stored and queued; `Location` is where to follow it",
  headers: {
    Location: { schema: { type: "string" as const }, description: "`/runs/{id}`" },
  },
  content: { "application/json": { schema: RunEnvelope } },
};

const PREFERENCE_APPLIED = {
  "Preference-Applied": {
    schema: { type: "string" as const },
    description: "`respond-async`",
  },
};

/** The 202 of a `Prefer: respond-async` package or publish. */
const ASYNC_ACCEPTED = {
  ...RUN_ACCEPTED,
  headers: { ...RUN_ACCEPTED.headers, ...PREFERENCE_APPLIED },
};

const RunIdParam = z.object({
  id: z.string().min(1).openapi({ param: { name: "id", in: "path" } }),
});

const RUN_ERRORS = errorResponses(404, 502, 504);

/** `POST /project/validate`: publish validate, then metadata; returns the metadata. */
export const validateProject = createRoute({
  method: "post",
  path: "/project/validate",
  summary: "Validate the destination and source, then return the dataset's metadata",
  tags: ["project"],
  security: API_KEY_SECURITY,
  request: jsonBody(TransferRequestComponent),
  responses: {
    200: {
      description: "The dataset's metadata",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(DatasetMetadataPayload, "DatasetMetadata")),
        },
      },
    },
    ...GATEWAY_ERRORS,
  },
});

/** `POST /project/package`: forwards to the publish service's package, `Prefer` included. */
export const packageProject = createRoute({
  method: "post",
  path: "/project/package",
  summary: "Stage the approved tables (forwarded to the publish service)",
  tags: ["project"],
  security: API_KEY_SECURITY,
  request: {
    headers: PreferHeader,
    ...jsonBody(TransferRequestComponent),
  },
  responses: {
    202: ASYNC_ACCEPTED,
    200: {
      description: "What was staged",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(StageTransferPayload, "StageTransferPayload")),
        },
      },
    },
    ...GATED_ERRORS,
  },
});

/**
 * The gateway's publish body: the CLI's, plus an optional `expires_at` (an extension, README
 * Deviations) that overrides the policy's `release_expiry_days`.
 */
const GatewayPublishRequest = openApiComponent(
  DataContractPublishRequest.extend({
    expires_at: z.iso.datetime({ offset: true }).optional().openapi({
      description: "When the release expires and is revoked (in the future, at most " +
        `${MAX_EXPIRY_DAYS} days away); without it the policy's release_expiry_days, else never. ` +
        "An extension: the CR8TOR CLI never sends it",
    }),
  }),
  "GatewayPublishRequest",
);

/** What a publish through the gateway answers: the publish service's payload, without its crate. */
const GatewayPublishPayload = openApiComponent(
  PublishPayload.extend({
    release_id: z.string().openapi({ description: "The release published" }),
    receipt: z.object({ jws: z.string(), claims: z.record(z.string(), z.unknown()) }).optional()
      .openapi({ description: "The signed release receipt (compact JWS, EdDSA) and its claims" }),
  }),
  "GatewayPublishPayload",
);

/** `POST /project/publish`: forwards to the publish service's publish, `Prefer` included. */
export const publishProject = createRoute({
  method: "post",
  path: "/project/publish",
  summary: "Publish staging to production (forwarded to the publish service)",
  tags: ["project"],
  security: API_KEY_SECURITY,
  request: {
    headers: PreferHeader,
    ...jsonBody(GatewayPublishRequest),
  },
  responses: {
    202: ASYNC_ACCEPTED,
    200: {
      description: "What was published, its release and receipt (the crate is served by " +
        "GET /releases/{id}/crate)",
      content: { "application/json": { schema: successEnvelope(GatewayPublishPayload) } },
    },
    ...GATED_ERRORS,
  },
});

/** `GET /runs/{id}`: one run (forwarded to the publish service). */
export const getRun = createRoute({
  method: "get",
  path: "/runs/{id}",
  summary: "One run: its state, per-table progress and outcome (forwarded to the publish service)",
  description:
    "A publish run shown ended also records its release's publication (receipt, crate, " +
    "files) when the release waits for it (`Prefer: respond-async`, docs/revocation.md)",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: { params: RunIdParam },
  responses: {
    200: { description: "The run", content: { "application/json": { schema: RunEnvelope } } },
    ...RUN_ERRORS,
  },
});

/** `GET /runs`: runs newest first, a page at a time (forwarded with its query string). */
export const listRuns = createRoute({
  method: "get",
  path: "/runs",
  summary: "Runs, newest first, a page at a time (forwarded to the publish service)",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: {
    query: z.object({
      project: z.string().optional(),
      state: z.string().optional(),
      limit: z.string().optional().openapi({ description: "1 to 1000; 50 by default" }),
      cursor: z.string().optional().openapi({ description: "From the previous page's `next`" }),
    }),
  },
  responses: {
    200: {
      description: "A page of runs; `next` is the next page's path and query, or null",
      content: {
        "application/json": {
          schema: successEnvelope(
            z.object({ runs: z.array(RunView), next: z.string().nullable() }),
          ),
        },
      },
    },
    ...errorResponses(400, 502, 504),
  },
});

/** `GET /runs/{id}/events`: the run's changes as Server-Sent Events, relayed as they arrive. */
export const runEvents = createRoute({
  method: "get",
  path: "/runs/{id}/events",
  summary:
    "The run's changes as Server-Sent Events (relayed from the publish service as they arrive)",
  description:
    "Each event is `id: <run version>`, `event: run`, `data: <the run as JSON>`; the stream " +
    "starts with the current run, ends after a final state, and sends `: keep-alive` every 15 s. " +
    "`Last-Event-ID` resumes after that version.",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: {
    params: RunIdParam,
    headers: z.object({
      "last-event-id": z.string().optional().openapi({
        description: "Send only the changes after this run version",
      }),
    }),
  },
  responses: {
    200: {
      description: "The event stream",
      content: { "text/event-stream": { schema: z.string() } },
    },
    ...RUN_ERRORS,
  },
});

/** `POST /runs/{id}/cancel`: stops a run (forwarded to the publish service). */
export const cancelRun = createRoute({
  method: "post",
  path: "/runs/{id}/cancel",
  summary: "Cancel a run; answers once its work stopped (forwarded to the publish service)",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: { params: RunIdParam },
  responses: {
    200: {
      description: "The run, cancelled",
      content: { "application/json": { schema: RunEnvelope } },
    },
    ...errorResponses(404, 409, 502, 504),
  },
});

/** `POST /runs/{id}/resume`: queues an interrupted run again (forwarded to the publish service). */
export const resumeRun = createRoute({
  method: "post",
  path: "/runs/{id}/resume",
  summary: "Resume an interrupted run (forwarded to the publish service)",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: { params: RunIdParam },
  responses: { 202: RUN_ACCEPTED, ...errorResponses(404, 409, 502, 504) },
});

// ---------------------------------------------------------------------------------------------------------
// Releases (`docs/approvals.md`, `docs/revocation.md`); decisions only with an approval policy.

const AllowedActionView = z.object({
  gate: z.string(),
  approval_type: z.string(),
  decisions: z.array(z.enum(DECISION_KINDS)),
}).openapi("AllowedAction");

/** A release as every reply shows it (`application/releases.ts` `ReleaseView`). */
const ReleaseView = openApiComponent(
  releaseSchema.extend({
    publication: publicationSchema.omit({ crate: true }).nullable().openapi({
      description: "The latest publish: when, its signed receipt and what was published (the " +
        "crate is GET /releases/{id}/crate); null before the first",
    }),
    request: releaseRequestSchema.omit({ credentials: true }).nullable().openapi({
      description: "What the package requests naming this release asked for: the source (never " +
        "its credentials) and every dataset requested (one per schema); null when none was recorded",
    }),
    gates: z.array(z.object({
      gate: z.string(),
      before: z.enum(["package", "publish"]),
      met: z.boolean(),
      missing: z.record(z.string(), z.number().int()),
    })),
    staging: z.record(z.string(), z.unknown()).nullable().openapi({
      description:
        "For a release with a gate before publish: `staging_digest` (what approvals bind " +
        "to) and the publish service's disclosure pre-checks; null otherwise",
    }),
    allowed_actions: z.array(AllowedActionView).openapi({
      description: "What the caller may decide now, per gate and approval type (empty for a key)",
    }),
  }),
  "Release",
);

const ReleaseIdParam = z.object({
  id: z.string().min(1).openapi({ param: { name: "id", in: "path" } }),
});

/** Either credential: the service key, or a person's token. */
const KEY_OR_PERSON = [...API_KEY_SECURITY, ...PERSON_TOKEN_SECURITY];

/** `GET /releases/{id}`: one release, its gates, what is staged, what the caller may decide. */
export const getRelease = createRoute({
  method: "get",
  path: "/releases/{id}",
  summary: "One release: its decisions, gates, staging digest and disclosure pre-checks",
  tags: ["releases"],
  security: KEY_OR_PERSON,
  request: { params: ReleaseIdParam },
  responses: {
    200: {
      description: "The release",
      content: { "application/json": { schema: successEnvelope(ReleaseView) } },
    },
    ...errorResponses(401, 404, 502, 504),
  },
});

/** `GET /releases`: what awaits the caller (`awaiting=me`), or releases newest first a page at a time. */
export const listReleases = createRoute({
  method: "get",
  path: "/releases",
  summary: "Releases: what awaits you (awaiting=me, oldest first), or all newest first",
  tags: ["releases"],
  security: KEY_OR_PERSON,
  request: {
    query: z.object({
      awaiting: z.string().optional().openapi({
        description:
          "`me`: the open releases the signed-in person can still decide, oldest first " +
          "(a person's token only; the other parameters are then ignored)",
      }),
      project: z.string().optional(),
      state: z.string().optional().openapi({ description: RELEASE_STATES.join(", ") }),
      limit: z.string().optional().openapi({ description: "1 to 1000; 50 by default" }),
      cursor: z.string().optional().openapi({ description: "From the previous page's `next`" }),
    }),
  },
  responses: {
    200: {
      description: "Releases; `next` is the next page's path and query, or null",
      content: {
        "application/json": {
          schema: successEnvelope(
            z.object({ releases: z.array(ReleaseView), next: z.string().nullable() }),
          ),
        },
      },
    },
    ...errorResponses(400, 401, 502, 504),
  },
});

/** What a person sends to decide. */
export const DecisionBody = z.object({
  gate: z.string().min(1).max(64),
  approval_type: z.string().min(1).max(64),
  decision: z.enum(DECISION_KINDS),
  comment: z.string().max(10_000).optional().openapi({
    description: "Kept only as its SHA-256 (in the release and the audit trail)",
  }),
}).strict().openapi("DecisionRequest");

/** `POST /releases/{id}/decisions`: a person records a decision. */
export const decideRelease = createRoute({
  method: "post",
  path: "/releases/{id}/decisions",
  summary: "Record your decision on a gate of a release (a person's token only)",
  description: "For a gate before publish, the decision binds to the staging digest now (set by " +
    "the server). Every decision, refused ones included, is an audit record.",
  tags: ["releases"],
  security: PERSON_TOKEN_SECURITY,
  request: { params: ReleaseIdParam, ...jsonBody(DecisionBody) },
  responses: {
    200: {
      description: "The release with the decision recorded (its last)",
      content: { "application/json": { schema: successEnvelope(ReleaseView) } },
    },
    ...errorResponses(401, 404, 409, 502, 504),
  },
});

/** What revoking a release says. */
export const RevokeBody = z.object({
  reason: z.string().min(1).max(MAX_REVOCATION_REASON_LENGTH).openapi({
    description: "Why; kept with the release and sent to the publish service",
  }),
}).strict().openapi("RevokeRequest");

/** `POST /releases/{id}/revoke`: deletes what the release published and records its certificate. */
export const revokeRelease = createRoute({
  method: "post",
  path: "/releases/{id}/revoke",
  summary: "Revoke a release: delete what it published, keep the deletion certificate",
  description: "With an approval policy, a person's token holding one of the policy's " +
    "revocation_roles; without one, the key. The release becomes revoking, then revoked with the " +
    "publish service's deletion certificate (also in the audit trail). Idempotent: a revoking " +
    "release is retried, a revoked one returned as it is.",
  tags: ["releases"],
  security: [...API_KEY_SECURITY, ...PERSON_TOKEN_SECURITY],
  request: { params: ReleaseIdParam, ...jsonBody(RevokeBody) },
  responses: {
    200: {
      description: "The release, revoked",
      content: { "application/json": { schema: successEnvelope(ReleaseView) } },
    },
    ...errorResponses(401, 403, 404, 409, 502, 504),
  },
});

/** `GET /releases/{id}/crate`: the RO-Crate of the release's latest publish. */
export const getReleaseCrate = createRoute({
  method: "get",
  path: "/releases/{id}/crate",
  summary: "The RO-Crate (JSON-LD) describing the release's latest publish",
  tags: ["releases"],
  security: KEY_OR_PERSON,
  request: { params: ReleaseIdParam },
  responses: {
    200: {
      description: "The crate (ro-crate-metadata.json)",
      content: { "application/ld+json": { schema: z.record(z.string(), z.unknown()) } },
    },
    ...errorResponses(401, 404),
  },
});

/** `GET /.well-known/release-keys`: the publish service's receipt keys (JWKS), relayed, no key needed. */
export const releaseKeys = createRoute({
  method: "get",
  path: "/.well-known/release-keys",
  summary: "The public keys (JWKS) that verify release receipts (relayed; no key needed)",
  tags: ["releases"],
  security: [],
  responses: {
    200: {
      description: "A JSON Web Key Set",
      content: {
        "application/json": {
          schema: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }),
        },
      },
    },
    ...errorResponses(404, 502, 504),
  },
});

/** `GET /http-sources`: the HTTP-file sources and their registries (forwarded to the publish service). */
export const listHttpSources = createRoute({
  method: "get",
  path: "/http-sources",
  summary: "HTTP-file sources and their registries' counts (forwarded to the publish service)",
  tags: ["http-sources"],
  security: API_KEY_SECURITY,
  responses: {
    200: {
      description: "The sources",
      content: { "application/json": { schema: HttpSourcesEnvelope } },
    },
    ...errorResponses(502, 504),
  },
});

/** `GET /http-sources/{name}/files`: one source's registry (forwarded to the publish service). */
export const httpSourceFiles = createRoute({
  method: "get",
  path: "/http-sources/{name}/files",
  summary: "The registry of one HTTP-file source (forwarded to the publish service)",
  tags: ["http-sources"],
  security: API_KEY_SECURITY,
  request: httpSourceNameParams,
  responses: {
    200: {
      description: "The files, by URL",
      content: { "application/json": { schema: HttpSourceFilesEnvelope } },
    },
    ...RUN_ERRORS,
  },
});

/** `POST /http-sources/{name}/run`: fetches what is new of a source (forwarded, `Prefer` passed on). */
export const runHttpSource = createRoute({
  method: "post",
  path: "/http-sources/{name}/run",
  summary:
    "Fetch what is new of an HTTP-file source into staging (forwarded to the publish service)",
  tags: ["http-sources"],
  security: API_KEY_SECURITY,
  request: httpSourceNameParams,
  responses: {
    200: {
      description: "What the run fetched, per file",
      content: { "application/json": { schema: HttpSourceRunEnvelope } },
    },
    202: RUN_ACCEPTED,
    ...errorResponses(404, 409, 502, 504),
  },
});
