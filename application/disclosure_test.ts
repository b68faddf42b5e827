import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CsvDatasetWriter } from "../adapters/filesystem/csv_dataset_writer.ts";
import { MemoryDestinationDatabase } from "../adapters/memory/memory_destination_database.ts";
import { MemorySourceDatabase } from "../adapters/memory/memory_source_database.ts";
import type { ReadCsvOptions, TableExtract } from "../domain/catalog.ts";
import { DataContractTransferRequest } from "../domain/contract.ts";
import { encodeCsvRow } from "../domain/csv.ts";
import type { TableDisclosure } from "../domain/disclosure.ts";
import { type Destination, StagingChangedError } from "../ports/destination.ts";
import { FakeWorld } from "../tests/support/apps.ts";
import { bagProblems } from "../tests/support/bagit_check.ts";
import { ONCOLOGY, ONCOLOGY_ROWS } from "../tests/support/catalogs.ts";
import { aTransferRequest } from "../tests/support/requests.ts";
import { destinationChooser, PostgresqlOpalDestination } from "./destinations.ts";
import { packageDataset } from "./package_dataset.ts";
import { ProjectLocks } from "./project_locks.ts";
import { publishDataset } from "./publish_dataset.ts";
import type { SourceOpener } from "./source.ts";

const LIMITS = { concurrency: 1, batchRows: 2, disclosure: { smallCellThreshold: 2 } };
const RUN = { project: "Pr042", startTime: "20250611_093000" } as const;

/** The in-memory source with a CSV fast path: canonical CSV of the same rows, in 5-byte chunks. */
class CsvMemorySource extends MemorySourceDatabase {
  async *readCsv(
    extract: TableExtract,
    options?: ReadCsvOptions,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    let text = encodeCsvRow(extract.table.columns.map((c) => c.name));
    for await (const batch of this.readRows(extract, options)) {
      for (const row of batch) text += encodeCsvRow(row);
    }
    const bytes = new TextEncoder().encode(text);
    for (let i = 0; i < bytes.length; i += 5) yield bytes.subarray(i, i + 5);
  }
}

/** The same source after a change: the last row of `tumour_stage` is gone. */
const CHANGED_ROWS = new Map(
  [...ONCOLOGY_ROWS].map((
    [key, rows],
  ) => [key, key.endsWith(".tumour_stage") ? rows.slice(0, -1) : rows]),
);

function opener(csv: boolean, rows = ONCOLOGY_ROWS): SourceOpener {
  return () =>
    Promise.resolve(
      csv ? new CsvMemorySource([ONCOLOGY], rows) : new MemorySourceDatabase([ONCOLOGY], rows),
    );
}

function request(schema = "oncology") {
  const parsed = DataContractTransferRequest.parse(aTransferRequest());
  return {
    ...parsed,
    project_name: RUN.project,
    project_start_time: RUN.startTime,
    dataset: { ...parsed.dataset, schema_name: schema, tables: null },
  };
}

function filestoreOf(world: FakeWorld): Destination {
  return destinationChooser({
    filestores: new Map([["LSC", world.filestore]]),
    writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
  })({ type: "filestore", name: "lsc", format: "csv" });
}

async function packageWith(
  destination: Destination,
  csv: boolean,
  locks = new ProjectLocks(),
  checked: TableDisclosure[] = [],
  rows = ONCOLOGY_ROWS,
) {
  return await packageDataset(request(), { destination, openSource: opener(csv, rows), locks }, {
    ...LIMITS,
    onTableChecked: (checks) => checked.push(checks),
  });
}

Deno.test("packaging checks every table, with the same results on the row path and the CSV fast path", async () => {
  using rowWorld = new FakeWorld();
  using csvWorld = new FakeWorld();
  const rowChecked: TableDisclosure[] = [];
  const csvChecked: TableDisclosure[] = [];
  await packageWith(filestoreOf(rowWorld), false, undefined, rowChecked);
  await packageWith(filestoreOf(csvWorld), true, undefined, csvChecked);
  const rows = await filestoreOf(rowWorld).staging(RUN);
  const csv = await filestoreOf(csvWorld).staging(RUN);
  assert.deepEqual(csv.tables, rows.tables);
  assert.deepEqual(csvChecked, rowChecked);
  assert.deepEqual(rows.tables.map((t) => `${t.dataset}.${t.table}`).sort(), [
    "oncology.treatment_line",
    "oncology.tumour_stage",
  ]);
  const stage = rows.tables.find((t) => t.table === "tumour_stage")!.disclosure;
  assert.equal(stage.rows, 3);
  const [id, label, note] = stage.columns;
  assert.deepEqual([id!.min, id!.max], ["1", "3"]);
  assert.equal(label!.min, null);
  assert.equal(label!.categories, null, "each label is seen once: not a category");
  assert.equal(note!.nulls, 1);
  assert.equal(rows.tables[0]!.thresholds.small_cell_threshold, 2);
  assert.deepEqual(rows.uncheckedDatasets, []);
});

Deno.test("checks off: the dataset is staged unchecked and the bag has no disclosure file", async () => {
  using world = new FakeWorld();
  const destination = filestoreOf(world);
  const locks = new ProjectLocks();
  await packageDataset(request(), { destination, openSource: opener(false), locks }, {
    concurrency: 1,
    batchRows: 2,
  });
  const staging = await destination.staging(RUN);
  assert.deepEqual(staging.tables, []);
  assert.deepEqual(staging.uncheckedDatasets, ["oncology"]);
  await publishDataset({ project_name: RUN.project, project_start_time: RUN.startTime }, {
    destination,
    locks,
  });
  const bag = join(world.base, "production", RUN.project, RUN.startTime);
  assert.deepEqual(await bagProblems(bag), []);
  await assert.rejects(readFile(join(bag, "disclosure-checks.json")));
});

Deno.test("publish writes disclosure-checks.json into the bag, covered by the tag manifest", async () => {
  using world = new FakeWorld();
  const destination = filestoreOf(world);
  const locks = new ProjectLocks();
  await packageWith(destination, true, locks);
  const staged = await destination.staging(RUN);
  await publishDataset({
    project_name: RUN.project,
    project_start_time: RUN.startTime,
    expected_staging_digest: staged.digest!,
  }, { destination, locks });
  const bag = join(world.base, "production", RUN.project, RUN.startTime);
  assert.deepEqual(await bagProblems(bag), []);
  const text = await readFile(join(bag, "disclosure-checks.json"), "utf8");
  const json = JSON.parse(text);
  assert.equal(json.version, 1);
  assert.equal(json.datasets[0].dataset, "oncology");
  assert.deepEqual(
    json.datasets[0].checks.tables,
    JSON.parse(JSON.stringify(staged.tables.map((t) => t.disclosure))),
  );
  assert.equal(json.datasets[0].checks.thresholds.small_cell_threshold, 2);
  const tagManifest = await readFile(join(bag, "tagmanifest-sha512.txt"), "utf8");
  assert.match(tagManifest, /^[0-9a-f]{128} {2}disclosure-checks\.json$/m);
  assert.ok(!text.includes("row-secret-one"), "a high-cardinality text column's values stay out");
  // Published: nothing is staged any more.
  assert.equal(await destination.stagingDigest(RUN), null);
});

Deno.test("the staging digest is null before packaging, stable for the same content, and changes with it", async () => {
  using world = new FakeWorld();
  const destination = filestoreOf(world);
  assert.equal(await destination.stagingDigest(RUN), null);
  await packageWith(destination, false);
  const first = await destination.stagingDigest(RUN);
  assert.match(first ?? "", /^[0-9a-f]{64}$/);
  assert.equal(await destination.stagingDigest(RUN), first);
  assert.equal((await destination.staging(RUN)).digest, first);
  await packageWith(destination, false);
  assert.equal(await destination.stagingDigest(RUN), first, "the same rows stage the same bytes");
  await packageWith(destination, false, undefined, [], CHANGED_ROWS);
  const second = await destination.stagingDigest(RUN);
  assert.notEqual(second, first, "changed rows are new content");
  await packageDataset(request("oncology_b"), {
    destination,
    openSource: () =>
      Promise.resolve(
        new MemorySourceDatabase(
          [{ ...ONCOLOGY, name: "oncology_b" }],
          new Map([...ONCOLOGY_ROWS].map(([k, v]) => [k.replace("oncology.", "oncology_b."), v])),
        ),
      ),
    locks: new ProjectLocks(),
  }, LIMITS);
  const third = await destination.stagingDigest(RUN);
  assert.notEqual(third, second);
  assert.equal(await destination.stagingDigest(RUN), third);
  const datasets = new Set((await destination.staging(RUN)).tables.map((t) => t.dataset));
  assert.deepEqual([...datasets], ["oncology", "oncology_b"]);
});

Deno.test("publish with a stale staging digest is refused and changes nothing", async () => {
  using world = new FakeWorld();
  const destination = filestoreOf(world);
  const locks = new ProjectLocks();
  await packageWith(destination, false, locks);
  const approved = await destination.stagingDigest(RUN);
  await packageWith(destination, false, locks, [], CHANGED_ROWS);
  const current = await destination.stagingDigest(RUN);
  const publish = (expected: string) =>
    publishDataset({
      project_name: RUN.project,
      project_start_time: RUN.startTime,
      expected_staging_digest: expected,
    }, { destination, locks });
  const error = await publish(approved!).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof StagingChangedError);
  assert.equal(error.code, "staging_changed");
  assert.ok(!error.message.includes(approved!) && !error.message.includes(current!));
  assert.equal(await destination.stagingDigest(RUN), current);
  await assert.rejects(
    readFile(join(world.base, "production", RUN.project, RUN.startTime, "bagit.txt")),
  );
  const published = await publish(current!);
  assert.ok(published.dataPublished.length > 0);
});

Deno.test("the PostgreSQL destination's staging digest changes with every load", async () => {
  const database = new MemoryDestinationDatabase();
  const destination = new PostgresqlOpalDestination({
    connect: () => Promise.resolve(database.reopen()),
    opal: () => Promise.reject(new Error("unused")),
    resourceAccess: () => Promise.reject(new Error("unused")),
  });
  assert.equal(await destination.stagingDigest(RUN), null);
  await packageWith(destination, false);
  const first = await destination.stagingDigest(RUN);
  assert.match(first ?? "", /^[0-9a-f]{64}$/);
  assert.equal(await destination.stagingDigest(RUN), first);
  await packageWith(destination, false);
  assert.notEqual(await destination.stagingDigest(RUN), first);
  const staging = await destination.staging(RUN);
  assert.deepEqual(staging.tables, []);
  assert.equal(staging.uncheckedDatasets.length, 1);
});
