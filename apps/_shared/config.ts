/**
 * Configuration shared by the three services, parsed once from the environment by pure functions.
 * Keys have no defaults: a service without its key refuses to start.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import { MYSQL_SSL_MODES } from "../../adapters/mysql/mysql_tls.ts";
import { POSTGRES_SSL_MODES } from "../../adapters/postgres/postgres_tls.ts";
import { AllowedSources } from "../../domain/allowed_sources.ts";
import { SECRET_NAME_PATTERN } from "../../domain/names.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";
import { ConfigError } from "./app_errors.ts";
import type { BodyReading } from "./create_app.ts";
import type { Logger } from "./log.ts";
import { RefusalTally } from "./refusals.ts";

/** The shortest API key a service accepts. */
export const MIN_API_KEY_LENGTH = 16;

/** Where the services read their secrets from (`SECRETS_PROVIDER`). */
export const SECRETS_PROVIDERS = ["file", "azure-keyvault"] as const;

/** One of {@link SECRETS_PROVIDERS}. */
export type SecretsProvider = typeof SECRETS_PROVIDERS[number];

/** Environment variables every service reads. */
export const CommonEnv = z.object({
  /**
   * `file` (the files in `SECRETS_MNT_PATH`) or `azure-keyvault` (the vault at `AZURE_KEYVAULT_URL`), for the
   * API keys and the credentials requests name (`apps/_shared/secret_store_from_env.ts`).
   */
  SECRETS_PROVIDER: z.enum(SECRETS_PROVIDERS, {
    error: () => `must be one of ${SECRETS_PROVIDERS.map((p) => `"${p}"`).join(", ")}`,
  }).default("file"),
  SECRETS_MNT_PATH: z.string().min(1).default("./secrets"),
  MAX_BODY_BYTES: z.coerce.number<unknown>().int().positive().default(1024 * 1024),
  /** How long a shutdown lets requests in flight finish before cancelling them. */
  SHUTDOWN_GRACE_SECONDS: z.coerce.number<unknown>().min(0).max(3600).default(25),
  /**
   * The address the service listens on: loopback by default, so that outside a container only this host
   * reaches it; the container images and manifests set `0.0.0.0`.
   */
  BIND_ADDRESS: z.string().regex(/^[A-Za-z0-9.:-]{1,253}$/, {
    error: "must be an IP address or a host name",
  }).default("127.0.0.1"),
  /** A client must send a request's line and headers within this time, or the connection is closed. */
  HEADERS_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().max(300).default(10),
  /** A request body must arrive within this time (408 otherwise). */
  BODY_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().max(3600).default(30),
  /** A request body that sends nothing for this long is cut off (408). */
  BODY_IDLE_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().max(3600).default(10),
  /** How many request bodies are read at once; more get 503 with Retry-After. */
  MAX_CONCURRENT_BODIES: z.coerce.number<unknown>().int().min(1).max(1024).default(16),
  /** How often at most the refusals for a missing or wrong key are summarised (log and audit trail). */
  AUDIT_REFUSAL_INTERVAL_SECONDS: z.coerce.number<unknown>().min(1).max(86_400).default(60),
  /** `true`: `GET /metrics` is answered without any credential (`apps/_shared/service_metrics.ts`). */
  METRICS_PUBLIC: z.enum(["true", "false"]).default("false").transform((v) => v === "true"),
  /** The secret holding a bearer token (32+ characters) that `GET /metrics` accepts too. */
  METRICS_BEARER_TOKEN_SECRET_NAME: z.string().regex(SECRET_NAME_PATTERN, {
    error: "must be a secret name",
  }).optional(),
});

/** The parsed {@link CommonEnv}. */
export type CommonConfig = z.infer<typeof CommonEnv>;

/** How the HTTP stack reads bodies, from {@link CommonEnv}. */
export function bodyReadingFrom(config: CommonConfig): BodyReading {
  return {
    timeoutMs: config.BODY_TIMEOUT_SECONDS * 1000,
    idleTimeoutMs: config.BODY_IDLE_TIMEOUT_SECONDS * 1000,
    maxConcurrent: config.MAX_CONCURRENT_BODIES,
  };
}

/**
 * The refusal tally of a service, from {@link CommonEnv}: its summaries go to `log` and `trail`. The
 * composition root closes it at shutdown.
 */
export function refusalTallyFrom(
  config: CommonConfig,
  options: { service: string; log: Logger; trail: AuditTrail | undefined },
): RefusalTally {
  return new RefusalTally({ ...options, intervalMs: config.AUDIT_REFUSAL_INTERVAL_SECONDS * 1000 });
}

/** Parses an env record with a zod schema, listing every bad variable in one {@link ConfigError}. */
export function parseEnv<T extends z.ZodType>(
  schema: T,
  env: Record<string, string | undefined>,
): z.infer<T> {
  const result = schema.safeParse(env);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  throw new ConfigError(`Cannot start: invalid configuration: ${problems.join("; ")}`);
}

/** `PORT`, with the service's own default. */
export function portFrom(env: Record<string, string | undefined>, fallback: number): number {
  return parseEnv(
    z.object({ PORT: z.coerce.number<unknown>().int().min(0).max(65535).default(fallback) }),
    env,
  )
    .PORT;
}

/**
 * A PostgreSQL `sslmode` variable: `verify-full` (the default), `verify-ca`, `require` or `disable`, as
 * libpq spells them. libpq's `prefer` and `allow` fall back to plain text and are refused with a reason.
 */
export function postgresSslModeVar() {
  return z.string().default("verify-full").pipe(z.enum(POSTGRES_SSL_MODES, {
    error: (issue) =>
      issue.input === "prefer" || issue.input === "allow"
        ? `"${issue.input}" may fall back to plain text, which is never done here; use ` +
          `${quoted(POSTGRES_SSL_MODES)}`
        : `must be one of ${quoted(POSTGRES_SSL_MODES)}`,
  }));
}

/**
 * A MySQL `ssl-mode` variable: `VERIFY_IDENTITY` (the default), `VERIFY_CA`, `REQUIRED` or `DISABLED`, in
 * any case, as MySQL's `--ssl-mode` spells them. `PREFERRED` falls back to plain text and is refused with a
 * reason.
 */
export function mysqlSslModeVar() {
  return z.string().default("VERIFY_IDENTITY").transform((v) => v.toUpperCase()).pipe(
    z.enum(MYSQL_SSL_MODES, {
      error: (issue) =>
        issue.input === "PREFERRED"
          ? `"PREFERRED" may fall back to plain text, which is never done here; use ` +
            `${quoted(MYSQL_SSL_MODES)}`
          : `must be one of ${quoted(MYSQL_SSL_MODES)}`,
    }),
  );
}

function quoted(values: readonly string[]): string {
  return values.map((v) => `"${v}"`).join(", ");
}

/** The source allow-list and the timeouts for reaching source databases (metadata and publish). */
export const SourceEnv = z.object({
  /** The allow-list file (`domain/allowed_sources.ts`); without it every source is refused. */
  ALLOWED_SOURCES_FILE: z.string().optional(),
  /** SQL Server TLS: `true` (TLS required, the default), `strict` (TDS 8.0) or `false` (test servers only). */
  SOURCE_MSSQL_ENCRYPT: z.enum(["true", "strict", "false"]).default("true")
    .transform((v) => v === "strict" ? "strict" as const : v === "true"),
  /** Accept a SQL Server certificate without checking it; only for a known self-signed server. */
  SOURCE_MSSQL_TRUST_SERVER_CERTIFICATE: z.enum(["true", "false"]).default("false")
    .transform((v) => v === "true"),
  /** PostgreSQL sources' TLS (see {@link postgresSslModeVar}). */
  SOURCE_POSTGRES_SSLMODE: postgresSslModeVar(),
  /** MySQL and MariaDB sources' TLS (see {@link mysqlSslModeVar}). */
  SOURCE_MYSQL_SSLMODE: mysqlSslModeVar(),
  /**
   * The extra CA bundles Deno trusts for every TLS connection (a private CA); read here only to refuse one
   * that Deno would ignore.
   */
  DENO_CERT: z.string().optional(),
  NODE_EXTRA_CA_CERTS: z.string().optional(),
  SOURCE_CONNECT_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().default(15),
  SOURCE_STATEMENT_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().default(3600),
});

/**
 * Reads the source allow-list. Without a file every source is refused, and the log says so.
 *
 * @throws {ConfigError} when the file cannot be read or is not a valid allow-list.
 */
export function readAllowedSources(path: string | undefined, log: Logger): AllowedSources {
  if (path === undefined || path === "") {
    log.warn("no_allowed_sources", {
      hint: "every source is refused; set ALLOWED_SOURCES_FILE to the allow-list",
    });
    return AllowedSources.none();
  }
  let allowed: AllowedSources;
  try {
    allowed = AllowedSources.parse(readFileSync(path, "utf8"));
  } catch (e) {
    const reason = e instanceof z.ZodError
      ? e.issues.map((i) => `${i.path.join(".") || "(file)"}: ${i.message}`).join("; ")
      : (e as Error).message;
    throw new ConfigError(`Cannot read ALLOWED_SOURCES_FILE ${path}: ${reason}`);
  }
  log.info("allowed_sources", { file: path, entries: allowed.size });
  if (allowed.size === 0) log.warn("no_allowed_sources", { hint: "the allow-list is empty" });
  return allowed;
}
