import assert from "node:assert/strict";
import { MemorySourceDatabase } from "../adapters/memory/memory_source_database.ts";
import { CsvDatasetWriter } from "../adapters/filesystem/csv_dataset_writer.ts";
import { DataContractPublishRequest, DataContractTransferRequest } from "../domain/contract.ts";
import {
  type Destination,
  PostgresqlDestinationNotConfiguredError,
  type ProgressReport,
} from "../ports/destination.ts";
import { NothingStagedError, UnknownDestinationError } from "../ports/filestore.ts";
import { FakeWorld } from "../tests/support/apps.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../tests/support/catalogs.ts";
import { aPublishRequest, aTransferRequest } from "../tests/support/requests.ts";
import { checkAccess } from "./check_access.ts";
import { describeDataset } from "./describe_dataset.ts";
import { destinationChooser } from "./destinations.ts";
import { packageDataset } from "./package_dataset.ts";
import { ProjectLocks } from "./project_locks.ts";
import { publishDataset } from "./publish_dataset.ts";
import type { SourceOpener } from "./source.ts";

const LIMITS = { concurrency: 1, batchRows: 2 };

/** A source opener over the in-memory ONCOLOGY schema that keeps what it opened. */
function memorySources(): { openSource: SourceOpener; opened: MemorySourceDatabase[] } {
  const opened: MemorySourceDatabase[] = [];
  return {
    opened,
    openSource: () => {
      const db = new MemorySourceDatabase([ONCOLOGY], ONCOLOGY_ROWS);
      opened.push(db);
      return Promise.resolve(db);
    },
  };
}

/** A transfer request for both ONCOLOGY tables. */
function bothTables() {
  const request = DataContractTransferRequest.parse(aTransferRequest());
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

function filestoreOf(world: FakeWorld): Destination {
  return destinationChooser({
    filestores: new Map([["LSC", world.filestore]]),
    writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
  })({ type: "filestore", name: "lsc", format: "csv" });
}

Deno.test("describeDataset: describes only the requested columns and closes the source", async () => {
  const { openSource, opened } = memorySources();
  const request = DataContractTransferRequest.parse(aTransferRequest());
  const payload = await describeDataset(request, { openSource });
  assert.deepEqual(
    payload.tables.map((t) => [t.name, t.columns.map((c) => c.name)]),
    [["tumour_stage", ["stage_id", "stage_label"]]],
  );
  assert.equal(opened.length, 1);
  assert.equal(opened[0]?.closed, true);
});

Deno.test("checkAccess: a destination that is not ready stops it before the source is opened", async () => {
  const { openSource, opened } = memorySources();
  const request = DataContractTransferRequest.parse(aTransferRequest());
  const notReady = new Error("not ready");
  const destination: Destination = {
    lockKey: () => "k",
    checkReady: () => Promise.reject(notReady),
    stage: () => Promise.reject(new Error("unexpected")),
    stagingDigest: () => Promise.reject(new Error("unexpected")),
    staging: () => Promise.reject(new Error("unexpected")),
    publish: () => Promise.reject(new Error("unexpected")),
    revoke: () => Promise.reject(new Error("unexpected")),
  };
  await assert.rejects(checkAccess(request, { destination, openSource }), notReady);
  assert.equal(opened.length, 0);
});

Deno.test("checkAccess: a ready destination and a reachable source succeed", async () => {
  using world = new FakeWorld();
  const { openSource, opened } = memorySources();
  const request = DataContractTransferRequest.parse(aTransferRequest());
  assert.deepEqual(
    await checkAccess(request, { destination: filestoreOf(world), openSource }),
    { validation_status: "success" },
  );
  assert.equal(opened[0]?.closed, true);
});

Deno.test("packageDataset then publishDataset on a filestore: replies, audit output and progress", async () => {
  using world = new FakeWorld();
  const { openSource, opened } = memorySources();
  const destination = filestoreOf(world);
  const locks = new ProjectLocks();
  const progress: ProgressReport[] = [];
  const staged = await packageDataset(bothTables(), { destination, openSource, locks }, {
    ...LIMITS,
    onProgress: (p) => progress.push(p),
  });
  const paths = staged.dataRetrieved.map((d) => "file_path" in d ? d.file_path : d.table_name);
  assert.ok(paths.some((p) => p.endsWith("tumour_stage.csv")), paths.join());
  assert.ok(paths.some((p) => p.endsWith("treatment_line.csv")), paths.join());
  assert.deepEqual(staged.audit.files?.map((f) => f.path), paths);
  assert.deepEqual(staged.logFields, { format: "csv", files: paths });
  assert.equal(opened[0]?.closed, true);
  // Progress is per table, cumulative, and ends at each table's row count.
  const last = new Map(progress.map((p) => [p.table, p]));
  assert.equal(last.get("tumour_stage")?.rows, 3);
  assert.equal(last.get("treatment_line")?.rows, 3);
  assert.ok((last.get("tumour_stage")?.bytes ?? 0) > 0);
  assert.equal(locks.busyKeys, 0);

  const published = await publishDataset(DataContractPublishRequest.parse(aPublishRequest()), {
    destination,
    locks,
  });
  assert.ok(published.dataPublished.length >= 2);
  for (const item of published.dataPublished) {
    assert.ok("hash_value" in item);
    assert.match(item.hash_value, /^[0-9a-f]{128}$/);
    assert.ok(published.audit.files?.some((f) => f.sha512 === item.hash_value));
  }
});

Deno.test("packageDataset: an aborted signal stops it before the source is opened", async () => {
  using world = new FakeWorld();
  const { openSource, opened } = memorySources();
  const reason = new Error("stopped");
  await assert.rejects(
    packageDataset(bothTables(), {
      destination: filestoreOf(world),
      openSource,
      locks: new ProjectLocks(),
    }, { ...LIMITS, signal: AbortSignal.abort(reason) }),
    reason,
  );
  assert.equal(opened.length, 0);
});

Deno.test("packageDataset: aborting after the first table stops it between tables and stages nothing", async () => {
  using world = new FakeWorld();
  const { openSource } = memorySources();
  const destination = filestoreOf(world);
  const locks = new ProjectLocks();
  const controller = new AbortController();
  const reason = new Error("stopped");
  const tables: string[] = [];
  await assert.rejects(
    packageDataset(bothTables(), { destination, openSource, locks }, {
      ...LIMITS,
      signal: controller.signal,
      onProgress: (p) => {
        if (!tables.includes(p.table)) tables.push(p.table);
        controller.abort(reason);
      },
    }),
    reason,
  );
  assert.equal(tables.length, 1);
  await assert.rejects(
    publishDataset(DataContractPublishRequest.parse(aPublishRequest()), { destination, locks }),
    NothingStagedError,
  );
});

Deno.test("destinationChooser: refuses what the deployment does not have, before anything is touched", () => {
  using world = new FakeWorld();
  const choose = destinationChooser({
    filestores: new Map([["LSC", world.filestore]]),
    writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
  });
  assert.throws(
    () => choose({ type: "filestore", name: "OTHER", format: "csv" }),
    UnknownDestinationError,
  );
  assert.throws(
    () => choose({ type: "postgresql", name: "pg", format: "sql" }),
    PostgresqlDestinationNotConfiguredError,
  );
  const lsc = choose({ type: "filestore", name: "LSC", format: "csv" });
  assert.equal(lsc.lockKey("Demo"), lsc.lockKey("DEMO"));
  assert.notEqual(lsc.lockKey("Demo"), lsc.lockKey("Other"));
});
