/**
 * The canonical CSV encoding: RFC 4180 fields, `,` separator, `"` quotes, `\n` line ends, UTF-8, one header
 * row. It is byte for byte what PostgreSQL's `COPY ... TO STDOUT WITH (FORMAT csv, HEADER)` writes, so a
 * PostgreSQL pass-through and a row-by-row encoder produce identical files:
 *
 * - NULL is an empty unquoted field; the empty string is `""`.
 * - A field is quoted when it contains `,`, `"`, `\r` or `\n` (quotes doubled inside), and, when the row has
 *   a single column, when it is exactly `\.`.
 *
 * @module
 */
import type { CanonicalRow, LogicalKind } from "./logical_type.ts";

const NEEDS_QUOTES = /[",\r\n]/;

/**
 * Kinds whose canonical text is never empty and never holds `,`, `"`, `\r` or `\n` (digits, signs, dates,
 * hex, `NaN`, ...), so their fields never need quotes: the encoder skips the check for them.
 */
const NEVER_QUOTED: ReadonlySet<LogicalKind> = new Set<LogicalKind>([
  "boolean",
  "smallint",
  "integer",
  "bigint",
  "decimal",
  "numeric",
  "real",
  "double",
  "date",
  "time",
  "timestamp",
  "timestamptz",
  "uuid",
  "binary",
]);

function field(value: string | null, singleColumn: boolean): string {
  if (value === null) return "";
  if (value === "" || NEEDS_QUOTES.test(value) || (singleColumn && value === "\\.")) {
    return `"${value.replaceAll('"', '""')}"`;
  }
  return value;
}

/** Encodes one row (or the header) as a CSV line ending in `\n`. */
export function encodeCsvRow(row: readonly (string | null)[]): string {
  const single = row.length === 1;
  let line = "";
  for (let i = 0; i < row.length; i++) {
    if (i > 0) line += ",";
    line += field(row[i] ?? null, single);
  }
  return line + "\n";
}

/**
 * Encodes a batch of rows as consecutive CSV lines.
 *
 * @param kinds the logical kind of each column, when known: columns of a kind whose canonical text never
 *   needs quotes are copied without looking at their characters, which makes wide numeric tables about
 *   three times faster to encode. The output is the same either way.
 */
export function encodeCsvRows(
  rows: readonly CanonicalRow[],
  kinds: readonly LogicalKind[] = [],
): string {
  const width = rows[0]?.length ?? 0;
  if (width <= 1) {
    let text = "";
    for (const row of rows) text += encodeCsvRow(row);
    return text;
  }
  const plain = Array.from({ length: width }, (_, i) => NEVER_QUOTED.has(kinds[i] ?? "text"));
  let text = "";
  for (const row of rows) {
    for (let i = 0; i < width; i++) {
      if (i > 0) text += ",";
      const value = row[i] ?? null;
      if (value !== null) text += plain[i] ? value : field(value, false);
    }
    text += "\n";
  }
  return text;
}

/**
 * Parses canonical CSV text back into rows (the header included), keeping NULL and `""` apart. Used to read
 * staged files back; it accepts exactly what {@link encodeCsvRow} writes.
 *
 * @throws {SyntaxError} on an unterminated quoted field or a stray quote.
 */
export function parseCsv(text: string): (string | null)[][] {
  const rows: (string | null)[][] = [];
  let row: (string | null)[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    let value: string | null;
    if (text[i] === '"') {
      let end = i + 1;
      let out = "";
      for (;;) {
        const q = text.indexOf('"', end);
        if (q < 0) throw new SyntaxError("Cannot parse CSV: unterminated quoted field");
        out += text.slice(end, q);
        if (text[q + 1] === '"') {
          out += '"';
          end = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      value = out;
    } else {
      let end = i;
      while (end < n && text[end] !== "," && text[end] !== "\n") end++;
      const raw = text.slice(i, end);
      if (raw.includes('"')) {
        throw new SyntaxError("Cannot parse CSV: stray quote in an unquoted field");
      }
      value = raw === "" ? null : raw;
      i = end;
    }
    row.push(value);
    if (i >= n || text[i] === "\n") {
      rows.push(row);
      row = [];
      i++;
    } else if (text[i] === ",") {
      i++;
      if (i >= n) throw new SyntaxError("Cannot parse CSV: missing final line end");
    } else {
      throw new SyntaxError("Cannot parse CSV: expected ',' or a line end after a quoted field");
    }
  }
  return rows;
}

/**
 * The prefix the opt-in formula escape (`CSV_FORMULA_PREFIX=true`) puts before a text cell that a
 * spreadsheet would take for a formula: a single quote, as OWASP's "CSV Injection" page recommends.
 */
export const CSV_FORMULA_PREFIX = "'";

/**
 * The first characters that make a spreadsheet evaluate a cell (`=`, `+`, `-`, `@`, tab, CR), and the
 * prefix itself, so that the escape can be undone exactly: remove one leading `'` from every text value
 * that starts with one.
 */
const FORMULA_START = /^[=+\-@\t\r']/;

/** Whether the opt-in escape prefixes this text value (see {@link CSV_FORMULA_PREFIX}). */
export function needsFormulaPrefix(value: string): boolean {
  return FORMULA_START.test(value);
}

/**
 * The opt-in formula escape: every value of a `text` column that {@link needsFormulaPrefix} gets
 * {@link CSV_FORMULA_PREFIX} in front; values of every other kind (numbers, dates, JSON, ...) and NULLs
 * are left exact, so `-1` in an integer column stays `-1`. Rows without such a value are passed on as
 * they are; the input is not modified.
 *
 * @param kinds the logical kind of each column.
 */
export function prefixFormulas(
  rows: readonly CanonicalRow[],
  kinds: readonly LogicalKind[],
): CanonicalRow[] {
  const text = kinds.flatMap((kind, i) => kind === "text" ? [i] : []);
  return rows.map((row) => {
    let copy: CanonicalRow | undefined;
    for (const i of text) {
      const value = row[i];
      if (value === null || value === undefined || !needsFormulaPrefix(value)) continue;
      copy ??= [...row];
      copy[i] = CSV_FORMULA_PREFIX + value;
    }
    return copy ?? row;
  });
}

const utf8Encoder = new TextEncoder();

/** UTF-8 bytes of a (large) CSV text: `encodeInto` a buffer of the worst-case size beats `encode`. */
export function utf8Bytes(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length * 3);
  const { written } = utf8Encoder.encodeInto(text, bytes);
  return bytes.subarray(0, written);
}
