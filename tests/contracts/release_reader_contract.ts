/**
 * The contract every ReleaseReader adapter passes, the in-memory fake included: nothing readable before
 * publish or after revocation, the published tables with their columns and key, paging that gives every
 * row exactly once in key (or file) order with exact canonical values, limits and the size cap, unknown
 * tables, and positions that do not fit the table.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { CatalogColumn, CatalogTable } from "../../domain/catalog.ts";
import type { CanonicalRow, LogicalType } from "../../domain/logical_type.ts";
import { InvalidCursorError, type ReadPosition } from "../../domain/release_read.ts";
import type { RunRef } from "../../domain/staging_layout.ts";
import {
  type ReadPage,
  ReleaseNotReadableError,
  type ReleaseReader,
  ReleaseTableNotFoundError,
} from "../../ports/release_reader.ts";

/** The dataset (schema name) every fixture table is published in. */
export const DATASET = "demo";

/** A table to publish and its rows, as canonical text. */
export interface FixtureTable {
  readonly table: CatalogTable;
  readonly rows: readonly CanonicalRow[];
}

/** A reader under test, with the means to publish and revoke through the destination's real path. */
export interface ReleaseReaderUnderTest {
  readonly reader: ReleaseReader;
  /** The run the harness publishes. */
  readonly run: RunRef;
  /** Publishes the tables as dataset {@link DATASET} of {@link run}; again: a republish. */
  publish(tables: readonly FixtureTable[]): Promise<void>;
  /** Revokes the run's release. */
  revoke(): Promise<void>;
  /** Whether tables with a primary key page by it (`key` lists it); false: file order. */
  readonly pagesByKey: boolean;
  /** Whether `listTables` gives the columns' descriptions. */
  readonly describesColumns: boolean;
  cleanup(): Promise<void>;
}

function column(
  name: string,
  logicalType: LogicalType,
  dataType: string,
  description: string | null = null,
  nullable = true,
): CatalogColumn {
  return { name, dataType, logicalType, nullable, description };
}

/** A table with an integer primary key and values that test the canonical text. */
export const PEOPLE: FixtureTable = {
  table: {
    name: "people",
    kind: "table",
    description: "People seen",
    primaryKey: ["id"],
    columns: [
      column("id", { kind: "integer" }, "integer", "Row id", false),
      column("name", { kind: "text" }, "text", "The person's name"),
      column("amount", { kind: "decimal", precision: 12, scale: 4 }, "numeric(12,4)"),
      column("seen_at", { kind: "timestamp" }, "timestamp without time zone"),
      column("at", { kind: "timestamptz" }, "timestamp with time zone"),
    ],
  },
  // Ids out of text order (10 < 2 as text), inserted out of key order.
  rows: [
    ["3", 'a "quoted", value', "-0.0001", "1999-12-31 23:59:59.123456", "2020-01-01 00:00:01.5+00"],
    ["1", null, "12.3400", "2020-01-01 00:00:00", "1970-01-01 00:00:00+00"],
    ["2", "", "0.0000", null, null],
    ["10", "line\nbreak, and \r return", "99999999.9999", "2000-02-29 12:00:00", null],
    ["4", "é ü 中 😀", "-12345678.0001", "1850-02-28 00:00:00.000001", "2020-06-30 12:34:56+00"],
    ["5", "=1+2", "1.0000", "2020-01-01 00:00:00", "2020-01-01 00:00:00+00"],
    ["6", ",", null, null, null],
    ["7", '"', "7.0000", null, null],
    ["8", "eight", "8.0000", null, null],
    ["9", "nine", "9.0000", null, null],
    ["11", "eleven", "11.0000", null, null],
    ["12", "twelve", "12.0000", null, null],
    ["13", 'back\\slash \\n \\\\ "\\" tab\t, \u0001 \u007f', "13.0000", null, null],
    // What PostgreSQL's COPY text format writes with a backslash, and a value that looks like its NULL.
    ["14", "\b\f\v \\N", "14.0000", null, null],
    ["15", "\\N", "15.0000", null, null],
  ],
};

/** {@link PEOPLE}'s rows in key order. */
export const PEOPLE_IN_KEY_ORDER: readonly CanonicalRow[] = [...PEOPLE.rows].sort((a, b) =>
  Number(a[0]) - Number(b[0])
);

/** A table without a primary key, with two identical rows, read in insertion order. */
export const EVENTS: FixtureTable = {
  table: {
    name: "events",
    kind: "table",
    description: null,
    primaryKey: [],
    columns: [
      column("n", { kind: "integer" }, "integer"),
      column("what", { kind: "text" }, "text"),
    ],
  },
  rows: [["1", "start"], ["2", "same"], ["2", "same"], [null, null], ["3", "stop"]],
};

/** A table with a key and no rows. */
export const EMPTY: FixtureTable = {
  table: { ...PEOPLE.table, name: "nobody" },
  rows: [],
};

/** Every page of a table from the first, `limit` rows at a time. */
export async function readAllPages(
  reader: ReleaseReader,
  run: RunRef,
  table: string,
  limit: number,
  options: { maxChars?: number; between?: (page: number) => Promise<void> } = {},
): Promise<ReadPage[]> {
  const pages: ReadPage[] = [];
  let after: ReadPosition | null = null;
  for (;;) {
    const page: ReadPage = await reader.readPage(run, {
      dataset: DATASET,
      table,
      limit,
      after,
      ...(options.maxChars === undefined ? {} : { maxChars: options.maxChars }),
    });
    pages.push(page);
    if (page.next === null) return pages;
    assert.ok(pages.length < 10_000, "paging does not end");
    await options.between?.(pages.length);
    after = page.next;
  }
}

/** Runs the contract against the readers `make` returns (a fresh one, with its own run, per step). */
export async function releaseReaderContract(
  t: Deno.TestContext,
  make: () => Promise<ReleaseReaderUnderTest>,
): Promise<void> {
  async function step(name: string, fn: (under: ReleaseReaderUnderTest) => Promise<void>) {
    await t.step(name, async () => {
      const under = await make();
      try {
        await fn(under);
      } finally {
        await under.cleanup();
      }
    });
  }

  await step("nothing is readable before publish", async ({ reader, run }) => {
    await assert.rejects(reader.listTables(run), ReleaseNotReadableError);
    await assert.rejects(
      reader.readPage(run, { dataset: DATASET, table: "people", limit: 10, after: null }),
      ReleaseNotReadableError,
    );
  });

  await step("listTables() lists the published tables, columns and key", async (under) => {
    await under.publish([PEOPLE, EVENTS, EMPTY]);
    const tables = await under.reader.listTables(under.run);
    assert.deepEqual(tables.map((t) => [t.dataset, t.name]), [
      [DATASET, "events"],
      [DATASET, "nobody"],
      [DATASET, "people"],
    ]);
    const people = tables.find((t) => t.name === "people")!;
    assert.deepEqual(people.columns.map((c) => c.name), ["id", "name", "amount", "seen_at", "at"]);
    for (const c of people.columns) assert.ok(c.type.length > 0, `column ${c.name} has a type`);
    assert.deepEqual(people.key, under.pagesByKey ? ["id"] : []);
    assert.deepEqual(tables.find((t) => t.name === "events")!.key, []);
    if (under.describesColumns) {
      assert.equal(people.columns[1]!.description, "The person's name");
      assert.equal(people.columns[2]!.description, null);
    }
  });

  await step("paging gives every row once, in order, with exact values", async (under) => {
    await under.publish([PEOPLE, EVENTS, EMPTY]);
    const expected = under.pagesByKey ? PEOPLE_IN_KEY_ORDER : PEOPLE.rows;
    for (const limit of [1, 5, 12, 10_000]) {
      const pages = await readAllPages(under.reader, under.run, "people", limit);
      assert.deepEqual(pages.flatMap((p) => p.rows), expected, `limit ${limit}`);
      for (const page of pages) assert.ok(page.rows.length <= limit);
      assert.ok(pages.length <= Math.ceil(expected.length / limit) + 1);
      assert.deepEqual(pages[0]!.columns.map((c) => c.name), [
        "id",
        "name",
        "amount",
        "seen_at",
        "at",
      ]);
    }
    const events = await readAllPages(under.reader, under.run, "events", 2);
    assert.deepEqual(events.flatMap((p) => p.rows), EVENTS.rows);
    const empty = await readAllPages(under.reader, under.run, "nobody", 10);
    assert.deepEqual(empty, [{ columns: empty[0]!.columns, rows: [], next: null }]);
  });

  await step("readPageJson(), where offered, gives the pages readPage() gives", async (under) => {
    const reader = under.reader;
    if (reader.readPageJson === undefined) return;
    await under.publish([PEOPLE, EVENTS, EMPTY]);
    for (const table of ["people", "events", "nobody"]) {
      for (const limit of [1, 5, 10_000]) {
        for (const orientation of ["tabular", "records"] as const) {
          let after: ReadPosition | null = null;
          for (;;) {
            const request = { dataset: DATASET, table, limit, after };
            const page = await reader.readPage(under.run, request);
            const json = await reader.readPageJson(under.run, request, orientation);
            if (json === undefined) break;
            const rows = JSON.parse(`[${new TextDecoder().decode(json.json)}]`);
            assert.equal(json.rowCount, page.rows.length);
            assert.deepEqual(
              rows,
              orientation === "tabular"
                ? page.rows
                : page.rows.map((r) =>
                  Object.fromEntries(page.columns.map((c, i) => [c.name, r[i]]))
                ),
            );
            assert.deepEqual(json.next, page.next);
            assert.deepEqual(json.columns, page.columns);
            if (page.next === null) break;
            after = page.next;
          }
        }
      }
    }
    const capped = await reader.readPageJson(under.run, {
      dataset: DATASET,
      table: "people",
      limit: 100,
      after: null,
      maxChars: 1,
    }, "tabular");
    if (capped !== undefined) {
      assert.equal(capped.rowCount, 1);
      assert.notEqual(capped.next, null);
    }
  });

  await step("a page stops at the size cap, one row at least", async (under) => {
    await under.publish([PEOPLE]);
    const pages = await readAllPages(under.reader, under.run, "people", 100, { maxChars: 1 });
    assert.ok(pages.filter((p) => p.rows.length > 0).every((p) => p.rows.length === 1));
    assert.deepEqual(
      pages.flatMap((p) => p.rows),
      under.pagesByKey ? PEOPLE_IN_KEY_ORDER : PEOPLE.rows,
    );
  });

  await step("an unknown table or dataset is not found", async (under) => {
    await under.publish([PEOPLE]);
    for (const [dataset, table] of [[DATASET, "nope"], ["other", "people"]] as const) {
      await assert.rejects(
        under.reader.readPage(under.run, { dataset, table, limit: 10, after: null }),
        ReleaseTableNotFoundError,
      );
    }
  });

  await step("a position that does not fit the table is refused", async (under) => {
    await under.publish([PEOPLE, EVENTS]);
    const foreign: ReadPosition[] = [
      { kind: "key", values: ["1", "2"] },
      { kind: "row", version: "x", after: "not a row" },
      ...(under.pagesByKey
        ? [{ kind: "file", sha512: "ab".repeat(64), offset: 3, row: 1 } as const]
        : []),
    ];
    for (const after of foreign) {
      await assert.rejects(
        under.reader.readPage(under.run, { dataset: DATASET, table: "people", limit: 10, after }),
        InvalidCursorError,
        JSON.stringify(after),
      );
    }
  });

  await step("a revoked release is not readable", async (under) => {
    await under.publish([PEOPLE]);
    const first = await under.reader.readPage(under.run, {
      dataset: DATASET,
      table: "people",
      limit: 5,
      after: null,
    });
    await under.revoke();
    await assert.rejects(under.reader.listTables(under.run), ReleaseNotReadableError);
    await assert.rejects(
      under.reader.readPage(under.run, {
        dataset: DATASET,
        table: "people",
        limit: 5,
        after: first.next,
      }),
      ReleaseNotReadableError,
    );
  });
}
