import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { CsvDatasetWriter } from "../adapters/filesystem/csv_dataset_writer.ts";
import { CsvLoadRefusedError } from "../domain/csv_tables.ts";
import { projectIdentifier } from "../domain/names.ts";
import type { StagedFile, StagingWork } from "../domain/staging_layout.ts";
import { DestinationValueError } from "../ports/destination_database.ts";
import { StagingIntegrityError } from "../ports/filestore.ts";
import {
  DestinationSandbox,
  sandboxPostgresqlDestination,
} from "../tests/support/destination_databases.ts";
import { FakeOpal } from "../tests/support/fake_opal.ts";
import { ignorePostgres } from "../tests/support/services.ts";
import { destinationChooser } from "./destinations.ts";
import { loadCsvFiles } from "./load_csv_files.ts";
import { ProjectLocks } from "./project_locks.ts";
import { publishDataset } from "./publish_dataset.ts";

const RUN = { project: "pr042", startTime: "20261207_010000" };
const SCHEMA = `${projectIdentifier(RUN.project)}_${RUN.startTime}_weekly`;
const LIMITS = { concurrency: 2, batchRows: 100 };

/** A stage's work folder: files written with their SHA-512, read back in small chunks. */
class Work implements Pick<StagingWork, "read"> {
  constructor(readonly dir: string) {}

  async put(name: string, text: string): Promise<StagedFile> {
    const path = `data/outputs/weekly/${name}`;
    await mkdir(dirname(join(this.dir, path)), { recursive: true });
    await writeFile(join(this.dir, path), text);
    const bytes = new TextEncoder().encode(text);
    return {
      path,
      sha512: createHash("sha512").update(bytes).digest("hex"),
      bytes: bytes.byteLength,
    };
  }

  async *read(path: string): AsyncGenerator<Uint8Array, void, undefined> {
    const bytes = await readFile(join(this.dir, path));
    for (let i = 0; i < bytes.length; i += 7) yield bytes.subarray(i, i + 7);
  }
}

async function withLoad(
  body: (s: {
    sandbox: DestinationSandbox;
    work: Work;
    load: (files: StagedFile[]) => ReturnType<typeof loadCsvFiles>;
    publish: () => ReturnType<typeof publishDataset>;
    rows: (table: string) => Promise<unknown[][]>;
  }) => Promise<void>,
): Promise<void> {
  const sandbox = new DestinationSandbox();
  await using opal = await FakeOpal.start();
  const dir = await mkdtemp(join(tmpdir(), "cr8tor-load-csv-"));
  try {
    await sandbox.create();
    const destination = destinationChooser({
      filestores: new Map(),
      writers: { csv: new CsvDatasetWriter(), duckdb: new CsvDatasetWriter() },
      postgresql: sandboxPostgresqlDestination(sandbox, opal),
    })({ type: "postgresql", name: "", format: "sql" });
    const work = new Work(dir);
    const locks = new ProjectLocks();
    await body({
      sandbox,
      work,
      load: (files) =>
        loadCsvFiles(work, files, { destination, run: RUN, dataset: "weekly" }, LIMITS),
      publish: () =>
        publishDataset({ project_name: RUN.project, project_start_time: RUN.startTime }, {
          destination,
          locks,
        }),
      rows: async (table) =>
        (await sandbox.asReader().unsafe(`select * from "${SCHEMA}"."${table}" order by 1`))
          .map((r) => Object.values(r)),
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
    await sandbox.cleanup();
  }
}

Deno.test({
  name:
    "loadCsvFiles() loading a run again replaces its tables in one swap; a refused or changed file leaves them as they were",
  ignore: ignorePostgres,
  fn: () =>
    withLoad(async ({ sandbox, work, load, publish, rows }) => {
      const first = await load([
        await work.put("a.csv", "id,v\n1,one\n2,two\n"),
        await work.put("b.csv", "x\n10\n"),
      ]);
      assert.deepEqual(first.dataRetrieved, [
        { table_name: `${SCHEMA}.a` },
        { table_name: `${SCHEMA}.b` },
      ]);
      await publish();
      assert.deepEqual(await rows("a"), [["1", "one"], ["2", "two"]]);

      // Loaded again: the dataset is the new files only, swapped in at once, hidden until published.
      await load([await work.put("a.csv", "id,v\n3,three\n")]);
      await assert.rejects(rows("a"), "the reload is not readable before it is published");
      await publish();
      assert.deepEqual(await rows("a"), [["3", "three"]]);
      await assert.rejects(rows("b"), /does not exist/);

      const before = await sandbox.admin()`select packaged_at from cr8tor_publisher.datasets`;
      // A value the column's type refuses (a date the checks' pattern lets through), a ragged file,
      // and bytes that changed since they were staged: each refused, nothing changed.
      await assert.rejects(
        load([
          await work.put("a.csv", "id,v\n4,four\n"),
          await work.put("c.csv", "day\n2023-02-31\n"),
        ]),
        (e: unknown) =>
          e instanceof DestinationValueError && /weekly\.c" .*row 1, column "day"/.test(e.message),
      );
      await assert.rejects(
        load([await work.put("a.csv", "id,v\n4\n")]),
        (e: unknown) => e instanceof CsvLoadRefusedError && /"a\.csv"/.test(e.message),
      );
      // A lone \. line: PostgreSQL's COPY would silently stop there.
      await assert.rejects(
        load([await work.put("a.csv", "id\n4\n\\.\n5\n")]),
        (e: unknown) => e instanceof CsvLoadRefusedError && /line 3 is only/.test(e.message),
      );
      const staged = await work.put("a.csv", "id,v\n4,four\n");
      await work.put("a.csv", "id,v\n5,FIVE\n");
      await assert.rejects(load([staged]), StagingIntegrityError);
      await assert.rejects(
        load([await work.put("a.csv", "n\n1\n"), await work.put("a.CSV", "n\n2\n")]),
        (e: unknown) =>
          e instanceof CsvLoadRefusedError && /its table "a" is also a\.csv's/.test(e.message),
      );

      assert.deepEqual(await rows("a"), [["3", "three"]], "the published tables are untouched");
      assert.deepEqual(
        await sandbox.admin()`select packaged_at from cr8tor_publisher.datasets`,
        before,
      );
      const left = await sandbox.admin()`
        select nspname from pg_catalog.pg_namespace where nspname like 'Cr8torLoad\\_%'`;
      assert.deepEqual([...left], [], "no temporary schema is left behind");
    }),
});
