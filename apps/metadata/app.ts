/**
 * The metadata service: `POST /metadata/project` describes the tables and columns a request names.
 *
 * @module
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import { describeDataset } from "../../application/describe_dataset.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { type BodyReading, createServiceApp, type ReadinessCheck } from "../_shared/create_app.ts";
import type { RefusalTally } from "../_shared/refusals.ts";
import type { MetricsAccess, ServiceMetrics } from "../_shared/service_metrics.ts";
import { success } from "../_shared/envelope.ts";
import type { Logger } from "../_shared/log.ts";
import { openSource, type SourceAccess } from "../_shared/source_access.ts";
import { projectMetadata } from "./routes.ts";

/** What the metadata service needs. */
export interface MetadataDeps extends SourceAccess {
  readonly apiKey: string;
  readonly log: Logger;
  readonly maxBodyBytes: number;
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

/** Builds the metadata service. */
export function createMetadataApp(deps: MetadataDeps): OpenAPIHono {
  const app = createServiceApp({
    service: "metadata",
    title: "CR8TOR Metadata Service",
    detailPrefix: "MetadataService: ",
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

  app.openapi(projectMetadata, async (c) => {
    const payload = await describeDataset(c.req.valid("json"), {
      openSource: (source, schemaName) => openSource(source, deps, schemaName),
    });
    return c.json(success(payload), 200);
  });

  return app;
}
