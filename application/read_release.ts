/**
 * Use cases: read a published release's tables and rows (`POST /data-publish/read/tables` and
 * `/read/rows`, issue 19), for the gateway's data API. The cursor is opaque to callers: signed, bound to
 * its table (`domain/release_read.ts`).
 *
 * @module
 */
import { z } from "zod";
import { ProjectName, ProjectStartTime } from "../domain/contract.ts";
import {
  checkReadLimit,
  decodeReadCursor,
  encodeReadCursor,
  MAX_READ_LIMIT,
  READ_ORIENTATIONS,
  type ReadOrientation,
  type ReleaseTable,
} from "../domain/release_read.ts";
import { PostgresqlDestinationNotConfiguredError } from "../ports/destination.ts";
import { UnknownDestinationError } from "../ports/filestore.ts";
import type { ReadPage, ReleaseReader } from "../ports/release_reader.ts";

/** The destination a read names: its type and name (a filestore's `format` is not needed). */
export const ReadDestination = z.object({
  type: z.enum(["filestore", "postgresql"]),
  name: z.string().regex(/^[A-Za-z0-9_]{0,64}$/, { error: "must be 0-64 letters, digits or '_'" })
    .default(""),
});

/** `POST /data-publish/read/tables`: which run, on which destination. */
export const ReadTablesRequest = z.object({
  project_name: ProjectName,
  project_start_time: ProjectStartTime,
  destination: ReadDestination,
});

/** `POST /data-publish/read/rows`: one page of one table. */
export const ReadRowsRequest = ReadTablesRequest.extend({
  dataset: z.string().min(1).max(128),
  table: z.string().min(1).max(128),
  limit: z.number().int().min(1).max(MAX_READ_LIMIT),
  cursor: z.string().max(16_500).nullable().default(null),
  orientation: z.enum(READ_ORIENTATIONS).default("records"),
  /** What the reply's `next` (and `Link` header) starts with; the cursor follows, URI-encoded. */
  next_base: z.string().max(2048).regex(/^[!-~]*$/, { error: "must be visible ASCII" }).default(""),
});

export type ReadTablesRequest = z.infer<typeof ReadTablesRequest>;
export type ReadRowsRequest = z.infer<typeof ReadRowsRequest>;

/** The readers of a deployment's destinations. */
export interface ReleaseReaders {
  /** Filestore destinations' readers by upper-case name. */
  readonly filestores: ReadonlyMap<string, ReleaseReader>;
  /** The PostgreSQL destination's reader, when the deployment has one. */
  readonly postgresql?: ReleaseReader | undefined;
}

/**
 * The reader of the destination a request names.
 *
 * @throws {UnknownDestinationError} for a filestore name the deployment does not have.
 * @throws {PostgresqlDestinationNotConfiguredError} for `postgresql` when the deployment has none.
 */
export function readerOf(
  readers: ReleaseReaders,
  destination: ReadTablesRequest["destination"],
): ReleaseReader {
  if (destination.type === "postgresql") {
    if (readers.postgresql === undefined) throw new PostgresqlDestinationNotConfiguredError();
    return readers.postgresql;
  }
  const reader = readers.filestores.get(destination.name.toUpperCase());
  if (reader === undefined) throw new UnknownDestinationError(destination.name);
  return reader;
}

/**
 * The tables a run published on the destination.
 *
 * @throws {ReleaseNotReadableError} (`ports/release_reader.ts`) when nothing is published.
 */
export async function listReleaseTables(
  request: ReadTablesRequest,
  ports: { readonly readers: ReleaseReaders },
): Promise<ReleaseTable[]> {
  const reader = readerOf(ports.readers, request.destination);
  return await reader.listTables({
    project: request.project_name,
    startTime: request.project_start_time,
  });
}

/** One page, with its rows as values or already encoded as JSON by the destination. */
export interface RowsPage {
  readonly table: string;
  readonly columns: ReadPage["columns"];
  readonly orientation: ReadOrientation;
  readonly rowCount: number;
  /** The rows as values, or as JSON (rows separated by `,`, no brackets). */
  readonly rows:
    | { readonly kind: "values"; readonly values: ReadPage["rows"] }
    | { readonly kind: "json"; readonly json: Uint8Array };
  /** The cursor of the next page; `null` on the last page. */
  readonly cursor: string | null;
  /** `next_base` followed by the URI-encoded cursor; `null` on the last page. */
  readonly next: string | null;
}

/**
 * One page of a published table, after the request's cursor.
 *
 * @throws {InvalidCursorError} when the cursor is not one this service issued for this table.
 * @throws {InvalidReadLimitError} when the limit is out of range.
 * @throws {ReleaseNotReadableError}, {ReleaseTableNotFoundError}, {ReleaseChangedError} from the reader.
 */
export async function readReleaseRows(
  request: ReadRowsRequest,
  ports: { readonly readers: ReleaseReaders; readonly cursorKey: Uint8Array },
): Promise<RowsPage> {
  const reader = readerOf(ports.readers, request.destination);
  const table = { dataset: request.dataset, table: request.table };
  const after = request.cursor === null
    ? null
    : decodeReadCursor(request.cursor, table, ports.cursorKey);
  const run = { project: request.project_name, startTime: request.project_start_time };
  const pageRequest = { ...table, limit: checkReadLimit(request.limit), after };
  const json = await reader.readPageJson?.(run, pageRequest, request.orientation);
  const page = json === undefined ? await reader.readPage(run, pageRequest) : undefined;
  const next = json?.next ?? page?.next ?? null;
  const cursor = next === null ? null : encodeReadCursor(table, next, ports.cursorKey);
  return {
    table: request.table,
    columns: (json ?? page)!.columns,
    orientation: request.orientation,
    rowCount: json?.rowCount ?? page!.rows.length,
    rows: json === undefined
      ? { kind: "values", values: page!.rows }
      : { kind: "json", json: json.json },
    cursor,
    next: cursor === null ? null : request.next_base + encodeURIComponent(cursor),
  };
}
