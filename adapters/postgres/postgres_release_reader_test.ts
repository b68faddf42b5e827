import assert from "node:assert/strict";
import { MemorySourceDatabase } from "../memory/memory_source_database.ts";
import { tableExtracts } from "../../domain/catalog.ts";
import type { ReadPosition } from "../../domain/release_read.ts";
import { ReleaseChangedError, ReleaseNotReadableError } from "../../ports/release_reader.ts";
import {
  DATASET,
  EVENTS,
  type FixtureTable,
  PEOPLE,
  PEOPLE_IN_KEY_ORDER,
  readAllPages,
  releaseReaderContract,
} from "../../tests/contracts/release_reader_contract.ts";
import { DestinationSandbox } from "../../tests/support/destination_databases.ts";
import { ignorePostgres } from "../../tests/support/services.ts";
import { PostgresDestinationDatabase } from "./postgres_destination.ts";
import { PostgresReleaseReader } from "./postgres_release_reader.ts";

let runs = 0;

/** A sandbox destination, a loader and a reader on it, and one run of its own. */
function underTest(sandbox: DestinationSandbox) {
  const destination = new PostgresDestinationDatabase(sandbox.options());
  const reader = new PostgresReleaseReader({ ...sandbox.options(), readOnlyRole: sandbox.reader });
  const run = { project: `proj_${++runs}`, startTime: "20260101_120000" };
  return {
    reader,
    run,
    destination,
    publish: async (tables: readonly FixtureTable[]) => {
      await publishThrough(destination, run, tables);
    },
    revoke: async () => {
      await destination.dropRun(run);
    },
    pagesByKey: true,
    describesColumns: true,
    cleanup: async () => {
      await reader.close();
      await destination.close();
    },
  };
}

/** Loads the tables as the package step does, then grants them as the publish step does. */
async function publishThrough(
  destination: PostgresDestinationDatabase,
  run: { project: string; startTime: string },
  tables: readonly FixtureTable[],
): Promise<void> {
  const catalog = {
    name: DATASET,
    description: null,
    tables: tables.map((t) => t.table),
  };
  const source = new MemorySourceDatabase(
    [catalog],
    new Map(tables.map((t) => [`${DATASET}.${t.table.name}`, [...t.rows]])),
  );
  await destination.load(
    { project: run.project, startTime: run.startTime, schemaName: DATASET },
    source,
    tableExtracts(catalog),
    { concurrency: 2, batchRows: 100 },
  );
  await destination.grantReadAccess(await destination.packagedTables(run));
}

Deno.test({
  name: "PostgresReleaseReader passes the release reader contract",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sandbox = new DestinationSandbox();
    try {
      await sandbox.create();
      await releaseReaderContract(t, () => Promise.resolve(underTest(sandbox)));
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name: "PostgresReleaseReader gives every row once in key order while the table is republished",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sandbox = new DestinationSandbox();
    try {
      await sandbox.create();
      const under = underTest(sandbox);
      try {
        await under.publish([PEOPLE, EVENTS]);
        await t.step("republished (loaded and granted again) after every page", async () => {
          let republished = 0;
          const pages = await readAllPages(under.reader, under.run, "people", 3, {
            between: async () => {
              await under.publish([PEOPLE, EVENTS]);
              republished++;
            },
          });
          assert.ok(republished >= 3);
          assert.deepEqual(pages.flatMap((p) => p.rows), PEOPLE_IN_KEY_ORDER);
        });
        await t.step("loaded again but not yet published: not readable", async () => {
          const first = await under.reader.readPage(under.run, {
            dataset: DATASET,
            table: "people",
            limit: 3,
            after: null,
          });
          await under.destination.load(
            { project: under.run.project, startTime: under.run.startTime, schemaName: DATASET },
            new MemorySourceDatabase(
              [{ name: DATASET, description: null, tables: [PEOPLE.table] }],
              new Map([[`${DATASET}.people`, [...PEOPLE.rows]]]),
            ),
            tableExtracts({ name: DATASET, description: null, tables: [PEOPLE.table] }),
            { concurrency: 1, batchRows: 100 },
          );
          await assert.rejects(
            under.reader.readPage(under.run, {
              dataset: DATASET,
              table: "people",
              limit: 3,
              after: first.next,
            }),
            ReleaseNotReadableError,
          );
          await under.destination.grantReadAccess(
            await under.destination.packagedTables(under.run),
          );
          const rest = await readAllPages(under.reader, under.run, "people", 100);
          assert.equal(rest.flatMap((p) => p.rows).length, PEOPLE.rows.length);
        });
        await t.step("a table without a key: a republish refuses the cursor", async () => {
          await under.publish([PEOPLE, EVENTS]);
          const first = await under.reader.readPage(under.run, {
            dataset: DATASET,
            table: "events",
            limit: 2,
            after: null,
          });
          assert.equal(first.next?.kind, "row");
          await under.publish([PEOPLE, EVENTS]);
          await assert.rejects(
            under.reader.readPage(under.run, {
              dataset: DATASET,
              table: "events",
              limit: 2,
              after: first.next,
            }),
            ReleaseChangedError,
          );
        });
        await t.step("a page read ahead is not served once the release is revoked", async () => {
          await under.publish([PEOPLE, EVENTS]);
          const request = { dataset: DATASET, table: "people", limit: 3, after: null };
          const first = await under.reader.readPageJson(under.run, request, "tabular");
          assert.ok(first?.next);
          // Give the read-ahead time to finish, so that it would be there to serve.
          await new Promise((resolve) => setTimeout(resolve, 200));
          await under.destination.dropRun(under.run);
          await assert.rejects(
            under.reader.readPageJson(under.run, { ...request, after: first.next }, "tabular"),
            ReleaseNotReadableError,
          );
          await under.publish([PEOPLE, EVENTS]);
        });
        await t.step("a key value that is not of the key's type is refused", async () => {
          const after: ReadPosition = { kind: "key", values: ["not a number"] };
          await assert.rejects(
            under.reader.readPage(under.run, {
              dataset: DATASET,
              table: "people",
              limit: 3,
              after,
            }),
            { code: "invalid_cursor" },
          );
        });
      } finally {
        await under.cleanup();
      }
    } finally {
      await sandbox.cleanup();
    }
  },
});

Deno.test({
  name:
    "PostgresReleaseReader pages a keyless table of many blocks by windows: every row once, in ctid order",
  ignore: ignorePostgres,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    const sandbox = new DestinationSandbox();
    try {
      await sandbox.create();
      const under = underTest(sandbox);
      try {
        // 3,000 rows of about 100 bytes: some 40 blocks.
        const LOG: FixtureTable = {
          ...EVENTS,
          table: { ...EVENTS.table, name: "log" },
          rows: Array.from({ length: 3000 }, (_, i) => [String(i), `event ${i} ${"x".repeat(80)}`]),
        };
        await under.publish([LOG]);
        const loader = sandbox.asLoader();
        const [registered] = await loader<{ schema: string }[]>`
          select destination_schema as schema from cr8tor_publisher.datasets
           where project_name = ${under.run.project}`;
        const relation = `"${registered!.schema}".log`;
        const inCtidOrder = async () =>
          (await loader.unsafe<{ n: string; what: string }[]>(
            `select n::text, what from ${relation} order by ctid`,
          )).map((r) => [r.n, r.what]);
        const paged = async (limit: number) =>
          (await readAllPages(under.reader, under.run, "log", limit)).flatMap((p) => p.rows);
        await t.step("without statistics (a guess of rows per block)", async () => {
          assert.deepEqual(await paged(37), await inCtidOrder());
        });
        await t.step("with statistics, and whole blocks of deleted rows", async () => {
          // Rows 500 to 1999 gone: many empty blocks between two windows' worth of rows.
          await loader.unsafe(`delete from ${relation} where n between 500 and 1999`);
          await loader.unsafe(`analyze ${relation}`);
          const expected = await inCtidOrder();
          assert.equal(expected.length, 1500);
          assert.deepEqual(await paged(37), expected);
          assert.deepEqual(await paged(1000), expected);
          assert.deepEqual(await paged(5000), expected);
        });
      } finally {
        await under.cleanup();
      }
    } finally {
      await sandbox.cleanup();
    }
  },
});
