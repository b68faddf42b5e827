/**
 * The PostgreSQL dialect as a source speaks it: how its types map to logical types, how identifiers are
 * quoted, and how values are turned into canonical text on the server (the canonical session settings
 * and the select list every read uses). What a destination table looks like is in `postgres_columns.ts`.
 *
 * @module
 */
import type { TableExtract } from "../../domain/catalog.ts";
import type { LogicalType } from "../../domain/logical_type.ts";
import { valueCanExceed, valueTooLargeMarker } from "../../ports/source_database.ts";

/**
 * The session settings under which PostgreSQL's text output is the canonical text of
 * `domain/logical_type.ts`. Sent as startup parameters by `postgresClientOptions` (`postgres_source_database.ts`) and set again on
 * the connection before every read, so a client built some other way reads the same text.
 */
export const CANONICAL_SESSION = {
  DateStyle: "ISO",
  TimeZone: "UTC",
  extra_float_digits: "1",
  bytea_output: "hex",
  IntervalStyle: "postgres",
  client_encoding: "UTF8",
} as const;

const TEXT: LogicalType = { kind: "text" };

const SIMPLE_TYPES: ReadonlyMap<string, LogicalType> = new Map<string, LogicalType>([
  ["bool", { kind: "boolean" }],
  ["int2", { kind: "smallint" }],
  ["int4", { kind: "integer" }],
  ["int8", { kind: "bigint" }],
  ["float4", { kind: "real" }],
  ["float8", { kind: "double" }],
  ["date", { kind: "date" }],
  ["time", { kind: "time" }],
  ["timestamp", { kind: "timestamp" }],
  ["timestamptz", { kind: "timestamptz" }],
  ["interval", { kind: "interval" }],
  ["uuid", { kind: "uuid" }],
  ["json", { kind: "json" }],
  ["jsonb", { kind: "json" }],
  ["bytea", { kind: "binary" }],
]);

/**
 * The logical type of a built-in PostgreSQL type (domains resolved to their base type first).
 *
 * @param typeName the `pg_type.typname` of a type in `pg_catalog`, e.g. `int4`, `numeric`, `timetz`.
 * @param formatted `format_type(type, typmod)`, e.g. `numeric(18,2)`; only read for `numeric`.
 * @returns the mapped type; `text` for everything without a closer match (character types, `timetz`,
 *   `money`, enums, arrays, ranges, geometric and network types, ...). A `numeric` whose declared
 *   scale is negative or larger than its precision (allowed since PostgreSQL 15) is plain `numeric`.
 */
export function postgresLogicalType(typeName: string, formatted: string): LogicalType {
  if (typeName === "numeric") {
    const match = /^numeric\((\d+),(-?\d+)\)$/.exec(formatted);
    if (match === null) return { kind: "numeric" };
    const precision = Number(match[1]);
    const scale = Number(match[2]);
    return scale < 0 || scale > precision
      ? { kind: "numeric" }
      : { kind: "decimal", precision, scale };
  }
  return SIMPLE_TYPES.get(typeName) ?? TEXT;
}

/** Double-quotes an identifier, doubling the quotes inside it. */
export function quotePostgresIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

// The shortest float4 text in exponent form with an exponent from 6 to 14 (`1.234567e+06`).
const FLOAT4_EXPONENT_6_TO_14 = "e\\+(0[6-9]|1[0-4])$";

/**
 * The logical types whose values COPY writes as their canonical text without a cast: their type's output
 * function, which COPY calls, is what a `::text` cast calls too (an I/O conversion, `pg_cast` has no
 * function for them). Not `boolean` (`bool::text` is `true`, its output `t`) nor `real` (see
 * {@link postgresSelectList}); `text` only for the types below.
 */
const OUTPUT_IS_CANONICAL = new Set<LogicalType["kind"]>([
  "smallint",
  "integer",
  "bigint",
  "decimal",
  "numeric",
  "double",
  "date",
  "time",
  "timestamp",
  "timestamptz",
  "interval",
  "uuid",
  "json",
  "binary",
]);

/** Text types whose values are their text as they are (binary-coercible to `text`). */
const TEXT_AS_IS = /^(text|character varying(\(\d+\))?)$/;

/** Whether COPY writes the column's values as their canonical text without a cast. */
function copiedAsIs(column: TableExtract["table"]["columns"][number]): boolean {
  return OUTPUT_IS_CANONICAL.has(column.logicalType.kind) ||
    (column.logicalType.kind === "text" && TEXT_AS_IS.test(column.dataType));
}

/** How the rows of a select list are read. */
export interface SelectListOptions {
  /**
   * `rows` (default): through the row protocol, every value cast to `text` (the client would parse
   * other types). `copy`: by `COPY ... TO STDOUT`, where a column whose type's output is its canonical
   * text is selected as it is ({@link OUTPUT_IS_CANONICAL}): the same bytes, without a cast per value,
   * which costs the server about a sixth of the COPY (the 1M-row W table: 2.7-3.2 s against 3.2-3.6 s).
   */
  readonly via?: "rows" | "copy";
  /** Guards the values that can be longer (see {@link postgresSelectList}). */
  readonly maxValueBytes?: number | undefined;
}

/**
 * The select list `readRows`, `readCsv` and the release reader share: each extract column as server
 * text, named as itself. `real` columns get one more step, because PostgreSQL writes `float4` in exponent
 * form from an exponent of 6 while the canonical form (that of `float8`) waits until 15: in between, the
 * shortest `float4` digits go through `numeric` to lose their exponent (`1.234567e+06` becomes
 * `1234567`). The test is on the text, not the value, since `1e+15` is the shortest text of a float just
 * below 1e15.
 *
 * With `maxValueBytes`, every column whose values can be longer ({@link valueCanExceed}) is guarded:
 * `case when <size> > limit then (<marker> || <size>)::int4::text else <text> end`, where the size is
 * `octet_length` of the text (of the bytes, times two plus two, for `bytea`, whose hex text is not
 * built). Casting the marker to an integer fails the query with the marker in the message, which
 * {@link guardedColumnOf} recognises, before the value is sent. `octet_length` of a text column reads
 * its stored length without decompressing or fetching it. (The marker includes the size so that it is
 * not a constant: PostgreSQL folds a constant CASE branch, and would fail every query.)
 */
export function postgresSelectList(extract: TableExtract, options: SelectListOptions = {}): string {
  const { maxValueBytes, via = "rows" } = options;
  return extract.table.columns.map((column, index) => {
    const name = quotePostgresIdentifier(column.name);
    const guarded = maxValueBytes !== undefined && valueCanExceed(column, maxValueBytes);
    // A guard's CASE gives text: only a text column can stand in it as it is.
    const asIs = via === "copy" && copiedAsIs(column) &&
      (!guarded || column.logicalType.kind === "text");
    const value = column.logicalType.kind === "real"
      ? `case when ${name}::text ~ '${FLOAT4_EXPONENT_6_TO_14}' ` +
        `then ${name}::text::numeric::text else ${name}::text end`
      : asIs
      ? name
      : `${name}::text`;
    if (!guarded) return `${value} as ${name}`;
    const size = column.logicalType.kind === "binary"
      ? `(octet_length(${name})::int8 * 2 + 2)`
      : `octet_length(${value})`;
    const marker = `'${valueTooLargeMarker(index)}'`;
    return `case when ${size} > ${maxValueBytes} then (${marker} || ${size})::int4::text ` +
      `else ${value} end as ${name}`;
  }).join(", ");
}
