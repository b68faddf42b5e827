/**
 * A child process for the revocation crash tests: revokes the run `Crash/20250611_093000` of a filestore
 * as a `revoke` run kept in a SQLite run store, and kills itself with SIGKILL at step `killAt` (0-based):
 * step 2k is just before the k-th file is recorded, step 2k+1 just after it is recorded (and stored)
 * and before it is removed, and step 2n (n files) once every file is removed, before the run ends. A
 * negative `killAt` runs to the end and prints the run's outcome.
 *
 * Usage: deno run -A revoke_worker.ts <base> <store path> <killAt> [delete|quarantine]
 */
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { openSqliteRunStore, type SqliteRunStore } from "../../adapters/sqlite/sqlite_run_store.ts";
import { FilestoreDestination } from "../../application/destinations.ts";
import { ProjectLocks } from "../../application/project_locks.ts";
import { revokeRelease } from "../../application/revoke_release.ts";
import { Runner, type RunResult } from "../../application/runs.ts";
import { PublishServiceRevokeRequest, type RevocationMode } from "../../domain/revocation.ts";
import type { NewRunInput, Run } from "../../domain/run.ts";
import type { Destination } from "../../ports/destination.ts";
import { CsvDatasetWriter } from "../../adapters/filesystem/csv_dataset_writer.ts";
import { TEST_MANIFEST_KEY } from "./manifest_key.ts";

/** The run the crash tests publish and revoke. */
export const REVOKE_RUN = { project: "Crash", startTime: "20250611_093000" };

/** The revoke request the crash tests send. */
export const REVOKE_REQUEST = PublishServiceRevokeRequest.parse({
  project_name: REVOKE_RUN.project,
  project_start_time: REVOKE_RUN.startTime,
  destination: { type: "filestore", name: "LSC", format: "csv" },
  release_id: "c0ffee00-0000-4000-8000-000000000001",
  reason: "Crash test",
  requested_by: { kind: "system", id: "expiry" },
});

/** What a run stores of {@link REVOKE_REQUEST}. */
export const REVOKE_RUN_INPUT: NewRunInput = {
  action: "revoke",
  project_name: REVOKE_RUN.project,
  project_start_time: REVOKE_RUN.startTime,
  dataset: { source_host: null, source_engine: null, schema_name: "", tables: null },
  destination: { type: "filestore", name: "LSC", format: "csv" },
  caller_key_id: null,
  request: JSON.parse(JSON.stringify(REVOKE_REQUEST)),
};

/** A runner whose revoke runs revoke on the filestore at `base`; `onStep` is told each step. */
export function revocationRunner(
  base: string,
  store: SqliteRunStore,
  mode: RevocationMode,
  onStep: (step: number) => void = () => {},
  leaseMs?: number,
): { runner: Runner; filestore: LocalFilestore } {
  const filestore = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
  const inner = new FilestoreDestination(
    "LSC",
    filestore,
    "csv",
    new CsvDatasetWriter({ formulaPrefix: false }),
  );
  let step = 0;
  const destination: Destination = {
    lockKey: (project) => inner.lockKey(project),
    checkReady: () => inner.checkReady(),
    stage: (...args) => inner.stage(...args),
    stagingDigest: (run) => inner.stagingDigest(run),
    staging: (run) => inner.staging(run),
    publish: (run) => inner.publish(run),
    revoke: async (run, options) => {
      const removed = await inner.revoke(run, {
        ...options,
        record: async (item, value) => {
          onStep(step++);
          await options.record(item, value);
          onStep(step++);
        },
      });
      onStep(step++);
      return removed;
    },
  };
  const locks = new ProjectLocks();
  const runner = new Runner({
    store,
    leaseMs,
    pollMs: 20,
    outcomeOfError: (error) => ({ status: 500, body: { error: String(error) } }),
    workOf: (run: Run) => {
      const request = PublishServiceRevokeRequest.parse(run.request);
      return async ({ signal, onProgress, checkpoint, recorded }) => {
        const revoked = await revokeRelease(request, { destination, locks, mode }, {
          signal,
          onProgress,
          checkpoint,
          recorded,
          startedAt: run.created_at,
        });
        return {
          status: 200,
          body: { status: "success", payload: { certificate: revoked.certificate } } as RunResult[
            "body"
          ],
          audit: { certificate: revoked.certificate },
          logFields: revoked.logFields,
        };
      };
    },
  });
  return { runner, filestore };
}

if (import.meta.main) {
  const [base = "", path = "", killAt = "-1", mode = "delete"] = Deno.args;
  const kill = Number(killAt);
  await using store = await openSqliteRunStore({ path, busyTimeoutMs: 20_000 });
  const { runner } = revocationRunner(base, store, mode as RevocationMode, (step) => {
    if (step === kill) Deno.kill(Deno.pid, "SIGKILL");
  });
  const { run } = await runner.start(REVOKE_RUN_INPUT);
  Deno.stdout.writeSync(new TextEncoder().encode(`${run.id}\n`));
  const settled = await runner.settled(run.id);
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(settled.run.outcome) + "\n"));
  await runner.close();
}
