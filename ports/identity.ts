/**
 * The port for who a person is: a bearer token (an OpenID Connect access token) turned into a
 * {@link Person}, or refused. Machines (the CLI) keep their service API key in `x-api-key`; a person's
 * token is never a key and a key never a person's token (`apps/_shared/person_auth.ts`).
 *
 * The adapter is `adapters/oidc/oidc_person_verifier.ts`; `docs/security.md` ("People's tokens") says what
 * it checks.
 *
 * @module
 */
import { AppError, type AppErrorOptions } from "../domain/errors.ts";

/** A signed-in person, as their identity provider vouches for them. */
export interface Person {
  /** Stable id within the issuer (`OIDC_ID_CLAIM`, `sub` by default). Unique only with {@link issuer}. */
  readonly id: string;
  /** The issuer that signed the token (its `iss`), exactly as configured. */
  readonly issuer: string;
  /** Display name (the first of `OIDC_NAME_CLAIMS` present, else the id). Never used for decisions. */
  readonly name: string;
  /** The roles the token grants (`OIDC_ROLES_CLAIM`), without duplicates, in the token's order. */
  readonly roles: readonly string[];
}

/** Checks a person's bearer token. */
export interface PersonVerifier {
  /**
   * Verifies a token's signature (asymmetric algorithms only), issuer, audience and lifetime, and reads
   * the person from its claims.
   *
   * @param token The bearer token, without the `Bearer ` prefix.
   * @returns The person the token names.
   * @throws {PersonTokenRejectedError} The token is not acceptable (the reason is in `logDetail`).
   * @throws {IdentityProviderUnavailableError} The issuer's keys cannot be had, so no token can be checked.
   */
  verify(token: string): Promise<Person>;
}

/**
 * A person's token was refused: missing, malformed, badly signed, expired, for another issuer or audience,
 * or without the claims a person needs. The message is one fixed sentence and never echoes the token; why
 * it was refused is in `logDetail`, for the service log only. Answered 401 with
 * `WWW-Authenticate: Bearer error="invalid_token"`.
 */
export class PersonTokenRejectedError extends AppError {
  readonly code = "invalid_token";

  /** @param reason Why, for the service log only: never the token itself. */
  constructor(reason: string, options?: ErrorOptions) {
    super("The bearer token is missing or is not a valid token of a person for this service", {
      ...options,
      logDetail: reason,
    });
  }
}

/**
 * The identity provider's discovery document or keys cannot be fetched and none are cached that may still
 * be used: no token can be checked, so none is accepted (fail closed). Answered 503.
 */
export class IdentityProviderUnavailableError extends AppError {
  readonly code = "identity_provider_unavailable";

  /** @param reason What failed, for the service log only. */
  constructor(reason: string, options?: Omit<AppErrorOptions, "logDetail">) {
    super("The identity provider cannot be reached to check the token; try again later", {
      ...options,
      logDetail: reason,
    });
  }
}
