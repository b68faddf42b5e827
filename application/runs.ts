/**
 * The runner: every `package`, `publish` and `revoke` is a run (issues 13, 16), stored before its work
 * starts, executed in the background, queued behind the other runs of its project (FIFO, across every
 * process sharing the store), stopped on a signal, watched through its stored versions, and left
 * `interrupted` when its process stops so that it can be resumed. `docs/runs.md` describes the behaviour; this module is its
 * one implementation, free of any framework.
 *
 * @module
 */
import type { TableDisclosure } from "../domain/disclosure.ts";
import {
  type AuditEntry,
  type AuditOutput,
  auditRequestFields,
  canonicalJson,
  NO_REQUEST_FIELDS,
} from "../domain/audit.ts";
import { AppError } from "../domain/errors.ts";
import { RunInterruptedError } from "../domain/interruption.ts";
import type { ProgressReport } from "../domain/long_work.ts";
import {
  isActiveRunState,
  newRun,
  type NewRunInput,
  type Run,
  type RunEvent,
  runRequestKey,
  type TableProgress,
  transition,
} from "../domain/run.ts";
import type { AuditTrail } from "../ports/audit_trail.ts";
import { type DestinationKind, NO_RUN_METRICS, type RunMetrics } from "../ports/metrics.ts";
import {
  RunNotFoundError,
  type RunPatch,
  type RunStore,
  RunVersionConflictError,
} from "../ports/run_store.ts";

/** How long a run's process may stay silent before another process takes it for dead. Default 30 s. */
export const DEFAULT_RUN_LEASE_MS = 30_000;

/** How often a waiting process looks at the store for changes made by other processes. */
export const DEFAULT_RUN_POLL_MS = 1_000;

/** Progress is written to the store at most this often per run (and when a table is done). */
export const RUN_PROGRESS_INTERVAL_MS = 1_000;

/** How long a cancel waits for a local run's work to stop. */
export const RUN_CANCEL_WAIT_MS = 5_000;

/** How often finished runs past their retention are pruned. */
const PRUNE_INTERVAL_MS = 24 * 60 * 60 * 1000;

/** Local endings kept for callers that ask after the run ended ({@link Runner.settled}). */
const KEPT_ENDINGS = 1_000;

/** The run was cancelled (to be a 409 for whoever waits on it). */
export class RunCancelledError extends AppError {
  readonly code = "run_cancelled";

  constructor(readonly id: string) {
    super(`Run ${id} was cancelled`);
  }
}

/** A `GET /runs` query the runner cannot serve: a page size or state out of range (to be a 400). */
export class InvalidRunQueryError extends AppError {
  readonly code = "invalid_run_query";
}

/** What a run's work is given. */
export interface RunWorkContext {
  /** Aborted when the run is cancelled or its process shuts down. */
  readonly signal: AbortSignal;
  /** Progress of one table; stored at most once a second (and when the table is done). */
  readonly onProgress: (progress: ProgressReport) => void;
  /** The rows the source expects per table (its statistics), when it can estimate them. */
  readonly onExpectedRows: (rows: ReadonlyMap<string, number>) => void;
  /** A table's disclosure pre-checks, kept in its progress (`TableProgress.disclosure`). */
  readonly onTableChecked: (checks: TableDisclosure) => void;
  /** Tables an interrupted run of the same request left done: name → SHA-512 of the staged file. */
  readonly reuse: ReadonlyMap<string, string>;
  /**
   * What an interrupted run of the same request (or this run, resumed) recorded per item it finished:
   * name → rows, bytes and SHA-512 of its `done` report. A revocation reads here what earlier attempts
   * removed.
   */
  readonly recorded: ReadonlyMap<string, RecordedProgress>;
  /**
   * Stores every progress report so far, now, and resolves once it is stored. Work that removes
   * something calls it after reporting the item and before removing it, so the record survives a crash.
   *
   * @throws the run's stop reason when another process stopped the run, or the store's error.
   */
  readonly checkpoint: () => Promise<void>;
}

/** What a run recorded of one finished item (a table, a file) in its progress. */
export interface RecordedProgress {
  readonly rows: number;
  readonly bytes: number;
  readonly sha512: string | null;
}

/** The end of a run's work: its reply, what the audit record adds and what the log line adds. */
export interface RunResult {
  readonly status: number;
  readonly body: NonNullable<Run["outcome"]>["body"];
  readonly audit: AuditOutput;
  readonly logFields: Readonly<Record<string, unknown>>;
}

/** A run's work, built from its stored request. */
export type RunWork = (context: RunWorkContext) => Promise<RunResult>;

/** A stored outcome: a reply status and body. */
export type RunOutcome = NonNullable<Run["outcome"]>;

/** Where the runner reports what it did; never row data or secrets. */
export interface RunnerLog {
  info(event: string, fields?: Record<string, unknown>): void;
  warn(event: string, fields?: Record<string, unknown>): void;
  error(event: string, fields?: Record<string, unknown>): void;
}

/** What a {@link Runner} needs. */
export interface RunnerOptions {
  readonly store: RunStore;
  /** Builds a run's work from the run as stored (its `request`), so a run resumes in any process. */
  readonly workOf: (run: Run) => RunWork;
  /** The reply of a failed run: the service's error mapping (status and error envelope). */
  readonly outcomeOfError: (error: unknown) => RunOutcome;
  readonly metrics?: RunMetrics | undefined;
  /** Gets one record per run when it stops; none when absent. */
  readonly auditTrail?: AuditTrail | undefined;
  /** The service named in audit records. Default `publish`. */
  readonly service?: string | undefined;
  readonly log?: RunnerLog | undefined;
  /** The clock. Default `new Date()`. */
  readonly now?: (() => Date) | undefined;
  /** Default {@link DEFAULT_RUN_LEASE_MS}. */
  readonly leaseMs?: number | undefined;
  /** Default {@link DEFAULT_RUN_POLL_MS}. */
  readonly pollMs?: number | undefined;
  /** Default {@link RUN_PROGRESS_INTERVAL_MS}. */
  readonly progressIntervalMs?: number | undefined;
  /** Default {@link RUN_CANCEL_WAIT_MS}. */
  readonly cancelWaitMs?: number | undefined;
  /**
   * Executes a stored, queued run somewhere else (`application/remote_runs.ts`: a Kubernetes Job that
   * runs {@link Runner.runOnce}); absent, this process executes it.
   */
  readonly dispatch?: ((run: Run) => Promise<void>) | undefined;
}

/** How a run is started. */
export interface StartOptions {
  /**
   * True when the caller waits for the run and records its end itself (a synchronous HTTP request,
   * whose audit record carries the outcome and what was written): the runner then records none for
   * this execution. Attached requests, resumed runs and `Prefer: respond-async` runs are recorded by
   * the runner.
   */
  readonly recordedByCaller?: boolean;
}

/** What {@link Runner.start} did. */
export interface StartedRun {
  readonly run: Run;
  /** True when an identical active run existed: this request attached to it. */
  readonly attached: boolean;
}

/**
 * A run that stopped, and, when this process executed it, its work's result or error (the original
 * objects, so that a synchronous caller replies exactly as before runs existed).
 */
export interface SettledRun {
  readonly run: Run;
  readonly result?: RunResult;
  readonly error?: unknown;
}

interface LocalEnding {
  readonly result?: RunResult;
  readonly error?: unknown;
}

interface LocalRun {
  run: Run;
  /** The caller records this execution's end (see {@link StartOptions.recordedByCaller}). */
  readonly recordedByCaller: boolean;
  readonly controller: AbortController;
  readonly tables: TableProgress[];
  /** How the run is being stopped here; unset while it runs on. */
  stopAs?: "cancel" | "interrupt";
  /** Another process stopped it (cancel, or took it for dead): the store holds its end already. */
  stoppedElsewhere: boolean;
  done: Promise<void>;
  /** Store writes of this run, one at a time. */
  writes: Promise<unknown>;
  lastWriteMs: number;
  lastProgressWriteMs: number;
  progressTimer?: ReturnType<typeof setTimeout> | undefined;
}

const LOG_NOTHING: RunnerLog = { info: () => {}, warn: () => {}, error: () => {} };

/** Executes runs and answers about them; one per process and store. */
export class Runner {
  readonly #store: RunStore;
  readonly #workOf: (run: Run) => RunWork;
  readonly #outcomeOfError: (error: unknown) => RunOutcome;
  readonly #metrics: RunMetrics;
  readonly #auditTrail: AuditTrail | undefined;
  readonly #service: string;
  readonly #log: RunnerLog;
  readonly #now: () => Date;
  readonly #leaseMs: number;
  readonly #pollMs: number;
  readonly #progressIntervalMs: number;
  readonly #cancelWaitMs: number;
  readonly #dispatch: ((run: Run) => Promise<void>) | undefined;
  readonly #local = new Map<string, LocalRun>();
  readonly #endings = new Map<string, LocalEnding>();
  readonly #listeners = new Map<string, Set<() => void>>();
  readonly #turnListeners = new Set<() => void>();
  #heartbeat: ReturnType<typeof setInterval> | undefined;
  #maintenance: ReturnType<typeof setInterval> | undefined;
  #prunedAt = Number.NEGATIVE_INFINITY;
  #lastCreatedMs = 0;
  #closed = false;

  /** Builds a runner; no timer runs until a run starts or {@link startMaintenance} is called. */
  constructor(options: RunnerOptions) {
    this.#store = options.store;
    this.#workOf = options.workOf;
    this.#outcomeOfError = options.outcomeOfError;
    this.#metrics = options.metrics ?? NO_RUN_METRICS;
    this.#auditTrail = options.auditTrail;
    this.#service = options.service ?? "publish";
    this.#log = options.log ?? LOG_NOTHING;
    this.#now = options.now ?? (() => new Date());
    this.#leaseMs = options.leaseMs ?? DEFAULT_RUN_LEASE_MS;
    this.#pollMs = options.pollMs ?? DEFAULT_RUN_POLL_MS;
    this.#progressIntervalMs = options.progressIntervalMs ?? RUN_PROGRESS_INTERVAL_MS;
    this.#cancelWaitMs = options.cancelWaitMs ?? RUN_CANCEL_WAIT_MS;
    this.#dispatch = options.dispatch;
  }

  /** The store the runner keeps its runs in. */
  get store(): RunStore {
    return this.#store;
  }

  /**
   * One maintenance pass: marks the runs of dead processes `interrupted` (active runs not updated for a
   * lease) and prunes runs that stopped more than `retentionDays` ago. Failures are logged.
   */
  async maintain(retentionDays: number): Promise<void> {
    const now = this.#now();
    try {
      const count = await this.#store.markInterrupted(
        now.toISOString(),
        new Date(now.getTime() - this.#leaseMs).toISOString(),
      );
      if (count > 0) this.#log.warn("runs_interrupted", { count });
    } catch (e) {
      this.#log.error("runs_interrupt_failed", { message: (e as Error).message });
    }
    if (now.getTime() - this.#prunedAt < PRUNE_INTERVAL_MS) return;
    this.#prunedAt = now.getTime();
    const before = new Date(now.getTime() - retentionDays * PRUNE_INTERVAL_MS).toISOString();
    try {
      const count = await this.#store.prune(before);
      if (count > 0) this.#log.info("runs_pruned", { count, before });
    } catch (e) {
      this.#log.error("runs_prune_failed", { message: (e as Error).message });
    }
  }

  /**
   * Runs {@link maintain} every lease (pruning at most daily) until {@link close}. Idempotent.
   */
  startMaintenance(retentionDays: number): void {
    if (this.#closed || this.#maintenance !== undefined) return;
    this.#maintenance = setInterval(() => void this.maintain(retentionDays), this.#leaseMs);
  }

  /**
   * Stores a new run (queued) before any work, and executes it in the background; an identical request
   * attaches to its active run instead. The run waits queued while another run of its project runs or
   * was queued before it. A fresh request whose identical run was interrupted reuses that run's done
   * tables (the interrupted run stays as it is).
   */
  async start(input: NewRunInput, options: StartOptions = {}): Promise<StartedRun> {
    // Creation times of one process strictly increase, so its runs of a project queue in start order.
    const at = Math.max(this.#now().getTime(), this.#lastCreatedMs + 1);
    this.#lastCreatedMs = at;
    const created = await this.#store.create(newRun(input, new Date(at).toISOString()), {
      exclusive: false,
    });
    if (created.attached) return created;
    const { run } = created;
    this.#metrics.runChanged(run.action, null, "queued", null);
    const recordedByCaller = options.recordedByCaller === true;
    if (this.#dispatch !== undefined) await this.#dispatch(run);
    else this.#execute(run, await this.#previousOfInterrupted(run), recordedByCaller);
    return created;
  }

  /** The run with this id. @throws {RunNotFoundError} */
  async get(id: string): Promise<Run> {
    const run = await this.#store.get(id);
    if (run === undefined) throw new RunNotFoundError(id);
    return run;
  }

  /**
   * Waits until the run is no longer active (succeeded, failed, cancelled or interrupted). A run of this
   * process is followed in memory, another process's run through the store.
   *
   * @throws {RunNotFoundError} when there is no such run.
   */
  async settled(id: string, signal?: AbortSignal): Promise<SettledRun> {
    for (;;) {
      const local = this.#local.get(id);
      if (local !== undefined) await untilAborted(local.done, signal);
      const run = await this.get(id);
      if (!isActiveRunState(run.state)) return { run, ...this.#endings.get(id) };
      if (this.#local.has(id)) continue;
      await this.#changed(id, signal);
    }
  }

  /**
   * The run each time its version passes `afterVersion`, first as it is now, ending after it stops.
   *
   * @throws {RunNotFoundError} when there is no such run.
   */
  async *watch(id: string, afterVersion: number, signal?: AbortSignal): AsyncGenerator<Run> {
    let last = afterVersion;
    for (;;) {
      const run = await this.get(id);
      if (run.version > last) {
        last = run.version;
        yield run;
      }
      if (!isActiveRunState(run.state)) return;
      await this.#changed(id, signal);
    }
  }

  /**
   * Cancels a run. A run of this process is stopped through its signal (waiting up to 5 s for its work to
   * stop); another process's run is marked cancelled in the store, and its process stops it at its next
   * write. Cancelling a cancelled run returns it unchanged.
   *
   * @throws {RunNotFoundError} when there is no such run.
   * @throws {InvalidRunTransitionError} when the run succeeded or failed.
   */
  async cancel(id: string): Promise<Run> {
    const local = this.#local.get(id);
    if (local !== undefined) {
      local.stopAs ??= "cancel";
      local.controller.abort(new RunCancelledError(id));
      await untilTimeout(local.done, this.#cancelWaitMs);
    }
    for (;;) {
      const run = await this.get(id);
      if (run.state === "cancelled") return run;
      const moved = transition(run, "cancel", this.#nowIso());
      try {
        const next = await this.#store.update(id, run.version, {
          ...transitionPatch(moved),
          outcome: this.#outcomeOfError(new RunCancelledError(id)),
        });
        this.#notify(id);
        this.#metrics.runChanged(run.action, run.state, "cancelled", secondsOf(next));
        // An interrupted run has no process left to record its end.
        if (run.state === "interrupted") await this.#audit(next, {});
        return next;
      } catch (e) {
        if (!(e instanceof RunVersionConflictError)) throw e;
      }
    }
  }

  /**
   * Queues an interrupted run again and executes it, reusing the tables it left done.
   *
   * @throws {RunNotFoundError} when there is no such run.
   * @throws {InvalidRunTransitionError} when the run is not interrupted.
   * @throws {RunAlreadyActiveError} when another run of its project is active.
   */
  async resume(id: string): Promise<Run> {
    const run = await this.get(id);
    const moved = transition(run, "resume", this.#nowIso());
    const next = await this.#store.update(id, run.version, {
      ...transitionPatch(moved),
      outcome: null,
    });
    this.#notify(id);
    this.#metrics.runChanged(run.action, run.state, "queued", null);
    if (this.#dispatch !== undefined) await this.#dispatch(next);
    else this.#execute(next, run.tables);
    return next;
  }

  /**
   * The one-run mode (`publish run <id>`, a Kubernetes Job): executes one stored run in this process and
   * waits for it to stop. A queued run is executed (reusing an identical interrupted run's done tables);
   * a run left `running` by a process that died (a retried Job's first pod) is marked interrupted and
   * resumed; an interrupted one is resumed; a run that already stopped is returned as it is.
   *
   * @throws {RunNotFoundError} when there is no such run.
   */
  async runOnce(id: string): Promise<Run> {
    let run = await this.get(id);
    if (run.state === "running") {
      run = await this.#store.update(id, run.version, {
        ...transitionPatch(transition(run, "interrupt", this.#nowIso())),
      });
    }
    if (run.state === "interrupted") {
      const moved = transition(run, "resume", this.#nowIso());
      const next = await this.#store.update(id, run.version, {
        ...transitionPatch(moved),
        outcome: null,
      });
      this.#execute(next, run.tables);
    } else if (run.state === "queued") {
      this.#execute(run, await this.#previousOfInterrupted(run));
    } else return run;
    return (await this.settled(id)).run;
  }

  /**
   * Shuts down: stops the timers and aborts this process's runs through their signals; they become
   * `interrupted` (resumable), not cancelled. Waits up to 5 s for their work to stop. Idempotent.
   */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#maintenance);
    this.#maintenance = undefined;
    const running = [...this.#local.entries()];
    for (const [id, local] of running) {
      local.stopAs ??= "interrupt";
      local.controller.abort(new RunInterruptedError(id));
    }
    await untilTimeout(Promise.all(running.map(([, local]) => local.done)), this.#cancelWaitMs);
    this.#stopHeartbeatIfIdle();
  }

  /** How many runs this process is executing (queued or running). */
  get localRuns(): number {
    return this.#local.size;
  }

  #nowIso(): string {
    return this.#now().toISOString();
  }

  /** `previous`: the progress of the interrupted run this one continues (its own, when resumed). */
  #execute(run: Run, previous: readonly TableProgress[], recordedByCaller = false): void {
    const local: LocalRun = {
      run,
      recordedByCaller,
      controller: new AbortController(),
      tables: run.tables.map((t) => ({ ...t })),
      stoppedElsewhere: false,
      done: Promise.resolve(),
      writes: Promise.resolve(),
      lastWriteMs: this.#now().getTime(),
      lastProgressWriteMs: 0,
    };
    if (this.#closed) {
      local.stopAs = "interrupt";
      local.controller.abort(new RunInterruptedError(run.id));
    }
    this.#local.set(run.id, local);
    this.#startHeartbeat();
    local.done = this.#drive(local, previous).finally(() => {
      this.#local.delete(run.id);
      this.#notify(run.id);
      for (const wake of [...this.#turnListeners]) wake();
      this.#stopHeartbeatIfIdle();
    });
  }

  async #drive(local: LocalRun, previous: readonly TableProgress[]): Promise<void> {
    let ending: LocalEnding;
    try {
      await this.#waitForTurn(local);
      const work = this.#workOf(local.run);
      ending = {
        result: await work({
          signal: local.controller.signal,
          reuse: reuseOfTables(previous),
          recorded: recordedOf(previous),
          checkpoint: () => this.#checkpoint(local),
          onProgress: (progress) => this.#onProgress(local, progress),
          onExpectedRows: (rows) => this.#onExpectedRows(local, rows),
          onTableChecked: (checks) => {
            this.#tableOf(local, checks.table).disclosure = checks;
            this.#scheduleProgress(local);
          },
        }),
      };
    } catch (error) {
      ending = { error };
    }
    try {
      await this.#finish(local, ending);
    } catch (e) {
      this.#log.error("run_end_not_stored", { run: local.run.id, message: (e as Error).message });
    }
  }

  /** Claims the run once it is its turn; waits for runs of this process to end or polls the store. */
  async #waitForTurn(local: LocalRun): Promise<void> {
    const { signal } = local.controller;
    for (;;) {
      signal.throwIfAborted();
      let claimed: Run | undefined;
      try {
        claimed = await this.#store.claim(local.run.id, () => this.#nowIso());
      } catch (e) {
        const fresh = await this.#store.get(local.run.id);
        if (fresh !== undefined && !isActiveRunState(fresh.state)) {
          this.#stoppedElsewhere(local, fresh);
        }
        throw e;
      }
      if (claimed !== undefined) {
        local.run = claimed;
        local.lastWriteMs = this.#now().getTime();
        this.#notify(claimed.id);
        this.#metrics.runChanged(claimed.action, "queued", "running", null);
        return;
      }
      await new Promise<void>((resolve, reject) => {
        const done = () => {
          clearTimeout(timer);
          this.#turnListeners.delete(done);
          signal.removeEventListener("abort", aborted);
        };
        const aborted = () => {
          done();
          reject(signal.reason);
        };
        const timer = setTimeout(() => {
          done();
          resolve();
        }, this.#pollMs);
        this.#turnListeners.add(() => {
          done();
          resolve();
        });
        signal.addEventListener("abort", aborted, { once: true });
      });
    }
  }

  #stoppedElsewhere(local: LocalRun, fresh: Run): void {
    local.run = fresh;
    local.stoppedElsewhere = true;
    local.stopAs ??= fresh.state === "cancelled" ? "cancel" : "interrupt";
    local.controller.abort(
      fresh.state === "cancelled"
        ? new RunCancelledError(fresh.id)
        : new RunInterruptedError(fresh.id),
    );
  }

  async #finish(local: LocalRun, ending: LocalEnding): Promise<void> {
    clearTimeout(local.progressTimer);
    local.progressTimer = undefined;
    const id = local.run.id;
    if (!local.stoppedElsewhere) {
      const [event, outcome] = this.#endOf(local, ending);
      const from = local.run.state;
      if (event === "succeed") {
        // Work that succeeded finished every table, including any whose end it did not report.
        for (const table of local.tables) {
          if (table.state !== "running") continue;
          table.state = "done";
          table.finished_at = this.#nowIso();
        }
      }
      const stored = await this.#save(local, (run) => ({
        ...transitionPatch(transition(run, event, this.#nowIso())),
        tables: local.tables.map((t) => ({ ...t })),
        outcome,
      }));
      if (stored) {
        this.#metrics.runChanged(local.run.action, from, local.run.state, secondsOf(local.run));
      }
    }
    if (local.stoppedElsewhere) {
      ending = {
        error: local.run.state === "cancelled"
          ? new RunCancelledError(id)
          : new RunInterruptedError(id),
      };
    }
    this.#keepEnding(id, ending);
    if (!local.recordedByCaller) await this.#audit(local.run, ending.result?.audit ?? {});
    const level = local.run.state === "succeeded" ? "info" : "warn";
    this.#log[level]("run_stopped", {
      run: id,
      action: local.run.action,
      state: local.run.state,
      status: local.run.outcome?.status ?? null,
    });
  }

  #endOf(local: LocalRun, ending: LocalEnding): [RunEvent, RunOutcome | null] {
    const id = local.run.id;
    if (local.stopAs === "cancel") {
      return ["cancel", this.#outcomeOfError(new RunCancelledError(id))];
    }
    if (local.stopAs === "interrupt") return ["interrupt", null];
    if (ending.result !== undefined) {
      return ["succeed", { status: ending.result.status, body: ending.result.body }];
    }
    return ["fail", this.#outcomeOfError(ending.error)];
  }

  #keepEnding(id: string, ending: LocalEnding): void {
    this.#endings.set(id, ending);
    if (this.#endings.size > KEPT_ENDINGS) {
      const oldest = this.#endings.keys().next().value;
      if (oldest !== undefined) this.#endings.delete(oldest);
    }
  }

  /**
   * Writes a change of a local run, one at a time, at its current version. On a version conflict it
   * reads the run again: if another process stopped it, the work is aborted and nothing is written
   * (returns false); otherwise the change is applied to the fresh run.
   */
  #save(local: LocalRun, patchOf: (run: Run) => RunPatch): Promise<boolean> {
    const write = local.writes.then(async () => {
      for (;;) {
        if (local.stoppedElsewhere) return false;
        try {
          local.run = await this.#store.update(local.run.id, local.run.version, patchOf(local.run));
          local.lastWriteMs = this.#now().getTime();
          this.#notify(local.run.id);
          return true;
        } catch (e) {
          if (!(e instanceof RunVersionConflictError)) throw e;
          const fresh = await this.get(local.run.id);
          if (!isActiveRunState(fresh.state)) {
            this.#stoppedElsewhere(local, fresh);
            this.#notify(fresh.id);
            return false;
          }
          local.run = fresh;
        }
      }
    });
    local.writes = write.catch(() => {});
    return write;
  }

  /** A write that may fail without failing the run (progress, heartbeat): logged. */
  #saveQuietly(local: LocalRun, patchOf: (run: Run) => RunPatch): void {
    this.#save(local, patchOf).catch((e) =>
      this.#log.warn("run_progress_not_stored", {
        run: local.run.id,
        message: (e as Error).message,
      })
    );
  }

  #tableOf(local: LocalRun, name: string): TableProgress {
    let table = local.tables.find((t) => t.name === name);
    if (table === undefined) {
      table = {
        name,
        state: "pending",
        rows: 0,
        bytes: 0,
        started_at: null,
        finished_at: null,
        sha512: null,
        expected_rows: null,
      };
      local.tables.push(table);
    }
    return table;
  }

  #onExpectedRows(local: LocalRun, rows: ReadonlyMap<string, number>): void {
    for (const [name, value] of rows) {
      if (!Number.isSafeInteger(value) || value < 0) continue;
      this.#tableOf(local, name).expected_rows = { value, estimate: true };
    }
    this.#writeProgress(local);
  }

  #onProgress(local: LocalRun, progress: ProgressReport): void {
    const table = this.#tableOf(local, progress.table);
    const at = this.#nowIso();
    table.started_at ??= at;
    table.state = "running";
    if (progress.rows !== null) table.rows = progress.rows;
    table.bytes = progress.bytes;
    if (progress.done === undefined) {
      this.#scheduleProgress(local);
      return;
    }
    table.state = "done";
    table.finished_at = at;
    table.sha512 = progress.done.sha512;
    const engine = local.run.dataset.source_engine;
    if (engine !== null && !progress.done.reused) {
      this.#metrics.tableTransferred(
        engine,
        destinationKindOf(local.run),
        progress.rows,
        progress.bytes,
      );
    }
    this.#writeProgress(local);
  }

  /** Writes the progress now and waits for it (see {@link RunWorkContext.checkpoint}). */
  async #checkpoint(local: LocalRun): Promise<void> {
    clearTimeout(local.progressTimer);
    local.progressTimer = undefined;
    local.lastProgressWriteMs = this.#now().getTime();
    const stored = await this.#save(local, () => ({
      tables: local.tables.map((t) => ({ ...t })),
      updated_at: this.#nowIso(),
    }));
    if (!stored) throw local.controller.signal.reason ?? new RunInterruptedError(local.run.id);
  }

  #scheduleProgress(local: LocalRun): void {
    if (local.progressTimer !== undefined) return;
    const wait = local.lastProgressWriteMs + this.#progressIntervalMs - this.#now().getTime();
    if (wait <= 0) {
      this.#writeProgress(local);
      return;
    }
    local.progressTimer = setTimeout(() => {
      local.progressTimer = undefined;
      this.#writeProgress(local);
    }, wait);
  }

  #writeProgress(local: LocalRun): void {
    clearTimeout(local.progressTimer);
    local.progressTimer = undefined;
    local.lastProgressWriteMs = this.#now().getTime();
    this.#saveQuietly(local, () => ({
      tables: local.tables.map((t) => ({ ...t })),
      updated_at: this.#nowIso(),
    }));
  }

  #startHeartbeat(): void {
    if (this.#heartbeat !== undefined) return;
    const every = Math.max(1, Math.floor(this.#leaseMs / 3));
    this.#heartbeat = setInterval(() => {
      const now = this.#now().getTime();
      for (const local of this.#local.values()) {
        if (now - local.lastWriteMs < every || !isActiveRunState(local.run.state)) continue;
        this.#saveQuietly(local, () => ({ updated_at: this.#nowIso() }));
      }
    }, every);
  }

  #stopHeartbeatIfIdle(): void {
    if (this.#local.size > 0 || this.#heartbeat === undefined) return;
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }

  #notify(id: string): void {
    for (const wake of [...this.#listeners.get(id) ?? []]) wake();
  }

  /** Resolves when this process changes the run, or after a poll interval; rejects on abort. */
  #changed(id: string, signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    return new Promise<void>((resolve, reject) => {
      const listeners = this.#listeners.get(id) ?? new Set<() => void>();
      this.#listeners.set(id, listeners);
      const done = () => {
        clearTimeout(timer);
        listeners.delete(wake);
        if (listeners.size === 0) this.#listeners.delete(id);
        signal?.removeEventListener("abort", aborted);
      };
      const wake = () => {
        done();
        resolve();
      };
      const aborted = () => {
        done();
        reject(signal?.reason);
      };
      const timer = setTimeout(wake, this.#pollMs);
      listeners.add(wake);
      signal?.addEventListener("abort", aborted, { once: true });
    });
  }

  /** The progress of the newest interrupted run of the identical request, to reuse. */
  async #previousOfInterrupted(run: Run): Promise<readonly TableProgress[]> {
    const key = runRequestKey(run);
    try {
      const { runs } = await this.#store.list({
        project: run.project_name,
        state: "interrupted",
        limit: 50,
      });
      const same = runs.find((r) => runRequestKey(r) === key);
      return same === undefined ? [] : same.tables;
    } catch (e) {
      this.#log.warn("run_reuse_unknown", { run: run.id, message: (e as Error).message });
      return [];
    }
  }

  async #audit(run: Run, output: AuditOutput): Promise<void> {
    if (this.#auditTrail === undefined) return;
    const entry = runAuditEntry(run, output, this.#service);
    try {
      await this.#auditTrail.append(entry);
    } catch (e) {
      // As the HTTP audit middleware does: the record goes to the log so that it is not lost.
      this.#log.error("audit_write_failed", {
        run: run.id,
        message: (e as Error).message,
        record: canonicalJson(entry),
      });
    }
  }
}

/**
 * The audit record of a run that stopped, in the operation record format (`domain/audit.ts`):
 * `request_id` is the run id, `action` the run's route (`/data-publish/package|publish`), the request
 * fields come from the stored request, and the state shows in `outcome`, `status` and `error_code`
 * (`run_cancelled` 409, `run_interrupted` 503, or the failed run's own code).
 */
export function runAuditEntry(run: Run, output: AuditOutput, service: string): AuditEntry {
  const ok = run.state === "succeeded";
  const outcome = run.outcome ?? { status: 503, body: null };
  return {
    kind: "operation",
    time: run.updated_at,
    request_id: run.id,
    service_request_id: crypto.randomUUID(),
    service,
    caller_key_id: run.caller_key_id,
    action: `/data-publish/${run.action}`,
    ...(run.request === null ? NO_REQUEST_FIELDS : auditRequestFields(run.request)),
    outcome: ok ? "success" : "error",
    status: outcome.status,
    error_code: ok ? null : errorCodeOf(outcome.body) ?? `run_${run.state}`,
    files: output.files ?? null,
    destination_tables: output.destination_tables ?? null,
    opal_resources: output.opal_resources ?? null,
    ...(output.certificate === undefined ? {} : { certificate: output.certificate }),
  };
}

function errorCodeOf(body: unknown): string | undefined {
  if (body === null || typeof body !== "object") return undefined;
  const payload = (body as { payload?: unknown }).payload;
  if (payload === null || typeof payload !== "object") return undefined;
  const code = (payload as { code?: unknown }).code;
  return typeof code === "string" && /^[a-z0-9_]{1,64}$/.test(code) ? code : undefined;
}

/** The fields a transition changes, as a patch. */
function transitionPatch(run: Run): RunPatch {
  return {
    state: run.state,
    updated_at: run.updated_at,
    started_at: run.started_at,
    finished_at: run.finished_at,
  };
}

/** The tables a run left done with a SHA-512: name → SHA-512. */
export function reuseOf(run: Run): ReadonlyMap<string, string> {
  return reuseOfTables(run.tables);
}

function reuseOfTables(tables: readonly TableProgress[]): ReadonlyMap<string, string> {
  return new Map(
    tables.filter((t) => t.state === "done" && t.sha512 !== null).map((t) => [
      t.name,
      t.sha512!,
    ]),
  );
}

/** The items a run's progress shows done: name → rows, bytes and SHA-512. */
function recordedOf(tables: readonly TableProgress[]): ReadonlyMap<string, RecordedProgress> {
  return new Map(
    tables.filter((t) => t.state === "done").map((t) => [
      t.name,
      { rows: t.rows, bytes: t.bytes, sha512: t.sha512 },
    ]),
  );
}

function destinationKindOf(run: Run): DestinationKind {
  return run.destination.type === "postgresql" ? "postgresql" : "filestore";
}

function secondsOf(run: Run): number | null {
  if (run.started_at === null || run.finished_at === null) return null;
  return (Date.parse(run.finished_at) - Date.parse(run.started_at)) / 1000;
}

/** `promise`, or the signal's reason once it is aborted. */
function untilAborted<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (signal === undefined) return promise;
  signal.throwIfAborted();
  return new Promise<T>((resolve, reject) => {
    const aborted = () => reject(signal.reason);
    signal.addEventListener("abort", aborted, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", aborted));
  });
}

/** Waits for `promise` (its outcome ignored) or `ms`, whichever comes first. */
async function untilTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise.catch(() => {}),
    new Promise<void>((resolve) => timer = setTimeout(resolve, ms)),
  ]);
  clearTimeout(timer);
}
