/**
 * Test tables shared by the source adapters' tests:
 *
 * - **W** ("wide"), the benchmark's 13-column table (`sources-and-benchmark.md` §F.3), generated in
 *   PostgreSQL with `generate_series` and written into MySQL/MariaDB with the same values.
 *   {@link wExpectedRow} computes every row's canonical text independently of any database, so tests
 *   assert exact strings, and both engines are compared with it.
 * - **EDGE**, one row per edge value (NULL against `''`, CSV-hostile text, extreme numbers, dates and
 *   times at the ends of their ranges, ...), each with its exact expected canonical text. Rows that only
 *   one engine can hold are marked with `only`.
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
import { quoteMysql, quotePostgres } from "./databases.ts";

/** A database engine the test tables exist for. */
export type Engine = "postgres" | "mysql";

/** One column of a test table, in both dialects. */
export interface TestColumn {
  readonly name: string;
  /** The PostgreSQL column type, as written in DDL. */
  readonly postgres: string;
  /** What PostgreSQL's `format_type` reports for it. */
  readonly postgresType: string;
  /** The MySQL/MariaDB column type, as written in DDL. */
  readonly mysql: string;
  readonly logicalType: LogicalType;
  /** The logical type of the MySQL column, when it differs. */
  readonly mysqlLogicalType?: LogicalType;
}

/** The logical type a column has in one engine. */
export function logicalTypeIn(column: TestColumn, engine: Engine): LogicalType {
  return engine === "mysql" ? column.mysqlLogicalType ?? column.logicalType : column.logicalType;
}

// ---------------------------------------------------------------------------------------------------
// W

/** The W table's columns, in order; `id` is the primary key. */
export const W_COLUMNS: readonly TestColumn[] = [
  col("id", "bigint", "bigint", "BIGINT NOT NULL", { kind: "bigint" }),
  col("i", "int", "integer", "INT", { kind: "integer" }),
  col("s", "smallint", "smallint", "SMALLINT", { kind: "smallint" }),
  col("amount", "numeric(18,2)", "numeric(18,2)", "DECIMAL(18,2)", {
    kind: "decimal",
    precision: 18,
    scale: 2,
  }),
  col("price", "numeric(38,10)", "numeric(38,10)", "DECIMAL(38,10)", {
    kind: "decimal",
    precision: 38,
    scale: 10,
  }),
  col("ratio", "double precision", "double precision", "DOUBLE", { kind: "double" }),
  col("flag", "boolean", "boolean", "BOOLEAN", { kind: "boolean" }),
  col(
    "created_at",
    "timestamptz",
    "timestamp with time zone",
    "TIMESTAMP(6) NULL DEFAULT NULL",
    { kind: "timestamptz" },
  ),
  col("d", "date", "date", "DATE", { kind: "date" }),
  col("code", "varchar(20)", "character varying(20)", "VARCHAR(20)", { kind: "text" }),
  col("txt", "text", "text", "TEXT", { kind: "text" }),
  col("maybe", "text", "text", "TEXT", { kind: "text" }),
  // MariaDB's UUID type refuses a quarter of these md5-made values (see EDGE_CASES), so text there.
  col("u", "uuid", "uuid", "CHAR(36) CHARACTER SET ascii", { kind: "uuid" }, { kind: "text" }),
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

/** The W table as a catalogue table (PostgreSQL's type names), for fakes. */
export function wCatalogTable(table: string = W_TABLE): CatalogTable {
  return catalogTable(table, W_COLUMNS, ["id"]);
}

/**
 * The canonical text of W row `id`, computed without a database: exact integer arithmetic for the
 * numerics, and for `ratio` PostgreSQL's own steps (`g/3.0` is numeric division, rounded half away from
 * zero to the scale PostgreSQL picks for it, then read as a double).
 */
export function wExpectedRow(id: number): CanonicalRow {
  const g = BigInt(id);
  const md5 = createHash("md5").update(String(id)).digest("hex");
  const cents = (g * 137n) % 100_000_000n;
  return [
    String(id),
    String((id * 7) % 100_000),
    String(id % 30_000),
    `${cents / 100n}.${String(cents % 100n).padStart(2, "0")}`,
    fixed(divideRounded(g * 31_415_926_535n, 7n), 10),
    formatDouble(Number(pgDivideByThree(id))),
    id % 2 === 0 ? "true" : "false",
    `${isoUtc(Date.UTC(2020, 0, 1) + id * 1_000)}+00`,
    isoUtc(Date.UTC(2000, 0, 1) + (id % 9_000) * 86_400_000).slice(0, 10),
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

/** `n / d` rounded half away from zero, for non-negative n and positive d. */
function divideRounded(n: bigint, d: bigint): bigint {
  const q = n / d;
  return (n % d) * 2n >= d ? q + 1n : q;
}

/** An integer count of 10^-scale units as a decimal string with exactly `scale` digits. */
function fixed(units: bigint, scale: number): string {
  const factor = 10n ** BigInt(scale);
  return `${units / factor}.${String(units % factor).padStart(scale, "0")}`;
}

/**
 * `g/3.0` as PostgreSQL's numeric division computes it (`select_div_scale` in `numeric.c`): at least 16
 * significant digits, from the quotient's estimated weight in base-10000 digits.
 */
function pgDivideByThree(g: number): string {
  let weight1 = 0;
  let first1 = g;
  while (first1 >= 10_000) {
    first1 = Math.floor(first1 / 10_000);
    weight1++;
  }
  let qweight = weight1; // the divisor 3.0 has weight 0 and first digit 3
  if (first1 <= 3) qweight--;
  const scale = Math.min(Math.max(16 - qweight * 4, 1), 1_000);
  return fixed(divideRounded(BigInt(g) * 10n ** BigInt(scale), 3n), scale);
}

function isoUtc(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace(/\.000Z$/, "").replace(/Z$/, "");
}

// ---------------------------------------------------------------------------------------------------
// EDGE

/** The edge table's columns, in order; `id` is the primary key. Every other column is nullable. */
export const EDGE_COLUMNS: readonly TestColumn[] = [
  col("id", "integer", "integer", "INT NOT NULL", { kind: "integer" }),
  col("t", "text", "text", "TEXT", { kind: "text" }),
  col("n", "numeric(38,10)", "numeric(38,10)", "DECIMAL(38,10)", {
    kind: "decimal",
    precision: 38,
    scale: 10,
  }),
  col("f8", "double precision", "double precision", "DOUBLE", { kind: "double" }),
  col("f4", "real", "real", "FLOAT", { kind: "real" }),
  col("i2", "smallint", "smallint", "SMALLINT", { kind: "smallint" }),
  col("i4", "integer", "integer", "INT", { kind: "integer" }),
  col("i8", "bigint", "bigint", "BIGINT", { kind: "bigint" }),
  col("ts", "timestamp(6)", "timestamp(6) without time zone", "DATETIME(6)", {
    kind: "timestamp",
  }),
  col(
    "tz",
    "timestamptz(6)",
    "timestamp(6) with time zone",
    "TIMESTAMP(6) NULL DEFAULT NULL",
    { kind: "timestamptz" },
  ),
  col("d", "date", "date", "DATE", { kind: "date" }),
  col("tm", "time(6)", "time(6) without time zone", "TIME(6)", { kind: "time" }),
  col("u", "uuid", "uuid", "UUID", { kind: "uuid" }),
  col("b", "boolean", "boolean", "BOOLEAN", { kind: "boolean" }),
  col("bin", "bytea", "bytea", "VARBINARY(255)", { kind: "binary" }),
  col("j", "jsonb", "jsonb", "JSON", { kind: "json" }),
];

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
  /** Set when only this engine can hold the value; `note` says why. */
  readonly only?: Engine;
  readonly note?: string;
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
    ["smallest denormal", "5e-324"],
    ["1e100", "1e+100"],
    ["negative zero", "-0", { only: "postgres", note: "MariaDB stores -0 as 0" }],
    ["NaN", "NaN", { only: "postgres", note: "MySQL DOUBLE has no NaN" }],
    ["Infinity", "Infinity", { only: "postgres", note: "MySQL DOUBLE has no infinities" }],
    ["-Infinity", "-Infinity", { only: "postgres", note: "MySQL DOUBLE has no infinities" }],
  ],
  f4: [
    ["0.1 as float", "0.1"],
    ["exponent 6 stays positional", "1234567"],
    ["exponent 14 stays positional", "123456790000000", { input: "123456789012345" }],
    ["1e15 as float", "1e+15", { input: "1e15" }],
    ["2^24 + 1 rounds to 2^24", "16777216", { input: "16777217" }],
    ["max float", "3.4028235e+38", { input: "3.4028234e38" }],
    ["smallest denormal float", "1e-45", { input: "1.4e-45" }],
    ["negative", "-2.5"],
    ["NaN", "NaN", { only: "postgres", note: "MySQL FLOAT has no NaN" }],
    ["Infinity", "Infinity", { only: "postgres", note: "MySQL FLOAT has no infinities" }],
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
    ["BC", "0044-03-15 12:00:00 BC", { only: "postgres", note: "MySQL has no BC dates" }],
    ["infinity", "infinity", { only: "postgres", note: "MySQL has no infinite datetimes" }],
  ],
  tz: [
    ["microseconds", "2020-01-01 00:00:01.123456+00"],
    ["MySQL TIMESTAMP minimum", "1970-01-01 00:00:01+00"],
    ["MySQL TIMESTAMP maximum", "2038-01-19 03:14:07.999999+00"],
    ["another offset becomes UTC", "2020-06-01 10:00:00+00", {
      input: "2020-06-01 12:00:00+02",
      only: "postgres",
      note: "MySQL TIMESTAMP input takes no offset; covered by a MySQL test with a +02:00 session",
    }],
    ["1900", "1900-01-01 00:00:00+00", {
      only: "postgres",
      note: "MySQL TIMESTAMP starts at 1970-01-01 00:00:01 UTC",
    }],
    ["just before 1970", "1969-12-31 23:59:59.999999+00", {
      only: "postgres",
      note: "MySQL TIMESTAMP starts at 1970-01-01 00:00:01 UTC",
    }],
    ["after 2038", "2100-01-01 00:00:00+00", {
      only: "postgres",
      note: "MariaDB 10.11 TIMESTAMP ends at 2038-01-19 03:14:07 UTC",
    }],
    ["infinity", "infinity", { only: "postgres", note: "MySQL has no infinite timestamps" }],
  ],
  d: [
    ["year 1", "0001-01-01"],
    ["year 9999", "9999-12-31"],
    ["epoch", "1970-01-01"],
    ["just before 1970", "1969-12-31"],
    ["leap day", "2000-02-29"],
    ["BC", "0044-03-15 BC", { only: "postgres", note: "MySQL has no BC dates" }],
    ["infinity", "infinity", { only: "postgres", note: "MySQL has no infinite dates" }],
    ["-infinity", "-infinity", { only: "postgres", note: "MySQL has no infinite dates" }],
  ],
  tm: [
    ["midnight", "00:00:00"],
    ["last microsecond", "23:59:59.999999"],
    ["trailing zeros trimmed", "12:00:00.1", { input: "12:00:00.100000" }],
    ["24:00", "24:00:00", { only: "postgres", note: "MySQL TIME has no 24:00 (but wider ranges)" }],
    ["MySQL TIME maximum", "838:59:59", { only: "mysql", note: "PostgreSQL time ends at 24:00" }],
    ["negative MySQL TIME", "-838:59:59", {
      only: "mysql",
      note: "PostgreSQL time is never negative",
    }],
  ],
  u: [
    ["nil uuid", "00000000-0000-0000-0000-000000000000"],
    ["max uuid", "ffffffff-ffff-ffff-ffff-ffffffffffff"],
    ["upper-case input", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", {
      input: "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11",
    }],
    ["version 8 or more with variant 0 (md5(3)::uuid)", "eccbc87e-4b5c-e2fe-2830-8fd9f2a7baf3", {
      only: "postgres",
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
};

/** Every edge case, ids from 1 in column order. */
export const EDGE_CASES: readonly EdgeCase[] = Object.entries(CASES).flatMap(
  ([column, specs]) =>
    specs.map(([label, expected, extra]) => ({ column, label, expected, ...extra })),
).map((c, i) => ({ id: i + 1, ...c }));

/** The edge cases an engine holds: the shared ones and its own (every case for a fake). */
export function edgeCasesFor(engine: Engine | "any"): EdgeCase[] {
  return EDGE_CASES.filter((c) => engine === "any" || c.only === undefined || c.only === engine);
}

/** The canonical rows of the edge table for one engine, in id order. */
export function edgeExpectedRows(engine: Engine | "any"): CanonicalRow[] {
  return edgeCasesFor(engine).map((c) =>
    EDGE_COLUMNS.map((column) =>
      column.name === "id" ? String(c.id) : column.name === c.column ? c.expected : null
    )
  );
}

/** The edge table as a catalogue table (PostgreSQL's type names), for fakes. */
export function edgeCatalogTable(table: string = EDGE_TABLE): CatalogTable {
  return catalogTable(table, EDGE_COLUMNS, ["id"]);
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
  logicalType: LogicalType,
  mysqlLogicalType?: LogicalType,
): TestColumn {
  return mysqlLogicalType === undefined
    ? { name, postgres, postgresType, mysql, logicalType }
    : { name, postgres, postgresType, mysql, logicalType, mysqlLogicalType };
}

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
