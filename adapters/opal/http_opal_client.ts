/**
 * {@link OpalClient} over OPAL's REST API (`{server}/ws/...`), as described in
 * `shared/reference/opal-api.md`: Basic auth on every request (no session), `Accept: application/json`,
 * upper-case enum query parameters, `parameters`/`credentials` as JSON strings, bare-array replies whose
 * empty fields may be missing. No request is ever retried, so a 401 cannot lock the account.
 *
 * TLS verification can be switched off for this client only (`noSslVerify`): its https requests then go
 * through `node:https` with an agent that does not reject unknown certificates, because Deno's
 * `createHttpClient` has no such option. Every other request in the process still verifies.
 *
 * @module
 */
import https from "node:https";
import { z } from "zod";
import type { OpalResourceDefinition } from "../../domain/opal.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import {
  OpalAuthenticationError,
  type OpalChange,
  type OpalClient,
  type OpalLogin,
  OpalProjectNotFoundError,
  OpalProtocolError,
  OpalRejectedError,
  type OpalRemoval,
  type OpalRequestRef,
  type OpalResourceSummary,
  OpalUnavailableError,
} from "../../ports/opal_client.ts";
import { compareNames } from "../shared/collections.ts";
import { causeChain } from "../shared/errors.ts";

/** How long one OPAL request may take unless told otherwise. */
export const DEFAULT_OPAL_TIMEOUT_MS = 30_000;

/** Where OPAL is and how to log in. */
export interface HttpOpalClientOptions {
  /** The server, e.g. `https://opal.example.org` (`DESTINATION_OPAL_HOST`); `/ws` is appended. */
  readonly baseUrl: string;
  readonly username: string;
  /** Never appears in an error message. */
  readonly password: string;
  /** Skip TLS certificate verification for this client's https requests. Off unless true. */
  readonly noSslVerify?: boolean;
  /** Per-request timeout in milliseconds, body included; {@link DEFAULT_OPAL_TIMEOUT_MS} by default. */
  readonly timeoutMs?: number;
}

/** One request as a transport sends it. */
interface OutgoingRequest {
  readonly method: string;
  readonly url: URL;
  readonly headers: Record<string, string>;
  readonly body?: string;
  readonly signal: AbortSignal;
}

/** A reply as read by a transport, body included. */
interface Reply {
  readonly status: number;
  readonly text: string;
  header(name: string): string | undefined;
}

type Transport = (request: OutgoingRequest) => Promise<Reply>;

interface CallOptions {
  readonly query?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  /** Secrets this request carries besides the login, scrubbed from any message. */
  readonly secrets?: readonly string[];
}

/** A reply together with the request it answers and the secrets to keep out of messages. */
interface Exchange {
  readonly ref: OpalRequestRef;
  readonly reply: Reply;
  readonly secrets: readonly string[];
}

const ClientErrorBody = z.object({
  status: z.string().optional(),
  arguments: z.array(z.unknown()).optional(),
});

const SubjectProfile = z.object({ principal: z.string() });

const SubjectCredentials = z.object({
  name: z.string(),
  authenticationType: z.string(),
  groups: z.array(z.string()).optional(),
  enabled: z.boolean().optional(),
});

const AclList = z.array(z.object({
  subject: z.object({ principal: z.string(), type: z.string() }),
  actions: z.array(z.string()).optional(),
}));

const ResourceReference = z.object({
  name: z.string(),
  provider: z.string(),
  factory: z.string(),
  parameters: z.string(),
  credentials: z.string().optional(),
  description: z.string().optional(),
  resource: z.object({ url: z.string().optional() }).optional(),
});

const ResourceReferenceList = z.array(ResourceReference);

/** Grants that already include DataSHIELD use; a group holding one is left alone. */
const DATASHIELD_SUFFICIENT = ["DATASHIELD_USE", "DATASHIELD_ALL"];
/** Grants that already include viewing every resource of a project. */
const RESOURCES_SUFFICIENT = ["RESOURCES_VIEW", "RESOURCES_ALL"];

const ARGUMENT_MAX = 300;

/** Talks to one OPAL server over HTTP(S). Stateless: safe to share between concurrent publishes. */
export class HttpOpalClient implements OpalClient {
  readonly #base: string;
  readonly #username: string;
  readonly #authorization: string;
  readonly #loginSecrets: readonly string[];
  readonly #timeoutMs: number;
  readonly #transport: Transport;

  /**
   * @throws {TypeError} when `baseUrl` is not an http(s) URL, carries credentials, a query or a fragment,
   *   or `timeoutMs` is not a positive integer.
   */
  constructor(options: HttpOpalClientOptions) {
    const url = parseBaseUrl(options.baseUrl);
    const timeoutMs = options.timeoutMs ?? DEFAULT_OPAL_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) {
      throw new TypeError(`Cannot use OPAL timeout ${timeoutMs}: must be a positive integer (ms)`);
    }
    this.#base = url.href.replace(/\/+$/, "");
    this.#username = options.username;
    const token = base64Utf8(`${options.username}:${options.password}`);
    this.#authorization = `Basic ${token}`;
    this.#loginSecrets = [options.password, token];
    this.#timeoutMs = timeoutMs;
    this.#transport = options.noSslVerify === true && url.protocol === "https:"
      ? unverifiedHttpsTransport()
      : fetchTransport;
  }

  async checkReady(): Promise<OpalLogin> {
    const exchange = await this.#call("GET", ["system", "subject-profile", "_current"]);
    this.#expect(exchange, [200]);
    const profile = this.#parse(exchange, SubjectProfile);
    const version = exchange.reply.header("x-opal-version");
    return version === undefined
      ? { principal: profile.principal }
      : { principal: profile.principal, opalVersion: version };
  }

  async ensureProject(name: string): Promise<OpalChange> {
    const found = await this.#call("GET", ["project", name]);
    if (found.reply.status === 200) return "unchanged";
    if (found.reply.status !== 404) throw this.#failure(found);
    const created = await this.#call("POST", ["projects"], {
      body: { name, title: name, description: `Data Access Request for project ${name}` },
    });
    if (created.reply.status === 201 || created.reply.status === 200) return "created";
    // Another publish created it between our GET and POST: OPAL says 400 "Project already exists".
    if (
      created.reply.status === 400 &&
      errorBody(created.reply).arguments.some((a) => /already exists/i.test(a))
    ) {
      return "unchanged";
    }
    throw this.#failure(created);
  }

  async ensureUserInGroup(user: string, group: string, newPassword: string): Promise<OpalChange> {
    let found = await this.#call("GET", ["system", "subject-credential", user]);
    if (found.reply.status === 404) {
      const created = await this.#call("POST", ["system", "subject-credentials"], {
        body: {
          name: user,
          authenticationType: "PASSWORD",
          password: newPassword,
          groups: [group],
          enabled: true,
        },
        secrets: [newPassword],
      });
      if (created.reply.status === 200 || created.reply.status === 201) return "created";
      if (created.reply.status !== 409) throw this.#failure(created);
      // Created concurrently: carry on with the user that now exists.
      found = await this.#call("GET", ["system", "subject-credential", user]);
    }
    this.#expect(found, [200]);
    const existing = this.#parse(found, SubjectCredentials);
    const groups = existing.groups ?? [];
    if (groups.includes(group)) return "unchanged";
    // PUT replaces the group list and `enabled`; no password keeps the current one.
    const updated = await this.#call("PUT", ["system", "subject-credential", user], {
      body: {
        name: existing.name,
        authenticationType: existing.authenticationType,
        enabled: existing.enabled ?? true,
        groups: [...groups, group],
      },
    });
    this.#expect(updated, [200, 204]);
    return "updated";
  }

  ensureDatashieldUse(group: string): Promise<OpalChange> {
    return this.#ensureGroupGrant(
      ["system", "permissions", "datashield"],
      group,
      "DATASHIELD_USE",
      DATASHIELD_SUFFICIENT,
    );
  }

  ensureResourcesView(project: string, group: string): Promise<OpalChange> {
    return this.#ensureGroupGrant(
      ["project", project, "permissions", "resources"],
      group,
      "RESOURCES_VIEW",
      RESOURCES_SUFFICIENT,
    );
  }

  async ensureResource(definition: OpalResourceDefinition): Promise<OpalChange> {
    const { project, name } = definition;
    const secrets = credentialSecrets(definition.credentials);
    const body = {
      name,
      project,
      description: definition.description,
      provider: definition.provider,
      factory: definition.factory,
      parameters: definition.parameters,
      credentials: definition.credentials,
    };
    const found = await this.#call("GET", ["project", project, "resource", name], { secrets });
    if (found.reply.status === 404) {
      if (errorBody(found.reply).status === "NoSuchProject") throw this.#failure(found);
      const created = await this.#call("POST", ["project", project, "resources"], {
        body,
        secrets,
      });
      this.#expect(created, [201, 200]);
      return "created";
    }
    this.#expect(found, [200]);
    const existing = this.#parse(found, ResourceReference);
    if (sameResource(existing, definition)) return "unchanged";
    // PUT keeps the resource's `created` time; POST would reset it.
    const updated = await this.#call("PUT", ["project", project, "resource", name], {
      body,
      secrets,
    });
    this.#expect(updated, [200, 204]);
    return "updated";
  }

  async listResources(project: string): Promise<OpalResourceSummary[]> {
    const exchange = await this.#call("GET", ["project", project, "resources"]);
    this.#expect(exchange, [200]);
    return this.#parse(exchange, ResourceReferenceList)
      .map((r) => {
        const summary: {
          -readonly [K in keyof OpalResourceSummary]: OpalResourceSummary[K];
        } = {
          name: r.name,
          provider: r.provider,
          factory: r.factory,
          parameters: r.parameters,
        };
        if (r.description !== undefined) summary.description = r.description;
        if (r.resource?.url !== undefined) summary.url = r.resource.url;
        return summary;
      })
      .sort((a, b) => compareNames(a.name, b.name));
  }

  async deleteResource(project: string, name: string): Promise<OpalRemoval> {
    const found = await this.#call("GET", ["project", project, "resource", name]);
    if (found.reply.status === 404) return "missing";
    this.#expect(found, [200]);
    // OPAL answers 204 for a missing resource too, and drops the resource's permissions with it.
    const deleted = await this.#call("DELETE", ["project", project, "resource", name]);
    this.#expect(deleted, [200, 204]);
    return "deleted";
  }

  async removeResourcesView(project: string, group: string): Promise<OpalRemoval> {
    return await this.#removeGroupGrants(["project", project, "permissions", "resources"], group);
  }

  async removeGroup(group: string): Promise<OpalRemoval> {
    const grants = await this.#removeGroupGrants(["system", "permissions", "datashield"], group);
    const found = await this.#call("GET", ["system", "group", group]);
    // OPAL's DELETE of a missing group may fail (opal-api.md §3.4): look first.
    if (found.reply.status === 404) return grants;
    this.#expect(found, [200]);
    const deleted = await this.#call("DELETE", ["system", "group", group]);
    this.#expect(deleted, [200, 204]);
    return "deleted";
  }

  /** Removes a group's grants on one permissions endpoint when it has any; a missing project is fine. */
  async #removeGroupGrants(endpoint: readonly string[], group: string): Promise<OpalRemoval> {
    const listed = await this.#call("GET", endpoint, { query: { type: "GROUP" } });
    if (listed.reply.status === 404) return "missing";
    this.#expect(listed, [200]);
    const entry = this.#parse(listed, AclList)
      .find((acl) => acl.subject.type === "GROUP" && acl.subject.principal === group);
    if (entry === undefined) return "missing";
    const removed = await this.#call("DELETE", endpoint, {
      query: { type: "GROUP", principal: group },
    });
    this.#expect(removed, [200, 204]);
    return "deleted";
  }

  /** Grants `permission` to `group` on one permissions endpoint unless it holds a sufficient grant. */
  async #ensureGroupGrant(
    endpoint: readonly string[],
    group: string,
    permission: string,
    sufficient: readonly string[],
  ): Promise<OpalChange> {
    const listed = await this.#call("GET", endpoint, { query: { type: "GROUP" } });
    this.#expect(listed, [200]);
    const entry = this.#parse(listed, AclList)
      .find((acl) => acl.subject.type === "GROUP" && acl.subject.principal === group);
    const actions = entry?.actions ?? [];
    if (actions.some((a) => sufficient.includes(a))) return "unchanged";
    // OPAL replaces the subject's grants on this node, so a repeated POST never duplicates.
    const granted = await this.#call("POST", endpoint, {
      query: { type: "GROUP", permission, principal: group },
    });
    this.#expect(granted, [200, 201, 204]);
    return entry === undefined ? "created" : "updated";
  }

  /** Sends one request; maps transport failures (refused, TLS, timeout) to {@link OpalUnavailableError}. */
  async #call(
    method: string,
    segments: readonly string[],
    options: CallOptions = {},
  ): Promise<Exchange> {
    const path = `/ws/${segments.map(encodeURIComponent).join("/")}`;
    const ref: OpalRequestRef = { method, path };
    const url = new URL(`${this.#base}${path}`);
    for (const [key, value] of Object.entries(options.query ?? {})) {
      url.searchParams.set(key, value);
    }
    const headers: Record<string, string> = {
      accept: "application/json",
      authorization: this.#authorization,
    };
    let body: string | undefined;
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const secrets = [...this.#loginSecrets, ...(options.secrets ?? [])];
    const signal = AbortSignal.timeout(this.#timeoutMs);
    try {
      const reply = await this.#transport(
        body === undefined
          ? { method, url, headers, signal }
          : { method, url, headers, body, signal },
      );
      return { ref, reply, secrets };
    } catch (e) {
      if (signal.aborted) {
        throw new OpalUnavailableError(
          ref,
          `OPAL did not answer ${method} ${path} within ${this.#timeoutMs / 1000} s`,
          undefined,
          true,
          { cause: e },
        );
      }
      const reason = redactSecrets(causeChain(e), secrets);
      throw new OpalUnavailableError(
        ref,
        `Cannot reach OPAL at ${this.#base} for ${method} ${path}: ${reason}`,
        undefined,
        false,
        { cause: e },
      );
    }
  }

  /** Throws the mapped error unless the status is one of `ok`. */
  #expect(exchange: Exchange, ok: readonly number[]): void {
    if (!ok.includes(exchange.reply.status)) throw this.#failure(exchange);
  }

  /** The port error for a reply the operation did not expect. */
  #failure({ ref, reply, secrets }: Exchange): Error {
    const status = reply.status;
    if (status === 401 || status === 403) {
      return new OpalAuthenticationError(ref, status, this.#username);
    }
    const body = errorBody(reply);
    const opalStatus = body.status === undefined ? undefined : redactSecrets(body.status, secrets);
    const opalArguments = body.arguments.map((a) => redactSecrets(a, secrets));
    if (status >= 500) {
      const word = opalStatus === undefined ? "" : `: ${opalStatus}`;
      const args = opalArguments.length === 0 ? "" : ` (${opalArguments.join("; ")})`;
      return new OpalUnavailableError(
        ref,
        `OPAL answered ${status} to ${ref.method} ${ref.path}${word}${args}`,
        status,
        false,
      );
    }
    if (status === 404 && body.status === "NoSuchProject") {
      return new OpalProjectNotFoundError(ref, opalArguments[0] ?? "", opalArguments);
    }
    if (status >= 400) return new OpalRejectedError(ref, status, opalStatus, opalArguments);
    if (status >= 300 || status === 0) {
      const location = reply.header("location");
      return new OpalProtocolError(
        ref,
        `OPAL answered ${ref.method} ${ref.path} with a redirect (${status}${
          location === undefined ? "" : ` to ${redactSecrets(location, secrets)}`
        }); check the OPAL address, e.g. http versus https`,
      );
    }
    return new OpalProtocolError(
      ref,
      `OPAL answered ${ref.method} ${ref.path} with an unexpected status ${status}`,
    );
  }

  /** Parses a 2xx JSON body, or throws {@link OpalProtocolError}. */
  #parse<T>({ ref, reply }: Exchange, schema: z.ZodType<T>): T {
    let json: unknown;
    try {
      json = JSON.parse(reply.text);
    } catch (e) {
      throw new OpalProtocolError(
        ref,
        `OPAL answered ${ref.method} ${ref.path} with a body that is not JSON`,
        { cause: e },
      );
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const where = parsed.error.issues.slice(0, 3)
        .map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
      throw new OpalProtocolError(
        ref,
        `OPAL answered ${ref.method} ${ref.path} with an unexpected body (${where})`,
      );
    }
    return parsed.data;
  }
}

function parseBaseUrl(baseUrl: string): URL {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`Cannot use OPAL address ${JSON.stringify(baseUrl)}: not a URL`);
  }
  const problem = url.protocol !== "http:" && url.protocol !== "https:"
    ? "must be http or https"
    : url.username !== "" || url.password !== ""
    ? "must not contain credentials"
    : url.search !== "" || url.hash !== ""
    ? "must not have a query or fragment"
    : undefined;
  if (problem !== undefined) {
    // The address may hold credentials, so only its origin-free shape is described.
    throw new TypeError(`Cannot use the OPAL address: ${problem}`);
  }
  return url;
}

/** OPAL's error DTO `{code, status, arguments}`, or empty fields when the body is empty or not one. */
function errorBody(reply: Reply): { status: string | undefined; arguments: string[] } {
  try {
    const parsed = ClientErrorBody.safeParse(JSON.parse(reply.text));
    if (parsed.success) {
      return {
        status: parsed.data.status,
        arguments: (parsed.data.arguments ?? []).map((a) =>
          (typeof a === "string" ? a : JSON.stringify(a)).slice(0, ARGUMENT_MAX)
        ),
      };
    }
  } catch {
    // an empty or non-JSON error body: only the status is known
  }
  return { status: undefined, arguments: [] };
}

function sameResource(
  existing: z.infer<typeof ResourceReference>,
  wanted: OpalResourceDefinition,
): boolean {
  return existing.provider === wanted.provider &&
    existing.factory === wanted.factory &&
    (existing.description ?? "") === wanted.description &&
    sameJson(existing.parameters, wanted.parameters) &&
    existing.credentials !== undefined &&
    sameJson(existing.credentials, wanted.credentials);
}

/** True when both strings are JSON documents with the same value (key order ignored). */
function sameJson(a: string, b: string): boolean {
  try {
    return canonicalJson(JSON.parse(a)) === canonicalJson(JSON.parse(b));
  } catch {
    return false;
  }
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).sort(([a], [b]) => compareNames(a, b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

/** The secret values inside a credentials JSON string (all its string values, and the string itself). */
function credentialSecrets(credentials: string): string[] {
  const secrets = [credentials];
  try {
    const parsed: unknown = JSON.parse(credentials);
    if (parsed !== null && typeof parsed === "object") {
      for (const [key, value] of Object.entries(parsed)) {
        if (key !== "username" && typeof value === "string") secrets.push(value);
      }
    }
  } catch {
    // not JSON: the whole string is the secret
  }
  return secrets;
}

function base64Utf8(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** The default transport: `fetch`, which verifies TLS; redirects are returned, not followed. */
async function fetchTransport(request: OutgoingRequest): Promise<Reply> {
  const init: RequestInit = {
    method: request.method,
    headers: request.headers,
    signal: request.signal,
    redirect: "manual",
  };
  if (request.body !== undefined) init.body = request.body;
  const response = await fetch(request.url, init);
  const text = await response.text();
  return {
    status: response.status,
    text,
    header: (name) => response.headers.get(name) ?? undefined,
  };
}

/** An https transport that accepts any server certificate; used only when `noSslVerify` is true. */
function unverifiedHttpsTransport(): Transport {
  const agent = new https.Agent({ rejectUnauthorized: false, keepAlive: false });
  return (request) =>
    new Promise<Reply>((resolve, reject) => {
      const headers: Record<string, string> = { ...request.headers };
      if (request.body !== undefined) {
        headers["content-length"] = String(new TextEncoder().encode(request.body).byteLength);
      }
      const outgoing = https.request(request.url, {
        method: request.method,
        headers,
        agent,
        rejectUnauthorized: false,
        signal: request.signal,
      }, (incoming) => {
        const chunks: Uint8Array[] = [];
        incoming.on("data", (chunk: Uint8Array) => chunks.push(chunk));
        incoming.on("error", reject);
        incoming.on("aborted", () => reject(new Error("the connection closed mid-reply")));
        incoming.on("end", () => {
          const text = new TextDecoder().decode(concatBytes(chunks));
          resolve({
            status: incoming.statusCode ?? 0,
            text,
            header: (name) => {
              const value = incoming.headers[name.toLowerCase()];
              return Array.isArray(value) ? value.join(", ") : value;
            },
          });
        });
      });
      outgoing.on("error", reject);
      if (request.body !== undefined) outgoing.write(request.body);
      outgoing.end();
    });
}

function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const total = chunks.reduce((sum, c) => sum + c.byteLength, 0);
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
