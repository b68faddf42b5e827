/**
 * HAWK request authentication through the `hawk` npm package (`docs/data-api.md`): SHA-256 MACs only,
 * the payload hash required on any request with a body, nonces remembered in a {@link NonceStore}, a
 * 60 s timestamp skew, and a signed `Server-Authorization` (with the hash of the exact reply bytes) for
 * every reply to an authenticated request.
 *
 * An unknown client id is checked against a random key, so it is refused exactly as a wrong MAC is, after
 * the same work.
 *
 * @module
 */
import { createHash, randomBytes } from "node:crypto";
import hawkModule from "hawk";
import { type NonceStore } from "../../ports/nonce_store.ts";
import {
  type NotAuthenticatedReason,
  RequestNotAuthenticatedError,
  type SignedRequest,
  type SignedRequestVerifier,
  type VerifiedRequest,
} from "../../ports/signed_request_verifier.ts";

/** The permitted clock skew, either way, in seconds. */
export const HAWK_SKEW_SECONDS = 60;

/** The only MAC algorithm accepted. */
export const HAWK_ALGORITHM = "sha256";

interface HawkCredentials {
  readonly id: string;
  readonly key: string;
  readonly algorithm: string;
}

interface HawkArtifacts {
  readonly hash?: string | undefined;
  readonly [name: string]: unknown;
}

/** The parts of the untyped `hawk` module used here. */
interface HawkServer {
  authenticate(
    request: Record<string, unknown>,
    credentials: (id: string) => Promise<HawkCredentials>,
    options: Record<string, unknown>,
  ): Promise<{ credentials: HawkCredentials; artifacts: HawkArtifacts }>;
  header(
    credentials: HawkCredentials,
    artifacts: HawkArtifacts,
    options: { hash: string },
  ): string;
}

interface HawkCrypto {
  initializePayloadHash(algorithm: string, contentType: string): ReturnType<typeof createHash>;
  finalizePayloadHash(hash: ReturnType<typeof createHash>): string;
}

const hawk = hawkModule as unknown as { server: HawkServer; crypto: HawkCrypto };

/** What the verifier needs. */
export interface HawkRequestVerifierOptions {
  /** Each client's HAWK key, by client id. */
  readonly keys: ReadonlyMap<string, string>;
  /** Where accepted nonces are remembered (its window should be {@link HAWK_SKEW_SECONDS} or more). */
  readonly nonces: NonceStore;
}

/** A Boom error as `hawk` throws it. */
interface BoomLike {
  readonly message: string;
  readonly output?: { readonly headers?: Record<string, string> };
  readonly credentials?: unknown;
}

/**
 * The payload hash of `body` (its parts in order) as HAWK defines it: over the bytes, with the content
 * type's media type.
 */
export function hawkPayloadHash(
  body: Uint8Array | readonly Uint8Array[],
  contentType: string,
): string {
  const hash = hawk.crypto.initializePayloadHash(HAWK_ALGORITHM, contentType);
  for (const part of body instanceof Uint8Array ? [body] : body) hash.update(part);
  return hawk.crypto.finalizePayloadHash(hash);
}

/** Authenticates HAWK requests for a fixed set of clients. */
export class HawkRequestVerifier implements SignedRequestVerifier {
  readonly #keys: ReadonlyMap<string, string>;
  readonly #nonces: NonceStore;
  /** The key an unknown id is checked against: random, never matching. */
  readonly #decoy = randomBytes(32).toString("base64url");

  constructor(options: HawkRequestVerifierOptions) {
    this.#keys = options.keys;
    this.#nonces = options.nonces;
  }

  /** {@inheritDoc SignedRequestVerifier.verify} */
  async verify(request: SignedRequest, now: Date): Promise<VerifiedRequest> {
    let nonceError: unknown;
    let replayed = false;
    let clientId = "";
    const offset = now.getTime() - Date.now();
    const lookup = (id: string): Promise<HawkCredentials> => {
      const key = this.#keys.get(id);
      clientId = key === undefined ? "" : id;
      return Promise.resolve({
        id: key === undefined ? "" : id,
        key: key ?? this.#decoy,
        algorithm: HAWK_ALGORITHM,
      });
    };
    let result: { credentials: HawkCredentials; artifacts: HawkArtifacts };
    try {
      result = await hawk.server.authenticate(
        {
          method: request.method,
          url: request.resource,
          host: request.host,
          port: request.port,
          authorization: request.authorization,
          contentType: request.contentType,
        },
        lookup,
        {
          timestampSkewSec: HAWK_SKEW_SECONDS,
          localtimeOffsetMsec: offset,
          nonceFunc: async (_key: string, nonce: string, ts: string) => {
            const timestampSeconds = Number(ts);
            // A stale request is refused next (by its timestamp): its nonce need not be kept, and a
            // far-future timestamp must not hold an entry for long.
            if (Math.abs(timestampSeconds * 1000 - now.getTime()) > HAWK_SKEW_SECONDS * 1000) {
              return;
            }
            try {
              const fresh = await this.#nonces.claim(
                { clientId, nonce, timestampSeconds },
                now,
              );
              if (!fresh) replayed = true;
            } catch (e) {
              nonceError = e;
            }
            if (replayed || nonceError !== undefined) throw new Error("nonce refused");
          },
        },
      );
    } catch (e) {
      if (nonceError !== undefined) throw nonceError;
      throw notAuthenticated(e, replayed);
    }
    const { credentials, artifacts } = result;
    if (credentials.id === "") {
      // Unreachable: the decoy key never matches a MAC. Refuse all the same.
      throw new RequestNotAuthenticatedError("unauthenticated", "Hawk");
    }
    if (request.hasBody && !artifacts.hash) {
      throw new RequestNotAuthenticatedError("payload_hash_missing", "Hawk");
    }
    return {
      clientId: credentials.id,
      checkBody(body) {
        const expected = artifacts.hash;
        if (
          expected === undefined || !sameText(hawkPayloadHash(body, request.contentType), expected)
        ) {
          throw new RequestNotAuthenticatedError("payload_hash_mismatch", "Hawk");
        }
      },
      replyAuthorization(body, contentType) {
        return hawk.server.header(credentials, artifacts, {
          hash: body instanceof Uint8Array ? hawkPayloadHash(body, contentType) : body.payloadHash,
        });
      },
    };
  }
}

/** Compares two strings without an early exit. */
function sameText(a: string, b: string): boolean {
  const x = createHash("sha256").update(a).digest();
  const y = createHash("sha256").update(b).digest();
  return x.equals(y);
}

/** The refusal for an error `hawk` threw. */
function notAuthenticated(e: unknown, replayed: boolean): RequestNotAuthenticatedError {
  const boom = e as BoomLike;
  const message = typeof boom?.message === "string" ? boom.message : "";
  const reasons: Record<string, NotAuthenticatedReason> = {
    "Stale timestamp": "stale_timestamp",
    "Missing required payload hash": "payload_hash_missing",
    "Bad payload hash": "payload_hash_mismatch",
  };
  const reason: NotAuthenticatedReason = replayed
    ? "replayed_nonce"
    : reasons[message] ?? "unauthenticated";
  const challenge = reason === "stale_timestamp"
    ? boom.output?.headers?.["WWW-Authenticate"] ?? "Hawk"
    : "Hawk";
  return new RequestNotAuthenticatedError(reason, challenge, { cause: e });
}
