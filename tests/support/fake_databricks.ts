/**
 * A fake Databricks workspace host, served over HTTPS (`node:https`) on `127.0.0.1` and a free port with a
 * throw-away certificate authority ({@link makeTestCertificates}), serving one {@link FakeWorkspace}:
 *
 * - `POST /oidc/v1/token`: OAuth M2M `client_credentials` with HTTP Basic client authentication and
 *   `scope=all-apis`; anything else gets 401
 *   `{"error":"invalid_client","error_description":"Client authentication failed"}`. Issued tokens are
 *   random, last `tokenLifetimeSeconds` (default 3600, checked against the real clock), and
 *   {@link FakeDatabricks.expireTokens} invalidates all of them at once.
 * - Unity Catalog REST (`/api/2.1/unity-catalog/...`), behind a Bearer token (401
 *   `{"error_code":"UNAUTHENTICATED","message":"Invalid access token."}`):
 *   `GET schemas/{catalog}.{schema}`, `GET tables?catalog_name=&schema_name=&max_results=[&page_token=]`
 *   (400 `INVALID_PARAMETER_VALUE` without `max_results`; pages of `pageSize` tables, default 2, with an
 *   opaque `next_page_token` that is absent on the last page) and `GET tables/{catalog}.{schema}.{table}`.
 *   Unknown objects get 404 `CATALOG_DOES_NOT_EXIST` / `SCHEMA_DOES_NOT_EXIST` / `TABLE_DOES_NOT_EXIST`
 *   with Databricks' messages; unknown endpoints 404 `ENDPOINT_NOT_FOUND`. Names match ignoring case, as
 *   Unity Catalog's do, and come back as stored. Tables are listed in workspace order (not sorted).
 * - `POST /sql/...`: after the same Bearer check, handed to {@link FakeDatabricksOptions.thrift} (the fake
 *   Thrift TCLIService endpoint), so both halves of the source share one host as on a real workspace; 404
 *   without it.
 *
 * `TableInfo` and `ColumnInfo` carry the fields Databricks sends (`full_name`, `table_type`,
 * `data_source_format`, `columns[].type_text/type_name/type_json/type_precision/type_scale/position/
 * nullable/comment`, `table_constraints[].primary_key_constraint`); a null comment is left out, as
 * Databricks does. `type_json` is exact for primitive types only; for ARRAY, MAP and STRUCT it carries
 * the `type_text` instead of Spark's nested JSON.
 *
 * Test hooks: {@link FakeDatabricks.requests} (method, raw path, decoded query; never headers),
 * {@link FakeDatabricks.tokensIssued}, {@link FakeDatabricks.expireTokens},
 * {@link FakeDatabricks.failNext}, {@link FakeDatabricks.replyNext}.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import https from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  makeTestCertificates,
  removeTestCertificates,
  type TestCertificates,
} from "./fake_key_vault.ts";
import type {
  FakeUcColumn,
  FakeUcSchema,
  FakeUcTable,
  FakeWorkspace,
} from "./fake_databricks_workspace.ts";

/** Options for {@link startFakeDatabricks}. */
export interface FakeDatabricksOptions {
  /** Tables per page of `GET tables` (the most it returns whatever `max_results` asks); default 2. */
  readonly pageSize?: number;
  /** Serves `POST /sql/...` once the Bearer token has been checked (the fake Thrift endpoint). */
  readonly thrift?: (req: IncomingMessage, res: ServerResponse) => void;
  /** The TLS certificates to serve with; by default a fresh set is made and removed on close. */
  readonly certificates?: TestCertificates;
  /**
   * The order of `columns` in a `TableInfo`: by `position` (default, as Databricks sends them) or
   * reversed, to show that a client sorts by `position` itself.
   */
  readonly columnOrder?: "position" | "reversed";
}

/** One request the fake received. */
export interface FakeDatabricksRequest {
  readonly method: string;
  /** The raw (still percent-encoded) path, e.g. `/api/2.1/unity-catalog/schemas/main.my%20schema`. */
  readonly path: string;
  /** The decoded query parameters. */
  readonly query: Record<string, string>;
}

/** A running fake workspace. */
export interface FakeDatabricks extends AsyncDisposable {
  /** `https://127.0.0.1:{port}`: the workspace URL. */
  readonly url: string;
  /** `127.0.0.1`. */
  readonly host: string;
  readonly port: number;
  /** The PEM certificate of the CA that signed the server's certificate. */
  readonly caCertificate: string;
  /** Every request, in arrival order (token requests included). */
  readonly requests: FakeDatabricksRequest[];
  /** How many tokens `/oidc/v1/token` has issued. */
  readonly tokensIssued: number;
  /** Invalidates every token issued so far. */
  expireTokens(): void;
  /**
   * Makes the next request whose raw path starts with `pathPrefix` fail with `status` and `body` (once;
   * calls queue up). API requests are authenticated first, as a real workspace does.
   */
  failNext(pathPrefix: string, status: number, body: { error_code: string; message: string }): void;
  /** Like {@link failNext}, with any JSON body (e.g. a malformed or looping page, to test a client). */
  replyNext(pathPrefix: string, status: number, body: unknown): void;
  /** Stops the server (and removes the certificates it made). */
  close(): Promise<void>;
}

const UC = "/api/2.1/unity-catalog/";
const DEFAULT_TOKEN_LIFETIME_SECONDS = 3600;
const CREATED_AT = Date.UTC(2026, 0, 15, 9, 30);
const OWNER = "data-owners@example.org";

/** Starts a fake workspace host serving `workspace`. */
export async function startFakeDatabricks(
  workspace: FakeWorkspace,
  options: FakeDatabricksOptions = {},
): Promise<FakeDatabricks> {
  const pageSize = options.pageSize ?? 2;
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) {
    throw new RangeError(`Cannot serve pages of ${pageSize} tables: must be a positive integer`);
  }
  const ownCertificates = options.certificates === undefined;
  const certificates = options.certificates ?? await makeTestCertificates();
  const lifetimeSeconds = workspace.tokenLifetimeSeconds ?? DEFAULT_TOKEN_LIFETIME_SECONDS;
  const tokens = new Map<string, number>();
  const pageTokens = new Map<string, { schema: string; offset: number }>();
  const failures: { prefix: string; status: number; body: unknown }[] = [];
  const requests: FakeDatabricksRequest[] = [];
  let tokensIssued = 0;

  function takeFailure(path: string): { status: number; body: unknown } | undefined {
    const index = failures.findIndex((f) => path.startsWith(f.prefix));
    return index < 0 ? undefined : failures.splice(index, 1)[0];
  }

  function authenticated(req: IncomingMessage): boolean {
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "");
    const expiresAt = match === null ? undefined : tokens.get(match[1]!);
    return expiresAt !== undefined && Date.now() < expiresAt;
  }

  async function issueToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams(await readBody(req));
    const client = basicCredentials(req.headers.authorization);
    if (
      req.method !== "POST" ||
      client === undefined ||
      client.id !== workspace.clientId ||
      client.secret !== workspace.clientSecret ||
      form.get("grant_type") !== "client_credentials" ||
      form.get("scope") !== "all-apis"
    ) {
      send(res, 401, {
        error: "invalid_client",
        error_description: "Client authentication failed",
      });
      return;
    }
    const token = `dapi-fake-${crypto.randomUUID().replaceAll("-", "")}`;
    tokens.set(token, Date.now() + lifetimeSeconds * 1000);
    tokensIssued++;
    send(res, 200, {
      access_token: token,
      token_type: "Bearer",
      scope: "all-apis",
      expires_in: lifetimeSeconds,
    });
  }

  function unityCatalog(req: IncomingMessage, res: ServerResponse, url: URL): void {
    const route = url.pathname.slice(UC.length).split("/");
    const notFound = () =>
      send(res, 404, {
        error_code: "ENDPOINT_NOT_FOUND",
        message: `No API found for '${req.method} ${url.pathname}'`,
      });
    if (req.method !== "GET") return notFound();
    let names: string[];
    try {
      names = route.map((segment) => decodeURIComponent(segment));
    } catch {
      return invalid(res, "Invalid percent-encoding in the request path.");
    }
    if (names.length === 2 && names[0] === "schemas") return getSchema(res, names[1]!);
    if (names.length === 1 && names[0] === "tables") return listTables(res, url.searchParams);
    if (names.length === 2 && names[0] === "tables") return getTable(res, names[1]!);
    notFound();
  }

  function findSchema(
    res: ServerResponse,
    catalog: string,
    schema: string,
  ): FakeUcSchema | undefined {
    if (!sameName(catalog, workspace.catalog)) {
      send(res, 404, {
        error_code: "CATALOG_DOES_NOT_EXIST",
        message: `Catalog '${catalog}' does not exist.`,
      });
      return undefined;
    }
    const found = workspace.schemas.find((s) => sameName(s.name, schema));
    if (found === undefined) {
      send(res, 404, {
        error_code: "SCHEMA_DOES_NOT_EXIST",
        message: `Schema '${catalog}.${schema}' does not exist.`,
      });
    }
    return found;
  }

  function getSchema(res: ServerResponse, fullName: string): void {
    const parts = fullName.split(".");
    if (parts.length !== 2) return invalid(res, `Invalid schema full name '${fullName}'.`);
    const schema = findSchema(res, parts[0]!, parts[1]!);
    if (schema === undefined) return;
    send(res, 200, {
      name: schema.name,
      catalog_name: workspace.catalog,
      full_name: `${workspace.catalog}.${schema.name}`,
      ...(schema.comment == null ? {} : { comment: schema.comment }),
      owner: OWNER,
      properties: {},
      created_at: CREATED_AT,
      created_by: OWNER,
      updated_at: CREATED_AT,
      updated_by: OWNER,
      catalog_type: "MANAGED_CATALOG",
      schema_id: stableId(`schema:${schema.name}`),
    });
  }

  function listTables(res: ServerResponse, query: URLSearchParams): void {
    const catalog = query.get("catalog_name");
    const schemaName = query.get("schema_name");
    const maxResults = query.get("max_results");
    if (catalog === null || catalog === "") return invalid(res, "Missing catalog_name.");
    if (schemaName === null || schemaName === "") return invalid(res, "Missing schema_name.");
    if (maxResults === null) {
      return invalid(res, "max_results is required: unpaginated list calls are not supported.");
    }
    if (!/^\d+$/.test(maxResults)) return invalid(res, `Invalid max_results '${maxResults}'.`);
    const schema = findSchema(res, catalog, schemaName);
    if (schema === undefined) return;
    let offset = 0;
    const pageToken = query.get("page_token");
    if (pageToken !== null && pageToken !== "") {
      const page = pageTokens.get(pageToken);
      if (page === undefined || page.schema !== schema.name) {
        return invalid(res, "Invalid page_token.");
      }
      offset = page.offset;
    }
    const asked = Number(maxResults);
    const size = asked === 0 ? pageSize : Math.min(asked, pageSize);
    const page = schema.tables.slice(offset, offset + size);
    const next = offset + size;
    let nextToken: string | undefined;
    if (next < schema.tables.length) {
      nextToken = btoa(crypto.randomUUID()).replaceAll("=", "");
      pageTokens.set(nextToken, { schema: schema.name, offset: next });
    }
    send(res, 200, {
      tables: page.map((t) => tableInfo(schema, t)),
      ...(nextToken === undefined ? {} : { next_page_token: nextToken }),
    });
  }

  function getTable(res: ServerResponse, fullName: string): void {
    const parts = fullName.split(".");
    if (parts.length !== 3) return invalid(res, `Invalid table full name '${fullName}'.`);
    const [catalog, schemaName, tableName] = parts as [string, string, string];
    if (!sameName(catalog, workspace.catalog)) {
      return send(res, 404, {
        error_code: "CATALOG_DOES_NOT_EXIST",
        message: `Catalog '${catalog}' does not exist.`,
      });
    }
    const schema = workspace.schemas.find((s) => sameName(s.name, schemaName));
    const table = schema?.tables.find((t) => sameName(t.name, tableName));
    if (schema === undefined || table === undefined) {
      return send(res, 404, {
        error_code: "TABLE_DOES_NOT_EXIST",
        message: `Table '${fullName}' does not exist.`,
      });
    }
    send(res, 200, tableInfo(schema, table));
  }

  function tableInfo(schema: FakeUcSchema, table: FakeUcTable): Record<string, unknown> {
    const isView = ["VIEW", "MATERIALIZED_VIEW", "METRIC_VIEW"].includes(table.table_type);
    const columns = table.columns.map((column, position) => columnInfo(column, position));
    if (options.columnOrder === "reversed") columns.reverse();
    const primaryKey = table.primaryKey ?? [];
    return {
      name: table.name,
      catalog_name: workspace.catalog,
      schema_name: schema.name,
      full_name: `${workspace.catalog}.${schema.name}.${table.name}`,
      table_type: table.table_type,
      ...(isView ? { view_definition: "SELECT 1" } : { data_source_format: "DELTA" }),
      columns,
      ...(table.comment == null ? {} : { comment: table.comment }),
      owner: OWNER,
      properties: {},
      created_at: CREATED_AT,
      created_by: OWNER,
      updated_at: CREATED_AT,
      updated_by: OWNER,
      table_id: stableId(`table:${schema.name}.${table.name}`),
      ...(primaryKey.length === 0 ? {} : {
        table_constraints: [{
          primary_key_constraint: { name: `${table.name}_pk`, child_columns: [...primaryKey] },
        }],
      }),
    };
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "https://127.0.0.1");
    requests.push({
      method: req.method ?? "",
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
    });
    if (url.pathname === "/oidc/v1/token") {
      const failure = takeFailure(url.pathname);
      if (failure !== undefined) {
        await readBody(req);
        return send(res, failure.status, failure.body);
      }
      return await issueToken(req, res);
    }
    const isApi = url.pathname.startsWith(UC);
    const isSql = req.method === "POST" && url.pathname.startsWith("/sql/");
    if (!isApi && !isSql) {
      await readBody(req);
      return send(res, 404, {
        error_code: "ENDPOINT_NOT_FOUND",
        message: `No API found for '${req.method} ${url.pathname}'`,
      });
    }
    if (!authenticated(req)) {
      await readBody(req);
      return send(res, 401, { error_code: "UNAUTHENTICATED", message: "Invalid access token." });
    }
    const failure = takeFailure(url.pathname);
    if (failure !== undefined) {
      await readBody(req);
      return send(res, failure.status, failure.body);
    }
    if (isApi) {
      await readBody(req);
      return unityCatalog(req, res, url);
    }
    if (options.thrift === undefined) {
      await readBody(req);
      return send(res, 404, { error_code: "ENDPOINT_NOT_FOUND", message: "No SQL endpoint here." });
    }
    options.thrift(req, res);
  }

  const server = https.createServer(
    { cert: certificates.cert, key: certificates.key },
    (req, res) => {
      handle(req, res).catch((error: unknown) => {
        if (!res.headersSent) {
          send(res, 500, { error_code: "INTERNAL_ERROR", message: String(error) });
        } else {
          res.destroy();
        }
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  let closed: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closed ??= (async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      if (ownCertificates) await removeTestCertificates(certificates);
    })();
    return closed;
  };

  return {
    url: `https://127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    caCertificate: certificates.caCert,
    requests,
    get tokensIssued() {
      return tokensIssued;
    },
    expireTokens() {
      tokens.clear();
    },
    failNext(pathPrefix, status, body) {
      failures.push({ prefix: pathPrefix, status, body });
    },
    replyNext(pathPrefix, status, body) {
      failures.push({ prefix: pathPrefix, status, body });
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

function columnInfo(column: FakeUcColumn, position: number): Record<string, unknown> {
  const nullable = column.nullable ?? true;
  const decimal = /^decimal\((\d+),(\d+)\)$/i.exec(column.type_text);
  return {
    name: column.name,
    type_text: column.type_text,
    type_name: column.type_name,
    type_json: JSON.stringify({
      name: column.name,
      type: sparkJsonType(column),
      nullable,
      metadata: column.comment == null ? {} : { comment: column.comment },
    }),
    type_precision: decimal === null ? 0 : Number(decimal[1]),
    type_scale: decimal === null ? 0 : Number(decimal[2]),
    position,
    nullable,
    ...(column.comment == null ? {} : { comment: column.comment }),
  };
}

const SPARK_JSON_NAMES: Readonly<Record<string, string>> = {
  BOOLEAN: "boolean",
  BYTE: "byte",
  SHORT: "short",
  INT: "integer",
  LONG: "long",
  FLOAT: "float",
  DOUBLE: "double",
  DATE: "date",
  TIMESTAMP: "timestamp",
  TIMESTAMP_NTZ: "timestamp_ntz",
  STRING: "string",
  BINARY: "binary",
  VARIANT: "variant",
};

function sparkJsonType(column: FakeUcColumn): string {
  return Object.hasOwn(SPARK_JSON_NAMES, column.type_name)
    ? SPARK_JSON_NAMES[column.type_name]!
    : column.type_text.toLowerCase();
}

function sameName(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** A UUID-shaped id that stays the same for the same object. */
function stableId(seed: string): string {
  let h = 0x811c9dc5;
  const hex: string[] = [];
  for (let round = 0; round < 4; round++) {
    for (const char of `${round}:${seed}`) {
      h = Math.imul(h ^ char.codePointAt(0)!, 0x01000193) >>> 0;
    }
    hex.push(h.toString(16).padStart(8, "0"));
  }
  const s = hex.join("");
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
}

function invalid(res: ServerResponse, message: string): void {
  send(res, 400, { error_code: "INVALID_PARAMETER_VALUE", message });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
  });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function basicCredentials(
  header: string | undefined,
): { id: string; secret: string } | undefined {
  const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header ?? "");
  if (match === null) return undefined;
  let decoded: string;
  try {
    decoded = new TextDecoder().decode(Uint8Array.from(atob(match[1]!), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
  const colon = decoded.indexOf(":");
  return colon < 0 ? undefined : { id: decoded.slice(0, colon), secret: decoded.slice(colon + 1) };
}
