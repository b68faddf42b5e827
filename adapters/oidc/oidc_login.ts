/**
 * Signing people in to the dashboard with the OpenID Connect authorization code flow, PKCE (S256),
 * `state` and `nonce`:
 *
 * - {@link OidcLogin.begin} makes a fresh `state`, `nonce` and PKCE verifier (32 random bytes each) and the
 *   authorization URL from the issuer's discovery document (`authorization_endpoint`);
 * - {@link OidcLogin.finish} exchanges the code at the `token_endpoint` (with the client secret in HTTP
 *   Basic for a confidential client, the client id alone for a public one, and the PKCE verifier), then
 *   verifies the returned ID token with {@link OidcPersonVerifier} (the same checks as people's bearer
 *   tokens: asymmetric signature from the issuer's JWKS, `iss`, `exp`, `nbf`, the same id, name and roles
 *   claims) with the client id as the audience, and checks its `nonce`.
 *
 * The discovery document is fetched over https (plain http only to a loopback host), with a time limit,
 * and must name exactly the configured issuer. Refusals are {@link PersonTokenRejectedError} (the reason in
 * `logDetail`, never a token or code) or {@link IdentityProviderUnavailableError}.
 *
 * @module
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { decodeJwt } from "jose";
import {
  IdentityProviderUnavailableError,
  type Person,
  PersonTokenRejectedError,
} from "../../ports/identity.ts";
import {
  discoveryUrlOf,
  isAllowedIdentityProviderUrl,
  OIDC_DEFAULTS,
  OidcPersonVerifier,
} from "./oidc_person_verifier.ts";

/** What an {@link OidcLogin} needs (`OIDC_*` and `UI_OIDC_*`). */
export interface OidcLoginSettings {
  /** The issuer (`OIDC_ISSUER_URL`). */
  readonly issuerUrl: string;
  /** The dashboard's client id at the issuer (`UI_OIDC_CLIENT_ID`); the ID token's audience. */
  readonly clientId: string;
  /** The client secret (`UI_OIDC_CLIENT_SECRET_NAME` in the secret store); absent for a public client. */
  readonly clientSecret?: string | undefined;
  /** Where the issuer sends the browser back (`${UI_BASE_URL}/ui/callback`). */
  readonly redirectUri: string;
  readonly rolesClaim?: string;
  readonly idClaim?: string;
  readonly nameClaims?: readonly string[];
  readonly clockSkewSeconds?: number;
  /** Time limit on each call to the issuer. */
  readonly fetchTimeoutMs?: number;
}

/** What the browser's sign-in must bring back: kept on the server between {@link OidcLogin.begin} and finish. */
export interface PendingLogin {
  readonly state: string;
  readonly nonce: string;
  readonly codeVerifier: string;
}

/** A random URL-safe string of 32 bytes. */
export function randomToken(): string {
  return randomBytes(32).toString("base64url");
}

/** Whether two strings are equal, compared in constant time. */
export function sameSecret(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

interface Endpoints {
  readonly authorization: URL;
  readonly token: URL;
}

/** The authorization code flow for one client. See the module documentation. */
export class OidcLogin {
  readonly #settings: OidcLoginSettings;
  readonly #idTokens: OidcPersonVerifier;
  readonly #timeoutMs: number;
  #endpoints: Promise<Endpoints> | undefined;

  constructor(settings: OidcLoginSettings) {
    this.#settings = settings;
    this.#timeoutMs = settings.fetchTimeoutMs ?? OIDC_DEFAULTS.fetchTimeoutMs;
    this.#idTokens = new OidcPersonVerifier({
      issuerUrl: settings.issuerUrl,
      audience: settings.clientId,
      ...(settings.rolesClaim === undefined ? {} : { rolesClaim: settings.rolesClaim }),
      ...(settings.idClaim === undefined ? {} : { idClaim: settings.idClaim }),
      ...(settings.nameClaims === undefined ? {} : { nameClaims: settings.nameClaims }),
      ...(settings.clockSkewSeconds === undefined
        ? {}
        : { clockSkewSeconds: settings.clockSkewSeconds }),
    });
  }

  /**
   * Starts a sign-in: the URL to send the browser to, and what to keep until it comes back.
   *
   * @throws {IdentityProviderUnavailableError} The discovery document cannot be had.
   */
  async begin(): Promise<{ url: string; pending: PendingLogin }> {
    const endpoints = await this.#discover();
    const pending = { state: randomToken(), nonce: randomToken(), codeVerifier: randomToken() };
    const url = new URL(endpoints.authorization);
    url.search = new URLSearchParams({
      response_type: "code",
      client_id: this.#settings.clientId,
      redirect_uri: this.#settings.redirectUri,
      scope: "openid profile",
      state: pending.state,
      nonce: pending.nonce,
      code_challenge: createHash("sha256").update(pending.codeVerifier).digest("base64url"),
      code_challenge_method: "S256",
    }).toString();
    return { url: url.toString(), pending };
  }

  /**
   * Ends a sign-in: exchanges `code` and returns the person its ID token names. The caller has checked
   * that the callback's `state` is `pending.state`.
   *
   * @throws {PersonTokenRejectedError} The issuer refused the code, or the ID token is not acceptable.
   * @throws {IdentityProviderUnavailableError} The issuer cannot be reached.
   */
  async finish(code: string, pending: PendingLogin): Promise<Person> {
    const endpoints = await this.#discover();
    const form = new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: this.#settings.redirectUri,
      code_verifier: pending.codeVerifier,
    });
    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
    };
    const secret = this.#settings.clientSecret;
    if (secret === undefined) {
      form.set("client_id", this.#settings.clientId);
    } else {
      const id = encodeURIComponent(this.#settings.clientId);
      headers.authorization = "Basic " + btoa(`${id}:${encodeURIComponent(secret)}`);
    }
    let response: Response;
    try {
      response = await fetch(endpoints.token, {
        method: "POST",
        headers,
        body: form,
        redirect: "manual",
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
    } catch (error) {
      throw new IdentityProviderUnavailableError(
        `cannot reach the token endpoint: ${error instanceof Error ? error.name : "error"}`,
      );
    }
    const body = await response.json().catch(() => undefined) as
      | Record<string, unknown>
      | undefined;
    if (response.status >= 500) {
      throw new IdentityProviderUnavailableError(`the token endpoint answered ${response.status}`);
    }
    if (response.status !== 200 || typeof body?.id_token !== "string") {
      const error = typeof body?.error === "string" ? body.error.slice(0, 100) : "no error code";
      throw new PersonTokenRejectedError(
        `the token endpoint answered ${response.status} without an ID token (${error})`,
      );
    }
    const person = await this.#idTokens.verify(body.id_token);
    const nonce = decodeJwt(body.id_token).nonce;
    if (typeof nonce !== "string" || !sameSecret(nonce, pending.nonce)) {
      throw new PersonTokenRejectedError("the ID token's nonce is not the one sent");
    }
    return person;
  }

  /** The issuer's endpoints, from its discovery document (fetched once; again after a failure). */
  #discover(): Promise<Endpoints> {
    this.#endpoints ??= this.#fetchEndpoints().catch((error) => {
      this.#endpoints = undefined;
      throw error;
    });
    return this.#endpoints;
  }

  async #fetchEndpoints(): Promise<Endpoints> {
    const issuer = this.#settings.issuerUrl;
    let document: Record<string, unknown>;
    try {
      const response = await fetch(discoveryUrlOf(issuer), {
        redirect: "manual",
        signal: AbortSignal.timeout(this.#timeoutMs),
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`answered ${response.status}`);
      }
      document = await response.json();
    } catch (error) {
      throw new IdentityProviderUnavailableError(
        `cannot read the discovery document: ${error instanceof Error ? error.message : "error"}`,
      );
    }
    if (document.issuer !== issuer) {
      throw new IdentityProviderUnavailableError("the discovery document names another issuer");
    }
    return {
      authorization: endpointOf(document, "authorization_endpoint"),
      token: endpointOf(document, "token_endpoint"),
    };
  }
}

function endpointOf(document: Record<string, unknown>, field: string): URL {
  const value = document[field];
  if (typeof value !== "string" || !URL.canParse(value)) {
    throw new IdentityProviderUnavailableError(`the discovery document has no ${field}`);
  }
  const url = new URL(value);
  if (!isAllowedIdentityProviderUrl(url)) {
    throw new IdentityProviderUnavailableError(`the discovery document's ${field} is not https`);
  }
  return url;
}
