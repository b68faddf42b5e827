import assert from "node:assert/strict";
import { CsvDatasetWriter } from "../adapters/filesystem/csv_dataset_writer.ts";
import { HttpOpalClient } from "../adapters/opal/http_opal_client.ts";
import { MemorySourceDatabase } from "../adapters/memory/memory_source_database.ts";
import { connectPostgresDestination } from "../adapters/postgres/postgres_destination.ts";
import { DataContractPublishRequest, DataContractTransferRequest } from "../domain/contract.ts";
import { projectIdentifier } from "../domain/names.ts";
import { opalGroupName } from "../domain/opal.ts";
import type { PublishServiceRevokeRequest, RecordedItem } from "../domain/revocation.ts";
import type { Destination } from "../ports/destination.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../tests/support/catalogs.ts";
import { DestinationSandbox } from "../tests/support/destination_databases.ts";
import { FakeOpal } from "../tests/support/fake_opal.ts";
import { aPublishRequest, aTransferRequest } from "../tests/support/requests.ts";
import { ignorePostgres } from "../tests/support/services.ts";
import { destinationChooser } from "./destinations.ts";
import { packageDataset } from "./package_dataset.ts";
import { ProjectLocks } from "./project_locks.ts";
import { publishDataset } from "./publish_dataset.ts";
import { revokeRelease } from "./revoke_release.ts";

const PG = { name: "pg", type: "postgresql", format: "sql" } as const;
const START = "20250611_093000";
const OTHER_START = "20250612_093000";

function transfer(startTime: string) {
  const request = DataContractTransferRequest.parse(
    aTransferRequest({ destination: PG, project_start_time: startTime }),
  );
  return {
    ...request,
    dataset: {
      ...request.dataset,
      tables: [
        { name: "tumour_stage", columns: [{ name: "stage_id" }, { name: "stage_label" }] },
        { name: "treatment_line", columns: [{ name: "line_no" }] },
      ],
    },
  };
}

const REVOKE: PublishServiceRevokeRequest = {
  ...DataContractPublishRequest.parse(aPublishRequest({ destination: PG })),
  release_id: "rel-1",
  reason: "Ethics approval withdrawn",
  requested_by: { kind: "key", id: "0123456789abcdef" },
};

const openSource = () => Promise.resolve(new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS));

function postgresqlOf(sandbox: DestinationSandbox, opal: FakeOpal): Destination {
  return destinationChooser({
    filestores: new Map(),
    writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
    postgresql: {
      connect: () => connectPostgresDestination(sandbox.options()),
      opal: () =>
        Promise.resolve(
          new HttpOpalClient({
            baseUrl: opal.url,
            username: opal.admin.username,
            password: opal.admin.password,
            timeoutMs: 5_000,
          }),
        ),
      resourceAccess: () =>
        Promise.resolve({
          database: { host: "127.0.0.1", port: 5432, database: sandbox.database },
          readOnly: { username: sandbox.reader, password: sandbox.readerPassword },
        }),
    },
  })(PG);
}

/** Packages and publishes the run(s); returns the published `schema.table` names of `START`. */
async function publish(destination: Destination, starts: readonly string[]): Promise<string[]> {
  const locks = new ProjectLocks();
  let names: string[] = [];
  for (const startTime of starts) {
    await packageDataset(transfer(startTime), { destination, openSource, locks }, {
      concurrency: 1,
      batchRows: 2,
    });
    const published = await publishDataset(
      { ...REVOKE, project_start_time: startTime },
      { destination, locks },
    );
    if (startTime === START) names = published.audit.destination_tables ?? [];
  }
  return names.toSorted();
}

class Killed extends Error {}

/**
 * Wraps a destination so that its revocation "dies" (throws, as a killed process stops) at step
 * `killAt`: step 2k just before the k-th item is recorded, 2k+1 just after, and the step after the
 * last item once the tables are dropped.
 */
function dyingAt(inner: Destination, killAt: number): Destination {
  let step = 0;
  const at = () => {
    if (step++ === killAt) throw new Killed(`killed at ${killAt}`);
  };
  return {
    ...Object.fromEntries(
      (["lockKey", "checkReady", "stage", "stagingDigest", "staging", "publish"] as const).map(
        (k) => [k, (inner[k] as (...a: unknown[]) => unknown).bind(inner)],
      ),
    ) as Omit<Destination, "revoke">,
    revoke: async (run, options) => {
      const removed = await inner.revoke(run, {
        ...options,
        record: async (item, value) => {
          at();
          await options.record(item, value);
          at();
        },
      });
      at();
      return removed;
    },
  };
}

/** Revokes with a durable record kept in `recorded`, as a run's checkpointed progress is. */
function revokeWith(destination: Destination, recorded: Map<string, RecordedItem>) {
  return revokeRelease(REVOKE, { destination, locks: new ProjectLocks(), mode: "delete" }, {
    recorded: new Map(recorded),
    startedAt: "2026-12-07T00:00:00.000Z",
    onProgress: (p) =>
      p.done !== undefined &&
      recorded.set(p.table, { rows: p.rows ?? 0, bytes: p.bytes, sha512: p.done.sha512 }),
  });
}

Deno.test({
  name:
    "revokeRelease on PostgreSQL + OPAL: killed at every step and resumed, the certificate counts every published row",
  ignore: ignorePostgres,
  fn: async (t) => {
    // 2 resources, the group, 2 tables: 5 items, two steps each, and one after the drop.
    for (let killAt = 0; killAt <= 10; killAt++) {
      await t.step(`killed at step ${killAt}`, async () => {
        const sandbox = new DestinationSandbox();
        await using opal = await FakeOpal.start();
        try {
          await sandbox.create();
          const destination = postgresqlOf(sandbox, opal);
          const names = await publish(destination, [START]);
          const project = projectIdentifier(REVOKE.project_name);
          const recorded = new Map<string, RecordedItem>();

          await assert.rejects(revokeWith(dyingAt(destination, killAt), recorded), Killed);
          const { certificate } = await revokeWith(destination, recorded);

          assert.deepEqual(
            certificate.tables.map((t) => [`${t.schema}.${t.table}`, t.rows]),
            names.map((n) => [n, 3]),
            "each table's rows as published",
          );
          assert.deepEqual(certificate.opal, {
            project,
            resources: names.map((n) => `tre_postgresql_${n.replace(".", "_")}`).sort(),
            group: opalGroupName(project),
          });
          assert.equal(certificate.mode, "deleted");
          assert.deepEqual(certificate.files, []);
          await using database = await connectPostgresDestination(sandbox.options());
          assert.deepEqual(
            await database.packagedTables({ project: REVOKE.project_name, startTime: START }),
            [],
          );
          const state = opal.state;
          assert.deepEqual(Object.keys(state.resources[project] ?? {}), []);
          assert.equal(state.groups[opalGroupName(project)], undefined);
          assert.deepEqual(
            state.acls.filter((a) => a.principal === opalGroupName(project)),
            [],
            "no grant of the group is left",
          );
        } finally {
          await sandbox.cleanup();
        }
      });
    }
  },
});

Deno.test({
  name:
    "revokeRelease on PostgreSQL + OPAL keeps the group and the other run's resources and tables",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new DestinationSandbox();
    await using opal = await FakeOpal.start();
    try {
      await sandbox.create();
      const destination = postgresqlOf(sandbox, opal);
      await publish(destination, [START, OTHER_START]);
      const project = projectIdentifier(REVOKE.project_name);

      const { certificate } = await revokeWith(destination, new Map());

      assert.equal(certificate.opal?.group, null, "the group still serves the other run");
      assert.equal(certificate.opal?.resources.length, 2);
      assert.equal(certificate.tables.length, 2);
      assert.equal(Object.keys(opal.state.resources[project] ?? {}).length, 2);
      assert.ok(
        opal.state.acls.some((a) =>
          a.principal === opalGroupName(project) && a.permission === "RESOURCES_VIEW"
        ),
      );
      await using database = await connectPostgresDestination(sandbox.options());
      assert.equal(
        (await database.packagedTables({ project: REVOKE.project_name, startTime: OTHER_START }))
          .length,
        2,
      );
    } finally {
      await sandbox.cleanup();
    }
  },
});
