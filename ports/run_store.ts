/**
 * The port for where runs are kept (`domain/run.ts`): embedded (SQLite) by default, shared (PostgreSQL)
 * when the publish service runs as several replicas. Every adapter passes
 * `tests/contracts/run_store_contract.ts`.
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
import { type Run, runSchema } from "../domain/run.ts";

/** How {@link RunStore.create} treats other active runs of the same project. */
export interface CreateRunOptions {
  /**
   * When true, the run is refused with {@link RunAlreadyActiveError} if another run of the same project
   * is queued or running (the one-run-per-project rule, kept across every process sharing the store).
   */
  readonly exclusive: boolean;
}

/** What {@link RunStore.create} did. */
export interface CreateRunResult {
  /** The run stored: the new one, or the existing one attached to. */
  readonly run: Run;
  /** True when an active run of the identical request already existed and is returned instead. */
  readonly attached: boolean;
}

/** What {@link RunStore.list} returns: newest first, and the cursor of the next page if there is one. */
export interface RunPage {
  readonly runs: readonly Run[];
  /** Opaque; pass it back as `cursor` for the next page. `null` on the last page. */
  readonly nextCursor: string | null;
}

/** Filters and page of {@link RunStore.list}. */
export interface ListRunsQuery {
  readonly project?: string;
  readonly state?: Run["state"];
  /** Page size, 1 to {@link MAX_RUN_PAGE_SIZE}. */
  readonly limit: number;
  /** The `nextCursor` of the previous page. */
  readonly cursor?: string;
}

/** The largest page {@link RunStore.list} returns. */
export const MAX_RUN_PAGE_SIZE = 1000;

/** The fields of a run {@link RunStore.update} may change; the rest describe the request and stay. */
export type RunPatch = Partial<
  Pick<Run, "state" | "tables" | "outcome" | "updated_at" | "started_at" | "finished_at">
>;

/**
 * Keeps runs. Every method may reject with {@link RunStoreUnavailableError} when the storage fails.
 */
export interface RunStore extends AsyncDisposable {
  /**
   * Stores a new run (as built by `newRun`), before any work starts. If an active (queued or running) run
   * of the identical request exists (same action, project name, project start time, dataset,
   * destination and request body: `runRequestKey`), nothing is stored and that run is returned with
   * `attached: true`.
   *
   * @throws {RunAlreadyActiveError} when `options.exclusive` and another active run of the project exists.
   */
  create(run: Run, options: CreateRunOptions): Promise<CreateRunResult>;

  /** The run with this id, or `undefined`. */
  get(id: string): Promise<Run | undefined>;

  /**
   * Runs, newest first (by creation time, then id), filtered by project and state, one page at a time.
   *
   * @throws {InvalidRunCursorError} when `cursor` is not one this store gave.
   * @throws {RangeError} when `limit` is not an integer from 1 to {@link MAX_RUN_PAGE_SIZE}.
   */
  list(query: ListRunsQuery): Promise<RunPage>;

  /**
   * Changes a run if it is still at `expectedVersion`, and returns it at the next version.
   *
   * @throws {RunNotFoundError} when there is no such run.
   * @throws {RunVersionConflictError} when someone else updated it since `expectedVersion`.
   * @throws {RunAlreadyActiveError} when the patch makes a stopped run active again (`resume`) while
   *   another run of its project is active.
   */
  update(id: string, expectedVersion: number, patch: RunPatch): Promise<Run>;

  /**
   * Starts a queued run (`queued` → `running`, next version) if it is its turn: no other run of its
   * project is running and no other run of its project was queued before it (older creation time, then
   * smaller id). This is the queue every process sharing the store follows: FIFO per project, one
   * running run per project. The start time is read from `now` once, after the store has seen that it
   * is the run's turn, so it is never earlier than the end of the run it waited for (on one clock).
   *
   * @returns the run now running, or `undefined` when it must wait (nothing changed).
   * @throws {RunNotFoundError} when there is no such run.
   * @throws {InvalidRunTransitionError} when the run is no longer queued (cancelled, interrupted,
   *   already started).
   */
  claim(id: string, now: () => string): Promise<Run | undefined>;

  /**
   * Marks `interrupted` at `at` every queued or running run last updated before `updatedBefore`
   * (default `at`: every active run), and returns how many. Called at startup: a process that died left
   * them so. With a store several replicas share, a live run's process updates it (its progress) more
   * often than a lease, and a replica passes `at` minus that lease, so that it leaves its peers' live runs
   * alone.
   */
  markInterrupted(at: string, updatedBefore?: string): Promise<number>;

  /** Deletes runs that are not active and were last updated before `olderThan`. Returns how many. */
  prune(olderThan: string): Promise<number>;

  /** Releases the storage. Idempotent. */
  close(): Promise<void>;
}

/** Another run of the project is queued or running (to be a 409). */
export class RunAlreadyActiveError extends AppError {
  readonly code = "run_already_active";

  constructor(readonly projectName: string, readonly activeRunId: string) {
    super(`Cannot start a run of project "${projectName}": run ${activeRunId} is still active`);
  }
}

/** One of a project's active runs as a store holds it: its id and its request key ({@link runRequestKey}). */
export interface ActiveRunRow {
  readonly id: unknown;
  readonly request_key: unknown;
}

/**
 * The rule {@link RunStore.create} applies, in one place for every store: given the project's active runs
 * (oldest first), returns the one an identical request attaches to, or `undefined` when the new run is to
 * be stored.
 *
 * @throws {RunAlreadyActiveError} when `exclusive` and another run of the project is active.
 */
export function activeRunToAttach<R extends ActiveRunRow>(
  active: readonly R[],
  run: { readonly project_name: string; readonly requestKey: string; readonly exclusive: boolean },
): R | undefined {
  const same = active.find((row) => row.request_key === run.requestKey);
  if (same !== undefined) return same;
  const other = active[0];
  if (run.exclusive && other !== undefined) {
    throw new RunAlreadyActiveError(run.project_name, String(other.id));
  }
  return undefined;
}

/** No run has this id (to be a 404). */
export class RunNotFoundError extends AppError {
  readonly code = "run_not_found";

  constructor(readonly id: string) {
    super(`Cannot find run ${JSON.stringify(id)}`);
  }
}

/** A run changed since the version the caller read (to be a 409). */
export class RunVersionConflictError extends AppError {
  readonly code = "run_version_conflict";

  constructor(
    readonly id: string,
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(
      `Cannot update run ${id}: it is at version ${actualVersion}, not ${expectedVersion}; read it again`,
    );
  }
}

/** A list cursor this store did not give (to be a 400). */
export class InvalidRunCursorError extends AppError {
  readonly code = "invalid_run_cursor";

  constructor() {
    super("Cannot read the cursor: pass back the nextCursor of the previous page");
  }
}

/** The run store cannot be read or written (to be a 503). */
export class RunStoreUnavailableError extends AppError {
  readonly code = "run_store_unavailable";

  constructor(options?: AppErrorOptions) {
    super("The run store is unavailable", options);
  }
}

/** The position a list page ends at: the creation time and id of its last run. */
export type RunCursor = KeysetPosition;

/** The opaque cursor after `run` (base64url of JSON), the same for every adapter. */
export const encodeRunCursor: (run: RunCursor) => string = encodeKeysetCursor;

/**
 * Reads a cursor made by {@link encodeRunCursor}.
 *
 * @throws {InvalidRunCursorError} for anything else.
 */
export function decodeRunCursor(cursor: string): RunCursor {
  const position = decodeKeysetCursor(cursor);
  if (position === undefined) throw new InvalidRunCursorError();
  return position;
}

/**
 * Checks a page size for {@link RunStore.list}.
 *
 * @throws {RangeError} when it is not an integer from 1 to {@link MAX_RUN_PAGE_SIZE}.
 */
export function checkRunPageSize(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_RUN_PAGE_SIZE) {
    throw new RangeError(`Cannot list runs ${limit} at a time: give 1 to ${MAX_RUN_PAGE_SIZE}`);
  }
}

/** Whether run `a` comes before run `b` in a list: newer creation time first, then larger id. */
export const compareRunsNewestFirst: (a: RunCursor, b: RunCursor) => number = compareNewestFirst;

/**
 * The run after `patch`, at the next version, checked against the run schema: the one way every adapter
 * applies an update.
 *
 * @throws {Error} (a zod error) when the patched run is not a valid run.
 */
export function applyRunPatch(run: Run, patch: RunPatch): Run {
  return runSchema.parse({ ...run, ...patch, version: run.version + 1 });
}

/**
 * Whether `other` keeps `run` from being claimed ({@link RunStore.claim}): another run of the same
 * project that is running, or queued before it. The one rule, for stores that check it in code.
 */
export function blocksClaim(
  run: Pick<Run, "id" | "project_name" | "created_at">,
  other: Pick<Run, "id" | "project_name" | "state" | "created_at">,
): boolean {
  if (other.id === run.id || other.project_name !== run.project_name) return false;
  if (other.state === "running") return true;
  return other.state === "queued" &&
    (other.created_at < run.created_at ||
      (other.created_at === run.created_at && other.id < run.id));
}
