/**
 * Runs: every `package`, `publish`, `revoke` and `fetch` (an HTTP-file source) is a run, stored before any work starts (issue 13). This module
 * holds the run record, its zod schema (for what a store reads back), the one table of state transitions,
 * and the progress estimate. It is pure: stores live behind `ports/run_store.ts`.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { tableDisclosureSchema } from "./disclosure.ts";
import { z } from "zod";
import { canonicalJson } from "./audit.ts";
import { AppError } from "./errors.ts";

/** The actions that are runs. */
export const RUN_ACTIONS = ["package", "publish", "revoke", "fetch"] as const;

/** One of {@link RUN_ACTIONS}. */
export type RunAction = typeof RUN_ACTIONS[number];

/** The states of a run. `queued` and `running` are active; the others are where a run stops. */
export const RUN_STATES = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "interrupted",
] as const;

/** One of {@link RUN_STATES}. */
export type RunState = typeof RUN_STATES[number];

/** The states in which a run holds its project: at most one such run per project when exclusive. */
export const ACTIVE_RUN_STATES: readonly RunState[] = ["queued", "running"];

/** Whether a run in `state` is active (queued or running). */
export function isActiveRunState(state: RunState): boolean {
  return ACTIVE_RUN_STATES.includes(state);
}

/** What happens to a run. */
export const RUN_EVENTS = ["start", "succeed", "fail", "cancel", "interrupt", "resume"] as const;

/** One of {@link RUN_EVENTS}. */
export type RunEvent = typeof RUN_EVENTS[number];

/**
 * THE transition table: `state × event → state`. A pair not listed is refused with
 * {@link InvalidRunTransitionError}. `succeeded`, `failed` and `cancelled` are final. An `interrupted`
 * run (its process died) can be queued again (`resume`) or given up (`cancel`).
 */
export const RUN_TRANSITIONS: Readonly<
  Record<RunState, Readonly<Partial<Record<RunEvent, RunState>>>>
> = {
  queued: { start: "running", fail: "failed", cancel: "cancelled", interrupt: "interrupted" },
  running: { succeed: "succeeded", fail: "failed", cancel: "cancelled", interrupt: "interrupted" },
  succeeded: {},
  failed: {},
  cancelled: {},
  interrupted: { resume: "queued", cancel: "cancelled" },
};

/** The states where a run has finished for good. */
export const FINAL_RUN_STATES: readonly RunState[] = RUN_STATES.filter((state) =>
  Object.keys(RUN_TRANSITIONS[state]).length === 0
);

/** A run was asked to make a transition the table does not have (to be a 409). */
export class InvalidRunTransitionError extends AppError {
  readonly code = "invalid_run_transition";

  constructor(readonly from: RunState, readonly event: RunEvent) {
    super(`Cannot ${event} a run that is ${from}`);
  }
}

// Always milliseconds and `Z` (as `Date.prototype.toISOString` writes), so text order is time order.
const isoTime = z.iso.datetime({ precision: 3 });

/** The states of one table's progress within a run. */
export const TABLE_PROGRESS_STATES = ["pending", "running", "done", "failed"] as const;

/** A count the source estimated (its statistics), never a promise. */
export const rowEstimateSchema = z.object({
  value: z.number().int().nonnegative(),
  estimate: z.literal(true),
}).strict();

/** Progress of one table of a run. */
export const tableProgressSchema = z.object({
  name: z.string().min(1),
  state: z.enum(TABLE_PROGRESS_STATES),
  rows: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  started_at: isoTime.nullable(),
  finished_at: isoTime.nullable(),
  /** Lower-case hex SHA-512 of the table's file, once done. */
  sha512: z.string().regex(/^[0-9a-f]{128}$/).nullable(),
  /** Rows the source expects, when it can estimate them. */
  expected_rows: rowEstimateSchema.nullable(),
  /**
   * The table's disclosure pre-checks (`domain/disclosure.ts`), once its read ended with the checks on;
   * absent otherwise (and in runs stored before the checks existed).
   */
  disclosure: tableDisclosureSchema.optional(),
}).strict();

/** See {@link tableProgressSchema}. */
export type TableProgress = z.infer<typeof tableProgressSchema>;

/** The source engines a run may read (`domain/source_engine.ts`). */
export const RUN_SOURCE_ENGINES = ["postgresql", "mysql", "mssql", "databrickssql"] as const;

/**
 * The dataset a run reads: the source schema and the tables asked for (`null`: all), and the source's
 * engine (`null` for a publish, which reads no source; it labels the transfer metrics).
 */
export const runDatasetSchema = z.object({
  source_host: z.string().nullable(),
  source_engine: z.enum(RUN_SOURCE_ENGINES).nullable().default(null),
  schema_name: z.string(),
  tables: z.array(z.string()).nullable(),
}).strict();

/** The destination a run writes to. */
export const runDestinationSchema = z.object({
  type: z.string(),
  name: z.string(),
  format: z.string().nullable(),
}).strict();

/** The end of a run: the reply the synchronous call gives, or its error envelope, with its status. */
export const runOutcomeSchema = z.object({
  status: z.number().int().min(100).max(599),
  body: z.json(),
}).strict();

/** The run record every store keeps. `version` counts updates (optimistic concurrency). */
export const runSchema = z.object({
  id: z.string().min(1),
  action: z.enum(RUN_ACTIONS),
  project_name: z.string().min(1),
  project_start_time: z.string(),
  dataset: runDatasetSchema,
  destination: runDestinationSchema,
  state: z.enum(RUN_STATES),
  tables: z.array(tableProgressSchema),
  outcome: runOutcomeSchema.nullable(),
  caller_key_id: z.string().nullable(),
  created_at: isoTime,
  updated_at: isoTime,
  started_at: isoTime.nullable(),
  finished_at: isoTime.nullable(),
  version: z.number().int().positive(),
  /**
   * The validated request body the run was started with, so that a resumed run (in any process) can
   * rebuild its work. Requests name secrets, never hold them. `null` in runs stored before it was kept.
   * Not part of the public view ({@link runView}).
   */
  request: z.json().nullable().default(null),
}).strict();

/** See {@link runSchema}. */
export type Run = z.infer<typeof runSchema>;

/** A run as the HTTP API shows it: everything but its `request`. */
export type RunView = Omit<Run, "request">;

/** The public view of a run: the stored run without its `request`. */
export function runView(run: Run): RunView {
  const { request: _request, ...view } = run;
  return view;
}

/** What a caller gives to start a run; the rest is set by {@link newRun}. */
export type NewRunInput =
  & Pick<
    Run,
    "action" | "project_name" | "project_start_time" | "destination" | "caller_key_id"
  >
  & {
    readonly dataset: z.input<typeof runDatasetSchema>;
    /** The validated request body (see {@link runSchema}); none when absent. */
    readonly request?: z.infer<typeof runSchema>["request"];
  };

/**
 * A new `queued` run at `at` (an ISO instant), version 1, with a random id and no tables yet.
 */
export function newRun(input: NewRunInput, at: string): Run {
  return runSchema.parse({
    id: crypto.randomUUID(),
    ...input,
    state: "queued",
    tables: [],
    outcome: null,
    created_at: at,
    updated_at: at,
    started_at: null,
    finished_at: null,
    version: 1,
  });
}

/**
 * The key of what a run was asked to do: action, project, project start time, dataset, destination and
 * the request body itself (so two requests that differ only in their columns are different runs). Two
 * requests with the same key are the same request, and the second attaches to the first's run.
 */
export function runRequestKey(
  run: Pick<
    NewRunInput,
    "action" | "project_name" | "project_start_time" | "dataset" | "destination" | "request"
  >,
): string {
  const request = {
    action: run.action,
    project_name: run.project_name,
    project_start_time: run.project_start_time,
    dataset: runDatasetSchema.parse(run.dataset),
    destination: run.destination,
    request: run.request ?? null,
  };
  return createHash("sha256").update(canonicalJson(request)).digest("hex");
}

/**
 * The state `event` takes a run in `state` to, by {@link RUN_TRANSITIONS}.
 *
 * @throws {InvalidRunTransitionError} when the table has no such transition.
 */
export function nextRunState(state: RunState, event: RunEvent): RunState {
  const next = RUN_TRANSITIONS[state][event];
  if (next === undefined) throw new InvalidRunTransitionError(state, event);
  return next;
}

/**
 * Applies `event` to `run` at `at` (an ISO instant), by {@link RUN_TRANSITIONS}: sets the state and
 * `updated_at`, `started_at` on `start`, `finished_at` when the run stops, and clears both on `resume`.
 * The version is the store's business and is left as it is.
 *
 * @throws {InvalidRunTransitionError} when the table has no such transition.
 */
export function transition(run: Run, event: RunEvent, at: string): Run {
  const next = nextRunState(run.state, event);
  const stopped = !isActiveRunState(next);
  return {
    ...run,
    state: next,
    updated_at: at,
    started_at: event === "start" ? at : event === "resume" ? null : run.started_at,
    finished_at: stopped ? at : null,
  };
}

/** A progress estimate: how far a table is and when it should end. Always marked as an estimate. */
export interface ProgressEstimate {
  /** Percentage done, 0 to 100 (capped: the source's count is only an estimate). */
  readonly percent: number;
  /** Milliseconds left at the rate so far, or `null` before any row. */
  readonly eta_ms: number | null;
  readonly estimate: true;
}

/**
 * The percentage and ETA of a table from the rows the source expects, the rows done and the time spent.
 * Returns `null` when there is no expectation to measure against.
 */
export function estimateProgress(
  expected: z.infer<typeof rowEstimateSchema> | null,
  rowsDone: number,
  elapsedMs: number,
): ProgressEstimate | null {
  if (expected === null) return null;
  if (expected.value === 0) return { percent: 100, eta_ms: 0, estimate: true };
  const percent = Math.min(100, (rowsDone / expected.value) * 100);
  const left = Math.max(0, expected.value - rowsDone);
  const eta_ms = rowsDone === 0 || elapsedMs <= 0
    ? null
    : Math.round(left * (elapsedMs / rowsDone));
  return { percent, eta_ms, estimate: true };
}
