/**
 * Why a dataset cannot be written to DuckDB as it is. Both errors are about the data, not about the
 * service: the same dataset can still be staged as CSV. Messages name the table, column and row, never the
 * value (it may be personal data).
 *
 * @module
 */
import { AppError } from "../../domain/errors.ts";

/** A value that DuckDB cannot hold exactly (e.g. `NaN` in a DECIMAL column), or that is not canonical. */
export class DuckdbValueError extends AppError {
  readonly code = "duckdb_value_not_representable";

  /**
   * @param where the schema, table and column, and the row's 1-based number in the table.
   * @param cause the converter's RangeError or SyntaxError, whose message says why.
   */
  constructor(
    readonly where: {
      readonly schema: string;
      readonly table: string;
      readonly column: string;
      readonly row: number;
    },
    cause: Error,
  ) {
    super(
      `Cannot write column "${where.column}" of table "${where.schema}.${where.table}" to DuckDB ` +
        `(row ${where.row}): ${cause.message}`,
      { cause },
    );
  }
}

/** Rows that break a table's declared constraints in DuckDB: a duplicate primary key, or a NULL in a key. */
export class DuckdbConstraintError extends AppError {
  readonly code = "duckdb_constraint_violated";

  constructor(readonly schema: string, readonly table: string, cause: unknown) {
    super(
      `Cannot write table "${schema}.${table}" to DuckDB: its rows violate the primary key or a ` +
        `NOT NULL column`,
      { cause },
    );
  }
}

/**
 * A write that needed more memory than DuckDB's limit gives it. DuckDB 1.5 holds long values (over a few
 * kilobytes) in memory until a table is written, so a table whose long values add up to more than the
 * limit cannot be written within it: `DUCKDB_MEMORY_LIMIT` raises it; CSV has no such limit.
 */
export class DuckdbMemoryError extends AppError {
  readonly code = "duckdb_memory_limit";

  constructor(readonly limit: string, cause: unknown) {
    super(
      `Cannot write the dataset to DuckDB within its memory limit (${limit}): DuckDB holds long ` +
        `values in memory until a table is written; raise DUCKDB_MEMORY_LIMIT on the publish service, ` +
        `or stage the dataset as CSV`,
      { cause },
    );
  }
}

/**
 * Names that DuckDB would treat as one: its identifiers are case-insensitive, even when quoted, so tables
 * `Visits` and `visits` (or two such columns, or two datasets' schemas in one run) cannot both exist.
 */
export class DuckdbNameClashError extends AppError {
  readonly code = "duckdb_name_clash";

  /**
   * @param what what the names are, e.g. `tables` or `columns of table "s.t"`.
   * @param names the two names that differ only in case.
   */
  constructor(what: string, readonly names: readonly [string, string]) {
    super(
      `Cannot write ${what} "${names[0]}" and "${names[1]}" to DuckDB: its names ignore case`,
    );
  }
}
