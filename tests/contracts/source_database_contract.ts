/**
 * The contract every {@link SourceDatabase} adapter passes, the in-memory fake included.
 *
 * Each adapter's test builds the standard fixture below in its own dialect, in a fresh schema, and hands
 * the suite a {@link SourceDatabaseSubject}. The fixture (types given in PostgreSQL terms; use the
 * dialect's nearest equivalent):
 *
 * - schema comment "Synthetic source for contract tests", where the source supports schema comments;
 * - `patients`, comment "One row per patient":
 *   `id integer` primary key; `nhs_number varchar(10) not null`, comment "NHS number";
 *   `birth_date date` nullable; `weight numeric(6,2)` nullable;
 * - `visits`, no comment, primary key `(patient_id, visit_no)` — declared in the opposite order to the
 *   columns, so key order and column order differ:
 *   `visit_no integer not null`; `patient_id integer not null`; `visited_on date not null`;
 *   `notes text` nullable, comment "Free text";
 * - `audit_log`, no primary key and no comments: `event varchar(100) not null`; `logged_at timestamp`;
 * - the view `patient_names` as `select id, nhs_number from patients`;
 * - the rows of {@link FIXTURE_ROWS} (canonical text; each dialect inserts them as literals).
 *
 * Where the adapter has `estimateRows`, the suite checks it after {@link SourceDatabaseFixture.analyze}:
 * every fixture table has a sane estimate, views and unknown names are left out.
 *
 * Optionally, in schemas of their own, the W and EDGE tables of `tests/support/w_table.ts`
 * ({@link SourceDatabaseFixture.wide}, {@link SourceDatabaseFixture.edge}): the suite then checks every
 * value of them to the exact canonical string, and `readCsv` (where present) against `readRows`. The EDGE
 * table has the columns `edgeColumnsFor(engine)` names: the shared ones, then the engine's own.
 *
 * Use it from an adapter test:
 * ```ts
 * Deno.test({ name: "PostgresSourceDatabase passes the SourceDatabase contract", ignore: ignorePostgres,
 *   fn: (t) => sourceDatabaseContract(t, { name: "PostgresSourceDatabase", setUp: createFixture }) });
 * ```
 *
 * @module
 */
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import type { CatalogTable, SchemaCatalog, TableExtract } from "../../domain/catalog.ts";
import { encodeCsvRow, encodeCsvRows } from "../../domain/csv.ts";
import type { CanonicalRow, LogicalType } from "../../domain/logical_type.ts";
import {
  estimatedRowBytes,
  type ReadCsvOptions,
  type ReadRowsOptions,
  SchemaNotFoundError,
  type SourceDatabase,
  SourceUnavailableError,
  ValueTooLargeError,
} from "../../ports/source_database.ts";
import {
  edgeCasesFor,
  edgeColumnsFor,
  edgeExpectedRows,
  type Engine,
  logicalTypeIn,
  W_COLUMNS,
  wExpectedRows,
} from "../support/w_table.ts";

/** The standard fixture, built by one adapter's test in a schema of its own. */
export interface SourceDatabaseFixture {
  /** The schema (for MySQL, the database) holding the standard fixture. */
  readonly schema: string;
  /** Opens a new connection that can see the fixture; the suite closes it. */
  connect(): Promise<SourceDatabase>;
  /** Drops everything the fixture created; called once, even when a step fails. */
  cleanup(): Promise<void>;
  /**
   * Brings the source's statistics up to date (PostgreSQL `ANALYZE`, MySQL `ANALYZE TABLE`), so that
   * `estimateRows` knows the fixture's tables; not needed where the statistics are always current.
   */
  analyze?(): Promise<void>;
  /** Where the W table is, when the adapter's test built one (rows 1..`rows` of `wExpectedRow`). */
  readonly wide?: { readonly schema: string; readonly table: string; readonly rows: number };
  /** Where the EDGE table is, and whose cases it holds (`any`: every case, for fakes). */
  readonly edge?: {
    readonly schema: string;
    readonly table: string;
    readonly engine: Engine | "any";
  };
}

/** What an adapter hands the suite. */
export interface SourceDatabaseSubject {
  /** The adapter's class name, used as the prefix of every step name. */
  readonly name: string;
  /** Builds the standard fixture. */
  setUp(): Promise<SourceDatabaseFixture>;
  /** Whether the source keeps schema comments (PostgreSQL does; MySQL does not). Defaults to true. */
  readonly schemaComments?: boolean;
  /** Which dialect's logical types the W and EDGE tables have. Defaults to "postgres". */
  readonly engine?: Engine;
}

/** The fixture's tables and views, in the order `describeSchema` must list them. */
export const FIXTURE_TABLES = ["audit_log", "patient_names", "patients", "visits"] as const;

/** The fixture's schema comment. */
export const FIXTURE_SCHEMA_COMMENT = "Synthetic source for contract tests";

/**
 * The fixture's rows as canonical text, in catalogue column order. They cover NULL against the
 * empty string, CSV-hostile text, non-BMP characters, a negative decimal and a leap day.
 */
export const FIXTURE_ROWS: Readonly<
  Record<(typeof FIXTURE_TABLES)[number], readonly CanonicalRow[]>
> = {
  audit_log: [["created", "2020-01-01 12:34:56"], ['note, with "quotes"', null]],
  patient_names: [["1", "9434765919"], ["2", ""], ["3", 'x,"y"']],
  patients: [
    ["1", "9434765919", "1980-02-29", "72.50"],
    ["2", "", null, null],
    ["3", 'x,"y"', "2000-12-31", "-0.05"],
  ],
  visits: [
    ["1", "1", "2020-01-01", "first"],
    ["1", "3", "2021-06-15", "é ✓ 😀\nline two"],
    ["2", "1", "2020-02-01", null],
  ],
};

/** The logical types the fixture's columns must map to, whatever the dialect. */
export const FIXTURE_LOGICAL_TYPES: Readonly<
  Record<(typeof FIXTURE_TABLES)[number], readonly LogicalType[]>
> = {
  audit_log: [{ kind: "text" }, { kind: "timestamp" }],
  patient_names: [{ kind: "integer" }, { kind: "text" }],
  patients: [
    { kind: "integer" },
    { kind: "text" },
    { kind: "date" },
    { kind: "decimal", precision: 6, scale: 2 },
  ],
  visits: [{ kind: "integer" }, { kind: "integer" }, { kind: "date" }, { kind: "text" }],
};

/**
 * Runs every contract step against one adapter: builds the fixture, runs the steps, then cleans up.
 *
 * @param t the test context the steps are registered on.
 * @param subject the adapter under test and how to build its fixture.
 */
export async function sourceDatabaseContract(
  t: Deno.TestContext,
  subject: SourceDatabaseSubject,
): Promise<void> {
  const fixture = await subject.setUp();
  try {
    const db = await fixture.connect();
    try {
      await runSteps(t, subject, fixture, db);
      await runReadSteps(t, subject, fixture, db);
      await runEstimateSteps(t, subject, fixture, db);
    } finally {
      await db.close();
    }
    await runLifecycleSteps(t, subject, fixture);
  } finally {
    await fixture.cleanup();
  }
}

async function runSteps(
  t: Deno.TestContext,
  subject: SourceDatabaseSubject,
  fixture: SourceDatabaseFixture,
  db: SourceDatabase,
): Promise<void> {
  const { name } = subject;
  const { schema } = fixture;
  let whole: SchemaCatalog | undefined;
  async function catalog(): Promise<SchemaCatalog> {
    whole ??= await db.describeSchema(schema);
    return whole;
  }
  async function table(tableName: string): Promise<CatalogTable> {
    const found = (await catalog()).tables.find((t) => t.name === tableName);
    assert.ok(found, `table "${tableName}" is missing`);
    return found;
  }

  await t.step(`${name} ping() succeeds on an open connection`, async () => {
    await db.ping();
  });

  await t.step(`${name} describeSchema() names the schema and its description`, async () => {
    const c = await catalog();
    assert.equal(c.name, schema);
    assert.equal(c.description, subject.schemaComments === false ? null : FIXTURE_SCHEMA_COMMENT);
  });

  await t.step(`${name} describeSchema() lists tables and views sorted by name`, async () => {
    assert.deepEqual((await catalog()).tables.map((t) => t.name), [...FIXTURE_TABLES]);
  });

  await t.step(`${name} describeSchema() lists views`, async () => {
    const kinds = Object.fromEntries((await catalog()).tables.map((t) => [t.name, t.kind]));
    assert.deepEqual(kinds, {
      audit_log: "table",
      patient_names: "view",
      patients: "table",
      visits: "table",
    });
    assert.deepEqual(
      (await table("patient_names")).columns.map((c) => c.name),
      ["id", "nhs_number"],
    );
  });

  await t.step(`${name} describeSchema() lists columns in ordinal order`, async () => {
    assert.deepEqual(
      (await table("patients")).columns.map((c) => c.name),
      ["id", "nhs_number", "birth_date", "weight"],
    );
    assert.deepEqual(
      (await table("visits")).columns.map((c) => c.name),
      ["visit_no", "patient_id", "visited_on", "notes"],
    );
    assert.deepEqual(
      (await table("audit_log")).columns.map((c) => c.name),
      ["event", "logged_at"],
    );
  });

  await t.step(`${name} describeSchema() reports nullability`, async () => {
    const nullable = (t: CatalogTable) =>
      Object.fromEntries(t.columns.map((c) => [c.name, c.nullable]));
    assert.deepEqual(nullable(await table("patients")), {
      id: false,
      nhs_number: false,
      birth_date: true,
      weight: true,
    });
    assert.deepEqual(nullable(await table("visits")), {
      visit_no: false,
      patient_id: false,
      visited_on: false,
      notes: true,
    });
    assert.deepEqual(nullable(await table("audit_log")), { event: false, logged_at: true });
  });

  await t.step(`${name} describeSchema() reports comments, null when absent`, async () => {
    const patients = await table("patients");
    assert.equal(patients.description, "One row per patient");
    assert.deepEqual(
      patients.columns.map((c) => c.description),
      [null, "NHS number", null, null],
    );
    const visits = await table("visits");
    assert.equal(visits.description, null);
    assert.deepEqual(visits.columns.map((c) => c.description), [null, null, null, "Free text"]);
    const audit = await table("audit_log");
    assert.equal(audit.description, null);
    assert.deepEqual(audit.columns.map((c) => c.description), [null, null]);
    assert.equal((await table("patient_names")).description, null);
  });

  await t.step(`${name} describeSchema() reports primary keys in key order`, async () => {
    assert.deepEqual((await table("patients")).primaryKey, ["id"]);
    assert.deepEqual((await table("visits")).primaryKey, ["patient_id", "visit_no"]);
    assert.deepEqual((await table("audit_log")).primaryKey, []);
    assert.deepEqual((await table("patient_names")).primaryKey, []);
  });

  await t.step(`${name} describeSchema() keeps length, precision and scale in types`, async () => {
    const types = Object.fromEntries(
      (await table("patients")).columns.map((c) => [c.name, c.dataType]),
    );
    assert.match(types.nhs_number ?? "", /char.*\b10\b/i);
    assert.match(types.weight ?? "", /(numeric|decimal).*\b6\s*,\s*2\b/i);
    assert.match(types.id ?? "", /int/i);
    assert.match(types.birth_date ?? "", /date/i);
    for (const t of (await catalog()).tables) {
      for (const c of t.columns) {
        assert.ok(c.dataType.trim() !== "", `${t.name}.${c.name} has an empty type`);
      }
    }
  });

  await t.step(`${name} describeSchema() restricts to the tables option`, async () => {
    const c = await db.describeSchema(schema, { tables: ["visits", "patient_names", "no_such"] });
    assert.equal(c.name, schema);
    assert.deepEqual(c.tables.map((t) => t.name), ["patient_names", "visits"]);
    assert.deepEqual(
      c.tables,
      (await catalog()).tables.filter((t) => t.name !== "audit_log" && t.name !== "patients"),
    );
  });

  await t.step(`${name} describeSchema() matches table names exactly`, async () => {
    const c = await db.describeSchema(schema, { tables: ["PATIENTS", "Visits", "patients "] });
    assert.deepEqual(c.tables, []);
  });

  await t.step(`${name} describeSchema() rejects an unknown schema`, async () => {
    const missing = `${schema}_missing`;
    const error = await db.describeSchema(missing).then(
      () => assert.fail("expected a SchemaNotFoundError"),
      (e: unknown) => e,
    );
    assert.ok(error instanceof SchemaNotFoundError, `got ${String(error)}`);
    assert.equal(error.schema, missing);
  });

  await t.step(`${name} describeSchema() matches the schema name exactly`, async () => {
    await assert.rejects(db.describeSchema(schema.toUpperCase()), SchemaNotFoundError);
  });

  await t.step(`${name} describeSchema() treats quotes in a schema name as data`, async () => {
    for (
      const odd of [`${schema}'`, `x' or '1'='1`, `${schema}"; drop table x; --`, "a`b", "a\\b"]
    ) {
      await assert.rejects(db.describeSchema(odd), SchemaNotFoundError, odd);
    }
  });
}

/** The fixture's tables (not its view), which `estimateRows` must know once analysed. */
const FIXTURE_BASE_TABLES = ["audit_log", "patients", "visits"] as const;

async function runEstimateSteps(
  t: Deno.TestContext,
  subject: SourceDatabaseSubject,
  fixture: SourceDatabaseFixture,
  db: SourceDatabase,
): Promise<void> {
  const { name } = subject;
  const { schema } = fixture;
  if (db.estimateRows === undefined) return;
  const estimateRows = db.estimateRows.bind(db);

  await t.step(`${name} estimateRows() gives every analysed table a sane estimate`, async () => {
    await fixture.analyze?.();
    const estimates = await estimateRows(schema, [...FIXTURE_BASE_TABLES]);
    assert.deepEqual([...estimates.keys()].sort(), [...FIXTURE_BASE_TABLES]);
    for (const table of FIXTURE_BASE_TABLES) {
      const estimate = estimates.get(table)!;
      const actual = FIXTURE_ROWS[table].length;
      assert.ok(
        Number.isSafeInteger(estimate) && estimate >= 0 && estimate <= 10 * actual + 10,
        `${table}: estimate ${estimate} for ${actual} rows`,
      );
    }
  });

  await t.step(`${name} estimateRows() leaves out views and names that are not there`, async () => {
    const estimates = await estimateRows(schema, [
      "patients",
      "patient_names",
      "no_such",
      "PATIENTS",
      "visits ",
      `x' or '1'='1`,
      'audit_log"; drop table patients; --',
    ]);
    assert.deepEqual([...estimates.keys()], ["patients"]);
  });

  await t.step(`${name} estimateRows() of no tables or an unknown schema is empty`, async () => {
    assert.equal((await estimateRows(schema, [])).size, 0);
    for (const odd of [`${schema}_missing`, schema.toUpperCase(), `${schema}'`]) {
      assert.equal((await estimateRows(odd, [...FIXTURE_BASE_TABLES])).size, 0, odd);
    }
  });
}

async function runLifecycleSteps(
  t: Deno.TestContext,
  subject: SourceDatabaseSubject,
  fixture: SourceDatabaseFixture,
): Promise<void> {
  const { name } = subject;

  await t.step(`${name} close() is safe to call twice`, async () => {
    const db = await fixture.connect();
    await db.ping();
    await db.close();
    await db.close();
    await assert.rejects(async () => await db.ping(), SourceUnavailableError);
    await assert.rejects(
      async () => await db.describeSchema(fixture.schema),
      SourceUnavailableError,
    );
    await assert.rejects(readAll(db, anExtract(fixture.schema)), SourceUnavailableError);
  });

  await t.step(`${name} reports failures as rejections, never as synchronous throws`, async () => {
    const db = await fixture.connect();
    await db.close();
    for (
      const [call, run] of [
        ["ping()", () => db.ping()],
        ["describeSchema()", () => db.describeSchema(fixture.schema)],
        ["readRows()", () => db.readRows(anExtract(fixture.schema))[Symbol.asyncIterator]().next()],
        ...(db.estimateRows === undefined ? [] : [
          ["estimateRows()", () => db.estimateRows!(fixture.schema, ["patients"])] as const,
        ]),
      ] as const
    ) {
      let promise: Promise<unknown>;
      try {
        promise = run();
      } catch (e) {
        assert.fail(`${call} threw synchronously instead of returning a rejected promise: ${e}`);
      }
      await assert.rejects(promise, SourceUnavailableError);
    }
  });

  await t.step(`${name} await using closes the connection`, async () => {
    let escaped: SourceDatabase | undefined;
    {
      await using db = await fixture.connect();
      escaped = db;
      await db.ping();
    }
    const closed = escaped;
    await assert.rejects(async () => await closed.ping(), SourceUnavailableError);
  });
}

async function runReadSteps(
  t: Deno.TestContext,
  subject: SourceDatabaseSubject,
  fixture: SourceDatabaseFixture,
  db: SourceDatabase,
): Promise<void> {
  const { name } = subject;
  const catalog = await db.describeSchema(fixture.schema);
  function extract(tableName: string, columns?: readonly string[]): TableExtract {
    const table = catalog.tables.find((t) => t.name === tableName);
    assert.ok(table, `table "${tableName}" is missing`);
    if (columns === undefined) return { schema: fixture.schema, table };
    const picked = columns.map((c) => {
      const found = table.columns.find((column) => column.name === c);
      assert.ok(found, `column "${tableName}.${c}" is missing`);
      return found;
    });
    return { schema: fixture.schema, table: { ...table, columns: picked, primaryKey: [] } };
  }

  await t.step(`${name} describeSchema() maps every column to its logical type`, () => {
    for (const table of FIXTURE_TABLES) {
      assert.deepEqual(
        extract(table).table.columns.map((c) => c.logicalType),
        FIXTURE_LOGICAL_TYPES[table],
        table,
      );
    }
  });

  await t.step(`${name} readRows() yields every row as canonical text`, async () => {
    for (const table of FIXTURE_TABLES) {
      assert.deepEqual(
        sortRows(await readAll(db, extract(table))),
        sortRows(FIXTURE_ROWS[table]),
        table,
      );
    }
  });

  await t.step(`${name} readRows() yields only the extract's columns, in its order`, async () => {
    assert.deepEqual(
      sortRows(await readAll(db, extract("patients", ["weight", "id"]))),
      sortRows(FIXTURE_ROWS.patients.map((r) => [r[3] ?? null, r[0] ?? null])),
    );
    assert.deepEqual(
      sortRows(await readAll(db, extract("visits", ["notes"]))),
      sortRows(FIXTURE_ROWS.visits.map((r) => [r[3] ?? null])),
    );
  });

  await t.step(`${name} readRows() never yields a batch larger than batchRows`, async () => {
    for (const batchRows of [1, 2, 3, 1_000]) {
      const batches = await readBatches(db, extract("visits"), batchRows);
      assert.ok(batches.every((b) => b.length >= 1 && b.length <= batchRows), `${batchRows}`);
      assert.equal(batches.length, Math.ceil(3 / batchRows));
      assert.deepEqual(sortRows(batches.flat()), sortRows(FIXTURE_ROWS.visits));
    }
  });

  await t.step(`${name} readRows() stops early and leaves the connection usable`, async () => {
    for await (const batch of db.readRows(extract("patients"), { batchRows: 1 })) {
      assert.equal(batch.length, 1);
      break;
    }
    await db.ping();
    assert.deepEqual(
      sortRows(await readAll(db, extract("patients"))),
      sortRows(FIXTURE_ROWS.patients),
    );
  });

  await t.step(`${name} readRows() rejects a table that does not exist`, async () => {
    const missing: TableExtract = {
      schema: fixture.schema,
      table: { ...extract("patients").table, name: "no_such_table" },
    };
    await assert.rejects(readAll(db, missing), SourceUnavailableError);
    await db.ping();
  });

  // visits.notes holds "é ✓ 😀\nline two": 15 UTF-16 units, 20 UTF-8 bytes, the longest value of visits.
  const NOTES_UTF8_BYTES = 20;

  await t.step(`${name} readRows() refuses a value over maxValueBytes, naming it`, async () => {
    const error = await readAll(db, extract("visits"), 1, { maxValueBytes: NOTES_UTF8_BYTES - 1 })
      .then(() => assert.fail("expected a ValueTooLargeError"), (e: unknown) => e);
    assert.ok(error instanceof ValueTooLargeError, String(error));
    assert.deepEqual(error.position, { schema: fixture.schema, table: "visits", column: "notes" });
    assert.equal(error.limitBytes, NOTES_UTF8_BYTES - 1);
    assert.equal(error.code, "value_too_large");
    assert.match(error.message, /"visits".*"notes".*\b19 bytes\b/);
    assert.ok(!error.message.includes("line two"), "the message holds no value");
    await db.ping();
    // At the limit exactly, measured in UTF-8 bytes, every value is read.
    assert.deepEqual(
      sortRows(await readAll(db, extract("visits"), 1, { maxValueBytes: NOTES_UTF8_BYTES })),
      sortRows(FIXTURE_ROWS.visits),
    );
    // Columns whose values fit are read under the same limit.
    assert.deepEqual(
      sortRows(
        await readAll(db, extract("visits", ["visit_no", "visited_on"]), 2, {
          maxValueBytes: NOTES_UTF8_BYTES - 1,
        }),
      ),
      sortRows(FIXTURE_ROWS.visits.map((r) => [r[0] ?? null, r[2] ?? null])),
    );
  });

  await t.step(`${name} readRows() hands a batch over once it reaches batchBytes`, async () => {
    // A budget of one byte: every row fills a batch, whatever batchRows says.
    const single = await readBatches(db, extract("visits"), 1_000, { batchBytes: 1 });
    assert.deepEqual(single.map((b) => b.length), [1, 1, 1]);
    assert.deepEqual(sortRows(single.flat()), sortRows(FIXTURE_ROWS.visits));
    // A budget that any two rows reach and no single row does: batches of two, whatever the order.
    const [smallest = 0, next = 0] = FIXTURE_ROWS.visits.map(estimatedRowBytes).sort((a, b) =>
      a - b
    );
    const budget = smallest + next;
    const batches = await readBatches(db, extract("visits"), 1_000, { batchBytes: budget });
    assertBatchesWithin(batches, 1_000, budget);
    assert.deepEqual(batches.map((b) => b.length), [2, 1]);
    assert.deepEqual(sortRows(batches.flat()), sortRows(FIXTURE_ROWS.visits));
  });

  if (db.readCsv !== undefined) {
    await t.step(`${name} readCsv() is the header and readRows() encoded`, async () => {
      for (const table of FIXTURE_TABLES) {
        await assertCsvMatches(db, extract(table));
      }
      await assertCsvMatches(db, extract("patients", ["weight", "id"]));
    });
  }

  if (db.readCsv !== undefined) {
    await t.step(`${name} readCsv() refuses a value over maxValueBytes, naming it`, async () => {
      const error = await readCsvBytes(db, extract("visits"), {
        maxValueBytes: NOTES_UTF8_BYTES - 1,
      })
        .then(() => assert.fail("expected a ValueTooLargeError"), (e: unknown) => e);
      assert.ok(error instanceof ValueTooLargeError, String(error));
      assert.deepEqual(error.position, {
        schema: fixture.schema,
        table: "visits",
        column: "notes",
      });
      await db.ping();
      assert.deepEqual(
        await readCsvBytes(db, extract("visits"), { maxValueBytes: NOTES_UTF8_BYTES }),
        await encodedCsv(db, extract("visits")),
      );
    });
  }

  const wide = fixture.wide;
  if (wide !== undefined) {
    const engine = subject.engine ?? "postgres";
    const wideCatalog = await db.describeSchema(wide.schema, { tables: [wide.table] });
    const wideTable = wideCatalog.tables[0];
    assert.ok(wideTable, "the W table is missing");
    const wideExtract: TableExtract = { schema: wide.schema, table: wideTable };

    await t.step(`${name} reads several tables at once, each whole, as writers do`, async () => {
      const expectedRows = sortRows(await readAll(db, wideExtract));
      const expectedCsv = db.readCsv === undefined
        ? undefined
        : await readCsvBytes(db, wideExtract);
      const patients = extract("patients");
      const reads: Promise<void>[] = [];
      // Each kind of read, first with its stream under way (one chunk taken), then with others started.
      const started = [
        drainAfterFirst(
          db.readRows(wideExtract, { batchRows: 100 }),
          (batches) => assert.deepEqual(sortRows(batches.flat()), expectedRows),
        ),
        ...(expectedCsv === undefined ? [] : [
          drainAfterFirst(
            db.readCsv!(wideExtract),
            (chunks) => assert.deepEqual(concatBytes(chunks), expectedCsv),
          ),
        ]),
      ];
      for (const read of started) {
        await read.firstTaken;
        reads.push(
          readAll(db, patients, 1).then((rows) =>
            assert.deepEqual(sortRows(rows), sortRows(FIXTURE_ROWS.patients))
          ),
          readAll(db, wideExtract, 500).then((rows) =>
            assert.deepEqual(sortRows(rows), expectedRows)
          ),
        );
        if (expectedCsv !== undefined) {
          reads.push(
            readCsvBytes(db, wideExtract).then((bytes) => assert.deepEqual(bytes, expectedCsv)),
          );
        }
        reads.push(read.done);
      }
      await withinMs(Promise.all(reads), 60_000, "concurrent reads");
      await db.ping();
    });

    await t.step(`${name} readRows() cuts the W table at batchBytes`, async () => {
      const budget = 8 * 1024;
      const batches = await readBatches(db, wideExtract, 1_000, { batchBytes: budget });
      assertBatchesWithin(batches, 1_000, budget);
      assert.equal(batches.flat().length, wide.rows);
      assert.ok(batches.length > wide.rows * 200 / budget, `${batches.length} batches`);
    });

    await t.step(`${name} describeSchema() maps the W table's types`, () => {
      assert.deepEqual(
        wideTable.columns.map((c) => [c.name, c.logicalType]),
        W_COLUMNS.map((c) => [c.name, logicalTypeIn(c, engine)]),
      );
    });

    await t.step(`${name} readRows() gives every W value as its exact canonical text`, async () => {
      const batches = await readBatches(db, wideExtract, 333);
      assert.ok(batches.every((b) => b.length <= 333));
      const rows = batches.flat().sort((a, b) => Number(a[0]) - Number(b[0]));
      assert.equal(rows.length, wide.rows);
      const expected = wExpectedRows(wide.rows);
      for (let i = 0; i < rows.length; i++) {
        assert.deepEqual(rows[i], expected[i], `W row ${i + 1}`);
      }
    });

    if (db.readCsv !== undefined) {
      await t.step(`${name} readCsv() is the W table's readRows() encoded`, async () => {
        await assertCsvMatches(db, wideExtract);
      });
    }
  }

  const edge = fixture.edge;
  if (edge !== undefined) {
    const edgeColumns = edgeColumnsFor(edge.engine);
    const edgeCatalog = await db.describeSchema(edge.schema, { tables: [edge.table] });
    const edgeTable = edgeCatalog.tables[0];
    assert.ok(edgeTable, "the EDGE table is missing");
    const edgeExtract: TableExtract = { schema: edge.schema, table: edgeTable };

    await t.step(`${name} describeSchema() maps the EDGE table's types`, () => {
      assert.deepEqual(
        edgeTable.columns.map((c) => [c.name, c.logicalType]),
        edgeColumns.map((c) => [c.name, c.logicalType]),
      );
    });

    await t.step(
      `${name} readRows() gives every edge value as its exact canonical text`,
      async () => {
        const rows = new Map((await readAll(db, edgeExtract)).map((r) => [r[0], r]));
        const cases = edgeCasesFor(edge.engine);
        assert.equal(rows.size, cases.length);
        for (const c of cases) {
          const row = rows.get(String(c.id));
          assert.ok(row, `edge row ${c.id} (${c.column}: ${c.label}) is missing`);
          edgeColumns.forEach((column, i) => {
            if (column.name === "id") return;
            const expected = column.name === c.column ? c.expected : null;
            assert.strictEqual(
              row[i],
              expected,
              `${c.column}: ${c.label} (row ${c.id}, ${column.name})`,
            );
          });
        }
        assert.deepEqual(
          [...rows.values()].sort((a, b) => Number(a[0]) - Number(b[0])),
          edgeExpectedRows(edge.engine),
        );
      },
    );

    if (db.readCsv !== undefined) {
      await t.step(`${name} readCsv() is the EDGE table's readRows() encoded`, async () => {
        await assertCsvMatches(db, edgeExtract);
        // A single column, where a lone \. must be quoted too.
        const t = edgeTable.columns.find((c) => c.name === "t");
        assert.ok(t);
        await assertCsvMatches(db, { ...edgeExtract, table: { ...edgeTable, columns: [t] } });
      });
    }
  }
}

/** Some extract of the fixture, for calls expected to fail before they read anything. */
function anExtract(schema: string): TableExtract {
  return {
    schema,
    table: {
      name: "patients",
      kind: "table",
      description: null,
      columns: [{
        name: "id",
        dataType: "integer",
        logicalType: { kind: "integer" },
        nullable: false,
        description: null,
      }],
      primaryKey: ["id"],
    },
  };
}

/** Reads a whole extract, batch by batch. */
export async function readBatches(
  db: SourceDatabase,
  extract: TableExtract,
  batchRows?: number,
  limits: Omit<ReadRowsOptions, "batchRows"> = {},
): Promise<CanonicalRow[][]> {
  const batches: CanonicalRow[][] = [];
  const options = batchRows === undefined ? limits : { ...limits, batchRows };
  for await (const batch of db.readRows(extract, options)) batches.push(batch);
  return batches;
}

/** Reads a whole extract as one list of rows. */
export async function readAll(
  db: SourceDatabase,
  extract: TableExtract,
  batchRows?: number,
  limits: Omit<ReadRowsOptions, "batchRows"> = {},
): Promise<CanonicalRow[]> {
  return (await readBatches(db, extract, batchRows, limits)).flat();
}

/**
 * Checks the batching rule of `RowBatcher`: no batch is empty or longer than `batchRows`, none passes
 * `batchBytes` by more than its last row, and every batch but the last was handed over because it was
 * full (in rows or in bytes).
 */
export function assertBatchesWithin(
  batches: readonly CanonicalRow[][],
  batchRows: number,
  batchBytes: number,
): void {
  batches.forEach((batch, i) => {
    const bytes = batch.map(estimatedRowBytes);
    const total = bytes.reduce((a, b) => a + b, 0);
    assert.ok(batch.length >= 1 && batch.length <= batchRows, `batch ${i}: ${batch.length} rows`);
    assert.ok(total - bytes[bytes.length - 1]! < batchBytes, `batch ${i} was full before its end`);
    if (i < batches.length - 1) {
      assert.ok(
        batch.length === batchRows || total >= batchBytes,
        `batch ${i} (${batch.length} rows, ${total} bytes) was handed over before it was full`,
      );
    }
  });
}

/**
 * Starts reading a stream: `firstTaken` settles once its first item is in hand, `done` once it is drained
 * and `check` has passed on every item.
 */
function drainAfterFirst<T>(
  stream: AsyncIterable<T>,
  check: (items: T[]) => void,
): { firstTaken: Promise<void>; done: Promise<void> } {
  const first = Promise.withResolvers<void>();
  const done = (async () => {
    const items: T[] = [];
    for await (const item of stream) {
      items.push(item);
      first.resolve();
    }
    first.resolve();
    check(items);
  })();
  done.catch(first.reject);
  return { firstTaken: first.promise, done };
}

function concatBytes(chunks: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/** Reads `readCsv()` to the end as bytes. */
export async function readCsvBytes(
  db: SourceDatabase,
  extract: TableExtract,
  options: ReadCsvOptions = {},
): Promise<Uint8Array> {
  assert.ok(db.readCsv !== undefined, "the adapter has no readCsv()");
  const chunks: Uint8Array[] = [];
  for await (const chunk of db.readCsv(extract, options)) chunks.push(chunk);
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  return bytes;
}

/** The canonical CSV file of an extract, built from `readRows()`. */
export async function encodedCsv(db: SourceDatabase, extract: TableExtract): Promise<Uint8Array> {
  const header = encodeCsvRow(extract.table.columns.map((c) => c.name));
  return new TextEncoder().encode(header + encodeCsvRows(await readAll(db, extract)));
}

async function assertCsvMatches(db: SourceDatabase, extract: TableExtract): Promise<void> {
  const fromCopy = await readCsvBytes(db, extract);
  const fromRows = await encodedCsv(db, extract);
  const label = `${extract.table.name}(${extract.table.columns.map((c) => c.name).join(", ")})`;
  if (!equalBytes(fromCopy, fromRows)) {
    const decoder = new TextDecoder();
    // Show the first differing lines rather than two long byte arrays.
    const a = decoder.decode(fromCopy).split("\n");
    const b = decoder.decode(fromRows).split("\n");
    const at = a.findIndex((line, i) => line !== b[i]);
    assert.fail(
      `readCsv() differs from readRows() for ${label} at line ${at + 1}:\n` +
        `  readCsv:  ${JSON.stringify(a[at])}\n  readRows: ${JSON.stringify(b[at])}`,
    );
  }
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Sorts rows by their values, for comparing without relying on the natural order. */
export function sortRows(rows: readonly CanonicalRow[]): CanonicalRow[] {
  const key = (row: CanonicalRow) => JSON.stringify(row);
  return [...rows].sort((a, b) => key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);
}

/** What {@link measureStreaming} saw while reading a table without keeping its rows. */
export interface StreamingMeasure {
  readonly rows: number;
  readonly batches: number;
  readonly largestBatch: number;
  /** Characters of all values read: what buffering the whole table would at least have cost. */
  readonly valueChars: number;
  /** Peak growth of the resident set over the value before the read started. */
  readonly rssGrowth: number;
  /** Peak growth of the V8 heap in use over the value before the read started. */
  readonly heapGrowth: number;
}

const SAMPLE_EVERY_ROWS = 10_000;

/**
 * Reads a whole extract, dropping each batch once counted, and records the peak memory growth, sampled
 * every {@link SAMPLE_EVERY_ROWS} rows. Each sample follows a full garbage collection (when V8 lets us
 * have `gc()`), so it shows what is still held rather than garbage V8 has not yet bothered to collect.
 */
export async function measureStreaming(
  db: SourceDatabase,
  extract: TableExtract,
  batchRows: number,
): Promise<StreamingMeasure> {
  const gc = garbageCollector();
  gc();
  const before = Deno.memoryUsage();
  let peakRss = before.rss;
  let peakHeap = before.heapUsed;
  let rows = 0;
  let batches = 0;
  let largestBatch = 0;
  let valueChars = 0;
  let sampledAt = 0;
  for await (const batch of db.readRows(extract, { batchRows })) {
    batches++;
    rows += batch.length;
    largestBatch = Math.max(largestBatch, batch.length);
    for (const row of batch) for (const value of row) valueChars += value?.length ?? 0;
    if (rows - sampledAt >= SAMPLE_EVERY_ROWS) {
      sampledAt = rows;
      gc();
      const now = Deno.memoryUsage();
      peakRss = Math.max(peakRss, now.rss);
      peakHeap = Math.max(peakHeap, now.heapUsed);
    }
  }
  return {
    rows,
    batches,
    largestBatch,
    valueChars,
    rssGrowth: peakRss - before.rss,
    heapGrowth: peakHeap - before.heapUsed,
  };
}

let collector: (() => void) | undefined;

/** V8's `gc()`, exposed through `node:v8` and `node:vm`; a no-op where that is not possible. */
function garbageCollector(): () => void {
  if (collector !== undefined) return collector;
  try {
    v8.setFlagsFromString("--expose-gc");
    const gc: unknown = vm.runInNewContext("gc");
    collector = typeof gc === "function" ? () => gc() : () => {};
  } catch {
    collector = () => {};
  }
  return collector;
}

/** Rejects when `promise` has not settled within `ms`: a hang becomes a test failure. */
export async function withinMs<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
