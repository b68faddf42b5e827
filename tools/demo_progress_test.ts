import assert from "node:assert/strict";
import type { RunView, TableProgress } from "../domain/run.ts";
import {
  formatBytes,
  progressLine,
  ProgressPrinter,
  readServerSentEvents,
  type ServerSentEvent,
} from "./demo_progress.ts";

/** A stream that delivers `chunks` one by one, as a network might cut them. */
function streamOf(...chunks: string[]): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  return new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
}

async function eventsOf(...chunks: string[]): Promise<ServerSentEvent[]> {
  return await Array.fromAsync(readServerSentEvents(streamOf(...chunks)));
}

Deno.test("readServerSentEvents() reads id, event and data, across chunk boundaries", async () => {
  assert.deepEqual(
    await eventsOf(
      ": keep-alive\n\n",
      "id: 1\nevent: run\nda",
      'ta: {"a":1}\n\nid: 2\r\nevent: run\r',
      '\ndata: {"a":2}\r\n\r\n',
    ),
    [
      { id: "1", event: "run", data: '{"a":1}' },
      { id: "2", event: "run", data: '{"a":2}' },
    ],
  );
});

Deno.test("readServerSentEvents() joins data lines, defaults the event, drops a cut-off event", async () => {
  assert.deepEqual(await eventsOf("data: a\ndata:b\n\n", "data: cut off\n"), [
    { id: null, event: "message", data: "a\nb" },
  ]);
});

const T0 = Date.parse("2026-01-01T00:00:00.000Z");

function aTable(overrides: Partial<TableProgress> = {}): TableProgress {
  return {
    name: "patients",
    state: "running",
    rows: 150,
    bytes: 54_000,
    started_at: new Date(T0).toISOString(),
    finished_at: null,
    sha512: null,
    expected_rows: { value: 300, estimate: true },
    ...overrides,
  };
}

Deno.test("progressLine() shows rows, bytes, the estimate's percentage and ETA, and the end", async (t) => {
  const cases: [string, TableProgress, string][] = [
    ["running, estimated", aTable(), "150 of ~300 rows (50 %, about 2 s left), 54 KB"],
    ["running, not estimated", aTable({ expected_rows: null }), "150 rows, 54 KB"],
    ["running, rows not counted", aTable({ rows: 0 }), "~300 rows expected, 54 KB"],
    [
      "done",
      aTable({ state: "done", rows: 1000, expected_rows: null }),
      "1,000 rows, 54 KB, done",
    ],
    [
      "done, estimated",
      aTable({ state: "done", rows: 300 }),
      "300 rows (~300 expected), 54 KB, done",
    ],
    [
      "done, empty",
      aTable({ state: "done", rows: 0, bytes: 0, expected_rows: null }),
      "0 rows, 0 B, done",
    ],
    ["failed", aTable({ state: "failed", expected_rows: null }), "150 rows, 54 KB, FAILED"],
  ];
  for (const [name, table, expected] of cases) {
    await t.step(name, () => {
      assert.equal(
        progressLine("clinical", table, T0 + 2000),
        `packaging clinical.patients: ${expected}`,
      );
    });
  }
});

Deno.test("formatBytes() uses B, KB and MB", () => {
  assert.deepEqual([999, 54_321, 187_654_321].map(formatBytes), ["999 B", "54 KB", "187.7 MB"]);
});

function aRun(tables: TableProgress[]): RunView {
  return {
    dataset: { schema_name: "clinical" },
    tables,
  } as unknown as RunView;
}

Deno.test("ProgressPrinter shows a running table at most once a second, and its end once", () => {
  const out: string[] = [];
  let now = T0;
  const printer = new ProgressPrinter((text) => out.push(text), { indent: "  ", now: () => now });
  printer.show(aRun([aTable({ rows: 10 }), aTable({ name: "wards", state: "pending", rows: 0 })]));
  now += 500;
  printer.show(aRun([aTable({ rows: 20 })]));
  now += 600;
  printer.show(aRun([aTable({ rows: 30 })]));
  printer.show(aRun([aTable({ state: "done", rows: 300 })]));
  printer.show(aRun([aTable({ state: "done", rows: 300 })]));
  printer.end();
  assert.deepEqual(out, [
    "  packaging clinical.patients: 10 of ~300 rows (3 %), 54 KB\n",
    "  packaging clinical.patients: 30 of ~300 rows (10 %, about 10 s left), 54 KB\n",
    "  packaging clinical.patients: 300 rows (~300 expected), 54 KB, done\n",
  ]);
});

Deno.test("ProgressPrinter rewrites the running line in place on a terminal", () => {
  const out: string[] = [];
  let now = T0;
  const printer = new ProgressPrinter((text) => out.push(text), { terminal: true, now: () => now });
  printer.show(aRun([aTable({ rows: 10, expected_rows: null })]));
  now += 1000;
  printer.show(aRun([aTable({ rows: 20, expected_rows: null })]));
  printer.show(aRun([aTable({ state: "done", rows: 30, expected_rows: null })]));
  printer.show(aRun([aTable({ name: "wards", rows: 5, expected_rows: null })]));
  printer.end();
  assert.deepEqual(out, [
    "packaging clinical.patients: 10 rows, 54 KB",
    "\r\x1b[2Kpackaging clinical.patients: 20 rows, 54 KB",
    "\r\x1b[2Kpackaging clinical.patients: 30 rows, 54 KB, done\n",
    "packaging clinical.wards: 5 rows, 54 KB",
    "\n",
  ]);
});
