/**
 * One lock per project, so two requests for the same project never interleave. Requests for different
 * projects run in parallel.
 *
 * @module
 */

/** Serialises work per key. */
export class ProjectLocks {
  readonly #tails = new Map<string, Promise<unknown>>();

  /** Runs `work` once every earlier work for the same key has settled. */
  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const current = previous.then(work, work);
    const tail = current.catch(() => {});
    this.#tails.set(key, tail);
    try {
      return await current;
    } finally {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    }
  }

  /** How many keys have work queued or running. */
  get busyKeys(): number {
    return this.#tails.size;
  }
}
