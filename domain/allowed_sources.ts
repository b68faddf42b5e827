/**
 * The server-side source allow-list: the only source databases a deployment may reach, and the only secret
 * names that may be used with each. A request naming anything else is refused before any secret is read or
 * any connection is attempted (the reference let a key holder send stored credentials to any host,
 * `cr8tor-contract.md` §9 item 1).
 *
 * The file (`ALLOWED_SOURCES_FILE`) is JSON:
 *
 * ```json
 * {
 *   "sources": [
 *     { "type": "postgresql", "host": "db.internal", "port": 5432, "database": "research",
 *       "schemas": ["oncology", "cardiology"], "secrets": ["pg-reader-user", "pg-reader-password"] },
 *     { "type": "databrickssql", "host": "adb-123.azuredatabricks.net",
 *       "http_path": "/sql/1.0/warehouses/abc", "catalog": "main",
 *       "secrets": ["databricksspnclientid", "databricksspnsecret"] }
 *   ]
 * }
 * ```
 *
 * `schemas`, when given, lists the schemas a dataset may be read from. Without it: a MySQL source may be
 * read only from its own database (in MySQL the schema is the database, so any other name would reach
 * another database), and other sources from any schema except the system catalogues
 * ({@link SYSTEM_SCHEMAS}, `pg_*`).
 *
 * Hosts are compared after {@link normalizeHost}, so spellings of one address (`127.1`, `0x7f.1`,
 * `2130706433`, `[::ffff:127.0.0.1]`, `LOCALHOST.`) cannot slip past or around an entry. A matched
 * request is then connected to the entry's own host and port, never to the request's spelling.
 *
 * @module
 */
import { z } from "zod";
import type { Source } from "./contract.ts";
import { AppError } from "./errors.ts";
import { HTTP_PATH_PATTERN, IDENTIFIER_PATTERN, SECRET_NAME_PATTERN } from "./names.ts";
import { sourceEngine } from "./source_engine.ts";

const SecretList = z.array(z.string().regex(SECRET_NAME_PATTERN)).min(1);
const Port = z.number().int().min(1).max(65535);
const Host = z.string().min(1).max(255).refine((host) => normalizeHost(host) !== undefined, {
  error: "must be a host name or IP address",
});

/** One SQL database a deployment may read. */
const SqlEntry = z.strictObject({
  type: z.enum(["postgresql", "mysql", "mssql", "sqlserver"]),
  host: Host,
  port: Port,
  database: z.string().regex(IDENTIFIER_PATTERN),
  schemas: z.array(z.string().regex(IDENTIFIER_PATTERN)).min(1).optional(),
  secrets: SecretList,
});

/** One Databricks SQL warehouse a deployment may read; `catalog`, when given, must match too. */
const DatabricksEntry = z.strictObject({
  type: z.literal("databrickssql"),
  host: Host,
  port: Port.default(443),
  http_path: z.string().regex(HTTP_PATH_PATTERN),
  catalog: z.string().regex(IDENTIFIER_PATTERN).optional(),
  schemas: z.array(z.string().regex(IDENTIFIER_PATTERN)).min(1).optional(),
  secrets: SecretList,
});

/** The allow-list file's content. */
export const AllowedSourcesFile = z.strictObject({
  sources: z.array(z.discriminatedUnion("type", [SqlEntry, DatabricksEntry])),
});

/** One entry of the allow-list. */
export type AllowedSource = z.infer<typeof AllowedSourcesFile>["sources"][number];

/** Schemas no dataset may be read from unless an entry lists them explicitly. */
export const SYSTEM_SCHEMAS: ReadonlySet<string> = new Set([
  "information_schema",
  "mysql",
  "performance_schema",
  "sys",
]);

/** Where to connect for an allowed request: the entry's host and port. */
export interface SourceAddress {
  readonly host: string;
  readonly port: number;
}

/** The request names a source, or a secret for it, that the allow-list does not have. */
export class SourceNotAllowedError extends AppError {
  readonly code = "source_not_allowed";
}

/**
 * A host in one canonical spelling: lower case, no trailing dot, IPv4 in dotted decimal whatever the
 * input form (`127.1`, `0x7f.0.0.1`, `017700000001`, `2130706433`), IPv6 compressed in brackets, and
 * IPv4-mapped IPv6 (`[::ffff:127.0.0.1]`) as the IPv4 address it reaches. Uses the WHATWG URL host
 * parser, as connection libraries on this runtime resolve these forms the same way.
 *
 * @returns the canonical host, or `undefined` when `host` is not a host.
 */
export function normalizeHost(host: string): string | undefined {
  const bare = host.trim();
  if (bare === "" || /[/?#@\s\\]/.test(bare)) return undefined;
  const bracketed = !bare.startsWith("[") && bare.includes(":") ? `[${bare}]` : bare;
  let hostname: string;
  try {
    const url = new URL(`http://${bracketed}/`);
    if (url.port !== "" || url.username !== "" || url.password !== "") return undefined;
    hostname = url.hostname;
  } catch {
    return undefined;
  }
  hostname = hostname.replace(/\.$/, "");
  const mapped = /^\[::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})\]$/.exec(hostname);
  if (mapped !== null) {
    const high = parseInt(mapped[1]!, 16);
    const low = parseInt(mapped[2]!, 16);
    hostname = [high >> 8, high & 255, low >> 8, low & 255].join(".");
  }
  return hostname === "" ? undefined : hostname;
}

/** The sources a deployment may reach; empty (everything refused) when no file is configured. */
export class AllowedSources {
  readonly #entries: readonly { entry: AllowedSource; host: string }[];

  /** @param entries the parsed file's `sources`; hosts must be valid (the schema checks them). */
  constructor(entries: readonly AllowedSource[]) {
    this.#entries = entries.map((entry) => ({ entry, host: normalizeHost(entry.host)! }));
  }

  /** No source is allowed at all. */
  static none(): AllowedSources {
    return new AllowedSources([]);
  }

  /**
   * Parses the allow-list file's text.
   *
   * @throws {SyntaxError} when it is not JSON.
   * @throws {z.ZodError} when it does not have the documented shape.
   */
  static parse(text: string): AllowedSources {
    return new AllowedSources(AllowedSourcesFile.parse(JSON.parse(text)).sources);
  }

  /** How many entries there are. */
  get size(): number {
    return this.#entries.length;
  }

  /**
   * Finds an entry that a request's source matches (engine, canonical host, port, database or Databricks
   * path and catalog), that lists every credential secret the request names and, when `schemaName` is
   * given, that allows reading that schema.
   *
   * @returns where to connect: the entry's host and port.
   * @throws {SourceNotAllowedError} when no entry matches, or a secret is not listed for it; the message
   *   names what the request asked for, never the allow-list's content.
   */
  authorize(source: Source, schemaName?: string): SourceAddress {
    const host = source.type === "databrickssql"
      ? normalizeHost(new URL(source.host_url).hostname)
      : normalizeHost(source.host_url);
    const engine = sourceEngine(source);
    const matching = this.#entries.filter(({ entry, host: entryHost }) => {
      if (entryHost !== host || entry.port !== source.port) return false;
      if (source.type === "databrickssql") {
        return entry.type === "databrickssql" && entry.http_path === source.http_path &&
          (entry.catalog === undefined || entry.catalog === source.catalog);
      }
      return entry.type !== "databrickssql" && sourceEngine(entry) === engine &&
        entry.database === source.database;
    });
    const what = source.type === "databrickssql"
      ? `databrickssql ${source.host_url} ${source.http_path}`
      : `${engine} ${source.host_url}:${source.port}/${source.database}`;
    if (matching.length === 0) {
      throw new SourceNotAllowedError(
        `Cannot use source ${what}: it is not in this deployment's allowed sources`,
      );
    }
    const secrets = source.type === "databrickssql"
      ? [
        source.credentials.spn_clientid,
        source.credentials.spn_secret,
        source.credentials.username_key,
        source.credentials.password_key,
      ].filter((name) => name !== "")
      : [source.credentials.username_key, source.credentials.password_key];
    // The same source may be listed more than once, with different credentials.
    const withSecrets = matching.filter(({ entry }) =>
      secrets.every((name) => entry.secrets.includes(name))
    );
    const found = withSecrets.find(({ entry }) =>
      schemaName === undefined || schemaAllowed(entry, schemaName)
    );
    if (found === undefined && withSecrets.length > 0) {
      throw new SourceNotAllowedError(
        `Cannot read schema "${schemaName}" of source ${what}: not allowed for it`,
      );
    }
    if (found === undefined) {
      const listed = new Set(matching.flatMap(({ entry }) => entry.secrets));
      const unlisted = secrets.filter((name) => !listed.has(name));
      throw new SourceNotAllowedError(
        unlisted.length > 0
          ? `Cannot use secret ${
            unlisted.map((n) => `"${n}"`).join(", ")
          } with source ${what}: not allowed for it`
          : `Cannot use secrets ${
            secrets.map((n) => `"${n}"`).join(", ")
          } together with source ${what}: no allowed entry lists them all`,
      );
    }
    return { host: found.entry.host, port: found.entry.port };
  }
}

/** Whether an entry allows reading `schema` (see the module documentation). */
function schemaAllowed(entry: AllowedSource, schema: string): boolean {
  if (entry.schemas !== undefined) return entry.schemas.includes(schema);
  if (entry.type === "mysql") return schema === entry.database;
  const lower = schema.toLowerCase();
  return !SYSTEM_SCHEMAS.has(lower) && !lower.startsWith("pg_");
}
