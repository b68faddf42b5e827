/**
 * What the deployment tests know about the services, derived from the code rather than copied: which
 * environment variables each service reads (by building it with a recording environment), its default
 * port, the API keys it reads, its shutdown timings, and what README.md documents. Plus small readers
 * for the deployment files themselves.
 *
 * @module
 */
import { parseAllDocuments } from "yaml";
import { join } from "node:path";
import { generateReleaseKey } from "../../adapters/crypto/ed25519_release_signer.ts";
import { CommonEnv } from "../../apps/_shared/config.ts";
import { CLEANUP_MS } from "../../apps/_shared/serve.ts";
import { filestoreMounts } from "../../apps/publish/main.ts";
import { AllowedSources } from "../../domain/allowed_sources.ts";
import { postgresAdmin, quotePostgres } from "../support/databases.ts";
import { POSTGRES, randomName } from "../support/services.ts";
import { type Service, SERVICES } from "../../tools/compile.ts";

export { type Service, SERVICES };

/** The repository root. */
export const ROOT = new URL("../../", import.meta.url);

/** A path under the repository root. */
export function repoPath(path: string): string {
  return new URL(path, ROOT).pathname;
}

/** A file of the repository, as text. */
export function readRepoFile(path: string): Promise<string> {
  return Deno.readTextFile(new URL(path, ROOT));
}

/** A parsed YAML object; manifests and compose files are maps at the top. */
export type Doc = Record<string, unknown>;

/**
 * Parses every document of a YAML stream and fails on the first syntax error with the file's name.
 * Kubernetes reads YAML 1.1 (the default here); Compose reads YAML 1.2, where `.` is a string, not NaN.
 */
export function parseYaml(text: string, source: string, version: "1.1" | "1.2" = "1.1"): Doc[] {
  const docs = parseAllDocuments(text, { version, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: Doc[] = [];
  for (const doc of list) {
    if (doc.errors.length > 0) {
      throw new SyntaxError(
        `Cannot parse ${source}: ${doc.errors.map((e) => e.message).join("; ")}`,
      );
    }
    const value = doc.toJS({ maxAliasCount: 100 }) as unknown;
    if (value === null || value === undefined) continue;
    if (typeof value !== "object" || Array.isArray(value)) {
      throw new SyntaxError(`Cannot use ${source}: a document is not a map`);
    }
    out.push(value as Doc);
  }
  return out;
}

/** `value` as a map, or an empty one. */
export function obj(value: unknown): Doc {
  return value !== null && typeof value === "object" && !Array.isArray(value) ? value as Doc : {};
}

/** `value` as a list, or an empty one. */
export function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

// ---------------------------------------------------------------------------------------------------------
// What the services read.

const API_KEYS = ["approvalserviceapikey", "metadataserviceapikey", "publishserviceapikey"];

/** What building a service with an environment showed. */
export interface BuildFacts {
  /** Every environment variable the service looked up while it was built. */
  readonly reads: ReadonlySet<string>;
  /** The port it would listen on. */
  readonly port: number;
  /** The API keys it read (the lower-case names it looked up, as the keys are secret files). */
  readonly apiKeys: readonly string[];
}

type BuildFn = (
  env: Record<string, string | undefined>,
  logSink: (line: string) => void,
) => unknown;

async function builderOf(service: Service): Promise<BuildFn> {
  const module = await import(`../../apps/${service}/main.ts`) as Record<string, unknown>;
  const name = `build${service[0]!.toUpperCase()}${service.slice(1)}Service`;
  const build = module[name];
  if (typeof build !== "function") {
    throw new Error(`Cannot find ${name} in apps/${service}/main.ts`);
  }
  return build as BuildFn;
}

/**
 * Builds a service (without listening) from `env` and records every variable it looks up. Values that
 * would reach outside the test are replaced, names kept: the secrets directory (a temporary one holding
 * the three API keys and every secret a `*_SECRET_NAME` variable names), the allow-list and audit trail
 * files (temporary), the destination hosts (loopback), and a PostgreSQL run store (a new database in the
 * local PostgreSQL, without TLS, dropped after). The environment hides its list of names, so a variable
 * counts only when the service asks
 * for it by name; names the service finds by scanning (`TARGET_STORAGE_ACCOUNT_*_SDE_MNT_PATH`) are
 * checked by {@link readsVariable}.
 */
export async function buildFacts(
  service: Service,
  env: Record<string, string> = {},
): Promise<BuildFacts> {
  const dir = await Deno.makeTempDir({ prefix: "cr8tor-deploy-" });
  const runStoreDatabase = env.RUN_STORE === "postgresql" ? randomName("cr8tor_deploy_runs") : "";
  try {
    const secrets = join(dir, "secrets");
    await Deno.mkdir(secrets);
    // The API keys, and the secrets the environment names (`*_SECRET_NAME`), which a service may
    // read at startup (`METRICS_BEARER_TOKEN_SECRET_NAME`).
    for (const key of [...API_KEYS, ...secretNamesIn(env)]) {
      await Deno.writeTextFile(join(secrets, key), "k".repeat(32));
    }
    const values: Record<string, string> = { ...env, SECRETS_MNT_PATH: secrets };
    if (values.ALLOWED_SOURCES_FILE !== undefined) {
      values.ALLOWED_SOURCES_FILE = join(dir, "allowed-sources.json");
      await Deno.writeTextFile(values.ALLOWED_SOURCES_FILE, '{"sources": []}');
    }
    if (values.AUDIT_LOG_PATH !== undefined) values.AUDIT_LOG_PATH = join(dir, "audit.jsonl");
    if (values.UPLOAD_QUARANTINE_PATH !== undefined) {
      values.UPLOAD_QUARANTINE_PATH = join(dir, "uploads");
    }
    if (values.DESTINATION_POSTGRESQL_HOST !== undefined) {
      values.DESTINATION_POSTGRESQL_HOST = "127.0.0.1";
    }
    if (values.DESTINATION_OPAL_HOST !== undefined) {
      values.DESTINATION_OPAL_HOST = "http://127.0.0.1:9";
    }
    if (runStoreDatabase !== "") {
      await withPostgresAdmin((sql) =>
        sql.unsafe(`create database ${quotePostgres(runStoreDatabase)}`)
      );
      Object.assign(values, {
        RUN_STORE_POSTGRESQL_HOST: POSTGRES.host,
        RUN_STORE_POSTGRESQL_PORT: String(POSTGRES.port),
        RUN_STORE_POSTGRESQL_DATABASE: runStoreDatabase,
        RUN_STORE_POSTGRESQL_USERNAME: POSTGRES.user,
        RUN_STORE_POSTGRESQL_SSLMODE: "disable",
      });
      const secret = values.RUN_STORE_POSTGRESQL_PASSWORD_SECRET_NAME;
      if (secret !== undefined) await Deno.writeTextFile(join(secrets, secret), "unused-password");
    }
    // The release signing key is read at startup: give it one (a private Ed25519 JWK).
    const signingKey = values.RELEASE_SIGNING_KEY_SECRET_NAME;
    if (signingKey !== undefined) {
      const { privateJwk } = await generateReleaseKey();
      await Deno.writeTextFile(join(secrets, signingKey), JSON.stringify(privateJwk));
    }
    const reads = new Set<string>();
    const recording = new Proxy(values, {
      get(target, key) {
        if (typeof key === "string") reads.add(key);
        return Reflect.get(target, key);
      },
      has(target, key) {
        if (typeof key === "string") reads.add(key);
        return Reflect.has(target, key);
      },
      ownKeys: () => [],
    });
    const build = await builderOf(service);
    const built = await build(recording, () => {}) as {
      port: number;
      close?: () => Promise<void>;
    };
    await built.close?.();
    const apiKeys = [...reads].filter((k) => /^[a-z][a-z0-9]*$/.test(k)).sort();
    return { reads, port: built.port, apiKeys };
  } finally {
    await Deno.remove(dir, { recursive: true });
    if (runStoreDatabase !== "") {
      await withPostgresAdmin((sql) =>
        sql.unsafe(`drop database if exists ${quotePostgres(runStoreDatabase)} with (force)`)
      );
    }
  }
}

async function withPostgresAdmin(use: (sql: ReturnType<typeof postgresAdmin>) => Promise<unknown>) {
  const sql = postgresAdmin();
  try {
    await use(sql);
  } finally {
    await sql.end();
  }
}

/** Whether a service reads `name`: it asked for it, or (publish) it is a filestore mount variable. */
export function readsVariable(service: Service, name: string, facts: BuildFacts): boolean {
  if (facts.reads.has(name)) return true;
  return service === "publish" && filestoreMounts({ [name]: "/mnt" }).size === 1;
}

/** The variables of `env` that a service does not read, by building it with that environment. */
export async function unreadVariables(
  service: Service,
  env: Record<string, string>,
): Promise<string[]> {
  const facts = await buildFacts(service, env);
  return Object.keys(env).filter((name) => !readsVariable(service, name, facts)).sort();
}

/** The shutdown grace period an environment sets (`SHUTDOWN_GRACE_SECONDS`, else its default). */
export function graceSeconds(env: Record<string, string | undefined>): number {
  return CommonEnv.shape.SHUTDOWN_GRACE_SECONDS.parse(env.SHUTDOWN_GRACE_SECONDS);
}

/** How long `runService` lets cancelled requests clean up before exiting anyway (`serve.ts`). */
export function cleanupSeconds(): number {
  return CLEANUP_MS / 1000;
}

/** The secret names an allow-list file lets requests use, after checking it is a valid allow-list. */
export function allowListSecrets(json: string): string[] {
  const parsed = AllowedSources.parse(json);
  const names = JSON.parse(json) as { sources: { credentials: Record<string, string>[] }[] };
  if (parsed.size !== names.sources.length) throw new Error("Cannot read every allow-list entry");
  return [
    ...new Set(
      names.sources.flatMap((s) => s.credentials.flatMap((login) => Object.values(login))),
    ),
  ].sort();
}

/** The secret names a service's environment points at (`*_SECRET_NAME`). */
export function secretNamesIn(env: Record<string, string>): string[] {
  return Object.entries(env).filter(([k]) => k.endsWith("_SECRET_NAME")).map(([, v]) => v).sort();
}

// ---------------------------------------------------------------------------------------------------------
// README.md's configuration table.

/** The variables README.md's "Configuration" table documents: names, and patterns like `{NAME}`. */
export interface Documented {
  has(name: string): boolean;
}

/**
 * Reads the first column of the table under `## Configuration`. A cell may list several names; one that
 * starts with `_` continues the previous name's prefix (`DESTINATION_OPAL_HOST`, `_USERNAME`), and `{X}`
 * stands for any upper-case name.
 */
export async function readmeVariables(): Promise<Documented> {
  const readme = await readRepoFile("README.md");
  const section = readme.split(/^## /m).find((s) => s.startsWith("Configuration"));
  if (section === undefined) throw new Error("Cannot find the Configuration section of README.md");
  const names = new Set<string>();
  const patterns: RegExp[] = [];
  for (const line of section.split("\n").filter((l) => l.startsWith("|"))) {
    const cell = line.split("|")[1] ?? "";
    let prefix = "";
    for (const [, code] of cell.matchAll(/`([^`]+)`/g)) {
      let name = code!;
      if (name.startsWith("_") && prefix !== "") name = prefix + name;
      else prefix = name.includes("_") ? name.slice(0, name.lastIndexOf("_")) : "";
      if (name.includes("{")) {
        patterns.push(new RegExp(`^${name.replace(/\{[A-Z]+\}/g, "[A-Z0-9_]+")}$`));
      } else names.add(name);
    }
  }
  return { has: (name) => names.has(name) || patterns.some((p) => p.test(name)) };
}

// ---------------------------------------------------------------------------------------------------------
// Tools that may be missing.

/** Whether a command runs (`<command> <args>` exits 0). */
export async function commandWorks(command: string, args: string[]): Promise<boolean> {
  try {
    const { code } = await new Deno.Command(command, { args, stdout: "null", stderr: "null" })
      .output();
    return code === 0;
  } catch {
    return false;
  }
}

/** `kubectl kustomize <dir>`, parsed. */
export async function kustomize(dir: string): Promise<Doc[]> {
  const { code, stdout, stderr } = await new Deno.Command("kubectl", {
    args: ["kustomize", repoPath(dir)],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  if (code !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${decoder.decode(stderr)}`);
  return parseYaml(decoder.decode(stdout), `kubectl kustomize ${dir}`);
}
