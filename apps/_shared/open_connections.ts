/**
 * The database connections a service has open for requests in flight, so that a shutdown whose grace
 * period ran out can close them: the requests then fail fast down their normal error path, which
 * discards their partial work (staging work folders, temporary destination schemas).
 *
 * Runs (package, publish) are stopped through their `AbortSignal` first (the publish service's runner,
 * `application/runs.ts`); closing their connections is still needed because a read or a load waiting
 * on its database only looks at the signal once that wait is over, and `validate` and the metadata
 * service's requests are not runs.
 *
 * @module
 */

/** Something that holds a connection until closed. */
export interface Closable {
  close(): Promise<void>;
}

/** The connections opened for requests and not closed yet. */
export class OpenConnections {
  readonly #open = new Set<Closable>();

  /** Keeps `connection` until its `close()` is called; returns it. */
  track<T extends Closable>(connection: T): T {
    this.#open.add(connection);
    const close = connection.close.bind(connection);
    connection.close = async () => {
      this.#open.delete(connection);
      await close();
    };
    return connection;
  }

  /** How many are open. */
  get size(): number {
    return this.#open.size;
  }

  /** Closes every open connection; errors are ignored (the connection is gone either way). */
  async closeAll(): Promise<void> {
    await Promise.all([...this.#open].map((c) => c.close().catch(() => {})));
  }
}
