import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { MemorySourceDatabase } from "../../adapters/memory/memory_source_database.ts";
import { openSqliteRunStore, sqliteRunStorePath } from "../../adapters/sqlite/sqlite_run_store.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../../tests/support/catalogs.ts";
import { TEST_MANIFEST_KEY } from "../../tests/support/manifest_key.ts";
import { aTransferRequest } from "../../tests/support/requests.ts";
import {
  formatPercent,
  measureRunOverhead,
  overheadPercent,
  overheadReport,
  overheadSummary,
  type RunOverhead,
} from "./run_overhead.ts";

const MEASURED: RunOverhead = { runs: 3, plainSeconds: 2, runnerSeconds: 2.02, storeWrites: 7 };

Deno.test("overheadPercent() is the runner's extra time over the plain path's", () => {
  assert.equal(overheadPercent(MEASURED).toFixed(6), "1.000000");
  assert.equal(overheadPercent({ ...MEASURED, runnerSeconds: 1.9 }).toFixed(6), "-5.000000");
});

Deno.test("formatPercent() signs the percentage and keeps two decimals", () => {
  assert.equal(formatPercent(0.8444), "+0.84 %");
  assert.equal(formatPercent(-1.5), "−1.50 %");
  assert.equal(formatPercent(0), "+0.00 %");
});

Deno.test("overheadSummary() gives both medians, the store writes and the overhead", () => {
  assert.equal(
    overheadSummary(MEASURED),
    "Run bookkeeping, PostgreSQL → csv in one process: plain 2.00 s, through the runner 2.02 s " +
      "(7 store writes per run), overhead +1.00 %",
  );
});

Deno.test("overheadReport() gives a one-row Markdown table under what was compared", () => {
  const lines = overheadReport(MEASURED).split("\n");
  assert.match(lines[0]!, /^Run bookkeeping \(issue 13, target under 2 %\).*median of 3 runs/);
  assert.deepEqual(lines.slice(1), [
    "",
    "| path | plain (s) | through the runner (s) | store writes per run | overhead |",
    "| --- | ---: | ---: | ---: | ---: |",
    "| PostgreSQL → csv | 2.00 | 2.02 | 7 | +1.00 % |",
  ]);
});

Deno.test({
  name: "measureRunOverhead() packages by both paths, stores the runs, and leaves no staging",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const work = await mkdtemp(join(tmpdir(), "cr8tor-overhead-"));
    try {
      const storage = join(work, "lsc");
      await mkdir(join(storage, "staging"), { recursive: true });
      await mkdir(join(storage, "production"));
      const stateDir = join(work, "state");
      let opened = 0;
      const request = aTransferRequest() as { source: Record<string, unknown> };
      const overhead = await measureRunOverhead({
        filestore: new LocalFilestore(storage, { manifestKey: TEST_MANIFEST_KEY }),
        storage,
        stateDir,
        openSource: () => {
          opened++;
          return Promise.resolve(new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS));
        },
        source: request.source,
        schemaName: "oncology",
        table: "tumour_stage",
        limits: { concurrency: 1, batchRows: 1 },
      }, 2);

      assert.equal(overhead.runs, 2);
      assert.ok(overhead.plainSeconds > 0 && overhead.runnerSeconds > 0);
      // Each path ran three times (a warm-up and two measured runs).
      assert.equal(opened, 6);
      // Queued, running, progress and the end: several writes per run.
      assert.ok(overhead.storeWrites >= 3, String(overhead.storeWrites));
      // Every run's staging was removed.
      assert.deepEqual(await readdir(join(storage, "staging", "BenchRuns")), []);

      // The runner's runs are in the SQLite store under the state directory, done, with progress.
      await using store = await openSqliteRunStore({ path: sqliteRunStorePath(stateDir) });
      const { runs } = await store.list({ limit: 10 });
      assert.equal(runs.length, 3);
      for (const run of runs) {
        assert.equal(run.state, "succeeded");
        assert.deepEqual(run.tables.map((t) => [t.name, t.state]), [["tumour_stage", "done"]]);
        assert.match(run.tables[0]?.sha512 ?? "", /^[0-9a-f]{128}$/);
      }
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  },
});
