/**
 * Reading a published release page by page (issue 19): the limits of a page, the positions a page can
 * end at, and the opaque cursor that carries one position from a page to the next.
 *
 * A position is one of three kinds, chosen by what the table offers (`docs/data-read.md`):
 * - `key`: the canonical text of the table's key columns (a PostgreSQL destination table's or a DuckDB
 *   table's primary key). Paging by key survives a republish: the next page starts after that key in
 *   whatever the table holds then, so a row whose key is in both versions is read exactly once.
 * - `file`: a CSV file's SHA-512, the byte offset of the next row and its number. A CSV file has no
 *   index; the next page is a seek and a parse. Bound to the file's bytes: once a republish replaced the
 *   file, the position means nothing and the read is refused (`release_changed`, 409).
 * - `row`: a physical row position (PostgreSQL `ctid`, DuckDB `rowid`) of a table without a primary key,
 *   bound to that table's version in the same way.
 *
 * The cursor is base64url JSON of the dataset, table and position, followed by `.` and an HMAC-SHA-256
 * tag (128 bits, base64url) with the service's cursor key: a cursor the service did not issue, or one
 * altered on the way, is refused before anything is read. A cursor names its table, so it cannot page
 * another one.
 *
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { AppError } from "./errors.ts";

/** The most rows one page may ask for. */
export const MAX_READ_LIMIT = 10_000;

/**
 * A page stops adding rows once its values reach this many characters (at least one row is always
 * returned), so that a table of wide rows still gives bounded pages.
 */
export const MAX_PAGE_CHARS = 8 * 1024 * 1024;

/** How rows are laid out in a page's reply. */
export const READ_ORIENTATIONS = ["records", "tabular"] as const;

/** See {@link READ_ORIENTATIONS}. */
export type ReadOrientation = (typeof READ_ORIENTATIONS)[number];

/** One value of a read page: the canonical CSV text, `null` for NULL. */
export type ReadValue = string | null;

/** Where a page ended: see the module documentation. */
export type ReadPosition =
  | { readonly kind: "key"; readonly values: readonly string[] }
  | {
    readonly kind: "file";
    readonly sha512: string;
    readonly offset: number;
    readonly row: number;
  }
  | { readonly kind: "row"; readonly version: string; readonly after: string };

/** The table a cursor pages. */
export interface CursorTable {
  /** The dataset (the request's schema name). */
  readonly dataset: string;
  readonly table: string;
}

/** A column of a published table, as `/read/tables` lists it. */
export interface ReleaseColumn {
  readonly name: string;
  /** The column's type where the release keeps it (PostgreSQL or DuckDB type, or the source's type). */
  readonly type: string;
  readonly description: string | null;
}

/** A published table, as `/read/tables` lists it. */
export interface ReleaseTable {
  readonly name: string;
  /** The dataset: the schema name its package request named. */
  readonly dataset: string;
  readonly columns: readonly ReleaseColumn[];
  /** The columns pages are ordered by (its primary key); empty when rows come in file order. */
  readonly key: readonly string[];
}

/** A cursor that is not one this service issued for the table asked for. */
export class InvalidCursorError extends AppError {
  readonly code = "invalid_cursor";

  /** @param reason completes "Cannot use the cursor: it ...". */
  constructor(reason: string) {
    super(`Cannot use the cursor: it ${reason}; start again without a cursor`);
  }
}

/** A page limit outside 1..{@link MAX_READ_LIMIT}. */
export class InvalidReadLimitError extends AppError {
  readonly code = "invalid_limit";

  constructor(limit: number) {
    super(
      `Cannot read ${limit} rows at once: limit must be an integer from 1 to ${MAX_READ_LIMIT}`,
    );
  }
}

/**
 * Checks a page limit.
 *
 * @throws {InvalidReadLimitError} when it is not an integer from 1 to {@link MAX_READ_LIMIT}.
 */
export function checkReadLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_READ_LIMIT) {
    throw new InvalidReadLimitError(limit);
  }
  return limit;
}

/** The key that signs cursors, derived from a service secret with its own label. */
export function readCursorKey(secret: string): Uint8Array {
  return new Uint8Array(
    createHmac("sha256", secret).update("cr8tor release read cursor v1").digest(),
  );
}

/** The opaque cursor for `position` in `table`. */
export function encodeReadCursor(
  table: CursorTable,
  position: ReadPosition,
  key: Uint8Array,
): string {
  const body = base64url(
    new TextEncoder().encode(JSON.stringify([1, table.dataset, table.table, position])),
  );
  return `${body}.${tagOf(body, key)}`;
}

/**
 * Reads a cursor made by {@link encodeReadCursor} for `table`.
 *
 * @throws {InvalidCursorError} when it is malformed, not signed with `key`, or for another table.
 */
export function decodeReadCursor(
  cursor: string,
  table: CursorTable,
  key: Uint8Array,
): ReadPosition {
  const match = /^([A-Za-z0-9_-]{1,16384})\.([A-Za-z0-9_-]{22})$/.exec(cursor);
  if (match === null) throw new InvalidCursorError("is malformed");
  const [, body, tag] = match as unknown as [string, string, string];
  const expected = new TextEncoder().encode(tagOf(body, key));
  const given = new TextEncoder().encode(tag);
  if (!timingSafeEqual(expected, given)) {
    throw new InvalidCursorError("was not issued by this service or was altered");
  }
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(fromBase64url(body)));
  } catch {
    throw new InvalidCursorError("is malformed");
  }
  if (!Array.isArray(value) || value.length !== 4 || value[0] !== 1) {
    throw new InvalidCursorError("is malformed");
  }
  if (value[1] !== table.dataset || value[2] !== table.table) {
    throw new InvalidCursorError("pages another table");
  }
  const position = positionOf(value[3]);
  if (position === undefined) throw new InvalidCursorError("is malformed");
  return position;
}

/** A position read back from JSON, or `undefined` when it is not one. */
function positionOf(value: unknown): ReadPosition | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (v.kind === "key" && Object.keys(v).length === 2) {
    const values = v.values;
    if (!Array.isArray(values) || values.length === 0) return undefined;
    if (!values.every((x) => typeof x === "string")) return undefined;
    return { kind: "key", values: values as string[] };
  }
  if (v.kind === "file" && Object.keys(v).length === 4) {
    if (typeof v.sha512 !== "string" || !/^[0-9a-f]{128}$/.test(v.sha512)) return undefined;
    if (!isCount(v.offset) || !isCount(v.row)) return undefined;
    return { kind: "file", sha512: v.sha512, offset: v.offset, row: v.row };
  }
  if (v.kind === "row" && Object.keys(v).length === 3) {
    if (typeof v.version !== "string" || typeof v.after !== "string") return undefined;
    return { kind: "row", version: v.version, after: v.after };
  }
  return undefined;
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function tagOf(body: string, key: Uint8Array): string {
  return base64url(new Uint8Array(createHmac("sha256", key).update(body).digest()).slice(0, 16));
}

function base64url(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

function fromBase64url(text: string): Uint8Array {
  const binary = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/**
 * Whether a page of `rows` rows whose values hold `chars` characters is full: it reached `limit`, or
 * {@link MAX_PAGE_CHARS} (or `maxChars`).
 */
export function pageIsFull(
  rows: number,
  chars: number,
  limit: number,
  maxChars: number = MAX_PAGE_CHARS,
): boolean {
  return rows >= limit || chars >= maxChars;
}

/** The characters of a row's values, as {@link pageIsFull} counts them. */
export function rowChars(row: readonly ReadValue[]): number {
  let chars = 0;
  for (const value of row) chars += value === null ? 0 : value.length;
  return chars;
}
