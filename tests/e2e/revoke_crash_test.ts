/**
 * Crash safety of a filestore revocation (issue 16): a revoke run killed with SIGKILL at every step
 * (before and after each file is recorded, after the last removal) is resumed, by `POST /runs/{id}/resume`
 * (`Runner.resume`) or by sending the same request again (`Runner.start`), after the startup sweep; the
 * certificate then lists every file of production and staging with the SHA-512 and size it had when
 * published, and nothing of the run is left in production or staging (with quarantine: everything is in
 * the `revoked/` area). The same for the PostgreSQL destination + OPAL: killed between the OPAL removals,
 * the row counts and the drop, the resumed run's certificate counts every row each table had.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { openSqliteRunStore } from "../../adapters/sqlite/sqlite_run_store.ts";
import { deletionCertificateSchema, type RevocationMode } from "../../domain/revocation.ts";
import { writeFiles } from "../contracts/filestore_contract.ts";
import { crashPayload } from "../support/filestore_worker.ts";
import { TEST_MANIFEST_KEY } from "../support/manifest_key.ts";
import {
  filestoreDestinationAt,
  PG_DESTINATION,
  postgresqlDestinationOf,
  revocationRunner,
  REVOKE_REQUEST,
  REVOKE_RUN,
  REVOKE_RUN_INPUT,
  revokeInput,
} from "../support/revoke_worker.ts";
import { MemorySourceDatabase } from "../../adapters/memory/memory_source_database.ts";
import { connectPostgresDestination } from "../../adapters/postgres/postgres_destination.ts";
import { packageDataset } from "../../application/package_dataset.ts";
import { ProjectLocks } from "../../application/project_locks.ts";
import { publishDataset } from "../../application/publish_dataset.ts";
import { projectIdentifier } from "../../domain/names.ts";
import { opalGroupName } from "../../domain/opal.ts";
import type { Destination } from "../../ports/destination.ts";
import type { NewRunInput } from "../../domain/run.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../support/catalogs.ts";
import { DestinationSandbox } from "../support/destination_databases.ts";
import { FakeOpal } from "../support/fake_opal.ts";
import { aBothTablesTransfer } from "../support/requests.ts";
import { ignorePostgres } from "../support/services.ts";

const WORKER = new URL("../support/revoke_worker.ts", import.meta.url).pathname;

/** Every file under `dir`, relative to it, with its SHA-512 and size. */
async function filesUnder(dir: string, prefix = ""): Promise<Map<string, [string, number]>> {
  const found = new Map<string, [string, number]>();
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return found;
  }
  for (const entry of entries) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) {
      for (const [k, v] of await filesUnder(join(dir, entry.name), rel)) found.set(k, v);
    } else {
      const bytes = await readFile(join(dir, entry.name));
      found.set(rel, [createHash("sha512").update(bytes).digest("hex"), bytes.length]);
    }
  }
  return found;
}

/** A filestore with the run published (version `v`) and staged again (version `w`). */
async function publishedFilestore(): Promise<
  { base: string; expected: Map<string, [string, number]> }
> {
  const base = await mkdtemp(join(tmpdir(), "revoke-crash-"));
  await mkdir(join(base, "staging"));
  await mkdir(join(base, "production"));
  const store = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
  await store.stage(REVOKE_RUN, "crash", writeFiles(crashPayload("v", 1)));
  await store.publish(REVOKE_RUN);
  await store.stage(REVOKE_RUN, "crash", writeFiles(crashPayload("w", 1)));
  const expected = new Map<string, [string, number]>();
  for (const area of ["production", "staging"]) {
    const dir = join(base, area, REVOKE_RUN.project, REVOKE_RUN.startTime);
    for (const [path, value] of await filesUnder(dir)) expected.set(`${area}/${path}`, value);
  }
  return { base, expected };
}

/** Runs the worker until it kills itself at `killAt` (or ends); returns whether it printed an outcome. */
async function runWorker(
  base: string,
  storePath: string,
  killAt: number,
  mode: RevocationMode,
  postgresql?: { opalUrl: string; options: unknown },
): Promise<boolean> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: postgresql === undefined
      ? ["run", "-A", WORKER, "filestore", base, storePath, String(killAt), mode]
      : ["run", "-A", WORKER, "postgresql", postgresql.opalUrl, storePath, String(killAt)],
    env: postgresql === undefined ? {} : { REVOKE_PG_OPTIONS: JSON.stringify(postgresql.options) },
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(output.stdout).includes('"status":200');
}

/** After the sweep, resumes the interrupted run (or sends the request again); returns the certificate. */
async function resume(
  destination: Destination,
  storePath: string,
  mode: RevocationMode,
  again: boolean,
  sweep: () => Promise<unknown>,
  input: NewRunInput = REVOKE_RUN_INPUT,
) {
  await using store = await openSqliteRunStore({ path: storePath, busyTimeoutMs: 20_000 });
  const runner = revocationRunner(destination, store, mode, 60);
  try {
    await sweep();
    await new Promise((resolve) => setTimeout(resolve, 120));
    await runner.maintain(90);
    const { runs } = await store.list({ project: REVOKE_RUN.project, limit: 10 });
    assert.equal(runs.length, 1);
    assert.equal(runs[0]!.state, "interrupted");
    const id = again ? (await runner.start(input)).run.id : (await runner.resume(runs[0]!.id)).id;
    const { run } = await runner.settled(id);
    assert.equal(run.state, "succeeded", JSON.stringify(run.outcome));
    const body = run.outcome!.body as { payload: { certificate: unknown } };
    return deletionCertificateSchema.parse(body.payload.certificate);
  } finally {
    await runner.close();
  }
}

async function checkKilledAt(killAt: number, mode: RevocationMode, again: boolean): Promise<void> {
  const { base, expected } = await publishedFilestore();
  const storePath = join(base, "runs.sqlite");
  try {
    const finished = await runWorker(base, storePath, killAt, mode);
    assert.equal(finished, false, `the worker is killed at step ${killAt}`);

    const filestore = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
    const certificate = await resume(
      filestoreDestinationAt(base),
      storePath,
      mode,
      again,
      () => filestore.recover(),
    );

    assert.equal(certificate.release_id, REVOKE_REQUEST.release_id);
    assert.equal(certificate.mode, mode === "delete" ? "deleted" : "quarantined");
    assert.deepEqual(
      new Map(certificate.files.map((f) => [`${f.area}/${f.path}`, [f.sha512, f.bytes]])),
      expected,
      `step ${killAt}: the certificate lists every file with its published SHA-512`,
    );
    for (const area of ["production", "staging"]) {
      assert.deepEqual(await readdir(join(base, area)), [], `step ${killAt}: ${area} is empty`);
    }
    if (mode === "quarantine") {
      const moved = join(
        base,
        "revoked",
        REVOKE_RUN.project,
        `${REVOKE_RUN.startTime}-${REVOKE_REQUEST.release_id}`,
      );
      const kept = new Map<string, [string, number]>();
      for (const area of ["production", "staging"]) {
        for (const [path, value] of await filesUnder(join(moved, area))) {
          kept.set(`${area}/${path}`, value);
        }
      }
      assert.deepEqual(kept, expected, `step ${killAt}: every file is in the revoked area`);
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

Deno.test({
  name: "revocation: SIGKILL at every step, then resumed, certifies every file and leaves nothing",
  sanitizeResources: false,
  fn: async (t) => {
    const { base, expected } = await publishedFilestore();
    await rm(base, { recursive: true, force: true });
    const steps = 2 * expected.size + 1;
    assert.ok(expected.size >= 8, "production and staging files");

    await t.step("an uninterrupted worker revokes everything", async () => {
      const fresh = await publishedFilestore();
      try {
        assert.equal(
          await runWorker(fresh.base, join(fresh.base, "runs.sqlite"), -1, "delete"),
          true,
        );
        assert.deepEqual(await readdir(join(fresh.base, "production")), []);
      } finally {
        await rm(fresh.base, { recursive: true, force: true });
      }
    });

    for (let killAt = 0; killAt < steps; killAt++) {
      await t.step(
        `delete: killed at step ${killAt} of ${steps}`,
        () => checkKilledAt(killAt, "delete", killAt % 2 === 1),
      );
    }
    for (const killAt of [0, 3, expected.size, steps - 1]) {
      await t.step(
        `quarantine: killed at step ${killAt} of ${steps}`,
        () => checkKilledAt(killAt, "quarantine", killAt % 2 === 0),
      );
    }
  },
});

Deno.test({
  name:
    "revocation on PostgreSQL + OPAL: SIGKILL at every step (OPAL removal, counting, dropping), then resumed",
  ignore: ignorePostgres,
  sanitizeResources: false,
  fn: async (t) => {
    const { request, input } = revokeInput(PG_DESTINATION);
    const project = projectIdentifier(request.project_name);
    const group = opalGroupName(project);
    // Two resources, the group and two tables: five items, two steps each, and one after the drop.
    for (let killAt = 0; killAt <= 10; killAt++) {
      await t.step(`killed at step ${killAt}`, async () => {
        const sandbox = new DestinationSandbox();
        await using opal = await FakeOpal.start();
        const dir = await mkdtemp(join(tmpdir(), "revoke-pg-crash-"));
        try {
          await sandbox.create();
          const destination = postgresqlDestinationOf(sandbox.options(), opal.url);
          const published = await publishBothTables(destination);
          const storePath = join(dir, "runs.sqlite");

          const finished = await runWorker(dir, storePath, killAt, "delete", {
            opalUrl: opal.url,
            options: sandbox.options(),
          });
          assert.equal(finished, false, `the worker is killed at step ${killAt}`);
          const certificate = await resume(
            destination,
            storePath,
            "delete",
            killAt % 2 === 1,
            () => Promise.resolve(),
            input,
          );

          assert.deepEqual(
            certificate.tables.map((t) => [`${t.schema}.${t.table}`, t.rows]),
            published.map((name) => [name, 3]),
            `step ${killAt}: each table's rows as published`,
          );
          assert.deepEqual(certificate.opal, {
            project,
            resources: published.map((n) => `tre_postgresql_${n.replace(".", "_")}`).sort(),
            group,
          });
          await using database = await connectPostgresDestination(sandbox.options());
          assert.deepEqual(
            await database.packagedTables({
              project: request.project_name,
              startTime: REVOKE_RUN.startTime,
            }),
            [],
          );
          assert.deepEqual(Object.keys(opal.state.resources[project] ?? {}), []);
          assert.equal(opal.state.groups[group], undefined);
          assert.deepEqual(opal.state.acls.filter((a) => a.principal === group), []);
        } finally {
          await sandbox.cleanup();
          await rm(dir, { recursive: true, force: true });
        }
      });
    }
  },
});

/** Packages both ONCOLOGY tables of the crash run to `destination` and publishes them. */
async function publishBothTables(destination: Destination): Promise<string[]> {
  const locks = new ProjectLocks();
  const transfer = aBothTablesTransfer({
    project_name: REVOKE_RUN.project,
    project_start_time: REVOKE_RUN.startTime,
    destination: PG_DESTINATION,
  });
  const openSource = () => Promise.resolve(new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS));
  await packageDataset(transfer, { destination, openSource, locks }, {
    concurrency: 1,
    batchRows: 2,
  });
  const published = await publishDataset(transfer, { destination, locks });
  return (published.audit.destination_tables ?? []).toSorted();
}
