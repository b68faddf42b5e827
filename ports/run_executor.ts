/**
 * Where a stored run executes. In process (the default: the runner executes it itself), or somewhere
 * else that reads the run from the shared run store, executes it, writes its progress there and exits:
 * a Kubernetes Job running the publish binary's one-run mode (`run <id>`, `docs/operator.md`).
 *
 * @module
 */
import type { Run } from "../domain/run.ts";

/** What to execute, and how to name and equip the execution. */
export interface RunLaunch {
  /** The stored run (queued). */
  readonly run: Run;
  /**
   * The execution's name. The same name launched twice is one execution: the second launch finds the
   * first (a repeated event, a restarted or second operator). Default: from the run id and version.
   */
  readonly name?: string;
  /** Labels that let the launcher find its executions again. */
  readonly labels?: Readonly<Record<string, string>>;
  /** A volume (claim name) to mount where the run's filestore destination is. */
  readonly volumeClaim?: string;
  /** Extra environment of the execution (never secrets: those are mounted). */
  readonly env?: Readonly<Record<string, string>>;
}

/** Where an execution is. `failed` carries the reason its runtime gave (a pod's, a Job's). */
export type ExecutionState =
  | { readonly state: "running" }
  | { readonly state: "succeeded" }
  | { readonly state: "failed"; readonly reason: string; readonly message: string }
  | { readonly state: "missing" };

/** Executes stored runs outside this process. */
export interface RunExecutor {
  /**
   * Starts executing the run; resolves once it is launched (not when it ends).
   *
   * @returns the execution's name, and whether this call created it (`false`: it existed).
   */
  launch(launch: RunLaunch): Promise<{ readonly name: string; readonly created: boolean }>;
  /** Where the named execution is now. */
  state(name: string): Promise<ExecutionState>;
  /** Removes the named execution and what it left running (nothing when it is gone). */
  remove(name: string): Promise<void>;
}
