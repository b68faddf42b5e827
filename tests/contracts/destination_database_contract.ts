/**
 * The contract every DestinationDatabase adapter passes, the in-memory fake included: readiness, loads that
 * replace a dataset atomically, the registry's conflicts, `packagedTables`, `releasedDatasets`,
 * `grantReadAccess`, stopping on a signal with nothing changed, and per-table progress.
 *
 * @module
 */
import assert from "node:assert/strict";
import { MemorySourceDatabase } from "../../adapters/memory/memory_source_database.ts";
import {
  type CatalogTable,
  type TableExtract,
  tableExtracts,
  type TableReader,
} from "../../domain/catalog.ts";
import { encodeCsvRow, encodeCsvRows } from "../../domain/csv.ts";
import { DestinationNameTooLongError } from "../../domain/destination_schema.ts";
import type { ProgressReport } from "../../domain/long_work.ts";
import type { CanonicalRow, LogicalType } from "../../domain/logical_type.ts";
import {
  type DestinationDatabase,
  type DestinationDataset,
  DestinationProjectConflictError,
  DestinationSchemaConflictError,
  DestinationTablesNotPackagedError,
  DestinationUnavailableError,
  DestinationValueError,
  type LoadedTable,
  type LoadOptions,
} from "../../ports/destination_database.ts";
import { SourceUnavailableError } from "../../ports/source_database.ts";
import { withinMs } from "./source_database_contract.ts";

/** A destination database under test, with read-only views of what it holds. */
export interface DestinationDatabaseUnderTest {
  readonly database: DestinationDatabase;
  /** Every schema in the destination apart from the registry's, sorted: what loads left behind. */
  schemas(): Promise<string[]>;
  /** A table's rows as canonical text, in any order; `undefined` when the table does not exist. */
  rows(table: LoadedTable): Promise<CanonicalRow[] | undefined>;
  /** The tables the read-only role may SELECT, sorted by schema, then name. */
  readableTables(): Promise<LoadedTable[]>;
  /** Creates a schema (with a table in it) the way a DBA would, not through a load. */
  addForeignSchema(name: string): Promise<void>;
  /** Drops everything; called after the contract closed the database. */
  cleanup(): Promise<void>;
}

const START = "20250611_093000";
/** `proj_a` is already an identifier, so the destination schema starts with it unchanged. */
const DATASET: DestinationDataset = { project: "proj_a", startTime: START, schemaName: "Oncology" };
const DEST = "proj_a_20250611_093000_oncology";
const OPTIONS: LoadOptions = { concurrency: 2, batchRows: 2 };

/**
 * Two project names with the same identifier `study_alpha_b8db74d2` (the first 8 hex digits of their
 * SHA-256 meet).
 */
const COLLIDING = ["study#&)ALPHA", "Study +~#alpha"] as const;

const INTEGER: LogicalType = { kind: "integer" };
const TEXT: LogicalType = { kind: "text" };

/** A catalogue table of an integer key `id` and nullable text columns. */
function aTable(name: string, ...textColumns: string[]): CatalogTable {
  return {
    name,
    kind: "table",
    description: null,
    primaryKey: ["id"],
    columns: [
      { name: "id", dataType: "integer", logicalType: INTEGER, nullable: false, description: null },
      ...textColumns.map((column) => ({
        name: column,
        dataType: "text",
        logicalType: TEXT,
        nullable: true,
        description: null,
      })),
    ],
  };
}

/** A memory source of one schema `src` holding the given tables; returns it with its extracts. */
function aSource(
  tables: readonly { table: CatalogTable; rows: readonly CanonicalRow[] }[],
): { source: MemorySourceDatabase; extracts: TableExtract[] } {
  const catalog = { name: "src", description: null, tables: tables.map((t) => t.table) };
  const source = new MemorySourceDatabase(
    [catalog],
    new Map(tables.map((t) => [`src.${t.table.name}`, t.rows])),
  );
  return { source, extracts: tableExtracts(catalog) };
}

/** Rows `[id, "<prefix><id>"]` for ids 1..count. */
function labels(count: number, prefix: string): CanonicalRow[] {
  return Array.from({ length: count }, (_, i) => [String(i + 1), `${prefix}${i + 1}`]);
}

const V1 = [
  { table: aTable("small", "label"), rows: [...labels(2, "v1-"), ["3", ""], ["4", null]] },
  { table: aTable("big", "v"), rows: labels(25, "big-v1-") },
];

/** The same rows offered only as canonical CSV, header first, in chunks of `perChunk` rows. */
function csvReader(
  rows: ReadonlyMap<string, readonly CanonicalRow[]>,
  perChunk = 2,
): TableReader & { bytes(extract: TableExtract): number } {
  function chunks(extract: TableExtract): Uint8Array[] {
    const all = rows.get(extract.table.name) ?? [];
    const kinds = extract.table.columns.map((c) => c.logicalType.kind);
    const out = [new TextEncoder().encode(encodeCsvRow(extract.table.columns.map((c) => c.name)))];
    for (let i = 0; i < all.length; i += perChunk) {
      out.push(new TextEncoder().encode(encodeCsvRows(all.slice(i, i + perChunk), kinds)));
    }
    return out;
  }
  return {
    readRows: () => assert.fail("the CSV fast path must be used"),
    async *readCsv(extract: TableExtract) {
      yield* chunks(extract);
    },
    bytes: (extract) => chunks(extract).reduce((n, c) => n + c.byteLength, 0),
  };
}

/**
 * A reader that yields the first row of a table (on the CSV path after the header), then waits until
 * released, as a slow source query would.
 */
function stuckReader(csv: boolean): {
  reader: TableReader;
  waiting: Promise<void>;
  release(): void;
} {
  const waiting = Promise.withResolvers<void>();
  const released = Promise.withResolvers<void>();
  const rows: TableReader = {
    async *readRows() {
      yield [["1", "first"]];
      waiting.resolve();
      await released.promise;
    },
  };
  const reader: TableReader = !csv ? rows : {
    readRows: rows.readRows,
    async *readCsv(extract) {
      yield new TextEncoder().encode(encodeCsvRow(extract.table.columns.map((c) => c.name)));
      yield new TextEncoder().encode("1,first\n");
      waiting.resolve();
      await released.promise;
    },
  };
  return { reader, waiting: waiting.promise, release: () => released.resolve() };
}

/** Records which tables were opened for reading. */
function recording(reader: TableReader): TableReader & { opened: string[] } {
  const opened: string[] = [];
  return {
    opened,
    readRows(extract, options) {
      opened.push(extract.table.name);
      return reader.readRows(extract, options);
    },
  };
}

function loaded(schema: string, ...names: string[]): LoadedTable[] {
  return names.map((table) => ({ schema, table }));
}

function byId(rows: readonly CanonicalRow[] | undefined): CanonicalRow[] | undefined {
  return rows === undefined ? undefined : [...rows].sort((a, b) => Number(a[0]) - Number(b[0]));
}

/** The reports of one table, checked: counts never go back, exactly one `done`, and it comes last. */
function tableReports(reports: readonly ProgressReport[], table: string): ProgressReport[] {
  const mine = reports.filter((r) => r.table === table);
  assert.ok(mine.length > 0, `no progress for "${table}"`);
  assert.equal(mine.filter((r) => r.done !== undefined).length, 1, `one done for "${table}"`);
  assert.deepEqual(mine.at(-1)!.done, { sha512: null, reused: false });
  for (let i = 1; i < mine.length; i++) {
    assert.ok(mine[i]!.bytes >= mine[i - 1]!.bytes, `bytes of "${table}" went back`);
    if (mine[i]!.rows !== null) {
      assert.ok(mine[i]!.rows! >= (mine[i - 1]!.rows ?? 0), `rows of "${table}" went back`);
    }
  }
  return mine;
}

/**
 * Runs the DestinationDatabase contract.
 *
 * @param make builds a destination database on fresh, empty storage; the contract closes it and calls
 *   `cleanup`.
 */
export async function destinationDatabaseContract(
  t: Deno.TestContext,
  make: () => Promise<DestinationDatabaseUnderTest>,
): Promise<void> {
  const step = (name: string, body: (under: DestinationDatabaseUnderTest) => Promise<void>) =>
    t.step(name, async () => {
      const under = await make();
      try {
        await body(under);
      } finally {
        try {
          await under.database.close();
        } finally {
          await under.cleanup();
        }
      }
    });

  /** What a dataset looks like from outside: schemas, every loaded table's rows, the run's tables. */
  async function state(under: DestinationDatabaseUnderTest) {
    const schemas = await under.schemas();
    const packaged = await under.database.packagedTables({ project: "proj_a", startTime: START });
    const rows = await Promise.all(packaged.map(async (t) => byId(await under.rows(t))));
    return { schemas, packaged, rows, readable: await under.readableTables() };
  }

  await step("checkReady passes on a ready destination, and again", async ({ database }) => {
    await database.checkReady();
    await database.checkReady();
  });

  await step(
    "load copies every table with its rows, NULL and '' kept apart, and returns them sorted",
    async (under) => {
      const v1 = aSource(V1);
      assert.deepEqual(
        await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS),
        loaded(DEST, "big", "small"),
      );
      assert.deepEqual(byId(await under.rows({ schema: DEST, table: "small" })), V1[0]!.rows);
      assert.deepEqual(byId(await under.rows({ schema: DEST, table: "big" })), V1[1]!.rows);
      assert.deepEqual(await under.schemas(), [DEST]);
      assert.deepEqual(
        await under.database.packagedTables({ project: "proj_a", startTime: START }),
        loaded(DEST, "big", "small"),
      );
    },
  );

  await step(
    "stagingDigest is null before a load, stable, and changes with every load of the run",
    async (under) => {
      const run = { project: "proj_a", startTime: START };
      assert.equal(await under.database.stagingDigest(run), null);
      const v1 = aSource(V1);
      await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
      const first = await under.database.stagingDigest(run);
      assert.match(first ?? "", /^[0-9a-f]{64}$/);
      assert.equal(await under.database.stagingDigest(run), first);
      assert.equal(
        await under.database.stagingDigest({ project: "other", startTime: START }),
        null,
      );
      const again = aSource(V1);
      await under.database.load(DATASET, again.source, again.extracts, OPTIONS);
      const second = await under.database.stagingDigest(run);
      assert.notEqual(second, first, "the same rows loaded again are a new load");
      assert.equal(await under.database.stagingDigest(run), second);
    },
  );

  await step("load takes the source's CSV fast path when it has one", async (under) => {
    const csv = csvReader(new Map(V1.map((t) => [t.table.name, t.rows])));
    const extracts = aSource(V1).extracts;
    assert.deepEqual(
      await under.database.load(DATASET, csv, extracts, OPTIONS),
      loaded(DEST, "big", "small"),
    );
    assert.deepEqual(byId(await under.rows({ schema: DEST, table: "small" })), V1[0]!.rows);
    assert.deepEqual(byId(await under.rows({ schema: DEST, table: "big" })), V1[1]!.rows);
  });

  await step(
    "releasedDatasets gives back each dataset's released tables as loaded; a reload replaces them",
    async (under) => {
      const run = { project: "proj_a", startTime: START };
      assert.deepEqual(await under.database.releasedDatasets(run), []);
      const amount: CatalogTable = {
        name: "payments",
        kind: "table",
        description: "One row per payment",
        primaryKey: ["id"],
        columns: [
          {
            name: "id",
            dataType: "integer",
            logicalType: INTEGER,
            nullable: false,
            description: null,
          },
          {
            name: "amount",
            dataType: "numeric(10,2)",
            logicalType: { kind: "decimal", precision: 10, scale: 2 },
            nullable: true,
            description: "In pounds",
          },
          {
            name: "payee",
            dataType: "character varying(40)",
            logicalType: TEXT,
            nullable: true,
            description: null,
          },
        ],
      };
      const v1 = aSource([{ table: amount, rows: [["1", "12.50", "a"]] }, V1[0]!]);
      await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
      const other = aSource([V1[1]!]);
      await under.database.load(
        { ...DATASET, schemaName: "Cardiology" },
        other.source,
        other.extracts,
        OPTIONS,
      );
      const smallTable = {
        name: "small",
        description: null,
        columns: [
          { name: "id", datatype: "integer", description: null },
          { name: "label", datatype: "text", description: null },
        ],
      };
      assert.deepEqual(await under.database.releasedDatasets(run), [
        {
          schemaName: "Cardiology",
          schema: "proj_a_20250611_093000_cardiology",
          tables: [{
            name: "big",
            description: null,
            columns: [
              { name: "id", datatype: "integer", description: null },
              { name: "v", datatype: "text", description: null },
            ],
          }],
        },
        {
          schemaName: "Oncology",
          schema: DEST,
          tables: [
            {
              name: "payments",
              description: "One row per payment",
              columns: [
                { name: "id", datatype: "integer", description: null },
                { name: "amount", datatype: "numeric(10,2)", description: "In pounds" },
                { name: "payee", datatype: "character varying(40)", description: null },
              ],
            },
            smallTable,
          ],
        },
      ]);
      assert.deepEqual(
        await under.database.releasedDatasets({ project: "proj_a", startTime: "20250611_093001" }),
        [],
      );

      const v2 = aSource([V1[0]!]);
      await under.database.load(DATASET, v2.source, v2.extracts, OPTIONS);
      assert.deepEqual(
        (await under.database.releasedDatasets(run)).find((d) => d.schemaName === "Oncology"),
        { schemaName: "Oncology", schema: DEST, tables: [smallTable] },
      );
      await under.database.dropRun(run);
      assert.deepEqual(await under.database.releasedDatasets(run), []);
    },
  );

  await step("load again replaces the dataset's tables and rows", async (under) => {
    const v1 = aSource(V1);
    await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
    const v2 = aSource([
      { table: aTable("small", "label"), rows: labels(2, "v2-") },
      { table: aTable("added"), rows: [["7"]] },
    ]);
    assert.deepEqual(
      await under.database.load(DATASET, v2.source, v2.extracts, OPTIONS),
      loaded(DEST, "added", "small"),
    );
    assert.deepEqual(byId(await under.rows({ schema: DEST, table: "small" })), labels(2, "v2-"));
    assert.deepEqual(await under.rows({ schema: DEST, table: "added" }), [["7"]]);
    assert.equal(await under.rows({ schema: DEST, table: "big" }), undefined);
    assert.deepEqual(await under.schemas(), [DEST]);
    assert.deepEqual(
      await under.database.packagedTables({ project: "proj_a", startTime: START }),
      loaded(DEST, "added", "small"),
    );
  });

  await step(
    "a load that fails leaves the previous dataset as it was and nothing else behind",
    async (under) => {
      const v1 = aSource(V1);
      await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
      const before = await state(under);

      const failing = aSource([
        { table: aTable("small", "label"), rows: labels(5, "v2-") },
        { table: aTable("big", "v"), rows: labels(50, "big-v2-") },
      ]);
      failing.source.failAfterRows(20);
      await assert.rejects(
        under.database.load(DATASET, failing.source, failing.extracts, OPTIONS),
        SourceUnavailableError,
      );
      assert.deepEqual(await state(under), before);

      const refusals: [string, CanonicalRow[], (e: DestinationValueError) => void][] = [
        ["a NUL character", [["1", "ok"], ["2", "secret\u0000nul"], ["3", "ok"]], (e) => {
          assert.equal(e.where.row, 2);
          assert.equal(e.where.column, "label");
        }],
        ["an unpaired surrogate", [["1", "ok"], ["2", "secret \uD800 half"]], (e) => {
          assert.equal(e.where.row, 2);
          assert.equal(e.where.column, "label");
        }],
        [
          "a duplicate primary key",
          [["1", "a"], ["2", "b"], ["1", "secret again"], ["3", "c"]],
          (e) => {
            assert.equal(e.where.row, 3);
          },
        ],
        ["a NULL in a NOT NULL column", [["1", "a"], [null, "b"]], (e) => {
          assert.equal(e.where.row, 2);
          assert.equal(e.where.column, "id");
        }],
      ];
      for (const [what, rows, check] of refusals) {
        const bad = aSource([{ table: aTable("refused", "label"), rows }]);
        await assert.rejects(
          withinMs(
            under.database.load(DATASET, bad.source, bad.extracts, OPTIONS),
            20_000,
            `load() with ${what}`,
          ),
          (e: unknown) => {
            assert.ok(e instanceof DestinationValueError, `${what}: ${e}`);
            assert.equal(e.code, "destination_value_refused");
            assert.equal(e.where.schema, DEST);
            assert.equal(e.where.table, "refused");
            check(e);
            assert.ok(!e.message.includes("secret"), `the message shows a value: ${e.message}`);
            return true;
          },
        );
        assert.deepEqual(await state(under), before, what);
      }
    },
  );

  await step(
    "load refuses a schema another dataset holds, or one no load created; nothing changes",
    async (under) => {
      const v1 = aSource(V1);
      await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
      const before = await state(under);
      // Same schema once lower-cased: "Oncology" and "oncology".
      await assert.rejects(
        under.database.load(
          { ...DATASET, schemaName: "oncology" },
          v1.source,
          v1.extracts,
          OPTIONS,
        ),
        (e: unknown) =>
          e instanceof DestinationSchemaConflictError && e.schema === DEST &&
          e.owner?.schemaName === "Oncology" && e.owner.project === "proj_a",
      );
      assert.deepEqual(await state(under), before);

      const foreign = `other_${START}_oncology`;
      await under.addForeignSchema(foreign);
      await assert.rejects(
        under.database.load({ ...DATASET, project: "other" }, v1.source, v1.extracts, OPTIONS),
        (e: unknown) =>
          e instanceof DestinationSchemaConflictError && e.owner === undefined &&
          e.code === "destination_schema_conflict",
      );
      assert.deepEqual(await under.schemas(), [foreign, DEST].sort());
      assert.deepEqual(
        await under.database.packagedTables({ project: "other", startTime: START }),
        [],
      );
    },
  );

  await step(
    "load refuses a project whose identifier another project holds; nothing changes",
    async (under) => {
      const [first, second] = COLLIDING;
      const v1 = aSource(V1);
      await under.database.load({ ...DATASET, project: first }, v1.source, v1.extracts, OPTIONS);
      const schemas = await under.schemas();
      for (
        const dataset of [
          { project: second, startTime: "20250612_000000", schemaName: "other" },
          { project: second, startTime: START, schemaName: "Oncology" },
        ]
      ) {
        await assert.rejects(
          under.database.load(dataset, v1.source, v1.extracts, OPTIONS),
          (e: unknown) =>
            e instanceof DestinationProjectConflictError && e.owner === first &&
            e.project === second && e.identifier === "study_alpha_b8db74d2",
        );
      }
      assert.deepEqual(await under.schemas(), schemas);
      assert.deepEqual(
        await under.database.packagedTables({ project: second, startTime: START }),
        [],
      );
    },
  );

  await step("load refuses bad names and limits before creating anything", async (under) => {
    const v1 = aSource(V1);
    await assert.rejects(
      under.database.load(
        { ...DATASET, project: "p".repeat(40), schemaName: "s".repeat(10) },
        v1.source,
        v1.extracts,
        OPTIONS,
      ),
      (e: unknown) => e instanceof DestinationNameTooLongError && e.kind === "schema",
    );
    const long = aSource([{ table: aTable("t".repeat(64)), rows: [] }]);
    await assert.rejects(
      under.database.load(DATASET, long.source, long.extracts, OPTIONS),
      (e: unknown) => e instanceof DestinationNameTooLongError && e.kind === "table",
    );
    await assert.rejects(
      under.database.load(DATASET, v1.source, [v1.extracts[0]!, v1.extracts[0]!], OPTIONS),
      RangeError,
    );
    for (const limits of [{ concurrency: 0, batchRows: 2 }, { concurrency: 1, batchRows: 1.5 }]) {
      await assert.rejects(
        under.database.load(DATASET, v1.source, v1.extracts, limits),
        RangeError,
      );
    }
    assert.deepEqual(await under.schemas(), []);
  });

  await step(
    "packagedTables finds a run's tables by exact project and start time, never by prefix",
    async (under) => {
      const loads: [DestinationDataset, string[]][] = [
        [{ project: "a", startTime: "20250101_000000", schemaName: "s" }, ["t2", "t1"]],
        // Its schema starts with run a/20250101_000000's prefix.
        [{ project: "a_20250101_000000_x", startTime: "20250101_000000", schemaName: "s" }, ["t3"]],
        [{ project: "a", startTime: "20250202_000000", schemaName: "s" }, ["t4"]],
        [{ project: "a", startTime: "20250101_000000", schemaName: "R" }, ["t5"]],
      ];
      for (const [dataset, names] of loads) {
        const { source, extracts } = aSource(
          names.map((n) => ({ table: aTable(n), rows: [["1"]] })),
        );
        await under.database.load(dataset, source, extracts, OPTIONS);
      }
      assert.deepEqual(
        await under.database.packagedTables({ project: "a", startTime: "20250101_000000" }),
        [...loaded("a_20250101_000000_r", "t5"), ...loaded("a_20250101_000000_s", "t1", "t2")],
      );
      assert.deepEqual(
        await under.database.packagedTables({ project: "A", startTime: "20250101_000000" }),
        [],
      );
      assert.deepEqual(
        await under.database.packagedTables({ project: "a", startTime: "20250303_000000" }),
        [],
      );
    },
  );

  await step(
    "grantReadAccess makes exactly those tables readable, again changes nothing, and a reload hides them",
    async (under) => {
      const v1 = aSource(V1);
      await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
      assert.deepEqual(await under.readableTables(), []);
      await under.database.grantReadAccess([]);
      assert.deepEqual(await under.readableTables(), []);

      const small = loaded(DEST, "small");
      await under.database.grantReadAccess(small);
      await under.database.grantReadAccess(small);
      assert.deepEqual(await under.readableTables(), small);

      await assert.rejects(
        under.database.grantReadAccess([...loaded(DEST, "big"), { schema: DEST, table: "nope" }]),
        (e: unknown) =>
          e instanceof DestinationTablesNotPackagedError &&
          e.code === "destination_tables_not_packaged" &&
          e.message === `Cannot grant read access to "${DEST}.nope": not packaged`,
      );
      assert.deepEqual(await under.readableTables(), small, "nothing granted on a refusal");

      await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
      assert.deepEqual(await under.readableTables(), []);
    },
  );

  await step("an aborted signal stops load before anything changes", async (under) => {
    const v1 = aSource(V1);
    await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
    const before = await state(under);
    const reason = new Error("stopped by the test");
    const v2 = recording(
      aSource([{ table: aTable("small", "label"), rows: labels(9, "v2-") }]).source,
    );
    await assert.rejects(
      under.database.load(DATASET, v2, v1.extracts, {
        ...OPTIONS,
        signal: AbortSignal.abort(reason),
      }),
      (e: unknown) => e === reason,
    );
    assert.deepEqual(v2.opened, []);
    assert.deepEqual(await state(under), before);
  });

  for (const csv of [false, true]) {
    await step(
      `an abort while a table is loading (${
        csv ? "CSV" : "rows"
      } path) stops it at once, changing nothing`,
      async (under) => {
        const v1 = aSource(V1);
        await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
        await under.database.grantReadAccess(loaded(DEST, "small"));
        const before = await state(under);

        const stuck = stuckReader(csv);
        const controller = new AbortController();
        const reason = new Error("cancelled by the test");
        try {
          const loading = under.database.load(DATASET, stuck.reader, v1.extracts, {
            ...OPTIONS,
            signal: controller.signal,
          });
          loading.catch(() => {});
          await withinMs(stuck.waiting, 20_000, "the first batch");
          controller.abort(reason);
          // The source never yields again: only cancelling the load in flight ends it.
          await assert.rejects(
            withinMs(loading, 20_000, "the aborted load()"),
            (e: unknown) => e === reason,
          );
        } finally {
          stuck.release();
        }
        assert.deepEqual(await state(under), before);
        assert.deepEqual(await under.database.recover(), []);
      },
    );
  }

  await step(
    "an abort stops load between tables too: with concurrency 2, no later table is read",
    async (under) => {
      const tables = ["t1", "t2", "t3", "t4"].map((n) => ({
        table: aTable(n, "v"),
        rows: labels(3, n),
      }));
      const { source, extracts } = aSource(tables);
      const reader = recording(source);
      const controller = new AbortController();
      const reason = new Error("cancelled after the first table");
      await assert.rejects(
        under.database.load(DATASET, reader, extracts, {
          ...OPTIONS,
          signal: controller.signal,
          onProgress: (p) => {
            if (p.done !== undefined) controller.abort(reason);
          },
        }),
        (e: unknown) => e === reason,
      );
      assert.ok(!reader.opened.includes("t3") && !reader.opened.includes("t4"), `${reader.opened}`);
      assert.deepEqual(await under.schemas(), []);
      assert.deepEqual(
        await under.database.packagedTables({ project: "proj_a", startTime: START }),
        [],
      );
    },
  );

  await step(
    "load reports rows and bytes per table, then exactly one done (no SHA-512) per table",
    async (under) => {
      const empty = { table: aTable("empty", "v"), rows: [] };
      const v1 = aSource([...V1, empty]);
      const reports: ProgressReport[] = [];
      await under.database.load(DATASET, v1.source, v1.extracts, {
        ...OPTIONS,
        onProgress: (p) => reports.push(p),
      });
      for (const { table, rows } of [...V1, empty]) {
        const mine = tableReports(reports, table.name);
        const last = mine.at(-1)!;
        assert.equal(last.rows, rows.length, table.name);
        assert.equal(last.bytes > 0, rows.length > 0, `${table.name}: ${last.bytes} bytes`);
        if (rows.length > 0) assert.ok(mine.length > 1, `${table.name}: reports while loading`);
      }
      assert.deepEqual(new Set(reports.map((r) => r.table)), new Set(["small", "big", "empty"]));
    },
  );

  await step(
    "load on the CSV fast path reports the CSV bytes, rows unknown, then one done per table",
    async (under) => {
      const csv = csvReader(new Map(V1.map((t) => [t.table.name, t.rows])));
      const { extracts } = aSource(V1);
      const reports: ProgressReport[] = [];
      await under.database.load(DATASET, csv, extracts, {
        ...OPTIONS,
        onProgress: (p) => reports.push(p),
      });
      for (const extract of extracts) {
        const mine = tableReports(reports, extract.table.name);
        assert.ok(mine.every((r) => r.rows === null), extract.table.name);
        assert.equal(mine.at(-1)!.bytes, csv.bytes(extract), extract.table.name);
      }
    },
  );

  await step(
    "countRows counts each table exactly; dropRun drops the run's schemas and registry rows, once",
    async (under) => {
      const run = { project: "proj_a", startTime: START };
      const v1 = aSource(V1);
      await under.database.load(DATASET, v1.source, v1.extracts, OPTIONS);
      const other = aSource([{ table: aTable("kept", "v"), rows: labels(3, "k-") }]);
      const otherRun = { ...DATASET, startTime: "20250612_093000" };
      await under.database.load(otherRun, other.source, other.extracts, OPTIONS);
      await under.database.grantReadAccess(await under.database.packagedTables(run));
      const tables = await under.database.packagedTables(run);

      assert.deepEqual(await under.database.countRows(tables), [
        { table: { schema: DEST, table: "big" }, rows: 25 },
        { table: { schema: DEST, table: "small" }, rows: 4 },
      ]);

      assert.deepEqual(await under.database.dropRun(run), loaded(DEST, "big", "small"));
      assert.deepEqual(await under.database.packagedTables(run), []);
      assert.equal(await under.database.stagingDigest(run), null);
      assert.equal(await under.rows({ schema: DEST, table: "small" }), undefined);
      assert.deepEqual(await under.readableTables(), []);
      const otherSchema = "proj_a_20250612_093000_oncology";
      assert.deepEqual(await under.schemas(), [otherSchema], "the other run stays");
      assert.equal((await under.rows({ schema: otherSchema, table: "kept" }))?.length, 3);

      assert.deepEqual(await under.database.dropRun(run), [], "a second drop changes nothing");
      await assert.rejects(under.database.countRows(tables), DestinationUnavailableError);
    },
  );

  await step(
    "close is safe twice; afterwards every call fails as unavailable",
    async ({ database }) => {
      await database.checkReady();
      await database.close();
      await database.close();
      const v1 = aSource(V1);
      for (
        const call of [
          () => database.checkReady(),
          () => database.load(DATASET, v1.source, v1.extracts, OPTIONS),
          () => database.packagedTables({ project: "proj_a", startTime: START }),
          () => database.grantReadAccess(loaded(DEST, "small")),
          () => database.recover(),
          () => database.dropRun({ project: "proj_a", startTime: START }),
        ]
      ) {
        await assert.rejects(call(), DestinationUnavailableError);
      }
    },
  );
}
