/**
 * How each logical type is stored in a PostgreSQL destination, and the DDL of a destination table.
 *
 * Every canonical text form (`domain/logical_type.ts`) is valid PostgreSQL input for the column type
 * below, in a session with the canonical settings, so values are loaded with `COPY ... FROM STDIN
 * (FORMAT csv)` as they are, and read back byte for byte the same, with one exception: `time`,
 * `timestamp` and `timestamptz` hold microseconds, so a seventh fraction digit (SQL Server's 100 ns
 * ticks) is cut off by the loader first (`truncateToMicroseconds`); PostgreSQL's input would round it.
 *
 * | logical type               | PostgreSQL type            | note                                                   |
 * | -------------------------- | -------------------------- | ------------------------------------------------------ |
 * | `decimal(p,s)`             | `numeric(p,s)`             | plain `numeric` if PostgreSQL cannot declare it (p > 1000) |
 * | `numeric`                  | `numeric`                  | every digit, `NaN`, `±Infinity`                         |
 * | `json`                     | `jsonb` when the source column is `jsonb`, else `json` | `json` keeps the source's text exactly; `jsonb` would re-format MySQL's |
 * | `binary`                   | `bytea`                    | canonical `\x…` is bytea's hex input                    |
 * | `text`                     | `text`                     | also the fallback (enums, arrays, geometry, …); `varchar(n)` becomes `text` |
 *
 * The rest map one to one: `boolean`, `smallint`, `integer`, `bigint`, `real`, `double precision`,
 * `date`, `time`, `timestamp`, `timestamptz`, `interval`, `uuid`. A value that the type cannot hold
 * (a MySQL `TIME` of `838:59:59`, a NUL character in text) is refused by PostgreSQL during the load.
 *
 * @module
 */
import type { CatalogColumn, CatalogTable } from "../../domain/catalog.ts";
import type { LogicalType } from "../../domain/logical_type.ts";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";

/** PostgreSQL's largest declarable `numeric` precision. */
export const POSTGRES_MAX_NUMERIC_PRECISION = 1000;

/**
 * The PostgreSQL column type for a logical type.
 *
 * @param type the column's logical type.
 * @param sourceType the source's own type (`CatalogColumn.dataType`); only read for `json`.
 */
export function postgresColumnType(type: LogicalType, sourceType = ""): string {
  switch (type.kind) {
    case "boolean":
      return "boolean";
    case "smallint":
      return "smallint";
    case "integer":
      return "integer";
    case "bigint":
      return "bigint";
    case "decimal":
      return fitsPostgresNumeric(type.precision, type.scale)
        ? `numeric(${type.precision},${type.scale})`
        : "numeric";
    case "numeric":
      return "numeric";
    case "real":
      return "real";
    case "double":
      return "double precision";
    case "date":
      return "date";
    case "time":
      return "time";
    case "timestamp":
      return "timestamp";
    case "timestamptz":
      return "timestamptz";
    case "interval":
      return "interval";
    case "uuid":
      return "uuid";
    case "json":
      return sourceType.trim().toLowerCase() === "jsonb" ? "jsonb" : "json";
    case "binary":
      return "bytea";
    case "text":
    default:
      return "text";
  }
}

/** True when `numeric(precision,scale)` can be declared and holds every value of the logical type. */
export function fitsPostgresNumeric(precision: number, scale: number): boolean {
  return Number.isInteger(precision) && Number.isInteger(scale) && precision >= 1 &&
    precision <= POSTGRES_MAX_NUMERIC_PRECISION && scale >= 0 && scale <= precision;
}

/** One column's definition in `CREATE TABLE`: quoted name, type and NOT NULL. */
export function postgresColumnDefinition(column: CatalogColumn): string {
  return `${quotePostgresIdentifier(column.name)} ${
    postgresColumnType(column.logicalType, column.dataType)
  }${column.nullable ? "" : " not null"}`;
}

/** `CREATE TABLE "schema"."table" (...)` with the mapped types, NOT NULL columns and the primary key. */
export function postgresCreateTableSql(schema: string, table: CatalogTable): string {
  const parts = table.columns.map(postgresColumnDefinition);
  if (table.primaryKey.length > 0) {
    parts.push(`primary key (${table.primaryKey.map(quotePostgresIdentifier).join(", ")})`);
  }
  return `create table ${quotePostgresIdentifier(schema)}.${quotePostgresIdentifier(table.name)} (${
    parts.join(", ")
  })`;
}
