/**
 * Configuration shared by the three services, parsed once from the environment by pure functions.
 * Keys have no defaults: a service without its key refuses to start.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { AllowedSources } from "../../domain/allowed_sources.ts";
import { ConfigError } from "./app_errors.ts";
import type { Logger } from "./log.ts";

/** The shortest API key a service accepts. */
export const MIN_API_KEY_LENGTH = 16;

/** Environment variables every service reads. */
export const CommonEnv = z.object({
  SECRETS_MNT_PATH: z.string().min(1).default("./secrets"),
  MAX_BODY_BYTES: z.coerce.number<unknown>().int().positive().default(1024 * 1024),
  /** How long a shutdown lets requests in flight finish before cancelling them. */
  SHUTDOWN_GRACE_SECONDS: z.coerce.number<unknown>().min(0).max(3600).default(25),
});

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
 * Reads an API key: the env var of that name (as written or upper case) wins over the file of that name in
 * the secrets directory, as in the reference. The value is trimmed.
 *
 * @throws {ConfigError} when the key is missing, empty or shorter than {@link MIN_API_KEY_LENGTH}.
 */
export function readApiKey(
  name: string,
  env: Record<string, string | undefined>,
  secretsDir: string,
): string {
  let value = env[name] ?? env[name.toUpperCase()];
  if (value === undefined) {
    try {
      value = readFileSync(join(secretsDir, name), "utf8");
    } catch {
      throw new ConfigError(
        `Cannot start: API key "${name}" is not set; put it in the file ${name} under SECRETS_MNT_PATH or in the env var ${name.toUpperCase()}`,
      );
    }
  }
  value = value.trim();
  if (value.length < MIN_API_KEY_LENGTH) {
    throw new ConfigError(
      `Cannot start: API key "${name}" is ${
        value === "" ? "empty" : "too short"
      }; it must be at least ${MIN_API_KEY_LENGTH} characters`,
    );
  }
  return value;
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
