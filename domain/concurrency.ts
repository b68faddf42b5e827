/**
 * Running work with a concurrency limit.
 *
 * @module
 */

/**
 * Calls `task` for every item, at most `limit` at a time, and resolves with the results in item order. The
 * first failure rejects the whole call once running tasks have settled; no new task starts after it.
 */
export async function mapConcurrent<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  let failure: { error: unknown } | undefined;
  async function worker(): Promise<void> {
    while (failure === undefined && next < items.length) {
      const index = next++;
      try {
        results[index] = await task(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  }
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure !== undefined) throw failure.error;
  return results;
}

/** Hands out turns one at a time, in the order they were asked for. */
export class OneAtATime {
  #last: Promise<void> = Promise.resolve();

  /**
   * Waits for this caller's turn.
   *
   * @returns the function that ends the turn; call it exactly once, in a `finally`.
   */
  async begin(): Promise<() => void> {
    const previous = this.#last;
    const ended = Promise.withResolvers<void>();
    this.#last = ended.promise;
    await previous;
    return () => ended.resolve();
  }

  /** Runs `work` in its own turn. */
  async run<T>(work: () => Promise<T>): Promise<T> {
    const end = await this.begin();
    try {
      return await work();
    } finally {
      end();
    }
  }
}
