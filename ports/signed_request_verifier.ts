/**
 * The port for authenticating a signed request (the data API's HAWK, `docs/data-api.md`): who sent it,
 * checked against a MAC over the method, resource, host, port, timestamp and nonce, with the nonce
 * remembered; and the signature the reply carries back so that the client can check it came from this
 * server unchanged.
 *
 * @module
 */
import { AppError, type AppErrorOptions } from "../domain/errors.ts";

/** A request as the verifier sees it. */
export interface SignedRequest {
  readonly method: string;
  /** The path and query string exactly as the client sent them. */
  readonly resource: string;
  /** The host and port the client addressed (from the `Host` header). */
  readonly host: string;
  readonly port: number;
  /** The `Authorization` header, if any. */
  readonly authorization: string | undefined;
  /** The request's `Content-Type` (`""` when none). */
  readonly contentType: string;
  /** Whether the request carries a body: its payload hash is then required in the signature. */
  readonly hasBody: boolean;
}

/** A request whose signature checked out. */
export interface VerifiedRequest {
  /** The client the request authenticated as. */
  readonly clientId: string;
  /**
   * Checks the request body against the payload hash the client signed.
   *
   * @throws {RequestNotAuthenticatedError} when it does not match.
   */
  checkBody(body: Uint8Array): void;
  /**
   * The `Server-Authorization` header for a reply of exactly these bytes and content type, or of the
   * bytes whose payload hash (as the scheme computes it for this content type) is given: a relayed reply
   * whose sender hashed it.
   */
  replyAuthorization(
    body: Uint8Array | { readonly payloadHash: string },
    contentType: string,
  ): string;
}

/** Authenticates signed requests. */
export interface SignedRequestVerifier {
  /**
   * Checks a request's signature, its timestamp against `now`, and that its nonce is new.
   *
   * @throws {RequestNotAuthenticatedError} when it is not authenticated, for any reason; an unknown
   *   client and a wrong MAC are refused alike.
   * @throws {NonceStoreFullError} or {NonceStoreUnavailableError} (`ports/nonce_store.ts`) when the nonce
   *   cannot be checked; nothing is served then.
   */
  verify(request: SignedRequest, now: Date): Promise<VerifiedRequest>;
}

/** Why a request was not authenticated, as far as the client may be told. */
export type NotAuthenticatedReason =
  | "unauthenticated"
  | "stale_timestamp"
  | "replayed_nonce"
  | "payload_hash_missing"
  | "payload_hash_mismatch";

/**
 * A request that is not authenticated (to be a 401 with `WWW-Authenticate: {challenge}`). Its message
 * never says whether a client exists.
 */
export class RequestNotAuthenticatedError extends AppError {
  readonly code = "unauthorized";

  constructor(
    readonly reason: NotAuthenticatedReason,
    /** The `WWW-Authenticate` header: `Hawk`, or for a stale timestamp the server's signed time. */
    readonly challenge: string,
    options?: AppErrorOptions,
  ) {
    super(NOT_AUTHENTICATED_DETAILS[reason], options);
  }
}

const NOT_AUTHENTICATED_DETAILS: Record<NotAuthenticatedReason, string> = {
  unauthenticated:
    "Cannot authenticate the request: send a valid HAWK Authorization header (SHA-256) for a known client",
  stale_timestamp:
    "Cannot authenticate the request: its timestamp is more than 60 seconds from the server's clock; WWW-Authenticate carries the server's signed time",
  replayed_nonce: "Cannot authenticate the request: its nonce was already used; sign it again",
  payload_hash_missing:
    "Cannot authenticate the request: it has a body, so its signature must include the payload hash",
  payload_hash_mismatch:
    "Cannot authenticate the request: the body does not match the payload hash it was signed with",
};
