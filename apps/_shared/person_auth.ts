/**
 * How a request proves who sent it. Two credentials, never interchangeable:
 *
 * - a machine (the CLI, the gateway calling a sub-service) sends the service API key in `x-api-key`,
 *   checked by `createServiceApp`; an `Authorization` header is never read as a key;
 * - a person sends an OpenID Connect access token as `Authorization: Bearer <jwt>`, checked by
 *   {@link requirePerson} with a {@link PersonVerifier}; a request that carries an `x-api-key` is refused
 *   there, so a key is never taken for a person.
 *
 * A service says which routes take which credential with `ServiceOptions.people`
 * (`credentialFor`); every other route takes the key only.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import type { Person, PersonVerifier } from "../../ports/identity.ts";
import { PersonTokenRejectedError } from "../../ports/identity.ts";

/** The credential a route takes. */
export type Credential = "key" | "person" | "key_or_person";

/**
 * People's sign-in for a service (`ServiceOptions.people`): the verifier, and which routes take a
 * person's token (`person`), either credential (`key_or_person`: the key when `x-api-key` is sent, else a
 * person's token), or the key only (`key`, what every route takes without this option).
 */
export interface PeopleAuthentication {
  readonly verifier: PersonVerifier;
  /**
   * The credential the request's route takes, from `c.req.method` and `c.req.path` (routes are not yet
   * matched when it is called, so `c.req.param()` is empty).
   */
  readonly credentialFor: (c: Context) => Credential;
}

const PERSON_KEY = "person";

/** `Authorization: Bearer <token>` (the scheme in any case), or `undefined` when absent or of another form. */
export function bearerTokenOf(c: Context): string | undefined {
  const match = /^Bearer +([A-Za-z0-9._~+/=-]+)\s*$/i.exec(c.req.header("authorization") ?? "");
  return match?.[1];
}

/**
 * Middleware admitting only a person: a valid `Authorization: Bearer` token and no `x-api-key`. Sets the
 * person on the context ({@link personOf}). Refusals are thrown ({@link PersonTokenRejectedError}, 401 with
 * `WWW-Authenticate`; `IdentityProviderUnavailableError`, 503), so the service's error handler answers and
 * logs why (`logDetail`), never the token.
 */
export function requirePerson(verifier: PersonVerifier): MiddlewareHandler {
  return async function requirePerson(c, next) {
    if (c.req.header("x-api-key") !== undefined) {
      throw new PersonTokenRejectedError(
        "the request carries an x-api-key header, but the route takes a person's token only",
      );
    }
    const token = bearerTokenOf(c);
    if (token === undefined) {
      throw new PersonTokenRejectedError(
        c.req.header("authorization") === undefined
          ? "no Authorization header"
          : "the Authorization header is not of the form Bearer <token>",
      );
    }
    c.set(PERSON_KEY as never, await verifier.verify(token) as never);
    await next();
  };
}

/** The person {@link requirePerson} admitted, or `undefined` when the request came with the key. */
export function personOf(c: Context): Person | undefined {
  return c.get(PERSON_KEY as never) as Person | undefined;
}
