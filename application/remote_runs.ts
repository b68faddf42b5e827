/**
 * Runs executed outside this process (`RUN_EXECUTOR=kubernetes`): the runner stores a run, then
 * {@link RemoteRuns.dispatch} launches it through a {@link RunExecutor} and follows the execution until
 * the run stops. The execution writes the run's progress and end to the shared store itself; when it
 * dies before that (its pod evicted, out of memory, past its deadline, deleted), the follower marks the
 * run failed with the execution's reason (`run_execution_failed`), so no caller waits for ever.
 *
 * @module
 */
import { AppError } from "../domain/errors.ts";
import { isActiveRunState, type Run, transition } from "../domain/run.ts";
import type { ExecutionState, RunExecutor, RunLaunch } from "../ports/run_executor.ts";
import { type RunStore, RunVersionConflictError } from "../ports/run_store.ts";
import type { RunnerLog, RunOutcome } from "./runs.ts";

/** The execution of a run ended (or vanished) without the run stopping: its reason says why. */
export class RunExecutionFailedError extends AppError {
  readonly code = "run_execution_failed";

  /** @param reason the runtime's reason (`OOMKilled`, `Evicted`, `DeadlineExceeded`, `JobDeleted`...) */
  constructor(readonly reason: string, detail: string) {
    super(`The run's execution failed (${reason}): ${detail}`);
  }
}

/** What {@link RemoteRuns} needs. */
export interface RemoteRunsOptions {
  readonly executor: RunExecutor;
  readonly store: RunStore;
  /** The reply of a failed run (the service's error mapping). */
  readonly outcomeOfError: (error: unknown) => RunOutcome;
  /** How often an execution is checked; default 2 s. */
  readonly pollMs?: number;
  readonly log?: RunnerLog;
  /** What each launch gets besides the run (labels, a volume, environment). */
  readonly launchOf?: (run: Run) => Omit<RunLaunch, "run">;
}

/** Launches runs through an executor and follows them. */
export class RemoteRuns {
  readonly #options: RemoteRunsOptions;
  readonly #following = new Map<string, ReturnType<typeof setTimeout>>();
  #closed = false;

  /** See {@link RemoteRunsOptions}. */
  constructor(options: RemoteRunsOptions) {
    this.#options = options;
  }

  /**
   * Launches the run (a repeated launch finds the first execution) and follows it in the background. A
   * launch that fails fails the run (`run_execution_failed`, reason `LaunchFailed`) before the error is
   * thrown on, so no run stays queued with nothing to execute it (a scheduled source's next slot would
   * wait behind it for ever).
   */
  async dispatch(run: Run): Promise<void> {
    let name: string;
    try {
      ({ name } = await this.#options.executor.launch({
        run,
        ...this.#options.launchOf?.(run),
      }));
    } catch (e) {
      await this.fail(run.id, new RunExecutionFailedError("LaunchFailed", (e as Error).message))
        .catch(() => {});
      throw e;
    }
    this.#options.log?.info("run_dispatched", { run: run.id, execution: name });
    this.follow(run.id, name);
  }

  /** Follows an execution until its run stops (idempotent per run). */
  follow(runId: string, execution: string): void {
    if (this.#closed || this.#following.has(runId)) return;
    const tick = async () => {
      try {
        if (!await this.check(runId, execution)) {
          this.#following.delete(runId);
          return;
        }
      } catch (e) {
        this.#options.log?.warn("run_follow_failed", { run: runId, message: (e as Error).message });
      }
      if (!this.#closed) this.#following.set(runId, setTimeout(tick, this.#options.pollMs ?? 2000));
    };
    this.#following.set(runId, setTimeout(tick, 0));
  }

  /**
   * One check: `false` once the run stopped (marked failed here when its execution failed or vanished
   * while it was still active), `true` while it goes on.
   */
  async check(runId: string, execution: string): Promise<boolean> {
    const { store, executor } = this.#options;
    const run = await store.get(runId);
    if (run === undefined || !isActiveRunState(run.state)) return false;
    const state: ExecutionState = await executor.state(execution);
    if (state.state === "running" || state.state === "succeeded") {
      // Succeeded: the run's own end is in the store already, or arrives with the next check.
      return true;
    }
    const error = state.state === "missing"
      ? new RunExecutionFailedError("ExecutionMissing", `${execution} no longer exists`)
      : new RunExecutionFailedError(state.reason, state.message);
    await this.fail(runId, error);
    return false;
  }

  /** Marks an active run failed with `error`'s outcome (nothing when it already stopped). */
  async fail(runId: string, error: RunExecutionFailedError): Promise<void> {
    const { store, outcomeOfError } = this.#options;
    for (;;) {
      const run = await store.get(runId);
      if (run === undefined || !isActiveRunState(run.state)) return;
      const moved = transition(run, "fail", new Date().toISOString());
      try {
        await store.update(runId, run.version, {
          state: moved.state,
          updated_at: moved.updated_at,
          started_at: moved.started_at,
          finished_at: moved.finished_at,
          outcome: outcomeOfError(error),
        });
        this.#options.log?.warn("run_execution_failed", {
          run: runId,
          reason: error.reason,
          message: error.message,
        });
        return;
      } catch (e) {
        if (!(e instanceof RunVersionConflictError)) throw e;
      }
    }
  }

  /** Stops following (the executions go on; their runs are in the store). */
  close(): void {
    this.#closed = true;
    for (const timer of this.#following.values()) clearTimeout(timer);
    this.#following.clear();
  }
}
