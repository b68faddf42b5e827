/**
 * Composition root of the metadata service: reads the environment, builds the adapters, serves.
 *
 * @module
 */
import { FileSecretStore } from "../../adapters/filesystem/file_secret_store.ts";
import {
  CommonEnv,
  parseEnv,
  portFrom,
  readAllowedSources,
  readApiKey,
  SourceEnv,
} from "../_shared/config.ts";
import { auditTrailFromEnv } from "../_shared/audit.ts";
import { createLogger, type LogSink, stdoutSink } from "../_shared/log.ts";
import { secretsDirectoryCheck } from "../_shared/readiness.ts";
import { OpenConnections } from "../_shared/open_connections.ts";
import { sourceConnectors } from "../_shared/source_connectors.ts";
import { type RunnableService, runService } from "../_shared/serve.ts";
import { createMetadataApp } from "./app.ts";

/** Builds the metadata service from an environment; log lines go to `logSink` (standard output). */
export function buildMetadataService(
  env: Record<string, string | undefined>,
  logSink: LogSink = stdoutSink,
): RunnableService {
  const log = createLogger("metadata", logSink);
  const config = parseEnv(CommonEnv.extend(SourceEnv.shape), env);
  const connections = new OpenConnections();
  const app = createMetadataApp({
    apiKey: readApiKey("metadataserviceapikey", env, config.SECRETS_MNT_PATH),
    log,
    maxBodyBytes: config.MAX_BODY_BYTES,
    auditTrail: auditTrailFromEnv(env, log),
    allowedSources: readAllowedSources(config.ALLOWED_SOURCES_FILE, log),
    secrets: new FileSecretStore(config.SECRETS_MNT_PATH),
    connections,
    connectors: sourceConnectors({
      encrypt: config.SOURCE_MSSQL_ENCRYPT,
      trustServerCertificate: config.SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE,
    }),
    connectTimeoutMs: config.SOURCE_CONNECT_TIMEOUT_SECONDS * 1000,
    statementTimeoutMs: config.SOURCE_STATEMENT_TIMEOUT_SECONDS * 1000,
    readiness: async () => [await secretsDirectoryCheck(config.SECRETS_MNT_PATH)],
  });
  return {
    fetch: app.fetch,
    port: portFrom(env, 8002),
    shutdownGraceMs: config.SHUTDOWN_GRACE_SECONDS * 1000,
    abort: () => connections.closeAll(),
  };
}

if (import.meta.main) {
  await runService(
    createLogger("metadata"),
    () => Promise.resolve(buildMetadataService(Deno.env.toObject())),
  );
  Deno.exit(0);
}
