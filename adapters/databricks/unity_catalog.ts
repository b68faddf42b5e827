/**
 * The catalogue half of the Databricks source: one schema of a Unity Catalog catalog, read over the Unity
 * Catalog REST API (`/api/2.1/unity-catalog`, `sources-and-benchmark.md` §A.2) with a Bearer token from a
 * {@link DatabricksTokenSource}.
 *
 * - `GET schemas/{catalog}.{schema}` gives the description (`comment`); 404 is {@link SchemaNotFoundError}.
 * - Every table: `GET tables?catalog_name=&schema_name=&max_results=` page by page while
 *   `next_page_token` is present. `max_results` is always sent (Databricks rejects unpaginated list calls,
 *   which the reference made); a page token that comes back twice stops the loop with an error.
 * - Named tables: `GET tables/{catalog}.{schema}.{table}?include_browse=true` for each, a few at a time;
 *   a table that does not exist (404 `TABLE_DOES_NOT_EXIST`), or whose stored name differs from the
 *   requested one (Unity Catalog matches names ignoring case), is left out, so both ways agree with the
 *   exact, case-sensitive matching of `domain/catalog.ts`.
 *
 * A table's kind is "view" for `VIEW`, `MATERIALIZED_VIEW` and `METRIC_VIEW`; columns are ordered by
 * `position`; `dataType` is the full `type_text` (`decimal(18,2)`), and the logical type comes from
 * `databricks_dialect.ts`; the primary key is read from `table_constraints[].primary_key_constraint`.
 * Empty comments count as no description.
 *
 * **Errors.** A 401 means the token may have expired mid-run: it is invalidated and the request is sent
 * once more with a new one. A second 401, a 403 (access denied), any other non-2xx status, a timeout, a
 * network or TLS failure, or a reply of the wrong shape is {@link SourceUnavailableError}, with
 * Databricks' `error_code` and `message` but never a token.
 *
 * @module
 */
import { z } from "zod";
import type { CatalogColumn, CatalogTable, SchemaCatalog } from "../../domain/catalog.ts";
import type { LogicalType } from "../../domain/logical_type.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import { SchemaNotFoundError, SourceUnavailableError } from "../../ports/source_database.ts";
import {
  databricksHttpClient,
  type DatabricksTokenSource,
  databricksWorkspaceUrl,
  fetchFailureReason,
  positiveTimeout,
} from "./databricks_token.ts";
import { databricksLogicalType } from "./databricks_dialect.ts";
import { messageOf } from "../shared/errors.ts";

/** Tables asked for per page when nothing else is said (the Unity Catalog spec's maximum). */
export const DEFAULT_UNITY_CATALOG_PAGE_SIZE = 50;

/** How many `GET tables/{name}` requests run at once for a list of named tables. */
const TABLE_REQUEST_CONCURRENCY = 4;

/** Table types that are views. */
const VIEW_TYPES: ReadonlySet<string> = new Set(["VIEW", "MATERIALIZED_VIEW", "METRIC_VIEW"]);

/** Where the workspace is and how to authenticate. */
export interface UnityCatalogClientOptions {
  /** The workspace, `https://host[:port]`. */
  readonly baseUrl: string;
  /** Bearer tokens for the workspace; not closed by the client. */
  readonly tokens: DatabricksTokenSource;
  /** Gives up on one request after this long, reply body included. */
  readonly timeoutMs: number;
  /** Extra certificate authorities (PEM) to trust for this workspace, besides the system's. */
  readonly caCertificates?: readonly string[];
  /** `max_results` of each list call; default {@link DEFAULT_UNITY_CATALOG_PAGE_SIZE}; 0 lets the server choose. */
  readonly pageSize?: number;
}

const ErrorBody = z.object({
  error_code: z.string().optional(),
  message: z.string().optional(),
});

const SchemaInfo = z.object({
  name: z.string(),
  comment: z.string().nullish(),
});

const ColumnInfo = z.object({
  name: z.string(),
  type_text: z.string().optional(),
  type_name: z.string().optional(),
  position: z.number().int().optional(),
  nullable: z.boolean().optional(),
  comment: z.string().nullish(),
});

const TableInfo = z.object({
  name: z.string(),
  table_type: z.string().optional(),
  comment: z.string().nullish(),
  columns: z.array(ColumnInfo).nullish(),
  table_constraints: z.array(z.object({
    primary_key_constraint: z.object({ child_columns: z.array(z.string()) }).nullish(),
  })).nullish(),
});

const ListTablesResponse = z.object({
  tables: z.array(TableInfo).nullish(),
  next_page_token: z.string().nullish(),
});

type TableInfo = z.infer<typeof TableInfo>;

/** A reply, body read. */
interface Reply {
  readonly status: number;
  readonly text: string;
}

/** Reads schemas and tables of one workspace's Unity Catalog. */
export class UnityCatalogClient implements Disposable {
  readonly #base: string;
  readonly #tokens: DatabricksTokenSource;
  readonly #timeoutMs: number;
  readonly #pageSize: number;
  readonly #client: Deno.HttpClient | undefined;
  #closed = false;

  /**
   * @throws {TypeError} when `baseUrl` is not an `https://` workspace URL.
   * @throws {RangeError} when `timeoutMs` is not positive or `pageSize` not a non-negative integer.
   */
  constructor(options: UnityCatalogClientOptions) {
    this.#base = `${databricksWorkspaceUrl(options.baseUrl)}/api/2.1/unity-catalog`;
    this.#timeoutMs = positiveTimeout("Unity Catalog timeout", options.timeoutMs);
    const pageSize = options.pageSize ?? DEFAULT_UNITY_CATALOG_PAGE_SIZE;
    if (!Number.isSafeInteger(pageSize) || pageSize < 0) {
      throw new RangeError(
        `Cannot list ${pageSize} tables per page: must be a non-negative integer`,
      );
    }
    this.#pageSize = pageSize;
    this.#tokens = options.tokens;
    this.#client = databricksHttpClient(options.caCertificates);
  }

  /**
   * Describes one schema of a catalog: its tables and views sorted by name (code-point order), their
   * columns in `position` order with full types, nullability and comments, and their primary keys.
   *
   * @param catalog the Unity Catalog catalog.
   * @param schema the schema in it.
   * @param options.tables when given, only these tables are fetched (one request each); names that do
   *   not exist are left out.
   * @returns the catalogue, named `schema`.
   * @throws {SchemaNotFoundError} when the catalog or schema does not exist (404).
   * @throws {SourceUnavailableError} when the catalogue cannot be read.
   */
  async describeSchema(
    catalog: string,
    schema: string,
    options: { tables?: readonly string[] } = {},
  ): Promise<SchemaCatalog> {
    if (this.#closed) {
      throw new SourceUnavailableError("Cannot read Unity Catalog: the client is closed");
    }
    // Unity Catalog names have no dots (the dot separates the parts of a full name) and are never empty.
    if (!isUcName(catalog) || !isUcName(schema)) throw new SchemaNotFoundError(schema);
    const info = await this.#schemaInfo(catalog, schema);
    const tables = options.tables === undefined
      ? await this.#listTables(catalog, schema)
      : await this.#namedTables(catalog, schema, options.tables);
    const described = tables.map((t) => catalogTable(t, `${catalog}.${schema}`));
    described.sort((a, b) => compareCodePoints(a.name, b.name));
    return { name: schema, description: text(info.comment), tables: described };
  }

  /** Closes the client's HTTP connections (not the token source); safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#client?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async #schemaInfo(catalog: string, schema: string): Promise<z.infer<typeof SchemaInfo>> {
    const fullName = `${catalog}.${schema}`;
    const what = `read schema "${fullName}" from Unity Catalog`;
    const reply = await this.#get(what, `/schemas/${segment(fullName)}`);
    if (reply.status === 404 && isObjectNotFound(reply)) throw new SchemaNotFoundError(schema);
    if (reply.status !== 200) throw failure(what, reply);
    const info = parse(what, reply, SchemaInfo);
    // Unity Catalog matches names ignoring case; a dataset names its schema exactly, as on every source.
    if (info.name !== schema) throw new SchemaNotFoundError(schema);
    return info;
  }

  async #listTables(catalog: string, schema: string): Promise<TableInfo[]> {
    const what = `list the tables of schema "${catalog}.${schema}" in Unity Catalog`;
    const tables: TableInfo[] = [];
    const seen = new Set<string>();
    let pageToken: string | undefined;
    do {
      const query: Record<string, string> = {
        catalog_name: catalog,
        schema_name: schema,
        max_results: String(this.#pageSize),
        ...(pageToken === undefined ? {} : { page_token: pageToken }),
      };
      const reply = await this.#get(what, "/tables", query);
      if (reply.status === 404 && isObjectNotFound(reply)) throw new SchemaNotFoundError(schema);
      if (reply.status !== 200) throw failure(what, reply);
      const page = parse(what, reply, ListTablesResponse);
      tables.push(...(page.tables ?? []));
      const next = page.next_page_token;
      pageToken = next === null || next === undefined || next === "" ? undefined : next;
      if (pageToken !== undefined) {
        if (seen.has(pageToken)) {
          throw new SourceUnavailableError(
            `Cannot ${what}: Databricks sent the same page token twice`,
          );
        }
        seen.add(pageToken);
      }
    } while (pageToken !== undefined);
    return tables;
  }

  async #namedTables(
    catalog: string,
    schema: string,
    names: readonly string[],
  ): Promise<TableInfo[]> {
    const wanted = [...new Set(names)].filter(isUcName);
    const found: (TableInfo | undefined)[] = new Array(wanted.length);
    let next = 0;
    const worker = async () => {
      while (next < wanted.length) {
        const index = next++;
        found[index] = await this.#table(catalog, schema, wanted[index]!);
      }
    };
    const workers = Array.from(
      { length: Math.min(TABLE_REQUEST_CONCURRENCY, wanted.length) },
      worker,
    );
    // Every worker settles before the first failure is reported, so no request outlives the call.
    const settled = await Promise.allSettled(workers);
    const rejected = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
    if (rejected !== undefined) throw rejected.reason;
    return found.filter((t): t is TableInfo => t !== undefined);
  }

  async #table(catalog: string, schema: string, name: string): Promise<TableInfo | undefined> {
    const fullName = `${catalog}.${schema}.${name}`;
    const what = `read table "${fullName}" from Unity Catalog`;
    const reply = await this.#get(what, `/tables/${segment(fullName)}`, { include_browse: "true" });
    if (reply.status === 404) {
      const code = errorBody(reply)?.error_code;
      if (code === "TABLE_DOES_NOT_EXIST") return undefined;
      if (code === "SCHEMA_DOES_NOT_EXIST" || code === "CATALOG_DOES_NOT_EXIST") {
        throw new SchemaNotFoundError(schema);
      }
    }
    if (reply.status !== 200) throw failure(what, reply);
    const info = parse(what, reply, TableInfo);
    return info.name === name ? info : undefined;
  }

  /** GETs a path below the Unity Catalog base, retrying once with a new token after a 401. */
  async #get(what: string, path: string, query: Record<string, string> = {}): Promise<Reply> {
    const search = new URLSearchParams(query).toString();
    const url = `${this.#base}${path}${search === "" ? "" : `?${search}`}`;
    let token = await this.#tokens.token();
    let reply = await this.#fetch(what, url, token);
    if (reply.status === 401) {
      this.#tokens.invalidate(token);
      token = await this.#tokens.token();
      reply = await this.#fetch(what, url, token);
    }
    return reply;
  }

  async #fetch(what: string, url: string, token: string): Promise<Reply> {
    if (this.#closed) {
      throw new SourceUnavailableError(`Cannot ${what}: the client is closed`);
    }
    try {
      const response = await fetch(url, {
        headers: { authorization: `Bearer ${token}`, accept: "application/json" },
        signal: AbortSignal.timeout(this.#timeoutMs),
        ...(this.#client === undefined ? {} : { client: this.#client }),
      });
      return { status: response.status, text: await response.text() };
    } catch (error) {
      const reason = redactSecrets(fetchFailureReason(error, this.#timeoutMs), [token]);
      throw new SourceUnavailableError(`Cannot ${what}: ${reason}`, { cause: error });
    }
  }
}

function catalogTable(info: TableInfo, schemaFullName: string): CatalogTable {
  const isView = VIEW_TYPES.has((info.table_type ?? "").toUpperCase());
  const columns = (info.columns ?? [])
    .map((column, index) => ({ column, position: column.position ?? index }))
    .sort((a, b) => a.position - b.position)
    .map(({ column }): CatalogColumn => {
      const typeName = column.type_name ?? "";
      const typeText = column.type_text ?? typeName.toLowerCase();
      let logicalType: LogicalType;
      try {
        logicalType = databricksLogicalType({ type_name: typeName, type_text: typeText });
      } catch (error) {
        throw new SourceUnavailableError(
          `Cannot describe column "${column.name}" of "${schemaFullName}.${info.name}": ${
            messageOf(error)
          }`,
          { cause: error },
        );
      }
      return {
        name: column.name,
        dataType: typeText,
        logicalType,
        nullable: column.nullable ?? true,
        description: text(column.comment),
      };
    });
  const primaryKey = isView ? [] : (info.table_constraints ?? [])
    .find((c) => c.primary_key_constraint != null)?.primary_key_constraint?.child_columns ?? [];
  return {
    name: info.name,
    kind: isView ? "view" : "table",
    description: text(info.comment),
    columns,
    primaryKey: [...primaryKey],
  };
}

/** A name Unity Catalog could hold: not empty, no dot, encodable. */
function isUcName(name: string): boolean {
  return name !== "" && !name.includes(".") && name.isWellFormed();
}

/** Percent-encodes one path segment (the dots between name parts stay as they are). */
function segment(fullName: string): string {
  return encodeURIComponent(fullName);
}

function errorBody(reply: Reply): z.infer<typeof ErrorBody> | undefined {
  try {
    const parsed = ErrorBody.safeParse(JSON.parse(reply.text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** A 404 that names a missing object, not a missing endpoint (a wrong URL or a proxy's page). */
function isObjectNotFound(reply: Reply): boolean {
  const code = errorBody(reply)?.error_code;
  return code !== undefined && code !== "ENDPOINT_NOT_FOUND";
}

function failure(what: string, reply: Reply): SourceUnavailableError {
  const body = errorBody(reply);
  const detail = body?.error_code !== undefined || body?.message !== undefined
    ? [body.error_code, body.message].filter((s) => s !== undefined && s !== "").join(": ")
    : reply.text.trim().slice(0, 200);
  const status = `HTTP ${reply.status}${detail === "" ? "" : ` ${detail}`}`;
  if (reply.status === 401) {
    return new SourceUnavailableError(
      `Cannot ${what}: Databricks did not accept a new access token either (${status})`,
    );
  }
  if (reply.status === 403) {
    return new SourceUnavailableError(`Cannot ${what}: access denied by Databricks (${status})`);
  }
  return new SourceUnavailableError(`Cannot ${what}: ${status}`);
}

function parse<T>(what: string, reply: Reply, schema: z.ZodType<T>): T {
  let json: unknown;
  try {
    json = JSON.parse(reply.text);
  } catch {
    throw new SourceUnavailableError(`Cannot ${what}: Databricks sent a reply that is not JSON`);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new SourceUnavailableError(
      `Cannot ${what}: Databricks sent an unexpected reply (${
        issue === undefined ? "invalid" : `${issue.path.join(".") || "body"}: ${issue.message}`
      })`,
    );
  }
  return parsed.data;
}

function text(value: string | null | undefined): string | null {
  return value === null || value === undefined || value === "" ? null : value;
}

/** Orders strings by Unicode code point (plain `<` orders UTF-16 code units). */
function compareCodePoints(a: string, b: string): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codePointRank(x) - codePointRank(y);
  }
  return a.length - b.length;
}

/** Moves surrogates above the rest of the BMP, so code units compare as code points do. */
function codePointRank(unit: number): number {
  if (unit >= 0xd800 && unit <= 0xdfff) return unit + 0x2000;
  if (unit >= 0xe000) return unit - 0x800;
  return unit;
}
