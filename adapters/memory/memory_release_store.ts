/**
 * An in-memory release store for tests. Do not use it in production: nothing survives the process, and
 * nothing is shared between processes.
 *
 * @module
 */
import { type Decision, type Release, releaseSchema, withRequest } from "../../domain/release.ts";
import {
  applyDecision,
  applyReleaseChange,
  checkReleasePageSize,
  compareReleasesNewestFirst,
  type DecideResult,
  decodeReleaseCursor,
  encodeReleaseCursor,
  type EnsureReleaseResult,
  type ListReleasesQuery,
  releaseKey,
  ReleaseNotFoundError,
  type ReleasePage,
  type ReleaseStore,
  ReleaseStoreUnavailableError,
} from "../../ports/release_store.ts";

/** The releases several {@link MemoryReleaseStore} instances share (one "database"). */
export type MemoryReleaseStorage = Map<string, Release>;

/** Keeps releases in a map, with the same rules as the SQLite and PostgreSQL stores. */
export class MemoryReleaseStore implements ReleaseStore {
  readonly #releases: MemoryReleaseStorage;
  #closed = false;

  /** A store on `storage` (default: its own, empty); give two instances one storage to share it. */
  constructor(storage: MemoryReleaseStorage = new Map()) {
    this.#releases = storage;
  }

  /** {@inheritDoc ReleaseStore.ensure} */
  ensure(release: Release): Promise<EnsureReleaseResult> {
    return this.#do(() => {
      const valid = releaseSchema.parse(release);
      const key = releaseKey(valid);
      const existing = [...this.#releases.values()].find((r) => releaseKey(r) === key);
      if (existing !== undefined) {
        const updated = withRequest(existing, valid.request) ?? existing;
        this.#releases.set(updated.id, structuredClone(updated));
        return { release: structuredClone(updated), created: false };
      }
      this.#releases.set(valid.id, structuredClone(valid));
      return { release: structuredClone(valid), created: true };
    });
  }

  /** {@inheritDoc ReleaseStore.get} */
  get(id: string): Promise<Release | undefined> {
    return this.#do(() => {
      const release = this.#releases.get(id);
      return release === undefined ? undefined : structuredClone(release);
    });
  }

  /** {@inheritDoc ReleaseStore.list} */
  list(query: ListReleasesQuery): Promise<ReleasePage> {
    return this.#do(() => {
      checkReleasePageSize(query.limit);
      const after = query.cursor === undefined ? undefined : decodeReleaseCursor(query.cursor);
      const matching = [...this.#releases.values()]
        .filter((r) =>
          (query.project === undefined || r.project_name === query.project) &&
          (query.state === undefined || r.state === query.state) &&
          (after === undefined || compareReleasesNewestFirst(after, r) < 0)
        )
        .sort(compareReleasesNewestFirst);
      const releases = matching.slice(0, query.limit).map((r) => structuredClone(r));
      const last = releases.at(-1);
      return {
        releases,
        nextCursor: matching.length > query.limit && last !== undefined
          ? encodeReleaseCursor(last)
          : null,
      };
    });
  }

  /** {@inheritDoc ReleaseStore.decide} */
  decide(id: string, decide: (release: Release) => Decision): Promise<DecideResult> {
    return this.#do(() => {
      const release = this.#releases.get(id);
      if (release === undefined) throw new ReleaseNotFoundError(id);
      const result = applyDecision(release, decide);
      this.#releases.set(id, structuredClone(result.release));
      return result;
    });
  }

  /** {@inheritDoc ReleaseStore.update} */
  update(id: string, change: (release: Release) => Release): Promise<Release> {
    return this.#do(() => {
      const release = this.#releases.get(id);
      if (release === undefined) throw new ReleaseNotFoundError(id);
      const next = applyReleaseChange(release, change);
      if (next !== undefined) this.#releases.set(id, structuredClone(next));
      return structuredClone(next ?? release);
    });
  }

  /** {@inheritDoc ReleaseStore.close} */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #do<T>(body: () => T): Promise<T> {
    try {
      if (this.#closed) {
        throw new ReleaseStoreUnavailableError({ logDetail: "the store is closed" });
      }
      return Promise.resolve(body());
    } catch (e) {
      return Promise.reject(e);
    }
  }
}
