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
import { openPostgresReleaseStore } from "../../adapters/postgres/postgres_release_store.ts";
import {
  openSqliteReleaseStore,
  sqliteReleaseStorePath,
} from "../../adapters/sqlite/sqlite_release_store.ts";
import type { ReleaseStore } from "../../ports/release_store.ts";
import type { SecretStore } from "../../ports/secret_store.ts";
import { ConfigError } from "../_shared/app_errors.ts";
import { readApprovalPolicy } from "../_shared/approval_policy_file.ts";
import type { Logger } from "../_shared/log.ts";
import { personVerifierFromEnv } from "../_shared/person_verifier_from_env.ts";
import { stateStoreFromEnv, type StateStoreKind } from "../_shared/state_store_from_env.ts";
import { type ApprovalGates, createApprovalApp } from "./app.ts";
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

/** How the release store is opened (`RELEASE_STORE`, `RELEASE_STORE_POSTGRESQL_*`, `STATE_DIR`). */
export const RELEASE_STORE_KIND: StateStoreKind<ReleaseStore> = {
  prefix: "RELEASE_STORE",
  label: "release store",
  sqlitePath: sqliteReleaseStorePath,
  openSqlite: (path) => openSqliteReleaseStore({ path }),
  openPostgres: (options) => openPostgresReleaseStore(options),
};

/**
 * The approval gates the environment configures: none without `APPROVAL_POLICY_FILE` (nothing else is
 * read then, and the log says there are no gates); with it, the policy, the release store
 * (`RELEASE_STORE`, SQLite under `STATE_DIR` by default) and people's sign-in (`OIDC_*`, required).
 *
 * @throws {ConfigError} when the policy is not valid, OIDC is not configured beside it, or the release
 *   store cannot be opened.
 */
export async function approvalGatesFromEnv(
  env: Record<string, string | undefined>,
  secrets: SecretStore,
  log: Logger,
): Promise<ApprovalGates | undefined> {
  const policy = readApprovalPolicy(env.APPROVAL_POLICY_FILE?.trim(), log);
  if (policy === null) return undefined;
  const verifier = personVerifierFromEnv(env);
  if (verifier === undefined) {
    throw new ConfigError(
      "Cannot start: APPROVAL_POLICY_FILE is set but OIDC_ISSUER_URL is not: approvers sign in with " +
        "a person's token, so set OIDC_ISSUER_URL and OIDC_AUDIENCE (or unset APPROVAL_POLICY_FILE)",
    );
  }
  const store = await stateStoreFromEnv(RELEASE_STORE_KIND, env, secrets, log);
  return { policy, store, verifier };
}

/**
 * Builds the gateway from an environment; log lines go to `logSink` (standard output). Its three keys are
 * read once, here (and, with a PostgreSQL release store, that store's password), so its `/ready` does not
 * check the secret store. With `APPROVAL_POLICY_FILE`, package and publish are gated
 * ({@link approvalGatesFromEnv}).
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
  const gates = await approvalGatesFromEnv(env, secrets.store, log);
  const shutdown = new AbortController();
  const app = createApprovalApp({
    gates,
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
    close: async () => {
      await refusals.close();
      await gates?.store.close();
    },
  };
}

if (import.meta.main) {
  await runService(
    createLogger("approval"),
    () => buildApprovalService(Deno.env.toObject()),
  );
  Deno.exit(0);
}
