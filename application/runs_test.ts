import assert from "node:assert/strict";
import { MemoryAuditTrail } from "../adapters/memory/memory_audit_trail.ts";
import { MemoryRunStore } from "../adapters/memory/memory_run_store.ts";
import { InvalidRunTransitionError, newRun, type NewRunInput, type Run } from "../domain/run.ts";
import type { RunMetrics } from "../ports/metrics.ts";
import type { RunStore } from "../ports/run_store.ts";
import { aRunInput } from "../tests/contracts/run_store_contract.ts";
import { CsvDatasetWriter } from "../adapters/filesystem/csv_dataset_writer.ts";
import { MemorySourceDatabase } from "../adapters/memory/memory_source_database.ts";
import { DataContractTransferRequest } from "../domain/contract.ts";
import { FakeWorld } from "../tests/support/apps.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../tests/support/catalogs.ts";
import { aTransferRequest } from "../tests/support/requests.ts";
import { destinationChooser } from "./destinations.ts";
import { packageDataset } from "./package_dataset.ts";
import { ProjectLocks } from "./project_locks.ts";
import type { SourceOpener } from "./source.ts";
import {
  RunCancelledError,
  Runner,
  type RunnerOptions,
  type RunWork,
  type RunWorkContext,
} from "./runs.ts";

const SHA_A = "a".repeat(128);

/** A package request as the publish app stores it (secret names only). */
function packageInput(overrides: Partial<NewRunInput> = {}): NewRunInput {
  return aRunInput({
    action: "package",
    dataset: {
      source_host: "db.example",
      source_engine: "postgresql",
      schema_name: "oncology",
      tables: ["a", "b"],
    },
    request: { project_name: "Pr042", dataset: { schema_name: "oncology" } },
    ...overrides,
  });
}

/** Work the test drives: it records its context and ends when told (or when its signal aborts). */
class ControlledWork {
  readonly contexts: RunWorkContext[] = [];
  readonly #started = Promise.withResolvers<RunWorkContext>();
  readonly #finish = Promise.withResolvers<void>();

  /** Resolves once the work started (its run was claimed). */
  get started(): Promise<RunWorkContext> {
    return this.#started.promise;
  }

  /** Lets the work succeed. */
  finish(): void {
    this.#finish.resolve();
  }

  readonly work: RunWork = async (context) => {
    this.contexts.push(context);
    this.#started.resolve(context);
    await new Promise<void>((resolve, reject) => {
      context.signal.addEventListener("abort", () => reject(context.signal.reason), {
        once: true,
      });
      this.#finish.promise.then(resolve);
    });
    return {
      status: 200,
      body: { status: "success", payload: { data_retrieved: [] } },
      audit: { files: [{ path: "staging/a.csv", sha512: SHA_A, bytes: 3 }] },
      logFields: {},
    };
  };
}

interface Harness {
  readonly runner: Runner;
  readonly store: RunStore;
  readonly works: Map<string, ControlledWork>;
  readonly audit: MemoryAuditTrail;
  readonly changes: string[];
}

function harness(options: Partial<RunnerOptions> = {}): Harness {
  const store = options.store ?? new MemoryRunStore();
  const works = new Map<string, ControlledWork>();
  const audit = new MemoryAuditTrail();
  const changes: string[] = [];
  const metrics: RunMetrics = {
    runChanged: (action, from, to) => changes.push(`${action} ${from}→${to}`),
    tableTransferred: (engine, kind, rows, bytes) =>
      changes.push(`table ${engine} ${kind} ${rows} ${bytes}`),
  };
  const runner = new Runner({
    store,
    workOf: (run: Run) => {
      const work = works.get(run.id) ?? new ControlledWork();
      works.set(run.id, work);
      return work.work;
    },
    outcomeOfError: (error) => ({
      status: error instanceof RunCancelledError ? 409 : 500,
      body: {
        status: "error",
        payload: {
          detail: String((error as Error).message),
          code: (error as RunCancelledError).code ?? "x",
        },
      },
    }),
    metrics,
    auditTrail: audit,
    pollMs: 20,
    cancelWaitMs: 2_000,
    ...options,
  });
  return { runner, store, works, audit, changes };
}

async function until(condition: () => Promise<boolean> | boolean): Promise<void> {
  for (let n = 0; !(await condition()); n++) {
    assert.ok(n < 500, "the condition never held");
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function workOf(h: Harness, id: string): ControlledWork {
  const work = h.works.get(id) ?? new ControlledWork();
  h.works.set(id, work);
  return work;
}

Deno.test("Runner.start() stores the run queued before its work, runs it, records its end", async () => {
  const h = harness();
  try {
    const { run, attached } = await h.runner.start(packageInput());
    assert.equal(attached, false);
    assert.equal(run.state, "queued");
    assert.equal(run.version, 1);
    assert.deepEqual(run.request, { project_name: "Pr042", dataset: { schema_name: "oncology" } });
    const context = await workOf(h, run.id).started;
    assert.equal((await h.store.get(run.id))?.state, "running");
    assert.deepEqual([...context.reuse], []);
    workOf(h, run.id).finish();

    const settled = await h.runner.settled(run.id);
    assert.equal(settled.run.state, "succeeded");
    assert.deepEqual(settled.run.outcome, {
      status: 200,
      body: { status: "success", payload: { data_retrieved: [] } },
    });
    assert.equal(settled.result?.status, 200);
    assert.deepEqual(h.changes, [
      "package null→queued",
      "package queued→running",
      "package running→succeeded",
    ]);
    const [record] = h.audit.records;
    assert.equal(h.audit.records.length, 1);
    assert.equal(record?.request_id, run.id);
    assert.equal(record?.action, "/data-publish/package");
    assert.equal(record?.outcome, "success");
    assert.equal(record?.project_name, "Pr042");
    assert.deepEqual(record?.files, [{ path: "staging/a.csv", sha512: SHA_A, bytes: 3 }]);
  } finally {
    await h.runner.close();
  }
});

Deno.test("Runner queues a run behind its project's running run, FIFO; other projects run", async () => {
  const h = harness();
  try {
    const first = await h.runner.start(packageInput());
    await workOf(h, first.run.id).started;
    const second = await h.runner.start(packageInput({ project_start_time: "20250612_093000" }));
    const third = await h.runner.start(packageInput({ project_start_time: "20250613_093000" }));
    const elsewhere = await h.runner.start(packageInput({ project_name: "Pr043" }));
    await workOf(h, elsewhere.run.id).started;
    await new Promise((resolve) => setTimeout(resolve, 60));
    assert.equal((await h.runner.get(second.run.id)).state, "queued");
    assert.equal((await h.runner.get(third.run.id)).state, "queued");

    workOf(h, first.run.id).finish();
    await workOf(h, second.run.id).started;
    assert.equal((await h.runner.get(third.run.id)).state, "queued", "FIFO: third waits");
    workOf(h, second.run.id).finish();
    workOf(h, third.run.id).finish();
    workOf(h, elsewhere.run.id).finish();
    for (const { run } of [second, third, elsewhere]) {
      assert.equal((await h.runner.settled(run.id)).run.state, "succeeded");
    }
  } finally {
    await h.runner.close();
  }
});

Deno.test("Runner.start() attaches an identical request to its active run", async () => {
  const h = harness();
  try {
    const first = await h.runner.start(packageInput());
    const again = await h.runner.start(packageInput({ caller_key_id: "fedcba9876543210" }));
    assert.equal(again.attached, true);
    assert.equal(again.run.id, first.run.id);
    workOf(h, first.run.id).finish();
    const [a, b] = await Promise.all([
      h.runner.settled(first.run.id),
      h.runner.settled(again.run.id),
    ]);
    assert.deepEqual(a.run, b.run);
    assert.equal(h.works.size, 1, "the work ran once");
  } finally {
    await h.runner.close();
  }
});

Deno.test("Runner.cancel() stops a local run through its signal; repeating it is harmless", async () => {
  const h = harness();
  try {
    const { run } = await h.runner.start(packageInput());
    const context = await workOf(h, run.id).started;
    const cancelled = await h.runner.cancel(run.id);
    assert.equal(context.signal.aborted, true);
    assert.equal(cancelled.state, "cancelled");
    assert.equal(cancelled.outcome?.status, 409);
    assert.equal(
      (cancelled.outcome?.body as { payload: { code: string } }).payload.code,
      "run_cancelled",
    );
    assert.deepEqual(await h.runner.cancel(run.id), cancelled);
    const settled = await h.runner.settled(run.id);
    assert.equal(settled.run.state, "cancelled");
    assert.equal(h.audit.records.at(-1)?.error_code, "run_cancelled");

    const done = await h.runner.start(packageInput({ project_name: "Pr043" }));
    workOf(h, done.run.id).finish();
    await h.runner.settled(done.run.id);
    await assert.rejects(h.runner.cancel(done.run.id), InvalidRunTransitionError);
  } finally {
    await h.runner.close();
  }
});

Deno.test("Runner.cancel() of another process's run: the owner notices at its next write", async () => {
  const store = new MemoryRunStore();
  const owner = harness({ store, leaseMs: 90 });
  const other = harness({ store });
  try {
    const { run } = await owner.runner.start(packageInput());
    const context = await workOf(owner, run.id).started;
    const cancelled = await other.runner.cancel(run.id);
    assert.equal(cancelled.state, "cancelled");
    // The owner's heartbeat (every lease/3) meets the new version, reads the run again and aborts.
    await until(() => context.signal.aborted);
    const settled = await owner.runner.settled(run.id);
    assert.equal(settled.run.state, "cancelled");
    assert.ok(settled.error instanceof RunCancelledError);
    assert.equal(owner.audit.records.at(-1)?.error_code, "run_cancelled");
    assert.equal((await other.runner.settled(run.id)).run.state, "cancelled");
  } finally {
    await owner.runner.close();
    await other.runner.close();
  }
});

Deno.test("Runner.close() interrupts local runs; resume() reuses their done tables", async () => {
  const store = new MemoryRunStore();
  const first = harness({ store });
  const { run } = await first.runner.start(packageInput());
  const context = await workOf(first, run.id).started;
  context.onProgress({ table: "a", rows: 3, bytes: 30, done: { sha512: SHA_A, reused: false } });
  context.onProgress({ table: "b", rows: 1, bytes: 10 });
  await first.runner.close();
  assert.equal(context.signal.aborted, true);
  const interrupted = await store.get(run.id);
  assert.equal(interrupted?.state, "interrupted");
  assert.equal(interrupted?.outcome, null);
  assert.equal(first.audit.records.at(-1)?.error_code, "run_interrupted");

  const second = harness({ store });
  try {
    // A fresh identical request gets the same reuse; the interrupted run is left as it is.
    const fresh = await second.runner.start(packageInput());
    assert.deepEqual([...(await workOf(second, fresh.run.id).started).reuse], [["a", SHA_A]]);
    await second.runner.cancel(fresh.run.id);
    assert.equal((await store.get(run.id))?.state, "interrupted");

    const resumed = await second.runner.resume(run.id);
    assert.equal(resumed.state, "queued");
    const again = await workOf(second, run.id).started;
    assert.deepEqual([...again.reuse], [["a", SHA_A]]);
    workOf(second, run.id).finish();
    assert.equal((await second.runner.settled(run.id)).run.state, "succeeded");
    await assert.rejects(second.runner.resume(run.id), InvalidRunTransitionError);
  } finally {
    await second.runner.close();
  }
});

Deno.test("Runner.maintain() interrupts runs whose process stopped writing, not live ones", async () => {
  const store = new MemoryRunStore();
  const dead = newRun(packageInput({ project_name: "Dead" }), "2026-01-01T00:00:00.000Z");
  await store.create(dead, { exclusive: false });
  await store.claim(dead.id, () => "2026-01-01T00:00:01.000Z");
  const h = harness({ store, leaseMs: 30_000 });
  try {
    const live = await h.runner.start(packageInput());
    await workOf(h, live.run.id).started;
    await h.runner.maintain(90);
    assert.equal((await store.get(dead.id))?.state, "interrupted");
    assert.equal((await store.get(live.run.id))?.state, "running");
  } finally {
    await h.runner.close();
  }
});

Deno.test("Runner stores progress at most once a second, and each table when done", async () => {
  const h = harness();
  try {
    const { run } = await h.runner.start(packageInput());
    const context = await workOf(h, run.id).started;
    context.onExpectedRows(new Map([["a", 200], ["b", 7]]));
    for (let rows = 1; rows <= 200; rows++) {
      context.onProgress({ table: "a", rows, bytes: rows * 10 });
    }
    context.onProgress({
      table: "a",
      rows: 200,
      bytes: 2000,
      done: { sha512: SHA_A, reused: false },
    });
    workOf(h, run.id).finish();
    const { run: done } = await h.runner.settled(run.id);
    // created, claimed, expected rows, at most a timed write, table done, succeeded.
    assert.ok(done.version <= 6, `version ${done.version}`);
    const [a, b] = done.tables;
    assert.equal(a?.state, "done");
    assert.equal(a?.rows, 200);
    assert.equal(a?.bytes, 2000);
    assert.equal(a?.sha512, SHA_A);
    assert.deepEqual(a?.expected_rows, { value: 200, estimate: true });
    assert.equal(b?.state, "pending");
    assert.deepEqual(b?.expected_rows, { value: 7, estimate: true });
    assert.ok(h.changes.includes("table postgresql filestore 200 2000"));
  } finally {
    await h.runner.close();
  }
});

Deno.test("Runner.watch() yields each stored version after the one given, ending when the run stops", async () => {
  const h = harness();
  try {
    const { run } = await h.runner.start(packageInput());
    await workOf(h, run.id).started;
    const seen: number[] = [];
    const watching = (async () => {
      for await (const snapshot of h.runner.watch(run.id, 1)) seen.push(snapshot.version);
    })();
    await until(() => seen.length > 0);
    workOf(h, run.id).finish();
    await watching;
    assert.ok(seen.every((v, n) => n === 0 || v > seen[n - 1]!));
    assert.equal(seen.at(-1), (await h.runner.get(run.id)).version);
    assert.ok(seen[0]! > 1);
  } finally {
    await h.runner.close();
  }
});

Deno.test("packageDataset() reports the source's row estimates before staging, and skips a failed one", async () => {
  using world = new FakeWorld();
  const destination = destinationChooser({
    filestores: new Map([["LSC", world.filestore]]),
    writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
  })({ type: "filestore", name: "lsc", format: "csv" });
  const request = DataContractTransferRequest.parse(aTransferRequest());
  for (const failing of [false, true]) {
    const asked: string[][] = [];
    const openSource: SourceOpener = () => {
      const db = new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS);
      return Promise.resolve(Object.assign(db, {
        estimateRows: (_schema: string, tables: readonly string[]) => {
          asked.push([...tables]);
          return failing
            ? Promise.reject(new Error("no statistics"))
            : Promise.resolve(new Map(tables.map((t) => [t, 3])));
        },
      }));
    };
    const events: string[] = [];
    const staged = await packageDataset(request, {
      destination,
      openSource,
      locks: new ProjectLocks(),
    }, {
      concurrency: 1,
      batchRows: 2,
      onExpectedRows: (rows) => events.push(`expected ${[...rows].join(";")}`),
      onProgress: (p) => events.push(`progress ${p.table}`),
    });
    assert.ok(staged.dataRetrieved.length > 0);
    assert.deepEqual(asked, [request.dataset.tables!.map((t) => t.name)]);
    if (failing) {
      assert.ok(!events.some((e) => e.startsWith("expected")));
    } else {
      assert.match(events[0]!, /^expected tumour_stage,3$/);
      assert.ok(events.slice(1).every((e) => e.startsWith("progress")));
    }
  }
});

Deno.test("RunWorkContext.checkpoint() resolves once the progress is stored; recorded carries it on", async () => {
  // A store whose writes take a while: a checkpoint must wait for them.
  let slowWrites = false;
  class SlowRunStore extends MemoryRunStore {
    override async update(...args: Parameters<RunStore["update"]>) {
      if (slowWrites) await new Promise((resolve) => setTimeout(resolve, 50));
      return await super.update(...args);
    }
  }
  const store = new SlowRunStore();
  const memory = store;
  const first = harness({ store });
  const { run } = await first.runner.start(packageInput({ action: "revoke" }));
  const context = await workOf(first, run.id).started;
  slowWrites = true;
  context.onProgress({
    table: "production/data/a.csv",
    rows: 0,
    bytes: 30,
    done: { sha512: SHA_A, reused: false },
  });
  context.onProgress({
    table: "table:s.t",
    rows: 7,
    bytes: 0,
    done: { sha512: null, reused: false },
  });
  await context.checkpoint();
  const stored = (await memory.get(run.id))!.tables.map((t) => [t.name, t.rows, t.bytes, t.sha512]);
  assert.deepEqual(stored, [["production/data/a.csv", 0, 30, SHA_A], ["table:s.t", 7, 0, null]]);
  slowWrites = false;
  await first.runner.close();

  const second = harness({ store });
  try {
    await second.runner.resume(run.id);
    const again = await workOf(second, run.id).started;
    assert.deepEqual([...again.recorded], [
      ["production/data/a.csv", { rows: 0, bytes: 30, sha512: SHA_A }],
      ["table:s.t", { rows: 7, bytes: 0, sha512: null }],
    ]);
    workOf(second, run.id).finish();
    assert.equal((await second.runner.settled(run.id)).run.state, "succeeded");
  } finally {
    await second.runner.close();
  }
});
