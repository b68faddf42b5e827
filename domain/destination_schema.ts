/**
 * Names in a PostgreSQL destination. A dataset lands in the schema
 * `lower("{identifier}_{project_start_time}_{schema_name}")`, where `identifier` is the project's
 * `projectIdentifier` (`names.ts`): the reference's rule (`cr8tor-contract.md` §4.3) with the project name
 * mapped to `[a-z0-9_]` (plus a hash when the mapping changed it) instead of dlt's renaming. Schema names
 * are used as they are, always quoted, so `my-schema` stays `my-schema`.
 *
 * PostgreSQL silently cuts identifiers to 63 bytes, so two long names could land in one schema (or table,
 * or column) without anyone noticing; longer names are refused instead. Schema names starting with `pg_`
 * are reserved by PostgreSQL and refused too.
 *
 * @module
 */
import { AppError } from "./errors.ts";
import { projectIdentifier } from "./names.ts";

/** The longest identifier PostgreSQL keeps whole, in UTF-8 bytes (`NAMEDATALEN - 1`). */
export const POSTGRES_IDENTIFIER_MAX_BYTES = 63;

/** What a destination identifier names, for messages. */
export type DestinationNameKind = "schema" | "table" | "column";

/** A destination schema, table or column name longer than PostgreSQL keeps. */
export class DestinationNameTooLongError extends AppError {
  readonly code = "destination_name_too_long";

  /**
   * @param kind what the name is for.
   * @param identifier the name as it would be created.
   * @param bytes its length in UTF-8 bytes.
   */
  constructor(
    readonly kind: DestinationNameKind,
    readonly identifier: string,
    readonly bytes: number,
  ) {
    super(
      `Cannot create destination ${kind} "${identifier}": it is ${bytes} bytes long and PostgreSQL keeps ` +
        `at most ${POSTGRES_IDENTIFIER_MAX_BYTES}` +
        (kind === "schema" ? "; shorten the project name or the schema name" : ""),
    );
  }
}

/** A destination schema name that PostgreSQL reserves for itself (`pg_...`). */
export class DestinationNameReservedError extends AppError {
  readonly code = "destination_name_reserved";

  constructor(readonly identifier: string) {
    super(
      `Cannot create destination schema "${identifier}": names starting with "pg_" are reserved`,
    );
  }
}

const utf8 = new TextEncoder();

/**
 * Refuses an identifier that PostgreSQL would cut short.
 *
 * @throws {DestinationNameTooLongError} when `name` is longer than 63 UTF-8 bytes.
 */
export function checkDestinationIdentifier(kind: DestinationNameKind, name: string): void {
  const bytes = utf8.encode(name).length;
  if (bytes > POSTGRES_IDENTIFIER_MAX_BYTES) {
    throw new DestinationNameTooLongError(kind, name, bytes);
  }
}

/**
 * The destination schema of one dataset of one run:
 * `lower("{projectIdentifier(project)}_{startTime}_{schemaName}")`.
 *
 * @param project the request's `project_name`, as sent.
 * @param startTime the request's `project_start_time`.
 * @param schemaName the request's `dataset.schema_name`.
 * @returns the schema name, to be used quoted.
 * @throws {DestinationNameTooLongError} when the name is longer than 63 UTF-8 bytes.
 * @throws {DestinationNameReservedError} when the name starts with `pg_`.
 */
export function destinationSchemaName(
  project: string,
  startTime: string,
  schemaName: string,
): string {
  const name = `${projectIdentifier(project)}_${startTime}_${schemaName}`.toLowerCase();
  checkDestinationIdentifier("schema", name);
  if (name.startsWith("pg_")) throw new DestinationNameReservedError(name);
  return name;
}
