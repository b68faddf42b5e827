/**
 * An in-memory run store for tests. Do not use it in production: nothing survives the process, and
 * nothing is shared between processes.
 *
 * @module
 */
import {
  isActiveRunState,
  nextRunState,
  type Run,
  runRequestKey,
  runSchema,
  transition,
} from "../../domain/run.ts";
import {
  activeRunToAttach,
  applyRunPatch,
  blocksClaim,
  checkRunPageSize,
  compareRunsNewestFirst,
  type CreateRunOptions,
  type CreateRunResult,
  decodeRunCursor,
  encodeRunCursor,
  type ListRunsQuery,
  RunAlreadyActiveError,
  RunNotFoundError,
  type RunPage,
  type RunPatch,
  type RunStore,
  RunVersionConflictError,
} from "../../ports/run_store.ts";

/** Keeps runs in a map, with the same rules as the SQLite and PostgreSQL stores. */
export class MemoryRunStore implements RunStore {
  readonly #runs = new Map<string, Run>();

  /** {@inheritDoc RunStore.create} */
  create(run: Run, options: CreateRunOptions): Promise<CreateRunResult> {
    const parsed = runSchema.safeParse(run);
    if (!parsed.success) return Promise.reject(parsed.error);
    const valid = parsed.data;
    const key = runRequestKey(valid);
    const active = [...this.#runs.values()].filter((r) =>
      r.project_name === valid.project_name && isActiveRunState(r.state)
    );
    let same: Run | undefined;
    try {
      same = activeRunToAttach(
        active.map((r) => ({ id: r.id, request_key: runRequestKey(r), run: r })),
        { project_name: valid.project_name, requestKey: key, exclusive: options.exclusive },
      )?.run;
    } catch (e) {
      return Promise.reject(e);
    }
    if (same !== undefined) return Promise.resolve({ run: structuredClone(same), attached: true });
    this.#runs.set(valid.id, structuredClone(valid));
    return Promise.resolve({ run: structuredClone(valid), attached: false });
  }

  /** {@inheritDoc RunStore.get} */
  get(id: string): Promise<Run | undefined> {
    const run = this.#runs.get(id);
    return Promise.resolve(run === undefined ? undefined : structuredClone(run));
  }

  /** {@inheritDoc RunStore.list} */
  list(query: ListRunsQuery): Promise<RunPage> {
    try {
      checkRunPageSize(query.limit);
      const after = query.cursor === undefined ? undefined : decodeRunCursor(query.cursor);
      const matching = [...this.#runs.values()]
        .filter((r) => query.project === undefined || r.project_name === query.project)
        .filter((r) => query.state === undefined || r.state === query.state)
        .filter((r) => after === undefined || compareRunsNewestFirst(after, r) < 0)
        .sort(compareRunsNewestFirst);
      const runs = matching.slice(0, query.limit).map((r) => structuredClone(r));
      const last = runs.at(-1);
      const more = matching.length > query.limit && last !== undefined;
      return Promise.resolve({ runs, nextCursor: more ? encodeRunCursor(last) : null });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** {@inheritDoc RunStore.update} */
  update(id: string, expectedVersion: number, patch: RunPatch): Promise<Run> {
    const run = this.#runs.get(id);
    if (run === undefined) return Promise.reject(new RunNotFoundError(id));
    if (run.version !== expectedVersion) {
      return Promise.reject(new RunVersionConflictError(id, expectedVersion, run.version));
    }
    try {
      const next = applyRunPatch(run, patch);
      if (!isActiveRunState(run.state) && isActiveRunState(next.state)) {
        const other = [...this.#runs.values()].find((r) =>
          r.id !== id && r.project_name === run.project_name && isActiveRunState(r.state)
        );
        if (other !== undefined) throw new RunAlreadyActiveError(run.project_name, other.id);
      }
      this.#runs.set(id, next);
      return Promise.resolve(structuredClone(next));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** {@inheritDoc RunStore.claim} */
  claim(id: string, now: () => string): Promise<Run | undefined> {
    const run = this.#runs.get(id);
    if (run === undefined) return Promise.reject(new RunNotFoundError(id));
    try {
      nextRunState(run.state, "start");
      if ([...this.#runs.values()].some((other) => blocksClaim(run, other))) {
        return Promise.resolve(undefined);
      }
      const next = { ...transition(run, "start", now()), version: run.version + 1 };
      this.#runs.set(id, next);
      return Promise.resolve(structuredClone(next));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** {@inheritDoc RunStore.markInterrupted} */
  markInterrupted(at: string, updatedBefore: string = at): Promise<number> {
    let count = 0;
    for (const run of this.#runs.values()) {
      if (!isActiveRunState(run.state) || run.updated_at >= updatedBefore) continue;
      this.#runs.set(run.id, { ...transition(run, "interrupt", at), version: run.version + 1 });
      count++;
    }
    return Promise.resolve(count);
  }

  /** {@inheritDoc RunStore.prune} */
  prune(olderThan: string): Promise<number> {
    let count = 0;
    for (const run of [...this.#runs.values()]) {
      if (isActiveRunState(run.state) || run.updated_at >= olderThan) continue;
      this.#runs.delete(run.id);
      count++;
    }
    return Promise.resolve(count);
  }

  /** {@inheritDoc RunStore.close} */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /** Same as {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
