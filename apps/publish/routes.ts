/**
 * The publish service's routes, declared as data.
 *
 * @module
 */
import { createRoute, z } from "@hono/zod-openapi";
import { RUN_STATES, runSchema } from "../../domain/run.ts";
import { disclosureThresholdsSchema, tableDisclosureSchema } from "../../domain/disclosure.ts";
import {
  DataContractPublishRequest,
  DataContractSourceAccessRequest,
  PublishPayload,
  PublishServicePackageRequest,
  PublishServicePublishRequest,
  StageTransferPayload,
  ValidationPayload,
} from "../../domain/contract.ts";
import { deletionCertificateSchema, PublishServiceRevokeRequest } from "../../domain/revocation.ts";
import { PackageUploadRequest } from "../../domain/upload_files.ts";
import { ReadRowsRequest, ReadTablesRequest } from "../../application/read_release.ts";
import { API_KEY_SECURITY, errorResponses } from "../_shared/create_app.ts";
import { openApiComponent, successEnvelope } from "../_shared/envelope.ts";

function jsonBody<T>(schema: T) {
  return { body: { required: true, content: { "application/json": { schema } } } };
}

/** A run as the API shows it: the stored run without its request (`domain/run.ts`). */
// The outcome body is any JSON (`z.json()`, recursive, which the OpenAPI generator cannot walk).
const RunViewSchema = openApiComponent(
  runSchema.omit({ request: true }).extend({
    outcome: z.object({
      status: z.number().int(),
      body: z.any().openapi({ description: "The reply the synchronous call gives" }),
    }).nullable(),
  }),
  "Run",
);

const runIdParams = {
  params: z.object({
    id: z.string().openapi({ param: { name: "id", in: "path" }, example: "0b7c…" }),
  }),
};

function runReply(description: string) {
  return {
    description,
    content: { "application/json": { schema: successEnvelope(RunViewSchema) } },
  };
}

/** The reply of `POST /data-publish/package|publish` with `Prefer: respond-async`. */
export const acceptedRunResponse = {
  202: {
    description:
      "With `Prefer: respond-async`: the run, stored and queued (`Location: /runs/{id}`)",
    content: { "application/json": { schema: successEnvelope(RunViewSchema) } },
  },
};

/** `POST /data-publish/validate`: check the destination and connect to the source. */
export const validateRoute = createRoute({
  method: "post",
  path: "/data-publish/validate",
  summary: "Check that the destination is usable and the source accepts the credentials",
  tags: ["publish"],
  security: API_KEY_SECURITY,
  request: jsonBody(
    openApiComponent(DataContractSourceAccessRequest, "DataContractSourceAccessRequest"),
  ),
  responses: {
    200: {
      description: "Destination and source are usable",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(ValidationPayload, "ValidationPayload")),
        },
      },
    },
    ...errorResponses(404, 501, 502),
  },
});

/** `POST /data-publish/package`: extract the approved tables into staging. */
export const packageRoute = createRoute({
  method: "post",
  path: "/data-publish/package",
  summary: "Extract the approved tables and columns into staging",
  tags: ["publish"],
  security: API_KEY_SECURITY,
  request: jsonBody(
    openApiComponent(PublishServicePackageRequest, "PublishServicePackageRequest"),
  ),
  responses: {
    200: {
      description: "What was staged",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(StageTransferPayload, "StageTransferPayload")),
        },
      },
    },
    ...acceptedRunResponse,
    ...errorResponses(404, 409, 501, 502),
  },
});

/** `POST /data-publish/publish`: move staging into production with checksums. */
export const publishRoute = createRoute({
  method: "post",
  path: "/data-publish/publish",
  summary: "Publish the project's staging to production with SHA-512 checksums",
  tags: ["publish"],
  security: API_KEY_SECURITY,
  request: jsonBody(
    openApiComponent(PublishServicePublishRequest, "PublishServicePublishRequest"),
  ),
  responses: {
    200: {
      description: "What was published",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(PublishPayload, "PublishPayload")),
        },
      },
    },
    ...acceptedRunResponse,
    ...errorResponses(404, 409, 501, 502),
  },
});

/** `POST /data-publish/revoke`: remove a published release and return its deletion certificate. */
export const revokeRoute = createRoute({
  method: "post",
  path: "/data-publish/revoke",
  summary:
    "Revoke a release: remove its published (and staged) data and return a deletion certificate",
  description:
    "Runs as a run with action `revoke` (`docs/revocation.md`). A filestore run's folders " +
    "are hidden at once, then each file is hashed and deleted (or moved to the `revoked/` area with " +
    "`REVOCATION_MODE=quarantine`); a PostgreSQL run's OPAL resources (and group, when the project has " +
    "no resource left) are removed, its tables counted and dropped. Revoking again returns the same " +
    "certificate.",
  tags: ["publish"],
  security: API_KEY_SECURITY,
  request: jsonBody(openApiComponent(PublishServiceRevokeRequest, "PublishServiceRevokeRequest")),
  responses: {
    200: {
      description: "What was removed",
      content: {
        "application/json": {
          schema: successEnvelope(openApiComponent(
            z.object({
              certificate: openApiComponent(deletionCertificateSchema, "DeletionCertificate"),
            }),
            "RevokePayload",
          )),
        },
      },
    },
    ...acceptedRunResponse,
    ...errorResponses(404, 409, 501, 502),
  },
});

/** `GET /runs/{id}`: one run. */
export const getRunRoute = createRoute({
  method: "get",
  path: "/runs/{id}",
  summary: "A run: its state, per-table progress and, once it stopped, its outcome",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: runIdParams,
  responses: { 200: runReply("The run"), ...errorResponses(404) },
});

/** `GET /runs`: runs newest first, one page at a time. */
export const listRunsRoute = createRoute({
  method: "get",
  path: "/runs",
  summary: "Runs, newest first, filtered by project and state, one page at a time",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: {
    query: z.object({
      project: z.string().optional(),
      state: z.string().optional().openapi({ description: RUN_STATES.join(", ") }),
      limit: z.string().optional().openapi({ description: "1 to 1000, default 50" }),
      cursor: z.string().optional().openapi({ description: "From the previous page's `next`" }),
    }),
  },
  responses: {
    200: {
      description: "One page of runs, and the path of the next page (`null` on the last)",
      content: {
        "application/json": {
          schema: successEnvelope(z.object({
            runs: z.array(RunViewSchema),
            next: z.string().nullable(),
          })),
        },
      },
    },
    ...errorResponses(400),
  },
});

/** `GET /runs/{id}/events`: the run's changes as server-sent events. */
export const runEventsRoute = createRoute({
  method: "get",
  path: "/runs/{id}/events",
  summary:
    "The run's changes as server-sent events (`Last-Event-ID` resumes), ending when it stops",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: runIdParams,
  responses: {
    200: {
      description:
        "`id: <run version>`, `event: run`, `data: <run JSON>` per change; `: keep-alive` every 15 s",
      content: { "text/event-stream": { schema: z.string() } },
    },
    ...errorResponses(404),
  },
});

/** `POST /runs/{id}/cancel`: stop a run for good. */
export const cancelRunRoute = createRoute({
  method: "post",
  path: "/runs/{id}/cancel",
  summary: "Cancel a queued, running or interrupted run (once its work stopped, at most 5 s)",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: runIdParams,
  responses: { 200: runReply("The cancelled run"), ...errorResponses(404, 409) },
});

/** `POST /runs/{id}/resume`: queue an interrupted run again. */
export const resumeRunRoute = createRoute({
  method: "post",
  path: "/runs/{id}/resume",
  summary: "Queue an interrupted run again; it reuses the tables it left done",
  tags: ["runs"],
  security: API_KEY_SECURITY,
  request: runIdParams,
  responses: { 202: runReply("The run, queued again"), ...errorResponses(404, 409) },
});

/** The reply of `POST /data-publish/staging`. */
const StagingPayload = openApiComponent(
  z.object({
    staging_digest: z.string().nullable().openapi({
      description: "SHA-256 (hex) that changes whenever a dataset of the run is packaged again; " +
        "null when nothing is staged",
    }),
    tables: z.array(z.object({
      dataset: z.string(),
      table: z.string(),
      thresholds: disclosureThresholdsSchema,
      disclosure: tableDisclosureSchema,
    })),
    unchecked_datasets: z.array(z.string()).openapi({
      description: "Staged datasets without pre-checks (checks off, or tables kept from an " +
        "interrupted run, or the PostgreSQL destination)",
    }),
  }),
  "StagingPayload",
);

/** `POST /data-publish/staging`: what a run has staged, as approvers see it. */
export const stagingRoute = createRoute({
  method: "post",
  path: "/data-publish/staging",
  summary: "The run's staging digest and the staged tables' disclosure pre-checks",
  tags: ["publish"],
  security: API_KEY_SECURITY,
  request: jsonBody(openApiComponent(DataContractPublishRequest, "DataContractPublishRequest")),
  responses: {
    200: {
      description: "The staging digest and pre-checks",
      content: { "application/json": { schema: successEnvelope(StagingPayload) } },
    },
    ...errorResponses(404, 409, 501, 502),
  },
});

/** An Ed25519 public key of the JWKS (`domain/release_receipt.ts` `PublicReleaseKey`). */
const ReleaseKeySchema = openApiComponent(
  z.object({
    kty: z.literal("OKP"),
    crv: z.literal("Ed25519"),
    x: z.string(),
    kid: z.string().openapi({ description: "RFC 7638 thumbprint" }),
    alg: z.literal("EdDSA"),
    use: z.literal("sig"),
  }),
  "ReleaseKey",
);

/**
 * `GET /.well-known/release-keys`: the public keys that verify release receipts, current first, then
 * retired (`docs/provenance.md`). No key needed: anyone may verify a receipt.
 */
export const releaseKeysRoute = createRoute({
  method: "get",
  path: "/.well-known/release-keys",
  summary: "The JWK Set of the keys that verify release receipts (current first, then retired)",
  tags: ["publish"],
  responses: {
    200: {
      description: "A JWK Set (RFC 7517), not in the envelope, so any JOSE library reads it",
      content: { "application/json": { schema: z.object({ keys: z.array(ReleaseKeySchema) }) } },
    },
    ...errorResponses(500),
  },
});

/** `POST /data-publish/package-upload`: stage an uploaded data source's approved files (`docs/uploads.md`). */
export const packageUploadRoute = createRoute({
  method: "post",
  path: "/data-publish/package-upload",
  summary:
    "Copy approved uploaded files from the quarantine area into staging, checking each SHA-512",
  tags: ["publish"],
  security: API_KEY_SECURITY,
  request: jsonBody(openApiComponent(PackageUploadRequest, "PackageUploadRequest")),
  responses: {
    200: {
      description: "What was staged, and the run's staging digest now",
      content: {
        "application/json": {
          schema: successEnvelope(z.object({
            files: z.array(z.object({ path: z.string(), sha512: z.string(), bytes: z.number() })),
            staging_digest: z.string().nullable(),
          })),
        },
      },
    },
    ...errorResponses(404, 409, 501),
  },
});

const ReadColumnSchema = openApiComponent(
  z.object({
    name: z.string(),
    type: z.string().openapi({
      description:
        "The column's type where the release keeps it (PostgreSQL, DuckDB, or the source's)",
    }),
    description: z.string().nullable(),
  }),
  "ReadColumn",
);

const ReadTableSchema = openApiComponent(
  z.object({
    name: z.string(),
    dataset: z.string().openapi({ description: "The schema name its package request named" }),
    columns: z.array(ReadColumnSchema),
    key: z.array(z.string()).openapi({
      description: "The columns pages are ordered by; empty when rows come in file order (CSV)",
    }),
  }),
  "ReadTable",
);

/**
 * `POST /data-publish/read/tables`: the tables a run published on a destination (issue 19), for the
 * gateway's data API.
 */
export const readTablesRoute = createRoute({
  method: "post",
  path: "/data-publish/read/tables",
  summary: "The tables a run published on a destination, with columns, types and key",
  tags: ["read"],
  security: API_KEY_SECURITY,
  request: jsonBody(openApiComponent(ReadTablesRequest, "ReadTablesRequest")),
  responses: {
    200: {
      description: "The published tables, sorted by dataset then name",
      content: {
        "application/json": {
          schema: successEnvelope(z.object({ tables: z.array(ReadTableSchema) })),
        },
      },
    },
    ...errorResponses(404, 502),
  },
});

const ReadValueSchema = z.string().nullable().openapi({
  description: "The canonical CSV text of the value (docs/csv-format.md); null for NULL",
});

/**
 * `POST /data-publish/read/rows`: one page of a published table, keyset-paginated (issue 19,
 * `docs/data-read.md`).
 */
export const readRowsRoute = createRoute({
  method: "post",
  path: "/data-publish/read/rows",
  summary: "One page of a published table, in key order, after an opaque cursor",
  tags: ["read"],
  security: API_KEY_SECURITY,
  request: jsonBody(openApiComponent(ReadRowsRequest, "ReadRowsRequest")),
  responses: {
    200: {
      description:
        "The page; `x-rows-returned` says how many rows it holds, `Link` (rel next) is " +
        "`next`, and `x-hawk-payload-hash` is the page's HAWK payload hash (SHA-256, " +
        "`application/json`), which the gateway signs its relay of the page with",
      headers: z.object({
        "x-rows-returned": z.string(),
        "x-hawk-payload-hash": z.string(),
        link: z.string().optional(),
      }),
      content: {
        "application/json": {
          schema: successEnvelope(
            z.object({
              table: z.string(),
              columns: z.array(z.object({ name: z.string(), type: z.string() })),
              rows: z.array(z.array(ReadValueSchema)).optional().openapi({
                description: "`tabular`: each row its values in column order",
              }),
              records: z.array(z.record(z.string(), ReadValueSchema)).optional().openapi({
                description: "`records`: each row an object by column name",
              }),
              next: z.string().nullable().openapi({
                description:
                  "`next_base` and the URI-encoded cursor of the next page; null on the last",
              }),
            }),
          ).openapi("ReadRowsReply"),
        },
      },
    },
    ...errorResponses(400, 404, 409, 502),
  },
});
