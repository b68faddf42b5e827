/**
 * The error base class and the domain's own errors. Errors carry a stable `code`; the HTTP layer maps
 * classes to statuses in one table (`apps/_shared/http_errors.ts`).
 *
 * @module
 */

/** Options of an {@link AppError}. */
export interface AppErrorOptions extends ErrorOptions {
  /**
   * What the service log records about the failure beside the message, never sent to the client: a
   * driver's own message behind a fixed sentence, for example. It must already be free of secrets
   * (`domain/redaction.ts`).
   */
  readonly logDetail?: string;
}

/** Base of every error this project expects callers to catch. */
export abstract class AppError extends Error {
  /** Stable machine-readable code, sent to clients beside the human message. */
  abstract readonly code: string;
  /** For the service log only; see {@link AppErrorOptions.logDetail}. */
  readonly logDetail: string | undefined;

  constructor(message: string, options?: AppErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.logDetail = options?.logDetail;
  }
}

/** What a request asked for that the source does not have. */
export interface MissingItems {
  /** Requested tables that do not exist in the schema. */
  readonly tables: readonly string[];
  /** Requested columns that do not exist, as `table.column`. */
  readonly columns: readonly string[];
}

/** A request named tables or columns that the source schema does not have. */
export class DatasetItemsNotFoundError extends AppError {
  readonly code = "dataset_items_not_found";

  constructor(readonly schema: string, readonly missing: MissingItems) {
    const parts: string[] = [];
    if (missing.tables.length > 0) {
      parts.push(`tables ${missing.tables.map((t) => `"${t}"`).join(", ")}`);
    }
    if (missing.columns.length > 0) {
      parts.push(`columns ${missing.columns.map((c) => `"${c}"`).join(", ")}`);
    }
    super(`Cannot find in schema "${schema}": ${parts.join("; ")}`);
  }
}

/** The request names a source type that this build cannot read yet. */
export class SourceTypeNotSupportedError extends AppError {
  readonly code = "source_type_not_supported";

  constructor(readonly sourceType: string) {
    super(`Cannot use source type "${sourceType}": not supported by this version of the service`);
  }
}

/**
 * A source table whose name cannot be a CSV file name. The request could not have named it (names are
 * checked); it comes from the source's catalogue when a request asks for every table.
 */
export class UnsafeTableNameError extends AppError {
  readonly code = "unsafe_table_name";

  constructor(readonly schema: string, readonly table: string) {
    super(
      `Cannot stage table ${
        JSON.stringify(table)
      } of schema "${schema}" as a CSV file: its name is ` +
        "not a safe file name; list the tables to package, or use the duckdb format",
    );
  }
}
