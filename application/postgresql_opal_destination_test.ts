import assert from "node:assert/strict";
import { CsvDatasetWriter } from "../adapters/filesystem/csv_dataset_writer.ts";
import { HttpOpalClient } from "../adapters/opal/http_opal_client.ts";
import { MemorySourceDatabase } from "../adapters/memory/memory_source_database.ts";
import { connectPostgresDestination } from "../adapters/postgres/postgres_destination.ts";
import { DataContractPublishRequest, DataContractTransferRequest } from "../domain/contract.ts";
import { projectIdentifier } from "../domain/names.ts";
import type { ProgressReport } from "../ports/destination.ts";
import { NothingStagedError } from "../ports/filestore.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../tests/support/catalogs.ts";
import { DestinationSandbox } from "../tests/support/destination_databases.ts";
import { FakeOpal } from "../tests/support/fake_opal.ts";
import { aPublishRequest, aTransferRequest } from "../tests/support/requests.ts";
import { ignorePostgres } from "../tests/support/services.ts";
import { destinationChooser } from "./destinations.ts";
import { packageDataset } from "./package_dataset.ts";
import { ProjectLocks } from "./project_locks.ts";
import { publishDataset } from "./publish_dataset.ts";

/** A transfer request for both ONCOLOGY tables, to the PostgreSQL destination. */
function bothTables() {
  const request = DataContractTransferRequest.parse(
    aTransferRequest({ destination: { name: "pg", type: "postgresql", format: "sql" } }),
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

const PUBLISH = DataContractPublishRequest.parse(
  aPublishRequest({ destination: { name: "pg", type: "postgresql", format: "sql" } }),
);

async function withDestination(
  work: (parts: { sandbox: DestinationSandbox; opal: FakeOpal }) => Promise<void>,
): Promise<void> {
  const sandbox = new DestinationSandbox();
  await using opal = await FakeOpal.start();
  try {
    await sandbox.create();
    await work({ sandbox, opal });
  } finally {
    await sandbox.cleanup();
  }
}

function postgresqlOf(sandbox: DestinationSandbox, opal: FakeOpal) {
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
  })(PUBLISH.destination);
}

const openSource = () => Promise.resolve(new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS));

Deno.test({
  name: "PostgreSQL + OPAL destination: package then publish through the use cases",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async ({ sandbox, opal }) => {
      const destination = postgresqlOf(sandbox, opal);
      const locks = new ProjectLocks();
      await destination.checkReady();
      const progress: ProgressReport[] = [];
      const staged = await packageDataset(bothTables(), { destination, openSource, locks }, {
        concurrency: 1,
        batchRows: 2,
        onProgress: (p) => progress.push(p),
      });
      const names = staged.dataRetrieved.map((d) => "table_name" in d ? d.table_name : "");
      assert.equal(names.length, 2);
      assert.deepEqual(staged.audit, { destination_tables: names });
      assert.deepEqual(staged.logFields, { destination: "postgresql", tables: names });
      const last = new Map(progress.map((p) => [p.table, p.rows]));
      assert.deepEqual(Object.fromEntries(last), { tumour_stage: 3, treatment_line: 3 });

      const published = await publishDataset(PUBLISH, { destination, locks });
      const project = projectIdentifier(PUBLISH.project_name);
      assert.deepEqual(
        published.dataPublished.map((p) => "opal_project_name" in p ? p.opal_project_name : ""),
        [project, project],
      );
      assert.deepEqual(
        published.audit.destination_tables?.toSorted(),
        names.toSorted(),
      );
      assert.ok(opal.state.projects[project] !== undefined);
    }),
});

Deno.test({
  name: "PostgreSQL + OPAL destination: aborting after the first table loads nothing to publish",
  ignore: ignorePostgres,
  fn: () =>
    withDestination(async ({ sandbox, opal }) => {
      const destination = postgresqlOf(sandbox, opal);
      const locks = new ProjectLocks();
      const controller = new AbortController();
      const reason = new Error("stopped");
      await assert.rejects(
        packageDataset(bothTables(), { destination, openSource, locks }, {
          concurrency: 1,
          batchRows: 2,
          signal: controller.signal,
          onProgress: () => controller.abort(reason),
        }),
      );
      await assert.rejects(publishDataset(PUBLISH, { destination, locks }), NothingStagedError);
    }),
});
