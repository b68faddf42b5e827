/**
 * The approval service: the gateway the CR8TOR CLI calls. It checks the caller's key and the body, then
 * forwards to the publish and metadata services with their own keys.
 *
 * @module
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { publishedOutput } from "../../domain/audit.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { recordAuditOutput } from "../_shared/audit.ts";
import { type BodyReading, createServiceApp, type ReadinessCheck } from "../_shared/create_app.ts";
import type { RefusalTally } from "../_shared/refusals.ts";
import type { MetricsAccess, ServiceMetrics } from "../_shared/service_metrics.ts";
import { requestIdOf } from "../_shared/http_errors.ts";
import type { Logger } from "../_shared/log.ts";
import {
  callSubService,
  DEFAULT_MAX_REPLY_BYTES,
  type SubService,
  type SubServiceReply,
} from "./sub_service.ts";
import { packageProject, publishProject, validateProject } from "./routes.ts";

/** What the gateway needs. */
export interface ApprovalDeps {
  readonly apiKey: string;
  readonly log: Logger;
  readonly maxBodyBytes: number;
  readonly metadata: SubService;
  readonly publish: SubService;
  /** How long to wait for a sub-service (package can take long). */
  readonly timeoutMs: number;
  /** How long `/ready` waits for a sub-service's `/health`. */
  readonly readyTimeoutMs: number;
  readonly fetch: typeof fetch;
  /** Where every POST is recorded; without it the gateway keeps no audit trail. */
  readonly auditTrail?: AuditTrail | undefined;
  /** Time and concurrency limits on reading request bodies; the defaults when absent. */
  readonly bodyReading?: BodyReading | undefined;
  /** Counts key refusals (the composition root closes it at shutdown); a default one when absent. */
  readonly refusals?: RefusalTally | undefined;
  /** What the service counts for `GET /metrics`; nothing is counted or served when absent. */
  readonly metrics?: ServiceMetrics | undefined;
  /** Who may read `GET /metrics` besides a caller with the key. */
  readonly metricsAccess?: MetricsAccess | undefined;
  /**
   * The largest sub-service reply the gateway reads (`SUBSERVICE_MAX_REPLY_BYTES`); a larger one is refused
   * with 502 `sub_service_reply_too_large`. {@link DEFAULT_MAX_REPLY_BYTES} when absent.
   */
  readonly maxReplyBytes?: number | undefined;
}

/** Builds the gateway. */
export function createApprovalApp(deps: ApprovalDeps): OpenAPIHono {
  const app = createServiceApp({
    service: "approval",
    title: "CR8TOR Approval Service",
    detailPrefix: "",
    apiKey: deps.apiKey,
    log: deps.log,
    maxBodyBytes: deps.maxBodyBytes,
    readiness: () => Promise.all([deps.metadata, deps.publish].map(healthCheck)),
    auditTrail: deps.auditTrail,
    bodyReading: deps.bodyReading,
    refusals: deps.refusals,
    metrics: deps.metrics,
    metricsAccess: deps.metricsAccess,
  });

  async function healthCheck(service: SubService): Promise<ReadinessCheck> {
    const name = `${service.name} service`;
    try {
      const res = await deps.fetch(new URL("health", service.baseUrl), {
        signal: AbortSignal.timeout(deps.readyTimeoutMs),
      });
      await res.body?.cancel();
      return res.ok
        ? { name, ok: true }
        : { name, ok: false, detail: `health answered ${res.status}` };
    } catch {
      return { name, ok: false, detail: `cannot reach ${service.baseUrl}` };
    }
  }

  async function forward(
    c: Context,
    service: SubService,
    endpoint: string,
  ): Promise<SubServiceReply> {
    return await callSubService(service, endpoint, await c.req.text(), {
      fetch: deps.fetch,
      timeoutMs: deps.timeoutMs,
      maxReplyBytes: deps.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
      requestId: requestIdOf(c),
    });
  }

  /** A sub-service's reply as the gateway's: 2xx becomes success with its payload, anything else passes through. */
  function relay(c: Context, reply: SubServiceReply): Response {
    if (reply.status >= 200 && reply.status < 300) {
      const payload = "payload" in reply.body ? reply.body.payload : reply.body;
      return c.json({ status: "success", payload }, 200);
    }
    return c.json(reply.body, reply.status as ContentfulStatusCode);
  }

  app.openapi(validateProject, async (c) => {
    const checked = await forward(c, deps.publish, "data-publish/validate");
    if (checked.status < 200 || checked.status >= 300) return relay(c, checked) as never;
    return relay(c, await forward(c, deps.metadata, "metadata/project")) as never;
  });

  app.openapi(packageProject, async (c) => {
    return relay(c, await forward(c, deps.publish, "data-publish/package")) as never;
  });

  app.openapi(publishProject, async (c) => {
    const reply = await forward(c, deps.publish, "data-publish/publish");
    const published = reply.status === 200 ? publishedOutput(reply.body.payload) : undefined;
    if (published !== undefined) recordAuditOutput(c, published);
    return relay(c, reply) as never;
  });

  return app;
}
