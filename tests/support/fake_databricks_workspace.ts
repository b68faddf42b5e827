/**
 * What a fake Databricks workspace holds: one Unity Catalog catalog with schemas, tables, columns, primary
 * keys and rows, and the service principal allowed to get tokens. The fake REST endpoints
 * (`/oidc/v1/token`, Unity Catalog) and the fake Thrift TCLIService endpoint serve the same workspace, so
 * metadata and data always agree, as they do on a real workspace.
 *
 * Values are held as a warehouse holds them ({@link FakeSparkValue}); the Thrift fake computes what each
 * select expression returns from them, the way Spark would.
 *
 * @module
 */

/**
 * One stored value, by the column's `type_name`:
 * - BOOLEAN: `boolean`; BYTE, SHORT, INT: `number`; LONG: `bigint`; FLOAT, DOUBLE: `number` (NaN and
 *   the infinities allowed);
 * - DECIMAL: the exact digits as a `string` with the column's scale (`"-12.30"`);
 * - DATE: `"YYYY-MM-DD"`; TIMESTAMP (an instant) and TIMESTAMP_NTZ (a wall-clock time):
 *   `"YYYY-MM-DD HH:MM:SS[.ffffff]"`, TIMESTAMP in UTC;
 * - STRING, CHAR, VARCHAR: `string`; BINARY: `Uint8Array`;
 * - ARRAY: a JS array; MAP and STRUCT: a plain object; VARIANT: any JSON value; INTERVAL: Spark's text;
 * - `null` for NULL.
 */
export type FakeSparkValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | Uint8Array
  | readonly unknown[]
  | { readonly [key: string]: unknown };

/** A column as Unity Catalog's `ColumnInfo` describes it. */
export interface FakeUcColumn {
  readonly name: string;
  /** `BOOLEAN`, `BYTE`, `SHORT`, `INT`, `LONG`, `FLOAT`, `DOUBLE`, `DECIMAL`, `DATE`, `TIMESTAMP`, ... */
  readonly type_name: string;
  /** The full type, e.g. `decimal(18,2)`, `array<string>`, `struct<a:int,b:string>`. */
  readonly type_text: string;
  /** Defaults to true. */
  readonly nullable?: boolean;
  readonly comment?: string | null;
}

/** A table or view of the fake catalog. */
export interface FakeUcTable {
  readonly name: string;
  /** `MANAGED`, `EXTERNAL`, `VIEW`, `MATERIALIZED_VIEW`, ... */
  readonly table_type: string;
  readonly comment?: string | null;
  readonly columns: readonly FakeUcColumn[];
  /** Primary-key columns in key order; served as a `primary_key_constraint` in `table_constraints`. */
  readonly primaryKey?: readonly string[];
  /** Rows in column order. A function lets a big table be generated while it is served, not held. */
  readonly rows: readonly (readonly FakeSparkValue[])[] | FakeRowSource;
  /**
   * What `ANALYZE TABLE ... COMPUTE STATISTICS` left, shown by `DESCRIBE TABLE EXTENDED` as
   * `Statistics: <sizeInBytes> bytes, <numRows> rows` (`numRows` absent: the size only, as after
   * `NOSCAN`). Absent: never analysed, no `Statistics` row.
   */
  readonly statistics?: { readonly sizeInBytes: number; readonly numRows?: number };
}

/** Generates a big table's rows on demand: row `index` of `count`. */
export interface FakeRowSource {
  readonly count: number;
  row(index: number): readonly FakeSparkValue[];
}

/** A schema of the fake catalog. */
export interface FakeUcSchema {
  readonly name: string;
  readonly comment?: string | null;
  readonly tables: readonly FakeUcTable[];
}

/** The whole fake workspace. */
export interface FakeWorkspace {
  /** The one catalog it has. */
  readonly catalog: string;
  readonly schemas: readonly FakeUcSchema[];
  /** The service principal that may get tokens (`client_credentials`, scope `all-apis`). */
  readonly clientId: string;
  readonly clientSecret: string;
  /** How long an issued token lasts (`expires_in`); default 3600. */
  readonly tokenLifetimeSeconds?: number;
}

/** Finds a table by schema and name, or undefined. */
export function findFakeTable(
  workspace: FakeWorkspace,
  schema: string,
  table: string,
): FakeUcTable | undefined {
  return workspace.schemas.find((s) => s.name === schema)?.tables.find((t) => t.name === table);
}

/** The number of rows a table has. */
export function fakeRowCount(table: FakeUcTable): number {
  return "count" in table.rows ? table.rows.count : (table.rows as readonly unknown[]).length;
}

/** Row `index` of a table. */
export function fakeRow(table: FakeUcTable, index: number): readonly FakeSparkValue[] {
  return "row" in table.rows
    ? table.rows.row(index)
    : (table.rows as readonly (readonly FakeSparkValue[])[])[index]!;
}
