import assert from "node:assert/strict";
import { readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import {
  type DuckDBBlobValue,
  DuckDBInstance,
  type DuckDBIntervalValue,
  type DuckDBValue,
} from "@duckdb/node-api";
import type {
  CatalogColumn,
  CatalogTable,
  TableExtract,
  TableReader,
} from "../../domain/catalog.ts";
import { encodeCsvRows, utf8Bytes } from "../../domain/csv.ts";
import {
  type CanonicalRow,
  formatBinary,
  formatDouble,
  type LogicalType,
} from "../../domain/logical_type.ts";
import { DUCKDB_PAYLOAD_PATH } from "../../domain/staging_layout.ts";
import type { StagedFile, StagingWork } from "../../ports/dataset_writer.ts";
import { SourceUnavailableError } from "../../ports/source_database.ts";
import { MemorySourceDatabase } from "../memory/memory_source_database.ts";
import {
  datasetWriterContract,
  EDGE_VALUES,
  stagingWork,
  type TablesRead,
  TEXT_VALUES,
} from "../../tests/contracts/dataset_writer_contract.ts";
import { GeneratedSource, type ProbeResult, WIDE_TABLE, wideRow } from "./_memory_probe.ts";
import {
  DuckdbDatasetWriter,
  FIRST_MEMORY_LIMIT,
  FLUSH_ROWS,
  memoryLimitsUpTo,
} from "./duckdb_dataset_writer.ts";
import { bcLast, formatInterval } from "./duckdb_release_file.ts";
import {
  DuckdbConstraintError,
  DuckdbMemoryError,
  DuckdbNameClashError,
  DuckdbValueError,
} from "./duckdb_errors.ts";

// ---------------------------------------------------------------------------------------------------------
// Reading a staged database back as canonical text, independently of the writer's own conversions: DuckDB
// formats dates, times, timestamps, decimals and UUIDs itself (only its `(BC)` layout is rewritten), and
// the rest is formatted here from the typed values.

/** Lays out a shortest mantissa and exponent the way PostgreSQL does, in fixed form below `fixedBelow`. */
function layout(value: number, fixedBelow: number, digits: string): string {
  const [mantissa = "0", exponentText = "0"] = Number(digits).toExponential().split("e");
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= fixedBelow) {
    return `${mantissa}e${exponent < 0 ? "-" : "+"}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  const bare = mantissa.replace("-", "").replace(".", "");
  const text = exponent >= 0
    ? bare.length <= exponent + 1
      ? bare + "0".repeat(exponent + 1 - bare.length)
      : `${bare.slice(0, exponent + 1)}.${bare.slice(exponent + 1)}`
    : `0.${"0".repeat(-exponent - 1)}${bare}`;
  return value < 0 ? `-${text}` : text;
}

/** A 4-byte float as PostgreSQL prints `real`: the shortest digits that read back to the same float. */
function formatReal(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "Infinity";
  if (value === -Infinity) return "-Infinity";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  for (let precision = 1; precision <= 9; precision++) {
    const digits = value.toPrecision(precision);
    if (Math.fround(Number(digits)) === value) return layout(value, 6, digits);
  }
  throw new RangeError(`${value} is not a 4-byte float`);
}

type Reader = {
  readonly select: (column: string) => string;
  readonly format: (v: unknown) => string;
};

const AS_TEXT: Reader = { select: (c) => `CAST(${c} AS VARCHAR)`, format: (v) => String(v) };
const TYPED = (format: (v: unknown) => string): Reader => ({ select: (c) => c, format });

function readerFor(dataType: string): Reader {
  if (dataType.startsWith("DECIMAL(")) return AS_TEXT;
  switch (dataType) {
    case "BOOLEAN":
      return TYPED((v) => v ? "true" : "false");
    case "SMALLINT":
    case "INTEGER":
    case "BIGINT":
      return TYPED(String);
    case "FLOAT":
      return TYPED((v) => formatReal(v as number));
    case "DOUBLE":
      return TYPED((v) => formatDouble(v as number));
    case "INTERVAL":
      return TYPED((v) => formatInterval(v as DuckDBIntervalValue));
    case "BLOB":
      return TYPED((v) => formatBinary((v as DuckDBBlobValue).bytes));
    case "DATE":
    case "TIMESTAMP":
    case "TIMESTAMP WITH TIME ZONE":
      return { select: AS_TEXT.select, format: (v) => bcLast(String(v)) };
    case "TIME":
    case "UUID":
    case "JSON":
    case "VARCHAR":
      return AS_TEXT;
    default:
      throw new Error(`No reader for DuckDB type ${dataType}`);
  }
}

async function withDatabase<T>(
  path: string,
  fn: (query: (sql: string) => Promise<DuckDBValue[][]>) => Promise<T>,
): Promise<T> {
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  const connection = await instance.connect();
  try {
    await connection.run("SET TimeZone = 'UTC'");
    return await fn(async (sql) => (await connection.runAndReadAll(sql)).getRows());
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** Reads every table of the staged database as canonical rows, in insertion order. */
async function readDuckdb(dir: string, files: readonly StagedFile[]): Promise<TablesRead> {
  const read = new Map<string, CanonicalRow[]>();
  if (!files.some((f) => f.path === DUCKDB_PAYLOAD_PATH)) return read;
  await withDatabase(join(dir, DUCKDB_PAYLOAD_PATH), async (query) => {
    const tables = await query(
      "SELECT schema_name, table_name FROM duckdb_tables() " +
        "WHERE database_name = current_database() ORDER BY ALL",
    );
    for (const [schema, table] of tables.map((r) => r.map(String))) {
      const columns = await query(
        "SELECT column_name, data_type FROM duckdb_columns() " +
          `WHERE database_name = current_database() AND schema_name = ${sqlString(schema!)} ` +
          `AND table_name = ${sqlString(table!)} ORDER BY column_index`,
      );
      const readers = columns.map(([name, type]) => ({
        name: `"${String(name)}"`,
        reader: readerFor(String(type)),
      }));
      const rows = await query(
        `SELECT ${readers.map((r) => r.reader.select(r.name)).join(", ")} ` +
          `FROM "${schema}"."${table}" ORDER BY rowid`,
      );
      read.set(
        `${schema}.${table}`,
        rows.map((row) => row.map((v, i) => v === null ? null : readers[i]!.reader.format(v))),
      );
    }
  });
  return read;
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

function column(name: string, logicalType: LogicalType, nullable = true): CatalogColumn {
  return { name, dataType: logicalType.kind, logicalType, nullable, description: null };
}

function table(
  name: string,
  columns: readonly CatalogColumn[],
  primaryKey: readonly string[] = [],
): CatalogTable {
  return { name, kind: "table", description: null, columns, primaryKey };
}

function extract(schema: string, t: CatalogTable): TableExtract {
  return { schema, table: t };
}

const OPTIONS = { concurrency: 2, batchRows: 1000 };

async function withWork<T>(fn: (work: StagingWork, dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "duckdb-writer-" });
  try {
    return await fn(stagingWork(dir), dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Writes one table of the given rows and returns what the writer staged. */
function writeRows(
  work: StagingWork,
  schema: string,
  t: CatalogTable,
  rows: CanonicalRow[],
): Promise<StagedFile[]> {
  const source = new MemorySourceDatabase(
    [{ name: schema, description: null, tables: [t] }],
    new Map([[`${schema}.${t.name}`, rows]]),
  );
  return new DuckdbDatasetWriter().write(work, source, [extract(schema, t)], OPTIONS);
}

const ROOT = new URL("../../", import.meta.url);
const PROBE = new URL("./_memory_probe.ts", import.meta.url);

/** Runs `_memory_probe.ts` in a fresh Deno process, so RSS is measured in a heap of its own. */
async function runProbe(
  dir: string,
  options: { table: "narrow" | "wide"; rows: number; v8Flags?: string },
): Promise<ProbeResult> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-ffi",
      "--allow-env",
      "--allow-sys",
      ...(options.v8Flags === undefined ? [] : [`--v8-flags=${options.v8Flags}`]),
      decodeURIComponent(PROBE.pathname),
      dir,
      options.table,
      String(options.rows),
    ],
    cwd: decodeURIComponent(ROOT.pathname),
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  assert.ok(output.success, `the probe failed: ${decoder.decode(output.stderr)}`);
  return JSON.parse(decoder.decode(output.stdout)) as ProbeResult;
}

function report(line: string): void {
  // deno-lint-ignore no-console -- benchmark figures are the point of these tests; nothing is asserted on time
  console.log(line);
}

// ---------------------------------------------------------------------------------------------------------
// Tests

Deno.test("DuckdbDatasetWriter passes the DatasetWriter contract", (t) =>
  datasetWriterContract(t, () => new DuckdbDatasetWriter(), readDuckdb));

Deno.test("DuckdbDatasetWriter declares faithful types, NOT NULL columns and primary keys", () =>
  withWork(async (work, dir) => {
    const types = table("types", [
      column("id", { kind: "integer" }, false),
      ...EDGE_VALUES.map(([name, type]) => column(name, type)),
    ]);
    const keyed = table("keyed", [
      column("visit_no", { kind: "integer" }, false),
      column("patient_id", { kind: "bigint" }, false),
      column("note", { kind: "text" }, false),
    ], ["patient_id", "visit_no"]);
    const source = new MemorySourceDatabase([{
      name: "s",
      description: null,
      tables: [types, keyed],
    }]);
    await new DuckdbDatasetWriter().write(
      work,
      source,
      [extract("s", types), extract("s", keyed)],
      OPTIONS,
    );
    await withDatabase(join(dir, DUCKDB_PAYLOAD_PATH), async (query) => {
      const declared = new Map(
        (await query(
          "SELECT column_name, data_type, is_nullable FROM duckdb_columns() " +
            "WHERE schema_name = 's' AND table_name = 'types'",
        )).map(([name, type, nullable]) => [String(name), `${type}${nullable ? "" : " NOT NULL"}`]),
      );
      assert.deepEqual(
        Object.fromEntries(declared),
        {
          id: "INTEGER NOT NULL",
          b: "BOOLEAN",
          si: "SMALLINT",
          i: "INTEGER",
          bi: "BIGINT",
          d18: "DECIMAL(18,2)",
          d38: "DECIMAL(38,10)",
          d4: "DECIMAL(4,0)",
          d50: "VARCHAR",
          num: "VARCHAR",
          r: "FLOAT",
          dbl: "DOUBLE",
          dt: "DATE",
          tm: "TIME",
          ts: "TIMESTAMP",
          tstz: "TIMESTAMP WITH TIME ZONE",
          iv: "INTERVAL",
          u: "UUID",
          j: "JSON",
          tx: "VARCHAR",
          bin: "BLOB",
        },
      );
      const information = await query(
        "SELECT column_name, is_nullable FROM information_schema.columns " +
          "WHERE table_schema = 's' AND table_name = 'keyed' ORDER BY ordinal_position",
      );
      assert.deepEqual(information, [["visit_no", "NO"], ["patient_id", "NO"], ["note", "NO"]]);
      const keys = await query(
        "SELECT table_name, constraint_column_names FROM duckdb_constraints() " +
          "WHERE schema_name = 's' AND constraint_type = 'PRIMARY KEY' ORDER BY table_name",
      );
      assert.deepEqual(
        keys.map(([name, columns]) => [name, String(columns)]),
        [["keyed", "['patient_id', 'visit_no']"]],
      );
    });
  }));

Deno.test("DuckdbDatasetWriter leaves only the database file in data/outputs", () =>
  withWork(async (work, dir) => {
    const t = table("t", [column("id", { kind: "bigint" }, false)], ["id"]);
    const files = await writeRows(work, "s", t, [["1"], ["2"]]);
    assert.deepEqual(files.map((f) => f.path), [DUCKDB_PAYLOAD_PATH]);
    assert.deepEqual(await readdir(join(dir, "data/outputs")), ["database.duckdb"]);
  }));

Deno.test("DuckdbDatasetWriter refuses values DuckDB cannot hold exactly, naming the column", async (t) => {
  const cases: [string, LogicalType, string, RegExp][] = [
    [
      "a NaN in a DECIMAL column",
      { kind: "decimal", precision: 10, scale: 2 },
      "NaN",
      /NaN in DECIMAL\(10,2\)/,
    ],
    ["too many integer digits", { kind: "decimal", precision: 4, scale: 2 }, "123.00", /integer/],
    [
      "a fraction that would round",
      { kind: "decimal", precision: 6, scale: 2 },
      "1.005",
      /fraction/,
    ],
    ["an infinite interval", { kind: "interval" }, "infinity", /intervals are finite/],
    ["a timestamp past DuckDB's last", { kind: "timestamp" }, "294276-12-31 23:59:59", /range/],
    ["a real beyond 4 bytes", { kind: "real" }, "1e+39", /4-byte/],
    ["an integer beyond 32 bits", { kind: "integer" }, "2147483648", /outside/],
    ["a malformed date", { kind: "date" }, "2024-02-30", /no such day/],
    ["a malformed uuid", { kind: "uuid" }, "not-a-uuid", /uuid/],
  ];
  for (const [what, type, value, reason] of cases) {
    await t.step(what, () =>
      withWork(async (work) => {
        const tbl = table("measurements", [
          column("id", { kind: "integer" }, false),
          column("value", type),
        ]);
        await assert.rejects(
          writeRows(work, "lab", tbl, [["1", null], ["2", value]]),
          (e: unknown) => {
            assert.ok(e instanceof DuckdbValueError, String(e));
            assert.match(e.message, /column "value" of table "lab\.measurements"/);
            assert.match(e.message, /\(row 2\)/);
            assert.match(e.message, reason);
            assert.equal(e.code, "duckdb_value_not_representable");
            return true;
          },
        );
      }));
  }
});

Deno.test("DuckdbDatasetWriter cuts 100 ns ticks to microseconds, never rounding", () =>
  withWork(async (work, dir) => {
    const t = table("ticks", [
      column("ts", { kind: "timestamp" }),
      column("tz", { kind: "timestamptz" }),
      column("tm", { kind: "time" }),
    ]);
    // SQL Server's datetime2(7), datetimeoffset(7) and time(7): rounding would move each to the next
    // day, year or midnight.
    const rows = [
      ["2020-12-31 23:59:59.9999999", "9999-12-31 23:59:59.9999999+00", "23:59:59.9999999"],
      ["2020-01-01 00:00:00.1234567", "2020-01-01 00:00:00.0000001+00", "12:00:00.1000001"],
    ];
    const files = await writeRows(work, "s", t, rows);
    assert.deepEqual((await readDuckdb(dir, files)).get("s.ticks"), [
      ["2020-12-31 23:59:59.999999", "9999-12-31 23:59:59.999999+00", "23:59:59.999999"],
      ["2020-01-01 00:00:00.123456", "2020-01-01 00:00:00+00", "12:00:00.1"],
    ]);
  }));

Deno.test("DuckdbDatasetWriter stores unconstrained numerics, NaN included, as exact text", () =>
  withWork(async (work, dir) => {
    const t = table("n", [column("v", { kind: "numeric" })]);
    const values = ["NaN", "-Infinity", "1" + "0".repeat(200) + ".5", "0.10"];
    const files = await writeRows(work, "s", t, values.map((v) => [v]));
    assert.deepEqual((await readDuckdb(dir, files)).get("s.n"), values.map((v) => [v]));
  }));

Deno.test("DuckdbDatasetWriter reads a source's CSV fast path when it has one, to the same table", () =>
  withWork(async (work, dir) => {
    const t = table("edge", [
      column("id", { kind: "integer" }, false),
      ...EDGE_VALUES.map(([name, type]) => column(name, type)),
      column("txt", { kind: "text" }),
    ], ["id"]);
    const rows: CanonicalRow[] = TEXT_VALUES.map((text, r) => [
      String(r + 1),
      ...EDGE_VALUES.map(([, , values]) => r % 5 === 4 ? null : values[r % values.length]!),
      text,
    ]);
    const byRows = await readDuckdb(dir, await writeRows(work, "s", t, rows));

    // The canonical CSV of the same rows, header first, cut every 7 bytes (inside records, quoted
    // fields and UTF-8 sequences); its rows must never be asked for.
    const csv = utf8Bytes(encodeCsvRows([t.columns.map((c) => c.name), ...rows]));
    const csvOnly: TableReader = {
      readRows: () => {
        throw new Error("readRows called on a source with readCsv");
      },
      async *readCsv() {
        for (let at = 0; at < csv.length; at += 7) yield csv.slice(at, at + 7);
      },
    };
    await withWork(async (csvWork, csvDir) => {
      const files = await new DuckdbDatasetWriter().write(
        csvWork,
        csvOnly,
        [extract("s", t)],
        OPTIONS,
      );
      assert.deepEqual(await readDuckdb(csvDir, files), byRows);
    });
    assert.equal(byRows.get("s.edge")?.length, rows.length);
  }));

Deno.test("DuckdbDatasetWriter reports rows that break the primary key or NOT NULL", async (t) => {
  const keyed = table("k", [column("id", { kind: "integer" }, false)], ["id"]);
  await t.step("a duplicate key", () =>
    withWork(async (work) => {
      await assert.rejects(
        writeRows(work, "s", keyed, [["1"], ["2"], ["1"]]),
        DuckdbConstraintError,
      );
    }));
  await t.step("a NULL in a NOT NULL column", () =>
    withWork(async (work) => {
      await assert.rejects(writeRows(work, "s", keyed, [["1"], [null]]), DuckdbConstraintError);
    }));
});

Deno.test("DuckdbDatasetWriter writes every column type alike in full chunks and in a last, shorter one", () =>
  withWork(async (work, dir) => {
    // Full chunks are filled through vectors made once per table; a table's last, shorter chunk through
    // vectors made for it. The same rows of every type must come out of both the same.
    const rows = 2 * 2048 + 5;
    const sample = [0, 1, 2046, 2047, 2048, 2049, 4095, 4096];
    const source: TableReader = {
      async *readRows(extract) {
        if (extract.schema === "whole") {
          for (let start = 0; start < rows; start += 700) {
            yield Array.from({ length: Math.min(700, rows - start) }, (_, i) => wideRow(start + i));
          }
        } else yield sample.map(wideRow); // fewer rows than a chunk
      },
    };
    const files = await new DuckdbDatasetWriter().write(
      work,
      source,
      [extract("whole", WIDE_TABLE), extract("sampled", WIDE_TABLE)],
      { concurrency: 1, batchRows: 700 },
    );
    await withDatabase(join(dir, files[0]!.path), async (query) => {
      const [[whole], [sampled], [differing]] = await Promise.all([
        query("SELECT count(*) FROM whole.wide"),
        query("SELECT count(*) FROM sampled.wide"),
        query(
          "SELECT count(*) FROM (SELECT * FROM sampled.wide EXCEPT " +
            `SELECT * FROM whole.wide WHERE id IN (${sample.join(", ")}))`,
        ),
      ]);
      assert.deepEqual([whole, sampled, differing].map((row) => String(row?.[0])), [
        String(rows),
        String(sample.length),
        "0",
      ]);
    });
  }));

Deno.test("DuckdbDatasetWriter keeps every row and the key across its appender's flushes", async (t) => {
  const keyed = table("k", [
    column("id", { kind: "bigint" }, false),
    column("label", { kind: "text" }),
  ], ["id"]);
  // Rows past several flushes, the last chunk partial.
  const rows = 3 * FLUSH_ROWS + 2048 + 17;
  await t.step("every row once, in order", () =>
    withWork(async (work, dir) => {
      const source = new GeneratedSource(rows, (n) => [String(n), n % 7 === 0 ? null : `v${n}`]);
      const files = await new DuckdbDatasetWriter().write(work, source, [extract("s", keyed)], {
        concurrency: 1,
        batchRows: 5000,
      });
      await withDatabase(join(dir, files[0]!.path), async (query) => {
        const [row] = await query(
          "SELECT count(*), count(DISTINCT id), sum(id), count(label), " +
            "bool_and(id = rowid), bool_and((label IS NULL) = (id % 7 = 0)), " +
            "bool_and(label IS NULL OR label = 'v' || id) FROM s.k",
        );
        const labelled = rows - Math.ceil(rows / 7);
        assert.deepEqual(row?.map(String), [
          String(rows),
          String(rows),
          String((rows - 1) * rows / 2),
          String(labelled),
          "true",
          "true", // the NULLs where they were, in every chunk
          "true", // each value in its own row, though the chunks reuse their vectors
        ]);
      });
    }));
  await t.step("a key repeated after a flush is refused", () =>
    withWork(async (work) => {
      const source = new GeneratedSource(
        2 * FLUSH_ROWS + 10,
        (n) => [String(n === FLUSH_ROWS + 5 ? 3 : n), null],
      );
      await assert.rejects(
        new DuckdbDatasetWriter().write(work, source, [extract("s", keyed)], {
          concurrency: 1,
          batchRows: 5000,
        }),
        DuckdbConstraintError,
      );
    }));
});

Deno.test("DuckdbDatasetWriter refuses names that differ only in case", async (t) => {
  await t.step("two tables", () =>
    withWork(async (work) => {
      const a = table("Visits", [column("id", { kind: "integer" })]);
      const b = table("visits", [column("id", { kind: "integer" })]);
      const source = new MemorySourceDatabase([{ name: "s", description: null, tables: [a, b] }]);
      await assert.rejects(
        new DuckdbDatasetWriter().write(work, source, [extract("s", a), extract("s", b)], OPTIONS),
        DuckdbNameClashError,
      );
    }));
  await t.step("two columns", () =>
    withWork(async (work) => {
      const a = table("t", [column("Id", { kind: "integer" }), column("id", { kind: "integer" })]);
      await assert.rejects(writeRows(work, "s", a, []), DuckdbNameClashError);
    }));
  await t.step("a dataset's schema and one already staged", () =>
    withWork(async (work, dir) => {
      const t1 = table("t", [column("id", { kind: "integer" })]);
      await writeRows(work, "Cohort", t1, [["1"]]);
      const second = join(dir, "second");
      await assert.rejects(
        writeRows(stagingWork(second, dir), "cohort", t1, [["2"]]),
        DuckdbNameClashError,
      );
      const read = await readDuckdb(dir, [{ path: DUCKDB_PAYLOAD_PATH, sha512: "", bytes: 0 }]);
      assert.deepEqual(read, new Map([["Cohort.t", [["1"]]]]));
    }));
});

Deno.test("DuckdbDatasetWriter replaces a dataset named main without dropping DuckDB's schema", () =>
  withWork(async (work, dir) => {
    const first = table("first", [column("id", { kind: "integer" })]);
    await writeRows(work, "main", first, [["1"]]);
    const second = table("second", [column("id", { kind: "integer" })]);
    const again = join(dir, "again");
    const files = await writeRows(
      stagingWork(again, dir),
      "main",
      second,
      [["2"]],
    );
    assert.deepEqual(await readDuckdb(again, files), new Map([["main.second", [["2"]]]]));
  }));

Deno.test("DuckdbDatasetWriter writes tables concurrently, every row in its own table", () =>
  withWork(async (work, dir) => {
    const tables = Array.from({ length: 6 }, (_, i) =>
      table(`t${i}`, [
        column("id", { kind: "bigint" }, false),
        column("label", { kind: "text" }),
      ], ["id"]));
    const source = new GeneratedSource(10_000, (n) => [String(n), n % 5 === 0 ? null : `v${n}`], 1);
    const files = await new DuckdbDatasetWriter().write(
      work,
      source,
      tables.map((t) => extract("c", t)),
      { concurrency: 4, batchRows: 700 },
    );
    await withDatabase(join(dir, files[0]!.path), async (query) => {
      for (const t of tables) {
        const [row] = await query(
          `SELECT count(*), sum(id), count(label), min(id), max(id) FROM c."${t.name}"`,
        );
        assert.deepEqual(row?.map(String), ["10000", "49995000", "8000", "0", "9999"], t.name);
      }
    });
  }));

Deno.test("DuckdbDatasetWriter stops the other tables when one table fails", () =>
  withWork(async (work) => {
    let slowBatches = 0;
    class OneBadTable extends GeneratedSource {
      override async *readRows(e: TableExtract): AsyncIterable<CanonicalRow[]> {
        if (e.table.name === "bad") {
          yield [["1"]];
          throw new SourceUnavailableError("Cannot read from the source database: connection lost");
        }
        for (let n = 0; n < 1000; n++) {
          await new Promise((resolve) => setTimeout(resolve, 2));
          slowBatches++;
          yield [[String(n)]];
        }
      }
    }
    const source = new OneBadTable(0, () => []);
    const tables = ["slow", "bad"].map((name) =>
      extract("f", table(name, [column("id", { kind: "integer" })]))
    );
    await assert.rejects(
      new DuckdbDatasetWriter().write(work, source, tables, { concurrency: 2, batchRows: 1 }),
      SourceUnavailableError,
    );
    assert.ok(slowBatches < 100, `the slow table read ${slowBatches} of 1000 batches`);
  }));

const MILLION = 1_000_000;

/*
 * RSS is measured in a separate process: in the test process it swings between 50 and 300 MB for the
 * same rows, depending on how earlier tests left V8's heap. The probe's V8 heap is capped (64 MB old
 * space, 2 MB semi-spaces), so a writer that kept the table's rows (about 250 MB of JavaScript objects
 * here) dies of "JavaScript heap out of memory" instead of passing; the RSS growth left, about 115 MB, is
 * DuckDB's own buffers (60-70 MB) and the capped heap.
 */
Deno.test("DuckdbDatasetWriter keeps memory bounded over a million generated rows", () =>
  withWork(async (_work, dir) => {
    const result = await runProbe(dir, {
      table: "narrow",
      rows: MILLION,
      v8Flags: "--max-old-space-size=64,--max-semi-space-size=2",
    });
    report(
      `DuckDB writer, 1M rows x 4 columns, V8 heap capped at 64 MB: ` +
        `${result.seconds.toFixed(1)} s, ${Math.round(MILLION / result.seconds)} rows/s, ` +
        `RSS growth ${(result.rssGrowth / 1e6).toFixed(0)} MB, file ${
          (result.bytes / 1e6).toFixed(1)
        } MB`,
    );
    assert.ok(result.rssGrowth < 200e6, `RSS grew by ${(result.rssGrowth / 1e6).toFixed(0)} MB`);
    await withDatabase(join(dir, DUCKDB_PAYLOAD_PATH), async (query) => {
      const [counts] = await query("SELECT count(*), count(note), max(id) FROM probe.narrow");
      assert.deepEqual(counts?.map(String), [String(MILLION), String(MILLION / 2), "999999"]);
    });
  }));

Deno.test("DuckdbDatasetWriter throughput: a million rows of the 13 wide-table types", () =>
  withWork(async (_work, dir) => {
    const result = await runProbe(dir, { table: "wide", rows: MILLION });
    report(
      `DuckDB writer, 1M rows x 13 types (generating the source rows included, primary key on id): ` +
        `${result.seconds.toFixed(1)} s, ${Math.round(MILLION / result.seconds)} rows/s, ` +
        `RSS growth ${(result.rssGrowth / 1e6).toFixed(0)} MB, file ${
          (result.bytes / 1e6).toFixed(1)
        } MB`,
    );
    await withDatabase(join(dir, DUCKDB_PAYLOAD_PATH), async (query) => {
      const [row] = await query(
        "SELECT count(*), sum(amount)::VARCHAR, max(price)::VARCHAR, count(maybe), " +
          "max(u)::VARCHAR, min(created_at)::VARCHAR FROM probe.wide",
      );
      assert.deepEqual(row?.map(String), [
        String(MILLION),
        "4999995000.00",
        "999999.0000999999",
        String(MILLION / 2),
        "9b2c1f3e-0000-4000-8000-0000000f423f",
        "2024-01-01 12:34:56+00",
      ]);
    });
  }));

Deno.test("DuckdbDatasetWriter writes within 24MB first, and again within the configured limit when that is too little", async (t) => {
  const notes = table("notes", [
    column("id", { kind: "integer" }, false),
    column("body", { kind: "text" }),
  ], ["id"]);
  /** `count` values of 64 KiB, from a source that counts its reads and reports each `done`. */
  async function writeNotes(count: number, memoryLimit?: string) {
    const rows: CanonicalRow[] = Array.from(
      { length: count },
      (_, i) => [String(i), String(i % 10).repeat(64 * 1024)],
    );
    const source = new MemorySourceDatabase(
      [{ name: "s", description: null, tables: [notes] }],
      new Map([["s.notes", rows]]),
    );
    let reads = 0;
    const counted: TableReader = {
      readRows: (e, o) => {
        reads++;
        return source.readRows(e, o);
      },
    };
    const done: string[] = [];
    return await withWork(async (work, dir) => {
      const files = await new DuckdbDatasetWriter(memoryLimit === undefined ? {} : { memoryLimit })
        .write(work, counted, [extract("s", notes)], {
          ...OPTIONS,
          onProgress: (p) => p.done !== undefined && done.push(p.table),
        });
      const read = (await readDuckdb(dir, files)).get("s.notes")!;
      assert.equal(read.length, count);
      assert.ok(read.every((r) => r[1] === String(Number(r[0]) % 10).repeat(64 * 1024)));
      assert.deepEqual(await readdir(dir), ["data"]);
      return { reads, done };
    });
  }
  assert.equal(FIRST_MEMORY_LIMIT, "24MB");
  assert.deepEqual(memoryLimitsUpTo("64MB"), ["24MB", "64MB"]);
  assert.deepEqual(memoryLimitsUpTo("2GiB"), ["24MB", "2GiB"]);
  assert.deepEqual(memoryLimitsUpTo("24MiB"), ["24MB", "24MiB"]);
  assert.deepEqual(memoryLimitsUpTo("24MB"), ["24MB"]);
  assert.deepEqual(memoryLimitsUpTo("16MB"), ["16MB"]);

  await t.step("200 values (12.5 MiB) fit the first limit: the source is read once", async () => {
    assert.deepEqual(await writeNotes(200), { reads: 1, done: ["notes"] });
  });
  await t.step(
    "500 values (31 MiB) do not: read again and written within 64MB, done once",
    async () => {
      assert.deepEqual(await writeNotes(500), { reads: 2, done: ["notes"] });
    },
  );
  await t.step("the second attempt starts again from the run's previous database", async () => {
    const other = table("kept", [column("id", { kind: "integer" }, false)], ["id"]);
    await withWork(async (_, runDir) => {
      await writeRows(stagingWork(runDir), "earlier", other, [["1"], ["2"]]);
      const rows: CanonicalRow[] = Array.from(
        { length: 500 },
        (_, i) => [String(i), String(i % 10).repeat(64 * 1024)],
      );
      const source = new MemorySourceDatabase(
        [{ name: "s", description: null, tables: [notes] }],
        new Map([["s.notes", rows]]),
      );
      await withWork(async (_, dir) => {
        const files = await new DuckdbDatasetWriter().write(
          stagingWork(dir, runDir),
          source,
          [extract("s", notes)],
          OPTIONS,
        );
        const read = await readDuckdb(dir, files);
        assert.deepEqual(read.get("earlier.kept"), [["1"], ["2"]]);
        assert.equal(read.get("s.notes")?.length, 500);
      });
    });
  });
  await t.step(
    "with the limit set to 24MB, the same values are refused, naming it",
    async () => {
      await assert.rejects(writeNotes(500, "24MB"), DuckdbMemoryError, "(24MB)");
    },
  );
});

Deno.test("DuckdbDatasetWriter: long values beyond DuckDB's memory limit are a clear error, a higher limit writes them", async (t) => {
  // 2,000 values of 64 KiB (128 MiB): DuckDB 1.5 holds long values in memory until the table is written.
  const long = table("notes", [
    column("id", { kind: "integer" }, false),
    column("body", { kind: "text" }),
  ], [
    "id",
  ]);
  const rows: CanonicalRow[] = Array.from(
    { length: 2000 },
    (_, i) => [String(i), String(i % 10).repeat(64 * 1024)],
  );
  const write = (work: StagingWork, memoryLimit: string) =>
    new DuckdbDatasetWriter({ memoryLimit }).write(
      work,
      new MemorySourceDatabase(
        [{ name: "s", description: null, tables: [long] }],
        new Map([["s.notes", rows]]),
      ),
      [extract("s", long)],
      OPTIONS,
    );
  await t.step("64MB: refused, naming the setting", () =>
    withWork(async (work) => {
      await assert.rejects(write(work, "64MB"), DuckdbMemoryError, "DUCKDB_MEMORY_LIMIT");
    }));
  await t.step("512MB: written, every value whole", () =>
    withWork(async (work, dir) => {
      const files = await write(work, "512MB");
      const read = await readDuckdb(dir, files);
      const notes = read.get("s.notes")!;
      assert.equal(notes.length, 2000);
      assert.ok(notes.every((r) => r[1] === String(Number(r[0]) % 10).repeat(64 * 1024)));
    }));
});
