/**
 * The approval service: the gateway the CR8TOR CLI calls. It checks the caller's key and the body, then
 * forwards to the publish and metadata services with their own keys. The runs API (`/runs...`) is the
 * publish service's, forwarded path for path, query string and all, so its `Location` and `next` links
 * stay valid through the gateway.
 *
 * Every `package` and `publish` records the project run's release (`docs/approvals.md`, `docs/revocation.md`):
 * a publish forwards the release and records its receipt, crate and expiry; `/releases` serves releases,
 * revokes them and serves their crates; an expiry sweep (`ApprovalService.sweepReleases`) revokes
 * expired ones. `GET /.well-known/release-keys` relays the publish service's public receipt keys.
 *
 * With approval gates (`ApprovalDeps.gates`, `docs/approvals.md`), `package` and `publish` pass only once
 * the gates before them are met (else 409 `approval_required`), a gated publish is forwarded with the
 * approved `expected_staging_digest`, a package whose publish is gated asks for the disclosure pre-checks
 * (`disclosure_checks: true`), and `/releases` serves releases and records people's decisions.
 *
 * @module
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ReleaseLifecycle } from "../../application/release_lifecycle.ts";
import {
  type Admission,
  ApprovalRequiredError,
  AwaitingNeedsPersonError,
  InvalidReleaseQueryError,
  Releases,
  type Viewer,
} from "../../application/releases.ts";
import {
  type ApprovalPolicy,
  type GatedStep,
  gatesBefore,
  mayDecideAny,
  mayRevoke,
} from "../../domain/approval_policy.ts";
import { auditKeyId, publishedOutput } from "../../domain/audit.ts";
import {
  NotEntitledToRevokeError,
  type Release,
  RELEASE_STATES,
  releaseRequestOf,
  type ReleaseState,
  type RevocationRequester,
} from "../../domain/release.ts";
import { DataContractTransferRequest } from "../../domain/contract.ts";
import { runSchema } from "../../domain/run.ts";
import { z } from "zod";
import type { PublishRuns, PublishRunSummary } from "../../ports/publish_runs.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import type { Person, PersonVerifier } from "../../ports/identity.ts";
import type { ReleaseStore } from "../../ports/release_store.ts";
import type { DeletionCertificateObject, ReleaseRevoker } from "../../ports/release_revoker.ts";
import type { ReleaseRun, StagingInspector } from "../../ports/staging_inspector.ts";
import {
  PublishRunUnreadableError,
  RevocationFailedError,
  StagingUnavailableError,
  SubServiceProtocolError,
  SubServiceTimeoutError,
  SubServiceUnavailableError,
} from "../_shared/app_errors.ts";
import { addDashboard, type DashboardDeps, UI_PREFIX } from "./ui/dashboard.tsx";
import {
  addDataApi,
  DATA_API_PREFIX,
  dataApiAuthentication,
  type DataApiDeps,
} from "./data_api.ts";
import type { UploadDeps } from "./ui/uploads.tsx";
import { type UploadedDataSource, UploadStepRefusedError } from "../../domain/upload_files.ts";
import type { Requester } from "../../domain/release.ts";
import {
  recordAuditDecision,
  recordAuditOutput,
  recordServiceOperation,
} from "../_shared/audit.ts";
import { success } from "../_shared/envelope.ts";
import { type Credential, personOf } from "../_shared/person_auth.ts";
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
  decideRelease,
  getRelease,
  getReleaseCrate,
  getRun,
  httpSourceFiles,
  listHttpSources,
  listReleases,
  listRuns,
  packageProject,
  publishProject,
  releaseKeys,
  resumeRun,
  revokeRelease,
  runEvents,
  runHttpSource,
  validateProject,
} from "./routes.ts";

/**
 * Approval gates (`APPROVAL_POLICY_FILE`, `docs/approvals.md`): the policy, where releases are kept, and
 * who people are. With them, package and publish pass only once their gates are met, and `/releases`
 * is served.
 */
export interface ApprovalGates {
  readonly policy: ApprovalPolicy;
  readonly store: ReleaseStore;
  readonly verifier: PersonVerifier;
  /** The time now; the system clock when absent (tests pass their own). */
  readonly now?: (() => Date) | undefined;
}

/** The default page size of `GET /releases`. */
export const DEFAULT_RELEASE_PAGE_SIZE = 50;

/**
 * Which credential a gateway route takes when people sign in: decisions and revocations a person's token
 * only, reading releases either, everything else the key only.
 */
export function gatewayCredentialFor(c: Context): Credential {
  // Scripts' uploads (`docs/uploads.md`) are a person's, never the key's.
  if (c.req.path.startsWith("/uploads/")) return "person";
  if (c.req.path !== "/releases" && !c.req.path.startsWith("/releases/")) return "key";
  return c.req.method === "GET" || c.req.method === "HEAD" ? "key_or_person" : "person";
}

/** What the gateway needs. */
export interface ApprovalDeps {
  /** Approval gates; without them the gateway forwards package and publish as it always did. */
  readonly gates?: ApprovalGates | undefined;
  /**
   * Where releases are kept without gates (with gates, `gates.store`); one of the two is required: every
   * package and publish records its release.
   */
  readonly releaseStore?: ReleaseStore | undefined;
  /** The time now, without gates (with gates, `gates.now`); the system clock when absent. */
  readonly now?: (() => Date) | undefined;
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
  /**
   * The dashboard under `/ui/` (`docs/ui.md`); served only with gates. Its pages use the gates' releases
   * and record decisions in this service's audit trail.
   */
  /**
   * The data API under `/data/v1` (`DATA_API=on`, `docs/data-api.md`): its clients, HAWK and its batched
   * audit. Absent: the routes do not exist.
   */
  readonly dataApi?: DataApiDeps | undefined;
  readonly dashboard?:
    | Omit<
      DashboardDeps,
      | "releasesFor"
      | "recordDecision"
      | "log"
      | "publish"
      | "describe"
      | "revoke"
      | "mayRevoke"
      | "uploads"
    >
      & {
        /** Uploads (`docs/uploads.md`): who may review them and their releases come from the gates. */
        readonly uploads?:
          | Omit<UploadDeps, "mayReview" | "release" | "stage" | "publish">
          | undefined;
      }
    | undefined;
}

/**
 * The publish service endpoint for a runs API request: the same path (each segment as the caller encoded
 * it) and query string, relative to the publish service's base URL.
 */
function publishEndpointOf(c: Context): string {
  const url = new URL(c.req.url);
  return url.pathname.slice(1) + url.search;
}

/** The gateway's app, and the expiry sweep the composition root runs on a timer. */
export interface ApprovalService {
  readonly app: OpenAPIHono;
  /**
   * One expiry sweep (`ReleaseLifecycle.sweep`): revokes expired releases and retries revocations left
   * `revoking`; never throws (failures are logged and retried next time).
   */
  sweepReleases(): Promise<void>;
}

/** Builds the gateway. */
export function createApprovalApp(deps: ApprovalDeps): OpenAPIHono {
  return createApprovalService(deps).app;
}

/** Builds the gateway and its expiry sweep. */
export function createApprovalService(deps: ApprovalDeps): ApprovalService {
  const gates = deps.gates;
  const releaseStore = gates?.store ?? deps.releaseStore;
  if (releaseStore === undefined) {
    throw new TypeError("the gateway needs a release store: give gates or releaseStore");
  }
  const store: ReleaseStore = releaseStore;
  const now = gates?.now ?? deps.now ?? (() => new Date());
  const app = createServiceApp({
    service: "approval",
    title: "CR8TOR Approval Service",
    detailPrefix: "",
    apiKey: deps.apiKey,
    log: deps.log,
    maxBodyBytes: deps.maxBodyBytes,
    readiness: () =>
      Promise.all([
        ...[deps.metadata, deps.publish].map(healthCheck),
        releaseStoreCheck(store),
      ]),
    auditTrail: deps.auditTrail,
    bodyReading: deps.bodyReading,
    refusals: deps.refusals,
    metrics: deps.metrics,
    metricsAccess: deps.metricsAccess,
    people: gates === undefined
      ? undefined
      : { verifier: gates.verifier, credentialFor: gatewayCredentialFor },
    signsInItselfUnder: gates !== undefined && deps.dashboard !== undefined ? UI_PREFIX : undefined,
    ownAuthentication: deps.dataApi === undefined ? undefined : {
      prefix: DATA_API_PREFIX,
      authenticate: dataApiAuthentication(deps.dataApi, { detailPrefix: "" }, now),
    },
  });
  const callerKeyId = auditKeyId(deps.apiKey);

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
    return await callSubService(service, {
      method: "POST",
      endpoint,
      body: await c.req.text(),
      headers: passPrefer ? preferOf(c) : {},
    }, callOptions(c));
  }

  /** The caller's `Prefer` header, to pass on. */
  function preferOf(c: Context): Record<string, string> {
    const prefer = c.req.header("prefer");
    return prefer === undefined ? {} : { prefer };
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
    return relayUnchanged(c, await forwardRunsCall(c, method));
  }

  /** A runs API call forwarded to the publish service, its reply not yet relayed. */
  async function forwardRunsCall(c: Context, method: "GET" | "POST"): Promise<SubServiceReply> {
    return await callSubService(deps.publish, {
      method,
      endpoint: publishEndpointOf(c),
    }, callOptions(c));
  }

  /**
   * Applies what a run read through the gateway says to the releases (`step`: a run that ended settles
   * the releases waiting for it; a resumed publish run becomes pending on its release). Never fails the
   * caller's request: a failure is logged, and the release sweep settles the run later.
   */
  async function followRun(
    c: Context,
    reply: SubServiceReply,
    step: (lifecycle: ReleaseLifecycle, run: PublishRunSummary) => Promise<unknown>,
  ): Promise<void> {
    if (reply.status !== 200 && reply.status !== 202) return;
    const run = publishRunSummaryOf(reply.body.payload);
    if (run === undefined || run.action !== "publish") return;
    try {
      await step(lifecycleWith(requestIdOf(c)), run);
    } catch (e) {
      deps.log.warn("release_publish_run_not_recorded", {
        run_id: run.id,
        code: e instanceof Error && "code" in e ? String(e.code) : "internal_error",
      });
    }
  }

  app.openapi(validateProject, async (c) => {
    const checked = await forward(c, deps.publish, "data-publish/validate");
    if (checked.status < 200 || checked.status >= 300) return relay(c, checked) as never;
    return relay(c, await forward(c, deps.metadata, "metadata/project")) as never;
  });

  /** The release use cases for this request (the staging inspector carries its request id). */
  function releasesFor(c: Context): Releases {
    return new Releases({
      store,
      policy: gates?.policy ?? null,
      staging: publishStagingInspector(deps.publish, callOptions(c)),
      now,
    });
  }

  /** The release lifecycle, its publish service calls carrying `requestId`. */
  function lifecycleWith(requestId: string): ReleaseLifecycle {
    return new ReleaseLifecycle({
      store,
      revoker: publishReleaseRevoker(deps.publish, {
        fetch: deps.fetch,
        timeoutMs: deps.timeoutMs,
        maxReplyBytes: deps.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
        requestId,
      }),
      now,
      expiryDays: gates?.policy.release_expiry_days,
      runs: publishRunsReader(deps.publish, {
        fetch: deps.fetch,
        timeoutMs: deps.timeoutMs,
        maxReplyBytes: deps.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES,
        requestId,
      }),
      recordSweepRevocation: recordExpiry,
    });
  }

  /** The audit record of a revocation the expiry sweep made (`release_expiry`), with its certificate. */
  async function recordExpiry(release: Release, certificate: DeletionCertificateObject) {
    if (deps.auditTrail === undefined) return;
    await recordServiceOperation(deps.auditTrail, {
      service: "approval",
      action: "release_expiry",
      project_name: release.project_name,
      project_start_time: release.project_start_time,
      output: { certificate },
    });
  }

  /**
   * Finds or creates the release of the project run the request names (requested by the caller's key,
   * recording what a valid package request asks for: source and dataset), refuses a revoked one, and
   * checks the gates before `step`.
   *
   * @throws {ReleaseRevokedError} when the release is revoked or being revoked.
   * @throws {ApprovalRequiredError} while a gate is not met.
   */
  async function admit(c: Context, step: GatedStep): Promise<Admission> {
    const body = JSON.parse(await c.req.text());
    const transfer = step === "package" ? DataContractTransferRequest.safeParse(body) : undefined;
    return await releasesFor(c).admit(
      step,
      {
        project_name: body.project_name,
        project_start_time: body.project_start_time,
        // The PostgreSQL destination has no name.
        destination: { type: body.destination.type, name: body.destination.name ?? "" },
      },
      { kind: "key", id: await callerKeyId },
      transfer?.success === true ? releaseRequestOf(transfer.data) : null,
    );
  }

  /**
   * The package request as forwarded: with `disclosure_checks: true` exactly when a gate before `publish`
   * covers its destination (that gate's approvers look at the checks); the caller's own value is dropped.
   */
  async function packageBody(c: Context): Promise<string> {
    const text = await c.req.text();
    const { disclosure_checks: asked, ...request } = JSON.parse(text);
    const gated = gatesBefore(gates?.policy ?? null, "publish", request.destination).length > 0;
    if (!gated && asked === undefined) return text;
    return JSON.stringify(gated ? { ...request, disclosure_checks: true } : request);
  }

  app.openapi(packageProject, async (c) => {
    await admit(c, "package");
    const reply = await callSubService(deps.publish, {
      method: "POST",
      endpoint: "data-publish/package",
      body: await packageBody(c),
      headers: preferOf(c),
    }, callOptions(c));
    return relay(c, reply) as never;
  });

  /**
   * After a publish call that timed out or broke: the publish may still be running (or have ended), so
   * its run, if the publish service has one, becomes pending on the release and its end is recorded as
   * an async publish's is. Never fails the request (which fails anyway); what it cannot do is logged.
   */
  async function followUnansweredPublish(
    c: Context,
    releaseId: string,
    sentAt: Date,
    expiresAt: string | null,
    lifecycle: ReleaseLifecycle,
  ): Promise<void> {
    const fields = { request_id: requestIdOf(c), release_id: releaseId };
    try {
      const followed = await lifecycle.recordPublishUnanswered(releaseId, sentAt, expiresAt);
      const run = followed?.pending_publishes.at(-1)?.run_id ?? null;
      deps.log.warn("release_publish_unanswered", { ...fields, run_id: run });
    } catch (e) {
      deps.log.warn("release_publish_run_not_recorded", {
        ...fields,
        code: e instanceof Error && "code" in e ? String(e.code) : "internal_error",
      });
    }
  }

  /**
   * Publishes an admitted run through the publish service (only what was approved: the staging digest
   * the gates bound to), recording the publication on its release; the payload on success (200).
   */
  async function publishAdmitted(
    c: Context,
    forwarded: Record<string, unknown>,
    { release, staging_digest: digest }: Admission,
    expiresAt: string | null,
    lifecycle: ReleaseLifecycle,
  ): Promise<{ reply: SubServiceReply; payload?: Record<string, unknown> }> {
    const sentAt = now();
    let reply: SubServiceReply;
    try {
      reply = await callSubService(deps.publish, {
        method: "POST",
        endpoint: "data-publish/publish",
        body: JSON.stringify({
          ...forwarded,
          // Gated: publish only what was approved; the publish service refuses (409 staging_changed)
          // if staging no longer hashes to the approved digest.
          ...(digest === null ? {} : { expected_staging_digest: digest }),
          release: {
            id: release.id,
            requested_by: release.requested_by,
            decisions: release.decisions,
            expires_at: expiresAt,
          },
        }),
        headers: preferOf(c),
      }, callOptions(c));
    } catch (e) {
      if (e instanceof SubServiceTimeoutError || e instanceof SubServiceUnavailableError) {
        await followUnansweredPublish(c, release.id, sentAt, expiresAt, lifecycle);
      }
      throw e;
    }
    if (reply.status === 202) {
      // The run publishes later: its expiry starts now, and the release waits for the run; its receipt,
      // crate and files are recorded when the run is seen to have succeeded (`GET /runs/{id}` through
      // the gateway, or the release sweep).
      const run = publishRunSummaryOf(reply.body.payload);
      if (run === undefined) await lifecycle.recordPublication(release.id, {}, expiresAt);
      else await lifecycle.recordPublishAccepted(release.id, run.id, expiresAt);
      return { reply };
    }
    if (reply.status !== 200) return { reply };
    const payload = (reply.body.payload ?? {}) as Record<string, unknown>;
    const published = publishedOutput(payload);
    if (published !== undefined) recordAuditOutput(c, published);
    await lifecycle.recordPublication(release.id, payload, expiresAt);
    return { reply, payload };
  }

  app.openapi(publishProject, async (c) => {
    const lifecycle = lifecycleWith(requestIdOf(c));
    const expiresAt = lifecycle.expiryFor(c.req.valid("json").expires_at);
    const admission = await admit(c, "publish");
    // The gateway's own `expires_at` is not the publish service's: it goes on in `release`.
    const { expires_at: _expiresAt, ...forwarded } = JSON.parse(await c.req.text());
    const { reply, payload } = await publishAdmitted(c, forwarded, admission, expiresAt, lifecycle);
    if (payload === undefined) return relay(c, reply) as never;
    const { crate: _crate, ...shown } = payload;
    return c.json(success({ ...shown, release_id: admission.release.id }), 200) as never;
  });

  app.openapi(releaseKeys, async (c) => {
    const reply = await callSubService(deps.publish, {
      method: "GET",
      endpoint: ".well-known/release-keys",
    }, callOptions(c));
    return c.json(reply.body, reply.status as ContentfulStatusCode) as never;
  });

  app.openapi(getRun, async (c) => {
    const reply = await forwardRunsCall(c, "GET");
    // A publish run seen to have ended settles the releases waiting for it.
    await followRun(c, reply, (lifecycle, run) => lifecycle.settlePublishRun(run));
    return relayUnchanged(c, reply) as never;
  });
  app.openapi(listRuns, async (c) => await forwardRuns(c, "GET") as never);
  app.openapi(cancelRun, async (c) => {
    const reply = await forwardRunsCall(c, "POST");
    await followRun(c, reply, (lifecycle, run) => lifecycle.settlePublishRun(run));
    return relayUnchanged(c, reply) as never;
  });
  app.openapi(resumeRun, async (c) => {
    const reply = await forwardRunsCall(c, "POST");
    // A resumed publish run (of a publish whose caller may be gone) publishes for its release.
    await followRun(c, reply, (lifecycle, run) => lifecycle.recordPublishResumed(run));
    return relayUnchanged(c, reply) as never;
  });
  // HTTP-file sources live on the publish service: forwarded as the runs API is (`Prefer` passed on).
  app.openapi(listHttpSources, async (c) => await forwardRuns(c, "GET") as never);
  app.openapi(httpSourceFiles, async (c) => await forwardRuns(c, "GET") as never);
  app.openapi(runHttpSource, async (c) => {
    const reply = await callSubService(deps.publish, {
      method: "POST",
      endpoint: publishEndpointOf(c),
      headers: preferOf(c),
    }, callOptions(c));
    return relayUnchanged(c, reply) as never;
  });

  /**
   * Relays a run's event stream from the publish service (`endpoint`, relative to its base URL), with
   * the caller's `Last-Event-ID`; a non-stream reply (404, ...) passes through unchanged.
   */
  async function relayRunEvents(c: Context, endpoint: string): Promise<Response> {
    const lastEventId = c.req.header("last-event-id");
    const reply = await streamSubService(deps.publish, {
      method: "GET",
      endpoint,
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
    if (!("contentType" in reply)) return relayUnchanged(c, reply);
    // The stream ends after a run's final state: a publish run that ended settles the releases waiting
    // for it before the caller sees the end.
    const body = reply.body.pipeThrough(
      lastRunEvent(async (data) => {
        const reading = { status: 200, body: { payload: data }, headers: {} };
        await followRun(c, reading, (lifecycle, run) => lifecycle.settlePublishRun(run));
      }),
    );
    return new Response(body, {
      status: reply.status,
      headers: {
        "content-type": reply.contentType,
        "cache-control": "no-cache",
        // Tells a buffering proxy in front of the gateway (ingress-nginx) to pass events on at once.
        "x-accel-buffering": "no",
        "x-request-id": requestIdOf(c),
      },
    });
  }

  app.openapi(runEvents, async (c) => await relayRunEvents(c, publishEndpointOf(c)) as never);

  if (deps.dataApi !== undefined) {
    addDataApi(app, { store, publish: deps.publish, callOptions, now });
  }

  addReleaseRoutes(app, {
    gates,
    releasesFor,
    lifecycleFor: (c) => lifecycleWith(requestIdOf(c)),
    callerKeyId,
    log: deps.log,
  });
  if (gates !== undefined && deps.dashboard !== undefined) {
    addDashboard(app, {
      ...deps.dashboard,
      releasesFor,
      mayRevoke: (person) => mayRevoke(gates.policy, person.roles),
      uploads: deps.dashboard.uploads === undefined ? undefined : {
        ...deps.dashboard.uploads,
        mayReview: (person) => mayDecideAny(gates.policy, person.roles),
        // Marking a data source ready asks for its package step: the release now awaits the gates.
        release: async (c, source, person) => {
          try {
            const admitted = await releasesFor(c).admit(
              "package",
              uploadRun(source),
              personRequester(person),
            );
            return admitted.release.id;
          } catch (error) {
            if (error instanceof ApprovalRequiredError) return error.releaseId;
            throw error;
          }
        },
        stage: async (c, source, files, person) => {
          const run = uploadRun(source);
          await releasesFor(c).admit("package", run, personRequester(person));
          const reply = await callSubService(deps.publish, {
            method: "POST",
            endpoint: "data-publish/package-upload",
            body: JSON.stringify({
              project_name: run.project_name,
              project_start_time: run.project_start_time,
              destination: { ...run.destination, format: "csv" },
              files,
            }),
          }, callOptions(c));
          if (reply.status !== 200) throw refusalOf("stage", reply);
        },
        publish: async (c, source, person) => {
          const run = uploadRun(source);
          const lifecycle = lifecycleWith(requestIdOf(c));
          const admission = await releasesFor(c).admit("publish", run, personRequester(person));
          const { reply, payload } = await publishAdmitted(
            c,
            {
              project_name: run.project_name,
              project_start_time: run.project_start_time,
              destination: { ...run.destination, format: "csv" },
            },
            admission,
            lifecycle.expiryFor(undefined),
            lifecycle,
          );
          if (payload === undefined) throw refusalOf("publish", reply);
        },
      },
      revoke: async (c, id, reason, person) => {
        if (!mayRevoke(gates.policy, person.roles)) throw new NotEntitledToRevokeError();
        const release = await lifecycleWith(requestIdOf(c)).revoke(id, {
          reason,
          requested_by: { kind: "person", id: person.id, issuer: person.issuer },
        });
        const certificate = release.revocation?.certificate;
        if (certificate !== null && certificate !== undefined) {
          recordAuditOutput(c, { certificate });
        }
      },
      recordDecision: recordAuditDecision,
      log: deps.log,
      describe: (c, body) =>
        callSubService(deps.metadata, {
          method: "POST",
          endpoint: "metadata/project",
          body: JSON.stringify(body),
        }, callOptions(c)),
      publish: {
        call: async (c, method, endpoint) => {
          const reply = await callSubService(deps.publish, { method, endpoint }, callOptions(c));
          // The dashboard's run pages and operators' actions follow publish runs as `/runs` does.
          if (method === "POST" && /^runs\/[^/]+\/resume$/.test(endpoint)) {
            await followRun(c, reply, (lifecycle, run) => lifecycle.recordPublishResumed(run));
          } else if (/^runs\/[^/?]+(\/cancel)?$/.test(endpoint)) {
            await followRun(c, reply, (lifecycle, run) => lifecycle.settlePublishRun(run));
          }
          return reply;
        },
        events: relayRunEvents,
      },
    });
  }
  return {
    app,
    async sweepReleases() {
      try {
        const report = await lifecycleWith(crypto.randomUUID()).sweep();
        for (const { id, run_id, run_state } of report.settled) {
          deps.log.info("release_publish_run_settled", { release_id: id, run_id, run_state });
        }
        for (const release of report.revoked) {
          deps.log.info("release_revoked", { release_id: release.id, detail: "expired" });
        }
        for (const { id, code, run_id } of report.failed) {
          if (run_id === undefined) {
            deps.log.warn("release_revocation_failed", { release_id: id, code });
          } else {
            deps.log.warn("release_publish_run_not_recorded", { release_id: id, run_id, code });
          }
        }
      } catch (e) {
        deps.log.warn("release_sweep_failed", {
          code: e instanceof Error && "code" in e ? String(e.code) : "internal_error",
        });
      }
    },
  };
}

/** Who the request comes from, as a release viewer: a person when one signed in, else the key. */
function viewerOf(c: Context): Viewer {
  const person = personOf(c);
  return person === undefined ? { kind: "key" } : { kind: "person", person };
}

/** What the `/releases` routes use. */
interface ReleaseRoutesDeps {
  /** Approval gates; without them there are no people and no decisions, and the key does all. */
  readonly gates: ApprovalGates | undefined;
  readonly releasesFor: (c: Context) => Releases;
  readonly lifecycleFor: (c: Context) => ReleaseLifecycle;
  /** The audit id of the gateway key (who revokes when the key does). */
  readonly callerKeyId: Promise<string>;
  readonly log: Logger;
}

/**
 * Who asks to revoke: with gates, the signed-in person, who must hold a revocation role; without, the
 * key.
 *
 * @throws {NotEntitledToRevokeError} when the person holds no revocation role.
 */
/** The release run of an uploaded data source (a filestore destination). */
function uploadRun(source: UploadedDataSource): ReleaseRun {
  return {
    project_name: source.project_name,
    project_start_time: source.project_start_time,
    destination: { type: "filestore", name: source.destination },
  };
}

/** A signed-in person as a release's requester. */
function personRequester(person: Person): Requester {
  return { kind: "person", id: person.id, issuer: person.issuer };
}

/** The publish service's refusal of an upload step, with its sentence. */
function refusalOf(step: "stage" | "publish", reply: SubServiceReply): UploadStepRefusedError {
  const payload = reply.body.payload as { detail?: unknown } | undefined;
  const detail = typeof payload?.detail === "string" ? payload.detail : `status ${reply.status}`;
  return new UploadStepRefusedError(step, detail);
}

async function revokerOf(
  c: Context,
  gates: ApprovalGates | undefined,
  callerKeyId: Promise<string>,
): Promise<RevocationRequester> {
  if (gates === undefined) return { kind: "key", id: await callerKeyId };
  const person = personOf(c);
  // The credential rule (`gatewayCredentialFor`) admitted a person's token only.
  if (person === undefined) throw new Error("revocations need a person");
  if (!mayRevoke(gates.policy, person.roles)) throw new NotEntitledToRevokeError();
  return { kind: "person", id: person.id, issuer: person.issuer };
}

/**
 * `/releases`: reading releases and their crates (key or person), revoking them (a person with a
 * revocation role; the key without gates) and recording decisions (person, with gates only).
 */
function addReleaseRoutes(app: OpenAPIHono, deps: ReleaseRoutesDeps): void {
  const { gates, releasesFor } = deps;
  app.openapi(getRelease, async (c) => {
    const view = await releasesFor(c).view(c.req.valid("param").id, viewerOf(c));
    return c.json(success(view), 200) as never;
  });

  app.openapi(getReleaseCrate, async (c) => {
    const crate = await deps.lifecycleFor(c).crate(c.req.valid("param").id);
    return c.body(JSON.stringify(crate), 200, {
      "content-type": "application/ld+json",
    }) as never;
  });

  app.openapi(revokeRelease, async (c) => {
    const id = c.req.valid("param").id;
    const requestedBy = await revokerOf(c, gates, deps.callerKeyId);
    const release = await deps.lifecycleFor(c).revoke(id, {
      reason: c.req.valid("json").reason,
      requested_by: requestedBy,
    });
    const certificate = release.revocation?.certificate;
    if (certificate !== null && certificate !== undefined) recordAuditOutput(c, { certificate });
    deps.log.info("release_revoked", { release_id: id });
    return c.json(success(await releasesFor(c).view(id, viewerOf(c))), 200) as never;
  });

  app.openapi(listReleases, async (c) => {
    const query = c.req.valid("query");
    const releases = releasesFor(c);
    if (query.awaiting !== undefined) {
      if (query.awaiting !== "me") {
        throw new InvalidReleaseQueryError("Cannot list releases: awaiting takes only `me`");
      }
      const viewer = viewerOf(c);
      if (viewer.kind !== "person") throw new AwaitingNeedsPersonError();
      const awaiting = await releases.awaiting(viewer.person);
      return c.json(success({ releases: awaiting, next: null }), 200) as never;
    }
    const limitText = query.limit ?? String(DEFAULT_RELEASE_PAGE_SIZE);
    const limit = Number(limitText);
    if (!/^\d{1,4}$/.test(limitText) || limit < 1 || limit > 1000) {
      throw new InvalidReleaseQueryError(
        "Cannot list releases: limit must be an integer from 1 to 1000",
      );
    }
    if (query.state !== undefined && !(RELEASE_STATES as readonly string[]).includes(query.state)) {
      throw new InvalidReleaseQueryError(
        `Cannot list releases: state must be one of ${RELEASE_STATES.join(", ")}`,
      );
    }
    const page = await releases.list({
      limit,
      ...(query.project === undefined ? {} : { project: query.project }),
      ...(query.state === undefined ? {} : { state: query.state as ReleaseState }),
      ...(query.cursor === undefined ? {} : { cursor: query.cursor }),
    }, viewerOf(c));
    let next: string | null = null;
    if (page.nextCursor !== null) {
      const params = new URLSearchParams();
      if (query.project !== undefined) params.set("project", query.project);
      if (query.state !== undefined) params.set("state", query.state);
      params.set("limit", String(limit));
      params.set("cursor", page.nextCursor);
      next = `/releases?${params}`;
    }
    return c.json(success({ releases: page.releases, next }), 200) as never;
  });

  if (gates === undefined) return;
  app.openapi(decideRelease, async (c) => {
    const person = personOf(c);
    // requirePerson admitted the request, so there is a person.
    if (person === undefined) throw new Error("decisions need a person");
    const id = c.req.valid("param").id;
    const outcome = await releasesFor(c).decide(
      id,
      person,
      c.req.valid("json"),
      (attempt) => recordAuditDecision(c, attempt),
    );
    for (const gate of outcome.gates_opened) {
      deps.log.info("gate_opened", { release_id: id, gate, decision_id: outcome.decision.id });
    }
    return c.json(success(outcome.release), 200) as never;
  });
}

/** The release store as `/ready` reports it. */
async function releaseStoreCheck(store: ReleaseStore): Promise<ReadinessCheck> {
  try {
    await store.list({ limit: 1 });
    return { name: "release store", ok: true };
  } catch {
    return { name: "release store", ok: false, detail: "cannot be read" };
  }
}

/**
 * Revocation through the publish service (`POST /data-publish/revoke`): a 200 carries the deletion
 * certificate; anything else is a {@link RevocationFailedError} (the release stays `revoking`).
 */
function publishReleaseRevoker(publish: SubService, options: CallOptions): ReleaseRevoker {
  return {
    async revoke(release, revocation) {
      const reply = await callSubService(publish, {
        method: "POST",
        endpoint: "data-publish/revoke",
        body: JSON.stringify({
          ...publishRunOf(release),
          release_id: release.id,
          reason: revocation.reason,
          requested_by: revocation.requested_by,
        }),
      }, options);
      const payload = reply.body.payload as Record<string, unknown> | undefined;
      if (reply.status !== 200) {
        const detail = (payload as { detail?: unknown } | undefined)?.detail;
        throw new RevocationFailedError(
          reply.status,
          typeof detail === "string" ? detail : "no detail",
        );
      }
      const certificate = payload?.certificate;
      if (typeof certificate !== "object" || certificate === null || Array.isArray(certificate)) {
        throw new SubServiceProtocolError(publish.name);
      }
      return certificate as Record<string, unknown>;
    },
  };
}

/**
 * Passes a run event stream through unchanged and, when it ends, calls `onEnd` with the parsed data of
 * its last `run` event (none: not called). A stream cancelled or broken before its end calls nothing.
 */
function lastRunEvent(
  onEnd: (data: unknown) => Promise<void>,
): TransformStream<Uint8Array, Uint8Array> {
  const decoder = new TextDecoder();
  let pending = "";
  let last: string | undefined;
  const take = (block: string) => {
    const lines = block.split(/\r?\n/);
    if (!lines.includes("event: run")) return;
    const data = lines.filter((line) => line.startsWith("data:"))
      .map((line) => line.slice(5).replace(/^ /, ""));
    if (data.length > 0) last = data.join("\n");
  };
  return new TransformStream({
    transform(chunk, controller) {
      controller.enqueue(chunk);
      pending += decoder.decode(chunk, { stream: true });
      const blocks = pending.split(/\r?\n\r?\n/);
      pending = blocks.pop() ?? "";
      for (const block of blocks) take(block);
    },
    async flush() {
      take(pending + decoder.decode());
      if (last === undefined) return;
      let data: unknown;
      try {
        data = JSON.parse(last);
      } catch {
        return;
      }
      await onEnd(data);
    },
  });
}

/** What the gateway reads of a run the publish service shows (other fields are ignored). */
const publishRunSummarySchema = z.object({
  ...runSchema.pick({
    id: true,
    action: true,
    state: true,
    project_name: true,
    project_start_time: true,
    outcome: true,
    created_at: true,
    finished_at: true,
  }).shape,
  destination: z.object({ type: z.string(), name: z.string() }),
});

/** A run as the publish service's `payload` shows it, or `undefined` when it is not one. */
function publishRunSummaryOf(payload: unknown): PublishRunSummary | undefined {
  const parsed = publishRunSummarySchema.safeParse(payload);
  return parsed.success ? parsed.data : undefined;
}

/**
 * The publish service's runs (`GET /runs/{id}`): 404 `run_not_found` is a run it knows no more; any
 * other error is a {@link PublishRunUnreadableError}, a 200 without a run a
 * {@link SubServiceProtocolError}.
 */
function publishRunsReader(publish: SubService, options: CallOptions): PublishRuns {
  const unreadable = (reply: SubServiceReply) => {
    const detail = (reply.body.payload as Record<string, unknown> | undefined)?.detail;
    return new PublishRunUnreadableError(
      reply.status,
      typeof detail === "string" ? detail : "no detail",
    );
  };
  return {
    async get(id) {
      const reply = await callSubService(publish, {
        method: "GET",
        endpoint: `runs/${encodeURIComponent(id)}`,
      }, options);
      const payload = reply.body.payload as Record<string, unknown> | undefined;
      if (reply.status === 404 && payload?.code === "run_not_found") return undefined;
      if (reply.status !== 200) throw unreadable(reply);
      const run = publishRunSummaryOf(payload);
      if (run === undefined) throw new SubServiceProtocolError(publish.name);
      return run;
    },
    async latestPublish(of, since) {
      const reply = await callSubService(publish, {
        method: "GET",
        endpoint: `runs?project=${encodeURIComponent(of.project_name)}&limit=100`,
      }, options);
      const payload = reply.body.payload as Record<string, unknown> | undefined;
      if (reply.status !== 200) throw unreadable(reply);
      if (!Array.isArray(payload?.runs)) throw new SubServiceProtocolError(publish.name);
      // Newest first.
      return payload.runs.map(publishRunSummaryOf).find((run) =>
        run !== undefined && run.action === "publish" &&
        run.project_start_time === of.project_start_time &&
        run.destination.type === of.destination.type &&
        run.destination.name === of.destination.name && run.created_at >= since
      );
    },
  };
}

/**
 * A project run as the publish service's bodies name it. Staging and revocation do not depend on the
 * format, so a filestore run is named as `csv`.
 */
function publishRunOf(run: ReleaseRun): Record<string, unknown> {
  const type = run.destination.type;
  return {
    project_name: run.project_name,
    project_start_time: run.project_start_time,
    destination: {
      type,
      name: run.destination.name,
      format: type === "postgresql" ? "sql" : "csv",
    },
  };
}

/** What the publish service says a run has staged (`POST /data-publish/staging`). */
function publishStagingInspector(publish: SubService, options: CallOptions): StagingInspector {
  return {
    async inspect(run: ReleaseRun) {
      const reply = await callSubService(publish, {
        method: "POST",
        endpoint: "data-publish/staging",
        body: JSON.stringify(publishRunOf(run)),
      }, options);
      const payload = reply.body.payload as Record<string, unknown> | undefined;
      if (reply.status !== 200 || payload === undefined) {
        const detail = (payload as { detail?: unknown } | undefined)?.detail;
        throw new StagingUnavailableError(
          reply.status,
          typeof detail === "string" ? detail : "no detail",
        );
      }
      const { staging_digest: digest, ...details } = payload;
      return { staging_digest: typeof digest === "string" ? digest : null, details };
    },
  };
}
