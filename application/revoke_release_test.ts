import assert from "node:assert/strict";
import { MemorySourceDatabase } from "../adapters/memory/memory_source_database.ts";
import { connectPostgresDestination } from "../adapters/postgres/postgres_destination.ts";
import { DataContractPublishRequest } from "../domain/contract.ts";
import { projectIdentifier } from "../domain/names.ts";
import { opalGroupName } from "../domain/opal.ts";
import type { PublishServiceRevokeRequest } from "../domain/revocation.ts";
import type { Destination } from "../ports/destination.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../tests/support/catalogs.ts";
import { postgresqlDestinationOf } from "../tests/support/revoke_worker.ts";
import { DestinationSandbox } from "../tests/support/destination_databases.ts";
import { FakeOpal } from "../tests/support/fake_opal.ts";
import { aBothTablesTransfer, aPublishRequest } from "../tests/support/requests.ts";
import { ignorePostgres } from "../tests/support/services.ts";
import { packageDataset } from "./package_dataset.ts";
import { ProjectLocks } from "./project_locks.ts";
import { publishDataset } from "./publish_dataset.ts";
import { revokeRelease } from "./revoke_release.ts";

const PG = { name: "pg", type: "postgresql", format: "sql" } as const;
const START = "20250611_093000";
const OTHER_START = "20250612_093000";

function transfer(startTime: string) {
  return aBothTablesTransfer({ destination: PG, project_start_time: startTime });
}

const REVOKE: PublishServiceRevokeRequest = {
  ...DataContractPublishRequest.parse(aPublishRequest({ destination: PG })),
  release_id: "rel-1",
  reason: "Ethics approval withdrawn",
  requested_by: { kind: "key", id: "0123456789abcdef" },
};

const openSource = () => Promise.resolve(new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS));

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

/** Revokes the run of `START` once, as a fresh run does. */
function revokeOnce(destination: Destination) {
  return revokeRelease(REVOKE, { destination, locks: new ProjectLocks(), mode: "delete" }, {
    startedAt: "2026-12-07T00:00:00.000Z",
  });
}

Deno.test({
  name:
    "revokeRelease on PostgreSQL + OPAL keeps the group and the other run's resources and tables",
  ignore: ignorePostgres,
  fn: async () => {
    const sandbox = new DestinationSandbox();
    await using opal = await FakeOpal.start();
    try {
      await sandbox.create();
      const destination = postgresqlDestinationOf(sandbox.options(), opal.url);
      await publish(destination, [START, OTHER_START]);
      const project = projectIdentifier(REVOKE.project_name);

      const { certificate } = await revokeOnce(destination);

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
