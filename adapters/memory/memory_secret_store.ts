/**
 * An in-memory secret store for tests and demos. Do not use it in production.
 *
 * @module
 */
import { isSafeSecretName } from "../../domain/names.ts";
import {
  InvalidSecretNameError,
  SecretNotFoundError,
  type SecretStore,
} from "../../ports/secret_store.ts";

/** Holds secrets in a map and records which names were asked for. */
export class MemorySecretStore implements SecretStore {
  readonly #values: Map<string, string>;
  readonly #requested: string[] = [];

  constructor(values: Record<string, string> = {}) {
    this.#values = new Map(Object.entries(values));
  }

  /** Every name passed to {@link get}, in order, including refused ones. */
  get requested(): readonly string[] {
    return this.#requested;
  }

  get(name: string): Promise<string> {
    this.#requested.push(name);
    if (!isSafeSecretName(name)) return Promise.reject(new InvalidSecretNameError(name));
    const value = this.#values.get(name)?.trim();
    if (value === undefined || value === "") return Promise.reject(new SecretNotFoundError(name));
    return Promise.resolve(value);
  }
}
