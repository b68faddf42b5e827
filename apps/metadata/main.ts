/**
 * Composition root of the metadata service: reads the environment, builds the adapters, serves.
 *
 * @module
 */
import { FileSecretStore } from "../../adapters/filesystem/file_secret_store.ts";
import { connectMysql } from "../../adapters/mysql/mysql_source_database.ts";
import { connectPostgres } from "../../adapters/postgres/postgres_source_database.ts";
import { CommonEnv, parseEnv, portFrom, readApiKey, SourceEnv } from "../_shared/config.ts";
import { createLogger, type LogSink, stdoutSink } from "../_shared/log.ts";
import { secretsDirectoryCheck } from "../_shared/readiness.ts";
import { type RunnableService, runService } from "../_shared/serve.ts";
import { createMetadataApp } from "./app.ts";

/** Builds the metadata service from an environment; log lines go to `logSink` (standard output). */
export function buildMetadataService(
  env: Record<string, string | undefined>,
  logSink: LogSink = stdoutSink,
): RunnableService {
  const log = createLogger("metadata", logSink);
  const config = parseEnv(CommonEnv.extend(SourceEnv.shape), env);
  const app = createMetadataApp({
    apiKey: readApiKey("metadataserviceapikey", env, config.SECRETS_MNT_PATH),
    log,
    maxBodyBytes: config.MAX_BODY_BYTES,
    secrets: new FileSecretStore(config.SECRETS_MNT_PATH),
    connectors: { postgresql: connectPostgres, mysql: connectMysql },
    connectTimeoutMs: config.SOURCE_CONNECT_TIMEOUT_SECONDS * 1000,
    statementTimeoutMs: config.SOURCE_STATEMENT_TIMEOUT_SECONDS * 1000,
    readiness: async () => [await secretsDirectoryCheck(config.SECRETS_MNT_PATH)],
  });
  return { fetch: app.fetch, port: portFrom(env, 8002) };
}

if (import.meta.main) {
  await runService(
    createLogger("metadata"),
    () => Promise.resolve(buildMetadataService(Deno.env.toObject())),
  );
}
