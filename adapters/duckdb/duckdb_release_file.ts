/**
 * Reads a published DuckDB file (`data/outputs/database.duckdb` of a production bag) page by page, as
 * the canonical text of the CSV format (`docs/csv-format.md`): the reverse of `duckdb_columns.ts`.
 * DuckDB formats decimals, dates, times, timestamps and UUIDs itself (in UTC; only its `(BC)` layout is
 * rewritten); floats, intervals and blobs are formatted here from the typed values.
 *
 * A table with a primary key pages by it (`where (key) > (...) order by key`), which survives a
 * republish; one without pages by `rowid`, bound to the file's SHA-512 (a republish refuses the cursor).
 * The file is opened read-only for each call and closed after it; a page holds at most `limit + 1` rows
 * (the values of a published table are bounded by the package's `SOURCE_MAX_VALUE_BYTES`).
 *
 * @module
 */
import {
  type DuckDBBlobValue,
  DuckDBInstance,
  type DuckDBIntervalValue,
  type DuckDBValue,
} from "./duckdb.ts";
import { formatBinary, formatDouble, formatFloat32 } from "../../domain/logical_type.ts";
import {
  InvalidCursorError,
  MAX_PAGE_CHARS,
  pageIsFull,
  type ReadPosition,
  type ReadValue,
  type ReleaseTable,
  rowChars,
} from "../../domain/release_read.ts";
import {
  type ReadPage,
  type ReadPageRequest,
  ReleaseChangedError,
} from "../../ports/release_reader.ts";

/** How one DuckDB column becomes canonical text: the SQL around it and the formatter of its value. */
interface ColumnReader {
  readonly select: (column: string) => string;
  readonly format: (value: DuckDBValue) => string;
}

const AS_TEXT: ColumnReader = { select: (c) => `CAST(${c} AS VARCHAR)`, format: String };

/** DuckDB writes `0044-03-15 (BC) 12:00:00+00`; canonical text has ` BC` last. */
export function bcLast(text: string): string {
  return text.replace(/^(\S+) \(BC\)(.*)$/, "$1$2 BC");
}

function two(n: bigint): string {
  return String(n).padStart(2, "0");
}

/** An interval in PostgreSQL's `postgres` style (`EncodeInterval`, `INTSTYLE_POSTGRES`). */
export function formatInterval({ months, days, micros }: DuckDBIntervalValue): string {
  let out = "";
  let isZero = true;
  let isBefore = false;
  function part(value: number, unit: string): void {
    if (value === 0) return;
    out += `${isZero ? "" : " "}${isBefore && value > 0 ? "+" : ""}${value} ${unit}${
      value !== 1 ? "s" : ""
    }`;
    isBefore = value < 0;
    isZero = false;
  }
  part(Math.trunc(months / 12), "year");
  part(months % 12, "mon");
  part(days, "day");
  if (isZero || micros !== 0n) {
    const minus = micros < 0n;
    const abs = minus ? -micros : micros;
    const fraction = abs % 1_000_000n;
    out += `${isZero ? "" : " "}${minus ? "-" : isBefore ? "+" : ""}${two(abs / 3_600_000_000n)}:${
      two((abs / 60_000_000n) % 60n)
    }:${two((abs / 1_000_000n) % 60n)}${
      fraction === 0n ? "" : `.${String(fraction).padStart(6, "0").replace(/0+$/, "")}`
    }`;
  }
  return out;
}

/** The reader of a column of a DuckDB type (`duckdb_columns().data_type`). */
function readerFor(dataType: string): ColumnReader {
  if (dataType.startsWith("DECIMAL(")) return AS_TEXT;
  switch (dataType) {
    case "BOOLEAN":
      return { select: (c) => c, format: (v) => v ? "true" : "false" };
    case "TINYINT":
    case "SMALLINT":
    case "INTEGER":
    case "BIGINT":
    case "HUGEINT":
    case "UTINYINT":
    case "USMALLINT":
    case "UINTEGER":
    case "UBIGINT":
      return { select: (c) => c, format: String };
    case "FLOAT":
      return { select: (c) => c, format: (v) => formatFloat32(v as number) };
    case "DOUBLE":
      return { select: (c) => c, format: (v) => formatDouble(v as number) };
    case "INTERVAL":
      return { select: (c) => c, format: (v) => formatInterval(v as DuckDBIntervalValue) };
    case "BLOB":
      return { select: (c) => c, format: (v) => formatBinary((v as DuckDBBlobValue).bytes) };
    case "DATE":
    case "TIMESTAMP":
    case "TIMESTAMP WITH TIME ZONE":
      return { select: AS_TEXT.select, format: (v) => bcLast(String(v)) };
    default:
      return AS_TEXT;
  }
}

function quote(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function sqlString(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** A table of the file as the catalogue describes it. */
interface DuckdbTable {
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly { name: string; type: string; description: string | null }[];
  readonly key: readonly string[];
}

/** Runs `work` on a read-only connection to the file, in UTC, and closes it. */
async function withFile<T>(
  path: string,
  work: (query: (sql: string, values?: DuckDBValue[]) => Promise<DuckDBValue[][]>) => Promise<T>,
): Promise<T> {
  const instance = await DuckDBInstance.create(path, {
    access_mode: "READ_ONLY",
    threads: "1",
  });
  try {
    const connection = await instance.connect();
    try {
      await connection.run("SET TimeZone = 'UTC'");
      return await work(async (sql, values) =>
        (await connection.runAndReadAll(sql, values as never)).getRows()
      );
    } finally {
      connection.closeSync();
    }
  } finally {
    instance.closeSync();
  }
}

/** The tables of the file, with columns (type, comment) and primary key, sorted by schema and name. */
async function tablesOf(
  query: (sql: string, values?: DuckDBValue[]) => Promise<DuckDBValue[][]>,
  only?: { schema: string; table: string },
): Promise<DuckdbTable[]> {
  const filter = only === undefined
    ? ""
    : ` AND schema_name = ${sqlString(only.schema)} AND table_name = ${sqlString(only.table)}`;
  const tables = await query(
    "SELECT schema_name, table_name FROM duckdb_tables() " +
      `WHERE database_name = current_database() AND NOT internal${filter} ORDER BY ALL`,
  );
  const out: DuckdbTable[] = [];
  for (const [schema, table] of tables.map((r) => r.map(String) as [string, string])) {
    const where = `database_name = current_database() AND schema_name = ${sqlString(schema)} ` +
      `AND table_name = ${sqlString(table)}`;
    const columns = await query(
      `SELECT column_name, data_type, comment FROM duckdb_columns() WHERE ${where} ` +
        "ORDER BY column_index",
    );
    const keys = await query(
      `SELECT constraint_column_names FROM duckdb_constraints() WHERE ${where} ` +
        "AND constraint_type = 'PRIMARY KEY'",
    );
    const key = keys[0]?.[0] as { items?: unknown[] } | undefined;
    out.push({
      schema,
      name: table,
      columns: columns.map(([name, type, comment]) => ({
        name: String(name),
        type: String(type),
        description: comment === null || comment === "" ? null : String(comment),
      })),
      key: (key?.items ?? []).map(String),
    });
  }
  return out;
}

/**
 * The tables of a published DuckDB file.
 *
 * @param path the file, already checked to be a plain file of the bag.
 */
export async function duckdbReleaseTables(path: string): Promise<ReleaseTable[]> {
  return await withFile(path, async (query) =>
    (await tablesOf(query)).map((t) => ({
      name: t.name,
      dataset: t.schema,
      columns: t.columns,
      key: t.key,
    })));
}

/**
 * One page of a table of a published DuckDB file.
 *
 * @param path the file, already checked to be a plain file of the bag.
 * @param sha512 the file's SHA-512 from the bag's manifest (a `rowid` position is bound to it).
 * @returns `undefined` when the file has no such table.
 * @throws {InvalidCursorError} when `after` does not fit the table.
 * @throws {ReleaseChangedError} when `after` is a `rowid` position of another version of the file.
 */
export async function duckdbReleasePage(
  path: string,
  sha512: string,
  request: ReadPageRequest,
): Promise<ReadPage | undefined> {
  return await withFile(path, async (query) => {
    const [table] = await tablesOf(query, { schema: request.dataset, table: request.table });
    if (table === undefined) return undefined;
    const readers = table.columns.map((c) => readerFor(c.type));
    const keyed = table.key.length > 0;
    const keyIndexes = table.key.map((k) => table.columns.findIndex((c) => c.name === k));
    const after = request.after;
    const values: DuckDBValue[] = [];
    let where = "";
    let order: string;
    if (keyed) {
      order = table.key.map((k) => `t.${quote(k)}`).join(", ");
      if (after !== null) {
        if (after.kind !== "key" || after.values.length !== table.key.length) {
          throw new InvalidCursorError("does not fit this table's key");
        }
        const casts = keyIndexes.map((i, n) => {
          values.push(after.values[n]!);
          return `CAST($${values.length} AS ${table.columns[i]!.type})`;
        });
        where = ` WHERE (${order}) > (${casts.join(", ")})`;
      }
    } else {
      order = "t.rowid";
      if (after !== null) {
        if (after.kind !== "row" || !/^[0-9]{1,19}$/.test(after.after)) {
          throw new InvalidCursorError("is not a row position of this table");
        }
        if (after.version !== sha512) {
          throw new ReleaseChangedError(request.dataset, request.table);
        }
        values.push(after.after);
        where = ` WHERE t.rowid > CAST($1 AS BIGINT)`;
      }
    }
    const select = table.columns.map((c, i) => readers[i]!.select(`t.${quote(c.name)}`));
    const sql = `SELECT ${select.join(", ")}, t.rowid FROM ${quote(table.schema)}.${
      quote(table.name)
    } t${where} ORDER BY ${order} LIMIT ${request.limit + 1}`;
    let rows: DuckDBValue[][];
    try {
      rows = await query(sql, values);
    } catch (e) {
      // A key value that does not cast to the key's type was never issued for this table.
      if (after !== null && /Conversion Error|Could not convert/i.test(String(e))) {
        throw new InvalidCursorError("does not fit this table's key");
      }
      throw e;
    }
    const width = table.columns.length;
    const maxChars = request.maxChars ?? MAX_PAGE_CHARS;
    const page: ReadValue[][] = [];
    let chars = 0;
    let more = false;
    let lastRowid = "";
    for (const row of rows) {
      if (pageIsFull(page.length, chars, request.limit, maxChars)) {
        more = true;
        break;
      }
      const canonical = row.slice(0, width).map((v, i) =>
        v === null ? null : readers[i]!.format(v)
      );
      lastRowid = String(row[width]);
      page.push(canonical);
      chars += rowChars(canonical);
    }
    const last = page.at(-1);
    let next: ReadPosition | null = null;
    if (more && last !== undefined) {
      next = keyed
        ? { kind: "key", values: keyIndexes.map((i) => last[i]!) }
        : { kind: "row", version: sha512, after: lastRowid };
    }
    return { columns: table.columns.map(({ name, type }) => ({ name, type })), rows: page, next };
  });
}
