/**
 * The publish service: validate a source and destination, package approved data into staging, publish it.
 * Package and publish are runs (`application/runs.ts`, `docs/runs.md`): stored first, then executed; the
 * `/runs` routes read, follow, cancel and resume them.
 *
 * @module
 */
import { byteStream } from "../_shared/byte_stream.ts";
import { nextLinkHeader } from "../_shared/next_link.ts";
import { hawkPayloadHash } from "../../adapters/hawk/hawk_request_verifier.ts";
import {
  checksDisclosure,
  DEFAULT_DISCLOSURE_CHECK_SETTING,
  DEFAULT_SMALL_CELL_THRESHOLD,
  type DisclosureCheckSetting,
} from "../../domain/disclosure.ts";
import type { Context } from "hono";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { checkAccess } from "../../application/check_access.ts";
import { destinationChooser, type PostgresqlDestination } from "../../application/destinations.ts";
import { packageDataset } from "../../application/package_dataset.ts";
import { ProjectLocks } from "../../application/project_locks.ts";
import { publishDataset } from "../../application/publish_dataset.ts";
import { releaseSigning } from "../../application/release_provenance.ts";
import { SOFTWARE_NAME, SOFTWARE_VERSION } from "../../domain/service_identity.ts";
import type { ReleaseSigner } from "../../ports/release_signer.ts";
import { revokeRelease } from "../../application/revoke_release.ts";
import {
  listReleaseTables,
  readReleaseRows,
  type ReleaseReaders,
  type RowsPage,
} from "../../application/read_release.ts";
import { readCursorKey } from "../../domain/release_read.ts";
import {
  InvalidRunQueryError,
  RunCancelledError,
  Runner,
  type RunResult,
  type RunWork,
  type SettledRun,
} from "../../application/runs.ts";
import type { SourceOpener } from "../../application/source.ts";
import { auditKeyId, auditRequestFields } from "../../domain/audit.ts";
import { RunInterruptedError } from "../../domain/interruption.ts";
import {
  DataContractPublishRequest,
  DataContractTransferRequest,
  type Destination as RequestDestination,
  PublishServicePackageRequest,
  PublishServicePublishRequest,
} from "../../domain/contract.ts";
import {
  type NewRunInput,
  type Run,
  RUN_STATES,
  type RunAction,
  type RunState,
  runView,
} from "../../domain/run.ts";
import { sourceEngine } from "../../domain/source_engine.ts";
import {
  type DeletionCertificate,
  deletionCertificateSchema,
  PublicationRevokedError,
  PublishServiceRevokeRequest,
  type RecordedItem,
  type RevocationMode,
} from "../../domain/revocation.ts";
import { AppError } from "../../domain/errors.ts";
import { MemoryRunStore } from "../../adapters/memory/memory_run_store.ts";
import type { DatasetWriter } from "../../ports/dataset_writer.ts";
import type { Filestore } from "../../ports/filestore.ts";
import { UnknownDestinationError } from "../../ports/filestore.ts";
import type { QuarantinedFiles } from "../../ports/quarantine.ts";
import { packageUpload } from "../../application/package_upload.ts";
import { UploadsOffError } from "../../domain/upload_files.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { MAX_RUN_PAGE_SIZE, type RunStore } from "../../ports/run_store.ts";
import { recordAuditOutput } from "../_shared/audit.ts";
import {
  DataReadAudit,
  DEFAULT_DATA_READ_FLUSH_MS,
  recordReadPage,
} from "../_shared/data_read_audit.ts";
import { type BodyReading, createServiceApp, type ReadinessCheck } from "../_shared/create_app.ts";
import type { RefusalTally } from "../_shared/refusals.ts";
import type { MetricsAccess, ServiceMetrics } from "../_shared/service_metrics.ts";
import { success } from "../_shared/envelope.ts";
import { errorOutcome } from "../_shared/http_errors.ts";
import { requestIdOf, requestLogFields } from "../_shared/request_ids.ts";
import type { Logger } from "../_shared/log.ts";
import { openSource, type SourceAccess } from "../_shared/source_access.ts";
import { filestoreOf, HttpSources } from "./http_sources.ts";
import {
  cancelRunRoute,
  getRunRoute,
  listRunsRoute,
  packageRoute,
  packageUploadRoute,
  publishRoute,
  readRowsRoute,
  readTablesRoute,
  releaseKeysRoute,
  resumeRunRoute,
  revokeRoute,
  runEventsRoute,
  stagingRoute,
  validateRoute,
} from "./routes.ts";

/** What the publish service needs. */
export interface PublishDeps extends SourceAccess {
  readonly apiKey: string;
  readonly log: Logger;
  readonly maxBodyBytes: number;
  /** The upload quarantine area (`UPLOAD_QUARANTINE_PATH`, `docs/uploads.md`); uploads are off without. */
  readonly quarantine?: QuarantinedFiles | undefined;
  /** Filestore destinations by upper-case name (`LSC` for `TARGET_STORAGE_ACCOUNT_LSC_SDE_MNT_PATH`). */
  readonly filestores: ReadonlyMap<string, Filestore>;
  /** The PostgreSQL destination, when this deployment has one (`DESTINATION_POSTGRESQL_HOST`). */
  readonly postgresql?: PostgresqlDestination;
  /** One writer per filestore format. */
  readonly writers: Readonly<Record<"csv" | "duckdb", DatasetWriter>>;
  /** How many tables of one request are extracted at the same time. */
  readonly concurrency: number;
  /** Rows per batch read from a source. */
  readonly batchRows: number;
  /**
   * The disclosure pre-checks of packaged tables (`DISCLOSURE_CHECKS`, `SMALL_CELL_THRESHOLD`): which
   * packages get them (`checksDisclosure`) and the threshold; absent, `requested` with the default one.
   */
  readonly disclosureChecks?: {
    readonly setting: DisclosureCheckSetting;
    readonly smallCellThreshold: number;
  } | undefined;
  /** Bytes per batch read from a source (see `RowBatcher`). */
  readonly batchBytes: number;
  /** The largest value read from a source; a larger one fails the package (`ValueTooLargeError`). */
  readonly maxValueBytes: number;
  readonly readiness: () => Promise<readonly ReadinessCheck[]>;
  /** Where every POST is recorded; without it the service keeps no audit trail. */
  readonly auditTrail?: AuditTrail | undefined;
  /**
   * Where the reads of `/data-publish/read/*` are recorded, batched (`data_reads`, `docs/audit.md`)
   * instead of one operation record per page (the composition root closes it at shutdown); absent, one
   * of its own over `auditTrail` with the default period.
   */
  readonly readAudit?: DataReadAudit | undefined;
  /** Time and concurrency limits on reading request bodies; the defaults when absent. */
  readonly bodyReading?: BodyReading | undefined;
  /** Counts key refusals (the composition root closes it at shutdown); a default one when absent. */
  readonly refusals?: RefusalTally | undefined;
  /** What the service counts for `GET /metrics`; nothing is counted or served when absent. */
  readonly metrics?: ServiceMetrics | undefined;
  /** Who may read `GET /metrics` besides a caller with the key. */
  readonly metricsAccess?: MetricsAccess | undefined;
  /**
   * What a revocation does with a filestore release (`REVOCATION_MODE`): `delete` (default) or
   * `quarantine` (moved to the filestore's owner-only `revoked/` area).
   */
  readonly revocationMode?: RevocationMode | undefined;
  /** Where runs are kept; an in-memory store (nothing survives the process) when absent. */
  readonly runStore?: RunStore | undefined;
  /** See `RunnerOptions.leaseMs`; default 30 s. */
  readonly runLeaseMs?: number | undefined;
  /** See `RunnerOptions.pollMs`; default 1 s. */
  readonly runPollMs?: number | undefined;
  /**
   * Signs each release's receipt and serves its public keys (`docs/provenance.md`); without it,
   * publish builds no crate or receipt and `GET /.well-known/release-keys` lists no key.
   */
  readonly releaseSigner?: ReleaseSigner | undefined;
  /** `RELEASE_LICENSE`: the licence every release's crate names; {@link DEFAULT_RELEASE_LICENSE} when absent. */
  readonly releaseLicense?: { readonly id: string; readonly name: string } | undefined;
  /** See `RunnerOptions.dispatch` (`RUN_EXECUTOR=kubernetes`); absent, runs execute in this process. */
  readonly runDispatch?: ((run: Run) => Promise<void>) | undefined;
  /** The HTTP-file sources (`HTTP_FILE_SOURCES_FILE`, `docs/http-sources.md`); none when absent. */
  readonly httpSources?: HttpSources | undefined;
  /**
   * What `/data-publish/read/*` reads published releases through (`docs/data-read.md`); without it, every
   * destination those routes name is unknown.
   */
  readonly releaseReaders?: ReleaseReaders | undefined;
}

/**
 * The licence a release's crate names unless `RELEASE_LICENSE` says otherwise: none is granted beyond
 * the project's data access agreement, which an SDE's releases are always bound by.
 */
export const DEFAULT_RELEASE_LICENSE = {
  id: "LicenseRef-cr8tor-data-access-agreement",
  name: "Released under the project's data access agreement; no other licence is granted",
} as const;

/** The publish service: its app and its runner (the composition root closes the runner at shutdown). */
export interface PublishService {
  readonly app: OpenAPIHono;
  readonly runner: Runner;
}

/** The PostgreSQL destination, as an HTTP-file source with `postgresql: true` loads into it. */
const POSTGRESQL: RequestDestination = { type: "postgresql", name: "", format: "sql" };

/** The default and largest page of `GET /runs`. */
const DEFAULT_RUN_PAGE_SIZE = 50;

/** A comment line sent on an idle event stream so that proxies keep it open. */
const KEEP_ALIVE_MS = 15_000;

/** Builds the publish service's app (its runner is closed with the process). */
export function createPublishApp(deps: PublishDeps): OpenAPIHono {
  return createPublishService(deps).app;
}

/** Builds the publish service: the app and the runner its package and publish routes go through. */
export function createPublishService(deps: PublishDeps): PublishService {
  const style = { detailPrefix: "PublishService: " };
  const app = createServiceApp({
    service: "publish",
    title: "CR8TOR Publish Service",
    detailPrefix: style.detailPrefix,
    apiKey: deps.apiKey,
    log: deps.log,
    maxBodyBytes: deps.maxBodyBytes,
    readiness: deps.readiness,
    auditTrail: deps.auditTrail,
    reads: {
      actions: new Map([
        [readTablesRoute.path, "list_tables"],
        [readRowsRoute.path, "read_rows"],
      ]),
      audit: deps.readAudit ?? new DataReadAudit({
        service: "publish",
        log: deps.log,
        trail: deps.auditTrail,
        flushMs: DEFAULT_DATA_READ_FLUSH_MS,
      }),
    },
    bodyReading: deps.bodyReading,
    refusals: deps.refusals,
    metrics: deps.metrics,
    metricsAccess: deps.metricsAccess,
  });

  const locks = new ProjectLocks();
  // Configuration problems (an unknown filestore, no PostgreSQL destination) are reported by choosing
  // the destination, before the source is touched.
  const destinationFor = destinationChooser(deps);
  const openSourceOf: SourceOpener = (source, schemaName) => openSource(source, deps, schemaName);
  const limits = {
    concurrency: deps.concurrency,
    batchRows: deps.batchRows,
    batchBytes: deps.batchBytes,
    maxValueBytes: deps.maxValueBytes,
  };
  const disclosure = deps.disclosureChecks ??
    { setting: DEFAULT_DISCLOSURE_CHECK_SETTING, smallCellThreshold: DEFAULT_SMALL_CELL_THRESHOLD };
  const httpSources = deps.httpSources ?? HttpSources.none();

  app.openapi(validateRoute, async (c) => {
    const request = c.req.valid("json");
    const destination = destinationFor(request.destination);
    const reply = await checkAccess(request, { destination, openSource: openSourceOf });
    return c.json(success(reply), 200);
  });

  const keyId = auditKeyId(deps.apiKey);

  /** A run's work, from its stored request: the same use cases the synchronous routes always ran. */
  function workOf(run: Run): RunWork {
    if (run.action === "package") {
      const request = PublishServicePackageRequest.parse(run.request);
      const checked = checksDisclosure(disclosure.setting, request.disclosure_checks);
      return async ({ signal, onProgress, onExpectedRows, onTableChecked, reuse }) => {
        const destination = destinationFor(request.destination);
        if (request.disclosure_checks === true && !checked) {
          // The gateway asked (a gate before publish covers the destination): approvers will see
          // the dataset listed as unchecked.
          deps.log.warn("disclosure_checks_off", {
            run_id: run.id,
            project: request.project_name,
            schema: request.dataset.schema_name,
          });
        }
        const staged = await packageDataset(
          request,
          { destination, openSource: openSourceOf, locks },
          {
            ...limits,
            disclosure: checked ? { smallCellThreshold: disclosure.smallCellThreshold } : undefined,
            signal,
            onProgress,
            onExpectedRows,
            onTableChecked,
            reuse,
          },
        );
        return {
          status: 200,
          body: success({ data_retrieved: staged.dataRetrieved }) as RunResult["body"],
          audit: staged.audit,
          logFields: staged.logFields,
        };
      };
    }
    if (run.action === "revoke") return revokeWorkOf(run);
    if (run.action === "fetch") {
      return httpSources.workOf(run, {
        allowedSources: deps.allowedSources,
        filestoreOf: filestoreOf(deps.filestores),
        postgresql: () => ({ destination: destinationFor(POSTGRESQL), limits }),
      });
    }
    const request = PublishServicePublishRequest.parse(run.request);
    const signer = deps.releaseSigner;
    const release = signer === undefined ? undefined : () =>
      releaseSigning(request, run, {
        runs: runner.store,
        signer,
        service: { name: SOFTWARE_NAME, version: SOFTWARE_VERSION },
        license: deps.releaseLicense ?? DEFAULT_RELEASE_LICENSE,
      });
    return async ({ signal, onProgress }) => {
      const destination = destinationFor(request.destination);
      // A run whose release was revoked (or is being revoked) is never published again.
      const revocations = await revocationsOf(request);
      if (revocations.some((r) => r.state !== "cancelled")) {
        throw new PublicationRevokedError(request.project_name, request.project_start_time);
      }
      const published = await publishDataset(request, { destination, locks, release }, {
        signal,
        onProgress,
      });
      const signed = published.release;
      return {
        status: 200,
        body: success({
          data_published: published.dataPublished,
          ...(signed === undefined ? {} : { receipt: signed.receipt, crate: signed.crate }),
        }) as unknown as RunResult["body"],
        audit: published.audit,
        logFields: published.logFields,
      };
    };
  }

  /**
   * A revocation's work. A revocation of the same release that succeeded before gives its certificate
   * again; one that failed, was cancelled or interrupted gives what it recorded (the items it removed).
   */
  function revokeWorkOf(run: Run): RunWork {
    const request = PublishServiceRevokeRequest.parse(run.request);
    return async ({ signal, onProgress, checkpoint, recorded }) => {
      const destination = destinationFor(request.destination);
      const earlier = (await revocationsOf(request)).filter((r) =>
        r.id !== run.id && releaseIdOf(r) === request.release_id
      );
      const done = earlier.map(certificateOf).find((c) => c !== undefined);
      if (done !== undefined) {
        return {
          status: 200,
          body: success({ certificate: done }) as RunResult["body"],
          audit: { certificate: done },
          logFields: { release_id: done.release_id, repeated: true },
        };
      }
      const attempts = [...earlier, run].sort((a, b) => a.created_at < b.created_at ? -1 : 1);
      const items = new Map<string, RecordedItem>();
      for (const attempt of attempts) {
        for (const table of attempt.tables) {
          if (table.state !== "done") continue;
          items.set(table.name, { rows: table.rows, bytes: table.bytes, sha512: table.sha512 });
        }
      }
      for (const [name, item] of recorded) items.set(name, item);
      const revoked = await revokeRelease(
        request,
        { destination, locks, mode: deps.revocationMode ?? "delete" },
        { signal, onProgress, checkpoint, recorded: items, startedAt: attempts[0]!.created_at },
      );
      return {
        status: 200,
        body: success({ certificate: revoked.certificate }) as RunResult["body"],
        audit: { certificate: revoked.certificate },
        logFields: revoked.logFields,
      };
    };
  }

  /** The revoke runs (any state) of the request's run: same project, start time and destination. */
  async function revocationsOf(
    request: DataContractPublishRequest,
  ): Promise<Run[]> {
    const found: Run[] = [];
    let cursor: string | undefined;
    do {
      const page = await runner.store.list({
        project: request.project_name,
        limit: MAX_RUN_PAGE_SIZE,
        ...(cursor === undefined ? {} : { cursor }),
      });
      found.push(
        ...page.runs.filter((r) =>
          r.action === "revoke" && r.project_name === request.project_name &&
          r.project_start_time === request.project_start_time &&
          r.destination.type === request.destination.type &&
          r.destination.name === request.destination.name
        ),
      );
      cursor = page.nextCursor ?? undefined;
    } while (cursor !== undefined);
    return found;
  }

  const runner = new Runner({
    store: deps.runStore ?? new MemoryRunStore(),
    workOf,
    outcomeOfError: (error) => errorOutcome(error, style),
    metrics: deps.metrics,
    auditTrail: deps.auditTrail,
    service: "publish",
    log: deps.log,
    leaseMs: deps.runLeaseMs,
    pollMs: deps.runPollMs,
    dispatch: deps.runDispatch,
  });

  /** Starts a run of a validated request; `Prefer: respond-async` gets 202 at once, else its reply. */
  async function runRequest(
    c: Context,
    action: RunAction,
    request: DataContractTransferRequest | DataContractPublishRequest | PublishServiceRevokeRequest,
    logEvent: string,
  ): Promise<Response> {
    // Configuration problems (an unknown filestore, no PostgreSQL destination) are refused before a run
    // is stored, as before runs existed.
    destinationFor(request.destination);
    return await startRun(c, runInputOf(action, request, await keyId), logEvent, {
      project: request.project_name,
      start_time: request.project_start_time,
      ...("dataset" in request ? { schema: request.dataset.schema_name } : {}),
    });
  }

  /** Starts a run; `Prefer: respond-async` gets 202 at once, else its reply (logged as `logEvent`). */
  async function startRun(
    c: Context,
    input: NewRunInput,
    logEvent: string,
    logFields: Readonly<Record<string, unknown>>,
  ): Promise<Response> {
    const async = prefersAsync(c);
    // A synchronous caller's own audit record (the middleware's) carries the run's end.
    const started = await runner.start(input, { recordedByCaller: !async });
    if (async) {
      c.header("Location", `/runs/${started.run.id}`);
      c.header("Preference-Applied", "respond-async");
      return c.json(success(runView(started.run)), 202);
    }
    const settled = await runner.settled(started.run.id);
    return replyOf(c, settled, (result) => {
      deps.log.info(logEvent, { ...requestLogFields(c), ...logFields, ...result.logFields });
      recordAuditOutput(c, result.audit);
    });
  }

  app.openapi(
    packageRoute,
    (c) => runRequest(c, "package", c.req.valid("json"), "packaged") as never,
  );

  app.openapi(
    publishRoute,
    (c) => runRequest(c, "publish", c.req.valid("json"), "published") as never,
  );

  app.openapi(
    revokeRoute,
    (c) => runRequest(c, "revoke", c.req.valid("json"), "revoked") as never,
  );

  httpSources.routes(app, async (source, c) => {
    // Configuration problems are refused before a run is stored.
    filestoreOf(deps.filestores)(source.destination);
    if (source.postgresql) destinationFor(POSTGRESQL);
    const input = await httpSources.requestedRunInput(runner, source, await keyId);
    return await startRun(c, input, "fetched", {
      project: source.project_name,
      source: source.name,
    });
  });

  app.openapi(packageUploadRoute, async (c) => {
    const request = c.req.valid("json");
    if (deps.quarantine === undefined) throw new UploadsOffError();
    const filestore = deps.filestores.get(request.destination.name.toUpperCase());
    if (filestore === undefined) throw new UnknownDestinationError(request.destination.name);
    const run = { project: request.project_name, startTime: request.project_start_time };
    const files = await packageUpload(filestore, deps.quarantine, run, request.files);
    deps.log.info("upload_packaged", {
      ...requestLogFields(c),
      project: request.project_name,
      start_time: request.project_start_time,
      files: files.length,
    });
    const staging = await filestore.staging(run);
    return c.json(success({ files, staging_digest: staging.digest }), 200);
  });

  app.openapi(stagingRoute, async (c) => {
    const request = c.req.valid("json");
    const destination = destinationFor(request.destination);
    const staging = await destination.staging({
      project: request.project_name,
      startTime: request.project_start_time,
    });
    return c.json(
      success({
        staging_digest: staging.digest,
        tables: [...staging.tables],
        unchecked_datasets: [...staging.uncheckedDatasets],
      }),
      200,
    );
  });

  app.openapi(getRunRoute, async (c) => {
    const run = await runner.get(c.req.valid("param").id);
    return c.json(success(runView(run)), 200);
  });

  app.openapi(listRunsRoute, async (c) => {
    const query = c.req.valid("query");
    const limit = query.limit === undefined ? DEFAULT_RUN_PAGE_SIZE : Number(query.limit);
    if (!/^\d{1,4}$/.test(query.limit ?? "50") || limit < 1 || limit > MAX_RUN_PAGE_SIZE) {
      throw new InvalidRunQueryError(
        `Cannot list runs: limit must be an integer from 1 to ${MAX_RUN_PAGE_SIZE}`,
      );
    }
    if (query.state !== undefined && !(RUN_STATES as readonly string[]).includes(query.state)) {
      throw new InvalidRunQueryError(
        `Cannot list runs: state must be one of ${RUN_STATES.join(", ")}`,
      );
    }
    const page = await runner.store.list({
      limit,
      ...(query.project === undefined ? {} : { project: query.project }),
      ...(query.state === undefined ? {} : { state: query.state as RunState }),
      ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
    });
    let next: string | null = null;
    if (page.nextCursor !== null) {
      const params = new URLSearchParams();
      if (query.project !== undefined) params.set("project", query.project);
      if (query.state !== undefined) params.set("state", query.state);
      if (query.limit !== undefined) params.set("limit", query.limit);
      params.set("cursor", page.nextCursor);
      next = `/runs?${params}`;
    }
    return c.json(success({ runs: page.runs.map(runView), next }), 200);
  });

  app.openapi(runEventsRoute, async (c) => {
    const { id } = c.req.valid("param");
    await runner.get(id);
    const after = Number(c.req.header("last-event-id") ?? "0");
    return runEvents(runner, id, Number.isSafeInteger(after) && after > 0 ? after : 0) as never;
  });

  app.openapi(cancelRunRoute, async (c) => {
    const run = await runner.cancel(c.req.valid("param").id);
    return c.json(success(runView(run)), 200);
  });

  app.openapi(resumeRunRoute, async (c) => {
    const run = await runner.resume(c.req.valid("param").id);
    c.header("Location", `/runs/${run.id}`);
    return c.json(success(runView(run)), 202);
  });

  const readers: ReleaseReaders = deps.releaseReaders ?? { filestores: new Map() };
  // Cursors are signed with a key derived from the service key: every replica issues and accepts the
  // same cursors, and a rotated key ends the paging in progress (`invalid_cursor`, start again).
  const cursorKey = readCursorKey(deps.apiKey);

  app.openapi(readTablesRoute, async (c) => {
    const tables = await listReleaseTables(c.req.valid("json"), { readers });
    return c.json(
      success({
        tables: tables.map((t) => ({
          name: t.name,
          dataset: t.dataset,
          columns: t.columns.map((col) => ({ ...col })),
          key: [...t.key],
        })),
      }),
      200,
    );
  });

  app.openapi(readRowsRoute, async (c) => {
    const page = await readReleaseRows(c.req.valid("json"), { readers, cursorKey });
    recordReadPage(c, { rows: page.rowCount, cursorOut: page.cursor });
    return rowsReply(page) as never;
  });

  app.openapi(releaseKeysRoute, async (c) => {
    const keys = deps.releaseSigner === undefined
      ? { keys: [] }
      : await deps.releaseSigner.keySet();
    c.header("Cache-Control", "no-cache");
    return c.json({ keys: [...keys.keys] }, 200);
  });

  return { app, runner };
}

const encoder = new TextEncoder();

/**
 * The reply of `/data-publish/read/rows`: the envelope around the page's rows, which a destination may
 * have encoded as JSON already (they are put in as they are, never parsed again). Its headers tell the
 * gateway what it needs without reading the page: `x-rows-returned`, `Link` to the next page, and
 * `x-hawk-payload-hash`, the page's HAWK payload hash, which the gateway signs its relay of the page with.
 */
function rowsReply(page: RowsPage): Response {
  const field = page.orientation === "tabular" ? "rows" : "records";
  const placeholder = "\u0000rows\u0000";
  const envelope = JSON.stringify(
    success({ table: page.table, columns: page.columns, [field]: placeholder, next: page.next }),
  );
  const [before, after] = envelope.split(JSON.stringify(placeholder)) as [string, string];
  let rows: Uint8Array;
  if (page.rows.kind === "json") {
    rows = page.rows.json;
  } else {
    const columns = page.columns;
    const values = page.rows.values;
    const text = JSON.stringify(
      page.orientation === "tabular"
        ? values
        : values.map((row) => Object.fromEntries(columns.map((c, i) => [c.name, row[i] ?? null]))),
    );
    rows = encoder.encode(text.slice(1, -1));
  }
  // The parts as they are, not joined: a page is megabytes, and a copy of it costs time and memory.
  const parts = [encoder.encode(before + "["), rows, encoder.encode("]" + after)];
  const headers: Record<string, string> = {
    "content-type": "application/json",
    // Known: the server sends the page with its length, not chunked.
    "content-length": String(parts.reduce((size, part) => size + part.length, 0)),
    "x-rows-returned": String(page.rowCount),
    "x-hawk-payload-hash": hawkPayloadHash(parts, "application/json"),
  };
  if (page.next !== null) headers["link"] = nextLinkHeader(page.next);
  return new Response(byteStream(parts), { status: 200, headers });
}

/** Whether the request asks to be answered before the work is done (`Prefer: respond-async`). */
function prefersAsync(c: Context): boolean {
  return (c.req.header("prefer") ?? "").split(",").some((p) =>
    p.split(";")[0]!.trim().toLowerCase() === "respond-async"
  );
}

/** The release a revoke run revokes, from its stored request. */
function releaseIdOf(run: Run): string | undefined {
  const parsed = PublishServiceRevokeRequest.safeParse(run.request);
  return parsed.success ? parsed.data.release_id : undefined;
}

/** The certificate a succeeded revoke run replied with. */
function certificateOf(run: Run): DeletionCertificate | undefined {
  if (run.state !== "succeeded") return undefined;
  const body = run.outcome?.body as { payload?: { certificate?: unknown } } | null | undefined;
  const parsed = deletionCertificateSchema.safeParse(body?.payload?.certificate);
  return parsed.success ? parsed.data : undefined;
}

/** What a run stores of a package, publish or revoke request (the routes', and the operator's). */
export function runInputOf(
  action: RunAction,
  request: DataContractTransferRequest | DataContractPublishRequest | PublishServiceRevokeRequest,
  callerKeyId: string,
): NewRunInput {
  const named = auditRequestFields(request);
  return {
    action,
    project_name: request.project_name,
    project_start_time: request.project_start_time,
    dataset: "dataset" in request
      ? {
        source_host: named.source_host,
        source_engine: sourceEngine(request.source),
        schema_name: request.dataset.schema_name,
        tables: named.tables,
      }
      : { source_host: null, source_engine: null, schema_name: "", tables: null },
    destination: destinationOf(request.destination),
    caller_key_id: callerKeyId,
    request: JSON.parse(JSON.stringify(request)),
  };
}

function destinationOf(destination: RequestDestination): NewRunInput["destination"] {
  return { type: destination.type, name: destination.name, format: destination.format };
}

/**
 * The synchronous reply of a settled run: a run of this process replies with its own result or throws
 * its own error (so the reply is exactly what it was before runs); a run of another process replies with
 * its stored outcome, under this request's id.
 */
function replyOf(c: Context, settled: SettledRun, onResult: (result: RunResult) => void): Response {
  const { run } = settled;
  if (run.state === "cancelled") throw new RunCancelledError(run.id);
  if (settled.result !== undefined && run.state === "succeeded") {
    onResult(settled.result);
    return c.json(settled.result.body, settled.result.status as 200);
  }
  // A shutdown past its grace period closes the connections too: the work's own error (a 502) is the
  // reply, as before runs; a work that simply stopped on its signal is `run_interrupted`.
  if (run.state === "interrupted" && !(settled.error instanceof AppError)) {
    throw new RunInterruptedError(run.id);
  }
  if (settled.error !== undefined) throw settled.error;
  const outcome = run.outcome ?? { status: 500, body: null };
  const body = outcome.body as { status?: unknown; payload?: Record<string, unknown> } | null;
  // The envelope's keys in their usual order: a PostgreSQL store (jsonb) gives them back reordered.
  if (body?.status === "error" && body.payload !== undefined) {
    const { detail, code, issues } = body.payload;
    return c.json({
      status: "error",
      payload: {
        detail,
        code,
        ...(issues === undefined ? {} : { issues }),
        request_id: requestIdOf(c),
      },
    }, outcome.status as 500);
  }
  if (body?.status === "success") {
    return c.json({ status: "success", payload: body.payload }, outcome.status as 200);
  }
  return c.json(outcome.body, outcome.status as 200);
}

/** The run's changes as server-sent events, from the first version after `afterVersion`. */
function runEvents(runner: Runner, id: string, afterVersion: number): Response {
  const encoder = new TextEncoder();
  const stop = new AbortController();
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      const send = (text: string) => {
        try {
          controller.enqueue(encoder.encode(text));
        } catch {
          stop.abort();
        }
      };
      keepAlive = setInterval(() => send(": keep-alive\n\n"), KEEP_ALIVE_MS);
      (async () => {
        try {
          for await (const run of runner.watch(id, afterVersion, stop.signal)) {
            send(`id: ${run.version}\nevent: run\ndata: ${JSON.stringify(runView(run))}\n\n`);
          }
        } catch {
          // The client went away, the run vanished (pruned) or the store failed: the stream ends.
        } finally {
          clearInterval(keepAlive);
          try {
            controller.close();
          } catch {
            // Already cancelled by the client.
          }
        }
      })();
    },
    cancel() {
      clearInterval(keepAlive);
      stop.abort();
    },
  });
  return new Response(body, {
    status: 200,
    headers: {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
    },
  });
}
