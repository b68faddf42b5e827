/**
 * OAuth machine-to-machine tokens for a Databricks workspace (a service principal's client id and secret),
 * as the reference gets them (`cr8tor-contract.md` §5.0): `POST {workspace}/oidc/v1/token` with
 * `Authorization: Basic base64(client_id:client_secret)` and the form
 * `grant_type=client_credentials&scope=all-apis`.
 *
 * Unlike the reference, the reply's status is checked, the token is cached until shortly before it expires
 * (`expires_in`, one hour on Databricks) so a long extract survives a rollover, concurrent callers share
 * one request, and a token a server rejected can be dropped with {@link DatabricksTokenSource.invalidate}.
 * Only `https://` workspaces are accepted: the client secret and the tokens never travel in clear.
 * Getting a token is the service principal's login, so a failure is reported with a fixed sentence
 * (`SourceLoginRefusedError` when the endpoint refuses the client, `SourceConnectionError` otherwise);
 * the error's `logDetail` names the workspace and Databricks' error code, never the client id, the secret
 * or a token.
 *
 * @module
 */
import { redactSecrets } from "../../domain/redaction.ts";
import { causeChain } from "../shared/errors.ts";
import {
  SourceConnectionError,
  SourceLoginRefusedError,
  SourceUnavailableError,
} from "../../ports/source_database.ts";

/** How long before a token expires it is replaced, unless told otherwise: one minute. */
export const DEFAULT_TOKEN_REFRESH_MARGIN_MS = 60_000;

/** The lifetime assumed when a token reply has no usable `expires_in`: Databricks' one hour. */
const DEFAULT_TOKEN_LIFETIME_SECONDS = 3600;

/** Where the workspace is and which service principal to be. */
export interface DatabricksTokenOptions {
  /** The workspace, `https://host[:port]`. */
  readonly baseUrl: string;
  readonly clientId: string;
  /** Never appears in an error message. */
  readonly clientSecret: string;
  /** Gives up on one token request after this long, reply body included. */
  readonly timeoutMs: number;
  /** Extra certificate authorities (PEM) to trust for this workspace, besides the system's. */
  readonly caCertificates?: readonly string[];
  /** How long before expiry a cached token is replaced; default {@link DEFAULT_TOKEN_REFRESH_MARGIN_MS}. */
  readonly refreshMarginMs?: number;
  /** The clock, in milliseconds (for tests). */
  readonly now?: () => number;
}

/**
 * Checks a workspace URL and returns it without a trailing slash.
 *
 * @throws {TypeError} when it is not an `https://` URL, or carries credentials, a query or a fragment.
 */
export function databricksWorkspaceUrl(baseUrl: string): string {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    throw new TypeError(`Cannot use Databricks workspace URL ${JSON.stringify(baseUrl)}`);
  }
  if (url.protocol !== "https:") {
    throw new TypeError(
      `Cannot use Databricks workspace URL ${
        JSON.stringify(url.origin)
      }: it must be an https:// URL, so that secrets and tokens never travel in clear`,
    );
  }
  if (url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== "") {
    throw new TypeError(
      `Cannot use Databricks workspace URL ${
        JSON.stringify(url.origin)
      }: it must not carry credentials, a query or a fragment`,
    );
  }
  return url.href.replace(/\/+$/, "");
}

/**
 * An HTTP client that trusts `caCertificates` as well as the system's authorities, or `undefined` (the
 * default client) when there are none. The caller closes it.
 */
export function databricksHttpClient(
  caCertificates: readonly string[] | undefined,
): Deno.HttpClient | undefined {
  return caCertificates === undefined || caCertificates.length === 0
    ? undefined
    : Deno.createHttpClient({ caCerts: [...caCertificates] });
}

/**
 * Checks a timeout option.
 *
 * @throws {RangeError} when it is not a positive finite number.
 */
export function positiveTimeout(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`Cannot use ${name} ${value}: must be a positive number of milliseconds`);
  }
  return value;
}

/** Why a fetch failed, in words that carry no secret (the URL at most). */
export function fetchFailureReason(error: unknown, timeoutMs: number): string {
  if (error instanceof DOMException && error.name === "TimeoutError") {
    return `no complete reply within ${timeoutMs} ms`;
  }
  return causeChain(error);
}

interface CachedToken {
  readonly token: string;
  /** When the token is replaced: its expiry minus the margin. */
  readonly refreshAt: number;
}

/**
 * Gets and caches OAuth M2M access tokens for one workspace and service principal. Safe to share between
 * concurrent users of the workspace.
 */
export class DatabricksTokenSource implements Disposable {
  readonly #origin: string;
  readonly #tokenUrl: string;
  readonly #authorization: string;
  readonly #secrets: readonly string[];
  readonly #timeoutMs: number;
  readonly #marginMs: number;
  readonly #now: () => number;
  readonly #client: Deno.HttpClient | undefined;
  #cached: CachedToken | undefined;
  #inFlight: Promise<string> | undefined;
  #closed = false;

  /**
   * @throws {TypeError} when `baseUrl` is not an `https://` workspace URL, or the client id or secret
   *   is empty.
   * @throws {RangeError} when `timeoutMs` or `refreshMarginMs` is out of range.
   */
  constructor(options: DatabricksTokenOptions) {
    const base = databricksWorkspaceUrl(options.baseUrl);
    if (options.clientId === "") throw new TypeError("Cannot use an empty Databricks client id");
    if (options.clientSecret === "") {
      throw new TypeError("Cannot use an empty Databricks client secret");
    }
    this.#timeoutMs = positiveTimeout("Databricks token timeout", options.timeoutMs);
    const margin = options.refreshMarginMs ?? DEFAULT_TOKEN_REFRESH_MARGIN_MS;
    if (!Number.isFinite(margin) || margin < 0) {
      throw new RangeError(
        `Cannot use token refresh margin ${margin}: must be a non-negative number of milliseconds`,
      );
    }
    this.#marginMs = margin;
    this.#origin = new URL(base).origin;
    this.#tokenUrl = `${base}/oidc/v1/token`;
    const basic = base64Utf8(`${options.clientId}:${options.clientSecret}`);
    this.#authorization = `Basic ${basic}`;
    this.#secrets = [options.clientId, options.clientSecret, basic];
    this.#now = options.now ?? Date.now;
    this.#client = databricksHttpClient(options.caCertificates);
  }

  /**
   * Returns a token that is valid for at least the refresh margin (or half its lifetime, when that is
   * shorter), getting a new one when needed. Concurrent calls share one token request.
   *
   * @throws {SourceLoginRefusedError} when the token endpoint refuses the client (400, 401 or 403, e.g.
   *   401 `invalid_client`).
   * @throws {SourceConnectionError} when it cannot be reached, times out, fails otherwise or replies
   *   without `access_token`.
   * @throws {SourceUnavailableError} when the token source is closed.
   */
  token(): Promise<string> {
    if (this.#closed) {
      return Promise.reject(
        new SourceUnavailableError("Cannot get a Databricks token: the token source is closed"),
      );
    }
    const cached = this.#cached;
    if (cached !== undefined && this.#now() < cached.refreshAt) {
      return Promise.resolve(cached.token);
    }
    this.#inFlight ??= this.#request().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  /**
   * Forgets `token` if it is still the cached one (a server rejected it), so the next {@link token} call
   * gets a new one. A token that was already replaced is ignored.
   */
  invalidate(token: string): void {
    if (this.#cached?.token === token) this.#cached = undefined;
  }

  /** Forgets the cached token and closes the HTTP client; safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cached = undefined;
    this.#client?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  async #request(): Promise<string> {
    const requestedAt = this.#now();
    let status: number;
    let text: string;
    try {
      const response = await fetch(this.#tokenUrl, {
        method: "POST",
        headers: {
          "authorization": this.#authorization,
          "content-type": "application/x-www-form-urlencoded",
          "accept": "application/json",
        },
        body: "grant_type=client_credentials&scope=all-apis",
        signal: AbortSignal.timeout(this.#timeoutMs),
        ...(this.#client === undefined ? {} : { client: this.#client }),
      });
      status = response.status;
      text = await response.text();
    } catch (error) {
      throw this.#failure(fetchFailureReason(error, this.#timeoutMs), { cause: error });
    }
    const body = parseJson(text);
    if (status !== 200) {
      const code = stringField(body, "error");
      const description = stringField(body, "error_description");
      throw this.#failure(
        `HTTP ${status}${code === undefined ? "" : ` ${code}`}${
          description === undefined ? "" : ` (${description})`
        }`,
        { refused: REFUSED_STATUSES.has(status) },
      );
    }
    const token = stringField(body, "access_token");
    if (token === undefined || token === "") {
      throw this.#failure("the reply has no access_token");
    }
    const expiresIn = numberField(body, "expires_in");
    const lifetimeMs =
      (expiresIn !== undefined && expiresIn > 0 ? expiresIn : DEFAULT_TOKEN_LIFETIME_SECONDS) *
      1000;
    const refreshAt = requestedAt + lifetimeMs - Math.min(this.#marginMs, lifetimeMs / 2);
    if (!this.#closed) this.#cached = { token, refreshAt };
    return token;
  }

  /** A fixed-sentence error whose `logDetail` is `reason`, without the client's secrets. */
  #failure(
    reason: string,
    options: { cause?: unknown; refused?: boolean } = {},
  ): SourceUnavailableError {
    const logDetail = `Cannot get a Databricks OAuth token from ${this.#origin}: ${
      redactSecrets(reason, this.#secrets)
    }`;
    const errorOptions = "cause" in options ? { logDetail, cause: options.cause } : { logDetail };
    return options.refused === true
      ? new SourceLoginRefusedError(errorOptions)
      : new SourceConnectionError(errorOptions);
  }
}

/** Token endpoint statuses that refuse the client rather than fail. */
const REFUSED_STATUSES: ReadonlySet<number> = new Set([400, 401, 403]);

function base64Utf8(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function stringField(body: unknown, key: string): string | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const value = (body as Record<string, unknown>)[key];
  return typeof value === "string" ? value : undefined;
}

function numberField(body: unknown, key: string): number | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const value = (body as Record<string, unknown>)[key];
  return typeof value === "number" && Number.isFinite(value) ? value : undefined;
}
