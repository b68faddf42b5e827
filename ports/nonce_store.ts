/**
 * The port for where the data API (`docs/data-api.md`) remembers the HAWK nonces it has accepted, so that
 * a replayed request is refused: in memory for one process, or in the release store's database (SQLite
 * or PostgreSQL) when several replicas share it. Bounded: an entry is kept only while a request carrying
 * it could still pass the timestamp check, and the store holds at most a fixed number of entries. Every
 * adapter passes `tests/contracts/nonce_store_contract.ts`.
 *
 * @module
 */
import { AppError, type AppErrorOptions } from "../domain/errors.ts";

/** One nonce a client sent, with the request's timestamp. */
export interface NonceClaim {
  /** The client the request authenticated as. */
  readonly clientId: string;
  /** The request's nonce, as the client sent it. */
  readonly nonce: string;
  /** The request's timestamp (`ts`), in seconds since the epoch. */
  readonly timestampSeconds: number;
}

/** How long entries live and how many there may be. */
export interface NonceStoreLimits {
  /**
   * The timestamp skew window, in seconds: an entry is kept until `timestampSeconds + windowSeconds`,
   * after which a request carrying it fails the timestamp check anyway.
   */
  readonly windowSeconds: number;
  /** The most entries kept at once; a claim beyond it is refused with {@link NonceStoreFullError}. */
  readonly maxEntries: number;
}

/** The default cap on entries: far above what 60 s of paging by every client needs. */
export const DEFAULT_MAX_NONCES = 100_000;

/** Remembers accepted nonces. Every method may reject with {@link NonceStoreUnavailableError}. */
export interface NonceStore extends AsyncDisposable {
  /**
   * Records a nonce unless this client already used it within the window. Atomic across every instance
   * sharing the storage: of two concurrent claims of one nonce by one client, exactly one is first. Drops
   * the entries whose window is over (before `now`).
   *
   * @param claim the client, nonce and request timestamp.
   * @param now the time now.
   * @returns `true` when the nonce is new (now recorded), `false` when it was already used (a replay).
   * @throws {NonceStoreFullError} when the store already holds `maxEntries` live entries; nothing is
   *   recorded.
   */
  claim(claim: NonceClaim, now: Date): Promise<boolean>;

  /** Releases the storage. Idempotent. */
  close(): Promise<void>;
}

/** The nonce store holds as many live entries as it may (to be a 503: try again shortly). */
export class NonceStoreFullError extends AppError {
  readonly code = "nonce_store_full";

  constructor(maxEntries: number) {
    super(
      `Cannot accept the request now: ${maxEntries} recent requests are being remembered; try again shortly`,
    );
  }
}

/** The nonce store cannot be read or written (to be a 503). */
export class NonceStoreUnavailableError extends AppError {
  readonly code = "nonce_store_unavailable";

  constructor(options?: AppErrorOptions) {
    super("The nonce store is unavailable", options);
  }
}

/** When an entry of `claim` stops mattering: its timestamp plus the window, in milliseconds. */
export function nonceExpiryMs(claim: NonceClaim, limits: NonceStoreLimits): number {
  return (claim.timestampSeconds + limits.windowSeconds) * 1000;
}

/**
 * Checks limits given to an adapter.
 *
 * @throws {RangeError} when the window or the cap is not a positive integer.
 */
export function checkNonceStoreLimits(limits: NonceStoreLimits): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`Cannot use ${name} ${value}: give a positive integer`);
    }
  }
}
