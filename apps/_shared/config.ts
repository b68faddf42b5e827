/**
 * Configuration shared by the three services, parsed once from the environment by pure functions.
 * Keys have no defaults: a service without its key refuses to start.
 *
 * @module
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import { ConfigError } from "./app_errors.ts";

/** The shortest API key a service accepts. */
export const MIN_API_KEY_LENGTH = 16;

/** Environment variables every service reads. */
export const CommonEnv = z.object({
  SECRETS_MNT_PATH: z.string().min(1).default("./secrets"),
  MAX_BODY_BYTES: z.coerce.number<unknown>().int().positive().default(1024 * 1024),
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

/** Timeouts for reaching source databases (metadata and publish). */
export const SourceEnv = z.object({
  SOURCE_CONNECT_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().default(15),
  SOURCE_STATEMENT_TIMEOUT_SECONDS: z.coerce.number<unknown>().positive().default(3600),
});
