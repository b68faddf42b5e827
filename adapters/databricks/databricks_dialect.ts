/**
 * The Databricks SQL dialect as a source speaks it: how identifiers are quoted, the select list that has
 * the warehouse convert lossy values first (and guard values over the size limit), how each value the
 * driver delivers is turned into canonical text, and the logical type of a Databricks (Unity Catalog)
 * column, from its `ColumnInfo.type_name` and `type_text`. Both halves of the Databricks source (the
 * Unity Catalog catalogue and the SQL data reader) rely on exactly this table:
 *
 * | `type_name`                        | logical type                                            |
 * | ---------------------------------- | ------------------------------------------------------- |
 * | BOOLEAN                            | boolean                                                 |
 * | BYTE, SHORT                        | smallint                                                |
 * | INT                                | integer                                                 |
 * | LONG                               | bigint                                                  |
 * | FLOAT                              | real                                                    |
 * | DOUBLE                             | double                                                  |
 * | DECIMAL                            | decimal(p, s) from `type_text`; bare `decimal` = (10, 0) |
 * | DATE                               | date                                                    |
 * | TIMESTAMP                          | timestamptz (a Spark TIMESTAMP is an instant)           |
 * | TIMESTAMP_NTZ                      | timestamp (wall-clock time, no zone)                    |
 * | STRING, CHAR, VARCHAR              | text                                                    |
 * | BINARY                             | binary                                                  |
 * | ARRAY, MAP, STRUCT, VARIANT        | json                                                    |
 * | INTERVAL                           | text (Spark's interval text is not PostgreSQL's)        |
 * | anything else (NULL, USER_DEFINED_TYPE, TABLE_TYPE, ...) | text                      |
 *
 * @module
 */
import type { CatalogColumn, TableExtract } from "../../domain/catalog.ts";
import { civilFromDays } from "../../domain/civil_date.ts";
import {
  formatBinary,
  formatDouble,
  formatFloat32,
  type LogicalType,
} from "../../domain/logical_type.ts";
import { valueCanExceed, valueTooLargeMarker } from "../../ports/source_database.ts";

/** The two `ColumnInfo` fields the mapping reads. */
export interface DatabricksColumnType {
  /** The type family, e.g. `DECIMAL`, `LONG`, `ARRAY` (compared ignoring case). */
  readonly type_name: string;
  /** The full type, e.g. `decimal(18,2)`, `array<string>`. */
  readonly type_text: string;
}

/** Spark's `DECIMAL` with no precision and scale is `decimal(10,0)`. */
const DEFAULT_DECIMAL: LogicalType = { kind: "decimal", precision: 10, scale: 0 };

/** The largest precision Spark allows. */
const MAX_DECIMAL_PRECISION = 38;

const DECIMAL_TEXT = /^\s*(?:decimal|dec|numeric)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*$/i;

const SIMPLE: Readonly<Record<string, LogicalType>> = {
  BOOLEAN: { kind: "boolean" },
  BYTE: { kind: "smallint" },
  SHORT: { kind: "smallint" },
  INT: { kind: "integer" },
  LONG: { kind: "bigint" },
  FLOAT: { kind: "real" },
  DOUBLE: { kind: "double" },
  DATE: { kind: "date" },
  TIMESTAMP: { kind: "timestamptz" },
  TIMESTAMP_NTZ: { kind: "timestamp" },
  STRING: { kind: "text" },
  CHAR: { kind: "text" },
  VARCHAR: { kind: "text" },
  BINARY: { kind: "binary" },
  ARRAY: { kind: "json" },
  MAP: { kind: "json" },
  STRUCT: { kind: "json" },
  VARIANT: { kind: "json" },
  INTERVAL: { kind: "text" },
};

/**
 * The logical type of a Databricks column (see the module table).
 *
 * @param column the column's `type_name` and `type_text`, as Unity Catalog reports them.
 * @returns the logical type; `text` for any type the table does not name.
 * @throws {SyntaxError} when a DECIMAL column's `type_text` is not `decimal`, `decimal(p)` or
 *   `decimal(p,s)` with 1 <= p <= 38 and 0 <= s <= p.
 */
export function databricksLogicalType(column: DatabricksColumnType): LogicalType {
  const name = column.type_name.trim().toUpperCase();
  if (name === "DECIMAL") return parseDecimal(column.type_text);
  return Object.hasOwn(SIMPLE, name) ? SIMPLE[name]! : { kind: "text" };
}

function parseDecimal(typeText: string): LogicalType {
  const match = DECIMAL_TEXT.exec(typeText);
  if (match === null) {
    throw new SyntaxError(
      `Cannot parse Databricks decimal type ${JSON.stringify(typeText)}: expected decimal(p,s)`,
    );
  }
  const [, precisionText, scaleText] = match;
  if (precisionText === undefined) return DEFAULT_DECIMAL;
  const precision = Number(precisionText);
  const scale = scaleText === undefined ? 0 : Number(scaleText);
  if (precision < 1 || precision > MAX_DECIMAL_PRECISION || scale > precision) {
    throw new SyntaxError(
      `Cannot parse Databricks decimal type ${
        JSON.stringify(typeText)
      }: precision must be 1 to ${MAX_DECIMAL_PRECISION} and scale 0 to the precision`,
    );
  }
  return { kind: "decimal", precision, scale };
}

/** Writes a name as a Databricks identifier: in backticks, backticks doubled. */
export function quoteDatabricksIdentifier(name: string): string {
  return `\`${name.replaceAll("`", "``")}\``;
}

/** `catalog`.`schema`.`table`, each part quoted. */
export function databricksTableName(catalog: string, schema: string, table: string): string {
  return [catalog, schema, table].map(quoteDatabricksIdentifier).join(".");
}

const STRING_TYPES = /^\s*(string|char|varchar|character)\b/i;

/**
 * The select-list expression for one column, chosen so that its value reaches JS exactly:
 *
 * - boolean, smallint, integer, bigint, real, double, binary: the column itself (Arrow Bool, Int8/16/32,
 *   Int64 as a JS `bigint`, Float32/64, Binary);
 * - decimal: `CAST(c AS STRING)`, all digits as the server holds them; plain under ANSI mode, possibly
 *   `0E-10` style without it (see {@link normalizeDecimal});
 * - date: `unix_date(c)`, days since 1970-01-01 as an INT, whatever the year;
 * - timestamp, timestamptz: `unix_micros(CAST(c AS TIMESTAMP))`, microseconds since 1970 UTC as a
 *   BIGINT (for TIMESTAMP_NTZ the cast reads the wall clock in the session's UTC zone; for TIMESTAMP it
 *   does nothing);
 * - json (ARRAY, MAP, STRUCT, VARIANT): `to_json(c)`;
 * - text: the column itself for STRING, CHAR and VARCHAR, `CAST(c AS STRING)` for anything else
 *   (INTERVAL as its SQL literal, types without a closer match).
 */
export function databricksSelectExpression(
  column: Pick<CatalogColumn, "name" | "dataType" | "logicalType">,
): string {
  const c = quoteDatabricksIdentifier(column.name);
  switch (column.logicalType.kind) {
    case "boolean":
    case "smallint":
    case "integer":
    case "bigint":
    case "real":
    case "double":
    case "binary":
      return c;
    case "date":
      return `unix_date(${c})`;
    case "timestamp":
    case "timestamptz":
      return `unix_micros(CAST(${c} AS TIMESTAMP))`;
    case "json":
      return `to_json(${c})`;
    case "text":
    case "uuid":
      return STRING_TYPES.test(column.dataType) ? c : `CAST(${c} AS STRING)`;
    default:
      return `CAST(${c} AS STRING)`;
  }
}

/**
 * The data query `readRows` sends: each column's expression aliased `c0`, `c1`, ... (the driver keys
 * row objects by column name), from the fully qualified table.
 *
 * With `maxValueBytes`, every column whose values can be longer ({@link valueCanExceed}) is guarded, so
 * that the warehouse fails the statement instead of sending such a value in an Arrow batch:
 * `CASE WHEN <size> > limit THEN raise_error(concat('<marker>', <size>)) ELSE <expression> END`, the
 * size being `octet_length` of the expression (UTF-8 bytes of a string; for binary, twice the bytes
 * plus two, the length of its `\x` hex). `raise_error` fails with the marker in its message
 * ({@link guardedColumnOf}); its type is void, so the column keeps its expression's type.
 *
 * @throws {RangeError} when the extract selects no columns.
 */
export function databricksReadQuery(
  catalog: string,
  extract: TableExtract,
  maxValueBytes?: number,
): string {
  const columns = extract.table.columns;
  if (columns.length === 0) {
    throw new RangeError(`Cannot read table "${extract.table.name}": no columns are selected`);
  }
  const list = columns
    .map((column, i) => {
      const value = databricksSelectExpression(column);
      if (maxValueBytes === undefined || !valueCanExceed(column, maxValueBytes)) {
        return `${value} AS \`c${i}\``;
      }
      const size = column.logicalType.kind === "binary"
        ? `octet_length(${value}) * 2 + 2`
        : `octet_length(${value})`;
      const raise = `raise_error(concat('${valueTooLargeMarker(i)}', ${size}))`;
      return `CASE WHEN ${size} > ${maxValueBytes} THEN ${raise} ELSE ${value} END AS \`c${i}\``;
    })
    .join(", ");
  return `SELECT ${list} FROM ${databricksTableName(catalog, extract.schema, extract.table.name)}`;
}

/**
 * The canonical-text conversion of one non-null value as the driver delivers it for the expression of
 * {@link databricksSelectExpression}: booleans `true`/`false`; integers (JS numbers or bigints) as
 * digits; real with the fewest digits that read back to the same 32-bit float, double by
 * `formatDouble`; decimal text normalised to the declared scale; days and microseconds since 1970 as
 * `YYYY-MM-DD` and `YYYY-MM-DD HH:MM:SS[.ffffff]` (`+00` for timestamptz; years before 1 as `BC`); bytes
 * as `\x` hex; text as sent.
 */
export function databricksCanonicalConverter(
  column: Pick<CatalogColumn, "logicalType">,
): (value: unknown) => string {
  const type = column.logicalType;
  switch (type.kind) {
    case "boolean":
      return (v) => v === true ? "true" : v === false ? "false" : String(v);
    case "real":
      return (v) => formatFloat32(Number(v));
    case "double":
      return (v) => formatDouble(Number(v));
    case "decimal":
      return (v) => normalizeDecimal(String(v), type.scale);
    case "numeric":
      return (v) => normalizeDecimal(String(v), undefined);
    case "date":
      return (v) => formatDays(Number(v));
    case "timestamp":
      return (v) => formatMicros(toBigInt(v), "");
    case "timestamptz":
      return (v) => formatMicros(toBigInt(v), "+00");
    case "binary":
      return (v) => v instanceof Uint8Array ? formatBinary(v) : String(v);
    default:
      return (v) => String(v);
  }
}

/**
 * Turns a decimal as Spark writes it (`BigDecimal.toPlainString`, or `toString` outside ANSI mode:
 * `0E-10`, `1.5E-7`, `1E+3`) into plain digits with exactly `scale` fraction digits. Digits are never
 * dropped: a value with more fraction digits than `scale` keeps them. Text that is not a number
 * (`NaN`) is returned as is.
 */
export function normalizeDecimal(text: string, scale: number | undefined): string {
  if (scale !== undefined && isPlainWithScale(text, scale)) return text;
  const match = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text.trim());
  if (match === null || (match[2] === "" && (match[3] ?? "") === "")) return text;
  const fraction = match[3] ?? "";
  let digits = (match[2]! + fraction).replace(/^0+(?=\d)/, "");
  let exponent = Number(match[4] ?? "0") - fraction.length; // value = digits × 10^exponent
  const wanted = scale ?? Math.max(0, -exponent);
  if (-exponent < wanted) {
    digits += "0".repeat(wanted + exponent);
    exponent = -wanted;
  }
  const places = -exponent;
  const padded = digits.padStart(places + 1, "0");
  const cut = padded.length - places;
  const body = places === 0 ? padded : `${padded.slice(0, cut)}.${padded.slice(cut)}`;
  return match[1] === "-" && /[1-9]/.test(digits) ? `-${body}` : body;
}

/** Whether `text` is already `-?digits[.digits]` with exactly `scale` fraction digits (the usual case). */
function isPlainWithScale(text: string, scale: number): boolean {
  const start = text.charCodeAt(0) === 45 ? 1 : 0; // "-"
  const dot = scale === 0 ? text.length : text.length - scale - 1;
  if (dot <= start || (scale > 0 && text.charCodeAt(dot) !== 46)) return false; // "."
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (i !== dot && (c < 48 || c > 57)) return false;
  }
  // "-0.00" is not what Spark writes; the full path drops the sign of a zero.
  return start === 0 || /[1-9]/.test(text);
}

function toBigInt(value: unknown): bigint {
  return typeof value === "bigint" ? value : BigInt(value as number | string);
}

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `YYYY-MM-DD` and whether it is BC (year 0 is 1 BC, as PostgreSQL counts). */
function dateText(days: number): [text: string, bc: boolean] {
  const [year, month, day] = civilFromDays(days);
  const bc = year < 1;
  const shown = String(bc ? 1 - year : year).padStart(4, "0");
  return [`${shown}-${pad2(month)}-${pad2(day)}`, bc];
}

/** Days since 1970-01-01 as canonical date text. */
function formatDays(days: number): string {
  const [text, bc] = dateText(days);
  return bc ? `${text} BC` : text;
}

const MICROS_PER_DAY = 86_400_000_000n;

/** Microseconds since 1970-01-01 00:00 as canonical timestamp text, `suffix` before any `BC`. */
function formatMicros(micros: bigint, suffix: string): string {
  let days = micros / MICROS_PER_DAY;
  let rest = micros % MICROS_PER_DAY;
  if (rest < 0n) {
    rest += MICROS_PER_DAY;
    days -= 1n;
  }
  const inDay = Number(rest);
  const seconds = Math.floor(inDay / 1_000_000);
  const us = inDay % 1_000_000;
  const [date, bc] = dateText(Number(days));
  let fraction = "";
  if (us !== 0) fraction = `.${String(us).padStart(6, "0").replace(/0+$/, "")}`;
  const time = `${pad2(Math.floor(seconds / 3600))}:${pad2(Math.floor(seconds / 60) % 60)}:${
    pad2(seconds % 60)
  }`;
  return `${date} ${time}${fraction}${suffix}${bc ? " BC" : ""}`;
}
