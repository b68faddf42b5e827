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
import { csvToJson } from "./csv_json.ts";

/** What {@link parseCsvRecords} found. */
export interface CsvRecords {
  /** The complete records, in order. */
  readonly records: (string | null)[][];
  /** The offset just past the last complete record (its LF), or `start` when there was none. */
  readonly end: number;
  /** The bytes of the records' text (their CSV bytes, line ends included). */
  readonly bytes: number;
}

const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Parses complete records from `buffer`, starting at `start`, until `maxRecords` records or until their
 * bytes reach `maxBytes` (at least one record when there is one). A record ends at an LF outside quotes;
 * with `final` (the buffer ends where the file does), a last record without an LF ends at the end. A
 * record cut off by the end of a non-final buffer is left for the next read.
 *
 * The records are transcoded to JSON (`csvToJson`) and parsed by the runtime's JSON parser, which is
 * far faster than decoding each field on its own.
 *
 * @throws {SyntaxError} on a stray quote, text after a closing quote, an unterminated quoted field at
 *   the end of a final buffer.
 * @throws {TypeError} on bytes that are not UTF-8.
 */
export function parseCsvRecords(
  buffer: Uint8Array,
  start: number,
  options: { readonly maxRecords: number; readonly maxBytes: number; readonly final: boolean },
): CsvRecords {
  const transcoded = csvToJson(buffer, start, options);
  const records = transcoded.records === 0
    ? []
    : JSON.parse(`[${decoder.decode(transcoded.json)}]`) as (string | null)[][];
  return { records, end: transcoded.end, bytes: transcoded.end - start };
}
