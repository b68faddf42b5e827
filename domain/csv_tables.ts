/**
 * CSV files as tables of the PostgreSQL destination (issue 18, point 4; `docs/http-sources.md`): the
 * rules that turn a staged CSV file and its checks (`tabular_checks.ts`) into the table it is loaded as.
 * The file's bytes are loaded as they are (`COPY ... FROM STDIN (FORMAT csv, HEADER)`), so only a file
 * the checks found clean, comma-separated and with a usable header is accepted:
 *
 * - **table name**: the file name without `.csv`, mapped by `projectIdentifier` (`names.ts`: lower-case
 *   `[a-z0-9_]`, plus a hash of the name when the mapping changed it), so `codes.csv` is `codes` and
 *   `Weekly-2026.csv` is `weekly_2026_` and 8 hex digits;
 * - **column names**: the header's, as they are (always quoted); empty, duplicate or NUL-holding names
 *   are refused (a name longer than PostgreSQL keeps is refused by the load, `checkLoad`);
 * - **column types**: the checks' type of each column ({@link columnLogicalType}), `text` for a
 *   column without any value; every column is nullable (an empty field is NULL).
 *
 * @module
 */
import type { TableExtract } from "./catalog.ts";
import { AppError } from "./errors.ts";
import type { LogicalType } from "./logical_type.ts";
import { projectIdentifier } from "./names.ts";
import type { ColumnType, TabularReport } from "./tabular_checks.ts";

const CSV_FILE = /\.csv$/i;

/** A file cannot be loaded into the PostgreSQL destination as it is; nothing was loaded. */
export class CsvLoadRefusedError extends AppError {
  readonly code = "csv_load_refused";

  /**
   * @param file the file's name.
   * @param reason completes "Cannot load ... into PostgreSQL: ...".
   */
  constructor(readonly file: string, readonly reason: string) {
    super(`Cannot load "${file}" into the PostgreSQL destination: ${reason}`);
  }
}

/** Whether a file name is a CSV file's (`.csv`, any case). */
export function isCsvFileName(fileName: string): boolean {
  return CSV_FILE.test(fileName);
}

/** The table a CSV file is loaded as: its name without `.csv`, mapped by `projectIdentifier`. */
export function csvTableName(fileName: string): string {
  return projectIdentifier(fileName.replace(CSV_FILE, ""));
}

/**
 * The destination type of a checked column: `integer` (values that fit 64 bits) is `bigint`, `decimal`
 * the exact `numeric`, `timestamp` (with or without an offset) `timestamptz` (a value without an offset
 * is read as UTC, the load's session time zone; one with an offset keeps its instant).
 */
export function columnLogicalType(type: ColumnType): LogicalType {
  switch (type) {
    case "integer":
      return { kind: "bigint" };
    case "decimal":
      return { kind: "numeric" };
    case "boolean":
      return { kind: "boolean" };
    case "date":
      return { kind: "date" };
    case "timestamp":
      return { kind: "timestamptz" };
    case "text":
      return { kind: "text" };
  }
}

/**
 * Finds the lines `COPY ... FROM STDIN (FORMAT csv)` would read otherwise than the checks do, fed the
 * file's bytes in chunks: an unquoted line that is only `\.` (the end-of-data marker: PostgreSQL would
 * silently drop every row after it) and a blank line (the checks skip it; COPY loads it as a row of
 * NULLs in a one-column table, or fails). Quotes are tracked, so such lines inside a quoted field are
 * data.
 */
export class CopyInputScanner {
  #line = 1;
  #inQuotes = false;
  /** The bytes of the current line so far, up to three (enough to tell `\.` and blank lines). */
  #start: number[] = [];
  #afterCr = false;
  #problem: string | undefined;

  /** Feeds the next bytes of the file. */
  push(bytes: Uint8Array): void {
    for (const b of bytes) {
      if (this.#problem !== undefined) return;
      if (this.#afterCr) {
        this.#afterCr = false;
        if (b === 0x0a) continue;
      }
      if (b === 0x22) this.#inQuotes = !this.#inQuotes;
      if (!this.#inQuotes && (b === 0x0a || b === 0x0d)) {
        this.#endLine();
        this.#afterCr = b === 0x0d;
        continue;
      }
      if (this.#start.length < 3) this.#start.push(b);
    }
  }

  /** The first such line, as a reason for {@link CsvLoadRefusedError}; `undefined` when none. */
  finish(): string | undefined {
    if (this.#problem === undefined && this.#start.length > 0) this.#endLine(true);
    return this.#problem;
  }

  #endLine(last = false): void {
    const [a, b, c] = this.#start;
    if (a === 0x5c && b === 0x2e && c === undefined && !this.#inQuotes) {
      this.#problem = `line ${this.#line} is only "\\.", which COPY reads as the end of the data`;
    } else if (a === undefined && !last) {
      this.#problem = `line ${this.#line} is blank`;
    }
    this.#start = [];
    this.#line++;
  }
}

/**
 * The table a checked CSV file is loaded as, in destination schema `schema`.
 *
 * @param fileName the file's name (its last path segment).
 * @param report the checks of the file's bytes; column types are its `type`s (with any override).
 * @param copyProblem what {@link CopyInputScanner} found in the same bytes, if anything.
 * @throws {CsvLoadRefusedError} when the file is not a `.csv`, its checks found an error (encoding,
 *   ragged rows, no header, an unterminated quote), `copyProblem` is set, it is not comma-separated,
 *   or its header has an
 *   empty, duplicate or NUL-holding name.
 */
export function csvTableExtract(
  schema: string,
  fileName: string,
  report: TabularReport,
  copyProblem?: string | undefined,
): TableExtract {
  const refuse = (reason: string) => new CsvLoadRefusedError(fileName, reason);
  if (!isCsvFileName(fileName)) throw refuse("only .csv files load into tables");
  const [error] = report.errors;
  if (error !== undefined) throw refuse(error);
  if (copyProblem !== undefined) throw refuse(copyProblem);
  if (report.delimiter !== ",") {
    throw refuse(
      `it is separated by ${report.delimiter === "\t" ? "tabs" : "semicolons"}, not commas`,
    );
  }
  const seen = new Set<string>();
  for (const { name } of report.columns) {
    if (name === "") throw refuse("a column of its header has no name");
    if (name.includes("\0")) throw refuse("a column name of its header holds a NUL character");
    if (seen.has(name)) throw refuse(`column "${name}" appears more than once in its header`);
    seen.add(name);
  }
  return {
    schema,
    table: {
      name: csvTableName(fileName),
      kind: "table",
      description: null,
      primaryKey: [],
      columns: report.columns.map((column) => {
        const type = column.empty === report.rows ? "text" : column.type;
        return {
          name: column.name,
          dataType: type,
          logicalType: columnLogicalType(type),
          nullable: true,
          description: null,
        };
      }),
    },
  };
}
