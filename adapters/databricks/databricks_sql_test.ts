/**
 * Tests of the Databricks data path through the real `@databricks/sql` driver, against the wire-level
 * fake TCLIService (emulated Databricks: it proves the adapter handles the driver and the documented
 * wire contract, not that a given workspace accepts the SQL) served over TLS with a test CA.
 */
import assert from "node:assert/strict";
import v8 from "node:v8";
import vm from "node:vm";
import { databricks } from "./databricks_driver.ts";
import type { CatalogColumn, TableExtract } from "../../domain/catalog.ts";
import type { CanonicalRow, LogicalType } from "../../domain/logical_type.ts";
import {
  SourceConnectionError,
  SourceLoginRefusedError,
  SourceUnavailableError,
  ValueTooLargeError,
} from "../../ports/source_database.ts";
import {
  type FakeRowSource,
  type FakeSparkValue,
  type FakeUcColumn,
  type FakeUcTable,
  type FakeWorkspace,
} from "../../tests/support/fake_databricks_workspace.ts";
import {
  createFakeThrift,
  type FakeThrift,
  type FakeThriftOptions,
  type FakeThriftServer,
  startFakeThriftServer,
} from "../../tests/support/fake_databricks_thrift.ts";
import {
  makeTestCertificates,
  removeTestCertificates,
  type TestCertificates,
} from "../../tests/support/fake_key_vault.ts";
import {
  type DatabricksSql,
  type DatabricksSqlOptions,
  openDatabricksSql,
} from "./databricks_sql.ts";
import {
  databricksCanonicalConverter,
  databricksReadQuery,
  databricksSelectExpression,
  normalizeDecimal,
  quoteDatabricksIdentifier,
} from "./databricks_dialect.ts";

const CATALOG = "main";
const SCHEMA = "src";
const TOKEN = "fake-token-1";

// ---------------------------------------------------------------------------------------------------
// Fixture: one table per Databricks type, `id INT` + `v <type>`, with each stored value and the exact
// canonical text the adapter must produce for it.

interface TypeCase {
  readonly table: string;
  readonly typeName: string;
  readonly typeText: string;
  readonly logicalType: LogicalType;
  readonly values: readonly (readonly [stored: FakeSparkValue, expected: string | null])[];
}

const TYPE_CASES: readonly TypeCase[] = [
  {
    table: "t_boolean",
    typeName: "BOOLEAN",
    typeText: "boolean",
    logicalType: { kind: "boolean" },
    values: [[true, "true"], [false, "false"], [null, null]],
  },
  {
    table: "t_byte",
    typeName: "BYTE",
    typeText: "tinyint",
    logicalType: { kind: "smallint" },
    values: [[-128, "-128"], [127, "127"], [0, "0"], [null, null]],
  },
  {
    table: "t_short",
    typeName: "SHORT",
    typeText: "smallint",
    logicalType: { kind: "smallint" },
    values: [[-32768, "-32768"], [32767, "32767"], [null, null]],
  },
  {
    table: "t_int",
    typeName: "INT",
    typeText: "int",
    logicalType: { kind: "integer" },
    values: [[-2147483648, "-2147483648"], [2147483647, "2147483647"], [null, null]],
  },
  {
    table: "t_long",
    typeName: "LONG",
    typeText: "bigint",
    logicalType: { kind: "bigint" },
    values: [
      [-9223372036854775808n, "-9223372036854775808"],
      [9223372036854775807n, "9223372036854775807"],
      [9007199254740993n, "9007199254740993"],
      [0n, "0"],
      [null, null],
    ],
  },
  {
    table: "t_float",
    typeName: "FLOAT",
    typeText: "float",
    logicalType: { kind: "real" },
    values: [
      [0.1, "0.1"],
      [-2.5, "-2.5"],
      [1234567, "1234567"],
      [1e15, "1e+15"],
      [16777217, "16777216"],
      [3.4028234663852886e38, "3.4028235e+38"],
      [1.401298464324817e-45, "1e-45"],
      [NaN, "NaN"],
      [Infinity, "Infinity"],
      [-Infinity, "-Infinity"],
      [null, null],
    ],
  },
  {
    table: "t_double",
    typeName: "DOUBLE",
    typeText: "double",
    logicalType: { kind: "double" },
    values: [
      [0.1 + 0.2, "0.30000000000000004"],
      [1e15, "1e+15"],
      [999999999999999, "999999999999999"],
      [0.00001, "1e-05"],
      [0.0001, "0.0001"],
      [1.7976931348623157e308, "1.7976931348623157e+308"],
      [5e-324, "5e-324"],
      [-0, "-0"],
      [NaN, "NaN"],
      [Infinity, "Infinity"],
      [-Infinity, "-Infinity"],
      [null, null],
    ],
  },
  {
    table: "t_decimal_38_10",
    typeName: "DECIMAL",
    typeText: "decimal(38,10)",
    logicalType: { kind: "decimal", precision: 38, scale: 10 },
    values: [
      ["9999999999999999999999999999.9999999999", "9999999999999999999999999999.9999999999"],
      ["-9999999999999999999999999999.9999999999", "-9999999999999999999999999999.9999999999"],
      ["-0.0000000001", "-0.0000000001"],
      ["0", "0.0000000000"],
      ["12.3", "12.3000000000"],
      ["-12.5", "-12.5000000000"],
      [null, null],
    ],
  },
  {
    table: "t_decimal_18_2",
    typeName: "DECIMAL",
    typeText: "decimal(18,2)",
    logicalType: { kind: "decimal", precision: 18, scale: 2 },
    values: [
      ["-0.05", "-0.05"],
      ["1234567890123456.78", "1234567890123456.78"],
      ["0.00", "0.00"],
      [null, null],
    ],
  },
  {
    table: "t_decimal_10_0",
    typeName: "DECIMAL",
    typeText: "decimal(10,0)",
    logicalType: { kind: "decimal", precision: 10, scale: 0 },
    values: [["-1234567890", "-1234567890"], ["0", "0"]],
  },
  {
    table: "t_date",
    typeName: "DATE",
    typeText: "date",
    logicalType: { kind: "date" },
    values: [
      ["0001-01-01", "0001-01-01"],
      ["9999-12-31", "9999-12-31"],
      ["1970-01-01", "1970-01-01"],
      ["1969-12-31", "1969-12-31"],
      ["2000-02-29", "2000-02-29"],
      ["1582-10-04", "1582-10-04"],
      ["0000-12-31", "0001-12-31 BC"],
      ["-0043-03-15", "0044-03-15 BC"],
      ["-5877641-06-23", "5877642-06-23 BC"],
      ["5881580-07-11", "5881580-07-11"],
      [null, null],
    ],
  },
  {
    table: "t_timestamp",
    typeName: "TIMESTAMP",
    typeText: "timestamp",
    logicalType: { kind: "timestamptz" },
    values: [
      ["2020-01-01 00:00:00", "2020-01-01 00:00:00+00"],
      ["2020-01-01 00:00:00.1", "2020-01-01 00:00:00.1+00"],
      ["2020-01-01 00:00:00.12", "2020-01-01 00:00:00.12+00"],
      ["2020-01-01 00:00:00.123", "2020-01-01 00:00:00.123+00"],
      ["2020-01-01 00:00:00.1234", "2020-01-01 00:00:00.1234+00"],
      ["2020-01-01 00:00:00.12345", "2020-01-01 00:00:00.12345+00"],
      ["2020-01-01 00:00:01.123456", "2020-01-01 00:00:01.123456+00"],
      ["2020-01-01 00:00:00.100000", "2020-01-01 00:00:00.1+00"],
      ["1969-12-31 23:59:59.999999", "1969-12-31 23:59:59.999999+00"],
      ["1900-01-01 00:00:00", "1900-01-01 00:00:00+00"],
      ["0001-01-01 00:00:00", "0001-01-01 00:00:00+00"],
      ["9999-12-31 23:59:59.999999", "9999-12-31 23:59:59.999999+00"],
      ["-0043-03-15 12:00:00", "0044-03-15 12:00:00+00 BC"],
      [null, null],
    ],
  },
  {
    table: "t_timestamp_ntz",
    typeName: "TIMESTAMP_NTZ",
    typeText: "timestamp_ntz",
    logicalType: { kind: "timestamp" },
    values: [
      ["2020-01-01 00:00:00", "2020-01-01 00:00:00"],
      ["2020-01-01 00:00:00.5", "2020-01-01 00:00:00.5"],
      ["2020-01-01 00:00:00.000001", "2020-01-01 00:00:00.000001"],
      ["1969-12-31 23:59:59.999999", "1969-12-31 23:59:59.999999"],
      ["0001-01-01 00:00:00", "0001-01-01 00:00:00"],
      ["9999-12-31 23:59:59.999999", "9999-12-31 23:59:59.999999"],
      ["-0043-03-15 12:00:00", "0044-03-15 12:00:00 BC"],
      [null, null],
    ],
  },
  {
    table: "t_string",
    typeName: "STRING",
    typeText: "string",
    logicalType: { kind: "text" },
    values: [
      ["", ""],
      [null, null],
      ["NULL", "NULL"],
      ["😀 emoji and 𝄞 clef", "😀 emoji and 𝄞 clef"],
      ["e\u0301 vs \u00e9", "e\u0301 vs \u00e9"],
      ['crlf\r\n, "quoted" \\ tab\t', 'crlf\r\n, "quoted" \\ tab\t'],
      ["x".repeat(10_000), "x".repeat(10_000)],
    ],
  },
  {
    table: "t_char",
    typeName: "CHAR",
    typeText: "char(5)",
    logicalType: { kind: "text" },
    values: [["ab", "ab   "], [null, null]],
  },
  {
    table: "t_varchar",
    typeName: "VARCHAR",
    typeText: "varchar(10)",
    logicalType: { kind: "text" },
    values: [["abc", "abc"], ["", ""]],
  },
  {
    table: "t_binary",
    typeName: "BINARY",
    typeText: "binary",
    logicalType: { kind: "binary" },
    values: [
      [new Uint8Array([]), "\\x"],
      [new Uint8Array([0]), "\\x00"],
      [new Uint8Array([0x00, 0x01, 0x02, 0xfd, 0xfe, 0xff]), "\\x000102fdfeff"],
      [new Uint8Array([0x5c, 0x2e]), "\\x5c2e"],
      [null, null],
    ],
  },
  {
    table: "t_array",
    typeName: "ARRAY",
    typeText: "array<int>",
    logicalType: { kind: "json" },
    values: [[[1, null, 3], "[1,null,3]"], [[], "[]"], [null, null]],
  },
  {
    table: "t_array_nested",
    typeName: "ARRAY",
    typeText: "array<array<string>>",
    logicalType: { kind: "json" },
    values: [[[["a", 'q"é😀'], []], '[["a","q\\"é😀"],[]]']],
  },
  {
    table: "t_map",
    typeName: "MAP",
    typeText: "map<string,int>",
    logicalType: { kind: "json" },
    values: [[{ a: 1, b: null }, '{"a":1,"b":null}'], [{}, "{}"]],
  },
  {
    table: "t_map_int_keys",
    typeName: "MAP",
    typeText: "map<int,array<double>>",
    logicalType: { kind: "json" },
    values: [[{ "1": [1, 0.5, NaN] }, '{"1":[1.0,0.5,"NaN"]}']],
  },
  {
    table: "t_struct",
    typeName: "STRUCT",
    typeText: "struct<a:int,b:string,c:double>",
    logicalType: { kind: "json" },
    values: [
      [{ a: 1, b: null, c: 1.5 }, '{"a":1,"c":1.5}'],
      [{ a: null, b: null, c: null }, "{}"],
      [null, null],
    ],
  },
  {
    table: "t_struct_nested",
    typeName: "STRUCT",
    typeText: "struct<x:array<struct<y:string>>,d:decimal(5,2),t:timestamp,n:bigint,b:boolean>",
    logicalType: { kind: "json" },
    values: [[
      {
        x: [{ y: "é" }],
        d: "1.50",
        t: "2020-01-01 00:00:00.123456",
        n: 9007199254740993n,
        b: true,
      },
      '{"x":[{"y":"é"}],"d":1.50,"t":"2020-01-01T00:00:00.123Z","n":9007199254740993,"b":true}',
    ]],
  },
  {
    table: "t_variant",
    typeName: "VARIANT",
    typeText: "variant",
    logicalType: { kind: "json" },
    values: [[{ k: [1, "é"] }, '{"k":[1,"é"]}'], ["text", '"text"'], [null, null]],
  },
  {
    table: "t_interval",
    typeName: "INTERVAL",
    typeText: "interval year to month",
    logicalType: { kind: "text" },
    values: [["INTERVAL '1-2' YEAR TO MONTH", "INTERVAL '1-2' YEAR TO MONTH"], [null, null]],
  },
];

function column(name: string, dataType: string, logicalType: LogicalType): CatalogColumn {
  return { name, dataType, logicalType, nullable: true, description: null };
}

function extractOf(
  table: string,
  columns: readonly CatalogColumn[],
  schema: string = SCHEMA,
): TableExtract {
  return {
    schema,
    table: { name: table, kind: "table", description: null, columns, primaryKey: [] },
  };
}

function typeCaseTable(c: TypeCase): FakeUcTable {
  return {
    name: c.table,
    table_type: "MANAGED",
    columns: [
      { name: "id", type_name: "INT", type_text: "int" },
      { name: "v", type_name: c.typeName, type_text: c.typeText },
    ],
    rows: c.values.map(([stored], i) => [i + 1, stored]),
  };
}

function typeCaseExtract(c: TypeCase): TableExtract {
  return extractOf(c.table, [
    column("id", "int", { kind: "integer" }),
    column("v", c.typeText, c.logicalType),
  ]);
}

/** A W-like table (the benchmark's shape) generated row by row: `rows` rows, ids from 1. */
function wideRows(rows: number): FakeRowSource {
  return {
    count: rows,
    row(index: number): readonly FakeSparkValue[] {
      const id = index + 1;
      const cents = BigInt(id) * 137n % 100_000_000n;
      return [
        BigInt(id),
        (id * 7) % 100_000,
        id % 30_000,
        `${cents / 100n}.${String(cents % 100n).padStart(2, "0")}`,
        `${id}.${String(id % 10_000_000_000).padStart(10, "0")}`,
        id / 3,
        id % 2 === 0,
        new Date(Date.UTC(2020, 0, 1) + id * 1_000).toISOString().replace("T", " ").slice(0, 19),
        new Date(Date.UTC(2000, 0, 1) + (id % 9_000) * 86_400_000).toISOString().slice(0, 10),
        `C${String(id % 99_999).padStart(8, "0")}`,
        `text ${id} ${"y".repeat(id % 40)}`,
        `more text for row ${id}`,
        id % 2 === 0 ? null : `v${id}`,
      ];
    },
  };
}

const WIDE_COLUMNS: readonly (FakeUcColumn & { logicalType: LogicalType })[] = [
  { name: "id", type_name: "LONG", type_text: "bigint", logicalType: { kind: "bigint" } },
  { name: "i", type_name: "INT", type_text: "int", logicalType: { kind: "integer" } },
  { name: "s", type_name: "SHORT", type_text: "smallint", logicalType: { kind: "smallint" } },
  {
    name: "amount",
    type_name: "DECIMAL",
    type_text: "decimal(18,2)",
    logicalType: { kind: "decimal", precision: 18, scale: 2 },
  },
  {
    name: "price",
    type_name: "DECIMAL",
    type_text: "decimal(38,10)",
    logicalType: { kind: "decimal", precision: 38, scale: 10 },
  },
  { name: "ratio", type_name: "DOUBLE", type_text: "double", logicalType: { kind: "double" } },
  { name: "flag", type_name: "BOOLEAN", type_text: "boolean", logicalType: { kind: "boolean" } },
  {
    name: "created_at",
    type_name: "TIMESTAMP",
    type_text: "timestamp",
    logicalType: { kind: "timestamptz" },
  },
  { name: "d", type_name: "DATE", type_text: "date", logicalType: { kind: "date" } },
  { name: "code", type_name: "STRING", type_text: "string", logicalType: { kind: "text" } },
  { name: "txt", type_name: "STRING", type_text: "string", logicalType: { kind: "text" } },
  { name: "txt2", type_name: "STRING", type_text: "string", logicalType: { kind: "text" } },
  { name: "maybe", type_name: "STRING", type_text: "string", logicalType: { kind: "text" } },
];

/** The canonical text of row `id` of {@link wideRows}, computed independently of the adapter. */
function wideExpected(id: number): CanonicalRow {
  const cents = BigInt(id) * 137n % 100_000_000n;
  return [
    String(id),
    String((id * 7) % 100_000),
    String(id % 30_000),
    `${cents / 100n}.${String(cents % 100n).padStart(2, "0")}`,
    `${id}.${String(id % 10_000_000_000).padStart(10, "0")}`,
    String(id / 3),
    id % 2 === 0 ? "true" : "false",
    `${
      new Date(Date.UTC(2020, 0, 1) + id * 1_000).toISOString().replace("T", " ").slice(0, 19)
    }+00`,
    new Date(Date.UTC(2000, 0, 1) + (id % 9_000) * 86_400_000).toISOString().slice(0, 10),
    `C${String(id % 99_999).padStart(8, "0")}`,
    `text ${id} ${"y".repeat(id % 40)}`,
    `more text for row ${id}`,
    id % 2 === 0 ? null : `v${id}`,
  ];
}

function wideTable(name: string, rows: number): FakeUcTable {
  return {
    name,
    table_type: "MANAGED",
    columns: WIDE_COLUMNS.map(({ logicalType: _, ...c }) => c),
    rows: wideRows(rows),
  };
}

function wideExtract(name: string): TableExtract {
  return extractOf(name, WIDE_COLUMNS.map((c) => column(c.name, c.type_text, c.logicalType)));
}

const BIG_ROWS = 250_000;

function workspace(): FakeWorkspace {
  return {
    catalog: CATALOG,
    clientId: "client",
    clientSecret: "secret",
    schemas: [
      {
        name: SCHEMA,
        tables: [
          ...TYPE_CASES.map(typeCaseTable),
          wideTable("wide_small", 2_500),
          wideTable("wide_big", BIG_ROWS),
          {
            name: "odd`name",
            table_type: "MANAGED",
            columns: [
              { name: "we`ird col", type_name: "STRING", type_text: "string" },
              { name: "x", type_name: "INT", type_text: "int" },
            ],
            rows: [["ok", 1]],
          },
        ],
      },
    ],
  };
}

// ---------------------------------------------------------------------------------------------------
// Harness

interface Harness extends AsyncDisposable {
  readonly fake: FakeThrift;
  readonly server: FakeThriftServer;
  readonly certificates: TestCertificates;
  /** Opens a session; the harness closes it. */
  open(overrides?: Partial<DatabricksSqlOptions>): Promise<DatabricksSql>;
  options(overrides?: Partial<DatabricksSqlOptions>): DatabricksSqlOptions;
}

async function harness(
  settings: {
    fake?: FakeThriftOptions;
    acceptToken?: (token: string) => boolean;
    workspace?: FakeWorkspace;
  } = {},
): Promise<Harness> {
  const certificates = await makeTestCertificates();
  const fake = createFakeThrift(settings.workspace ?? workspace(), settings.fake);
  const server = await startFakeThriftServer({
    thrift: fake,
    certificates,
    acceptToken: settings.acceptToken ?? ((t) => t === TOKEN),
  });
  const opened: DatabricksSql[] = [];
  const options = (overrides: Partial<DatabricksSqlOptions> = {}): DatabricksSqlOptions => ({
    host: "127.0.0.1",
    port: server.port,
    httpPath: server.path,
    catalog: CATALOG,
    getToken: () => Promise.resolve(TOKEN),
    caCertificates: [certificates.caCert],
    connectTimeoutMs: 10_000,
    statementTimeoutMs: 60_000,
    ...overrides,
  });
  return {
    fake,
    server,
    certificates,
    options,
    async open(overrides) {
      const sql = await openDatabricksSql(options(overrides));
      opened.push(sql);
      return sql;
    },
    async [Symbol.asyncDispose]() {
      for (const sql of opened) await sql.close();
      await server.close();
      await removeTestCertificates(certificates);
    },
  };
}

async function readBatches(
  sql: DatabricksSql,
  extract: TableExtract,
  batchRows?: number,
): Promise<CanonicalRow[][]> {
  const batches: CanonicalRow[][] = [];
  for await (const batch of sql.readRows(extract, batchRows === undefined ? {} : { batchRows })) {
    batches.push(batch);
  }
  return batches;
}

async function readAll(
  sql: DatabricksSql,
  extract: TableExtract,
  batchRows?: number,
): Promise<CanonicalRow[]> {
  return (await readBatches(sql, extract, batchRows)).flat();
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return await promise.then(() => assert.fail("expected a rejection"), (e: unknown) => e);
}

let collector: (() => void) | undefined;

/** V8's `gc()`, exposed through `node:v8` and `node:vm`. */
function gc(): void {
  if (collector === undefined) {
    v8.setFlagsFromString("--expose-gc");
    const found: unknown = vm.runInNewContext("gc");
    collector = typeof found === "function" ? () => found() : () => {};
  }
  collector();
}

// ---------------------------------------------------------------------------------------------------
// Through the driver

Deno.test("openDatabricksSql() opens a UTC session in the catalog over verified TLS", async () => {
  await using h = await harness();
  const sql = await h.open();
  await sql.ping();
  assert.deepEqual(h.fake.statements, ["SET TIME ZONE 'UTC'", "SELECT 1"]);
  assert.equal(h.fake.sessions.opened, 1);
  assert.equal(h.fake.operations.opened, h.fake.operations.closed);
  assert.ok(h.server.tokens.length >= 3 && h.server.tokens.every((t) => t === TOKEN));
  await sql.close();
  await sql.close();
  assert.equal(h.fake.sessions.closed, 1);
  await assert.rejects(sql.ping(), SourceUnavailableError);
  await assert.rejects(readAll(sql, typeCaseExtract(TYPE_CASES[0]!)), SourceUnavailableError);
});

Deno.test("DatabricksSql readRows() gives every Databricks type as exact canonical text", async (t) => {
  await using h = await harness();
  const sql = await h.open();
  for (const c of TYPE_CASES) {
    await t.step(`${c.typeText}`, async () => {
      const rows = await readAll(sql, typeCaseExtract(c));
      assert.deepEqual(
        rows,
        c.values.map(([, expected], i) => [String(i + 1), expected]),
      );
    });
  }
  assert.equal(h.fake.operations.opened, h.fake.operations.closed);
});

Deno.test("DatabricksSql readRows() sends one select expression per column kind", async () => {
  await using h = await harness();
  const sql = await h.open();
  await readAll(sql, typeCaseExtract(TYPE_CASES.find((c) => c.table === "t_timestamp_ntz")!));
  assert.equal(
    h.fake.statements.at(-1),
    "SELECT `id` AS `c0`, unix_micros(CAST(`v` AS TIMESTAMP)) AS `c1` FROM `main`.`src`.`t_timestamp_ntz`",
  );
  const execution = h.fake.executions.at(-1)!;
  assert.equal(execution.canDownloadResult, false, "CloudFetch must be off");
  assert.equal(execution.canDecompressLZ4Result, false, "LZ4 must be off");
  assert.equal(execution.queryTimeoutSeconds, 60);
});

Deno.test("DatabricksSql readRows() keeps decimals exact outside ANSI mode (0E-10 forms)", async () => {
  await using h = await harness({ fake: { ansiMode: false } });
  const sql = await h.open();
  const c = TYPE_CASES.find((c) => c.table === "t_decimal_38_10")!;
  assert.deepEqual(
    await readAll(sql, typeCaseExtract(c)),
    c.values.map(([, expected], i) => [String(i + 1), expected]),
  );
});

Deno.test("DatabricksSql readRows() reads timestamps in UTC whatever the session's zone", async () => {
  await using h = await harness({ fake: { sessionTimeZone: "+05:00" } });
  const sql = await h.open();
  for (const table of ["t_timestamp", "t_timestamp_ntz"]) {
    const c = TYPE_CASES.find((c) => c.table === table)!;
    assert.deepEqual(
      await readAll(sql, typeCaseExtract(c)),
      c.values.map(([, expected], i) => [String(i + 1), expected]),
      table,
    );
  }
});

Deno.test("DatabricksSql readRows() selects only the extract's columns, in its order", async () => {
  await using h = await harness();
  const sql = await h.open();
  const all = wideExtract("wide_small");
  const picked = ["maybe", "created_at", "id"].map((n) =>
    all.table.columns.find((c) => c.name === n)!
  );
  const rows = await readAll(sql, extractOf("wide_small", picked), 1_000);
  assert.equal(rows.length, 2_500);
  for (const [i, row] of rows.entries()) {
    const full = wideExpected(i + 1);
    assert.deepEqual(row, [full[12], full[7], full[0]]);
  }
  assert.equal(
    h.fake.statements.at(-1),
    "SELECT CASE WHEN octet_length(`maybe`) > 67108864 THEN raise_error(concat(" +
      "'cr8tor_value_too_large:0:', octet_length(`maybe`))) ELSE `maybe` END AS `c0`, " +
      "unix_micros(CAST(`created_at` AS TIMESTAMP)) AS `c1`, `id` AS `c2` " +
      "FROM `main`.`src`.`wide_small`",
  );
});

Deno.test("DatabricksSql readRows() quotes names with backticks in them", async () => {
  await using h = await harness();
  const sql = await h.open();
  const rows = await readAll(
    sql,
    extractOf("odd`name", [
      column("x", "int", { kind: "integer" }),
      column("we`ird col", "string", { kind: "text" }),
    ]),
  );
  assert.deepEqual(rows, [["1", "ok"]]);
  assert.match(
    h.fake.statements.at(-1)!,
    /ELSE `we``ird col` END AS `c1` FROM `main`\.`src`\.`odd``name`$/,
  );
});

Deno.test("DatabricksSql readRows() has the warehouse refuse a value over the limit, before sending it", async () => {
  await using h = await harness();
  const sql = await h.open();
  const extract = extractOf("odd`name", [
    column("x", "int", { kind: "integer" }),
    column("we`ird col", "string", { kind: "text" }),
  ]);
  const error = await rejection(
    sql.readRows(extract, { maxValueBytes: 1 })[Symbol.asyncIterator]().next(),
  );
  assert.ok(error instanceof ValueTooLargeError, String(error));
  assert.deepEqual(error.position, { schema: "src", table: "odd`name", column: "we`ird col" });
  // The warehouse's own failure: raise_error in the SELECT, before the value was sent.
  assert.match(String((error.cause as Error).message), /USER_RAISED_EXCEPTION/);
  assert.deepEqual(await readAll(sql, extract), [["1", "ok"]]);
  assert.equal(h.fake.operations.opened, h.fake.operations.closed);
});

Deno.test("DatabricksSql readRows() yields batches of at most batchRows over several fetches", async (t) => {
  for (const [serverBatch, batchRows] of [[1_000, 333], [300, 2_048], [10_000, 1]] as const) {
    await t.step(`server batches of ${serverBatch}, batchRows ${batchRows}`, async () => {
      await using h = await harness({ fake: { batchRows: serverBatch } });
      const sql = await h.open();
      const rows = batchRows === 1 ? 40 : 2_500;
      const extract = batchRows === 1
        ? extractOf("wide_small", wideExtract("wide_small").table.columns.slice(0, 1))
        : wideExtract("wide_small");
      const batches: CanonicalRow[][] = [];
      for await (const batch of sql.readRows(extract, { batchRows })) {
        batches.push(batch);
        if (batches.flat().length >= rows) break;
      }
      assert.ok(batches.every((b) => b.length >= 1 && b.length <= batchRows), "batch size");
      const flat = batches.flat().slice(0, rows);
      flat.forEach((row, i) => {
        const expected = wideExpected(i + 1);
        assert.deepEqual(row, expected.slice(0, row.length), `row ${i + 1}`);
      });
    });
  }
});

Deno.test("DatabricksSql readRows() rejects a batch size that is not a positive integer", async () => {
  await using h = await harness();
  const sql = await h.open();
  for (const batchRows of [0, -1, 1.5, NaN]) {
    await assert.rejects(readAll(sql, wideExtract("wide_small"), batchRows), RangeError);
  }
});

Deno.test("DatabricksSql readRows() streams 250,000 rows lazily with bounded memory", async () => {
  await using h = await harness({ fake: { batchRows: 2_000 } });
  const sql = await h.open();
  const batchRows = 1_000;
  gc();
  const before = Deno.memoryUsage().heapUsed;
  let peak = before;
  let rows = 0;
  let chars = 0;
  let checkedLaziness = false;
  for await (const batch of sql.readRows(wideExtract("wide_big"), { batchRows })) {
    assert.ok(batch.length <= batchRows);
    for (const row of batch) {
      rows++;
      for (const value of row) chars += value?.length ?? 0;
      if (rows % 50_000 === 0) assert.deepEqual(row, wideExpected(rows));
    }
    if (!checkedLaziness && rows >= 5_000) {
      // The server has generated at most one fetch ahead of what was consumed.
      checkedLaziness = true;
      assert.ok(h.fake.rowsGenerated.get("wide_big")! <= rows + 2_000);
    }
    if (rows % 10_000 === 0) {
      gc();
      peak = Math.max(peak, Deno.memoryUsage().heapUsed);
    }
  }
  assert.equal(rows, BIG_ROWS);
  const growth = peak - before;
  // Buffering the table would cost at least its characters (twice that as UTF-16).
  assert.ok(chars > 15_000_000, `only ${chars} characters were read`);
  assert.ok(growth < 16 * 1024 * 1024, `heap grew by ${(growth / 1048576).toFixed(1)} MiB`);
});

Deno.test("DatabricksSql readRows() stopped early closes the statement; the session stays usable", async () => {
  await using h = await harness({ fake: { batchRows: 1_000 } });
  const sql = await h.open();
  const closedBefore = h.fake.operations.closed;
  for await (const batch of sql.readRows(wideExtract("wide_big"), { batchRows: 500 })) {
    assert.equal(batch.length, 500);
    break;
  }
  assert.equal(h.fake.operations.closed, closedBefore + 1);
  assert.equal(h.fake.operations.opened, h.fake.operations.closed);
  assert.ok(h.fake.rowsGenerated.get("wide_big")! <= 1_000);
  await sql.ping();
  assert.equal((await readAll(sql, wideExtract("wide_small"))).length, 2_500);
});

Deno.test("DatabricksSql reads several tables at once on one session", async () => {
  await using h = await harness({ fake: { batchRows: 700 } });
  const sql = await h.open();
  const a = sql.readRows(wideExtract("wide_small"), { batchRows: 100 })[Symbol.asyncIterator]();
  const first = await a.next();
  assert.equal(first.done, false);
  const [rest, other] = await Promise.all([
    (async () => {
      const rows = [...(first.value as CanonicalRow[])];
      for (let r = await a.next(); !r.done; r = await a.next()) rows.push(...r.value);
      return rows;
    })(),
    readAll(sql, typeCaseExtract(TYPE_CASES[0]!)),
  ]);
  assert.equal(rest.length, 2_500);
  assert.deepEqual(rest[2_499], wideExpected(2_500));
  assert.deepEqual(other, [["1", "true"], ["2", "false"], ["3", null]]);
});

Deno.test("DatabricksSql readRows() of an unknown table fails with the server's message", async () => {
  await using h = await harness();
  const sql = await h.open();
  const error = await rejection(
    readAll(sql, extractOf("no_such", [column("x", "int", { kind: "integer" })])),
  );
  assert.ok(error instanceof SourceUnavailableError, String(error));
  assert.match(
    error.message,
    /^Cannot read table `main`\.`src`\.`no_such` from Databricks: \[TABLE_OR_VIEW_NOT_FOUND\] The table or view `main`\.`src`\.`no_such` cannot be found\./,
  );
  assert.match(error.message, /42P01/);
  assert.ok(!error.message.includes(TOKEN));
  await sql.ping();
  assert.deepEqual(await readAll(sql, typeCaseExtract(TYPE_CASES[0]!)), [
    ["1", "true"],
    ["2", "false"],
    ["3", null],
  ]);
  assert.equal(h.fake.operations.opened, h.fake.operations.closed);
});

Deno.test("DatabricksSql readRows() reports an injected statement failure, then carries on", async () => {
  await using h = await harness();
  const sql = await h.open();
  h.fake.failNextStatement("[DELTA_FILE_NOT_FOUND] A file referenced in the log is gone", "42K03");
  const error = await rejection(readAll(sql, wideExtract("wide_small")));
  assert.ok(error instanceof SourceUnavailableError);
  assert.match(error.message, /\[DELTA_FILE_NOT_FOUND\] A file referenced in the log is gone/);
  assert.match(error.message, /SQLSTATE 42K03/);
  h.fake.failNextStatement("warehouse stopped");
  await assert.rejects(sql.ping(), (e: unknown) => {
    assert.ok(e instanceof SourceUnavailableError);
    assert.match(e.message, /^Cannot query Databricks: warehouse stopped/);
    return true;
  });
  assert.equal((await readAll(sql, wideExtract("wide_small"))).length, 2_500);
});

Deno.test("DatabricksSql cancels a statement that does not finish within the timeout", async () => {
  await using h = await harness({
    fake: { runningPolls: (statement) => statement.includes("wide_small") ? Infinity : 0 },
  });
  const sql = await h.open({ statementTimeoutMs: 400 });
  const started = Date.now();
  const error = await rejection(readAll(sql, wideExtract("wide_small")));
  assert.ok(error instanceof SourceUnavailableError, String(error));
  assert.match(error.message, /took longer than 400 ms/);
  assert.ok(Date.now() - started < 5_000);
  assert.equal(h.fake.operations.cancelled, 1);
  assert.equal(h.fake.executions.at(-1)!.queryTimeoutSeconds, 1);
  await sql.ping();
});

Deno.test("DatabricksSql asks getToken again on later requests (token rollover)", async () => {
  let current = "token-a";
  let calls = 0;
  await using h = await harness({ acceptToken: (t) => t === current });
  const sql = await h.open({
    getToken: () => {
      calls++;
      return Promise.resolve(current);
    },
  });
  await sql.ping();
  const callsBefore = calls;
  current = "token-b"; // the workspace now accepts only the new token
  assert.equal((await readAll(sql, wideExtract("wide_small"))).length, 2_500);
  assert.ok(calls > callsBefore);
  assert.equal(h.server.tokens.at(-1), "token-b");
  assert.ok(h.server.tokens.includes("token-a"));
});

Deno.test("openDatabricksSql() reports a refused or failing token without revealing it", async () => {
  await using h = await harness({ acceptToken: () => false });
  const refused = await rejection(openDatabricksSql(h.options()));
  assert.ok(refused instanceof SourceLoginRefusedError, String(refused));
  assert.equal(refused.message, "The source database refused the login");
  assert.match(
    String(refused.logDetail),
    /^Cannot open a Databricks SQL session on 127\.0\.0\.1:\d+\/sql\/1\.0\/warehouses\/fake: .*401/,
  );
  assert.ok(!String(refused.logDetail).includes(TOKEN));
  assert.ok(!String(refused.stack).includes(TOKEN));
  const failing = await rejection(
    openDatabricksSql(
      h.options({ getToken: () => Promise.reject(new Error("token endpoint down")) }),
    ),
  );
  assert.ok(failing instanceof SourceConnectionError);
  assert.equal(failing.message, "Cannot connect to the source database");
  assert.match(String(failing.logDetail), /token endpoint down/);
  assert.equal(h.fake.sessions.opened, 0);
});

Deno.test("openDatabricksSql() refuses a server whose certificate it cannot verify", async (t) => {
  await using h = await harness();
  const stranger = await makeTestCertificates();
  try {
    for (
      const [label, caCertificates] of [
        ["another CA", [stranger.caCert]],
        ["system roots only", []],
      ] as const
    ) {
      await t.step(label, async () => {
        const error = await rejection(openDatabricksSql(h.options({ caCertificates })));
        assert.ok(error instanceof SourceConnectionError, String(error));
        assert.match(String(error.logDetail), /certificate/i);
      });
    }
    assert.equal(h.fake.sessions.opened, 0);
    assert.deepEqual(h.server.tokens, [], "no token may be sent to an unverified server");
  } finally {
    await removeTestCertificates(stranger);
  }
});

Deno.test("openDatabricksSql() gives up after connectTimeoutMs and on an unreachable host", async () => {
  await using h = await harness({ fake: { runningPolls: Infinity } });
  const slow = await rejection(openDatabricksSql(h.options({ connectTimeoutMs: 300 })));
  assert.ok(slow instanceof SourceConnectionError);
  assert.match(String(slow.logDetail), /took longer than 300 ms/);
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const unreachable = await rejection(
    openDatabricksSql({ ...h.options(), port, connectTimeoutMs: 5_000 }),
  );
  assert.ok(unreachable instanceof SourceConnectionError);
  assert.match(String(unreachable.logDetail), /ECONNREFUSED|refused/i);
});

Deno.test("openDatabricksSql() reports a catalog the warehouse does not have", async () => {
  await using h = await harness();
  const error = await rejection(openDatabricksSql(h.options({ catalog: "nope" })));
  assert.ok(error instanceof SourceConnectionError);
  assert.match(String(error.logDetail), /Catalog 'nope' was not found/);
});

// ---------------------------------------------------------------------------------------------------
// Why the adapter does what it does: the stock driver, against the same fake

Deno.test("the stock driver accepts any certificate and mangles large negative decimals", async () => {
  await using h = await harness();
  const client = new databricks.DBSQLClient({ logger: { log: () => {} } });
  await client.connect({
    host: "127.0.0.1",
    port: h.server.port,
    path: h.server.path,
    token: TOKEN,
    telemetryEnabled: false,
    preserveBigNumericPrecision: true,
  });
  try {
    // No CA was given, yet the self-signed test server is accepted: rejectUnauthorized is false.
    const session = await client.openSession();
    const operation = await session.executeStatement(
      "SELECT v FROM main.src.t_decimal_38_10",
      { useCloudFetch: false, useLZ4Compression: false },
    );
    const values = (await operation.fetchAll()).map((r) => (r as { v: unknown }).v);
    await operation.close();
    await session.close();
    // Native Arrow DECIMAL through the driver: the negative 38-digit value comes back wrong.
    assert.equal(values[0], "9999999999999999999999999999.9999999999");
    assert.notEqual(values[1], "-9999999999999999999999999999.9999999999");
    assert.equal(values[5], "-12.5000000000");
  } finally {
    await client.close();
  }
});

// ---------------------------------------------------------------------------------------------------
// Pure functions

Deno.test("databricksSelectExpression() converts lossy kinds on the server", () => {
  const cases: [string, LogicalType, string][] = [
    ["boolean", { kind: "boolean" }, "`c`"],
    ["tinyint", { kind: "smallint" }, "`c`"],
    ["int", { kind: "integer" }, "`c`"],
    ["bigint", { kind: "bigint" }, "`c`"],
    ["float", { kind: "real" }, "`c`"],
    ["double", { kind: "double" }, "`c`"],
    ["binary", { kind: "binary" }, "`c`"],
    ["decimal(38,10)", { kind: "decimal", precision: 38, scale: 10 }, "CAST(`c` AS STRING)"],
    ["date", { kind: "date" }, "unix_date(`c`)"],
    ["timestamp", { kind: "timestamptz" }, "unix_micros(CAST(`c` AS TIMESTAMP))"],
    ["timestamp_ntz", { kind: "timestamp" }, "unix_micros(CAST(`c` AS TIMESTAMP))"],
    ["array<int>", { kind: "json" }, "to_json(`c`)"],
    ["variant", { kind: "json" }, "to_json(`c`)"],
    ["string", { kind: "text" }, "`c`"],
    ["varchar(10)", { kind: "text" }, "`c`"],
    ["CHAR(3)", { kind: "text" }, "`c`"],
    ["interval day to second", { kind: "text" }, "CAST(`c` AS STRING)"],
    ["geography(4326)", { kind: "text" }, "CAST(`c` AS STRING)"],
  ];
  for (const [dataType, logicalType, expected] of cases) {
    assert.equal(
      databricksSelectExpression({ name: "c", dataType, logicalType }),
      expected,
      dataType,
    );
  }
  assert.equal(quoteDatabricksIdentifier("a`b"), "`a``b`");
  assert.equal(
    databricksReadQuery("c`at", extractOf("t", [column("x", "int", { kind: "integer" })], "s")),
    "SELECT `x` AS `c0` FROM `c``at`.`s`.`t`",
  );
  assert.throws(() => databricksReadQuery("c", extractOf("t", [])), RangeError);
});

Deno.test("normalizeDecimal() writes Spark's decimal text with the declared scale", async (t) => {
  const cases: [string, number | undefined, string][] = [
    ["12.30", 2, "12.30"],
    ["0E-10", 10, "0.0000000000"],
    ["1E-10", 10, "0.0000000001"],
    ["-1.5E-7", 10, "-0.0000001500"],
    ["1E+3", 0, "1000"],
    ["1.23E+5", 2, "123000.00"],
    ["-0.00", 2, "0.00"],
    ["12.3", 10, "12.3000000000"],
    ["-9999999999999999999999999999.9999999999", 10, "-9999999999999999999999999999.9999999999"],
    ["1.23456", 2, "1.23456"],
    ["0005.5", undefined, "5.5"],
    ["NaN", 2, "NaN"],
  ];
  for (const [text, scale, expected] of cases) {
    await t.step(`${text} at scale ${scale}`, () => {
      assert.equal(normalizeDecimal(text, scale), expected);
    });
  }
});

Deno.test("databricksCanonicalConverter() formats days and microseconds exactly", () => {
  const date = databricksCanonicalConverter({ logicalType: { kind: "date" } });
  assert.equal(date(0), "1970-01-01");
  assert.equal(date(-719_162), "0001-01-01");
  assert.equal(date(-719_163), "0001-12-31 BC");
  assert.equal(date(2_932_896), "9999-12-31");
  const tz = databricksCanonicalConverter({ logicalType: { kind: "timestamptz" } });
  assert.equal(tz(0n), "1970-01-01 00:00:00+00");
  assert.equal(tz(-1n), "1969-12-31 23:59:59.999999+00");
  assert.equal(tz(1_577_836_801_120_000n), "2020-01-01 00:00:01.12+00");
  const ntz = databricksCanonicalConverter({ logicalType: { kind: "timestamp" } });
  assert.equal(ntz(-62_135_596_800_000_001n), "0001-12-31 23:59:59.999999 BC");
  const bin = databricksCanonicalConverter({ logicalType: { kind: "binary" } });
  assert.equal(bin(new Uint8Array([0xab, 0x01])), "\\xab01");
  const real = databricksCanonicalConverter({ logicalType: { kind: "real" } });
  assert.equal(real(Math.fround(0.1)), "0.1");
});
