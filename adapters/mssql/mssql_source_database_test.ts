import assert from "node:assert/strict";
import type { TableExtract } from "../../domain/catalog.ts";
import type { CanonicalRow } from "../../domain/logical_type.ts";
import {
  type ReadRowsOptions,
  SchemaNotFoundError,
  SourceConnectionError,
  SourceLoginRefusedError,
  SourceUnavailableError,
  type SqlConnectionOptions,
  ValueTooLargeError,
} from "../../ports/source_database.ts";
import {
  FIXTURE_ROWS,
  FIXTURE_SCHEMA_COMMENT,
  measureStreaming,
  sourceDatabaseContract,
} from "../../tests/contracts/source_database_contract.ts";
import {
  makeTestCertificates,
  removeTestCertificates,
} from "../../tests/support/fake_key_vault.ts";
import {
  type FakeColumn,
  type FakeSchema,
  type FakeTdsServer,
  startFakeTdsServer,
} from "../../tests/support/fake_tds_server.ts";
import { assertConnectFailure } from "../../tests/support/connect_failures.ts";
import { mssqlTablesSchema } from "../../tests/support/fake_tds_w_process.ts";
import { EDGE_CASES, EDGE_TABLE, W_TABLE, wExpectedRow } from "../../tests/support/w_table.ts";
import { connectMssqlWith, type MssqlSourceDatabase } from "./mssql_source_database.ts";
import { mssqlReadQuery } from "./mssql_dialect.ts";

const PASSWORD = "S3cret-pa55word!";

const MANY_ROWS = 5_000;
const W_ROWS = 1_000;

const int = (name: string, nullable = false): FakeColumn => ({ name, type: "int", nullable });

/** The fake's catalogue, deliberately unsorted. Values are as SQL Server stores them. */
const SCHEMAS: readonly FakeSchema[] = [
  {
    name: "dbo",
    description: "Synthetic clinic",
    tables: [
      {
        name: "visits",
        kind: "BASE TABLE",
        primaryKey: ["patient_id", "visit_no"],
        columns: [
          int("visit_no"),
          int("patient_id"),
          { name: "seen_at", type: "datetimeoffset(7)", nullable: true },
          { name: "notes", type: "nvarchar(max)", nullable: true, description: "Free text" },
        ],
        rows: [
          [1, 1, "2021-06-15 10:00:00 +00:00", "first"],
          [2, 1, null, null],
          // +02:00 local time: SWITCHOFFSET makes it the previous day in UTC.
          [1, 3, "2021-06-16 01:59:59.9999999 +02:00", "é ✓ 😀\nline two"],
        ],
      },
      {
        name: "patients",
        kind: "BASE TABLE",
        description: "One row per patient",
        primaryKey: ["id"],
        columns: [
          int("id"),
          {
            name: "nhs_number",
            type: "nvarchar(10)",
            nullable: false,
            description: "NHS number",
          },
          { name: "weight", type: "decimal(6,2)", nullable: true },
          { name: "active", type: "bit", nullable: true },
          { name: "admitted", type: "datetime2(7)", nullable: true },
          { name: "big", type: "bigint", nullable: true },
        ],
        rows: [
          [1, "9434765919", "72.5", true, "2024-01-01 00:00:01.1234567", "9007199254740993"],
          [2, "", null, null, null, null],
          [3, 'x,"y"', "-0.05", false, "2000-12-31 12:00:00", "-9223372036854775808"],
        ],
      },
      {
        name: "many",
        kind: "BASE TABLE",
        primaryKey: [],
        columns: [int("n")],
        rows: Array.from({ length: MANY_ROWS }, (_, i) => [i]),
      },
      {
        name: "patient_names",
        kind: "VIEW",
        primaryKey: [],
        columns: [int("id")],
        rows: [[1], [2], [3]],
      },
      {
        name: "we]ird",
        kind: "BASE TABLE",
        primaryKey: [],
        columns: [{ name: "x]y", type: "money", nullable: true }],
        rows: [["922337203685477.5807"], [null]],
      },
    ],
  },
  { name: "empty", tables: [] },
  contractSchema("cr8_contract"),
  mssqlTablesSchema("cr8_tables", W_ROWS),
];

/** The contract suite's standard fixture as SQL Server stores it. */
function contractSchema(name: string): FakeSchema {
  const nhs = (description?: string): FakeColumn => ({
    name: "nhs_number",
    type: "nvarchar(10)",
    nullable: false,
    ...(description === undefined ? {} : { description }),
  });
  return {
    name,
    description: FIXTURE_SCHEMA_COMMENT,
    tables: [
      {
        name: "visits",
        kind: "BASE TABLE",
        primaryKey: ["patient_id", "visit_no"],
        columns: [
          int("visit_no"),
          int("patient_id"),
          { name: "visited_on", type: "date", nullable: false },
          { name: "notes", type: "nvarchar(max)", nullable: true, description: "Free text" },
        ],
        rows: [
          [1, 1, "2020-01-01", "first"],
          [2, 1, "2020-02-01", null],
          [1, 3, "2021-06-15", "é ✓ 😀\nline two"],
        ],
      },
      {
        name: "patients",
        kind: "BASE TABLE",
        description: "One row per patient",
        primaryKey: ["id"],
        columns: [
          int("id"),
          nhs("NHS number"),
          { name: "birth_date", type: "date", nullable: true },
          { name: "weight", type: "decimal(6,2)", nullable: true },
        ],
        rows: [
          [1, "9434765919", "1980-02-29", "72.50"],
          [2, "", null, null],
          [3, 'x,"y"', "2000-12-31", "-0.05"],
        ],
      },
      {
        name: "patient_names",
        kind: "VIEW",
        primaryKey: [],
        columns: [int("id"), nhs()],
        rows: [[1, "9434765919"], [2, ""], [3, 'x,"y"']],
      },
      {
        name: "audit_log",
        kind: "BASE TABLE",
        primaryKey: [],
        columns: [
          { name: "event", type: "varchar(100)", nullable: false },
          { name: "logged_at", type: "datetime", nullable: true },
        ],
        rows: [["created", "2020-01-01 12:34:56"], ['note, with "quotes"', null]],
      },
    ],
  };
}

function options(port: number, password = PASSWORD): SqlConnectionOptions {
  return {
    host: "127.0.0.1",
    port,
    database: "clinic",
    username: "sa",
    password,
    connectTimeoutMs: 5_000,
    statementTimeoutMs: 5_000,
  };
}

async function withFake(
  fn: (db: MssqlSourceDatabase, server: FakeTdsServer) => Promise<void>,
): Promise<void> {
  await using server = await startFakeTdsServer({
    userName: "sa",
    password: PASSWORD,
    schemas: SCHEMAS,
  });
  await using db = await connectMssqlWith(options(server.port), { encrypt: false });
  await fn(db, server);
}

async function readAll(
  db: MssqlSourceDatabase,
  extract: TableExtract,
  batchRows?: number,
): Promise<{ rows: CanonicalRow[]; batches: number[] }> {
  const rows: CanonicalRow[] = [];
  const batches: number[] = [];
  for await (const batch of db.readRows(extract, batchRows === undefined ? {} : { batchRows })) {
    batches.push(batch.length);
    rows.push(...batch);
  }
  return { rows, batches };
}

async function extractOf(db: MssqlSourceDatabase, table: string): Promise<TableExtract> {
  const catalog = await db.describeSchema("dbo", { tables: [table] });
  const found = catalog.tables.find((t) => t.name === table);
  assert.ok(found, `table ${table} described`);
  return { schema: "dbo", table: found };
}

Deno.test("MssqlSourceDatabase passes the SourceDatabase contract against the fake TDS server", async (t) => {
  await sourceDatabaseContract(t, {
    name: "MssqlSourceDatabase",
    setUp: async () => {
      const server = await startFakeTdsServer({
        userName: "sa",
        password: PASSWORD,
        schemas: SCHEMAS,
      });
      return {
        schema: "cr8_contract",
        connect: () => connectMssqlWith(options(server.port), { encrypt: false }),
        cleanup: () => server.close(),
        wide: { schema: "cr8_tables", table: W_TABLE, rows: W_ROWS },
        edge: { schema: "cr8_tables", table: EDGE_TABLE, engine: "mssql" },
      };
    },
    engine: "mssql",
  });
});

Deno.test("MssqlSourceDatabase ping() runs SELECT 1 through tedious", async () => {
  await withFake(async (db, server) => {
    await db.ping();
    assert.ok(server.batches.includes("SELECT 1 AS ok"));
  });
});

Deno.test("MssqlSourceDatabase describeSchema() describes tables, columns, keys, descriptions", async () => {
  await withFake(async (db) => {
    const catalog = await db.describeSchema("dbo");
    assert.equal(catalog.name, "dbo");
    assert.equal(catalog.description, "Synthetic clinic");
    assert.deepEqual(
      catalog.tables.map((t) => [t.name, t.kind]),
      [["many", "table"], ["patient_names", "view"], ["patients", "table"], ["visits", "table"], [
        "we]ird",
        "table",
      ]],
    );
    const patients = catalog.tables.find((t) => t.name === "patients");
    assert.deepEqual(patients, {
      name: "patients",
      kind: "table",
      description: "One row per patient",
      primaryKey: ["id"],
      columns: [
        {
          name: "id",
          dataType: "int",
          logicalType: { kind: "integer" },
          nullable: false,
          description: null,
        },
        {
          name: "nhs_number",
          dataType: "nvarchar(10)",
          logicalType: { kind: "text" },
          nullable: false,
          description: "NHS number",
        },
        {
          name: "weight",
          dataType: "decimal(6,2)",
          logicalType: { kind: "decimal", precision: 6, scale: 2 },
          nullable: true,
          description: null,
        },
        {
          name: "active",
          dataType: "bit",
          logicalType: { kind: "boolean" },
          nullable: true,
          description: null,
        },
        {
          name: "admitted",
          dataType: "datetime2(7)",
          logicalType: { kind: "timestamp" },
          nullable: true,
          description: null,
        },
        {
          name: "big",
          dataType: "bigint",
          logicalType: { kind: "bigint" },
          nullable: true,
          description: null,
        },
      ],
    });
    const visits = catalog.tables.find((t) => t.name === "visits");
    assert.deepEqual(visits?.primaryKey, ["patient_id", "visit_no"]);
    assert.equal(visits?.description, null);
    assert.deepEqual(
      visits?.columns.map((c) => [c.name, c.dataType, c.logicalType.kind, c.description]),
      [
        ["visit_no", "int", "integer", null],
        ["patient_id", "int", "integer", null],
        ["seen_at", "datetimeoffset(7)", "timestamptz", null],
        ["notes", "nvarchar(max)", "text", "Free text"],
      ],
    );
  });
});

Deno.test("MssqlSourceDatabase describeSchema() honours tables, empty and unknown schemas", async () => {
  await withFake(async (db) => {
    const some = await db.describeSchema("dbo", { tables: ["visits", "nope"] });
    assert.deepEqual(some.tables.map((t) => t.name), ["visits"]);
    assert.deepEqual((await db.describeSchema("dbo", { tables: [] })).tables, []);
    assert.deepEqual(await db.describeSchema("empty"), {
      name: "empty",
      description: null,
      tables: [],
    });
    await assert.rejects(db.describeSchema("missing"), SchemaNotFoundError);
    // The fake's catalogue is case-insensitive like SQL Server's default collation; names match exactly.
    await assert.rejects(db.describeSchema("DBO"), SchemaNotFoundError);
    await assert.rejects(db.describeSchema("x' OR 1=1 --"), SchemaNotFoundError);
  });
});

Deno.test("MssqlSourceDatabase readRows() streams canonical values, NULLs included", async () => {
  await withFake(async (db, server) => {
    const patients = await extractOf(db, "patients");
    const { rows, batches } = await readAll(db, patients);
    assert.deepEqual(batches, [3]);
    assert.deepEqual(rows, [
      ["1", "9434765919", "72.50", "true", "2024-01-01 00:00:01.1234567", "9007199254740993"],
      ["2", "", null, null, null, null],
      ["3", 'x,"y"', "-0.05", "false", "2000-12-31 12:00:00", "-9223372036854775808"],
    ]);
    const sql = server.batches.at(-1) ?? "";
    assert.equal(sql, mssqlReadQuery(patients));
    assert.match(sql, /CONVERT\(nvarchar\(50\), \[weight\]\) AS \[c2\]/);
    assert.match(sql, /CONVERT\(nvarchar\(27\), \[admitted\], 121\) AS \[c4\]/);
    assert.match(sql, / FROM \[dbo\]\.\[patients\]$/);

    const visits = await extractOf(db, "visits");
    assert.deepEqual((await readAll(db, visits)).rows, [
      ["1", "1", "2021-06-15 10:00:00+00", "first"],
      ["2", "1", null, null],
      ["1", "3", "2021-06-15 23:59:59.9999999+00", "é ✓ 😀\nline two"],
    ]);

    const weird = await extractOf(db, "we]ird");
    assert.deepEqual((await readAll(db, weird)).rows, [["922337203685477.5807"], [null]]);
    assert.match(
      server.batches.at(-1) ?? "",
      /CONVERT\(nvarchar\(50\), \[x\]\]y\], 2\) .* FROM \[dbo\]\.\[we\]\]ird\]$/,
    );
  });
});

Deno.test("MssqlSourceDatabase readRows() selects only the extract's columns, in its order", async () => {
  await withFake(async (db) => {
    const patients = await extractOf(db, "patients");
    const columns = [patients.table.columns[5]!, patients.table.columns[0]!];
    const { rows } = await readAll(db, { ...patients, table: { ...patients.table, columns } });
    assert.deepEqual(rows, [["9007199254740993", "1"], [null, "2"], ["-9223372036854775808", "3"]]);
  });
});

Deno.test("MssqlSourceDatabase readRows() yields bounded batches and can stop early", async () => {
  await withFake(async (db) => {
    const many = await extractOf(db, "many");
    const { rows, batches } = await readAll(db, many, 1000);
    assert.equal(rows.length, MANY_ROWS);
    assert.ok(batches.every((n) => n <= 1000), `batches ${batches}`);
    assert.deepEqual(rows.at(-1), [String(MANY_ROWS - 1)]);

    let seen = 0;
    for await (const batch of db.readRows(many, { batchRows: 100 })) {
      seen += batch.length;
      break;
    }
    assert.equal(seen, 100);
    // The cancelled request leaves the connection usable.
    await db.ping();
    assert.equal((await readAll(db, many, 2048)).rows.length, MANY_ROWS);
    await assert.rejects(readAll(db, many, 0), RangeError);
  });
});

Deno.test("MssqlSourceDatabase readRows() of an unknown table fails with SourceUnavailableError", async () => {
  await withFake(async (db) => {
    const patients = await extractOf(db, "patients");
    const missing = { ...patients, table: { ...patients.table, name: "gone" } };
    await assert.rejects(readAll(db, missing), (e: unknown) => {
      assert.ok(e instanceof SourceUnavailableError);
      assert.match(e.message, /Invalid object name 'dbo\.gone'/);
      assert.equal((e.cause as { number?: number }).number, 208);
      return true;
    });
    await db.ping();
  });
});

Deno.test("connectMssqlWith() refuses a wrong password without revealing it", async () => {
  await using server = await startFakeTdsServer({
    userName: "sa",
    password: PASSWORD,
    schemas: SCHEMAS,
  });
  const wrong = "Wr0ng-pa55word!";
  await assert.rejects(
    connectMssqlWith(options(server.port, wrong), { encrypt: false }),
    (e: unknown) => {
      assertConnectFailure(e, SourceLoginRefusedError, /Login failed for user '\*\*\*'/, [
        wrong,
        PASSWORD,
        "'sa'",
      ]);
      return true;
    },
  );
});

Deno.test("connectMssqlWith() reports an unreachable server as SourceConnectionError", async () => {
  const server = await startFakeTdsServer({ userName: "sa", password: PASSWORD, schemas: [] });
  const port = server.port;
  await server.close();
  await assert.rejects(
    connectMssqlWith({ ...options(port), connectTimeoutMs: 2_000 }, { encrypt: false }),
    (e: unknown) => {
      assertConnectFailure(e, SourceConnectionError, /^Cannot connect to SQL Server at /);
      return true;
    },
  );
});

Deno.test("MssqlSourceDatabase reads long (max) values in PLP chunks of any size, exactly", async (t) => {
  const long = (column: string) =>
    EDGE_CASES.filter((c) => c.column === column && (c.expected?.length ?? 0) > 4_000);
  const cases = [...long("t"), ...long("bin")];
  // 10,000 x's (20,000 bytes), 5,000 emoji (20,006 bytes) and 20,000 bytes as 40,000 hex digits.
  assert.equal(cases.length, 3);
  for (const plpChunkBytes of [8_000, 4_001, 1, 100_000]) {
    await t.step(`${plpChunkBytes}-byte chunks`, async () => {
      await using server = await startFakeTdsServer({
        userName: "sa",
        password: PASSWORD,
        schemas: SCHEMAS,
        plpChunkBytes,
      });
      await using db = await connectMssqlWith(options(server.port), { encrypt: false });
      const catalog = await db.describeSchema("cr8_tables", { tables: [EDGE_TABLE] });
      const table = catalog.tables[0]!;
      const ids = new Set(cases.map((c) => String(c.id)));
      const { rows } = await readAll(db, { schema: "cr8_tables", table }, 1);
      const byId = new Map(rows.filter((r) => ids.has(r[0]!)).map((r) => [r[0], r]));
      for (const c of cases) {
        const index = table.columns.findIndex((column) => column.name === c.column);
        assert.strictEqual(byId.get(String(c.id))?.[index], c.expected, c.label);
      }
    });
  }
});

Deno.test("MssqlSourceDatabase streams a large generated table with bounded batches", async () => {
  const rows = 50_000;
  await using server = await startFakeTdsServer({
    userName: "sa",
    password: PASSWORD,
    schemas: [mssqlTablesSchema("big", rows)],
  });
  await using db = await connectMssqlWith(options(server.port), { encrypt: false });
  const table = (await db.describeSchema("big", { tables: [W_TABLE] })).tables[0]!;
  let count = 0;
  let largest = 0;
  let last: CanonicalRow | undefined;
  for await (const batch of db.readRows({ schema: "big", table }, { batchRows: 2_000 })) {
    count += batch.length;
    largest = Math.max(largest, batch.length);
    last = batch.at(-1);
  }
  assert.equal(count, rows);
  assert.equal(largest, 2_000);
  assert.deepEqual(last, wExpectedRow(rows));
});

Deno.test("MssqlSourceDatabase readRows() keeps memory bounded over 200 MB of (max) values", async () => {
  const rows = 20_000;
  const text = "é😀".repeat(1_700); // 5,100 UTF-16 units, 10,200 bytes on the wire
  await using server = await startFakeTdsServer({
    userName: "sa",
    password: PASSWORD,
    schemas: [{
      name: "dbo",
      tables: [{
        name: "bulk",
        kind: "BASE TABLE",
        primaryKey: [],
        columns: [int("n"), { name: "t", type: "nvarchar(max)", nullable: true }],
        rows: {
          *[Symbol.iterator]() {
            for (let n = 0; n < rows; n++) yield [n, `${n}${text}`];
          },
        },
      }],
    }],
  });
  await using db = await connectMssqlWith(options(server.port), { encrypt: false });
  const bulk = (await db.describeSchema("dbo")).tables[0]!;
  const seen = await measureStreaming(db, { schema: "dbo", table: bulk }, 500);
  const mib = (n: number) => `${(n / 2 ** 20).toFixed(0)} MiB`;
  assert.equal(seen.rows, rows);
  assert.equal(seen.largestBatch, 500);
  assert.ok(seen.valueChars > 100_000_000, "over 100M characters (200 MB as UTF-16) were read");
  assert.ok(seen.rssGrowth < 150 * 2 ** 20, `RSS grew by ${mib(seen.rssGrowth)}`);
  assert.ok(seen.heapGrowth < 100 * 2 ** 20, `the heap grew by ${mib(seen.heapGrowth)}`);
});

Deno.test("MssqlSourceDatabase readRows() has the server refuse a value over the limit, before sending it", async () => {
  const big = "x".repeat(2 * 1024 * 1024);
  await using server = await startFakeTdsServer({
    userName: "sa",
    password: PASSWORD,
    schemas: [{
      name: "dbo",
      tables: [{
        name: "docs",
        kind: "BASE TABLE",
        primaryKey: [],
        columns: [
          int("n"),
          { name: "title", type: "varchar(20)", nullable: true },
          { name: "body", type: "nvarchar(max)", nullable: true },
          { name: "raw", type: "varbinary(max)", nullable: true },
        ],
        rows: [[1, "small", "short", null], [2, "big", big, null], [
          3,
          "bin",
          null,
          new Uint8Array(600),
        ]],
      }],
    }],
  });
  await using db = await connectMssqlWith(options(server.port), { encrypt: false });
  const docs = (await db.describeSchema("dbo")).tables[0]!;
  const extract = { schema: "dbo", table: docs };
  const readAll = async (extract: TableExtract, limits: ReadRowsOptions) => {
    const rows: CanonicalRow[] = [];
    for await (const batch of db.readRows(extract, limits)) rows.push(...batch);
    return rows;
  };
  for (const [maxValueBytes, column] of [[1024 * 1024, "body"], [1024, "raw"]] as const) {
    const without = column === "body" ? [] : [2];
    const error = await readAll({
      ...extract,
      table: { ...docs, columns: docs.columns.filter((_, i) => !without.includes(i)) },
    }, { maxValueBytes }).then(() => assert.fail("expected a ValueTooLargeError"), (e) => e);
    assert.ok(error instanceof ValueTooLargeError, String(error));
    assert.deepEqual(error.position, { schema: "dbo", table: "docs", column });
    // Error 245, the guard's failed conversion: the server refused the value in the SELECT.
    assert.equal((error.cause as { number?: number }).number, 245, String(error.cause));
    assert.ok(!String((error.cause as Error).message).includes("xxxx"));
  }
  const sent = server.batches.at(-1) ?? "";
  assert.match(sent, /CASE WHEN CAST\(DATALENGTH\(\[raw\]\) AS bigint\) \* 2 \+ 2 > 1024 THEN/);
  assert.ok(!/DATALENGTH\(\[title\]\)/.test(sent), "a varchar(20) cannot be over the limit");
  // Under a limit it fits, the same read returns every value.
  const rows = await readAll(extract, { maxValueBytes: 4 * 1024 * 1024 });
  assert.equal(rows.length, 3);
  assert.equal(rows[1]?.[2], big);
  await db.ping();
});

Deno.test("MssqlSourceDatabase readRows() fails on an error in the middle of a result and recovers", async () => {
  const rows: (number | string)[][] = Array.from({ length: 3_000 }, (_, i) => [i, "1.00"]);
  // A value SQL Server would report with an ERROR token once it reaches that row.
  rows[2_500] = [2_500, "1.001"];
  await using server = await startFakeTdsServer({
    userName: "sa",
    password: PASSWORD,
    schemas: [{
      name: "dbo",
      tables: [{
        name: "bad",
        kind: "BASE TABLE",
        primaryKey: [],
        columns: [int("n"), { name: "amount", type: "decimal(6,2)", nullable: true }],
        rows,
      }],
    }],
  });
  await using db = await connectMssqlWith(options(server.port), { encrypt: false });
  const bad = (await db.describeSchema("dbo")).tables[0]!;
  let seen = 0;
  await assert.rejects(
    (async () => {
      for await (const batch of db.readRows({ schema: "dbo", table: bad }, { batchRows: 100 })) {
        seen += batch.length;
      }
    })(),
    (e: unknown) => {
      assert.ok(e instanceof SourceUnavailableError);
      assert.match(e.message, /Cannot read table "dbo"\."bad"/);
      return true;
    },
  );
  assert.ok(seen <= 2_500, `${seen} rows came before the failing one`);
  await db.ping();
});

/** The fake's rows for TLS tests: the contract fixture's patients. */
async function readPatients(db: MssqlSourceDatabase): Promise<CanonicalRow[]> {
  const table = (await db.describeSchema("cr8_contract", { tables: ["patients"] })).tables[0]!;
  return (await readAll(db, { schema: "cr8_contract", table })).rows;
}

Deno.test("connectMssqlWith() with TLS: verified certificates, TDS 7.4 and TDS 8.0 strict", async (t) => {
  const trusted = await makeTestCertificates();
  const other = await makeTestCertificates();
  const expected = FIXTURE_ROWS.patients;
  const fake = (mode: "tds7" | "strict") =>
    startFakeTdsServer({
      userName: "sa",
      password: PASSWORD,
      schemas: SCHEMAS,
      tls: { mode, cert: trusted.cert, key: trusted.key },
    });
  const refused = async (
    server: FakeTdsServer,
    tls: Parameters<typeof connectMssqlWith>[1],
    pattern: RegExp,
  ) => {
    const before = server.connections.filter((c) => c.loggedIn).length;
    await assert.rejects(connectMssqlWith(options(server.port), tls), (e: unknown) => {
      assertConnectFailure(e, SourceConnectionError, pattern, [PASSWORD]);
      return true;
    });
    // The password never reached a server that was not trusted.
    assert.equal(server.connections.filter((c) => c.loggedIn).length, before);
  };
  try {
    await t.step("TDS 7.4: TLS 1.2 inside PRELOGIN, the private CA trusted", async () => {
      await using server = await fake("tds7");
      await using db = await connectMssqlWith(options(server.port), {
        encrypt: true,
        ca: trusted.caCert,
      });
      assert.deepEqual(await readPatients(db), expected);
      assert.deepEqual(server.connections.at(-1), { tls: "TLSv1.2", alpn: null, loggedIn: true });
    });

    await t.step("TDS 7.4: an unknown CA is refused unless trustServerCertificate", async () => {
      await using server = await fake("tds7");
      await refused(server, { encrypt: true }, /certificate/i);
      await refused(server, { encrypt: true, ca: other.caCert }, /certificate/i);
      await using db = await connectMssqlWith(options(server.port), {
        encrypt: true,
        trustServerCertificate: true,
      });
      assert.deepEqual(await readPatients(db), expected);
      assert.equal(server.connections.at(-1)?.tls, "TLSv1.2");
    });

    await t.step("TDS 7.4: the certificate must name the host (or serverName)", async () => {
      await using server = await fake("tds7");
      await refused(
        server,
        { encrypt: true, ca: trusted.caCert, serverName: "sql.example.org" },
        /sql\.example\.org|altnames|host/i,
      );
      await using db = await connectMssqlWith(options(server.port), {
        encrypt: true,
        ca: trusted.caCert,
        serverName: "localhost",
      });
      await db.ping();
    });

    await t.step("TDS 7.4: a server that needs TLS refuses encrypt: false", async () => {
      await using server = await fake("tds7");
      await refused(server, { encrypt: false }, /requires encryption/);
    });

    await t.step("a server without TLS is refused by the default encrypt: true", async () => {
      await using server = await startFakeTdsServer({
        userName: "sa",
        password: PASSWORD,
        schemas: SCHEMAS,
      });
      await refused(server, {}, /did not negotiate encryption/);
    });

    await t.step("TDS 8.0 strict: TLS from the first byte with ALPN tds/8.0", async () => {
      await using server = await fake("strict");
      await using db = await connectMssqlWith(options(server.port), {
        encrypt: "strict",
        ca: trusted.caCert,
      });
      assert.deepEqual(await readPatients(db), expected);
      const connection = server.connections.at(-1);
      assert.equal(connection?.alpn, "tds/8.0");
      assert.match(connection?.tls ?? "", /^TLSv1\.[23]$/);
      assert.equal(connection?.loggedIn, true);
    });

    await t.step(
      "TDS 8.0 strict: an unknown CA is refused, even with trustServerCertificate",
      async () => {
        await using server = await fake("strict");
        await refused(server, { encrypt: "strict" }, /certificate/i);
        await refused(server, { encrypt: "strict", ca: other.caCert }, /certificate/i);
        // tedious ignores trustServerCertificate in strict mode: TDS 8.0 always verifies.
        await refused(server, { encrypt: "strict", trustServerCertificate: true }, /certificate/i);
      },
    );
  } finally {
    await removeTestCertificates(trusted);
    await removeTestCertificates(other);
  }
});

const LIVE_HOST = Deno.env.get("MSSQL_TEST_HOST");
const LIVE_PASSWORD = Deno.env.get("MSSQL_TEST_PASSWORD");

Deno.test({
  name: "MssqlSourceDatabase against a live SQL Server (skipped unless MSSQL_TEST_HOST and " +
    "MSSQL_TEST_PASSWORD are set)",
  ignore: LIVE_HOST === undefined || LIVE_PASSWORD === undefined,
  fn: async () => {
    await using db = await connectMssqlWith(
      {
        host: LIVE_HOST!,
        port: Number(Deno.env.get("MSSQL_TEST_PORT") ?? 1433),
        database: Deno.env.get("MSSQL_TEST_DATABASE") ?? "master",
        username: Deno.env.get("MSSQL_TEST_USER") ?? "sa",
        password: LIVE_PASSWORD!,
        connectTimeoutMs: 15_000,
        statementTimeoutMs: 60_000,
      },
      { encrypt: true, trustServerCertificate: Deno.env.get("MSSQL_TEST_TRUST_CERT") === "1" },
    );
    await db.ping();
    const catalog = await db.describeSchema("dbo");
    assert.equal(catalog.name, "dbo");
    await assert.rejects(db.describeSchema("cr8tor_no_such_schema"), SchemaNotFoundError);
  },
});
