/**
 * The MySQL and MariaDB dialect as a source speaks it: how column types map to logical types, how
 * identifiers are quoted, the select list that guards values over the size limit, and how each value
 * the server sends is turned into canonical text.
 *
 * @module
 */
import type { QueryOptions, TypeCastField } from "mysql2/promise";
import type { CatalogColumn, TableExtract } from "../../domain/catalog.ts";
import {
  type CanonicalValue,
  formatBinary,
  formatDouble,
  formatFloat32,
  type LogicalType,
  trimFraction,
} from "../../domain/logical_type.ts";
import { valueCanExceed } from "../../ports/source_database.ts";

/** The facts about a MySQL column that decide its logical type, from `information_schema.columns`. */
export interface MysqlColumnType {
  /** `data_type`, e.g. `int`, `decimal`, `longtext`. */
  readonly dataType: string;
  /** `column_type`, e.g. `int(10) unsigned`, `tinyint(1)`, `decimal(18,2)`, `bit(5)`. */
  readonly columnType: string;
  /** `numeric_precision`, for `decimal`. */
  readonly precision: number | null;
  /** `numeric_scale`, for `decimal`. */
  readonly scale: number | null;
  /** MariaDB: the column has a `json_valid(col)` check, i.e. it was declared `JSON`. */
  readonly jsonCheck?: boolean;
}

const BINARY_TYPES: ReadonlySet<string> = new Set([
  "binary",
  "varbinary",
  "tinyblob",
  "blob",
  "mediumblob",
  "longblob",
  "geometry",
  "point",
  "linestring",
  "polygon",
  "multipoint",
  "multilinestring",
  "multipolygon",
  "geometrycollection",
  "geomcollection",
]);

/**
 * The logical type of a MySQL or MariaDB column.
 *
 * `tinyint(1)` is boolean (MySQL's `BOOLEAN`); unsigned integers move up one size where the signed type
 * would overflow (`smallint unsigned` → integer, `int unsigned` → bigint, `bigint unsigned` → numeric);
 * `year` is smallint; `datetime` is timestamp and `timestamp` is timestamptz (MySQL stores it in UTC);
 * MariaDB's `uuid` is uuid; MariaDB's `JSON` alias (`longtext` with a `json_valid` check) is json;
 * binary strings, blobs and spatial types are binary; `bit` and everything else is text.
 */
export function mysqlLogicalType(column: MysqlColumnType): LogicalType {
  const dataType = column.dataType.toLowerCase();
  const columnType = column.columnType.toLowerCase();
  const unsigned = /\bunsigned\b/.test(columnType);
  switch (dataType) {
    case "tinyint":
      return columnType === "tinyint(1)" ? { kind: "boolean" } : { kind: "smallint" };
    case "smallint":
      return unsigned ? { kind: "integer" } : { kind: "smallint" };
    case "year":
      return { kind: "smallint" };
    case "mediumint":
      return { kind: "integer" };
    case "int":
    case "integer":
      return unsigned ? { kind: "bigint" } : { kind: "integer" };
    case "bigint":
      return unsigned ? { kind: "numeric" } : { kind: "bigint" };
    case "decimal":
    case "numeric":
      return column.precision === null || column.scale === null
        ? { kind: "numeric" }
        : { kind: "decimal", precision: column.precision, scale: column.scale };
    case "float":
      return { kind: "real" };
    case "double":
    case "real":
      return { kind: "double" };
    case "date":
      return { kind: "date" };
    case "time":
      return { kind: "time" };
    case "datetime":
      return { kind: "timestamp" };
    case "timestamp":
      return { kind: "timestamptz" };
    case "json":
      return { kind: "json" };
    case "longtext":
      return column.jsonCheck === true ? { kind: "json" } : { kind: "text" };
    case "uuid":
      return { kind: "uuid" };
    default:
      return BINARY_TYPES.has(dataType) ? { kind: "binary" } : { kind: "text" };
  }
}

/** Back-quotes an identifier, doubling the back-quotes inside it. */
export function quoteMysqlIdentifier(name: string): string {
  return `\`${name.replaceAll("`", "``")}\``;
}

/** Where `typeCast` keeps a column's reader on mysql2's per-column field object. */
const READER = Symbol("cr8tor.columnReader");

/** How one column is selected, read off the wire and turned into canonical text. */
interface ColumnReader {
  /** The select-list expression. */
  readonly select: string;
  /** Read the value as bytes (binary, bit) instead of text. */
  readonly bytes: boolean;
  /**
   * A MySQL `JSON` column: its text is always UTF-8, whatever the result's field says (MySQL labels it
   * binary, and a guard's `IF()` may not keep the JSON type).
   */
  readonly json: boolean;
  readonly convert: (value: string & Uint8Array) => string;
}

/** The most bytes a MySQL text or blob type holds: `LONGTEXT`, `LONGBLOB` and `JSON` are not bounded here. */
const MYSQL_TYPE_BYTES: ReadonlyMap<string, number> = new Map([
  ["tinytext", 255],
  ["tinyblob", 255],
  ["text", 65_535],
  ["blob", 65_535],
  ["mediumtext", 16_777_215],
  ["mediumblob", 16_777_215],
]);

/**
 * {@link valueCanExceed}, knowing MySQL's bounded text and blob types: a `TEXT` value is at most
 * 65,535 bytes, whose canonical text (UTF-8 from a single-byte charset, or `\x` hex) is at most twice
 * that plus two; such columns need no guard under a larger limit.
 */
function mysqlValueCanExceed(column: CatalogColumn, maxValueBytes: number): boolean {
  const bytes = MYSQL_TYPE_BYTES.get(column.dataType.toLowerCase().trim());
  if (bytes !== undefined) return 2 * bytes + 2 > maxValueBytes;
  return valueCanExceed(column, maxValueBytes);
}

/** The query {@link mysqlReadQuery} builds. */
export interface MysqlReadQuery extends QueryOptions {
  /** Whether the last column is the guard column, which names the first value over the limit. */
  readonly guarded: boolean;
}

/**
 * The mysql2 query `readRows` runs: the extract's columns through quoted identifiers, aliased `c0`,
 * `c1`, ... so the type cast finds each column's reader by position, with rows as arrays.
 *
 * With `maxValueBytes`, every column whose values can be longer ({@link mysqlValueCanExceed}) is
 * guarded, since MySQL has no way to raise an error from a SELECT: the column is selected as
 * `IF(<size> > limit, NULL, col)` and one more column, last, is `CASE WHEN <size of the first> > limit
 * THEN 0 WHEN ... END`: NULL when every value fits, else the index of the first column over the limit.
 * The size is `LENGTH(col)`, the bytes the server holds (for `utf8mb4` columns the UTF-8 length; for
 * binary columns times two plus two, the length of their hex text). A value over the limit is therefore
 * never sent.
 */
export function mysqlReadQuery(extract: TableExtract, maxValueBytes?: number): MysqlReadQuery {
  const readers = extract.table.columns.map(columnReader);
  const sizes = extract.table.columns.map((column) => {
    if (maxValueBytes === undefined || !mysqlValueCanExceed(column, maxValueBytes)) {
      return undefined;
    }
    const name = quoteMysqlIdentifier(column.name);
    return column.logicalType.kind === "binary" ? `(LENGTH(${name}) * 2 + 2)` : `LENGTH(${name})`;
  });
  const over = (i: number) => `${sizes[i]} > ${maxValueBytes}`;
  const items = readers.map((r, i) =>
    sizes[i] === undefined ? r.select : `IF(${over(i)}, NULL, ${r.select})`
  );
  const guards = sizes.flatMap((size, i) =>
    size === undefined ? [] : [`WHEN ${over(i)} THEN ${i}`]
  );
  if (guards.length > 0) items.push(`CASE ${guards.join(" ")} END`);
  const list = items.map((item, i) => `${item} AS \`c${i}\``).join(", ");
  return {
    sql: `SELECT ${list} FROM ${quoteMysqlIdentifier(extract.schema)}.${
      quoteMysqlIdentifier(extract.table.name)
    }`,
    rowsAsArray: true,
    guarded: guards.length > 0,
    typeCast: (field: TypeCastField): CanonicalValue => {
      // mysql2 passes the same field object for a column on every row: find its reader once.
      const cached = field as TypeCastField & { [READER]?: ColumnReader | undefined };
      const reader = cached[READER] ??= readers[Number(field.name.slice(1))];
      if (reader === undefined) return field.string();
      const value = reader.bytes
        ? field.buffer()
        : field.type === "JSON" || reader.json
        ? field.string("utf8") // MySQL labels JSON text as binary; it is always UTF-8
        : field.string();
      return value === null ? null : reader.convert(value as string & Uint8Array);
    },
  };
}

/**
 * The canonical-text conversion of one MySQL value, by logical kind. `text` is what the server sends
 * (or its bytes, for `binary` and `bit(n)` columns).
 *
 * - integers and decimals: as sent, leading zeros of `ZEROFILL` columns and `YEAR` removed;
 * - double: the server's shortest digits, laid out by `formatDouble`;
 * - real: `FLOAT` is selected as `col + 0E0` (the exact value as a double, since MySQL sends `FLOAT`
 *   with only 6 significant digits), then written with the fewest digits that read back to the same
 *   32-bit float;
 * - boolean: `0` is false, anything else true; time and datetime: trailing zeros of the fraction
 *   removed; timestamp: the same plus `+00` (the session runs in UTC); uuid: lower case;
 * - binary: `\x` and hex; `bit(n)`: n binary digits, as PostgreSQL writes `bit(n)`.
 */
export function mysqlCanonicalConverter(
  column: Pick<CatalogColumn, "dataType" | "logicalType">,
): (value: string & Uint8Array) => string {
  const type = column.dataType.toLowerCase();
  const bits = /^bit\((\d+)\)/.exec(type);
  if (bits !== null) return (bytes) => formatBits(bytes, Number(bits[1]));
  switch (column.logicalType.kind) {
    case "boolean":
      return (s) => Number(s) === 0 ? "false" : "true";
    case "smallint":
    case "integer":
    case "bigint":
    case "decimal":
    case "numeric":
      return /zerofill|^year/.test(type) ? stripLeadingZeros : identity;
    case "real":
      return (s) => formatFloat32(Number(s));
    case "double":
      return (s) => formatDouble(Number(s));
    case "time":
    case "timestamp":
      return trimFraction;
    case "timestamptz":
      return (s) => `${trimFraction(s)}+00`;
    case "uuid":
      return (s) => s.toLowerCase();
    case "binary":
      return formatBinary;
    default:
      return identity;
  }
}

function columnReader(column: CatalogColumn): ColumnReader {
  const name = quoteMysqlIdentifier(column.name);
  const kind = column.logicalType.kind;
  return {
    select: kind === "real" ? `(${name} + 0E0)` : name,
    bytes: kind === "binary" || /^bit\(/i.test(column.dataType),
    json: column.dataType.toLowerCase() === "json",
    convert: mysqlCanonicalConverter(column),
  };
}

function identity(s: string): string {
  return s;
}

function stripLeadingZeros(s: string): string {
  return s.replace(/^(-?)0+(?=\d)/, "$1");
}

function formatBits(bytes: Uint8Array, width: number): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(2).padStart(8, "0");
  return out.length > width ? out.slice(out.length - width) : out.padStart(width, "0");
}

/**
 * How `readCsv` turns the bytes the server sends for a column into its CSV field, the same bytes as
 * {@link mysqlCanonicalConverter}'s text encoded by `domain/csv.ts` (see `mysql_csv.ts`).
 */
export const CsvEncoding = {
  /** As sent: integers, decimals, dates (never quoted). */
  plain: 0,
  /** Leading zeros removed: `ZEROFILL` and `YEAR`. */
  stripZeros: 1,
  /** `0` is false, anything else true. */
  boolean: 2,
  /** The server's digits of a double, laid out by `formatDouble`. */
  double: 3,
  /** A `FLOAT` selected as a double, written by `formatFloat32`. */
  real: 4,
  /** Trailing zeros of the fraction removed: time, datetime. */
  fraction: 5,
  /** The same plus `+00`: timestamp. */
  fractionUtc: 6,
  /** Lower case: MariaDB's `UUID`. */
  uuid: 7,
  /** `\x` and lower-case hex of the bytes. */
  binary: 8,
  /** The bytes as binary digits, as many as the column's width: `bit(n)`. */
  bits: 9,
  /** UTF-8 text, quoted when empty or holding `"`, `,`, CR or LF. */
  text: 10,
} as const;

/** One of {@link CsvEncoding}. */
export type CsvEncoding = typeof CsvEncoding[keyof typeof CsvEncoding];

/**
 * The CSV encoding of a column, by the rules of {@link mysqlCanonicalConverter}, and for `bit(n)` its
 * width.
 */
export function mysqlCsvEncoding(
  column: Pick<CatalogColumn, "dataType" | "logicalType">,
): { readonly encoding: CsvEncoding; readonly width: number } {
  const type = column.dataType.toLowerCase();
  const bits = /^bit\((\d+)\)/.exec(type);
  const of = (encoding: CsvEncoding) => ({ encoding, width: 0 });
  if (bits !== null) return { encoding: CsvEncoding.bits, width: Number(bits[1]) };
  switch (column.logicalType.kind) {
    case "boolean":
      return of(CsvEncoding.boolean);
    case "smallint":
    case "integer":
    case "bigint":
    case "decimal":
    case "numeric":
      return of(/zerofill|^year/.test(type) ? CsvEncoding.stripZeros : CsvEncoding.plain);
    case "real":
      return of(CsvEncoding.real);
    case "double":
      return of(CsvEncoding.double);
    case "date":
      return of(CsvEncoding.plain);
    case "time":
    case "timestamp":
      return of(CsvEncoding.fraction);
    case "timestamptz":
      return of(CsvEncoding.fractionUtc);
    case "uuid":
      return of(CsvEncoding.uuid);
    case "binary":
      return of(CsvEncoding.binary);
    default:
      return of(CsvEncoding.text);
  }
}
