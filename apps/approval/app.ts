/**
 * The approval service: the gateway the CR8TOR CLI calls. It checks the caller's key and the body, then
 * forwards to the publish and metadata services with their own keys. The runs API (`/runs...`) is the
 * publish service's, forwarded path for path, query string and all, so its `Location` and `next` links
 * stay valid through the gateway.
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
  type CallOptions,
  callSubService,
  DEFAULT_MAX_REPLY_BYTES,
  DEFAULT_STREAM_IDLE_MS,
  streamSubService,
  type SubService,
  type SubServiceReply,
} from "./sub_service.ts";
import {
  cancelRun,
  getRun,
  listRuns,
  packageProject,
  publishProject,
  resumeRun,
  runEvents,
  validateProject,
} from "./routes.ts";

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
  /**
   * How long a relayed run event stream may stay silent before the gateway ends it;
   * {@link DEFAULT_STREAM_IDLE_MS} when absent.
   */
  readonly streamIdleMs?: number | undefined;
  /**
   * Aborted when the grace period of a shutdown is over: every run event stream still relayed is then
   * ended (a client resumes with `Last-Event-ID`), so that open streams never hold the shutdown.
   */
  readonly shutdownSignal?: AbortSignal | undefined;
}

/**
 * The publish service endpoint for a runs API request: the same path (each segment as the caller encoded
 * it) and query string, relative to the publish service's base URL.
 */
function publishEndpointOf(c: Context): string {
  const url = new URL(c.req.url);
  return url.pathname.slice(1) + url.search;
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

  function callOptions(c: Context): CallOptions {
    return {
      fetch: deps.fetch,
      timeoutMs: deps.timeoutMs,
      maxReplyBytes: deps.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
      requestId: requestIdOf(c),
    };
  }

  /** POSTs the request's body to `endpoint`, passing on `Prefer` when `passPrefer` and the caller sent it. */
  async function forward(
    c: Context,
    service: SubService,
    endpoint: string,
    passPrefer = false,
  ): Promise<SubServiceReply> {
    const prefer = passPrefer ? c.req.header("prefer") : undefined;
    return await callSubService(service, {
      method: "POST",
      endpoint,
      body: await c.req.text(),
      headers: prefer === undefined ? {} : { prefer },
    }, callOptions(c));
  }

  /**
   * A sub-service's reply as the gateway's: 2xx becomes success with its payload, anything else passes
   * through. A 202 (an accepted run) passes through unchanged with its `Location` and
   * `Preference-Applied`.
   */
  function relay(c: Context, reply: SubServiceReply): Response {
    if (reply.status === 202) return relayUnchanged(c, reply);
    if (reply.status >= 200 && reply.status < 300) {
      const payload = "payload" in reply.body ? reply.body.payload : reply.body;
      return c.json({ status: "success", payload }, 200);
    }
    return c.json(reply.body, reply.status as ContentfulStatusCode);
  }

  /** A publish service reply as it came: status, body and the relayed headers. */
  function relayUnchanged(c: Context, reply: SubServiceReply): Response {
    for (const [name, value] of Object.entries(reply.headers)) c.header(name, value);
    return c.json(reply.body, reply.status as ContentfulStatusCode);
  }

  /** Forwards a runs API call to the publish service at the same path and query string. */
  async function forwardRuns(c: Context, method: "GET" | "POST"): Promise<Response> {
    const reply = await callSubService(deps.publish, {
      method,
      endpoint: publishEndpointOf(c),
    }, callOptions(c));
    return relayUnchanged(c, reply);
  }

  app.openapi(validateProject, async (c) => {
    const checked = await forward(c, deps.publish, "data-publish/validate");
    if (checked.status < 200 || checked.status >= 300) return relay(c, checked) as never;
    return relay(c, await forward(c, deps.metadata, "metadata/project")) as never;
  });

  app.openapi(packageProject, async (c) => {
    return relay(c, await forward(c, deps.publish, "data-publish/package", true)) as never;
  });

  app.openapi(publishProject, async (c) => {
    const reply = await forward(c, deps.publish, "data-publish/publish", true);
    const published = reply.status === 200 ? publishedOutput(reply.body.payload) : undefined;
    if (published !== undefined) recordAuditOutput(c, published);
    return relay(c, reply) as never;
  });

  app.openapi(getRun, async (c) => await forwardRuns(c, "GET") as never);
  app.openapi(listRuns, async (c) => await forwardRuns(c, "GET") as never);
  app.openapi(cancelRun, async (c) => await forwardRuns(c, "POST") as never);
  app.openapi(resumeRun, async (c) => await forwardRuns(c, "POST") as never);

  app.openapi(runEvents, async (c) => {
    const lastEventId = c.req.header("last-event-id");
    const reply = await streamSubService(deps.publish, {
      method: "GET",
      endpoint: publishEndpointOf(c),
      headers: {
        accept: "text/event-stream",
        ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }),
      },
    }, {
      ...callOptions(c),
      idleMs: deps.streamIdleMs ?? DEFAULT_STREAM_IDLE_MS,
      signal: deps.shutdownSignal === undefined
        ? c.req.raw.signal
        : AbortSignal.any([c.req.raw.signal, deps.shutdownSignal]),
    });
    if (!("contentType" in reply)) return relayUnchanged(c, reply) as never;
    return new Response(reply.body, {
      status: reply.status,
      headers: {
        "content-type": reply.contentType,
        "cache-control": "no-cache",
        // Tells a buffering proxy in front of the gateway (ingress-nginx) to pass events on at once.
        "x-accel-buffering": "no",
        "x-request-id": requestIdOf(c),
      },
    }) as never;
  });

  return app;
}
