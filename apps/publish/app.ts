/**
 * The publish service: validate a source and destination, package approved data into staging, publish it.
 *
 * @module
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { checkAccess } from "../../application/check_access.ts";
import { destinationChooser, type PostgresqlDestination } from "../../application/destinations.ts";
import { packageDataset } from "../../application/package_dataset.ts";
import { ProjectLocks } from "../../application/project_locks.ts";
import { publishDataset } from "../../application/publish_dataset.ts";
import type { SourceOpener } from "../../application/source.ts";
import type { DatasetWriter } from "../../ports/dataset_writer.ts";
import type { Filestore } from "../../ports/filestore.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { recordAuditOutput } from "../_shared/audit.ts";
import { type BodyReading, createServiceApp, type ReadinessCheck } from "../_shared/create_app.ts";
import type { RefusalTally } from "../_shared/refusals.ts";
import type { MetricsAccess, ServiceMetrics } from "../_shared/service_metrics.ts";
import { success } from "../_shared/envelope.ts";
import { requestLogFields } from "../_shared/request_ids.ts";
import type { Logger } from "../_shared/log.ts";
import { openSource, type SourceAccess } from "../_shared/source_access.ts";
import { packageRoute, publishRoute, validateRoute } from "./routes.ts";

/** What the publish service needs. */
export interface PublishDeps extends SourceAccess {
  readonly apiKey: string;
  readonly log: Logger;
  readonly maxBodyBytes: number;
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
  /** Bytes per batch read from a source (see `RowBatcher`). */
  readonly batchBytes: number;
  /** The largest value read from a source; a larger one fails the package (`ValueTooLargeError`). */
  readonly maxValueBytes: number;
  readonly readiness: () => Promise<readonly ReadinessCheck[]>;
  /** Where every POST is recorded; without it the service keeps no audit trail. */
  readonly auditTrail?: AuditTrail | undefined;
  /** Time and concurrency limits on reading request bodies; the defaults when absent. */
  readonly bodyReading?: BodyReading | undefined;
  /** Counts key refusals (the composition root closes it at shutdown); a default one when absent. */
  readonly refusals?: RefusalTally | undefined;
  /** What the service counts for `GET /metrics`; nothing is counted or served when absent. */
  readonly metrics?: ServiceMetrics | undefined;
  /** Who may read `GET /metrics` besides a caller with the key. */
  readonly metricsAccess?: MetricsAccess | undefined;
}

/** Builds the publish service. */
export function createPublishApp(deps: PublishDeps): OpenAPIHono {
  const app = createServiceApp({
    service: "publish",
    title: "CR8TOR Publish Service",
    detailPrefix: "PublishService: ",
    apiKey: deps.apiKey,
    log: deps.log,
    maxBodyBytes: deps.maxBodyBytes,
    readiness: deps.readiness,
    auditTrail: deps.auditTrail,
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

  app.openapi(validateRoute, async (c) => {
    const request = c.req.valid("json");
    const destination = destinationFor(request.destination);
    const reply = await checkAccess(request, { destination, openSource: openSourceOf });
    return c.json(success(reply), 200);
  });

  app.openapi(packageRoute, async (c) => {
    const request = c.req.valid("json");
    const destination = destinationFor(request.destination);
    const staged = await packageDataset(
      request,
      { destination, openSource: openSourceOf, locks },
      limits,
    );
    deps.log.info("packaged", {
      ...requestLogFields(c),
      project: request.project_name,
      start_time: request.project_start_time,
      schema: request.dataset.schema_name,
      ...staged.logFields,
    });
    recordAuditOutput(c, staged.audit);
    return c.json(success({ data_retrieved: staged.dataRetrieved }), 200);
  });

  app.openapi(publishRoute, async (c) => {
    const request = c.req.valid("json");
    const destination = destinationFor(request.destination);
    const published = await publishDataset(request, { destination, locks });
    deps.log.info("published", {
      ...requestLogFields(c),
      project: request.project_name,
      start_time: request.project_start_time,
      ...published.logFields,
    });
    recordAuditOutput(c, published.audit);
    return c.json(success({ data_published: published.dataPublished }), 200);
  });

  return app;
}
