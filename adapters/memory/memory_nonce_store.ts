/**
 * A nonce store in one process's memory: enough for a single gateway replica. Several replicas must share
 * the release store's database instead (`SqliteNonceStore`, `PostgresNonceStore`).
 *
 * @module
 */
import {
  checkNonceStoreLimits,
  type NonceClaim,
  nonceExpiryMs,
  type NonceStore,
  NonceStoreFullError,
  type NonceStoreLimits,
  NonceStoreUnavailableError,
} from "../../ports/nonce_store.ts";

/** Nonces in a map, dropped once their window is over. */
export class MemoryNonceStore implements NonceStore {
  readonly #limits: NonceStoreLimits;
  /** `clientId \n nonce` → expiry (ms); insertion order is roughly expiry order. */
  #entries: Map<string, number> | undefined = new Map();

  /** @throws {RangeError} when the limits are not positive integers. */
  constructor(limits: NonceStoreLimits) {
    checkNonceStoreLimits(limits);
    this.#limits = limits;
  }

  /** How many entries are held (for tests). */
  get size(): number {
    return this.#entries?.size ?? 0;
  }

  /** {@inheritDoc NonceStore.claim} */
  claim(claim: NonceClaim, now: Date): Promise<boolean> {
    const entries = this.#entries;
    if (entries === undefined) {
      return Promise.reject(new NonceStoreUnavailableError({ logDetail: "the store is closed" }));
    }
    const nowMs = now.getTime();
    for (const [key, expiry] of entries) {
      if (expiry < nowMs) entries.delete(key);
    }
    const key = `${claim.clientId}\n${claim.nonce}`;
    if (entries.has(key)) return Promise.resolve(false);
    if (entries.size >= this.#limits.maxEntries) {
      return Promise.reject(new NonceStoreFullError(this.#limits.maxEntries));
    }
    entries.set(key, nonceExpiryMs(claim, this.#limits));
    return Promise.resolve(true);
  }

  /** {@inheritDoc NonceStore.close} */
  close(): Promise<void> {
    this.#entries = undefined;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
