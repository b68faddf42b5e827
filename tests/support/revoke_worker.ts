/**
 * A child process for the revocation crash tests: revokes the run `Crash/20250611_093000` of a filestore
 * (or of the PostgreSQL destination + OPAL) as a `revoke` run kept in a SQLite run store, and kills itself with SIGKILL at step `killAt` (0-based):
 * step 2k is just before the k-th file is recorded, step 2k+1 just after it is recorded (and stored)
 * and before it is removed, and step 2n (n files) once every file is removed, before the run ends. A
 * negative `killAt` runs to the end and prints the run's outcome.
 *
 * Usage: deno run -A revoke_worker.ts filestore <base> <store path> <killAt> [delete|quarantine]
 *        REVOKE_PG_OPTIONS=<json> deno run -A revoke_worker.ts postgresql <opal url> <store path> <killAt>
 */
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { openSqliteRunStore, type SqliteRunStore } from "../../adapters/sqlite/sqlite_run_store.ts";
import { destinationChooser, FilestoreDestination } from "../../application/destinations.ts";
import { ProjectLocks } from "../../application/project_locks.ts";
import { revokeRelease } from "../../application/revoke_release.ts";
import { Runner, type RunResult } from "../../application/runs.ts";
import { PublishServiceRevokeRequest, type RevocationMode } from "../../domain/revocation.ts";
import type { NewRunInput, Run } from "../../domain/run.ts";
import type { Destination } from "../../ports/destination.ts";
import { HttpOpalClient } from "../../adapters/opal/http_opal_client.ts";
import {
  connectPostgresDestination,
  type PostgresDestinationOptions,
} from "../../adapters/postgres/postgres_destination.ts";
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

/** The filestore `LSC` at `base`, as a destination. */
export function filestoreDestinationAt(base: string): Destination {
  return new FilestoreDestination(
    "LSC",
    new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY }),
    "csv",
    new CsvDatasetWriter({ formulaPrefix: false }),
  );
}

/** The PostgreSQL destination `pg` on `options`, published through the OPAL at `opalUrl`. */
export function postgresqlDestinationOf(
  options: PostgresDestinationOptions,
  opalUrl: string,
): Destination {
  return destinationChooser({
    filestores: new Map(),
    writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
    postgresql: {
      connect: () => connectPostgresDestination(options),
      opal: () =>
        Promise.resolve(
          new HttpOpalClient({
            baseUrl: opalUrl,
            username: "administrator",
            password: "password",
            timeoutMs: 5_000,
          }),
        ),
      resourceAccess: () =>
        Promise.resolve({
          database: { host: options.host, port: options.port, database: options.database },
          readOnly: { username: options.readOnlyRole, password: "unused-read-only-password" },
        }),
    },
  })(PG_DESTINATION);
}

/** The PostgreSQL destination of the crash tests. */
export const PG_DESTINATION = { type: "postgresql", name: "pg", format: "sql" } as const;

/**
 * `inner`, whose revocation tells `onStep` each step: 2k just before the k-th item is recorded, 2k+1
 * just after, and 2n once `inner.revoke` returned.
 */
export function steppedDestination(
  inner: Destination,
  onStep: (step: number) => void,
): Destination {
  let step = 0;
  return {
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
}

/** A revoke request and run input for `destination` (the filestore `LSC` when absent). */
export function revokeInput(
  destination: { type: string; name: string; format: string } = REVOKE_REQUEST.destination,
): { request: PublishServiceRevokeRequest; input: NewRunInput } {
  const request = PublishServiceRevokeRequest.parse({ ...REVOKE_REQUEST, destination });
  return {
    request,
    input: {
      ...REVOKE_RUN_INPUT,
      destination: { type: destination.type, name: destination.name, format: destination.format },
      request: JSON.parse(JSON.stringify(request)),
    },
  };
}

/** A runner whose revoke runs revoke on `destination`. */
export function revocationRunner(
  destination: Destination,
  store: SqliteRunStore,
  mode: RevocationMode,
  leaseMs?: number,
): Runner {
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
  return runner;
}

if (import.meta.main) {
  const [kind = "", where = "", path = "", killAt = "-1", mode = "delete"] = Deno.args;
  const kill = Number(killAt);
  await using store = await openSqliteRunStore({ path, busyTimeoutMs: 20_000 });
  const inner = kind === "filestore"
    ? filestoreDestinationAt(where)
    : postgresqlDestinationOf(JSON.parse(Deno.env.get("REVOKE_PG_OPTIONS") ?? "{}"), where);
  const destination = steppedDestination(inner, (step) => {
    if (step === kill) Deno.kill(Deno.pid, "SIGKILL");
  });
  const runner = revocationRunner(destination, store, mode as RevocationMode);
  const { input } = revokeInput(kind === "filestore" ? undefined : PG_DESTINATION);
  const { run } = await runner.start(input);
  Deno.stdout.writeSync(new TextEncoder().encode(`${run.id}\n`));
  const settled = await runner.settled(run.id);
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify(settled.run.outcome) + "\n"));
  await runner.close();
}
