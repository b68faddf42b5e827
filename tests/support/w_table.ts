/**
 * Test tables shared by the source adapters' tests:
 *
 * - **W** ("wide"), the benchmark's 13-column table (`sources-and-benchmark.md` §F.3), generated in
 *   PostgreSQL with `generate_series` and written into MySQL/MariaDB, SQL Server and Databricks (the
 *   fakes' stored forms: `fake_tds_w_process.ts`, `fake_databricks_w.ts`) with the same values.
 *   {@link wExpectedRow} computes every row's canonical text independently of any database, so tests
 *   assert exact strings, and every engine is compared with it.
 * - **EDGE**, one row per edge value (NULL against `''`, CSV-hostile text, extreme numbers, dates and
 *   times at the ends of their ranges, ...), each with its exact expected canonical text. Rows that only
 *   some engines can hold are marked with `only` (and `except`); types that only one engine has get
 *   columns of their own ({@link EDGE_ENGINE_COLUMNS}).
 *
 * @module
 */
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import type { Connection } from "mysql2/promise";
import type { Sql } from "postgres";
import type { CatalogColumn, CatalogTable } from "../../domain/catalog.ts";
import {
  type CanonicalRow,
  formatDouble,
  type LogicalType,
  parseBinary,
} from "../../domain/logical_type.ts";
import type { DatabricksColumnType } from "../../adapters/databricks/databricks_dialect.ts";
import { quoteMssqlIdentifier as quoteMssql } from "../../adapters/mssql/mssql_dialect.ts";
import { quoteMysql, quotePostgres } from "./databases.ts";

/** A database engine the test tables exist for. */
export type Engine = "postgres" | "mysql" | "mssql" | "databricks";

/** One column of a test table, in every dialect. */
export interface TestColumn {
  readonly name: string;
  /** The PostgreSQL column type, as written in DDL. */
  readonly postgres: string;
  /** What PostgreSQL's `format_type` reports for it. */
  readonly postgresType: string;
  /** The MySQL/MariaDB column type, as written in DDL. */
  readonly mysql: string;
  /** The SQL Server column type, as written in DDL (without NULL / NOT NULL). */
  readonly mssql: string;
  /**
   * The Databricks column as Unity Catalog describes it (`ColumnInfo.type_name` and `type_text`).
   * Databricks has no UUID, TIME or JSON type: those columns are STRINGs holding the text.
   */
  readonly databricks: DatabricksColumnType;
  readonly logicalType: LogicalType;
  /** The logical type of the MySQL column, when it differs. */
  readonly mysqlLogicalType?: LogicalType;
  /** The logical type of the SQL Server column, when it differs. */
  readonly mssqlLogicalType?: LogicalType;
  /** The logical type of the Databricks column, when it differs. */
  readonly databricksLogicalType?: LogicalType;
}

/** The logical type a column has in one engine. */
export function logicalTypeIn(column: TestColumn, engine: Engine): LogicalType {
  switch (engine) {
    case "mysql":
      return column.mysqlLogicalType ?? column.logicalType;
    case "mssql":
      return column.mssqlLogicalType ?? column.logicalType;
    case "databricks":
      return column.databricksLogicalType ?? column.logicalType;
    default:
      return column.logicalType;
  }
}

// ---------------------------------------------------------------------------------------------------
// W

/** The W table's columns, in order; `id` is the primary key. */
export const W_COLUMNS: readonly TestColumn[] = [
  col("id", "bigint", "bigint", "BIGINT NOT NULL", "bigint", ["LONG", "bigint"], {
    kind: "bigint",
  }),
  col("i", "int", "integer", "INT", "int", ["INT", "int"], { kind: "integer" }),
  col("s", "smallint", "smallint", "SMALLINT", "smallint", ["SHORT", "smallint"], {
    kind: "smallint",
  }),
  col(
    "amount",
    "numeric(18,2)",
    "numeric(18,2)",
    "DECIMAL(18,2)",
    "decimal(18,2)",
    ["DECIMAL", "decimal(18,2)"],
    { kind: "decimal", precision: 18, scale: 2 },
  ),
  col(
    "price",
    "numeric(38,10)",
    "numeric(38,10)",
    "DECIMAL(38,10)",
    "decimal(38,10)",
    ["DECIMAL", "decimal(38,10)"],
    { kind: "decimal", precision: 38, scale: 10 },
  ),
  col("ratio", "double precision", "double precision", "DOUBLE", "float", ["DOUBLE", "double"], {
    kind: "double",
  }),
  col("flag", "boolean", "boolean", "BOOLEAN", "bit", ["BOOLEAN", "boolean"], { kind: "boolean" }),
  col(
    "created_at",
    "timestamptz",
    "timestamp with time zone",
    "TIMESTAMP(6) NULL DEFAULT NULL",
    "datetimeoffset(7)",
    ["TIMESTAMP", "timestamp"],
    { kind: "timestamptz" },
  ),
  col("d", "date", "date", "DATE", "date", ["DATE", "date"], { kind: "date" }),
  // Unity Catalog reports a VARCHAR(n) column as a STRING whose type_text keeps the length.
  col(
    "code",
    "varchar(20)",
    "character varying(20)",
    "VARCHAR(20)",
    "varchar(20)",
    ["STRING", "varchar(20)"],
    { kind: "text" },
  ),
  col("txt", "text", "text", "TEXT", "nvarchar(max)", ["STRING", "string"], { kind: "text" }),
  col("maybe", "text", "text", "TEXT", "varchar(max)", ["STRING", "string"], { kind: "text" }),
  // MariaDB's UUID type refuses a quarter of these md5-made values (see EDGE_CASES), so text there;
  // Databricks has no UUID type, so a STRING holding the lower-case text.
  col(
    "u",
    "uuid",
    "uuid",
    "CHAR(36) CHARACTER SET ascii",
    "uniqueidentifier",
    ["STRING", "string"],
    { kind: "uuid" },
    { mysql: { kind: "text" }, databricks: { kind: "text" } },
  ),
];

/** The W table's default name. */
export const W_TABLE = "wide";

/**
 * DDL that creates the W table in PostgreSQL and fills it with `rows` rows (ids 1..rows), exactly as
 * §F.3 does. `$s` stands for the quoted schema, as in `PostgresSandbox.createSchema`.
 */
export function wPostgresSql(rows: number, table: string = W_TABLE): string {
  const t = `$s.${quotePostgres(table)}`;
  return `
    create table ${t} (${W_COLUMNS.map((c) => `${c.name} ${c.postgres}`).join(", ")},
      primary key (id));
    insert into ${t}
    select g, (g*7)%100000, (g%30000)::smallint, round((g*1.37)::numeric % 1000000, 2),
      (g::numeric * 3.1415926535) / 7, g/3.0, g%2=0,
      timestamptz '2020-01-01 00:00:00+00' + g * interval '1 second',
      date '2000-01-01' + (g % 9000), 'C' || lpad((g%99999)::text, 8, '0'),
      md5(g::text) || ' ' || (g%1000)::text,
      case when g%2=0 then null else 'v' || g end, md5(g::text)::uuid
    from generate_series(1, ${Math.trunc(rows)}) g;
    analyze ${t};`;
}

/** DDL that creates the (empty) W table in MySQL/MariaDB; `$s` stands for the quoted database. */
export function wMysqlDdl(table: string = W_TABLE): string {
  return `CREATE TABLE $s.${quoteMysql(table)} (${
    W_COLUMNS.map((c) => `${quoteMysql(c.name)} ${c.mysql}`).join(", ")
  }, PRIMARY KEY (id)) DEFAULT CHARSET = utf8mb4`;
}

/**
 * Fills the W table in MySQL/MariaDB with rows 1..rows of {@link wExpectedRow}, 1,000 rows per
 * INSERT, in a UTC session. The table must exist ({@link wMysqlDdl}).
 */
export async function fillWMysql(
  admin: Connection,
  database: string,
  rows: number,
  table: string = W_TABLE,
): Promise<void> {
  await admin.query("SET time_zone = '+00:00'");
  const target = `${quoteMysql(database)}.${quoteMysql(table)}`;
  for (let start = 1; start <= rows; start += 1_000) {
    const values: unknown[][] = [];
    for (let id = start; id <= Math.min(rows, start + 999); id++) {
      values.push(
        wExpectedRow(id).map((v, i) => mysqlInput(logicalTypeIn(W_COLUMNS[i]!, "mysql"), v)),
      );
    }
    await admin.query(`INSERT INTO ${target} VALUES ?`, [values]);
  }
}

/** DDL that creates the (empty) W table in SQL Server; `$s` stands for the bracketed schema. */
export function wMssqlDdl(table: string = W_TABLE): string {
  return `CREATE TABLE $s.${quoteMssql(table)} (${
    W_COLUMNS.map((c) => `${quoteMssql(c.name)} ${c.mssql}${c.name === "id" ? " NOT NULL" : ""}`)
      .join(", ")
  }, PRIMARY KEY (id))`;
}

/** W row `id` as SQL Server stores it (see {@link mssqlStored}), for the fake TDS server. */
export function wMssqlRow(id: number): (string | number | boolean | null)[] {
  return wExpectedRow(id).map((v, i) => mssqlStored(logicalTypeIn(W_COLUMNS[i]!, "mssql"), v));
}

/** The W table as a catalogue table (PostgreSQL's type names), for fakes. */
export function wCatalogTable(table: string = W_TABLE): CatalogTable {
  return catalogTable(table, W_COLUMNS, ["id"]);
}

/**
 * The canonical text of W row `id`, computed without a database: exact integer arithmetic for the
 * numerics, and for `ratio` PostgreSQL's own steps (`g/3.0` is numeric division, rounded half away from
 * zero to the scale PostgreSQL picks for it, then read as a double). Written for speed (about 2 µs a
 * row), since the benchmark's fake SQL Server generates W with it; `w_table_test.ts` checks it against a
 * plain BigInt transcription of the SQL.
 */
export function wExpectedRow(id: number): CanonicalRow {
  const md5 = createHash("md5").update(String(id)).digest("hex");
  const cents = (id * 137) % 100_000_000;
  return [
    String(id),
    String((id * 7) % 100_000),
    String(id % 30_000),
    `${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, "0")}`,
    wPrice(id),
    formatDouble(Number(pgDivideByThree(id))),
    id % 2 === 0 ? "true" : "false",
    `${utcText(SECONDS_2020 + id)}+00`,
    utcText((DAYS_2000 + (id % 9_000)) * 86_400).slice(0, 10),
    `C${String(id % 99_999).padStart(8, "0")}`,
    `${md5} ${id % 1_000}`,
    id % 2 === 0 ? null : `v${id}`,
    `${md5.slice(0, 8)}-${md5.slice(8, 12)}-${md5.slice(12, 16)}-${md5.slice(16, 20)}-${
      md5.slice(20)
    }`,
  ];
}

/** Rows 1..rows of {@link wExpectedRow}. */
export function wExpectedRows(rows: number): CanonicalRow[] {
  return Array.from({ length: rows }, (_, i) => wExpectedRow(i + 1));
}

/**
 * `(g * 3.1415926535) / 7` at scale 10. 31415926535 = 7 × 4487989505, so the quotient is exactly
 * g × 4487989505 units of 10^-10 (no rounding happens); plain numbers are exact below 2^53.
 */
function wPrice(id: number): string {
  const units = id <= 2_000_000 ? String(id * 4_487_989_505) : String(BigInt(id) * 4_487_989_505n);
  const digits = units.padStart(11, "0");
  return `${digits.slice(0, -10)}.${digits.slice(-10)}`;
}

/**
 * `g/3.0` as PostgreSQL's numeric division computes it (`select_div_scale` in `numeric.c`): at least 16
 * significant digits, from the quotient's estimated weight in base-10000 digits, rounded half away from
 * zero. A third's decimal digits repeat, so the fraction is written out directly: `.000…`, `.333…` or
 * `.666…7`.
 */
export function pgDivideByThree(g: number): string {
  let weight1 = 0;
  let first1 = g;
  while (first1 >= 10_000) {
    first1 = Math.floor(first1 / 10_000);
    weight1++;
  }
  let qweight = weight1; // the divisor 3.0 has weight 0 and first digit 3
  if (first1 <= 3) qweight--;
  const scale = Math.min(Math.max(16 - qweight * 4, 1), 1_000);
  const remainder = g % 3;
  const fraction = remainder === 0
    ? "0".repeat(scale)
    : remainder === 1
    ? "3".repeat(scale)
    : `${"6".repeat(scale - 1)}7`;
  return `${Math.floor(g / 3)}.${fraction}`;
}

/** 2020-01-01 00:00:00 UTC and 2000-01-01 in seconds and days from 1970. */
const SECONDS_2020 = 1_577_836_800;
const DAYS_2000 = 10_957;

/** `YYYY-MM-DD HH:MM:SS` of a count of seconds from 1970 (UTC), years 1 to 9999. */
function utcText(seconds: number): string {
  const days = Math.floor(seconds / 86_400);
  let rest = seconds - days * 86_400;
  // Days to the civil date (H. Hinnant's algorithm).
  const z = days + 719_468;
  const era = Math.floor(z / 146_097);
  const doe = z - era * 146_097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1_460) + Math.floor(doe / 36_524) - Math.floor(doe / 146_096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const day = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const month = mp < 10 ? mp + 3 : mp - 9;
  const year = yoe + era * 400 + (month <= 2 ? 1 : 0);
  const hours = Math.floor(rest / 3_600);
  rest -= hours * 3_600;
  const minutes = Math.floor(rest / 60);
  return `${String(year).padStart(4, "0")}-${two(month)}-${two(day)} ${two(hours)}:${
    two(minutes)
  }:${two(rest - minutes * 60)}`;
}

function two(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

// ---------------------------------------------------------------------------------------------------
// EDGE

/** The edge table's columns, in order; `id` is the primary key. Every other column is nullable. */
export const EDGE_COLUMNS: readonly TestColumn[] = [
  col("id", "integer", "integer", "INT NOT NULL", "int", ["INT", "int"], { kind: "integer" }),
  col("t", "text", "text", "TEXT", "nvarchar(max)", ["STRING", "string"], { kind: "text" }),
  col(
    "n",
    "numeric(38,10)",
    "numeric(38,10)",
    "DECIMAL(38,10)",
    "decimal(38,10)",
    ["DECIMAL", "decimal(38,10)"],
    { kind: "decimal", precision: 38, scale: 10 },
  ),
  col("f8", "double precision", "double precision", "DOUBLE", "float", ["DOUBLE", "double"], {
    kind: "double",
  }),
  col("f4", "real", "real", "FLOAT", "real", ["FLOAT", "float"], { kind: "real" }),
  col("i2", "smallint", "smallint", "SMALLINT", "smallint", ["SHORT", "smallint"], {
    kind: "smallint",
  }),
  col("i4", "integer", "integer", "INT", "int", ["INT", "int"], { kind: "integer" }),
  col("i8", "bigint", "bigint", "BIGINT", "bigint", ["LONG", "bigint"], { kind: "bigint" }),
  col(
    "ts",
    "timestamp(6)",
    "timestamp(6) without time zone",
    "DATETIME(6)",
    "datetime2(7)",
    ["TIMESTAMP_NTZ", "timestamp_ntz"],
    { kind: "timestamp" },
  ),
  col(
    "tz",
    "timestamptz(6)",
    "timestamp(6) with time zone",
    "TIMESTAMP(6) NULL DEFAULT NULL",
    "datetimeoffset(7)",
    ["TIMESTAMP", "timestamp"],
    { kind: "timestamptz" },
  ),
  col("d", "date", "date", "DATE", "date", ["DATE", "date"], { kind: "date" }),
  // Databricks has no TIME, UUID or JSON type: STRINGs holding the text stand in for them.
  col("tm", "time(6)", "time(6) without time zone", "TIME(6)", "time(7)", ["STRING", "string"], {
    kind: "time",
  }, { databricks: { kind: "text" } }),
  col("u", "uuid", "uuid", "UUID", "uniqueidentifier", ["STRING", "string"], { kind: "uuid" }, {
    databricks: { kind: "text" },
  }),
  col("b", "boolean", "boolean", "BOOLEAN", "bit", ["BOOLEAN", "boolean"], { kind: "boolean" }),
  col("bin", "bytea", "bytea", "VARBINARY(255)", "varbinary(max)", ["BINARY", "binary"], {
    kind: "binary",
  }),
  // SQL Server 2022 has no JSON type: JSON lives in nvarchar(max), which is text.
  col("j", "jsonb", "jsonb", "JSON", "nvarchar(max)", ["STRING", "string"], { kind: "json" }, {
    mssql: { kind: "text" },
    databricks: { kind: "text" },
  }),
];

/** A column that only one engine's edge table has, for a type no other engine has. */
export interface EngineEdgeColumn {
  readonly engine: Engine;
  readonly name: string;
  /** The column type, as written in that engine's DDL (for Databricks, Unity Catalog's `type_text`). */
  readonly type: string;
  /** Databricks only: Unity Catalog's `type_name` of the column. */
  readonly typeName?: string;
  readonly logicalType: LogicalType;
}

/** The engine-only columns, after {@link EDGE_COLUMNS} in this order. */
export const EDGE_ENGINE_COLUMNS: readonly EngineEdgeColumn[] = [
  { engine: "mssql", name: "i1", type: "tinyint", logicalType: { kind: "smallint" } },
  {
    engine: "mssql",
    name: "m",
    type: "money",
    logicalType: { kind: "decimal", precision: 19, scale: 4 },
  },
  {
    engine: "mssql",
    name: "sm",
    type: "smallmoney",
    logicalType: { kind: "decimal", precision: 10, scale: 4 },
  },
  { engine: "mssql", name: "dt", type: "datetime", logicalType: { kind: "timestamp" } },
  { engine: "mssql", name: "sdt", type: "smalldatetime", logicalType: { kind: "timestamp" } },
  // Databricks: the signed tinyint, decimals at the ends of Spark's range, CHAR(n), and the complex
  // types, which the source reads as the JSON text Spark's to_json writes.
  ...([
    ["tiny", "BYTE", "tinyint", { kind: "smallint" }],
    ["n0", "DECIMAL", "decimal(38,0)", { kind: "decimal", precision: 38, scale: 0 }],
    ["n38", "DECIMAL", "decimal(38,38)", { kind: "decimal", precision: 38, scale: 38 }],
    ["ch", "CHAR", "char(5)", { kind: "text" }],
    ["arr", "ARRAY", "array<bigint>", { kind: "json" }],
    ["sarr", "ARRAY", "array<string>", { kind: "json" }],
    ["mp", "MAP", "map<string,double>", { kind: "json" }],
    [
      "st",
      "STRUCT",
      "struct<i:int,s:string,d:decimal(38,10),b:binary,ts:timestamp,dt:date,ok:boolean>",
      { kind: "json" },
    ],
    ["nest", "ARRAY", "array<struct<k:string,v:map<string,array<int>>>>", { kind: "json" }],
  ] as const).map(([name, typeName, type, logicalType]): EngineEdgeColumn => ({
    engine: "databricks",
    name,
    type,
    typeName,
    logicalType,
  })),
];

/** The edge table's columns in one engine, with their logical types there (`any`: every column). */
export function edgeColumnsFor(
  engine: Engine | "any",
): { readonly name: string; readonly logicalType: LogicalType }[] {
  return [
    ...EDGE_COLUMNS.map((c) => ({
      name: c.name,
      logicalType: engine === "any" ? c.logicalType : logicalTypeIn(c, engine),
    })),
    ...EDGE_ENGINE_COLUMNS.filter((c) => engine === "any" || c.engine === engine),
  ];
}

/** The edge table's default name. */
export const EDGE_TABLE = "edge";

/** One edge value: a row of the edge table with this column set and every other column NULL. */
export interface EdgeCase {
  readonly id: number;
  /** The column that holds the value. */
  readonly column: string;
  /** What the case is about, for assertion messages. */
  readonly label: string;
  /** The exact canonical text every adapter must produce (`null` for SQL NULL). */
  readonly expected: string | null;
  /** What to insert, when it differs from `expected` (the canonical text is valid input otherwise). */
  readonly input?: string;
  /** Set when only these engines can hold the value; `note` says why. */
  readonly only?: Engine | readonly Engine[];
  /** Set when these engines cannot hold a value the others hold; `note` says why. */
  readonly except?: readonly Engine[];
  readonly note?: string;
}

/** Whether an engine holds an edge case. */
export function edgeCaseHeldBy(c: EdgeCase, engine: Engine): boolean {
  const only = c.only === undefined ? undefined : typeof c.only === "string" ? [c.only] : c.only;
  return (only === undefined || only.includes(engine)) && !(c.except ?? []).includes(engine);
}

/** 20,000 bytes 00 01 … ff 00 01 …, as canonical binary text. */
const LONG_BYTES = `\\x${
  Array.from({ length: 20_000 }, (_, i) => (i % 256).toString(16).padStart(2, "0")).join("")
}`;

function catalogTable(
  name: string,
  columns: readonly TestColumn[],
  primaryKey: readonly string[],
): CatalogTable {
  return {
    name,
    kind: "table",
    description: null,
    columns: columns.map((c): CatalogColumn => ({
      name: c.name,
      dataType: c.postgresType,
      logicalType: c.logicalType,
      nullable: !primaryKey.includes(c.name),
      description: null,
    })),
    primaryKey,
  };
}

type CaseSpec = [label: string, expected: string | null, extra?: Partial<EdgeCase>];

const CASES: Record<string, CaseSpec[]> = {
  t: [
    ["NULL", null],
    ["empty string", ""],
    ["comma", "a,b"],
    ["double quotes", 'say "hi"'],
    ["carriage return", "cr\rhere"],
    ["line feed", "lf\nhere"],
    ["CRLF", "crlf\r\nhere"],
    ["tab", "tab\there"],
    ["backslash", "back\\slash"],
    ["lone backslash-dot", "\\."],
    ["backslash-N", "\\N"],
    ["the word NULL", "NULL"],
    ["leading and trailing spaces", "  padded  "],
    ["emoji and other non-BMP characters", "😀 emoji and 𝄞 clef"],
    ["combining character", "e\u0301 vs \u00e9"],
    ["right-to-left text", "שלום عالم"],
    ["every CSV special at once", ' ,"\r\n" '],
    ["long text", "x".repeat(10_000)],
    [
      "long text of non-BMP characters, split across PLP chunks",
      `${"😀".repeat(5_000)}end`,
      { only: "mssql", note: "a PLP value of nvarchar(max); the others' texts are covered above" },
    ],
    ["a NUL character", "a\u0000b", {
      only: "databricks",
      note: "PostgreSQL's text refuses U+0000; Spark's STRING holds any character",
    }],
  ],
  n: [
    ["decimal(38,10) max", "9999999999999999999999999999.9999999999"],
    ["decimal(38,10) min", "-9999999999999999999999999999.9999999999"],
    ["smallest negative", "-0.0000000001"],
    ["zero keeps its scale", "0.0000000000", { input: "0" }],
    ["scale is padded", "12.3000000000", { input: "12.3" }],
    ["NaN", "NaN", { only: "postgres", note: "MySQL DECIMAL has no NaN" }],
  ],
  f8: [
    ["0.1 + 0.2", "0.30000000000000004"],
    ["0.1", "0.1"],
    ["1e15 switches to exponent form", "1e+15", { input: "1e15" }],
    ["just below 1e15", "999999999999999"],
    ["1e-5 switches to exponent form", "1e-05", { input: "0.00001" }],
    ["0.0001 stays positional", "0.0001"],
    ["pi", "3.141592653589793"],
    ["negative", "-1.5"],
    ["zero", "0"],
    ["max double", "1.7976931348623157e+308"],
    ["min double", "-1.7976931348623157e+308"],
    ["smallest normal", "2.2250738585072014e-308"],
    ["smallest denormal", "5e-324", {
      except: ["mssql"],
      note: "SQL Server's float range starts at 2.23E-308 (no subnormals documented)",
    }],
    ["1e100", "1e+100"],
    ["negative zero", "-0", {
      only: ["postgres", "databricks"],
      note: "MariaDB stores -0 as 0",
    }],
    ["NaN", "NaN", {
      only: ["postgres", "databricks"],
      note: "MySQL DOUBLE and SQL Server float have no NaN",
    }],
    ["Infinity", "Infinity", {
      only: ["postgres", "databricks"],
      note: "MySQL DOUBLE and SQL Server float have no infinities",
    }],
    ["-Infinity", "-Infinity", {
      only: ["postgres", "databricks"],
      note: "MySQL DOUBLE and SQL Server float have no infinities",
    }],
  ],
  f4: [
    ["0.1 as float", "0.1"],
    ["exponent 6 stays positional", "1234567"],
    ["exponent 14 stays positional", "123456790000000", { input: "123456789012345" }],
    ["1e15 as float", "1e+15", { input: "1e15" }],
    ["2^24 + 1 rounds to 2^24", "16777216", { input: "16777217" }],
    ["max float", "3.4028235e+38", { input: "3.4028234e38" }],
    ["smallest denormal float", "1e-45", {
      input: "1.4e-45",
      except: ["mssql"],
      note: "SQL Server's real range starts at 1.18E-38 (no subnormals documented)",
    }],
    ["negative", "-2.5"],
    ["NaN", "NaN", {
      only: ["postgres", "databricks"],
      note: "MySQL FLOAT and SQL Server real have no NaN",
    }],
    ["Infinity", "Infinity", {
      only: ["postgres", "databricks"],
      note: "MySQL FLOAT and SQL Server real have no infinities",
    }],
  ],
  i2: [["smallint min", "-32768"], ["smallint max", "32767"], ["zero", "0"]],
  i4: [["integer min", "-2147483648"], ["integer max", "2147483647"]],
  i8: [["bigint min", "-9223372036854775808"], ["bigint max", "9223372036854775807"]],
  ts: [
    ["microseconds", "2020-01-01 00:00:00.123456"],
    ["trailing zeros trimmed", "2020-01-01 00:00:00.1", { input: "2020-01-01 00:00:00.100000" }],
    ["1900", "1900-01-01 00:00:00"],
    ["just before 1970", "1969-12-31 23:59:59.999999"],
    ["leap day", "2000-02-29 12:00:00"],
    ["after 2038", "2100-01-01 00:00:00"],
    ["year 1", "0001-01-01 00:00:00"],
    ["year 9999", "9999-12-31 23:59:59.999999"],
    ["BC", "0044-03-15 12:00:00 BC", {
      only: ["postgres", "databricks"],
      note: "MySQL and SQL Server have no BC dates",
    }],
    ["infinity", "infinity", { only: "postgres", note: "MySQL has no infinite datetimes" }],
    ["the last microsecond of a Spark timestamp", "294247-01-10 04:00:54.775807", {
      only: "databricks",
      note: "Spark's TIMESTAMP_NTZ is any 64-bit count of microseconds; the others end at 9999",
    }],
    ["the first microsecond of a Spark timestamp", "290309-12-21 19:59:05.224192 BC", {
      only: "databricks",
      note:
        "Spark's TIMESTAMP_NTZ is any 64-bit count of microseconds (PostgreSQL starts at 4714 BC)",
    }],
    ["100-nanosecond ticks", "2020-01-01 00:00:00.1234567", {
      only: "mssql",
      note: "datetime2(7) holds 100 ns; the others hold microseconds",
    }],
    ["the last tick of a year", "2020-12-31 23:59:59.9999999", {
      only: "mssql",
      note: "datetime2(7) holds 100 ns; the others hold microseconds",
    }],
    ["the last tick of year 9999", "9999-12-31 23:59:59.9999999", {
      only: "mssql",
      note: "datetime2(7) holds 100 ns; the others hold microseconds",
    }],
  ],
  tz: [
    ["microseconds", "2020-01-01 00:00:01.123456+00"],
    ["MySQL TIMESTAMP minimum", "1970-01-01 00:00:01+00"],
    ["MySQL TIMESTAMP maximum", "2038-01-19 03:14:07.999999+00"],
    ["another offset becomes UTC", "2020-06-01 10:00:00+00", {
      input: "2020-06-01 12:00:00+02",
      only: ["postgres", "mssql", "databricks"],
      note: "MySQL TIMESTAMP input takes no offset; covered by a MySQL test with a +02:00 session",
    }],
    ["1900", "1900-01-01 00:00:00+00", {
      only: ["postgres", "mssql", "databricks"],
      note: "MySQL TIMESTAMP starts at 1970-01-01 00:00:01 UTC",
    }],
    ["just before 1970", "1969-12-31 23:59:59.999999+00", {
      only: ["postgres", "mssql", "databricks"],
      note: "MySQL TIMESTAMP starts at 1970-01-01 00:00:01 UTC",
    }],
    ["after 2038", "2100-01-01 00:00:00+00", {
      only: ["postgres", "mssql", "databricks"],
      note: "MariaDB 10.11 TIMESTAMP ends at 2038-01-19 03:14:07 UTC",
    }],
    ["infinity", "infinity", { only: "postgres", note: "MySQL has no infinite timestamps" }],
    ["a negative offset with 100 ns ticks crosses midnight", "2021-01-01 05:00:00.1234567+00", {
      input: "2020-12-31 23:30:00.1234567-05:30",
      only: "mssql",
      note: "datetimeoffset(7) keeps 100 ns and the offset (SWITCHOFFSET makes it UTC)",
    }],
    ["a +14:00 offset goes back a day", "2020-12-31 11:00:00+00", {
      input: "2021-01-01 01:00:00+14:00",
      only: "mssql",
      note: "MySQL TIMESTAMP input takes no offset; PostgreSQL's is covered by the +02 case",
    }],
    ["the last tick of year 9999 in UTC", "9999-12-31 23:59:59.9999999+00", {
      only: "mssql",
      note: "datetimeoffset(7) holds 100 ns; the others hold microseconds",
    }],
    ["the last microsecond of a Spark timestamp", "294247-01-10 04:00:54.775807+00", {
      only: "databricks",
      note: "Spark's TIMESTAMP is any 64-bit count of microseconds; the others end at 9999",
    }],
    ["the first microsecond of a Spark timestamp", "290309-12-21 19:59:05.224192+00 BC", {
      only: "databricks",
      note: "Spark's TIMESTAMP is any 64-bit count of microseconds (PostgreSQL starts at 4714 BC)",
    }],
  ],
  d: [
    ["year 1", "0001-01-01"],
    ["year 9999", "9999-12-31"],
    ["epoch", "1970-01-01"],
    ["just before 1970", "1969-12-31"],
    ["leap day", "2000-02-29"],
    ["BC", "0044-03-15 BC", {
      only: ["postgres", "databricks"],
      note: "MySQL and SQL Server have no BC dates",
    }],
    ["infinity", "infinity", { only: "postgres", note: "MySQL has no infinite dates" }],
    ["-infinity", "-infinity", { only: "postgres", note: "MySQL has no infinite dates" }],
    ["the last day of a Spark date", "5881580-07-11", {
      only: "databricks",
      note: "Spark's DATE is any 32-bit count of days; PostgreSQL's ends in 5874897",
    }],
    ["the first day of a Spark date", "5877642-06-23 BC", {
      only: "databricks",
      note: "Spark's DATE is any 32-bit count of days; PostgreSQL's starts in 4714 BC",
    }],
  ],
  tm: [
    ["midnight", "00:00:00"],
    ["last microsecond", "23:59:59.999999"],
    ["trailing zeros trimmed", "12:00:00.1", {
      input: "12:00:00.100000",
      except: ["databricks"],
      note: "Databricks has no TIME type: the STRING standing in for it keeps the text as written",
    }],
    ["24:00", "24:00:00", { only: "postgres", note: "MySQL TIME has no 24:00 (but wider ranges)" }],
    ["MySQL TIME maximum", "838:59:59", { only: "mysql", note: "PostgreSQL time ends at 24:00" }],
    ["negative MySQL TIME", "-838:59:59", {
      only: "mysql",
      note: "PostgreSQL time is never negative",
    }],
    ["the last tick of a day", "23:59:59.9999999", {
      only: "mssql",
      note: "time(7) holds 100 ns; the others hold microseconds",
    }],
  ],
  u: [
    ["nil uuid", "00000000-0000-0000-0000-000000000000"],
    ["max uuid", "ffffffff-ffff-ffff-ffff-ffffffffffff"],
    ["upper-case input", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", {
      input: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
      except: ["databricks"],
      note: "Databricks has no UUID type: the STRING standing in for it keeps the case as written",
    }],
    ["version 8 or more with variant 0 (md5(3)::uuid)", "eccbc87e-4b5c-e2fe-2830-8fd9f2a7baf3", {
      only: ["postgres", "mssql", "databricks"],
      note: "MariaDB's UUID type refuses a version nibble of 8 or more unless the variant nibble " +
        "is 8 or more as well; PostgreSQL's uuid takes any 128 bits",
    }],
  ],
  b: [["true", "true"], ["false", "false"]],
  bin: [
    ["empty bytes", "\\x"],
    ["0x00", "\\x00"],
    ["0xff", "\\xff"],
    ["0x00 0xff", "\\x00ff"],
    ["bytes around the ends", "\\x000102fdfeff"],
    ["the bytes of backslash-dot", "\\x5c2e"],
    ["20,000 bytes: a hex text of 40,000 characters in PLP chunks", LONG_BYTES, {
      only: "mssql",
      note:
        "MySQL's column is VARBINARY(255); SQL Server's varbinary(max) travels as varchar(max) hex",
    }],
  ],
  j: [
    ["object", '{"a": 1, "b": [1, 2]}'],
    ["string", '"text"'],
    ["JSON null (not SQL NULL)", "null"],
    ["empty array", "[]"],
    ["empty object", "{}"],
    ["unicode and escapes", '{"k": "é😀\\n\\"q\\""}'],
    ["number keeps its digits", "1.50"],
    ["nested", '{"a": {"b": null}}'],
  ],
  i1: [["tinyint min", "0"], ["tinyint max", "255"]],
  m: [
    ["money max", "922337203685477.5807"],
    ["money min", "-922337203685477.5808"],
    ["zero keeps four decimals", "0.0000", { input: "0" }],
    ["smallest negative", "-0.0001"],
    ["cents are padded", "12.3400", { input: "12.34" }],
  ],
  sm: [["smallmoney max", "214748.3647"], ["smallmoney min", "-214748.3648"]],
  dt: [
    ["datetime minimum", "1753-01-01 00:00:00"],
    ["datetime maximum", "9999-12-31 23:59:59.997"],
    ["one 1/300 s tick", "2020-01-01 00:00:00.003"],
  ],
  sdt: [["smalldatetime minimum", "1900-01-01 00:00:00"], [
    "smalldatetime maximum",
    "2079-06-06 23:59:00",
  ]],
  // Databricks. A complex value's input is the JSON of what the table holds, with LONG, DECIMAL, DATE
  // and TIMESTAMP values as strings and BINARY as `\x` hex (see `fake_databricks_w.ts`); the expected
  // text is what Spark's to_json writes (Jackson: compact, NULL struct fields left out, doubles as
  // Java's Double.toString, decimals as BigDecimal.toString, binary as base64, timestamps with
  // milliseconds and the zone).
  tiny: [["tinyint min", "-128"], ["tinyint max", "127"], ["zero", "0"]],
  n0: [
    ["decimal(38,0) max", "9".repeat(38)],
    ["decimal(38,0) min", `-${"9".repeat(38)}`],
    ["zero", "0"],
  ],
  n38: [
    ["decimal(38,38) max", `0.${"9".repeat(38)}`],
    ["smallest negative", `-0.${"0".repeat(37)}1`],
  ],
  ch: [["padded to its length on read", "ab   ", { input: "ab" }], ["full length", "abcde"]],
  arr: [
    ["bigint extremes and a NULL element", "[-9223372036854775808,null,9223372036854775807]", {
      input: '["-9223372036854775808", null, "9223372036854775807"]',
    }],
    ["empty array", "[]"],
  ],
  sarr: [
    [
      "strings escaped as Jackson escapes them",
      '["a,b","say \\"hi\\"","cr\\r lf\\n tab\\t","\\u001F unit separator","back\\\\slash","é😀",null]',
      {
        input: JSON.stringify([
          "a,b",
          'say "hi"',
          "cr\r lf\n tab\t",
          "\u001f unit separator",
          "back\\slash",
          "é😀",
          null,
        ]),
      },
    ],
  ],
  mp: [
    [
      "doubles as Java prints them, NULL values kept",
      '{"one":1.0,"big":1.0E10,"small":1.0E-5,"none":null,"nan":"NaN","neg":-2.5}',
      {
        input: '{"one": 1, "big": 1e10, "small": 0.00001, "none": null, "nan": "NaN", "neg": -2.5}',
      },
    ],
    ["empty map", "{}"],
  ],
  st: [
    [
      "every field",
      '{"i":1,"s":"x","d":12.3000000000,"b":"AP8=","ts":"2020-01-01T00:00:00.123Z",' +
      '"dt":"2020-02-29","ok":true}',
      {
        input: '{"i": 1, "s": "x", "d": "12.3", "b": "\\\\x00ff", ' +
          '"ts": "2020-01-01 00:00:00.123456", "dt": "2020-02-29", "ok": true}',
      },
    ],
    ["NULL fields left out, a small decimal in exponent form", '{"d":1E-10}', {
      input: '{"i": null, "d": "0.0000000001"}',
    }],
    ["every field NULL", "{}"],
  ],
  nest: [
    ["nested", '[{"k":"a","v":{"x":[1,null],"y":[]}},{"v":{}}]', {
      input: '[{"k": "a", "v": {"x": [1, null], "y": []}}, {"k": null, "v": {}}]',
    }],
  ],
};

/** Cases in engine-only columns belong to that engine. */
for (const column of EDGE_ENGINE_COLUMNS) {
  CASES[column.name] = CASES[column.name]!.map((
    [label, expected, extra],
  ): CaseSpec => [label, expected, { only: column.engine, ...extra }]);
}

/** Every edge case, ids from 1 in column order. */
export const EDGE_CASES: readonly EdgeCase[] = Object.entries(CASES).flatMap(
  ([column, specs]) =>
    specs.map(([label, expected, extra]) => ({ column, label, expected, ...extra })),
).map((c, i) => ({ id: i + 1, ...c }));

/** The edge cases an engine holds: the shared ones and its own (every case for a fake). */
export function edgeCasesFor(engine: Engine | "any"): EdgeCase[] {
  return EDGE_CASES.filter((c) => engine === "any" || edgeCaseHeldBy(c, engine));
}

/** The canonical rows of the edge table for one engine, in id order, in its columns. */
export function edgeExpectedRows(engine: Engine | "any"): CanonicalRow[] {
  const columns = edgeColumnsFor(engine);
  return edgeCasesFor(engine).map((c) =>
    columns.map((column) =>
      column.name === "id" ? String(c.id) : column.name === c.column ? c.expected : null
    )
  );
}

/**
 * The edge table as a catalogue table, for fakes that hold every case: PostgreSQL's type names, and the
 * engine-only columns with their own.
 */
export function edgeCatalogTable(table: string = EDGE_TABLE): CatalogTable {
  const shared = catalogTable(table, EDGE_COLUMNS, ["id"]);
  return {
    ...shared,
    columns: [
      ...shared.columns,
      ...EDGE_ENGINE_COLUMNS.map((c): CatalogColumn => ({
        name: c.name,
        dataType: c.type,
        logicalType: c.logicalType,
        nullable: true,
        description: null,
      })),
    ],
  };
}

/** Creates and fills the edge table in an existing PostgreSQL schema (parameterised inserts). */
export async function createEdgePostgres(
  admin: Sql,
  schema: string,
  table: string = EDGE_TABLE,
): Promise<void> {
  const t = `${quotePostgres(schema)}.${quotePostgres(table)}`;
  await admin.unsafe(
    `create table ${t} (${EDGE_COLUMNS.map((c) => `${c.name} ${c.postgres}`).join(", ")},
      primary key (id))`,
  );
  for (const c of edgeCasesFor("postgres")) {
    const column = edgeColumn(c.column);
    await admin.unsafe(
      `insert into ${t} (id, ${c.column}) values ($1::int, $2::text::${column.postgres})`,
      [c.id, c.input ?? c.expected],
    );
  }
}

/** DDL that creates the edge table in MySQL/MariaDB; `$s` stands for the quoted database. */
export function edgeMysqlDdl(table: string = EDGE_TABLE): string {
  return `CREATE TABLE $s.${quoteMysql(table)} (${
    EDGE_COLUMNS.map((c) => `${quoteMysql(c.name)} ${c.mysql}`).join(", ")
  }, PRIMARY KEY (id)) DEFAULT CHARSET = utf8mb4`;
}

/** The SQL Server edge table's columns as DDL types, the engine-only ones included. */
export function edgeMssqlColumns(): { readonly name: string; readonly type: string }[] {
  return [
    ...EDGE_COLUMNS.map((c) => ({ name: c.name, type: c.mssql })),
    ...EDGE_ENGINE_COLUMNS.filter((c) => c.engine === "mssql"),
  ];
}

/** DDL that creates the edge table in SQL Server; `$s` stands for the bracketed schema. */
export function edgeMssqlDdl(table: string = EDGE_TABLE): string {
  return `CREATE TABLE $s.${quoteMssql(table)} (${
    edgeMssqlColumns().map((c) =>
      `${quoteMssql(c.name)} ${c.type}${c.name === "id" ? " NOT NULL" : " NULL"}`
    ).join(", ")
  }, PRIMARY KEY (id))`;
}

/** The rows of the SQL Server edge table as stored (see {@link mssqlStored}), in id order. */
export function edgeMssqlRows(): (string | number | boolean | null)[][] {
  const columns = edgeColumnsFor("mssql");
  return edgeCasesFor("mssql").map((c) =>
    columns.map((column) =>
      column.name === "id"
        ? c.id
        : column.name === c.column
        ? mssqlStored(column.logicalType, c.input ?? c.expected)
        : null
    )
  );
}

/**
 * Canonical text (or an edge case's input) as the fake TDS server takes a stored value: booleans as
 * `true`/`false`, floats as numbers, everything else as text (`+00`/`+02` offsets, `\x` bytes and
 * upper-case uuids included).
 */
export function mssqlStored(
  type: LogicalType,
  value: string | null,
): string | number | boolean | null {
  if (value === null) return null;
  switch (type.kind) {
    case "boolean":
      return value === "true";
    case "real":
    case "double":
      return Number(value);
    default:
      return value;
  }
}

/** Fills the edge table in MySQL/MariaDB (it must exist: {@link edgeMysqlDdl}), in a UTC session. */
export async function fillEdgeMysql(
  admin: Connection,
  database: string,
  table: string = EDGE_TABLE,
): Promise<void> {
  await admin.query("SET time_zone = '+00:00'");
  const t = `${quoteMysql(database)}.${quoteMysql(table)}`;
  for (const c of edgeCasesFor("mysql")) {
    const column = edgeColumn(c.column);
    await admin.query(`INSERT INTO ${t} (id, ${quoteMysql(c.column)}) VALUES (?, ?)`, [
      c.id,
      mysqlInput(column.logicalType, c.input ?? c.expected),
    ]);
  }
}

/**
 * Turns canonical text into a value MySQL accepts for a column of this logical type: booleans as 1/0,
 * `timestamptz` without its `+00` (the session must be in UTC), binary as bytes; the rest as is.
 */
export function mysqlInput(
  type: LogicalType,
  value: string | null,
): string | number | Buffer | null {
  if (value === null) return null;
  switch (type.kind) {
    case "boolean":
      return value === "true" ? 1 : 0;
    case "timestamptz":
      if (!value.endsWith("+00")) {
        throw new RangeError(`Cannot load "${value}" into MySQL: not UTC`);
      }
      return value.slice(0, -3);
    case "binary":
      return Buffer.from(parseBinary(value));
    default:
      return value;
  }
}

function edgeColumn(name: string): TestColumn {
  const found = EDGE_COLUMNS.find((c) => c.name === name);
  if (found === undefined) throw new RangeError(`Cannot find edge column "${name}"`);
  return found;
}

function col(
  name: string,
  postgres: string,
  postgresType: string,
  mysql: string,
  mssql: string,
  databricks: readonly [typeName: string, typeText: string],
  logicalType: LogicalType,
  differs: {
    readonly mysql?: LogicalType;
    readonly mssql?: LogicalType;
    readonly databricks?: LogicalType;
  } = {},
): TestColumn {
  return {
    name,
    postgres,
    postgresType,
    mysql,
    mssql,
    databricks: { type_name: databricks[0], type_text: databricks[1] },
    logicalType,
    ...(differs.mysql === undefined ? {} : { mysqlLogicalType: differs.mysql }),
    ...(differs.mssql === undefined ? {} : { mssqlLogicalType: differs.mssql }),
    ...(differs.databricks === undefined ? {} : { databricksLogicalType: differs.databricks }),
  };
}
