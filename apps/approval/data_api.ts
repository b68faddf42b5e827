/**
 * The data API (`docs/data-api.md`, `DATA_API=on`): pipelines inside the environment read published
 * releases, page by page, with a HAWK credential and exactly the scopes the clients file grants them.
 *
 * - `GET /data/v1/releases`: the open, published, unexpired releases the client's scopes name.
 * - `GET /data/v1/releases/{id}/tables`: their tables (columns, types, descriptions, key), in scope only.
 * - `GET /data/v1/releases/{id}/tables/{table}/rows`: one page of rows in key order (keyset cursor),
 *   forwarded to the publish service's `POST /data-publish/read/rows` and its reply relayed byte for byte.
 *
 * Every request under `/data/v1` is authenticated with HAWK where the key check would be
 * ({@link dataApiAuthentication}); every reply to an authenticated request carries a signed
 * `Server-Authorization` over its exact bytes; every read is audited, batched ({@link DataReadAudit}). A
 * release the client may not read, or that is not open, published and unexpired, is answered 404
 * `release_not_found` exactly as an unknown one; a table likewise 404 `table_not_found`.
 *
 * @module
 */
import { byteStream } from "../_shared/byte_stream.ts";
import { nextLinkHeader, nextOfLinkHeader } from "../_shared/next_link.ts";
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import {
  type DataApiClient,
  DataRequestBodyError,
  DataTableAmbiguousError,
  DataTableNotFoundError,
  isServedRelease,
  mayNameTable,
  mayReadRelease,
  mayReadTable,
  singleProjectOf,
} from "../../domain/data_api_scopes.ts";
import type { Release } from "../../domain/release.ts";
import {
  encodeReleaseCursor,
  ReleaseNotFoundError,
  type ReleaseStore,
} from "../../ports/release_store.ts";
import {
  RequestNotAuthenticatedError,
  type SignedRequestVerifier,
  type VerifiedRequest,
} from "../../ports/signed_request_verifier.ts";
import { SubServiceProtocolError } from "../_shared/app_errors.ts";
import { errorResponses } from "../_shared/create_app.ts";
import { success, successEnvelope } from "../_shared/envelope.ts";
import { errorReply, type ErrorStyle } from "../_shared/http_errors.ts";
import { bufferedBodyOf } from "../_shared/request_body.ts";
import { type DataReadAudit, dataReadOf, type ReadFacts } from "../_shared/data_read_audit.ts";
import {
  type CallOptions,
  callSubService,
  callSubServiceBody,
  type SubService,
  type SubServiceReply,
} from "./sub_service.ts";

/** Where the data API lives. */
export const DATA_API_PREFIX = "/data/v1";

/** The largest rows page (the publish service's limit). */
export const MAX_ROWS_PAGE = 10_000;

/** The rows page size when the request gives none. */
export const DEFAULT_ROWS_PAGE = 1_000;

/** The largest releases page. */
export const MAX_DATA_RELEASES_PAGE = 1_000;

/** The releases page size when the request gives none. */
export const DEFAULT_DATA_RELEASES_PAGE = 100;

/**
 * How many release store pages one `GET /data/v1/releases` reads at most while filling a page with
 * releases the client may read; a page can then be short, and its `next` goes on from where it stopped.
 */
const MAX_STORE_PAGES_PER_LIST = 10;

/** What the data API needs (`DATA_API_*`, built in `data_api_from_env.ts`). */
export interface DataApiDeps {
  /** Every client, by id. */
  readonly clients: ReadonlyMap<string, DataApiClient>;
  /** HAWK, over the clients' keys and the nonce store. */
  readonly verifier: SignedRequestVerifier;
  /** Where reads are recorded, batched. */
  readonly audit: DataReadAudit;
}

/** What the data API uses of the gateway. */
export interface DataApiGateway {
  readonly store: ReleaseStore;
  readonly publish: SubService;
  readonly callOptions: (c: Context) => CallOptions;
  readonly now: () => Date;
}

const CALLER_KEY = "dataApiCaller";
const READ_KEY = "dataApiRead";
/** The rows page the handler relays, with its payload hash, so that it is signed without being read. */
const PAGE_KEY = "dataApiPage";

/** A SHA-256 in base64, as HAWK writes a payload hash (it goes into `Server-Authorization` as is). */
const SHA256_BASE64 = /^[A-Za-z0-9+/]{43}=$/;

/** A rows page as the handler relays it. */
interface RelayedPage {
  readonly res: Response;
  readonly payloadHash: string;
}

interface Caller {
  readonly client: DataApiClient;
  readonly verified: VerifiedRequest;
  readonly hasBody: boolean;
}

/** What the handler knows of a read, for its audit record (`dataReadOf`); it fills in the rest. */
type ReadState = { -readonly [K in keyof ReadFacts]: ReadFacts[K] } & { release_id: string | null };

function callerOf(c: Context): Caller {
  const caller = c.get(CALLER_KEY as never) as Caller | undefined;
  // The authentication middleware admitted the request, so there is a caller.
  if (caller === undefined) throw new Error("data API request without a caller");
  return caller;
}

function startRead(c: Context, facts: Omit<ReadState, "cursorOut" | "rows">): ReadState {
  const read: ReadState = { ...facts, cursorOut: null, rows: null };
  c.set(READ_KEY as never, read as never);
  return read;
}

/** The host and port the client addressed, as HAWK signs them. */
function addressOf(c: Context): { host: string; port: number } | undefined {
  // Deno builds the request URL from the Host header (or HTTP/2's :authority).
  const header = c.req.header("host") ?? new URL(c.req.url).host;
  if (header === "" || header.includes("/")) return undefined;
  try {
    const url = new URL(`http://${header}`);
    if (url.port !== "") return { host: url.hostname, port: Number(url.port) };
    // Behind a proxy that ends TLS, the client addressed port 443.
    const https = c.req.header("x-forwarded-proto")?.toLowerCase() === "https" ||
      new URL(c.req.url).protocol === "https:";
    return { host: url.hostname, port: https ? 443 : 80 };
  } catch {
    return undefined;
  }
}

/** Whether the request carries a body. */
function hasBodyOf(c: Context): boolean {
  const length = c.req.header("content-length");
  if (length !== undefined) return length.trim() !== "0";
  return c.req.header("transfer-encoding") !== undefined || c.req.raw.body !== null;
}

/**
 * The data API's authentication, for `createServiceApp`'s `ownAuthentication`: HAWK for every request
 * under {@link DATA_API_PREFIX}; a refusal is 401 with `WWW-Authenticate`. Once authenticated, the reply
 * (whatever it is: success, 404, 422, 500) gets a signed `Server-Authorization` over its exact bytes, and
 * the read, when a route was reached, goes to the audit batch.
 */
export function dataApiAuthentication(
  deps: DataApiDeps,
  style: ErrorStyle,
  now: () => Date,
): MiddlewareHandler {
  return async function hawkAuthentication(c, next) {
    const url = new URL(c.req.url);
    const address = addressOf(c);
    const hasBody = hasBodyOf(c);
    let verified: VerifiedRequest;
    try {
      if (address === undefined) throw new RequestNotAuthenticatedError("unauthenticated", "Hawk");
      verified = await deps.verifier.verify({
        method: c.req.method,
        resource: url.pathname + url.search,
        host: address.host,
        port: address.port,
        authorization: c.req.header("authorization"),
        contentType: c.req.header("content-type") ?? "",
        hasBody,
      }, now());
    } catch (e) {
      if (!(e instanceof RequestNotAuthenticatedError)) throw e;
      c.header("WWW-Authenticate", e.challenge);
      return errorReply(c, style, 401, { detail: e.message, code: e.code });
    }
    const client = deps.clients.get(verified.clientId);
    if (client === undefined) throw new Error("a verified client is not listed");
    c.set(CALLER_KEY as never, { client, verified, hasBody } satisfies Caller as never);
    await next();
    const read = c.get(READ_KEY as never) as ReadState | undefined;
    if (read !== undefined) {
      deps.audit.record(
        await dataReadOf(c, { client_id: client.id, release_id: read.release_id }, read),
      );
    }
    // A body that does not match its signed hash is a failed authentication: its 401 is not signed.
    if (c.res.status !== 401) await signReply(c, verified);
  };
}

/**
 * Replaces the reply with one of the same bytes carrying `Server-Authorization`. A rows page is signed
 * with the payload hash the publish service sent with it, and its body handed on unread; any other reply
 * is read and hashed here.
 */
async function signReply(c: Context, verified: VerifiedRequest): Promise<void> {
  const res = c.res;
  const headers = new Headers(res.headers);
  const contentType = headers.get("content-type") ?? "";
  const page = c.get(PAGE_KEY as never) as RelayedPage | undefined;
  let body: BodyInit | null;
  if (page !== undefined && page.res === res) {
    headers.set(
      "Server-Authorization",
      verified.replyAuthorization({ payloadHash: page.payloadHash }, contentType),
    );
    body = res.body;
  } else {
    const bytes = new Uint8Array(await res.arrayBuffer());
    headers.set("Server-Authorization", verified.replyAuthorization(bytes, contentType));
    headers.set("content-length", String(bytes.length));
    body = byteStream([bytes]);
  }
  if (c.req.method === "HEAD") {
    await res.body?.cancel();
    body = null;
  }
  c.res = undefined;
  c.res = new Response(body, { status: res.status, statusText: res.statusText, headers });
}

// --- Routes, declared as data -------------------------------------------------------------------

const HAWK_SECURITY = [{ Hawk: [] }];

const DATA_ERRORS = errorResponses(400, 401, 404, 502, 504);

const DataRelease = z.object({
  id: z.string(),
  project_name: z.string(),
  project_start_time: z.string(),
  destination: z.object({ type: z.string(), name: z.string() }),
  published_at: z.string(),
  expires_at: z.string().nullable(),
}).openapi("DataRelease");

const DataColumn = z.object({
  name: z.string(),
  type: z.string(),
  description: z.string().nullable(),
});

/** A table as the publish service describes it (`POST /data-publish/read/tables`). */
const DataTable = z.object({
  name: z.string(),
  dataset: z.string().openapi({ description: "The dataset (schema) the table belongs to" }),
  columns: z.array(DataColumn),
  key: z.array(z.string()).openapi({ description: "The columns rows are ordered and paged by" }),
}).openapi("DataTable");

const PublishTables = z.object({ tables: z.array(DataTable) });

const Value = z.string().nullable();

const DataRowsPage = z.object({
  table: z.string(),
  columns: z.array(z.object({ name: z.string(), type: z.string() })),
  rows: z.array(z.array(Value)).optional().openapi({
    description: "`orientation=tabular`: one array per row, values in column order",
  }),
  records: z.array(z.record(z.string(), Value)).optional().openapi({
    description: "`orientation=records`: one object per row",
  }),
  next: z.string().nullable().openapi({
    description: "The next page's path and query (also the `Link` header), or null on the last",
  }),
}).openapi("DataRowsPage");

const ReleaseParams = z.object({ id: z.string().min(1).max(255) });

const pageSize = (max: number, fallback: number) =>
  z.coerce.number<unknown>().int().min(1).max(max).default(fallback).openapi({
    type: "integer",
    description: `1 to ${max}; ${fallback} by default`,
  });

/** `GET /data/v1/releases`. */
export const dataListReleases = createRoute({
  method: "get",
  path: `${DATA_API_PREFIX}/releases`,
  summary: "Data API: the published releases this client may read, newest first",
  tags: ["data"],
  security: HAWK_SECURITY,
  request: {
    query: z.object({
      limit: pageSize(MAX_DATA_RELEASES_PAGE, DEFAULT_DATA_RELEASES_PAGE),
      cursor: z.string().max(1024).optional().openapi({
        description: "From the previous page's `next`",
      }),
    }),
  },
  responses: {
    200: {
      description: "Releases; `next` is the next page's path and query, or null",
      content: {
        "application/json": {
          schema: successEnvelope(
            z.object({ releases: z.array(DataRelease), next: z.string().nullable() }),
          ),
        },
      },
    },
    ...DATA_ERRORS,
  },
});

/** `GET /data/v1/releases/{id}/tables`. */
export const dataListTables = createRoute({
  method: "get",
  path: `${DATA_API_PREFIX}/releases/{id}/tables`,
  summary: "Data API: the tables of a release this client may read, with their columns and key",
  tags: ["data"],
  security: HAWK_SECURITY,
  request: { params: ReleaseParams },
  responses: {
    200: {
      description: "The tables in scope",
      content: {
        "application/json": { schema: successEnvelope(z.object({ tables: z.array(DataTable) })) },
      },
    },
    ...DATA_ERRORS,
  },
});

/** `GET /data/v1/releases/{id}/tables/{table}/rows`. */
export const dataReadRows = createRoute({
  method: "get",
  path: `${DATA_API_PREFIX}/releases/{id}/tables/{table}/rows`,
  summary: "Data API: one page of a table's rows in key order",
  description: "Values are the CSV format's canonical text (exact decimals and timestamps), null " +
    "for NULL. Follow `next` (or the `Link` header) until it is null: every row comes exactly once, " +
    "in key order.",
  tags: ["data"],
  security: HAWK_SECURITY,
  request: {
    params: ReleaseParams.extend({ table: z.string().min(1).max(255) }),
    query: z.object({
      limit: pageSize(MAX_ROWS_PAGE, DEFAULT_ROWS_PAGE),
      cursor: z.string().max(8192).optional().openapi({ description: "From the previous `next`" }),
      orientation: z.enum(["records", "tabular"]).default("records"),
      dataset: z.string().min(1).max(255).optional().openapi({
        description: "The table's dataset (schema); needed only when two datasets have the table",
      }),
    }),
  },
  responses: {
    200: {
      description: "One page; `x-rows-returned` says how many rows",
      content: { "application/json": { schema: successEnvelope(DataRowsPage) } },
    },
    ...DATA_ERRORS,
  },
});

// --- Handlers -----------------------------------------------------------------------------------

/** The publish service's identity of a release's project run. */
function identityOf(release: Release) {
  return {
    project_name: release.project_name,
    project_start_time: release.project_start_time,
    destination: { type: release.destination.type, name: release.destination.name },
  };
}

/** A release as the data API lists it. */
function dataReleaseOf(release: Release): z.infer<typeof DataRelease> {
  return {
    id: release.id,
    project_name: release.project_name,
    project_start_time: release.project_start_time,
    destination: release.destination,
    published_at: release.publication?.published_at ?? release.created_at,
    expires_at: release.expires_at,
  };
}

/**
 * The next page's path and query from a rows page's `Link` header, `null` on the last page, `undefined`
 * when the header is not that form or does not start with `base`.
 */
function nextOfLink(link: string | null, base: string): string | null | undefined {
  const next = nextOfLinkHeader(link);
  return typeof next === "string" && !next.startsWith(base) ? undefined : next;
}

/** The `cursor` query parameter of a `next` link. */
function cursorOf(next: string | null): string | null {
  if (next === null) return null;
  return new URL(next, "http://x").searchParams.get("cursor");
}

/**
 * Adds the data API's routes to the gateway, and the check of a request body against its signed payload
 * hash (after the body reader read it, within `MAX_BODY_BYTES`).
 */
export function addDataApi(app: OpenAPIHono, gateway: DataApiGateway): void {
  app.openAPIRegistry.registerComponent("securitySchemes", "Hawk", {
    type: "apiKey",
    in: "header",
    name: "Authorization",
    description: "HAWK (SHA-256), `Authorization: Hawk id=..., ts=..., nonce=..., mac=...`; " +
      "replies carry a signed `Server-Authorization` (docs/data-api.md)",
  });
  for (const path of [DATA_API_PREFIX, `${DATA_API_PREFIX}/*`]) {
    app.use(path, async function hawkPayload(c, next) {
      const caller = callerOf(c);
      if (!caller.hasBody) return await next();
      if (c.req.method === "GET" || c.req.method === "HEAD") throw new DataRequestBodyError();
      const body = bufferedBodyOf(c) ?? new Uint8Array(await c.req.arrayBuffer());
      caller.verified.checkBody(body);
      return await next();
    });
  }

  /**
   * The release, when the client may read it and it is served (open, published, unexpired).
   *
   * @throws {ReleaseNotFoundError} otherwise, exactly as for an unknown id.
   */
  async function servedRelease(client: DataApiClient, id: string): Promise<Release> {
    const release = await gateway.store.get(id);
    if (
      release === undefined || !mayReadRelease(client, release) ||
      !isServedRelease(release, gateway.now())
    ) {
      throw new ReleaseNotFoundError(id);
    }
    return release;
  }

  function relayError(c: Context, reply: SubServiceReply): Response {
    return c.json(reply.body, reply.status as ContentfulStatusCode);
  }

  /** The tables of a release the client may read (the publish service's description). */
  async function tablesOf(
    c: Context,
    client: DataApiClient,
    release: Release,
  ): Promise<z.infer<typeof DataTable>[] | SubServiceReply> {
    const reply = await callSubService(gateway.publish, {
      method: "POST",
      endpoint: "data-publish/read/tables",
      body: JSON.stringify(identityOf(release)),
    }, gateway.callOptions(c));
    if (reply.status !== 200) return reply;
    const parsed = PublishTables.safeParse(reply.body.payload);
    if (!parsed.success) throw new SubServiceProtocolError(gateway.publish.name);
    return parsed.data.tables.filter((table) => mayReadTable(client, release, table));
  }

  app.openapi(dataListReleases, async (c) => {
    const { client } = callerOf(c);
    const query = c.req.valid("query");
    const read = startRead(c, {
      action: "list_releases",
      release_id: null,
      dataset: null,
      table: null,
      cursorIn: query.cursor ?? null,
    });
    const now = gateway.now();
    const project = singleProjectOf(client);
    const served: Release[] = [];
    let cursor = query.cursor;
    let next: string | null = null;
    for (let pages = 1;; pages++) {
      const page = await gateway.store.list({
        limit: query.limit,
        state: "open",
        ...(project === undefined ? {} : { project }),
        ...(cursor === undefined ? {} : { cursor }),
      });
      let full = false;
      for (const [i, release] of page.releases.entries()) {
        if (!mayReadRelease(client, release) || !isServedRelease(release, now)) continue;
        served.push(release);
        if (served.length === query.limit) {
          full = true;
          const more = i < page.releases.length - 1 || page.nextCursor !== null;
          next = more ? encodeReleaseCursor(release) : null;
          break;
        }
      }
      if (full || page.nextCursor === null) break;
      if (pages >= MAX_STORE_PAGES_PER_LIST) {
        next = page.nextCursor;
        break;
      }
      cursor = page.nextCursor;
    }
    read.cursorOut = next;
    const link = next === null
      ? null
      : `${DATA_API_PREFIX}/releases?limit=${query.limit}&cursor=${encodeURIComponent(next)}`;
    if (link !== null) c.header("Link", nextLinkHeader(link));
    return c.json(success({ releases: served.map(dataReleaseOf), next: link }), 200);
  });

  app.openapi(dataListTables, async (c) => {
    const { client } = callerOf(c);
    const { id } = c.req.valid("param");
    startRead(c, {
      action: "list_tables",
      release_id: id,
      dataset: null,
      table: null,
      cursorIn: null,
    });
    const release = await servedRelease(client, id);
    const tables = await tablesOf(c, client, release);
    if (!Array.isArray(tables)) return relayError(c, tables) as never;
    return c.json(success({ tables }), 200);
  });

  app.openapi(dataReadRows, async (c) => {
    const { client } = callerOf(c);
    const { id, table } = c.req.valid("param");
    const query = c.req.valid("query");
    const read = startRead(c, {
      action: "read_rows",
      release_id: id,
      dataset: query.dataset ?? null,
      table,
      cursorIn: query.cursor ?? null,
    });
    const release = await servedRelease(client, id);
    if (!mayNameTable(client, release, table, query.dataset)) {
      throw new DataTableNotFoundError(table);
    }
    let dataset = query.dataset;
    if (dataset === undefined) {
      const tables = await tablesOf(c, client, release);
      if (!Array.isArray(tables)) return relayError(c, tables) as never;
      const datasets = tables.filter((t) => t.name === table).map((t) => t.dataset);
      if (datasets.length === 0) throw new DataTableNotFoundError(table);
      if (datasets.length > 1) throw new DataTableAmbiguousError(table, datasets);
      dataset = datasets[0]!;
      read.dataset = dataset;
    } else if (!mayReadTable(client, release, { name: table, dataset })) {
      throw new DataTableNotFoundError(table);
    }
    const nextBase = `${DATA_API_PREFIX}/releases/${encodeURIComponent(id)}/tables/${
      encodeURIComponent(table)
    }/rows?limit=${query.limit}&orientation=${query.orientation}&dataset=${
      encodeURIComponent(dataset)
    }&cursor=`;
    const reply = await callSubServiceBody(gateway.publish, {
      method: "POST",
      endpoint: "data-publish/read/rows",
      body: JSON.stringify({
        ...identityOf(release),
        dataset,
        table,
        limit: query.limit,
        cursor: query.cursor ?? null,
        orientation: query.orientation,
        next_base: nextBase,
      }),
    }, gateway.callOptions(c));
    if (!("length" in reply)) return relayError(c, reply) as never;
    // The page is relayed as it comes: what the gateway says of it comes from its headers.
    const rows = Number(reply.headers.get("x-rows-returned") ?? NaN);
    const next = nextOfLink(reply.headers.get("link"), nextBase);
    const payloadHash = reply.headers.get("x-hawk-payload-hash");
    if (
      reply.status !== 200 || !Number.isSafeInteger(rows) || rows < 0 || next === undefined ||
      payloadHash === null || !SHA256_BASE64.test(payloadHash)
    ) {
      await reply.body.cancel();
      throw new SubServiceProtocolError(gateway.publish.name);
    }
    read.rows = rows;
    read.cursorOut = cursorOf(next);
    const headers: Record<string, string> = {
      "content-type": reply.headers.get("content-type") ?? "application/json",
      "content-length": String(reply.length),
      "x-rows-returned": String(rows),
    };
    if (next !== null) headers["link"] = nextLinkHeader(next);
    const res = new Response(reply.body, { status: 200, headers });
    c.set(PAGE_KEY as never, { res, payloadHash } satisfies RelayedPage as never);
    return res as never;
  });
}
