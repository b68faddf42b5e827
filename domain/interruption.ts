/**
 * Why long work stopped: a signal aborted with a {@link RunInterruptedError} means the service is
 * shutting down and the run is to be resumed later (state `interrupted`); any other reason is a cancel
 * (state `cancelled`), whose partial work is removed. The filestore keeps an interrupted stage's finished
 * table files for the resumed run (`docs/runs.md`, "Resuming").
 *
 * ```ts
 * shutdown: controller.abort(new RunInterruptedError());   // kept for resume
 * cancel:   controller.abort();                            // partial staging removed
 * ```
 *
 * @module
 */
import { AppError } from "./errors.ts";

/**
 * The service stopped the work to shut down; the run can be resumed (to be a 503 for whoever waits on it).
 * Use it as the signal's reason.
 */
export class RunInterruptedError extends AppError {
  readonly code = "run_interrupted";

  /** @param runId the run, when known; `POST /runs/{id}/resume` continues it. */
  constructor(readonly runId?: string) {
    super(
      runId === undefined
        ? "Cannot finish the run now: the service is shutting down; resume it later"
        : `Run ${runId} was interrupted because the service stopped; resume it to continue`,
    );
  }
}

/** True when `reason` (a signal's reason, or what work rejected with) marks an interruption, not a cancel. */
export function isInterruption(reason: unknown): boolean {
  return reason instanceof RunInterruptedError;
}

/**
 * The items of `source`, stopping as soon as `signal` aborts, even while the source is still working on
 * the next item: the iteration then throws the signal's reason at once, and the source is asked to finish
 * (its `return()`) without being waited for, so a slow read cannot hold the caller up.
 */
export async function* untilAborted<T>(
  source: AsyncIterable<T>,
  signal: AbortSignal | undefined,
): AsyncGenerator<T, void, undefined> {
  if (signal === undefined) {
    yield* source;
    return;
  }
  signal.throwIfAborted();
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  try {
    for (;;) {
      const result = await nextUnlessAborted(iterator, signal);
      if (result.done) {
        finished = true;
        return;
      }
      yield result.value;
      signal.throwIfAborted();
    }
  } finally {
    if (!finished) {
      const closing = iterator.return?.();
      if (signal.aborted) closing?.catch(() => {});
      else await closing;
    }
  }
}

/**
 * The iterator's next result, or the signal's reason as soon as it aborts. A listener per call rather
 * than `Promise.race` with one long-lived promise, which would keep every result reachable.
 */
function nextUnlessAborted<T>(
  iterator: AsyncIterator<T>,
  signal: AbortSignal,
): Promise<IteratorResult<T>> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    iterator.next().then(
      (result) => {
        signal.removeEventListener("abort", onAbort);
        resolve(result);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
