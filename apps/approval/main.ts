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
import { type ApprovalGates, createApprovalService } from "./app.ts";
import { startReleaseSweeper } from "./release_sweeper.ts";
import { DEFAULT_MAX_REPLY_BYTES } from "./sub_service.ts";
import { OidcLogin } from "../../adapters/oidc/oidc_login.ts";
import { OidcEnv } from "../_shared/person_verifier_from_env.ts";
import type { ApprovalDeps } from "./app.ts";
import { uploadsFromEnv } from "./uploads_from_env.ts";
import { dataApiFromEnv, type DataApiSetup } from "./data_api_from_env.ts";

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
  /** How often the expiry sweep revokes expired releases and retries revocations left `revoking`. */
  RELEASE_SWEEP_INTERVAL_SECONDS: z.coerce.number<unknown>().positive().max(86_400).default(60),
});

/** The dashboard's settings (`docs/ui.md`). */
export const DashboardEnv = z.object({
  /** The dashboard's client id at the OpenID provider; the dashboard is on only with it (and gates). */
  UI_OIDC_CLIENT_ID: z.string().min(1).optional(),
  /** The secret store entry holding the client secret; unset for a public client (PKCE only). */
  UI_OIDC_CLIENT_SECRET_NAME: z.string().min(1).optional(),
  /** The public URL of this service, without `/ui`; the sign-in comes back to `${UI_BASE_URL}/ui/callback`. */
  UI_BASE_URL: z.string().optional().refine(
    (value) =>
      value === undefined ||
      URL.canParse(value) && ["https:", "http:"].includes(new URL(value).protocol) &&
        new URL(value).pathname === "/",
    { error: "must be an http(s) URL with no path, such as https://publisher.example.org" },
  ),
  /** How long a dashboard session lasts. */
  UI_SESSION_TTL_MINUTES: z.coerce.number<unknown>().int().min(1).max(7 * 24 * 60).default(480),
  /** Comma-separated roles that may cancel and resume runs from the dashboard. */
  UI_OPERATOR_ROLES: z.string().default("operator").transform((value) =>
    value.split(",").map((role) => role.trim()).filter((role) => role !== "")
  ),
}).refine((env) => env.UI_OIDC_CLIENT_ID === undefined || env.UI_BASE_URL !== undefined, {
  path: ["UI_BASE_URL"],
  error: "must be set when UI_OIDC_CLIENT_ID is set",
});

/**
 * The dashboard the environment configures: none without `UI_OIDC_CLIENT_ID` or without gates (the
 * dashboard shows releases, so it needs `APPROVAL_POLICY_FILE` and `OIDC_ISSUER_URL`).
 *
 * @throws {ConfigError} A `UI_*` variable is invalid, or the client secret cannot be read.
 */
export async function dashboardFromEnv(
  env: Record<string, string | undefined>,
  secrets: SecretStore,
  gates: ApprovalGates | undefined,
  log: Logger,
): Promise<ApprovalDeps["dashboard"]> {
  const config = parseEnv(DashboardEnv, env);
  if (config.UI_OIDC_CLIENT_ID === undefined || config.UI_BASE_URL === undefined) {
    if ((env.UPLOAD_QUARANTINE_PATH ?? "").trim() !== "") {
      // The deployment prepared the quarantine volume (docs/deploy.md); uploads wait for the dashboard.
      log.warn("uploads_off", {
        detail:
          "UPLOAD_QUARANTINE_PATH is set, but uploads are served by the dashboard, which is " +
          "off (UI_OIDC_CLIENT_ID unset): no upload is accepted",
      });
    }
    return undefined;
  }
  if (gates === undefined) {
    throw new ConfigError(
      "Cannot start: UI_OIDC_CLIENT_ID is set but APPROVAL_POLICY_FILE is not: the dashboard shows " +
        "releases and their gates, so set APPROVAL_POLICY_FILE (or unset UI_OIDC_CLIENT_ID)",
    );
  }
  const oidc = parseEnv(OidcEnv, env);
  if (oidc.OIDC_ISSUER_URL === undefined) {
    throw new ConfigError("Cannot start: OIDC_ISSUER_URL is not set");
  }
  const baseUrl = config.UI_BASE_URL.replace(/\/+$/, "");
  const secretName = config.UI_OIDC_CLIENT_SECRET_NAME;
  const login = new OidcLogin({
    issuerUrl: oidc.OIDC_ISSUER_URL,
    clientId: config.UI_OIDC_CLIENT_ID,
    clientSecret: secretName === undefined ? undefined : await secrets.get(secretName),
    redirectUri: `${baseUrl}/ui/callback`,
    rolesClaim: oidc.OIDC_ROLES_CLAIM,
    idClaim: oidc.OIDC_ID_CLAIM,
    nameClaims: oidc.OIDC_NAME_CLAIMS,
    clockSkewSeconds: oidc.OIDC_CLOCK_SKEW_SECONDS,
  });
  log.info("dashboard", { detail: `the dashboard is served at ${baseUrl}/ui/` });
  return {
    login,
    baseUrl,
    sessionTtlMs: config.UI_SESSION_TTL_MINUTES * 60_000,
    operatorRoles: config.UI_OPERATOR_ROLES,
    uploads: await uploadsFromEnv(env, gates.policy, log),
  };
}

/** How the release store is opened (`RELEASE_STORE`, `RELEASE_STORE_POSTGRESQL_*`, `STATE_DIR`). */
export const RELEASE_STORE_KIND: StateStoreKind<ReleaseStore> = {
  prefix: "RELEASE_STORE",
  label: "release store",
  sqlitePath: sqliteReleaseStorePath,
  openSqlite: (path) => openSqliteReleaseStore({ path }),
  openPostgres: (options) => openPostgresReleaseStore(options),
};

/**
 * The approval gates the environment configures over `store` (the release store, always opened:
 * `RELEASE_STORE`, SQLite under `STATE_DIR` by default): none without `APPROVAL_POLICY_FILE` (nothing
 * else is read then, and the log says there are no gates); with it, the policy and people's sign-in
 * (`OIDC_*`, required).
 *
 * @throws {ConfigError} when the policy is not valid or OIDC is not configured beside it.
 */
export function approvalGatesFromEnv(
  env: Record<string, string | undefined>,
  store: ReleaseStore,
  log: Logger,
): ApprovalGates | undefined {
  const policy = readApprovalPolicy(env.APPROVAL_POLICY_FILE?.trim(), log);
  if (policy === null) return undefined;
  const verifier = personVerifierFromEnv(env);
  if (verifier === undefined) {
    throw new ConfigError(
      "Cannot start: APPROVAL_POLICY_FILE is set but OIDC_ISSUER_URL is not: approvers sign in with " +
        "a person's token, so set OIDC_ISSUER_URL and OIDC_AUDIENCE (or unset APPROVAL_POLICY_FILE)",
    );
  }
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
  // Every release is recorded, with or without a policy (`docs/revocation.md`).
  const releaseStore = await stateStoreFromEnv(RELEASE_STORE_KIND, env, secrets.store, log);
  let gates: ApprovalGates | undefined;
  let dashboard: ApprovalDeps["dashboard"];
  let dataApi: DataApiSetup | undefined;
  try {
    gates = approvalGatesFromEnv(env, releaseStore, log);
    dashboard = await dashboardFromEnv(env, secrets.store, gates, log);
    // The data API (`docs/data-api.md`): its nonces live in the release store's database.
    dataApi = await dataApiFromEnv(env, secrets.store, auditTrail, log);
  } catch (e) {
    await releaseStore.close();
    throw e;
  }
  const shutdown = new AbortController();
  const { app, sweepReleases } = createApprovalService({
    gates,
    releaseStore,
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
    dashboard,
    dataApi: dataApi?.deps,
  });
  const sweeper = startReleaseSweeper(sweepReleases, config.RELEASE_SWEEP_INTERVAL_SECONDS * 1000);
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
      await sweeper.stop();
      await refusals.close();
      // Every read answered so far is recorded before the process ends.
      await dataApi?.close();
      await releaseStore.close();
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
