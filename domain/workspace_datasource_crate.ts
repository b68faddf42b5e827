/**
 * The RO-Crate an `Import` data source's extraction writes beside its data (`ro-crate-metadata.json` in
 * the run folder on the data source's volume): the release crate of `domain/release_crate.ts`, built
 * from the resource's description and approvals, the run and the files as written. The operator hands
 * the description to the extraction Job ({@link DataSourceDescription}); the Job adds the run and files.
 *
 * @module
 */
import { z } from "zod";
import type { ProvenanceFile, ReleaseProvenance } from "./provenance.ts";
import { releaseCrateText } from "./release_crate.ts";
import type { Decision } from "./release.ts";
import type { Run } from "./run.ts";
import type { DataSourceResource } from "./workspace_datasource.ts";

/** What the crate says about the resource: its identity, description, licence and approvals. */
export const DataSourceDescription = z.object({
  name: z.string(),
  namespace: z.string(),
  uid: z.string(),
  generation: z.number().int(),
  createdAt: z.string(),
  displayName: z.string().nullable(),
  description: z.string().nullable(),
  license: z.string().nullable(),
  publisher: z.string().nullable(),
  approvals: z.array(z.object({
    type: z.string(),
    email: z.string(),
    name: z.string().nullable(),
    approvalGiven: z.string().nullable(),
  })),
});

/** See {@link DataSourceDescription}. */
export type DataSourceDescription = z.infer<typeof DataSourceDescription>;

/** The description of a (checked) resource, as the operator passes it to the Job. */
export function describeDataSource(resource: DataSourceResource): DataSourceDescription {
  const { metadata, spec } = resource;
  return {
    name: metadata.name,
    namespace: metadata.namespace,
    uid: metadata.uid,
    generation: metadata.generation,
    createdAt: metadata.creationTimestamp,
    displayName: spec.displayName ?? null,
    description: spec.description ?? null,
    license: spec.license ?? null,
    publisher: spec.publisher?.organisation ?? null,
    approvals: (spec.approvals ?? []).map((a) => ({
      type: a.type ?? "",
      email: a.email ?? "",
      name: a.name ?? null,
      approvalGiven: a.approvalGiven ?? null,
    })),
  };
}

/** An ISO instant with milliseconds, or `fallback` when `value` is not a date. */
function instant(value: string | null, fallback: string): string {
  const time = value === null ? Number.NaN : Date.parse(value);
  return Number.isNaN(time) ? fallback : new Date(time).toISOString();
}

/**
 * The provenance of a data source's extraction: the resource's approvals as sign-off decisions (the
 * approver's email as their id, the resource as the issuer), the package run as both the package and
 * the publish action (the data is released where it lands), and the files with their SHA-512.
 */
export function dataSourceProvenance(
  description: DataSourceDescription,
  run: Run,
  files: readonly ProvenanceFile[],
  service: { readonly name: string; readonly version: string },
): ReleaseProvenance {
  const ended = run.finished_at ?? run.updated_at;
  const started = run.started_at ?? run.created_at;
  const issuer = `kubernetes:${description.namespace}/${description.name}`;
  const decisions: Decision[] = description.approvals.map((a, i) => ({
    id: `${description.uid}/${description.generation}/${i + 1}`,
    gate: "datasource",
    approval_type: a.type,
    decision: "approve",
    person: { id: a.email, issuer, name: a.name ?? a.email },
    at: instant(a.approvalGiven, instant(description.createdAt, started)),
    comment_sha256: null,
    manifest_digest: null,
  }));
  const request = run.request as { source?: Record<string, unknown> } | undefined;
  const source = request?.source;
  const agent = { kind: "system" as const, id: service.name };
  const runEntry = {
    run_id: run.id,
    agent,
    started_at: started,
    ended_at: ended,
    status: run.state === "succeeded" ? "completed" as const : "failed" as const,
  };
  return {
    release_id: `${description.uid}/${description.generation}`,
    project_name: run.project_name,
    project_start_time: run.project_start_time,
    license: {
      id: `LicenseRef-${description.name}`,
      name: description.license?.trim() || "See the data source's licence",
    },
    service,
    destination: { type: "filestore", name: run.destination.name, format: "csv" },
    source: source === undefined ? null : {
      engine: String(run.dataset.source_engine ?? source.type),
      host: String(source.host_url),
      port: Number(source.port),
      database: String(source.database ?? source.catalog ?? ""),
    },
    datasets: [{
      schema_name: run.dataset.schema_name,
      name: description.displayName,
      description: description.description,
      tables: run.tables.map((t) => ({ name: t.name, description: null, columns: [] })),
      disclosure: null,
    }],
    files,
    destination_tables: [],
    packages: [runEntry],
    publish: runEntry,
    decisions,
    disclosure_thresholds: null,
  };
}

/** The crate's text (`ro-crate-metadata.json`). */
export function dataSourceCrateText(
  description: DataSourceDescription,
  run: Run,
  files: readonly ProvenanceFile[],
  service: { readonly name: string; readonly version: string },
): string {
  return releaseCrateText(dataSourceProvenance(description, run, files, service));
}
