import assert from "node:assert/strict";
import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { DuckdbDatasetWriter } from "../duckdb/duckdb_dataset_writer.ts";
import { MemorySourceDatabase } from "../memory/memory_source_database.ts";
import { tableExtracts } from "../../domain/catalog.ts";
import { releasedTables } from "../../domain/staging_manifest.ts";
import type { DatasetWriter } from "../../ports/dataset_writer.ts";
import { ReleaseChangedError } from "../../ports/release_reader.ts";
import {
  DATASET,
  EVENTS,
  type FixtureTable,
  PEOPLE,
  readAllPages,
  releaseReaderContract,
  type ReleaseReaderUnderTest,
} from "../../tests/contracts/release_reader_contract.ts";
import { TEST_MANIFEST_KEY } from "../../tests/support/manifest_key.ts";
import { CsvDatasetWriter } from "./csv_dataset_writer.ts";
import { FilestoreReleaseReader } from "./filestore_release_reader.ts";
import { LocalFilestore } from "./local_filestore.ts";

let runs = 0;

/** A fresh filestore whose runs are staged with `writer` and published, read by the reader. */
async function underTest(writer: DatasetWriter, pagesByKey: boolean): Promise<
  ReleaseReaderUnderTest & { base: string }
> {
  const base = await Deno.makeTempDir({ prefix: "release-reader-" });
  await mkdir(join(base, "staging"));
  await mkdir(join(base, "production"));
  const filestore = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
  const run = { project: `proj_${++runs}`, startTime: "20260101_120000" };
  return {
    base,
    reader: new FilestoreReleaseReader(base),
    run,
    publish: async (tables: readonly FixtureTable[]) => {
      const catalog = { name: DATASET, description: null, tables: tables.map((t) => t.table) };
      const source = new MemorySourceDatabase(
        [catalog],
        new Map(tables.map((t) => [`${DATASET}.${t.table.name}`, [...t.rows]])),
      );
      const extracts = tableExtracts(catalog);
      await filestore.stage(
        run,
        DATASET,
        (work) => writer.write(work, source, extracts, { concurrency: 2, batchRows: 100 }),
        undefined,
        releasedTables(extracts),
      );
      await filestore.publish(run);
    },
    revoke: async () => {
      await filestore.revoke(run, {
        mode: "delete",
        releaseId: "r1",
        onRemoving: () => Promise.resolve(),
      });
    },
    pagesByKey,
    describesColumns: false,
    cleanup: () => rm(base, { recursive: true, force: true }),
  };
}

Deno.test("FilestoreReleaseReader passes the release reader contract with CSV files", async (t) => {
  await releaseReaderContract(t, () => underTest(new CsvDatasetWriter(), false));
});

Deno.test("FilestoreReleaseReader passes the release reader contract with a DuckDB file", async (t) => {
  await releaseReaderContract(t, () => underTest(new DuckdbDatasetWriter(), true));
});

Deno.test("FilestoreReleaseReader: a CSV republished with other bytes refuses the cursor", async (t) => {
  const under = await underTest(new CsvDatasetWriter(), false);
  try {
    await under.publish([PEOPLE, EVENTS]);
    const first = await under.reader.readPage(under.run, {
      dataset: DATASET,
      table: "people",
      limit: 5,
      after: null,
    });
    assert.equal(first.next?.kind, "file");
    await t.step("the same bytes again: paging goes on", async () => {
      await under.publish([PEOPLE, EVENTS]);
      const second = await under.reader.readPage(under.run, {
        dataset: DATASET,
        table: "people",
        limit: 5,
        after: first.next,
      });
      assert.deepEqual(second.rows, PEOPLE.rows.slice(5, 10));
    });
    await t.step("other bytes: release_changed", async () => {
      await under.publish([{ ...PEOPLE, rows: PEOPLE.rows.slice(1) }, EVENTS]);
      await assert.rejects(
        under.reader.readPage(under.run, {
          dataset: DATASET,
          table: "people",
          limit: 5,
          after: first.next,
        }),
        ReleaseChangedError,
      );
      const again = await readAllPages(under.reader, under.run, "people", 5);
      assert.deepEqual(again.flatMap((p) => p.rows), PEOPLE.rows.slice(1));
    });
    await t.step("an offset inside a record is refused", async () => {
      const page = await under.reader.readPage(under.run, {
        dataset: DATASET,
        table: "people",
        limit: 1,
        after: null,
      });
      const next = page.next!;
      assert.equal(next.kind, "file");
      if (next.kind !== "file") return;
      await assert.rejects(
        under.reader.readPage(under.run, {
          dataset: DATASET,
          table: "people",
          limit: 1,
          after: { ...next, offset: next.offset + 3 },
        }),
        { code: "invalid_cursor" },
      );
    });
  } finally {
    await under.cleanup();
  }
});
