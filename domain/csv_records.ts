/**
 * Parsing canonical CSV (`docs/csv-format.md`) from a byte buffer record by record, with the byte offset
 * where each record ends: what paging through a published CSV file needs (a page starts at a byte
 * offset, parses `limit` records, and the next page starts where the last one ended).
 *
 * The structural characters (`"`, `,`, LF) are ASCII, so records are found in the UTF-8 bytes directly;
 * only the fields are decoded. NULL is an empty unquoted field, the empty string is `""`.
 *
 * @module
 */

/** What {@link parseCsvRecords} found. */
export interface CsvRecords {
  /** The complete records, in order. */
  readonly records: (string | null)[][];
  /** The offset just past the last complete record (its LF), or `start` when there was none. */
  readonly end: number;
  /** The bytes of the records' text (their CSV bytes, line ends included). */
  readonly bytes: number;
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses complete records from `buffer`, starting at `start`, until `maxRecords` records or until their
 * bytes reach `maxBytes` (at least one record when there is one). A record ends at an LF outside quotes;
 * with `final` (the buffer ends where the file does), a last record without an LF ends at the end. A
 * record cut off by the end of a non-final buffer is left for the next read.
 *
 * @throws {SyntaxError} on a stray quote, text after a closing quote, an unterminated quoted field at
 *   the end of a final buffer, or bytes that are not UTF-8.
 */
export function parseCsvRecords(
  buffer: Uint8Array,
  start: number,
  options: { readonly maxRecords: number; readonly maxBytes: number; readonly final: boolean },
): CsvRecords {
  const records: (string | null)[][] = [];
  const n = buffer.length;
  let end = start;
  while (records.length < options.maxRecords && end - start < options.maxBytes && end < n) {
    const parsed = parseRecord(buffer, end, options.final);
    if (parsed === undefined) break;
    records.push(parsed.record);
    end = parsed.next;
  }
  return { records, end, bytes: end - start };
}

/** One record from `at`, or `undefined` when the buffer ends inside it (and is not final). */
function parseRecord(
  buffer: Uint8Array,
  at: number,
  final: boolean,
): { record: (string | null)[]; next: number } | undefined {
  const n = buffer.length;
  const record: (string | null)[] = [];
  let i = at;
  for (;;) {
    if (i < n && buffer[i] === QUOTE) {
      let out = "";
      let from = i + 1;
      for (;;) {
        const q = buffer.indexOf(QUOTE, from);
        if (q < 0) {
          if (final) throw new SyntaxError("Cannot parse CSV: unterminated quoted field");
          return undefined;
        }
        if (q + 1 >= n && !final) return undefined;
        out += decoder.decode(buffer.subarray(from, q));
        if (buffer[q + 1] === QUOTE) {
          out += '"';
          from = q + 2;
          continue;
        }
        i = q + 1;
        break;
      }
      record.push(out);
    } else {
      let end = i;
      while (end < n) {
        const b = buffer[end]!;
        if (b === COMMA || b === LF) break;
        if (b === QUOTE) {
          throw new SyntaxError("Cannot parse CSV: stray quote in an unquoted field");
        }
        end++;
      }
      if (end >= n && !final) return undefined;
      record.push(end === i ? null : decoder.decode(buffer.subarray(i, end)));
      i = end;
    }
    if (i >= n) return { record, next: n };
    if (buffer[i] === LF) return { record, next: i + 1 };
    if (buffer[i] === COMMA) {
      i++;
      continue;
    }
    throw new SyntaxError("Cannot parse CSV: expected ',' or a line end after a quoted field");
  }
}
