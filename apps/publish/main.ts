/**
 * Composition root of the publish service: reads the environment, builds the adapters, serves.
 *
 * @module
 */
import {
  DEFAULT_DUCKDB_MEMORY_LIMIT,
  DUCKDB_MEMORY_LIMIT_PATTERN,
} from "../../adapters/duckdb/duckdb_settings.ts";
import {
  DEFAULT_DISCLOSURE_CHECK_SETTING,
  DEFAULT_SMALL_CELL_THRESHOLD,
  DISCLOSURE_CHECK_SETTINGS,
} from "../../domain/disclosure.ts";
import { CsvDatasetWriter } from "../../adapters/filesystem/csv_dataset_writer.ts";
import { returnFreedMemoryPromptly } from "../../adapters/process/glibc_malloc.ts";
import { isInsideFilestore, LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { connectPostgresDestination } from "../../adapters/postgres/postgres_destination.ts";
import { PostgresReleaseReader } from "../../adapters/postgres/postgres_release_reader.ts";
import { FilestoreReleaseReader } from "../../adapters/filesystem/filestore_release_reader.ts";
import type { ReleaseReader } from "../../ports/release_reader.ts";
import { HttpOpalClient } from "../../adapters/opal/http_opal_client.ts";
import { DEFAULT_STATE_DIR } from "../../adapters/sqlite/sqlite_run_store.ts";
import { runStoreFromEnv } from "../_shared/run_store_from_env.ts";
import { AppError } from "../../domain/errors.ts";
import { SecretNotFoundError, type SecretStore } from "../../ports/secret_store.ts";
import type { ReleaseSigner } from "../../ports/release_signer.ts";
import {
  Ed25519ReleaseSigner,
  GENERATED_RELEASE_KEY_FILE,
} from "../../adapters/crypto/ed25519_release_signer.ts";
import { join } from "node:path";
import { SECRET_NAME_PATTERN } from "../../domain/names.ts";
import { MIN_MANIFEST_KEY_MATERIAL, stagingManifestKey } from "../../domain/staging_manifest.ts";
import type { Filestore } from "../../ports/filestore.ts";
import type { DatasetWriter } from "../../ports/dataset_writer.ts";
import {
  DEFAULT_BATCH_BYTES,
  DEFAULT_BATCH_ROWS,
  DEFAULT_MAX_VALUE_BYTES,
} from "../../ports/source_database.ts";
import { z } from "zod";
import { ConfigError } from "../_shared/app_errors.ts";
import { REVOCATION_MODES } from "../../domain/revocation.ts";
import {
  bodyReadingFrom,
  CommonEnv,
  parseEnv,
  portFrom,
  postgresSslModeVar,
  readAllowedSources,
  refusalTallyFrom,
  SourceEnv,
} from "../_shared/config.ts";
import type { ReadinessCheck } from "../_shared/create_app.ts";
import { auditTrailFromEnv } from "../_shared/audit.ts";
import { DataReadAuditEnv, dataReadAuditFrom } from "../_shared/data_read_audit.ts";
import { createLogger, type Logger, type LogSink, stdoutSink } from "../_shared/log.ts";
import { OpenConnections } from "../_shared/open_connections.ts";
import { postgresTlsOf, sourceConnectors } from "../_shared/source_connectors.ts";
import { serviceSecretsFromEnv } from "../_shared/secret_store_from_env.ts";
import { metricsFrom } from "../_shared/service_metrics.ts";
import { listenOptionsFrom, type RunnableService, runService } from "../_shared/serve.ts";
import type { PostgresqlDestination } from "../../application/destinations.ts";
import type { Runner } from "../../application/runs.ts";
import { createPublishService } from "./app.ts";
import { remoteRunsFromEnv } from "./run_executor_from_env.ts";
import { runOnce } from "./one_run.ts";
import { httpSourcesFromEnv } from "./http_sources_from_env.ts";
import { UploadQuarantine } from "../../adapters/filesystem/upload_quarantine.ts";

/** The upload quarantine area (`UPLOAD_QUARANTINE_PATH`), or `undefined` when uploads are off. */
async function quarantineFromEnv(
  env: Record<string, string | undefined>,
): Promise<UploadQuarantine | undefined> {
  const path = env.UPLOAD_QUARANTINE_PATH?.trim();
  return path === undefined || path === "" ? undefined : await UploadQuarantine.open(path);
}

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

/**
 * A file or folder mode as octal digits (`0640`, `750`): the owner keeps what the service needs (`rw` on
 * files, `rwx` on folders), and nobody else may write.
 */
function modeSetting(owner: number, fallback: string) {
  const kind = owner === 0o700 ? "folders" : "files";
  return z.string().default(fallback).refine((v) => /^0?[0-7]{3}$/.test(v), {
    error: "must be an octal mode such as 0640",
  }).transform((v) => parseInt(v, 8)).refine((mode) => (mode & owner) === owner, {
    error: `must give the owner ${owner === 0o700 ? "rwx" : "rw"} on ${kind}`,
  }).refine((mode) => (mode & 0o022) === 0, {
    error: `must not let the group or others write ${kind}`,
  });
}

const required = z.string().min(1);

/** The publish service's own environment variables. */
export const PublishEnv = CommonEnv.extend(SourceEnv.shape).extend(DataReadAuditEnv.shape).extend({
  PACKAGE_CONCURRENCY: z.coerce.number<unknown>().int().min(1).max(64).default(2),
  /** DuckDB's memory limit per DuckDB package (long text values need room, docs/deploy.md). */
  DUCKDB_MEMORY_LIMIT: z.string().regex(DUCKDB_MEMORY_LIMIT_PATTERN, {
    error: "must be a whole number and a unit (KB, MB, GB, KiB, MiB, GiB), e.g. 64MB",
  }).default(DEFAULT_DUCKDB_MEMORY_LIMIT),
  SOURCE_BATCH_ROWS: z.coerce.number<unknown>().int().min(1).max(1_000_000).default(
    DEFAULT_BATCH_ROWS,
  ),
  /** Mode of the files a filestore creates; owner-only unless a shared mount needs more. */
  FILESTORE_FILE_MODE: modeSetting(0o600, "0600"),
  /** Mode of the folders a filestore creates. */
  FILESTORE_DIR_MODE: modeSetting(0o700, "0700"),
  /** The secret holding the staging manifest key; without it the key is derived from the API key. */
  STAGING_MANIFEST_KEY_SECRET_NAME: z.string().regex(SECRET_NAME_PATTERN, {
    error: "must be a secret name",
  }).optional(),
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
  /**
   * Which packages get disclosure pre-checks (`docs/disclosure.md`): `requested` those whose request asks
   * (the gateway, when a gate before publish covers the destination), `on` all, `off` none.
   */
  DISCLOSURE_CHECKS: z.enum(DISCLOSURE_CHECK_SETTINGS).default(DEFAULT_DISCLOSURE_CHECK_SETTING),
  /** Values seen fewer times than this are flagged by the disclosure pre-checks. */
  SMALL_CELL_THRESHOLD: z.coerce.number<unknown>().int().min(1).max(1_000_000).default(
    DEFAULT_SMALL_CELL_THRESHOLD,
  ),
  /**
   * What a revocation does with a filestore release (`docs/revocation.md`): `delete` its files, or
   * `quarantine` them in the filestore's owner-only `revoked/` area.
   */
  REVOCATION_MODE: z.enum(REVOCATION_MODES).default("delete"),
  /** The HTTP-file sources (`docs/http-sources.md`); none when unset. */
  HTTP_FILE_SOURCES_FILE: z.string().optional(),
  /** Where runs are kept: `sqlite` (one file under `STATE_DIR`) or `postgresql` (shared by replicas). */
  RUN_STORE: z.enum(["sqlite", "postgresql"]).default("sqlite"),
  /**
   * The service's own state (the SQLite run store, `runs.sqlite`; the generated release signing key,
   * `release-signing-key.jwk`, without `RELEASE_SIGNING_KEY_SECRET_NAME`).
   */
  STATE_DIR: z.string().min(1).default(DEFAULT_STATE_DIR),
  /** The secret holding the release signing key, an Ed25519 private JWK (`docs/provenance.md`). */
  RELEASE_SIGNING_KEY_SECRET_NAME: z.string().regex(SECRET_NAME_PATTERN, {
    error: "must be a secret name",
  }).optional(),
  /** The secret holding the retired release keys' public JWKs, a JWK Set (optional). */
  RELEASE_RETIRED_KEYS_SECRET_NAME: z.string().regex(SECRET_NAME_PATTERN, {
    error: "must be a secret name",
  }).optional(),
  /** The licence every release's RO-Crate names: an SPDX id (`CC-BY-4.0`) or a URL. */
  RELEASE_LICENSE: z.string().trim().min(1).max(512).regex(/^[\x21-\x7e]+$/, {
    error: "must be an SPDX licence id or a URL, without spaces",
  }).optional(),
  /** A run whose process has not written it for this long is taken for dead (`interrupted`). */
  RUN_LEASE_SECONDS: z.coerce.number<unknown>().int().min(3).max(3600).default(30),
  /** Runs that stopped longer ago than this are deleted (the audit trail keeps its records). */
  RUN_RETENTION_DAYS: z.coerce.number<unknown>().int().min(1).max(36_500).default(90),
});

// The run store's configuration is shared with the operator (apps/_shared/run_store_from_env.ts).
export { RUN_STORE_KIND, runStoreFromEnv } from "../_shared/run_store_from_env.ts";

/**
 * The release signer: the key in the secret `RELEASE_SIGNING_KEY_SECRET_NAME` names (with the retired
 * keys of `RELEASE_RETIRED_KEYS_SECRET_NAME`), or else a key generated once under `STATE_DIR`, with a
 * warning the first time it is used (`docs/provenance.md`).
 */
export function releaseSignerFrom(
  config: Pick<
    z.infer<typeof PublishEnv>,
    "RELEASE_SIGNING_KEY_SECRET_NAME" | "RELEASE_RETIRED_KEYS_SECRET_NAME" | "STATE_DIR"
  >,
  secrets: SecretStore,
  log: Logger,
): ReleaseSigner {
  if (config.RELEASE_SIGNING_KEY_SECRET_NAME !== undefined) {
    return new Ed25519ReleaseSigner({
      secrets,
      keySecretName: config.RELEASE_SIGNING_KEY_SECRET_NAME,
      retiredKeysSecretName: config.RELEASE_RETIRED_KEYS_SECRET_NAME,
    });
  }
  return new Ed25519ReleaseSigner({
    generatedKeyFile: join(config.STATE_DIR, GENERATED_RELEASE_KEY_FILE),
    onGeneratedKey: () =>
      log.warn("release_key_generated", {
        hint: "receipts are signed with a key kept under STATE_DIR; set " +
          "RELEASE_SIGNING_KEY_SECRET_NAME to keep the key in the secret store (docs/provenance.md)",
      }),
  });
}

/** The secret the staging manifest key is read from when `STAGING_MANIFEST_KEY_SECRET_NAME` is not set. */
export const DEFAULT_MANIFEST_KEY_SECRET = "stagingmanifestkey";

/**
 * The key that signs staging manifests: from the secret `STAGING_MANIFEST_KEY_SECRET_NAME` names (by
 * default `stagingmanifestkey`, which may be absent), else derived from the service's API key. Either way
 * it goes through HKDF with its own label, so it is never the API key itself.
 *
 * @throws {ConfigError} when the named secret is missing, too short or cannot be read.
 */
export async function manifestKeyFromSecrets(
  secretName: string | undefined,
  secrets: SecretStore,
  apiKey: string,
  log: Logger,
): Promise<CryptoKey> {
  const name = secretName ?? DEFAULT_MANIFEST_KEY_SECRET;
  let material: string;
  try {
    material = (await secrets.get(name)).trim();
  } catch (e) {
    if (e instanceof SecretNotFoundError && secretName === undefined) {
      log.info("staging_manifest_key", { source: "derived from publishserviceapikey" });
      return await stagingManifestKey(apiKey);
    }
    throw new ConfigError(
      `Cannot start: cannot read the staging manifest key "${name}": ${(e as Error).message}`,
      { cause: e },
    );
  }
  if (material.length < MIN_MANIFEST_KEY_MATERIAL) {
    throw new ConfigError(
      `Cannot start: the staging manifest key "${name}" must be at least ${MIN_MANIFEST_KEY_MATERIAL} characters`,
    );
  }
  log.info("staging_manifest_key", { source: `secret ${name}` });
  return await stagingManifestKey(material);
}

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
  /** The destination's TLS, as `SOURCE_POSTGRES_SSLMODE` (`verify-full` by default). */
  DESTINATION_POSTGRESQL_SSLMODE: postgresSslModeVar(),
  DESTINATION_OPAL_HOST: required,
  DESTINATION_OPAL_USERNAME: required,
  DESTINATION_OPAL_PASSWORD_SECRET_NAME: required,
  DESTINATION_OPAL_NO_SSL_VERIFY: z.string().default("false").transform((v) =>
    v.toLowerCase() === "true"
  ),
  DESTINATION_OPAL_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().default(30),
});

/** The PostgreSQL destination's settings, read (and its TLS warned about) once. */
interface PostgresqlDestinationSettings {
  readonly config: z.infer<typeof PostgresqlDestinationEnv>;
  readonly tls: ReturnType<typeof postgresTlsOf>;
}

/** The PostgreSQL destination's settings, or `undefined` when the environment configures none. */
function postgresqlDestinationSettings(
  env: Record<string, string | undefined>,
  log: Logger,
): PostgresqlDestinationSettings | undefined {
  if ((env.DESTINATION_POSTGRESQL_HOST ?? "") === "") return undefined;
  const config = parseEnv(PostgresqlDestinationEnv, env);
  const tls = postgresTlsOf(
    "DESTINATION_POSTGRESQL_SSLMODE",
    config.DESTINATION_POSTGRESQL_SSLMODE,
    log,
  );
  return { config, tls };
}

/** The PostgreSQL destination of these settings. */
function postgresqlDestination(
  { config, tls }: PostgresqlDestinationSettings,
  secrets: SecretStore,
  timeouts: { connectTimeoutMs: number; statementTimeoutMs: number },
  connections: OpenConnections,
): PostgresqlDestination {
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
          tls,
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
 * The reader of the PostgreSQL destination's published tables (`/data-publish/read/*`). It keeps a
 * pool of its own, opened at the first read; the password is read from the secret store at every
 * read, and a changed one replaces the pool.
 */
function postgresqlReleaseReader(
  { config, tls }: PostgresqlDestinationSettings,
  secrets: SecretStore,
  timeouts: { connectTimeoutMs: number; statementTimeoutMs: number },
): ReleaseReader & { close(): Promise<void> } {
  let current: { password: string; reader: PostgresReleaseReader } | undefined;
  async function reader(): Promise<PostgresReleaseReader> {
    const password = await secrets.get(config.DESTINATION_POSTGRESQL_PASSWORD_SECRET_NAME);
    if (current?.password !== password) {
      const previous = current?.reader;
      current = {
        password,
        reader: new PostgresReleaseReader({
          host: config.DESTINATION_POSTGRESQL_HOST,
          port: config.DESTINATION_POSTGRESQL_PORT,
          database: config.DESTINATION_POSTGRESQL_DATABASE,
          username: config.DESTINATION_POSTGRESQL_USERNAME,
          password,
          readOnlyRole: config.DESTINATION_POSTGRESQL_OPAL_READONLY_USERNAME,
          tls,
          ...timeouts,
        }),
      };
      // Pages in flight on the old pool finish first.
      previous?.close().catch(() => {});
    }
    return current.reader;
  }
  return {
    listTables: async (run) => await (await reader()).listTables(run),
    readPage: async (run, request) => await (await reader()).readPage(run, request),
    readPageJson: async (run, request, orientation) =>
      await (await reader()).readPageJson(run, request, orientation),
    close: async () => await current?.reader.close(),
  };
}

/**
 * Builds the publish service from an environment. It first fixes how glibc's malloc returns freed memory
 * (`returnFreedMemoryPromptly`). Before serving, it sweeps what an interrupted package or publish left in
 * each filestore and in the PostgreSQL destination.
 */
export async function buildPublishService(
  env: Record<string, string | undefined>,
  logSink: LogSink = stdoutSink,
): Promise<RunnableService & { readonly runner: Runner }> {
  const log = createLogger("publish", logSink);
  const config = parseEnv(PublishEnv, env);
  returnFreedMemoryPromptly();
  const serviceSecrets = await serviceSecretsFromEnv(env, { log });
  const apiKey = await serviceSecrets.readApiKey("publishserviceapikey");
  // Before the recovery sweep: a missing scrape token stops startup before anything is touched.
  const { metrics, metricsAccess } = await metricsFrom(config, {
    service: "publish",
    secrets: serviceSecrets,
  });
  const secrets = serviceSecrets.store;
  const timeouts = {
    connectTimeoutMs: config.SOURCE_CONNECT_TIMEOUT_SECONDS * 1000,
    statementTimeoutMs: config.SOURCE_STATEMENT_TIMEOUT_SECONDS * 1000,
  };
  const connections = new OpenConnections();
  const connectors = sourceConnectors(config, { log });
  const destinationSettings = postgresqlDestinationSettings(env, log);
  const postgresql = destinationSettings &&
    postgresqlDestination(destinationSettings, secrets, timeouts, connections);
  const postgresqlReader = destinationSettings &&
    postgresqlReleaseReader(destinationSettings, secrets, timeouts);
  const mounts = filestoreMounts(env);
  const auditPath = env.AUDIT_LOG_PATH?.trim() ?? "";
  for (const [name, base] of mounts) {
    if (auditPath !== "" && await isInsideFilestore(auditPath, base)) {
      throw new ConfigError(
        `Cannot start: AUDIT_LOG_PATH is inside filestore destination ${name}; keep the audit trail ` +
          "outside every TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH",
      );
    }
  }
  const manifestKey = await manifestKeyFromSecrets(
    config.STAGING_MANIFEST_KEY_SECRET_NAME,
    secrets,
    apiKey,
    log,
  );
  const modes = { file: config.FILESTORE_FILE_MODE, dir: config.FILESTORE_DIR_MODE };
  const filestores = new Map<string, Filestore>(
    [...mounts].map(([name, path]) => [
      name,
      new LocalFilestore(path, {
        manifestKey,
        modes,
        onWarning: (event, fields) => log.warn(event, { filestore: name, ...fields }),
      }),
    ]),
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
      log.error("recovery_failed", {
        destination: "postgresql",
        message: (e as Error).message,
        // A failed connection or login has a fixed message; the driver's (redacted) is the reason.
        reason: e instanceof AppError ? e.logDetail : undefined,
      });
    }
  }
  if (filestores.size === 0) {
    log.warn("no_filestore_destinations", {
      hint: "set TARGET_STORAGE_ACCOUNT_{NAME}_SDE_MNT_PATH",
    });
  }
  const auditTrail = auditTrailFromEnv(env, log);
  const runStore = await runStoreFromEnv(env, secrets, log);
  const releaseSigner = releaseSignerFrom(config, secrets, log);
  // The signing key is read (or generated) now, so that no request ever creates it and a key that
  // cannot be read stops the service at startup rather than at its first publish.
  await releaseSigner.keySet();
  const remote = await remoteRunsFromEnv(env, runStore, log, { detailPrefix: "PublishService: " });
  const httpSources = await httpSourcesFromEnv(env, secrets, log);
  const refusals = refusalTallyFrom(config, { service: "publish", log, trail: auditTrail });
  const readAudit = dataReadAuditFrom(config, { service: "publish", log, trail: auditTrail });
  const { app, runner } = createPublishService({
    runStore,
    releaseSigner,
    ...(config.RELEASE_LICENSE === undefined
      ? {}
      : { releaseLicense: { id: config.RELEASE_LICENSE, name: config.RELEASE_LICENSE } }),
    runLeaseMs: config.RUN_LEASE_SECONDS * 1000,
    apiKey,
    log,
    maxBodyBytes: config.MAX_BODY_BYTES,
    bodyReading: bodyReadingFrom(config),
    refusals,
    auditTrail,
    readAudit,
    // One registry: HTTP requests, runs (the use cases report to `metrics`), and source failures.
    metrics,
    metricsAccess,
    sourceFailures: metrics,
    allowedSources: readAllowedSources(config.ALLOWED_SOURCES_FILE, log),
    secrets,
    connections,
    connectors,
    ...timeouts,
    filestores,
    // The upload quarantine area the approval service writes (`docs/uploads.md`), mounted here too.
    quarantine: await quarantineFromEnv(env),
    ...(postgresql === undefined ? {} : { postgresql }),
    runDispatch: remote === undefined ? undefined : (run) => remote.dispatch(run),
    httpSources: httpSources?.sources,
    releaseReaders: {
      filestores: new Map(
        [...mounts].map(([name, path]) => [name, new FilestoreReleaseReader(path)]),
      ),
      postgresql: postgresqlReader,
    },
    writers: {
      csv: new CsvDatasetWriter({ formulaPrefix: config.CSV_FORMULA_PREFIX }),
      duckdb: duckdbWriterOnFirstUse(config.DUCKDB_MEMORY_LIMIT),
    },
    concurrency: config.PACKAGE_CONCURRENCY,
    batchRows: config.SOURCE_BATCH_ROWS,
    batchBytes: config.SOURCE_BATCH_BYTES,
    maxValueBytes: config.SOURCE_MAX_VALUE_BYTES,
    revocationMode: config.REVOCATION_MODE,
    disclosureChecks: {
      setting: config.DISCLOSURE_CHECKS,
      smallCellThreshold: config.SMALL_CELL_THRESHOLD,
    },
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
      try {
        await runStore.list({ limit: 1 });
        checks.push({ name: "run store", ok: true });
      } catch (e) {
        checks.push({ name: "run store", ok: false, detail: (e as Error).message });
      }
      return checks;
    },
  });
  // Runs of processes that died are marked interrupted, and old runs pruned: now, and every lease once
  // the service answers its first request (so that building a service starts no timer).
  const retentionDays = config.RUN_RETENTION_DAYS;
  await runner.maintain(retentionDays);
  // Scheduled HTTP-file sources run from the first request on, as maintenance does, unless the
  // operator runs the schedules (`httpSourceSchedulerOf`: one of the two, never both).
  let stopSchedule: (() => void) | undefined = httpSources?.scheduler === "operator"
    ? () => {}
    : undefined;
  return {
    runner,
    fetch: (request) => {
      runner.startMaintenance(retentionDays);
      stopSchedule ??= httpSources?.sources.startSchedule(runner, log);
      return app.fetch(request);
    },
    ...listenOptionsFrom(config, portFrom(env, 8003)),
    shutdownGraceMs: config.SHUTDOWN_GRACE_SECONDS * 1000,
    // Runs are stopped through their signals (they become interrupted, resumable). A source read or a
    // load waiting on its database only sees the signal after that wait, so the connections are closed
    // too: the work then fails at once down its normal error path.
    abort: async () => {
      const stopping = runner.close();
      await connections.closeAll();
      await stopping;
    },
    close: async () => {
      stopSchedule?.();
      remote?.close();
      await runner.close();
      await httpSources?.close();
      await runStore.close();
      await refusals.close();
      await readAudit.close();
      await postgresqlReader?.close();
    },
  };
}

/**
 * The DuckDB writer, loaded with DuckDB itself by the first DuckDB package: DuckDB's native library and
 * its bindings add about 30 MB of resident memory, which a service writing only CSV files or PostgreSQL
 * tables would otherwise hold (apps/publish/startup_modules_test.ts).
 */
function duckdbWriterOnFirstUse(memoryLimit: string): DatasetWriter {
  let writer: Promise<DatasetWriter> | undefined;
  return {
    async write(...args) {
      writer ??= import("../../adapters/duckdb/duckdb_dataset_writer.ts").then((m) =>
        new m.DuckdbDatasetWriter({ memoryLimit })
      );
      return await (await writer).write(...args);
    },
  };
}

if (import.meta.main && Deno.args[0] === "run") {
  // One-run mode (a Kubernetes Job): `run <id>` executes one stored run and exits.
  Deno.exit(
    await runOnce(Deno.args[1] ?? "", Deno.env.toObject(), {
      build: buildPublishService,
      mounts: filestoreMounts,
    }),
  );
}

if (import.meta.main) {
  await runService(
    createLogger("publish"),
    () => buildPublishService(Deno.env.toObject()),
  );
  Deno.exit(0);
}
