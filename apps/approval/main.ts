/**
 * Composition root of the approval service (the gateway): reads the environment, serves.
 *
 * @module
 */
import { z } from "zod";
import {
  bodyReadingFrom,
  CommonEnv,
  parseEnv,
  portFrom,
  refusalTallyFrom,
} from "../_shared/config.ts";
import { auditTrailFromEnv } from "../_shared/audit.ts";
import { createLogger, type LogSink, stdoutSink } from "../_shared/log.ts";
import { serviceSecretsFromEnv } from "../_shared/secret_store_from_env.ts";
import { metricsFrom } from "../_shared/service_metrics.ts";
import { listenOptionsFrom, type RunnableService, runService } from "../_shared/serve.ts";
import { createApprovalApp } from "./app.ts";
import { DEFAULT_MAX_REPLY_BYTES } from "./sub_service.ts";

/** The gateway's own environment variables, named as in the reference. */
export const ApprovalEnv = CommonEnv.extend({
  METADATA_CONTAINER_NAME: z.string().min(1).default("localhost"),
  METADATA_CONTAINER_PORT: z.coerce.number<unknown>().int().min(1).max(65535).default(8002),
  PUBLISH_CONTAINER_NAME: z.string().min(1).default("localhost"),
  PUBLISH_CONTAINER_PORT: z.coerce.number<unknown>().int().min(1).max(65535).default(8003),
  SUBSERVICE_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().default(3600),
  /** The largest metadata or publish reply the gateway reads; a larger one is answered 502. */
  SUBSERVICE_MAX_REPLY_BYTES: z.coerce.number<unknown>().int().positive().default(
    DEFAULT_MAX_REPLY_BYTES,
  ),
});

/**
 * Builds the gateway from an environment; log lines go to `logSink` (standard output). Its three keys are
 * read once, here; it reads no other secret, so its `/ready` does not check the store.
 */
export async function buildApprovalService(
  env: Record<string, string | undefined>,
  logSink: LogSink = stdoutSink,
): Promise<RunnableService> {
  const config = parseEnv(ApprovalEnv, env);
  const log = createLogger("approval", logSink);
  const secrets = await serviceSecretsFromEnv(env, { log });
  // One after the other, so that with several keys unusable startup always names the first.
  const apiKey = await secrets.readApiKey("approvalserviceapikey");
  const metadataKey = await secrets.readApiKey("metadataserviceapikey");
  const publishKey = await secrets.readApiKey("publishserviceapikey");
  const auditTrail = auditTrailFromEnv(env, log);
  const refusals = refusalTallyFrom(config, { service: "approval", log, trail: auditTrail });
  const { metrics, metricsAccess } = await metricsFrom(config, { service: "approval", secrets });
  const shutdown = new AbortController();
  const app = createApprovalApp({
    apiKey,
    log,
    maxBodyBytes: config.MAX_BODY_BYTES,
    bodyReading: bodyReadingFrom(config),
    refusals,
    auditTrail,
    metrics,
    metricsAccess,
    metadata: {
      name: "metadata",
      baseUrl: `http://${config.METADATA_CONTAINER_NAME}:${config.METADATA_CONTAINER_PORT}/`,
      apiKey: metadataKey,
    },
    publish: {
      name: "publish",
      baseUrl: `http://${config.PUBLISH_CONTAINER_NAME}:${config.PUBLISH_CONTAINER_PORT}/`,
      apiKey: publishKey,
    },
    timeoutMs: config.SUBSERVICE_TIMEOUT_SECONDS * 1000,
    maxReplyBytes: config.SUBSERVICE_MAX_REPLY_BYTES,
    readyTimeoutMs: 3000,
    fetch: globalThis.fetch,
    shutdownSignal: shutdown.signal,
  });
  return {
    fetch: app.fetch,
    ...listenOptionsFrom(config, portFrom(env, 8000)),
    // The gateway holds no connections: its calls end when the sub-services cancel theirs. Run event
    // streams can stay open for as long as a run lasts: those still open after the grace period are ended.
    shutdownGraceMs: config.SHUTDOWN_GRACE_SECONDS * 1000,
    abort: () => {
      shutdown.abort();
      return Promise.resolve();
    },
    close: () => refusals.close(),
  };
}

if (import.meta.main) {
  await runService(
    createLogger("approval"),
    () => buildApprovalService(Deno.env.toObject()),
  );
  Deno.exit(0);
}
