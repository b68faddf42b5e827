/**
 * The logical type of a Databricks (Unity Catalog) column, from its `ColumnInfo.type_name` and
 * `type_text`. Both halves of the Databricks source (the Unity Catalog catalogue and the SQL data reader)
 * rely on exactly this table:
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
import type { LogicalType } from "../../domain/logical_type.ts";

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
