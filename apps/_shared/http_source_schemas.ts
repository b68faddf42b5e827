/**
 * The reply schemas of the HTTP-file source routes (`docs/http-sources.md`), one place for the publish
 * service, which serves them, and the gateway, which forwards them.
 *
 * @module
 */
import { z } from "@hono/zod-openapi";
import { FILE_STATES } from "../../domain/http_file_sources.ts";
import { successEnvelope } from "./envelope.ts";

/** A source and its registry's counts, as `GET /http-sources` lists it. */
const HttpSourceSummary = z.object({
  name: z.string(),
  project_name: z.string(),
  destination: z.string(),
  postgresql: z.boolean(),
  schedule: z.string().nullable(),
  next_run_at: z.string().nullable(),
  files: z.object(Object.fromEntries(FILE_STATES.map((s) => [s, z.number().int()]))),
  last_run_id: z.string().nullable(),
}).openapi("HttpSourceSummary");

/** One registry record, as `GET /http-sources/{name}/files` lists it. */
const HttpSourceFile = z.object({
  url: z.string(),
  state: z.enum(FILE_STATES),
  bytes: z.number().int().nullable(),
  sha512: z.string().nullable(),
  attempts: z.number().int(),
  next_attempt_at: z.string().nullable(),
  reason: z.string().nullable(),
  run_id: z.string(),
  updated_at: z.string(),
}).openapi("HttpSourceFile");

/** `GET /http-sources`'s reply. */
export const HttpSourcesEnvelope = successEnvelope(
  z.object({ sources: z.array(HttpSourceSummary) }),
);

/** `GET /http-sources/{name}/files`'s reply. */
export const HttpSourceFilesEnvelope = successEnvelope(
  z.object({ files: z.array(HttpSourceFile) }),
);

/** `POST /http-sources/{name}/run`'s reply once the run ended: what it did per file. */
export const HttpSourceRunEnvelope = successEnvelope(
  z.object({
    source: z.string(),
    project_name: z.string(),
    project_start_time: z.string(),
    files: z.array(z.object({
      url: z.string(),
      outcome: z.string(),
      path: z.string().nullable(),
      bytes: z.number().int().nullable(),
      sha512: z.string().nullable(),
      reason: z.string().nullable(),
    })),
    loaded_tables: z.array(z.string()).openapi({
      description: "For a source with `postgresql: true`: the PostgreSQL tables (`schema.table`) " +
        "the fetched files were loaded as; empty otherwise",
    }),
  }).openapi("HttpSourceRunPayload"),
);

/** The `{name}` path parameter of the source routes. */
export const httpSourceNameParams = {
  params: z.object({
    name: z.string().openapi({ param: { name: "name", in: "path" }, example: "weekly" }),
  }),
};
