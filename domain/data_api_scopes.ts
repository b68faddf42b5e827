/**
 * Who may read what through the data API (`docs/data-api.md`): the clients file (`DATA_API_CLIENTS_FILE`)
 * and the pure rules over it. An allow-list: a client reads a release only when one of its scopes names
 * the release (by id) or its project, and a table only when that scope lists it (or `*`). Only open,
 * published, unexpired releases are ever served.
 *
 * @module
 */
import { z } from "zod";
import { AppError } from "./errors.ts";
import { isRevokedOrRevoking, type Release } from "./release.ts";

/** The characters and length of a client id (it is the HAWK `id` and goes into audit records). */
export const DATA_API_CLIENT_ID = /^[A-Za-z0-9._-]{1,64}$/;

/** A table name in a scope: a table, `dataset.table`, or `*` (every table of the scoped releases). */
const TableName = z.string().min(1).max(255);

/** One grant: the releases (one release by id, or every release of a project) and which tables. */
export const DataApiScope = z.strictObject({
  /** Every release of this project. */
  project: z.string().min(1).max(255).optional(),
  /** This one release (its id). */
  release: z.string().min(1).max(255).optional(),
  /** The tables: `"*"`, or a list of table names (`name` or `dataset.name`; `"*"` in it means all). */
  tables: z.union([z.literal("*"), z.array(TableName).min(1)]),
}).refine((scope) => (scope.project === undefined) !== (scope.release === undefined), {
  error: "give exactly one of project or release",
});

/** See {@link DataApiScope}. */
export type DataApiScope = z.infer<typeof DataApiScope>;

/** One client: its id, where its HAWK key is kept, and its grants. */
export const DataApiClient = z.strictObject({
  id: z.string().regex(DATA_API_CLIENT_ID, {
    error: "must be 1 to 64 letters, digits, '.', '_' or '-'",
  }),
  /** The secret store entry holding the client's HAWK key (never the key itself). */
  secret_name: z.string().min(1).max(255),
  scopes: z.array(DataApiScope).min(1),
});

/** See {@link DataApiClient}. */
export type DataApiClient = z.infer<typeof DataApiClient>;

/** The clients file: every client, ids unique. */
export const DataApiClients = z.strictObject({
  clients: z.array(DataApiClient).min(1),
}).superRefine((file, ctx) => {
  const seen = new Set<string>();
  file.clients.forEach((client, i) => {
    if (seen.has(client.id)) {
      ctx.addIssue({
        code: "custom",
        path: ["clients", i, "id"],
        message: `client id "${client.id}" is listed twice`,
      });
    }
    seen.add(client.id);
  });
});

/** See {@link DataApiClients}. */
export type DataApiClients = z.infer<typeof DataApiClients>;

/** A clients file that is not valid. */
export class InvalidDataApiClientsError extends SyntaxError {
  constructor(readonly issues: readonly string[]) {
    super(`Cannot read the data API clients: ${issues.join("; ")}`);
    this.name = "InvalidDataApiClientsError";
  }
}

/**
 * Checks a parsed clients file (YAML or JSON).
 *
 * @throws {InvalidDataApiClientsError} naming every field at fault (`clients.0.scopes.1: ...`).
 */
export function parseDataApiClients(value: unknown): DataApiClients {
  const parsed = DataApiClients.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new InvalidDataApiClientsError(
    parsed.error.issues.map((issue) => `${issue.path.join(".") || "file"}: ${issue.message}`),
  );
}

/** What a scope needs to know of a release. */
export type ScopedRelease = Pick<Release, "id" | "project_name">;

function scopeCovers(scope: DataApiScope, release: ScopedRelease): boolean {
  return scope.release !== undefined
    ? scope.release === release.id
    : scope.project === release.project_name;
}

/** Whether one of the client's scopes names this release (by id or by project). */
export function mayReadRelease(client: DataApiClient, release: ScopedRelease): boolean {
  return client.scopes.some((scope) => scopeCovers(scope, release));
}

/** A table as the publish service describes it. */
export interface ScopedTable {
  readonly name: string;
  /** The dataset (schema) it belongs to. */
  readonly dataset: string;
}

/**
 * Whether a scope covering this release lists the table: `*`, its name, or `dataset.name`.
 */
export function mayReadTable(
  client: DataApiClient,
  release: ScopedRelease,
  table: ScopedTable,
): boolean {
  return client.scopes.some((scope) => {
    if (!scopeCovers(scope, release)) return false;
    if (scope.tables === "*") return true;
    return scope.tables.some((name) =>
      name === "*" || name === table.name || name === `${table.dataset}.${table.name}`
    );
  });
}

/**
 * Whether a table name (as a route names it, with its dataset when given) may be in scope at all: used
 * before the publish service is asked, so that a table no scope lists is refused without a call.
 */
export function mayNameTable(
  client: DataApiClient,
  release: ScopedRelease,
  table: string,
  dataset: string | undefined,
): boolean {
  return client.scopes.some((scope) => {
    if (!scopeCovers(scope, release)) return false;
    if (scope.tables === "*") return true;
    return scope.tables.some((name) =>
      name === "*" || name === table ||
      (dataset === undefined ? name.endsWith(`.${table}`) : name === `${dataset}.${table}`)
    );
  });
}

/**
 * Whether the data API serves a release at all: open (not rejected, revoking or revoked), published, and
 * not past its expiry. Anything else is answered as if it did not exist.
 */
export function isServedRelease(
  release: Pick<Release, "state" | "publication" | "expires_at">,
  now: Date,
): boolean {
  if (release.state !== "open" || isRevokedOrRevoking(release)) return false;
  if (release.publication === null) return false;
  return release.expires_at === null || Date.parse(release.expires_at) > now.getTime();
}

/**
 * The one project every scope of the client names, when there is exactly one and no scope names a
 * release by id: the release list can then be filtered by the store.
 */
export function singleProjectOf(client: DataApiClient): string | undefined {
  const projects = new Set(client.scopes.map((scope) => scope.project));
  if (projects.size !== 1) return undefined;
  const [project] = projects;
  return project;
}

/**
 * The release has no such table, or the client may not read it: answered alike, so that a client never
 * learns whether a table it may not read exists (to be a 404).
 */
export class DataTableNotFoundError extends AppError {
  readonly code = "table_not_found";

  constructor(table: string) {
    super(`Cannot find table ${JSON.stringify(table)} in the release`);
  }
}

/** The table name is in several datasets of the release, and the request did not say which (a 422). */
export class DataTableAmbiguousError extends AppError {
  readonly code = "table_ambiguous";

  constructor(table: string, datasets: readonly string[]) {
    super(
      `Cannot tell which table ${JSON.stringify(table)} to read: it is in datasets ${
        datasets.map((d) => JSON.stringify(d)).join(", ")
      }; give dataset`,
    );
  }
}

/** A data API request that is a GET (or HEAD) with a body (a 400): the data API's routes take none. */
export class DataRequestBodyError extends AppError {
  readonly code = "body_not_allowed";

  constructor() {
    super("Cannot read the request: data API requests take no body");
  }
}
