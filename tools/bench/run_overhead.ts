/**
 * The cost of run bookkeeping (issue 13: under 2 % on PostgreSQL → CSV at 1M rows), measured in the
 * bench's own process: the same package of one dataset into a CSV filestore, once through the plain use
 * case (`packageDataset` with no signal and no progress callback, as before runs existed) and once
 * through the {@link Runner} (`application/runs.ts`) with the default SQLite run store in a temporary
 * `STATE_DIR`, progress reporting on (every batch reported, stored at most once a second). The two paths
 * alternate (plain first on even runs, the runner first on odd ones), after one warm-up of each, and the
 * medians are compared.
 *
 * @module
 */
import { join } from "node:path";
import { rm } from "node:fs/promises";
import { CsvDatasetWriter } from "../../adapters/filesystem/csv_dataset_writer.ts";
import { openSqliteRunStore, sqliteRunStorePath } from "../../adapters/sqlite/sqlite_run_store.ts";
import { destinationChooser } from "../../application/destinations.ts";
import { packageDataset } from "../../application/package_dataset.ts";
import { ProjectLocks } from "../../application/project_locks.ts";
import { Runner, type RunWork } from "../../application/runs.ts";
import type { SourceOpener } from "../../application/source.ts";
import { DataContractTransferRequest } from "../../domain/contract.ts";
import type { Run } from "../../domain/run.ts";
import type { Filestore } from "../../ports/filestore.ts";
import { errorOutcome } from "../../apps/_shared/http_errors.ts";
import { median } from "./report.ts";

/** What the two paths measured: median seconds of each, over the same number of runs. */
export interface RunOverhead {
  /** Runs of each path, after one warm-up of each. */
  readonly runs: number;
  /** Median seconds of the plain use case. */
  readonly plainSeconds: number;
  /** Median seconds through the runner (stored run, SQLite store, progress on). */
  readonly runnerSeconds: number;
  /** Median number of store writes of one run through the runner (its versions). */
  readonly storeWrites: number;
}

/** The runner's extra time as a percentage of the plain path's (negative: the runner was faster). */
export function overheadPercent(overhead: RunOverhead): number {
  return (overhead.runnerSeconds / overhead.plainSeconds - 1) * 100;
}

/** The line printed when the overhead is measured. */
export function overheadSummary(overhead: RunOverhead): string {
  return `Run bookkeeping, PostgreSQL → csv in one process: plain ${
    overhead.plainSeconds.toFixed(2)
  } s, through the runner ${overhead.runnerSeconds.toFixed(2)} s (${overhead.storeWrites} store ` +
    `writes per run), overhead ${formatPercent(overheadPercent(overhead))}`;
}

/** A signed percentage with two decimals, e.g. `+0.84 %`. */
export function formatPercent(percent: number): string {
  return `${percent >= 0 ? "+" : "−"}${Math.abs(percent).toFixed(2)} %`;
}

/**
 * The overhead as Markdown for the results: a one-row table (plain, runner, store writes, overhead)
 * and what was compared.
 */
export function overheadReport(overhead: RunOverhead): string {
  return [
    `Run bookkeeping (issue 13, target under 2 %): the PostgreSQL → csv package in one process, ` +
    `the plain use case against the same through the runner (SQLite run store in a temporary ` +
    `STATE_DIR, progress reported per batch and stored at most once a second); median of ` +
    `${overhead.runs} runs of each, alternating, after a warm-up of each.`,
    "",
    "| path | plain (s) | through the runner (s) | store writes per run | overhead |",
    "| --- | ---: | ---: | ---: | ---: |",
    `| PostgreSQL → csv | ${overhead.plainSeconds.toFixed(2)} | ${
      overhead.runnerSeconds.toFixed(2)
    } | ${overhead.storeWrites} | ${formatPercent(overheadPercent(overhead))} |`,
  ].join("\n");
}

/** What the measurement needs. */
export interface RunOverheadSetup {
  /** The CSV filestore staged into, as `LSC`; each run's staging is removed after it. */
  readonly filestore: Filestore;
  /** The filestore's base folder (to remove each run's staging). */
  readonly storage: string;
  /** The temporary state directory of the runner's SQLite store. */
  readonly stateDir: string;
  /** Opens the source (the bench: a PostgreSQL connection as the read-only login). */
  readonly openSource: SourceOpener;
  /** The source as a request names it (`type`, `host_url`, `port`, `database`, `credentials`). */
  readonly source: Record<string, unknown>;
  readonly schemaName: string;
  readonly table: string;
  /** The service's limits: tables at once and rows per batch. */
  readonly limits: { readonly concurrency: number; readonly batchRows: number };
}

/**
 * Packages the same table `runs` + 1 times by each path (the first of each is a warm-up) and returns
 * the medians.
 *
 * @throws when a package fails, by either path.
 */
export async function measureRunOverhead(
  setup: RunOverheadSetup,
  runs: number,
): Promise<RunOverhead> {
  const destinationFor = destinationChooser({
    filestores: new Map([["LSC", setup.filestore]]),
    writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
  });
  const locks = new ProjectLocks();
  const ports = (request: DataContractTransferRequest) => ({
    destination: destinationFor(request.destination),
    openSource: setup.openSource,
    locks,
  });
  const store = await openSqliteRunStore({ path: sqliteRunStorePath(setup.stateDir) });
  const runner = new Runner({
    store,
    workOf: (run: Run): RunWork => {
      const request = DataContractTransferRequest.parse(run.request);
      return async ({ signal, onProgress, onExpectedRows, reuse }) => {
        const staged = await packageDataset(request, ports(request), {
          ...setup.limits,
          signal,
          onProgress,
          onExpectedRows,
          reuse,
        });
        return {
          status: 200,
          body: { status: "success", payload: { data_retrieved: staged.dataRetrieved } } as never,
          audit: staged.audit,
          logFields: staged.logFields,
        };
      };
    },
    outcomeOfError: (error) => errorOutcome(error, { detailPrefix: "Bench: " }),
  });
  const requestOf = (n: number, path: string) =>
    DataContractTransferRequest.parse({
      project_name: "BenchRuns",
      project_start_time: `20250102_00${String(n).padStart(2, "0")}0${path === "plain" ? 0 : 1}`,
      destination: { name: "LSC", type: "filestore", format: "csv" },
      source: setup.source,
      dataset: { schema_name: setup.schemaName, tables: [{ name: setup.table }] },
    });
  const cleanUp = (request: DataContractTransferRequest) =>
    rm(join(setup.storage, "staging", request.project_name, request.project_start_time), {
      recursive: true,
      force: true,
    });

  async function plain(n: number): Promise<number> {
    const request = requestOf(n, "plain");
    const started = performance.now();
    await packageDataset(request, ports(request), setup.limits);
    const seconds = (performance.now() - started) / 1000;
    await cleanUp(request);
    return seconds;
  }

  async function throughRunner(n: number): Promise<{ seconds: number; writes: number }> {
    const request = requestOf(n, "runner");
    const started = performance.now();
    const { run } = await runner.start({
      action: "package",
      project_name: request.project_name,
      project_start_time: request.project_start_time,
      dataset: {
        source_host: request.source.host_url,
        source_engine: "postgresql",
        schema_name: request.dataset.schema_name,
        tables: [setup.table],
      },
      destination: { type: "filestore", name: "LSC", format: "csv" },
      caller_key_id: null,
      request: JSON.parse(JSON.stringify(request)),
    }, { recordedByCaller: true });
    const settled = await runner.settled(run.id);
    const seconds = (performance.now() - started) / 1000;
    if (settled.run.state !== "succeeded") {
      throw new Error(
        `The run ended ${settled.run.state}: ${JSON.stringify(settled.run.outcome?.body)}`,
      );
    }
    await cleanUp(request);
    return { seconds, writes: settled.run.version };
  }

  const plainTimes: number[] = [];
  const runnerTimes: number[] = [];
  const writes: number[] = [];
  try {
    for (let n = 0; n <= runs; n++) {
      const order = n % 2 === 0 ? ["plain", "runner"] : ["runner", "plain"];
      for (const path of order) {
        if (path === "plain") {
          const seconds = await plain(n);
          if (n > 0) plainTimes.push(seconds);
        } else {
          const measured = await throughRunner(n);
          if (n > 0) {
            runnerTimes.push(measured.seconds);
            writes.push(measured.writes);
          }
        }
      }
    }
  } finally {
    await runner.close();
    await store.close();
  }
  return {
    runs,
    plainSeconds: median(plainTimes),
    runnerSeconds: median(runnerTimes),
    storeWrites: median(writes),
  };
}
