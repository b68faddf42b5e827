/**
 * Assembles a release's provenance (`domain/provenance.ts`, `docs/provenance.md`) at publish: the package
 * runs of the same project start and destination from the run store (their times, caller key and
 * request: the source without its credentials, the datasets' names and descriptions), what the
 * destination verified was staged (tables, columns, source types, disclosure checks), the release the
 * gateway forwarded (id, requester, decisions), this service's name and version, and the licence.
 *
 * @module
 */
import {
  PublishServicePackageRequest,
  type PublishServicePublishRequest,
  type Source,
} from "../domain/contract.ts";
import type {
  ProvenanceAgent,
  ProvenanceDataset,
  ProvenanceRun,
  ReleaseProvenance,
} from "../domain/provenance.ts";
import type { Run } from "../domain/run.ts";
import type { StagedContent, StagedTable } from "../domain/staging_manifest.ts";
import type { ReleaseSigning } from "../domain/release_signing.ts";
import type { ReleaseSigner } from "../ports/release_signer.ts";
import { MAX_RUN_PAGE_SIZE, type RunStore } from "../ports/run_store.ts";

/** What every release of this deployment shares. */
export interface ProvenanceSettings {
  readonly runs: RunStore;
  readonly signer: ReleaseSigner;
  /** This service: the instrument of every action in the crate. */
  readonly service: { readonly name: string; readonly version: string };
  /** `RELEASE_LICENSE`: an SPDX id or a URL, and its name. */
  readonly license: { readonly id: string; readonly name: string };
  /** The clock; injected for tests. */
  readonly now?: (() => Date) | undefined;
}

/** A package run that succeeded, with its validated request. */
interface PackageRun {
  readonly run: Run;
  readonly request: PublishServicePackageRequest;
}

/**
 * What a publish signs for `request`, run as `publish`: reads the project's package runs now (under the
 * project lock, so none changes until the release is assembled).
 *
 * @throws {ReleaseKeyUnavailableError} (`ports/release_signer.ts`) when the signing key cannot be read.
 */
export async function releaseSigning(
  request: PublishServicePublishRequest,
  publish: Run,
  settings: ProvenanceSettings,
): Promise<ReleaseSigning> {
  // A key that cannot be read refuses the publish now, before a byte is copied.
  await settings.signer.keySet();
  const packages = await packageRunsOf(request, settings.runs);
  const now = settings.now ?? (() => new Date());
  return {
    sign: (claims) => settings.signer.sign(claims),
    provenance: (staged) =>
      releaseProvenance(request, publish, packages, staged, settings, now().toISOString()),
  };
}

/** The succeeded package runs of the request's project start and destination, oldest first. */
async function packageRunsOf(
  request: PublishServicePublishRequest,
  runs: RunStore,
): Promise<PackageRun[]> {
  const found: PackageRun[] = [];
  let cursor: string | undefined;
  do {
    const page = await runs.list({
      project: request.project_name,
      state: "succeeded",
      limit: MAX_RUN_PAGE_SIZE,
      ...(cursor === undefined ? {} : { cursor }),
    });
    for (const run of page.runs) {
      if (
        run.action !== "package" || run.project_name !== request.project_name ||
        run.project_start_time !== request.project_start_time
      ) continue;
      const parsed = PublishServicePackageRequest.safeParse(run.request);
      if (!parsed.success || !sameDestination(parsed.data.destination, request.destination)) {
        continue;
      }
      found.push({ run, request: parsed.data });
    }
    cursor = page.nextCursor ?? undefined;
  } while (cursor !== undefined);
  return found.sort((a, b) => a.run.created_at < b.run.created_at ? -1 : 1);
}

function sameDestination(
  a: PublishServicePublishRequest["destination"],
  b: PublishServicePublishRequest["destination"],
): boolean {
  if (a.type !== b.type) return false;
  if (a.type === "postgresql" || b.type === "postgresql") return true;
  return a.name.toUpperCase() === b.name.toUpperCase() && a.format === b.format;
}

/** The release's provenance; pure, so the same inputs give the same crate. */
export function releaseProvenance(
  request: PublishServicePublishRequest,
  publish: Run,
  packages: readonly PackageRun[],
  staged: StagedContent,
  settings: Pick<ProvenanceSettings, "service" | "license">,
  assembledAt: string,
): ReleaseProvenance {
  const destination = request.destination;
  const latest = packages.at(-1);
  return {
    release_id: request.release?.id ?? null,
    project_name: request.project_name,
    project_start_time: request.project_start_time,
    license: settings.license,
    service: settings.service,
    destination: destination.type === "postgresql"
      ? { type: "postgresql", name: "postgresql", format: null }
      : { type: "filestore", name: destination.name, format: destination.format },
    source: latest === undefined ? null : sourceOf(latest.request.source),
    datasets: datasetsOf(packages, staged),
    files: staged.files,
    destination_tables: [],
    packages: packages.map(({ run }) => runOf(run, "completed", run.finished_at ?? run.updated_at)),
    publish: runOf(publish, "completed", assembledAt),
    decisions: request.release?.decisions ?? [],
    disclosure_thresholds: staged.datasets.find((d) => d.disclosure !== null)?.disclosure
      ?.thresholds ?? null,
  };
}

/** Where the data was read, never how to sign in. */
function sourceOf(source: Source): NonNullable<ReleaseProvenance["source"]> {
  if (source.type === "databrickssql") {
    return {
      engine: source.type,
      host: source.host_url,
      port: source.port,
      database: source.catalog,
    };
  }
  return {
    engine: source.type === "sqlserver" ? "mssql" : source.type,
    host: source.host_url,
    port: source.port,
    database: source.database,
  };
}

/**
 * Every staged dataset (or, where the destination records no staging, every packaged one), with the
 * name and description of its latest package request.
 */
function datasetsOf(packages: readonly PackageRun[], staged: StagedContent): ProvenanceDataset[] {
  const requested = new Map(
    packages.map((p) => [p.request.dataset.schema_name, p.request.dataset]),
  );
  const schemas = staged.datasets.length > 0
    ? staged.datasets.map((d) => d.schema_name)
    : [...requested.keys()].sort();
  return schemas.map((schema_name) => {
    const dataset = requested.get(schema_name);
    const stage = staged.datasets.find((d) => d.schema_name === schema_name);
    const requestedTables: StagedTable[] = (dataset?.tables ?? []).map((t) => ({
      name: t.name,
      description: t.description ?? null,
      columns: (t.columns ?? []).map((c) => ({
        name: c.name,
        datatype: c.datatype ?? "",
        description: c.description ?? null,
      })),
    }));
    return {
      schema_name,
      name: dataset?.name ?? null,
      description: dataset?.description ?? null,
      tables: stage !== undefined && stage.tables.length > 0 ? stage.tables : requestedTables,
      disclosure: stage?.disclosure ?? null,
    };
  });
}

function runOf(run: Run, status: ProvenanceRun["status"], endedAt: string): ProvenanceRun {
  const agent: ProvenanceAgent = run.caller_key_id === null
    ? { kind: "system", id: "cr8tor-publish" }
    : { kind: "key", id: run.caller_key_id };
  return {
    run_id: run.id,
    agent,
    started_at: run.started_at ?? run.created_at,
    ended_at: endedAt,
    status,
  };
}
