/**
 * The SQL Server dialect as a source speaks it: how column types map to logical types, how identifiers
 * and string literals are written, the select list that makes the server produce canonical text (and
 * guards values over the size limit), and how each value tedious delivers is turned into canonical text.
 *
 * @module
 */
import type { CatalogColumn, TableExtract } from "../../domain/catalog.ts";
import {
  formatDouble,
  formatFloat32,
  type LogicalType,
  trimFraction,
} from "../../domain/logical_type.ts";
import { valueCanExceed, valueTooLargeMarker } from "../../ports/source_database.ts";

/** A SQL Server column type as `INFORMATION_SCHEMA.COLUMNS` describes it. */
export interface MssqlColumnType {
  /** `DATA_TYPE`, e.g. `nvarchar`, `decimal`, `datetime2`. */
  readonly dataType: string;
  /** `CHARACTER_MAXIMUM_LENGTH` (-1 for `max`). */
  readonly maxLength: number | null;
  /** `NUMERIC_PRECISION`. */
  readonly precision: number | null;
  /** `NUMERIC_SCALE`. */
  readonly scale: number | null;
  /** `DATETIME_PRECISION` (fraction digits of `time`, `datetime2`, `datetimeoffset`). */
  readonly datetimePrecision: number | null;
}

/**
 * The logical type of a SQL Server column: `bit` boolean; `tinyint`/`smallint` smallint; `int`
 * integer; `bigint` bigint; `decimal`/`numeric` decimal(p, s); `money` decimal(19, 4), `smallmoney`
 * decimal(10, 4); `real` real, `float` double (`float(n≤24)` is reported as `real`); `date`; `time`;
 * `datetime`, `datetime2`, `smalldatetime` timestamp; `datetimeoffset` timestamptz; `uniqueidentifier`
 * uuid; `json` json; binary types (`binary`, `varbinary`, `image`, `timestamp`/`rowversion`) binary;
 * everything else (character types, `xml`, `sql_variant`, ...) text.
 */
export function mssqlLogicalType(column: MssqlColumnType): LogicalType {
  switch (column.dataType.toLowerCase()) {
    case "bit":
      return { kind: "boolean" };
    case "tinyint":
    case "smallint":
      return { kind: "smallint" };
    case "int":
      return { kind: "integer" };
    case "bigint":
      return { kind: "bigint" };
    case "decimal":
    case "numeric":
      return column.precision === null || column.scale === null
        ? { kind: "numeric" }
        : { kind: "decimal", precision: column.precision, scale: column.scale };
    case "money":
      return { kind: "decimal", precision: 19, scale: 4 };
    case "smallmoney":
      return { kind: "decimal", precision: 10, scale: 4 };
    case "real":
      return { kind: "real" };
    case "float":
      return { kind: "double" };
    case "date":
      return { kind: "date" };
    case "time":
      return { kind: "time" };
    case "datetime":
    case "datetime2":
    case "smalldatetime":
      return { kind: "timestamp" };
    case "datetimeoffset":
      return { kind: "timestamptz" };
    case "uniqueidentifier":
      return { kind: "uuid" };
    case "json":
      return { kind: "json" };
    case "binary":
    case "varbinary":
    case "image":
    case "timestamp":
    case "rowversion":
      return { kind: "binary" };
    default:
      return { kind: "text" };
  }
}

/** The full declared type, e.g. `nvarchar(50)`, `varbinary(max)`, `decimal(18,2)`, `datetime2(7)`. */
export function mssqlFullType(column: MssqlColumnType): string {
  const type = column.dataType.toLowerCase();
  if (["char", "varchar", "nchar", "nvarchar", "binary", "varbinary"].includes(type)) {
    const n = column.maxLength;
    return n === null ? type : `${type}(${n === -1 ? "max" : n})`;
  }
  if ((type === "decimal" || type === "numeric") && column.precision !== null) {
    return `${type}(${column.precision},${column.scale ?? 0})`;
  }
  if (["time", "datetime2", "datetimeoffset"].includes(type) && column.datetimePrecision !== null) {
    return `${type}(${column.datetimePrecision})`;
  }
  return type;
}

/** Writes a name as a bracketed SQL Server identifier, doubling `]`. */
export function quoteMssqlIdentifier(name: string): string {
  return `[${name.replaceAll("]", "]]")}]`;
}

/** Writes a string as a T-SQL Unicode literal, doubling `'`. */
export function sqlString(value: string): string {
  return `N'${value.replaceAll("'", "''")}'`;
}

/**
 * The select-list expression for one column; the server produces canonical (or nearly canonical) text
 * wherever tedious would lose information, always as `nvarchar`: tedious decodes `nvarchar` with a plain
 * UTF-16 decode, but `varchar` through iconv-lite with the collation's code page, which costs about 1 µs a
 * value (reading the W table through raw tedious took 43 % less client CPU with `nvarchar`):
 *
 * - `decimal`/`numeric`: `CONVERT(nvarchar(50), c)`, every digit with the declared scale (`12.30`);
 * - `money`/`smallmoney`: `CONVERT(nvarchar(50), c, 2)`, style 2 = no thousands separators, 4 decimals;
 * - `datetime2`/`datetime`: `CONVERT(nvarchar(27), c, 121)` = `yyyy-mm-dd hh:mi:ss.fffffff` (all 7
 *   digits of `datetime2(7)`; trailing zeros are trimmed in code); `smalldatetime`: style 120;
 * - `datetimeoffset`: switched to UTC, cast to `datetime2(7)`, then style 121 (`+00` added in code);
 * - `date`: style 23 (`yyyy-mm-dd`); `time`: `CONVERT(nvarchar(16), c)` = `hh:mi:ss.fffffff`;
 * - `uniqueidentifier`: `LOWER(CONVERT(nchar(36), c))`;
 * - binary types: `LOWER(CONVERT(nvarchar(max), c, 2))`, hex without `0x` (`\x` added in code);
 * - `char`/`varchar`/`text`: `CONVERT(nvarchar(n), c)` (`nvarchar(max)` past 4,000 or for `max`),
 *   lossless since every code page character is in Unicode, trailing spaces of `char` kept;
 * - `sql_variant`, `xml`, `json`, `hierarchyid`, `geometry`, `geography`: as `nvarchar(max)` text
 *   (CLR types through `.ToString()`);
 * - others (integers, bit, real, float, `nchar`/`nvarchar`/`ntext`): the column itself.
 */
export function mssqlSelectExpression(column: Pick<CatalogColumn, "name" | "dataType">): string {
  const c = quoteMssqlIdentifier(column.name);
  const type = column.dataType.toLowerCase().replace(/\(.*$/, "");
  switch (type) {
    case "decimal":
    case "numeric":
      return `CONVERT(nvarchar(50), ${c})`;
    case "money":
    case "smallmoney":
      return `CONVERT(nvarchar(50), ${c}, 2)`;
    case "datetime2":
    case "datetime":
      return `CONVERT(nvarchar(27), ${c}, 121)`;
    case "smalldatetime":
      return `CONVERT(nvarchar(19), ${c}, 120)`;
    case "datetimeoffset":
      return `CONVERT(nvarchar(27), CAST(SWITCHOFFSET(${c}, '+00:00') AS datetime2(7)), 121)`;
    case "date":
      return `CONVERT(nvarchar(10), ${c}, 23)`;
    case "time":
      return `CONVERT(nvarchar(16), ${c})`;
    case "uniqueidentifier":
      return `LOWER(CONVERT(nchar(36), ${c}))`;
    case "binary":
    case "varbinary":
    case "image":
    case "timestamp":
    case "rowversion":
      return `LOWER(CONVERT(nvarchar(max), CONVERT(varbinary(max), ${c}), 2))`;
    case "char":
    case "varchar":
    case "text": {
      const length = Number(/\((\d+)\)/.exec(column.dataType)?.[1] ?? NaN);
      return `CONVERT(nvarchar(${length >= 1 && length <= 4000 ? length : "max"}), ${c})`;
    }
    case "sql_variant":
    case "xml":
    case "json":
      return `CONVERT(nvarchar(max), ${c})`;
    case "hierarchyid":
    case "geometry":
    case "geography":
      return `${c}.ToString()`;
    default:
      return c;
  }
}

/**
 * The data query `readRows` sends: each column's expression aliased `[c0]`, `[c1]`, ...
 *
 * With `maxValueBytes`, every column whose values can be longer ({@link valueCanExceed}) is guarded, so
 * that such a value fails the query on the server instead of being sent (tedious would reassemble it
 * whole first): `CASE WHEN <size> > limit THEN CONVERT(nvarchar(1), CONVERT(int, N'<marker>' +
 * CONVERT(nvarchar(20), <size>))) ELSE <expression> END`, where converting the marker to `int` raises
 * error 245 with the marker in its message ({@link guardedColumnOf}). The `nvarchar(1)` keeps the
 * column's type that of its expression. The size never exceeds the UTF-8 length of the canonical text,
 * so no value within the limit is refused: `DATALENGTH` for `char`/`varchar`/`text` (bytes of a code
 * page, or UTF-8), half of it for the UTF-16 `nchar`/`nvarchar`/`ntext`, twice it plus two for binary
 * types (their `\x` hex), and half the `DATALENGTH` of the converted text for anything else.
 */
export function mssqlReadQuery(extract: TableExtract, maxValueBytes?: number): string {
  const list = extract.table.columns
    .map((column, i) => {
      const guarded = maxValueBytes !== undefined && valueCanExceed(column, maxValueBytes);
      const value = guarded ? mssqlGuard(column, i, maxValueBytes) : mssqlSelectExpression(column);
      return `${value} AS [c${i}]`;
    })
    .join(", ");
  return `SELECT ${list} FROM ${quoteMssqlIdentifier(extract.schema)}.${
    quoteMssqlIdentifier(extract.table.name)
  }`;
}

function mssqlGuard(
  column: Pick<CatalogColumn, "name" | "dataType" | "logicalType">,
  index: number,
  maxValueBytes: number,
): string {
  const c = quoteMssqlIdentifier(column.name);
  const type = column.dataType.toLowerCase().replace(/\(.*$/, "");
  // ntext in a CASE is converted first, as every other large text type already is.
  const value = type === "ntext" ? `CONVERT(nvarchar(max), ${c})` : mssqlSelectExpression(column);
  const size = column.logicalType.kind === "binary"
    ? `CAST(DATALENGTH(${c}) AS bigint) * 2 + 2`
    : ["char", "varchar", "text"].includes(type)
    ? `DATALENGTH(${c})`
    : ["nchar", "nvarchar", "ntext"].includes(type)
    ? `DATALENGTH(${c}) / 2`
    : `DATALENGTH(${value}) / 2`;
  const raise = `CONVERT(int, N'${valueTooLargeMarker(index)}' + CONVERT(nvarchar(20), ${size}))`;
  return `CASE WHEN ${size} > ${maxValueBytes} THEN CONVERT(nvarchar(1), ${raise}) ` +
    `ELSE ${value} END`;
}

/**
 * The canonical-text conversion of one non-null value as tedious delivers it for the expression of
 * {@link mssqlSelectExpression}: booleans `true`/`false`; numbers (`tinyint`..`int`) as digits and
 * `bigint` strings as sent; `real` with the fewest digits that read back to the same 32-bit float;
 * `float` by `formatDouble`; decimal text as sent; date/time text with trailing fraction zeros trimmed,
 * `+00` added for timestamptz; binary hex with `\x` in front; text as sent.
 */
export function mssqlCanonicalConverter(
  column: Pick<CatalogColumn, "dataType" | "logicalType">,
): (value: unknown) => string {
  switch (column.logicalType.kind) {
    case "boolean":
      return (v) => typeof v === "boolean" ? String(v) : Number(v) === 0 ? "false" : "true";
    case "real":
      return (v) => formatFloat32(Number(v));
    case "double":
      return (v) => formatDouble(Number(v));
    case "time":
    case "timestamp":
      return (v) => trimFraction(String(v));
    case "timestamptz":
      return (v) => `${trimFraction(String(v))}+00`;
    case "uuid":
      return (v) => String(v).toLowerCase();
    case "binary":
      return (v) =>
        v instanceof Uint8Array
          ? `\\x${Array.from(v, (b) => b.toString(16).padStart(2, "0")).join("")}`
          : `\\x${String(v).toLowerCase()}`;
    default:
      return (v) => v instanceof Date ? v.toISOString() : String(v);
  }
}
