import assert from "node:assert/strict";
import {
  estimateProgress,
  FINAL_RUN_STATES,
  InvalidRunTransitionError,
  newRun,
  type NewRunInput,
  type Run,
  RUN_EVENTS,
  RUN_STATES,
  type RunEvent,
  runRequestKey,
  runSchema,
  type RunState,
  runView,
  transition,
} from "./run.ts";

const T0 = "2026-12-06T20:00:00.000Z";
const T1 = "2026-12-06T20:05:00.000Z";

const INPUT: NewRunInput = {
  action: "publish",
  project_name: "Pr042",
  project_start_time: "20250611_093000",
  dataset: { source_host: "db.example", schema_name: "oncology", tables: ["a", "b"] },
  destination: { type: "filestore", name: "LSC", format: "csv" },
  caller_key_id: "0123456789abcdef",
};

function runIn(state: RunState): Run {
  return { ...newRun(INPUT, T0), state, started_at: state === "queued" ? null : T0 };
}

/** Every (state, event) pair and what the table must answer: a state, or `null` for a refusal. */
const EXPECTED: Record<RunState, Record<RunEvent, RunState | null>> = {
  queued: {
    start: "running",
    succeed: null,
    fail: "failed",
    cancel: "cancelled",
    interrupt: "interrupted",
    resume: null,
  },
  running: {
    start: null,
    succeed: "succeeded",
    fail: "failed",
    cancel: "cancelled",
    interrupt: "interrupted",
    resume: null,
  },
  succeeded: {
    start: null,
    succeed: null,
    fail: null,
    cancel: null,
    interrupt: null,
    resume: null,
  },
  failed: { start: null, succeed: null, fail: null, cancel: null, interrupt: null, resume: null },
  cancelled: {
    start: null,
    succeed: null,
    fail: null,
    cancel: null,
    interrupt: null,
    resume: null,
  },
  interrupted: {
    start: null,
    succeed: null,
    fail: null,
    cancel: "cancelled",
    interrupt: null,
    resume: "queued",
  },
};

for (const state of RUN_STATES) {
  for (const event of RUN_EVENTS) {
    const expected = EXPECTED[state][event];
    Deno.test(`transition: ${state} + ${event} → ${expected ?? "refused"}`, () => {
      const run = runIn(state);
      if (expected === null) {
        assert.throws(() => transition(run, event, T1), (e: unknown) => {
          assert.ok(e instanceof InvalidRunTransitionError);
          assert.equal(e.code, "invalid_run_transition");
          assert.equal(e.from, state);
          assert.equal(e.event, event);
          assert.equal(e.message, `Cannot ${event} a run that is ${state}`);
          return true;
        });
        return;
      }
      const next = transition(run, event, T1);
      assert.equal(next.state, expected);
      assert.equal(next.updated_at, T1);
      assert.equal(next.version, run.version, "the store, not the domain, counts versions");
      assert.equal(
        next.finished_at,
        FINAL_RUN_STATES.includes(expected) || expected === "interrupted" ? T1 : null,
      );
      if (event === "start") assert.equal(next.started_at, T1);
      if (event === "resume") assert.equal(next.started_at, null);
      assert.doesNotThrow(() => runSchema.parse(next));
      assert.equal(run.state, state, "the input run is not changed");
    });
  }
}

Deno.test("the final states are succeeded, failed and cancelled", () => {
  assert.deepEqual([...FINAL_RUN_STATES].sort(), ["cancelled", "failed", "succeeded"]);
});

Deno.test("newRun makes a valid queued run at version 1 with a fresh id", () => {
  const a = newRun(INPUT, T0);
  const b = newRun(INPUT, T0);
  assert.equal(a.state, "queued");
  assert.equal(a.version, 1);
  assert.equal(a.created_at, T0);
  assert.notEqual(a.id, b.id);
  assert.deepEqual(runSchema.parse(a), a);
});

Deno.test("newRun refuses a run without a project name", () => {
  assert.throws(() => newRun({ ...INPUT, project_name: "" }, T0));
});

Deno.test("runSchema refuses a bad SHA-512, a negative row count and unknown fields", () => {
  const run = newRun(INPUT, T0);
  const table = {
    name: "a",
    state: "done" as const,
    rows: 3,
    bytes: 10,
    started_at: T0,
    finished_at: T1,
    sha512: "ab".repeat(64),
    expected_rows: { value: 3, estimate: true as const },
  };
  assert.doesNotThrow(() => runSchema.parse({ ...run, tables: [table] }));
  assert.throws(() => runSchema.parse({ ...run, tables: [{ ...table, sha512: "AB".repeat(64) }] }));
  assert.throws(() => runSchema.parse({ ...run, tables: [{ ...table, rows: -1 }] }));
  assert.throws(() =>
    runSchema.parse({ ...run, tables: [{ ...table, expected_rows: { value: 3 } }] })
  );
  assert.throws(() => runSchema.parse({ ...run, extra: 1 }));
});

Deno.test("runRequestKey is the same for the same request, whoever asks and in any key order", () => {
  const a = newRun(INPUT, T0);
  const b = newRun({
    ...INPUT,
    caller_key_id: "fedcba9876543210",
    destination: { format: "csv", name: "LSC", type: "filestore" },
  }, T1);
  assert.equal(runRequestKey(a), runRequestKey(b));
  assert.match(runRequestKey(a), /^[0-9a-f]{64}$/);
});

for (
  const [field, change] of [
    ["action", { action: "package" }],
    ["project_name", { project_name: "Pr043" }],
    ["project_start_time", { project_start_time: "20250611_093001" }],
    ["dataset", { dataset: { ...INPUT.dataset, schema_name: "other" } }],
    ["destination", { destination: { ...INPUT.destination, format: "duckdb" } }],
    ["request", { request: { dataset: { tables: [{ name: "a", columns: [{ name: "x" }] }] } } }],
  ] as const satisfies readonly (readonly [string, Partial<NewRunInput>])[]
) {
  Deno.test(`runRequestKey differs when the ${field} differs`, () => {
    assert.notEqual(runRequestKey(INPUT), runRequestKey({ ...INPUT, ...change }));
  });
}

Deno.test("a run keeps its request, which its view leaves out; runs stored without one read as null", () => {
  const request = {
    project_name: "Pr042",
    source: { credentials: { password_key: "pgpassword" } },
  };
  const run = newRun({ ...INPUT, request }, T0);
  assert.deepEqual(run.request, request);
  assert.equal(run.dataset.source_engine, null);
  assert.equal("request" in runView(run), false);
  assert.deepEqual({ ...runView(run), request }, run);
  const { request: _r, ...stored } = run;
  const { source_engine: _e, ...dataset } = run.dataset;
  assert.deepEqual(runSchema.parse({ ...stored, dataset }), { ...run, request: null });
});

Deno.test("estimateProgress: half done in 10 s leaves 10 s, marked as an estimate", () => {
  assert.deepEqual(estimateProgress({ value: 1000, estimate: true }, 500, 10_000), {
    percent: 50,
    eta_ms: 10_000,
    estimate: true,
  });
});

Deno.test("estimateProgress: no expectation, no estimate", () => {
  assert.equal(estimateProgress(null, 10, 1000), null);
});

Deno.test("estimateProgress: no ETA before the first row", () => {
  assert.deepEqual(estimateProgress({ value: 10, estimate: true }, 0, 1000), {
    percent: 0,
    eta_ms: null,
    estimate: true,
  });
});

Deno.test("estimateProgress: more rows than estimated caps at 100 % with nothing left", () => {
  assert.deepEqual(estimateProgress({ value: 10, estimate: true }, 15, 1000), {
    percent: 100,
    eta_ms: 0,
    estimate: true,
  });
});

Deno.test("estimateProgress: an empty table is done", () => {
  assert.deepEqual(estimateProgress({ value: 0, estimate: true }, 0, 0), {
    percent: 100,
    eta_ms: 0,
    estimate: true,
  });
});
