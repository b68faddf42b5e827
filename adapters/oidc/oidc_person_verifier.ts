/**
 * {@link PersonVerifier} for OpenID Connect access tokens in JWT form (Keycloak, Entra ID, any issuer
 * that publishes a discovery document and a JWKS), verified with `jose`.
 *
 * - Keys: `<issuer>/.well-known/openid-configuration`, then its `jwks_uri`, both over https (plain http
 *   only to a loopback host, for tests), each with a time limit ({@link OidcSettings.fetchTimeoutMs}) and a
 *   size cap ({@link OidcSettings.maxResponseBytes}), following no redirects. The discovery document must
 *   name exactly the configured issuer; it is read once per process.
 * - Cache: the JWKS is kept and fetched again when it is older than {@link JWKS_REFRESH_AFTER_MS}, or when
 *   a token names a key id it does not hold (a key rotated in at the issuer). Fetches are throttled: at
 *   most one every {@link OidcSettings.minRefetchIntervalMs} (30 s) after a success, one every
 *   {@link RETRY_AFTER_FAILURE_MS} after a failure, and concurrent requests share one fetch. So a flood of
 *   tokens with made-up key ids costs the issuer at most one request per 30 s.
 * - Fail closed: with nothing cached and the issuer unreachable, every token is refused with
 *   {@link IdentityProviderUnavailableError} (503). A JWKS fetched earlier keeps working while the issuer is
 *   down, for at most {@link JWKS_MAX_STALE_MS} (1 h) after it was last fetched: outages of the identity
 *   provider do not lock people out at once, and a key the issuer withdrew stops working at the latest
 *   an hour later (sooner once the issuer answers again).
 * - Tokens: only asymmetric algorithms ({@link ASYMMETRIC_ALGORITHMS}; never `none` nor HS*, so a public
 *   key can never be used as an HMAC secret); `iss`, `aud`, `exp` (required) and `nbf` checked with a
 *   clock skew of {@link OidcSettings.clockSkewSeconds}.
 * - Claims: the id (`sub` by default) must be a non-empty string; the roles (a dotted path,
 *   `realm_access.roles` by default) must be an array of strings; the name is the first of the name claims
 *   that is a non-empty string, else the id.
 *
 * Every refusal is a {@link PersonTokenRejectedError} whose `logDetail` says why; tokens are never logged.
 *
 * @module
 */
import {
  createLocalJWKSet,
  decodeProtectedHeader,
  errors,
  type JSONWebKeySet,
  type JWTPayload,
  jwtVerify,
} from "jose";
import {
  IdentityProviderUnavailableError,
  type Person,
  PersonTokenRejectedError,
  type PersonVerifier,
} from "../../ports/identity.ts";

/** The signature algorithms accepted: asymmetric only. */
export const ASYMMETRIC_ALGORITHMS: readonly string[] = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
];

/** A cached JWKS is fetched again when it is older than this (10 min), on the next token. */
export const JWKS_REFRESH_AFTER_MS = 10 * 60_000;

/** While the issuer cannot be reached, a cached JWKS is used for at most this long after its fetch (1 h). */
export const JWKS_MAX_STALE_MS = 60 * 60_000;

/** After a failed fetch, the next one is tried no sooner than this (5 s). */
export const RETRY_AFTER_FAILURE_MS = 5_000;

/** Tokens longer than this are refused unread (16 KiB). */
export const MAX_TOKEN_CHARS = 16 * 1024;

/** Defaults of the optional {@link OidcSettings}. */
export const OIDC_DEFAULTS = {
  rolesClaim: "realm_access.roles",
  idClaim: "sub",
  nameClaims: ["preferred_username", "email"] as readonly string[],
  clockSkewSeconds: 30,
  minRefetchIntervalMs: 30_000,
  fetchTimeoutMs: 5_000,
  maxResponseBytes: 256 * 1024,
} as const;

/** What an {@link OidcPersonVerifier} needs (`OIDC_*`, read by `apps/_shared/person_verifier_from_env.ts`). */
export interface OidcSettings {
  /** The issuer (`OIDC_ISSUER_URL`): https, or http to a loopback host. Tokens' `iss` must equal it. */
  readonly issuerUrl: string;
  /** The audience tokens must name in `aud` (`OIDC_AUDIENCE`). */
  readonly audience: string;
  /** Dotted path to the roles array (`OIDC_ROLES_CLAIM`). */
  readonly rolesClaim?: string;
  /** The claim holding the person's id (`OIDC_ID_CLAIM`). */
  readonly idClaim?: string;
  /** Claims tried in order for the display name (`OIDC_NAME_CLAIMS`). */
  readonly nameClaims?: readonly string[];
  /** Tolerance on `exp` and `nbf` (`OIDC_CLOCK_SKEW_SECONDS`). */
  readonly clockSkewSeconds?: number;
  /** Least time between two fetches of the keys after a successful one. */
  readonly minRefetchIntervalMs?: number;
  /** Time limit on each fetch of the discovery document or the JWKS. */
  readonly fetchTimeoutMs?: number;
  /** Largest discovery document or JWKS read. */
  readonly maxResponseBytes?: number;
  /** The clock, in ms since the epoch; for tests. */
  readonly now?: () => number;
}

/** Whether a URL may be fetched for keys: https, or plain http to a loopback host. */
export function isAllowedIdentityProviderUrl(url: URL): boolean {
  if (url.protocol === "https:") return true;
  return url.protocol === "http:" &&
    ["127.0.0.1", "localhost", "[::1]"].includes(url.hostname);
}

/** The discovery document's URL for an issuer. */
export function discoveryUrlOf(issuerUrl: string): URL {
  return new URL(issuerUrl.replace(/\/+$/, "") + "/.well-known/openid-configuration");
}

interface CachedKeys {
  readonly resolve: ReturnType<typeof createLocalJWKSet>;
  readonly fetchedAt: number;
}

/** Verifies people's OpenID Connect access tokens. See the module documentation. */
export class OidcPersonVerifier implements PersonVerifier {
  readonly #issuer: string;
  readonly #audience: string;
  readonly #rolesPath: readonly string[];
  readonly #rolesClaim: string;
  readonly #idClaim: string;
  readonly #nameClaims: readonly string[];
  readonly #skewSeconds: number;
  readonly #minRefetchMs: number;
  readonly #timeoutMs: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  #jwksUri: URL | undefined;
  #keys: CachedKeys | undefined;
  #lastAttempt: { at: number; failed: boolean } | undefined;
  #inflight: Promise<CachedKeys> | undefined;

  /** @throws {TypeError} The issuer URL is not a URL, or neither https nor loopback http. */
  constructor(settings: OidcSettings) {
    const issuerUrl = new URL(settings.issuerUrl);
    if (!isAllowedIdentityProviderUrl(issuerUrl)) {
      throw new TypeError(
        `Cannot use OIDC issuer "${settings.issuerUrl}": it must be https (plain http only to a loopback host)`,
      );
    }
    this.#issuer = settings.issuerUrl;
    this.#audience = settings.audience;
    this.#rolesClaim = settings.rolesClaim ?? OIDC_DEFAULTS.rolesClaim;
    this.#rolesPath = this.#rolesClaim.split(".");
    this.#idClaim = settings.idClaim ?? OIDC_DEFAULTS.idClaim;
    this.#nameClaims = settings.nameClaims ?? OIDC_DEFAULTS.nameClaims;
    this.#skewSeconds = settings.clockSkewSeconds ?? OIDC_DEFAULTS.clockSkewSeconds;
    this.#minRefetchMs = settings.minRefetchIntervalMs ?? OIDC_DEFAULTS.minRefetchIntervalMs;
    this.#timeoutMs = settings.fetchTimeoutMs ?? OIDC_DEFAULTS.fetchTimeoutMs;
    this.#maxBytes = settings.maxResponseBytes ?? OIDC_DEFAULTS.maxResponseBytes;
    this.#now = settings.now ?? Date.now;
  }

  async verify(token: string): Promise<Person> {
    if (token.length > MAX_TOKEN_CHARS) {
      throw new PersonTokenRejectedError(`token is longer than ${MAX_TOKEN_CHARS} characters`);
    }
    this.#checkAlgorithm(token);
    const keys = await this.#usableKeys();
    try {
      return this.#personOf(await this.#verifyWith(keys, token));
    } catch (e) {
      if (!(e instanceof errors.JWKSNoMatchingKey)) throw rejectionOf(e);
    }
    // A key id the cached JWKS does not hold: perhaps a key rotated in at the issuer since.
    const refreshed = await this.#keysForUnknownKeyId();
    if (refreshed === undefined && this.#lastAttempt?.failed === true) {
      throw new IdentityProviderUnavailableError(
        `no cached key matches ${keyIdOf(token)}, and the JWKS could not be fetched moments ago`,
      );
    }
    if (refreshed === undefined) {
      throw new PersonTokenRejectedError(
        `no key in the issuer's JWKS matches ${keyIdOf(token)}; the JWKS was fetched less than ` +
          `${this.#minRefetchMs / 1000} s ago, so it is not fetched again yet`,
      );
    }
    try {
      return this.#personOf(await this.#verifyWith(refreshed, token));
    } catch (e) {
      throw rejectionOf(e, token);
    }
  }

  /** Refuses a token whose header is unreadable or names an algorithm other than an asymmetric one. */
  #checkAlgorithm(token: string): void {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw new PersonTokenRejectedError("token is not a compact JWS with a readable header");
    }
    if (typeof alg !== "string" || !ASYMMETRIC_ALGORITHMS.includes(alg)) {
      throw new PersonTokenRejectedError(
        `token algorithm ${printable(alg)} is not accepted; only ${
          ASYMMETRIC_ALGORITHMS.join(", ")
        }`,
      );
    }
  }

  async #verifyWith(keys: CachedKeys, token: string): Promise<JWTPayload> {
    const { payload } = await jwtVerify(token, keys.resolve, {
      issuer: this.#issuer,
      audience: this.#audience,
      algorithms: [...ASYMMETRIC_ALGORITHMS],
      clockTolerance: this.#skewSeconds,
      requiredClaims: ["exp"],
      currentDate: new Date(this.#now()),
    });
    return payload;
  }

  #personOf(payload: JWTPayload): Person {
    const id = payload[this.#idClaim];
    if (typeof id !== "string" || id === "") {
      throw new PersonTokenRejectedError(
        `id claim "${this.#idClaim}" is ${id === undefined ? "missing" : "not a non-empty string"}`,
      );
    }
    const roles = claimAt(payload, this.#rolesPath);
    if (roles === undefined) {
      throw new PersonTokenRejectedError(`roles claim "${this.#rolesClaim}" is missing`);
    }
    if (!Array.isArray(roles) || !roles.every((role) => typeof role === "string")) {
      throw new PersonTokenRejectedError(
        `roles claim "${this.#rolesClaim}" is not an array of strings`,
      );
    }
    const name = this.#nameClaims.map((claim) => payload[claim])
      .find((value): value is string => typeof value === "string" && value !== "");
    return Object.freeze({
      id,
      issuer: this.#issuer,
      name: name ?? id,
      roles: Object.freeze([...new Set(roles as string[])]),
    });
  }

  /**
   * The keys to check a token with: the cache while fresh; else a fetch, falling back on a cache younger
   * than {@link JWKS_MAX_STALE_MS} if the fetch fails or is throttled.
   */
  async #usableKeys(): Promise<CachedKeys> {
    const cached = this.#keys;
    const now = this.#now();
    if (cached !== undefined && now - cached.fetchedAt < JWKS_REFRESH_AFTER_MS) return cached;
    try {
      const fetched = this.#mayFetch(now) ? await this.#fetchKeys() : undefined;
      if (fetched !== undefined) return fetched;
    } catch (e) {
      if (cached === undefined || now - cached.fetchedAt >= JWKS_MAX_STALE_MS) throw e;
      return cached;
    }
    if (cached !== undefined && now - cached.fetchedAt < JWKS_MAX_STALE_MS) return cached;
    throw new IdentityProviderUnavailableError(
      "no usable JWKS is cached and the last fetch failed less than " +
        `${RETRY_AFTER_FAILURE_MS / 1000} s ago`,
    );
  }

  /** A fresh JWKS after a token named an unknown key id, or `undefined` while fetches are throttled. */
  async #keysForUnknownKeyId(): Promise<CachedKeys | undefined> {
    if (!this.#mayFetch(this.#now())) return undefined;
    return await this.#fetchKeys();
  }

  /** Whether a fetch may start now (one in flight is always joined). */
  #mayFetch(now: number): boolean {
    if (this.#inflight !== undefined || this.#lastAttempt === undefined) return true;
    const wait = this.#lastAttempt.failed ? RETRY_AFTER_FAILURE_MS : this.#minRefetchMs;
    return now - this.#lastAttempt.at >= wait;
  }

  /** Fetches the JWKS (and first the discovery document), sharing a fetch already in flight. */
  #fetchKeys(): Promise<CachedKeys> {
    if (this.#inflight !== undefined) return this.#inflight;
    const attempt = { at: this.#now(), failed: false };
    this.#lastAttempt = attempt;
    this.#inflight = (async () => {
      try {
        const jwksUri = this.#jwksUri ?? await this.#discover();
        this.#jwksUri = jwksUri;
        const jwks = jwksOf(await this.#fetchJson(jwksUri, "JWKS"));
        const keys = { resolve: createLocalJWKSet(jwks), fetchedAt: this.#now() };
        this.#keys = keys;
        return keys;
      } catch (e) {
        attempt.failed = true;
        throw e;
      } finally {
        this.#inflight = undefined;
      }
    })();
    return this.#inflight;
  }

  async #discover(): Promise<URL> {
    const document = await this.#fetchJson(discoveryUrlOf(this.#issuer), "discovery document");
    if (typeof document !== "object" || document === null) {
      throw new IdentityProviderUnavailableError("the discovery document is not a JSON object");
    }
    const { issuer, jwks_uri: jwksUri } = document as Record<string, unknown>;
    if (issuer !== this.#issuer) {
      throw new IdentityProviderUnavailableError(
        `the discovery document names issuer ${printable(issuer)}, not the configured ` +
          `"${this.#issuer}" (OIDC_ISSUER_URL must be spelt exactly as the issuer spells itself)`,
      );
    }
    let url: URL;
    try {
      url = new URL(String(jwksUri));
    } catch {
      throw new IdentityProviderUnavailableError("the discovery document has no valid jwks_uri");
    }
    if (!isAllowedIdentityProviderUrl(url)) {
      throw new IdentityProviderUnavailableError(
        "the discovery document's jwks_uri is neither https nor loopback http",
      );
    }
    return url;
  }

  /** GETs JSON within the time limit and size cap, following no redirect. */
  async #fetchJson(url: URL, what: string): Promise<unknown> {
    const signal = AbortSignal.timeout(this.#timeoutMs);
    let text: string;
    try {
      const response = await fetch(url, {
        headers: { accept: "application/json" },
        redirect: "manual",
        signal,
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`answered HTTP ${response.status}`);
      }
      text = await readCapped(response, this.#maxBytes);
    } catch (e) {
      const why = signal.aborted
        ? `did not answer within ${this.#timeoutMs / 1000} s`
        : messageOf(e);
      throw new IdentityProviderUnavailableError(
        `cannot fetch the ${what} at ${url.origin}: ${why}`,
        {
          cause: e,
        },
      );
    }
    try {
      return JSON.parse(text);
    } catch {
      throw new IdentityProviderUnavailableError(`the ${what} at ${url.origin} is not JSON`);
    }
  }
}

/** Reads a body as text, failing once it passes `maxBytes`. */
async function readCapped(response: Response, maxBytes: number): Promise<string> {
  if (response.body === null) return "";
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      await response.body.cancel().catch(() => {});
      throw new Error(`sent more than ${maxBytes} bytes`);
    }
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return new TextDecoder().decode(bytes);
}

/** The signing keys of a JWKS document: symmetric keys and encryption keys are dropped. */
function jwksOf(document: unknown): JSONWebKeySet {
  const keys = (document as { keys?: unknown } | null)?.keys;
  if (!Array.isArray(keys)) {
    throw new IdentityProviderUnavailableError("the JWKS has no keys array");
  }
  return {
    keys: keys.filter((key) =>
      typeof key === "object" && key !== null && key.kty !== "oct" &&
      (key.use === undefined || key.use === "sig")
    ),
  };
}

/** The value at a dotted path in the claims, or `undefined`. */
function claimAt(payload: JWTPayload, path: readonly string[]): unknown {
  let value: unknown = payload;
  for (const step of path) {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return undefined;
    value = (value as Record<string, unknown>)[step];
  }
  return value;
}

/** Turns a `jose` failure into a refusal that says why (never the token). */
function rejectionOf(e: unknown, token?: string): Error {
  if (e instanceof PersonTokenRejectedError || e instanceof IdentityProviderUnavailableError) {
    return e;
  }
  if (e instanceof errors.JWTExpired) {
    return new PersonTokenRejectedError(`token expired (exp ${printable(e.payload.exp)})`);
  }
  if (e instanceof errors.JWTClaimValidationFailed) {
    return new PersonTokenRejectedError(`claim "${e.claim}" failed: ${e.reason} (${e.message})`);
  }
  if (e instanceof errors.JWKSNoMatchingKey) {
    return new PersonTokenRejectedError(
      `no key in the issuer's JWKS matches ${token === undefined ? "the token" : keyIdOf(token)}`,
    );
  }
  if (e instanceof errors.JWSSignatureVerificationFailed) {
    return new PersonTokenRejectedError("token signature does not verify");
  }
  if (e instanceof errors.JOSEError) {
    return new PersonTokenRejectedError(`token refused by jose: ${e.code}`);
  }
  return e instanceof Error ? e : new Error(String(e));
}

/** `kid "..."` of a token's header, printable, for the log. */
function keyIdOf(token: string): string {
  try {
    const kid = decodeProtectedHeader(token).kid;
    return kid === undefined ? "the token (it names no kid)" : `kid ${printable(kid)}`;
  } catch {
    return "the token";
  }
}

/** A value from a token or a document, safe and short enough to log. */
function printable(value: unknown): string {
  if (typeof value === "string") {
    return /^[A-Za-z0-9._:/+=-]{0,80}$/.test(value)
      ? `"${value}"`
      : `(a string of ${value.length} characters)`;
  }
  if (typeof value === "number" || typeof value === "boolean" || value === null) {
    return String(value);
  }
  return value === undefined ? "(none)" : `(a ${Array.isArray(value) ? "array" : typeof value})`;
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
