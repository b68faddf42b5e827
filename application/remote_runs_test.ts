/**
 * Runs executed elsewhere: `Runner.runOnce` (the one-run mode a Job runs), the runner's `dispatch` hook,
 * and `RemoteRuns` following an execution (a fake `RunExecutor`, the in-memory run store).
 */
import assert from "node:assert/strict";
import { MemoryRunStore } from "../adapters/memory/memory_run_store.ts";
import { AppError } from "../domain/errors.ts";
import { newRun, type Run, transition } from "../domain/run.ts";
import type { ExecutionState, RunExecutor, RunLaunch } from "../ports/run_executor.ts";
import { RemoteRuns, RunExecutionFailedError } from "./remote_runs.ts";
import { Runner, type RunWork } from "./runs.ts";

const input = {
  action: "package" as const,
  project_name: "Pr042",
  project_start_time: "20250611_093000",
  dataset: { source_host: "db", source_engine: "postgresql", schema_name: "s", tables: null },
  destination: { type: "filestore", name: "LSC", format: "csv" },
  caller_key_id: "k",
  request: { any: "thing" },
} as const;

const outcomeOfError = (e: unknown) => ({
  status: 500,
  body: { status: "error", payload: { code: e instanceof AppError ? e.code : "internal_error" } },
});

/** Work that reports each table done with a SHA-512, recording what it was given to reuse. */
function work(tables: string[], seen: Map<string, string>[]): (run: Run) => RunWork {
  return () => ({ onProgress, reuse }) => {
    seen.push(new Map(reuse));
    for (const table of tables) {
      onProgress({ table, rows: 1, bytes: 10, done: { sha512: "a".repeat(128), reused: false } });
    }
    return Promise.resolve({
      status: 200,
      body: { status: "success", payload: {} },
      audit: {},
      logFields: {},
    });
  };
}

Deno.test("runOnce: executes a queued run to its end; a stopped run is returned as it is", async () => {
  const store = new MemoryRunStore();
  const seen: Map<string, string>[] = [];
  const runner = new Runner({ store, workOf: work(["t1", "t2"], seen), outcomeOfError });
  const { run } = await store.create(newRun(input, new Date().toISOString()), { exclusive: false });
  const ended = await runner.runOnce(run.id);
  assert.equal(ended.state, "succeeded");
  assert.deepEqual(ended.tables.map((t) => [t.name, t.state]), [["t1", "done"], ["t2", "done"]]);
  const again = await runner.runOnce(run.id);
  assert.equal(again.version, ended.version, "nothing written for a run that already stopped");
  assert.equal(seen.length, 1);
  await runner.close();
});

Deno.test("runOnce: a run a dead pod left running is interrupted and resumed with its done tables", async () => {
  const store = new MemoryRunStore();
  const created =
    (await store.create(newRun(input, new Date().toISOString()), { exclusive: false }))
      .run;
  const at = new Date().toISOString();
  const running = transition(created, "start", at);
  await store.update(created.id, created.version, {
    state: running.state,
    updated_at: at,
    started_at: running.started_at,
    finished_at: null,
    tables: [{
      name: "t1",
      state: "done",
      rows: 1,
      bytes: 10,
      started_at: at,
      finished_at: at,
      sha512: "b".repeat(128),
      expected_rows: null,
    }],
  });
  const seen: Map<string, string>[] = [];
  const runner = new Runner({ store, workOf: work(["t2"], seen), outcomeOfError });
  const ended = await runner.runOnce(created.id);
  assert.equal(ended.state, "succeeded");
  assert.deepEqual([...seen[0]!], [["t1", "b".repeat(128)]]);
  await runner.close();
});

/** An executor whose executions' states the test sets. */
class FakeExecutor implements RunExecutor {
  readonly launched: RunLaunch[] = [];
  readonly states = new Map<string, ExecutionState>();

  launch(launch: RunLaunch) {
    const name = launch.name ?? `job-${launch.run.id}`;
    const created = !this.states.has(name);
    this.launched.push(launch);
    if (created) this.states.set(name, { state: "running" });
    return Promise.resolve({ name, created });
  }

  state(name: string) {
    return Promise.resolve(this.states.get(name) ?? { state: "missing" as const });
  }

  remove(name: string) {
    this.states.delete(name);
    return Promise.resolve();
  }
}

Deno.test("dispatch: the runner stores the run and launches it instead of executing it", async () => {
  const store = new MemoryRunStore();
  const executor = new FakeExecutor();
  const remote = new RemoteRuns({ executor, store, outcomeOfError, pollMs: 20 });
  const runner = new Runner({
    store,
    workOf: () => () => Promise.reject(new Error("must not execute here")),
    outcomeOfError,
    dispatch: (run) => remote.dispatch(run),
  });
  const { run } = await runner.start(input);
  assert.equal(executor.launched.length, 1);
  assert.equal(executor.launched[0]!.run.id, run.id);
  assert.equal((await store.get(run.id))!.state, "queued");
  // The execution dies: the follower marks the run failed with its reason, and settled() sees it.
  executor.states.set(`job-${run.id}`, {
    state: "failed",
    reason: "Evicted",
    message: "The node was low on memory",
  });
  const settled = await runner.settled(run.id);
  assert.equal(settled.run.state, "failed");
  assert.equal(
    (settled.run.outcome!.body as { payload: { code: string } }).payload.code,
    "run_execution_failed",
  );
  remote.close();
  await runner.close();
});

Deno.test("dispatch: a launch that fails fails the run, and the error reaches the caller", async () => {
  const store = new MemoryRunStore();
  const executor = new FakeExecutor();
  executor.launch = () => Promise.reject(new Error("jobs.batch is forbidden"));
  const remote = new RemoteRuns({ executor, store, outcomeOfError });
  const runner = new Runner({
    store,
    workOf: () => () => Promise.reject(new Error("must not execute here")),
    outcomeOfError,
    dispatch: (run) => remote.dispatch(run),
  });
  await assert.rejects(runner.start(input), /forbidden/);
  const [run] = (await store.list({ limit: 5 })).runs;
  assert.equal(run!.state, "failed", "not left queued with nothing to execute it");
  const payload = (run!.outcome!.body as { payload: { code: string } }).payload;
  assert.equal(payload.code, "run_execution_failed");
  remote.close();
  await runner.close();
});

Deno.test("RemoteRuns.check: goes on while running, stops once the run stopped, fails a vanished execution", async () => {
  const store = new MemoryRunStore();
  const executor = new FakeExecutor();
  const remote = new RemoteRuns({ executor, store, outcomeOfError });
  const { run } = await store.create(newRun(input, new Date().toISOString()), { exclusive: false });
  await executor.launch({ run, name: "j" });
  assert.equal(await remote.check(run.id, "j"), true);
  await executor.remove("j");
  assert.equal(await remote.check(run.id, "j"), false);
  const failed = (await store.get(run.id))!;
  assert.equal(failed.state, "failed");
  assert.match(
    (failed.outcome!.body as { payload: { code: string } }).payload.code,
    /run_execution_failed/,
  );
  // Already stopped: nothing more is written.
  await remote.fail(run.id, new RunExecutionFailedError("X", "y"));
  assert.equal((await store.get(run.id))!.version, failed.version);
  remote.close();
});
