/**
 * The gateway's expiry sweep on a timer (`RELEASE_SWEEP_INTERVAL_SECONDS`, `docs/revocation.md`): one
 * sweep at a time, the next one an interval after the previous ended; stopping waits for the sweep under
 * way. Several replicas may each run one (revocation is idempotent).
 *
 * @module
 */

/** A running sweeper. */
export interface ReleaseSweeper {
  /** Stops the timer and waits for the sweep under way, if any. Idempotent. */
  stop(): Promise<void>;
}

/** Runs `sweep` every `intervalMs` (first after one interval) until stopped; `sweep` must not throw. */
export function startReleaseSweeper(
  sweep: () => Promise<void>,
  intervalMs: number,
): ReleaseSweeper {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = sweep().finally(() => {
        running = undefined;
        schedule();
      });
    }, intervalMs);
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
  };
}
