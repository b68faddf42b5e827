/**
 * Composition root of the publish service: reads the environment, builds the adapters, serves.
 *
 * @module
 */
import { CsvDatasetWriter } from "../../adapters/filesystem/csv_dataset_writer.ts";
import { DuckdbDatasetWriter } from "../../adapters/duckdb/duckdb_dataset_writer.ts";
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { connectPostgresDestination } from "../../adapters/postgres/postgres_destination.ts";
import { HttpOpalClient } from "../../adapters/opal/http_opal_client.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import type { Filestore } from "../../ports/filestore.ts";
import {
  DEFAULT_BATCH_BYTES,
  DEFAULT_BATCH_ROWS,
  DEFAULT_MAX_VALUE_BYTES,
} from "../../ports/source_database.ts";
import { z } from "zod";
import { CommonEnv, parseEnv, portFrom, readAllowedSources, SourceEnv } from "../_shared/config.ts";
import type { ReadinessCheck } from "../_shared/create_app.ts";
import { auditTrailFromEnv } from "../_shared/audit.ts";
import { createLogger, type LogSink, stdoutSink } from "../_shared/log.ts";
import { OpenConnections } from "../_shared/open_connections.ts";
import { sourceConnectors } from "../_shared/source_connectors.ts";
import { serviceSecretsFromEnv } from "../_shared/secret_store_from_env.ts";
import { type RunnableService, runService } from "../_shared/serve.ts";
import { createPublishApp, type PostgresqlDestination } from "./app.ts";

const MOUNT_VAR = /^TARGET_STORAGE_ACCOUNT_(.+)_SDE_MNT_PATH$/;

/** 512 MiB: about the longest string V8 can hold, so no larger value could be read anyway. */
const MAX_STRING_BYTES = 512 * 1024 * 1024;

/** The filestore destinations configured by `TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH`, by upper-case name. */
export function filestoreMounts(env: Record<string, string | undefined>): Map<string, string> {
  const mounts = new Map<string, string>();
  for (const [key, value] of Object.entries(env)) {
    const name = MOUNT_VAR.exec(key)?.[1];
    if (name !== undefined && value !== undefined && value !== "") {
      mounts.set(name.toUpperCase(), value);
    }
  }
  return mounts;
}

/** The publish service's own environment variables. */
export const PublishEnv = CommonEnv.extend(SourceEnv.shape).extend({
  PACKAGE_CONCURRENCY: z.coerce.number<unknown>().int().min(1).max(64).default(2),
  SOURCE_BATCH_ROWS: z.coerce.number<unknown>().int().min(1).max(1_000_000).default(
    DEFAULT_BATCH_ROWS,
  ),
  /** A batch read from a source is handed over once its values reach this many bytes. */
  SOURCE_BATCH_BYTES: z.coerce.number<unknown>().int().min(1).max(MAX_STRING_BYTES).default(
    DEFAULT_BATCH_BYTES,
  ),
  /** The largest source value (UTF-8 bytes of its text); a larger one fails the package with 422. */
  SOURCE_MAX_VALUE_BYTES: z.coerce.number<unknown>().int().min(1).max(MAX_STRING_BYTES).default(
    DEFAULT_MAX_VALUE_BYTES,
  ),
  /** `true`: CSV text cells a spreadsheet would evaluate get a `'` in front (recorded in bag-info.txt). */
  CSV_FORMULA_PREFIX: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
});

const required = z.string().min(1);

/**
 * The PostgreSQL destination and its OPAL server, the reference's variables (contract §6.1). All of them
 * are needed once `DESTINATION_POSTGRESQL_HOST` is set; without it the deployment has no such destination.
 */
export const PostgresqlDestinationEnv = z.object({
  DESTINATION_POSTGRESQL_HOST: required,
  DESTINATION_POSTGRESQL_PORT: z.coerce.number<unknown>().int().min(1).max(65535).default(5432),
  DESTINATION_POSTGRESQL_DATABASE: required,
  DESTINATION_POSTGRESQL_USERNAME: required,
  DESTINATION_POSTGRESQL_PASSWORD_SECRET_NAME: required,
  DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME: required,
  DESTINATION_POSTGRESQL_OPAL_READONLY_PASSWORD_SECRET_NAME: required,
  DESTINATION_OPAL_HOST: required,
  DESTINATION_OPAL_USERNAME: required,
  DESTINATION_OPAL_PASSWORD_SECRET_NAME: required,
  DESTINATION_OPAL_NO_SSL_VERIFY: z.string().default("false").transform((v) =>
    v.toLowerCase() === "true"
  ),
  DESTINATION_OPAL_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().default(30),
});

/** The PostgreSQL destination an environment configures, or `undefined` when it has none. */
function postgresqlDestination(
  env: Record<string, string | undefined>,
  secrets: SecretStore,
  timeouts: { connectTimeoutMs: number; statementTimeoutMs: number },
  connections: OpenConnections,
): PostgresqlDestination | undefined {
  if ((env.DESTINATION_POSTGRESQL_HOST ?? "") === "") return undefined;
  const config = parseEnv(PostgresqlDestinationEnv, env);
  return {
    connect: async () =>
      connections.track(
        await connectPostgresDestination({
          host: config.DESTINATION_POSTGRESQL_HOST,
          port: config.DESTINATION_POSTGRESQL_PORT,
          database: config.DESTINATION_POSTGRESQL_DATABASE,
          username: config.DESTINATION_POSTGRESQL_USERNAME,
          password: await secrets.get(config.DESTINATION_POSTGRESQL_PASSWORD_SECRET_NAME),
          readOnlyRole: config.DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME,
          ...timeouts,
        }),
      ),
    opal: async () =>
      new HttpOpalClient({
        baseUrl: config.DESTINATION_OPAL_HOST,
        username: config.DESTINATION_OPAL_USERNAME,
        password: await secrets.get(config.DESTINATION_OPAL_PASSWORD_SECRET_NAME),
        noSslVerify: config.DESTINATION_OPAL_NO_SSL_VERIFY,
        timeoutMs: config.DESTINATION_OPAL_TIMEOUT_SECONDS * 1000,
      }),
    resourceAccess: async () => ({
      database: {
        host: config.DESTINATION_POSTGRESQL_HOST,
        port: config.DESTINATION_POSTGRESQL_PORT,
        database: config.DESTINATION_POSTGRESQL_DATABASE,
      },
      readOnly: {
        username: config.DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME,
        password: await secrets.get(
          config.DESTINATION_POSTGRESQL_OPAL_READONLY_PASSWORD_SECRET_NAME,
        ),
      },
    }),
  };
}

/**
 * Builds the publish service from an environment. Before serving, it sweeps what an interrupted package or
 * publish left in each filestore and in the PostgreSQL destination.
 */
export async function buildPublishService(
  env: Record<string, string | undefined>,
  logSink: LogSink = stdoutSink,
): Promise<RunnableService> {
  const log = createLogger("publish", logSink);
  const config = parseEnv(PublishEnv, env);
  const serviceSecrets = await serviceSecretsFromEnv(env, { log });
  const apiKey = await serviceSecrets.readApiKey("publishserviceapikey");
  const secrets = serviceSecrets.store;
  const timeouts = {
    connectTimeoutMs: config.SOURCE_CONNECT_TIMEOUT_SECONDS * 1000,
    statementTimeoutMs: config.SOURCE_STATEMENT_TIMEOUT_SECONDS * 1000,
  };
  const connections = new OpenConnections();
  const postgresql = postgresqlDestination(env, secrets, timeouts, connections);
  const filestores = new Map<string, Filestore>(
    [...filestoreMounts(env)].map(([name, path]) => [name, new LocalFilestore(path)]),
  );
  for (const [name, filestore] of filestores) {
    try {
      const swept = await filestore.recover();
      if (swept.length > 0) {
        log.warn("recovered_interrupted_runs", { filestore: name, paths: swept });
      }
    } catch (e) {
      log.error("recovery_failed", { filestore: name, message: (e as Error).message });
    }
  }
  if (postgresql !== undefined) {
    try {
      await using destination = await postgresql.connect();
      const swept = await destination.recover();
      if (swept.length > 0) log.warn("recovered_interrupted_loads", { schemas: swept });
    } catch (e) {
      log.error("recovery_failed", { destination: "postgresql", message: (e as Error).message });
    }
  }
  if (filestores.size === 0) {
    log.warn("no_filestore_destinations", {
      hint: "set TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH",
    });
  }
  const app = createPublishApp({
    apiKey,
    log,
    maxBodyBytes: config.MAX_BODY_BYTES,
    auditTrail: auditTrailFromEnv(env, log),
    allowedSources: readAllowedSources(config.ALLOWED_SOURCES_FILE, log),
    secrets,
    connections,
    connectors: sourceConnectors(config),
    ...timeouts,
    filestores,
    ...(postgresql === undefined ? {} : { postgresql }),
    writers: {
      csv: new CsvDatasetWriter({ formulaPrefix: config.CSV_FORMULA_PREFIX }),
      duckdb: new DuckdbDatasetWriter(),
    },
    concurrency: config.PACKAGE_CONCURRENCY,
    batchRows: config.SOURCE_BATCH_ROWS,
    batchBytes: config.SOURCE_BATCH_BYTES,
    maxValueBytes: config.SOURCE_MAX_VALUE_BYTES,
    readiness: async () => {
      const checks: ReadinessCheck[] = [
        await serviceSecrets.readinessCheck("publishserviceapikey"),
      ];
      for (const [name, filestore] of filestores) {
        try {
          await filestore.checkReady();
          checks.push({ name: `filestore ${name}`, ok: true });
        } catch (e) {
          checks.push({ name: `filestore ${name}`, ok: false, detail: (e as Error).message });
        }
      }
      return checks;
    },
  });
  return {
    fetch: app.fetch,
    port: portFrom(env, 8003),
    shutdownGraceMs: config.SHUTDOWN_GRACE_SECONDS * 1000,
    abort: () => connections.closeAll(),
  };
}

if (import.meta.main) {
  await runService(
    createLogger("publish"),
    () => buildPublishService(Deno.env.toObject()),
  );
  Deno.exit(0);
}
