/**
 * Canonical CSV (`docs/csv-format.md`) transcoded to JSON byte by byte, without making a JavaScript
 * string of any value: what serving a page of a published table costs least. Each record becomes a JSON
 * array of its values (`tabular`) or an object by column name (`records`); NULL (an empty unquoted
 * field) becomes `null`, every other value a JSON string of exactly its text. Records are separated by
 * `,`, without enclosing brackets.
 *
 * `parseCsvRecords` (`domain/csv_records.ts`) reads records by parsing this JSON.
 *
 * @module
 */

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const BACKSLASH = 0x5c;
const HEX = new TextEncoder().encode("0123456789abcdef");
const NULL = new TextEncoder().encode("null");

/** What a byte is to an unquoted field: 0 copied as it is, 1 ends the field, 2 escaped, 3 refused. */
const UNQUOTED = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) UNQUOTED[b] = 2;
UNQUOTED[BACKSLASH] = 2;
UNQUOTED[COMMA] = 1;
UNQUOTED[LF] = 1;
UNQUOTED[QUOTE] = 3;

/** What {@link csvToJson} produced. */
export interface CsvJson {
  /** The records as JSON, separated by `,`. */
  readonly json: Uint8Array;
  /** How many records. */
  readonly records: number;
  /** The offset just past the last record transcoded (its LF), or `start` when there was none. */
  readonly end: number;
  /** The offset where the last record transcoded starts (`start` when there was none). */
  readonly lastStart: number;
}

/**
 * Transcodes complete records of `input` from `start`, until `maxRecords` records or until their CSV
 * bytes reach `maxBytes` (at least one record when there is one). A record cut off by the end of a
 * non-final buffer is left for the next call.
 *
 * @param names with `records`: the column names, in order; without: arrays (`tabular`).
 * @throws {SyntaxError} on a stray quote, text after a closing quote, an unterminated quoted field at
 *   the end of a final buffer, or a record with another number of fields than `names`.
 */
export function csvToJson(
  input: Uint8Array,
  start: number,
  options: {
    readonly maxRecords: number;
    readonly maxBytes: number;
    readonly final: boolean;
    readonly names?: readonly string[] | undefined;
  },
): CsvJson {
  const keys = options.names?.map((n, i) =>
    new TextEncoder().encode(`${i === 0 ? "" : ","}${JSON.stringify(n)}:`)
  );
  const n = input.length;
  const { maxRecords, maxBytes, final } = options;
  let out: Uint8Array = new Uint8Array(Math.max(256, Math.min(n - start, maxBytes) * 1.25 + 256));
  let cap = out.length - 16;
  let o = 0;
  let records = 0;
  let i = start;
  let lastStart = start;
  let end = start;
  // Every write below is preceded by a check that 16 bytes are free (`cap`); a key is written after
  // making room for it.
  records: while (records < maxRecords && end - start < maxBytes && i < n) {
    const recordStart = i;
    const outStart = o;
    if (o >= cap) [out, cap] = grow(out, o, 0);
    if (records > 0) out[o++] = COMMA;
    out[o++] = keys === undefined ? 0x5b : 0x7b; // [ or {
    let field = 0;
    for (;;) {
      if (keys !== undefined) {
        const key = keys[field];
        if (key === undefined) throw new SyntaxError("Cannot transcode CSV: too many fields");
        if (o + key.length >= cap) [out, cap] = grow(out, o, key.length);
        out.set(key, o);
        o += key.length;
      } else if (field > 0) {
        out[o++] = COMMA;
      }
      if (o >= cap) [out, cap] = grow(out, o, 0);
      if (i < n && input[i] === QUOTE) {
        // A quoted field: `""` is a quote; the rest is escaped for JSON.
        i++;
        out[o++] = QUOTE;
        quoted: for (;;) {
          if (i >= n) {
            if (final) throw new SyntaxError("Cannot transcode CSV: unterminated quoted field");
            o = outStart;
            break records;
          }
          if (o >= cap) [out, cap] = grow(out, o, 0);
          const b = input[i]!;
          if (b === QUOTE) {
            if (i + 1 >= n && !final) {
              o = outStart;
              break records;
            }
            if (input[i + 1] === QUOTE) {
              out[o++] = BACKSLASH;
              out[o++] = QUOTE;
              i += 2;
              continue;
            }
            i++;
            break quoted;
          }
          if (b >= 0x20 && b !== BACKSLASH) out[o++] = b;
          else o = escape(out, o, b);
          i++;
        }
        out[o++] = QUOTE;
      } else {
        const fieldOut = o;
        out[o++] = QUOTE;
        const from = i;
        // Room for the rest of the buffer as it is; an escaped byte checks for more.
        if (o + (n - i) >= cap) [out, cap] = grow(out, o, n - i);
        while (i < n) {
          const b = input[i]!;
          const kind = UNQUOTED[b]!;
          if (kind === 0) {
            out[o++] = b;
          } else if (kind === 1) {
            break;
          } else if (kind === 2) {
            // Six bytes for this one, and the rest of the buffer still has its room after it.
            if (o + 6 + (n - i) >= cap) [out, cap] = grow(out, o, n - i + 6);
            o = escape(out, o, b);
          } else {
            throw new SyntaxError("Cannot transcode CSV: stray quote in an unquoted field");
          }
          i++;
        }
        if (i >= n && !final) {
          o = outStart;
          break records;
        }
        if (i === from) {
          o = fieldOut;
          out.set(NULL, o);
          o += 4;
        } else {
          out[o++] = QUOTE;
        }
      }
      field++;
      if (i >= n || input[i] === LF) {
        if (keys !== undefined && field !== keys.length) {
          throw new SyntaxError("Cannot transcode CSV: too few fields");
        }
        out[o++] = keys === undefined ? 0x5d : 0x7d; // ] or }
        i = i >= n ? n : i + 1;
        records++;
        lastStart = recordStart;
        end = i;
        continue records;
      }
      if (input[i] === COMMA) {
        i++;
        continue;
      }
      throw new SyntaxError(
        "Cannot transcode CSV: expected ',' or a line end after a quoted field",
      );
    }
  }
  return { json: out.subarray(0, o), records, end, lastStart };
}

/** A bigger output buffer holding the first `used` bytes, with room for `extra` more; and its cap. */
function grow(out: Uint8Array, used: number, extra: number): [Uint8Array, number] {
  const bigger = new Uint8Array(Math.max(out.length * 2, used + extra + 256));
  bigger.set(out.subarray(0, used));
  return [bigger, bigger.length - 16];
}

/** Writes a byte that JSON escapes (a control character, `"` or `\\`); returns the new offset. */
function escape(out: Uint8Array, o: number, b: number): number {
  out[o++] = BACKSLASH;
  if (b === QUOTE || b === BACKSLASH) {
    out[o++] = b;
  } else if (b === LF) {
    out[o++] = 0x6e; // n
  } else if (b === 0x0d) {
    out[o++] = 0x72; // r
  } else if (b === 0x09) {
    out[o++] = 0x74; // t
  } else {
    out[o++] = 0x75; // u
    out[o++] = 0x30;
    out[o++] = 0x30;
    out[o++] = HEX[b >> 4]!;
    out[o++] = HEX[b & 15]!;
  }
  return o;
}

/** The values of the record at `lastStart` (the last one {@link csvToJson} transcoded). */
export function lastRecordOf(input: Uint8Array, result: CsvJson): (string | null)[] | undefined {
  if (result.records === 0) return undefined;
  const last = csvToJson(input.subarray(result.lastStart, result.end), 0, {
    maxRecords: 1,
    maxBytes: Number.MAX_SAFE_INTEGER,
    final: true,
  });
  return JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(last.json));
}
