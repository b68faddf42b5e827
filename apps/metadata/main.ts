/**
 * Composition root of the metadata service: reads the environment, builds the adapters, serves.
 *
 * @module
 */
import {
  bodyReadingFrom,
  CommonEnv,
  parseEnv,
  portFrom,
  readAllowedSources,
  refusalTallyFrom,
  SourceEnv,
} from "../_shared/config.ts";
import { auditTrailFromEnv } from "../_shared/audit.ts";
import { createLogger, type LogSink, stdoutSink } from "../_shared/log.ts";
import { OpenConnections } from "../_shared/open_connections.ts";
import { sourceConnectors } from "../_shared/source_connectors.ts";
import { serviceSecretsFromEnv } from "../_shared/secret_store_from_env.ts";
import { metricsFrom } from "../_shared/service_metrics.ts";
import { listenOptionsFrom, type RunnableService, runService } from "../_shared/serve.ts";
import { createMetadataApp } from "./app.ts";

/** Builds the metadata service from an environment; log lines go to `logSink` (standard output). */
export async function buildMetadataService(
  env: Record<string, string | undefined>,
  logSink: LogSink = stdoutSink,
): Promise<RunnableService> {
  const log = createLogger("metadata", logSink);
  const config = parseEnv(CommonEnv.extend(SourceEnv.shape), env);
  const secrets = await serviceSecretsFromEnv(env, { log });
  const connections = new OpenConnections();
  const auditTrail = auditTrailFromEnv(env, log);
  const refusals = refusalTallyFrom(config, { service: "metadata", log, trail: auditTrail });
  const { metrics, metricsAccess } = await metricsFrom(config, { service: "metadata", secrets });
  const app = createMetadataApp({
    apiKey: await secrets.readApiKey("metadataserviceapikey"),
    log,
    maxBodyBytes: config.MAX_BODY_BYTES,
    bodyReading: bodyReadingFrom(config),
    refusals,
    auditTrail,
    metrics,
    metricsAccess,
    sourceFailures: metrics,
    allowedSources: readAllowedSources(config.ALLOWED_SOURCES_FILE, log),
    secrets: secrets.store,
    connections,
    connectors: sourceConnectors(config, { log }),
    connectTimeoutMs: config.SOURCE_CONNECT_TIMEOUT_SECONDS * 1000,
    statementTimeoutMs: config.SOURCE_STATEMENT_TIMEOUT_SECONDS * 1000,
    readiness: async () => [await secrets.readinessCheck("metadataserviceapikey")],
  });
  return {
    fetch: app.fetch,
    ...listenOptionsFrom(config, portFrom(env, 8002)),
    shutdownGraceMs: config.SHUTDOWN_GRACE_SECONDS * 1000,
    abort: () => connections.closeAll(),
    close: () => refusals.close(),
  };
}

if (import.meta.main) {
  await runService(
    createLogger("metadata"),
    () => buildMetadataService(Deno.env.toObject()),
  );
  Deno.exit(0);
}
