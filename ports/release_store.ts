/**
 * The port for where the approval service keeps releases and their decisions (`domain/release.ts`,
 * `docs/approvals.md`): embedded (SQLite) by default, shared (PostgreSQL) when several replicas run. Every
 * adapter passes `tests/contracts/release_store_contract.ts`.
 *
 * @module
 */
import { AppError, type AppErrorOptions } from "../domain/errors.ts";
import {
  compareNewestFirst,
  decodeKeysetCursor,
  encodeKeysetCursor,
  type KeysetPosition,
} from "../domain/keyset_cursor.ts";
import {
  appendDecision,
  checkReleaseChange,
  type Decision,
  type Release,
  releaseSchema,
  type ReleaseState,
} from "../domain/release.ts";

/** What {@link ReleaseStore.ensure} did. */
export interface EnsureReleaseResult {
  /** The release stored: the new one, or the one that already named the same project run. */
  readonly release: Release;
  /** True when the given release was stored; false when an existing one is returned instead. */
  readonly created: boolean;
}

/** What {@link ReleaseStore.decide} did. */
export interface DecideResult {
  /** The release with the decision appended (its last). */
  readonly release: Release;
  /** The decision recorded. */
  readonly decision: Decision;
}

/** Filters and page of {@link ReleaseStore.list}. */
export interface ListReleasesQuery {
  readonly project?: string;
  readonly state?: ReleaseState;
  /** Page size, 1 to {@link MAX_RELEASE_PAGE_SIZE}. */
  readonly limit: number;
  /** The `nextCursor` of the previous page. */
  readonly cursor?: string;
}

/** What {@link ReleaseStore.list} returns: newest first, and the cursor of the next page if any. */
export interface ReleasePage {
  readonly releases: readonly Release[];
  /** Opaque; pass it back as `cursor` for the next page. `null` on the last page. */
  readonly nextCursor: string | null;
}

/** The largest page {@link ReleaseStore.list} returns. */
export const MAX_RELEASE_PAGE_SIZE = 1000;

/**
 * Keeps releases. Every method may reject with {@link ReleaseStoreUnavailableError} when the storage
 * fails.
 */
export interface ReleaseStore extends AsyncDisposable {
  /**
   * Finds the release of the same project run (project name, project start time, destination type and
   * name) or, when there is none, stores `release` (as built by `newRelease`). Atomic across every
   * instance sharing the storage: of two concurrent calls naming one project run, one creates it and the
   * other gets it. When the release exists and `release.request` names a dataset (schema) it has not
   * recorded yet, that dataset is added to it in the same step (`withRequest`, `domain/release.ts`).
   */
  ensure(release: Release): Promise<EnsureReleaseResult>;

  /** The release with this id, or `undefined`. */
  get(id: string): Promise<Release | undefined>;

  /**
   * Releases, newest first (by creation time, then id), filtered by project and state, one page at a
   * time.
   *
   * @throws {InvalidReleaseCursorError} when `cursor` is not one this store gave.
   * @throws {RangeError} when `limit` is not an integer from 1 to {@link MAX_RELEASE_PAGE_SIZE}.
   */
  list(query: ListReleasesQuery): Promise<ReleasePage>;

  /**
   * Records one decision: calls `decide` with the freshest release inside the store's transaction (no
   * other decision on it can be recorded in between) and appends the decision it returns
   * (`appendDecision`: a reject closes the release). Concurrent calls, from any instance, are all
   * recorded, one after the other, each seeing the previous. When `decide` throws, nothing changes and
   * its error is the rejection. `decide` must not do I/O.
   *
   * @throws {ReleaseNotFoundError} when there is no such release.
   * @throws {ReleaseClosedError} (`domain/release.ts`) when the release was already rejected.
   */
  decide(id: string, decide: (release: Release) => Decision): Promise<DecideResult>;

  /**
   * Changes one release: calls `change` with the freshest release inside the store's transaction (no
   * other change or decision on it in between) and stores what it returns, checked
   * (`checkReleaseChange`: the same release, in a state it may reach). Returns the stored release. When
   * `change` throws, nothing changes and its error is the rejection; when it returns the release
   * unchanged, nothing is written. `change` must not do I/O.
   *
   * @throws {ReleaseNotFoundError} when there is no such release.
   * @throws {InvalidReleaseTransitionError} (`domain/release.ts`) when the new state is not allowed.
   */
  update(id: string, change: (release: Release) => Release): Promise<Release>;

  /** Releases the storage. Idempotent. */
  close(): Promise<void>;
}

/** No release has this id (to be a 404). */
export class ReleaseNotFoundError extends AppError {
  readonly code = "release_not_found";

  constructor(readonly id: string) {
    super(`Cannot find release ${JSON.stringify(id)}`);
  }
}

/** A list cursor this store did not give (to be a 400). */
export class InvalidReleaseCursorError extends AppError {
  readonly code = "invalid_release_cursor";

  constructor() {
    super("Cannot read the cursor: pass back the nextCursor of the previous page");
  }
}

/** The release store cannot be read or written (to be a 503). */
export class ReleaseStoreUnavailableError extends AppError {
  readonly code = "release_store_unavailable";

  constructor(options?: AppErrorOptions) {
    super("The release store is unavailable", options);
  }
}

/** The key that names a release's project run: one release per key. */
export function releaseKey(
  release: Pick<Release, "project_name" | "project_start_time" | "destination">,
): string {
  return JSON.stringify([
    release.project_name,
    release.project_start_time,
    release.destination.type,
    release.destination.name,
  ]);
}

/** The opaque cursor after `release`. */
export function encodeReleaseCursor(release: KeysetPosition): string {
  return encodeKeysetCursor(release);
}

/**
 * Reads a cursor made by {@link encodeReleaseCursor}.
 *
 * @throws {InvalidReleaseCursorError} for anything else.
 */
export function decodeReleaseCursor(cursor: string): KeysetPosition {
  const position = decodeKeysetCursor(cursor);
  if (position === undefined) throw new InvalidReleaseCursorError();
  return position;
}

/** Whether release `a` comes before release `b` in a list: newest first, then larger id. */
export const compareReleasesNewestFirst: (a: KeysetPosition, b: KeysetPosition) => number =
  compareNewestFirst;

/**
 * Checks a page size for {@link ReleaseStore.list}.
 *
 * @throws {RangeError} when it is not an integer from 1 to {@link MAX_RELEASE_PAGE_SIZE}.
 */
export function checkReleasePageSize(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RELEASE_PAGE_SIZE) {
    throw new RangeError(
      `Cannot list releases ${limit} at a time: give 1 to ${MAX_RELEASE_PAGE_SIZE}`,
    );
  }
}

/**
 * The one way every store records a decision ({@link ReleaseStore.decide}): the callback's decision on
 * the freshest release, appended and checked.
 */
export function applyDecision(
  release: Release,
  decide: (release: Release) => Decision,
): DecideResult {
  const decision = decide(structuredClone(release));
  const next = appendDecision(release, decision);
  return { release: next, decision: next.decisions.at(-1) as Decision };
}

/**
 * The one way every store changes a release ({@link ReleaseStore.update}): the callback's release, from
 * the freshest one, checked. `undefined` when the callback changed nothing (nothing to write).
 */
export function applyReleaseChange(
  release: Release,
  change: (release: Release) => Release,
): Release | undefined {
  const next = checkReleaseChange(release, change(structuredClone(release)));
  return JSON.stringify(next) === JSON.stringify(release) ? undefined : next;
}

/** A stored release, checked: a row that is not a valid release fails loudly. */
export function parseStoredRelease(body: unknown): Release {
  return releaseSchema.parse(typeof body === "string" ? JSON.parse(body) : body);
}
