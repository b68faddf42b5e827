/**
 * The server-side source allow-list: the only source databases a deployment may reach, and the only
 * credentials that may be used with each, every secret bound to its role. A request naming anything else
 * is refused before any secret is read or any connection is attempted (the reference let a key holder
 * send stored credentials to any host, `cr8tor-contract.md` §9 item 1).
 *
 * The file (`ALLOWED_SOURCES_FILE`) is JSON:
 *
 * ```json
 * {
 *   "sources": [
 *     { "type": "postgresql", "host": "db.internal", "port": 5432, "database": "research",
 *       "schemas": ["oncology", "cardiology"],
 *       "credentials": [{ "username": "pg-reader-user", "password": "pg-reader-password" }] },
 *     { "type": "databrickssql", "host": "adb-123.azuredatabricks.net",
 *       "http_path": "/sql/1.0/warehouses/abc", "catalog": "main",
 *       "credentials": [{ "client_id": "databricksspnclientid", "client_secret": "databricksspnsecret" }] }
 *   ]
 * }
 * ```
 *
 * `credentials` lists the logins a request may use, each a pair of secret names in fixed roles: the
 * secret holding the user name and the one holding the password (Databricks: the service principal's
 * client id and client secret). A request's `username_key` and `password_key` (Databricks: `spn_clientid`
 * and `spn_secret`) must equal one listed pair exactly, so a request cannot send a password as a user
 * name, where a driver's error would echo it (`role "…" does not exist`). For the same reason a pair
 * must name two secrets, and no secret may be a user name or client id in one place and a password or
 * client secret in another. Databricks requests' `username_key`/`password_key` are never read, and not
 * checked. The old `secrets` list (a set, without roles) is refused with a message saying how to
 * rewrite it.
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

const SecretName = z.string().regex(SECRET_NAME_PATTERN);
const Port = z.number().int().min(1).max(65535);
const Host = z.string().min(1).max(255).refine((host) => normalizeHost(host) !== undefined, {
  error: "must be a host name or IP address",
});

/** A SQL login: the secret holding the user name and the secret holding the password. */
const SqlLogin = z.strictObject({ username: SecretName, password: SecretName }).refine(
  (login) => login.username !== login.password,
  { error: "username and password must name two different secrets" },
);

/** A Databricks service principal: the secrets holding its client id and its client secret. */
const DatabricksLogin = z.strictObject({ client_id: SecretName, client_secret: SecretName })
  .refine((login) => login.client_id !== login.client_secret, {
    error: "client_id and client_secret must name two different secrets",
  });

/** The old, role-less `secrets` list: refused, with the way to rewrite it. */
function legacySecrets(example: string) {
  return z.never({
    error:
      '"secrets" is no longer accepted: a list of secret names does not say which one is the ' +
      "user name and which the password, so a request could send a password as a user name; " +
      `replace it with "credentials": [${example}]`,
  }).optional();
}

/** One SQL database a deployment may read. */
const SqlEntry = z.strictObject({
  type: z.enum(["postgresql", "mysql", "mssql", "sqlserver"]),
  host: Host,
  port: Port,
  database: z.string().regex(IDENTIFIER_PATTERN),
  schemas: z.array(z.string().regex(IDENTIFIER_PATTERN)).min(1).optional(),
  credentials: z.array(SqlLogin).min(1),
  secrets: legacySecrets('{ "username": "<user name secret>", "password": "<password secret>" }'),
});

/** One Databricks SQL warehouse a deployment may read; `catalog`, when given, must match too. */
const DatabricksEntry = z.strictObject({
  type: z.literal("databrickssql"),
  host: Host,
  port: Port.default(443),
  http_path: z.string().regex(HTTP_PATH_PATTERN),
  catalog: z.string().regex(IDENTIFIER_PATTERN).optional(),
  schemas: z.array(z.string().regex(IDENTIFIER_PATTERN)).min(1).optional(),
  credentials: z.array(DatabricksLogin).min(1),
  secrets: legacySecrets(
    '{ "client_id": "<client id secret>", "client_secret": "<client secret secret>" }',
  ),
});

/** The roles a secret can have in a login, and the kind of each. */
const ROLE_KINDS = {
  username: "identity",
  client_id: "identity",
  password: "credential",
  client_secret: "credential",
} as const;

type Role = keyof typeof ROLE_KINDS;

const ROLE_NAMES: Record<Role, string> = {
  username: "a user name",
  client_id: "a client id",
  password: "a password",
  client_secret: "a client secret",
};

/**
 * One HTTP server HTTP-file sources may fetch from (`docs/http-sources.md`): https on port 443 unless
 * it says otherwise. `http` is for tests and closed networks only. `private: true` lets the host resolve
 * to a loopback, private or link-local address (refused otherwise, whatever the name).
 */
const HttpEntry = z.strictObject({
  host: Host,
  port: Port.optional(),
  scheme: z.enum(["https", "http"]).default("https"),
  private: z.boolean().default(false),
});

/** The allow-list file's content. */
export const AllowedSourcesFile = z.strictObject({
  sources: z.array(z.discriminatedUnion("type", [SqlEntry, DatabricksEntry])),
  http_sources: z.array(HttpEntry).default([]),
}).superRefine((file, ctx) => {
  // A secret is either an identity (user name, client id) or a credential (password, client secret),
  // everywhere in the file: a password that is a user name elsewhere could be sent as a user name.
  const seen = new Map<string, { role: Role; path: string }>();
  file.sources.forEach((entry, i) => {
    entry.credentials.forEach((login, j) => {
      for (const [key, name] of Object.entries(login)) {
        const role = key as Role;
        const path = ["sources", i, "credentials", j, role];
        const first = seen.get(name);
        if (first === undefined) seen.set(name, { role, path: path.join(".") });
        else if (ROLE_KINDS[first.role] !== ROLE_KINDS[role]) {
          ctx.addIssue({
            code: "custom",
            path,
            message: `secret "${name}" is ${ROLE_NAMES[role]} here and ${ROLE_NAMES[first.role]} ` +
              `at ${first.path}: a secret must be a user name or client id everywhere, or a ` +
              "password or client secret everywhere",
          });
        }
      }
    });
  });
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

/** An `http_sources` entry of the allow-list. */
export type AllowedHttpSource = z.infer<typeof HttpEntry>;

/** Where to fetch an allowed URL: its canonical host and port, and whether a non-public address is allowed. */
export interface HttpSourceAddress {
  readonly scheme: "https" | "http";
  readonly host: string;
  readonly port: number;
  readonly allowPrivate: boolean;
}

/** Where to connect for an allowed request: the entry's host and port. */
export interface SourceAddress {
  readonly host: string;
  readonly port: number;
}

/** The request names a source, or a login for it, that the allow-list does not list. */
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

/** A login as a request names it, or as an entry lists it: two secret names in their roles. */
interface Login {
  /** The secret holding the user name (Databricks: the client id). */
  readonly identity: string;
  /** The secret holding the password (Databricks: the client secret). */
  readonly credential: string;
}

/** The login of an allow-list entry's `credentials` item. */
function loginOf(pair: AllowedSource["credentials"][number]): Login {
  return "username" in pair
    ? { identity: pair.username, credential: pair.password }
    : { identity: pair.client_id, credential: pair.client_secret };
}

/**
 * The login a request names: `username_key`/`password_key`, or for Databricks
 * `spn_clientid`/`spn_secret` (its `username_key`/`password_key` are never read).
 */
function requestedLogin(source: Source): Login {
  return source.type === "databrickssql"
    ? { identity: source.credentials.spn_clientid, credential: source.credentials.spn_secret }
    : { identity: source.credentials.username_key, credential: source.credentials.password_key };
}

/** The sources a deployment may reach; empty (everything refused) when no file is configured. */
export class AllowedSources {
  readonly #entries: readonly { entry: AllowedSource; host: string; logins: readonly Login[] }[];
  readonly #http: readonly HttpSourceAddress[];

  /**
   * @param entries the parsed file's `sources`; hosts must be valid (the schema checks them).
   * @param httpEntries the parsed file's `http_sources`.
   */
  constructor(entries: readonly AllowedSource[], httpEntries: readonly AllowedHttpSource[] = []) {
    this.#entries = entries.map((entry) => ({
      entry,
      host: normalizeHost(entry.host)!,
      logins: entry.credentials.map(loginOf),
    }));
    this.#http = httpEntries.map((entry) => ({
      scheme: entry.scheme,
      host: normalizeHost(entry.host)!,
      port: entry.port ?? (entry.scheme === "https" ? 443 : 80),
      allowPrivate: entry.private,
    }));
  }

  /** No source is allowed at all. */
  static none(): AllowedSources {
    return new AllowedSources([]);
  }

  /**
   * Parses the allow-list file's text.
   *
   * @throws {SyntaxError} when it is not JSON.
   * @throws {z.ZodError} when it does not have the documented shape: the old `secrets` list, a login
   *   naming one secret twice, or a secret in two kinds of role are refused too.
   */
  static parse(text: string): AllowedSources {
    const file = AllowedSourcesFile.parse(JSON.parse(text));
    return new AllowedSources(file.sources, file.http_sources);
  }

  /**
   * Finds the `http_sources` entry a URL matches: same scheme, canonical host and port (the scheme's
   * default when the URL names none). Every URL an HTTP-file source fetches, index, file and each
   * redirect, is checked here.
   *
   * @throws {SourceNotAllowedError} when none matches, or the URL has a user name or password.
   */
  authorizeHttp(text: string): HttpSourceAddress & { readonly url: URL } {
    let url: URL | undefined;
    try {
      url = new URL(text);
    } catch {
      url = undefined;
    }
    const scheme = url?.protocol.replace(/:$/, "");
    const host = url === undefined ? undefined : normalizeHost(url.hostname);
    const port = url === undefined
      ? undefined
      : url.port === ""
      ? (scheme === "https" ? 443 : 80)
      : Number(url.port);
    const found = url === undefined || url.username !== "" || url.password !== ""
      ? undefined
      : this.#http.find((e) => e.scheme === scheme && e.host === host && e.port === port);
    if (found === undefined || url === undefined) {
      const shown = url === undefined ? "(not a URL)" : `${url.protocol}//${url.host}`;
      throw new SourceNotAllowedError(
        `Cannot fetch from ${shown}: it is not in this deployment's allowed HTTP sources`,
      );
    }
    return { ...found, url };
  }

  /** How many entries there are. */
  get size(): number {
    return this.#entries.length;
  }

  /**
   * Finds an entry that a request's source matches (engine, canonical host, port, database or Databricks
   * path and catalog), that lists the request's login exactly (its user name and password secrets, or
   * Databricks client id and client secret secrets, each in its role) and, when `schemaName` is given,
   * that allows reading that schema. Reads no secret.
   *
   * @returns where to connect: the entry's host and port.
   * @throws {SourceNotAllowedError} when no entry matches, or none lists the login in these roles; the
   *   message names what the request asked for, never the allow-list's content.
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
    const login = requestedLogin(source);
    // The same source may be listed more than once, with different credentials.
    const withLogin = matching.filter(({ logins }) =>
      logins.some((l) => l.identity === login.identity && l.credential === login.credential)
    );
    if (withLogin.length === 0) {
      const [identity, credential] = source.type === "databrickssql"
        ? ["client id", "client secret"]
        : ["user name", "password"];
      throw new SourceNotAllowedError(
        `Cannot use secret "${login.identity}" as the ${identity} and "${login.credential}" as ` +
          `the ${credential} of source ${what}: not allowed for it in these roles`,
      );
    }
    const found = withLogin.find(({ entry }) =>
      schemaName === undefined || schemaAllowed(entry, schemaName)
    );
    if (found === undefined) {
      throw new SourceNotAllowedError(
        `Cannot read schema "${schemaName}" of source ${what}: not allowed for it`,
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
