/**
 * How the PostgreSQL destination turns driver errors into the port's errors
 * (`ports/destination_database.ts`): a refused value or row becomes a {@link DestinationValueError} naming
 * table, row, column and SQLSTATE but never the value; a refused login or a failed connection gets a fixed
 * sentence (`DestinationLoginRefusedError`, `DestinationConnectionError`) with the driver's message,
 * redacted, only in `logDetail`; anything else becomes a {@link DestinationUnavailableError} without the
 * password.
 *
 * @module
 */
import postgres from "postgres";
import { AppError } from "../../domain/errors.ts";
import { redactSecrets } from "../../domain/redaction.ts";
import {
  DestinationConnectionError,
  DestinationLoginRefusedError,
  DestinationUnavailableError,
  DestinationValueError,
  type DestinationValuePosition,
} from "../../ports/destination_database.ts";
import { messageOf } from "../shared/errors.ts";
import { isPostgresLoginRefusal } from "./postgres_source_database.ts";

/** Why PostgreSQL refuses data, by SQLSTATE (classes 22 and 23); never the value itself. */
const REFUSAL_REASONS: Readonly<Record<string, string>> = {
  "22001": "a value is too long for the column",
  "22003": "a number is outside the range of the column's type",
  "22007": "a date or time has an invalid format",
  "22008": "a date or time is outside the range of the column's type",
  "22021": "the text holds a byte sequence that is not valid UTF-8, such as a NUL character",
  "22P02": "a value is not valid input for the column's type",
  "22P04": "a CSV line is malformed",
  "22P05": "the text holds a character the column's type cannot store, such as \\u0000 in jsonb",
  "23502": "a NULL in a NOT NULL column",
  "23505": "a duplicate primary key",
  "23514": "a value breaks a check constraint",
};

/**
 * Turns PostgreSQL's refusal of a value or row (SQLSTATE class 22 or 23) into a
 * {@link DestinationValueError} with the row and column taken from the error's context, or returns
 * `undefined` for any other error. The server's own message is not kept: it quotes the value.
 */
export function refusedValue(
  e: unknown,
  where: { readonly schema: string; readonly table: string },
  columns: readonly string[],
  headerLines: number,
): DestinationValueError | undefined {
  if (!(e instanceof postgres.PostgresError)) return undefined;
  const code = e.code;
  if (!code.startsWith("22") && !code.startsWith("23")) return undefined;
  const position: DestinationValuePosition = { ...where, ...copyPosition(e, columns, headerLines) };
  const reason = REFUSAL_REASONS[code] ?? "the destination refused a value";
  return new DestinationValueError(position, `${reason} (SQLSTATE ${code})`);
}

/**
 * The 1-based table row and the column of a COPY error, read from its context
 * (`COPY t, line 3, column c: "..."`) and, for NOT NULL violations, from its column field. Only names from
 * `columns` are taken, so nothing of the value can slip through.
 */
function copyPosition(
  e: postgres.PostgresError,
  columns: readonly string[],
  headerLines: number,
): { row?: number; column?: string } {
  const context = e.where ?? "";
  const line = /^COPY .*?, line (\d+)/.exec(context);
  const row = line === null ? undefined : Number(line[1]) - headerLines;
  let column = e.column_name !== undefined && columns.includes(e.column_name)
    ? e.column_name
    : undefined;
  if (column === undefined) {
    for (const name of columns) {
      const named = context.includes(`, column ${name}:`) || context.endsWith(`, column ${name}`);
      if (named && name.length > (column?.length ?? -1)) column = name;
    }
  }
  return {
    ...(row !== undefined && row >= 1 ? { row } : {}),
    ...(column === undefined ? {} : { column }),
  };
}

/** What a failed load throws: typed errors as they are, anything else as unavailability. */
export function loadFailure(e: unknown, action: string, password: string): unknown {
  if (e instanceof AppError || e instanceof RangeError) return e;
  return destinationFailure(e, action, password);
}

/**
 * A driver error as a {@link DestinationUnavailableError}, without the password. A refused login or a
 * failed connection gets a fixed sentence, the driver's message going to `logDetail` only; any other
 * failure keeps the driver's message.
 */
export function destinationFailure(
  e: unknown,
  action: string,
  password: string,
): DestinationUnavailableError {
  const message = `${action}: ${redactSecrets(messageOf(e), [password])}`;
  if (isPostgresLoginRefusal(e)) return new DestinationLoginRefusedError({ logDetail: message });
  if (isConnectFailure(e)) return new DestinationConnectionError({ logDetail: message });
  return new DestinationUnavailableError(message, { cause: e });
}

/**
 * postgres.js and socket error codes, and SQLSTATEs, that mean a connection could not be set up (as
 * opposed to one lost while in use): refused, unknown host, unreachable, timed out, no such database,
 * too many connections, server starting up or shutting down.
 */
const CONNECT_FAILURES: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ETIMEDOUT",
  "CONNECT_TIMEOUT",
  "3D000",
  "53300",
  "57P03",
]);

function isConnectFailure(e: unknown): boolean {
  const code = (e as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && CONNECT_FAILURES.has(code)) return true;
  // A TLS handshake failure: postgres.js passes on Node's error, whose code starts with ERR_TLS_ or
  // names a certificate problem.
  return typeof code === "string" &&
    /^(ERR_TLS_|ERR_SSL_|CERT_|DEPTH_ZERO_|SELF_SIGNED_|UNABLE_TO_)/.test(code);
}

/** True for an error PostgreSQL reported that did not cost the connection. */
export function isSqlError(e: unknown): boolean {
  return e instanceof postgres.PostgresError && e.severity !== "FATAL" && e.severity !== "PANIC";
}
