/**
 * Canonical CSV (`docs/csv-format.md`), or the same values as PostgreSQL's `COPY ... TO` writes them in
 * its text format, transcoded to JSON byte by byte, without making a JavaScript string of any value:
 * what serving a page of a published table costs least. Each record becomes a JSON array of its values
 * (`tabular`) or an object by column name (`records`); NULL (an empty unquoted CSV field, `\N` in the
 * text format) becomes `null`, every other value a JSON string of exactly its text, escaped the same way
 * from either format. Records are separated by `,`, without enclosing brackets.
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

const TAB = 0x09;

/** What a byte is to an unquoted field: 0 copied as it is, 1 ends the field, 2 escaped, 3 refused. */
const UNQUOTED = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) UNQUOTED[b] = 2;
UNQUOTED[BACKSLASH] = 2;
UNQUOTED[COMMA] = 1;
UNQUOTED[LF] = 1;
UNQUOTED[QUOTE] = 3;

/**
 * What a byte is to a field of the COPY text format: 0 copied as it is, 1 ends the field (tab, line
 * end), 2 escaped for JSON (a control character or `"`), 3 starts a backslash sequence.
 */
const COPY_TEXT = new Uint8Array(256);
for (let b = 0; b < 0x20; b++) COPY_TEXT[b] = 2;
COPY_TEXT[QUOTE] = 2;
COPY_TEXT[TAB] = 1;
COPY_TEXT[LF] = 1;
COPY_TEXT[BACKSLASH] = 3;

/**
 * The byte each backslash sequence of the COPY text format stands for (0: not one COPY writes). COPY TO
 * writes these six control characters and the backslash so; every other byte as it is.
 */
const COPY_TEXT_ESCAPED = new Uint8Array(256);
COPY_TEXT_ESCAPED[0x62] = 0x08; // \b
COPY_TEXT_ESCAPED[0x66] = 0x0c; // \f
COPY_TEXT_ESCAPED[0x6e] = LF; // \n
COPY_TEXT_ESCAPED[0x72] = 0x0d; // \r
COPY_TEXT_ESCAPED[0x74] = TAB; // \t
COPY_TEXT_ESCAPED[0x76] = 0x0b; // \v
COPY_TEXT_ESCAPED[BACKSLASH] = BACKSLASH;
const N = 0x4e;

/** What one append of a {@link JsonRowsWriter} (or {@link csvToJson}) took from its input. */
export interface CsvJsonStep {
  /** How many records. */
  readonly records: number;
  /** The offset just past the last record transcoded (its LF), or `start` when there was none. */
  readonly end: number;
  /** The offset where the last record transcoded starts (`start` when there was none). */
  readonly lastStart: number;
}

/** What {@link csvToJson} produced. */
export interface CsvJson extends CsvJsonStep {
  /** The records as JSON, separated by `,`. */
  readonly json: Uint8Array;
}

/** How much of the input one append of a {@link JsonRowsWriter} takes. */
export interface CsvJsonLimits {
  /** At most this many records. */
  readonly maxRecords: number;
  /** Stop once the records' CSV bytes reach this (at least one record when there is one). */
  readonly maxBytes: number;
  /** Whether the input ends here (a record cut off by its end is then refused, not left). */
  readonly final: boolean;
}

/**
 * Transcodes records into one JSON buffer that grows as needed, across calls: what a page read as many
 * small pieces (one per row) is built with, without a buffer per piece nor a copy to join them. Records
 * are separated by `,` across calls too.
 */
export class JsonRowsWriter {
  #out: Uint8Array;
  #length = 0;
  #records = 0;
  #end = 0;
  #lastStart = 0;
  readonly #keys: readonly Uint8Array[] | undefined;

  /**
   * @param options.names with `records`: the column names, in order; without: arrays (`tabular`).
   * @param options.capacity the bytes to start with (the buffer doubles when it is short).
   */
  constructor(
    options: { readonly names?: readonly string[] | undefined; readonly capacity?: number },
  ) {
    this.#keys = options.names?.map((n, i) =>
      new TextEncoder().encode(`${i === 0 ? "" : ","}${JSON.stringify(n)}:`)
    );
    this.#out = new Uint8Array(Math.max(256, Math.ceil(options.capacity ?? 0)));
  }

  /** The JSON written so far: a view of the writer's buffer, valid until the next `append`. */
  get json(): Uint8Array {
    return this.#out.subarray(0, this.#length);
  }

  /** How many records were written in all. */
  get records(): number {
    return this.#records;
  }

  /** Where the last append stopped in its input: just past its last record, or its `start`. */
  get end(): number {
    return this.#end;
  }

  /** Where the last append's last record starts in its input (its `start` when it took none). */
  get lastStart(): number {
    return this.#lastStart;
  }

  /**
   * Transcodes complete CSV records of `input` from `start`, until `maxRecords` records or until their
   * CSV bytes reach `maxBytes` (at least one record when there is one). A record cut off by the end of a
   * non-final buffer is left for the next call. Returns how many records it took ({@link end} and
   * {@link lastStart} say where they are): no object per call, since a page appends a row at a time.
   *
   * @throws {SyntaxError} on a stray quote, text after a closing quote, an unterminated quoted field at
   *   the end of a final buffer, or a record with another number of fields than `names`.
   */
  appendCsv(input: Uint8Array, start: number, limits: CsvJsonLimits): number {
    return this.#append(input, start, limits, false);
  }

  /**
   * As {@link appendCsv}, for records in PostgreSQL's `COPY ... TO` text format (tab between fields,
   * `\N` for NULL, backslash sequences), whose `maxBytes` counts its bytes.
   *
   * @throws {SyntaxError} on a backslash sequence COPY does not write, a record without its line end at
   *   the end of a final buffer, or a record with another number of fields than `names`.
   */
  appendCopyText(input: Uint8Array, start: number, limits: CsvJsonLimits): number {
    return this.#append(input, start, limits, true);
  }

  /** {@link appendCsv}, or with `copyText` {@link appendCopyText}: the framing is the same. */
  #append(input: Uint8Array, start: number, limits: CsvJsonLimits, copyText: boolean): number {
    const keys = this.#keys;
    const n = input.length;
    const { maxRecords, maxBytes, final } = limits;
    const separator = copyText ? TAB : COMMA;
    const what = copyText ? "COPY text" : "CSV";
    let out = this.#out;
    const expected = Math.min(n - start, maxBytes) * 1.25 + 64;
    if (out.length - this.#length < expected) [out] = grow(out, this.#length, expected);
    let cap = out.length - 16;
    let o = this.#length;
    let records = 0;
    let i = start;
    let lastStart = start;
    let end = start;
    const separated = this.#records;
    // Every write below is preceded by a check that 16 bytes are free (`cap`); a key is written after
    // making room for it. A record cut off by the end of a non-final buffer is taken back (`outStart`).
    records: while (records < maxRecords && end - start < maxBytes && i < n) {
      const recordStart = i;
      const outStart = o;
      if (o >= cap) [out, cap] = grow(out, o, 0);
      if (records + separated > 0) out[o++] = COMMA;
      out[o++] = keys === undefined ? 0x5b : 0x7b; // [ or {
      let field = 0;
      for (;;) {
        if (keys !== undefined) {
          const key = keys[field];
          if (key === undefined) throw new SyntaxError(`Cannot transcode ${what}: too many fields`);
          if (o + key.length >= cap) [out, cap] = grow(out, o, key.length);
          out.set(key, o);
          o += key.length;
        } else if (field > 0) {
          out[o++] = COMMA;
        }
        if (o >= cap) [out, cap] = grow(out, o, 0);
        if (copyText) {
          if (input[i] === BACKSLASH && i + 2 >= n) {
            // Not even room for the line end after two bytes: the record is cut off.
            if (final) {
              throw new SyntaxError("Cannot transcode COPY text: a record without its line end");
            }
            o = outStart;
            break records;
          }
          if (input[i] === BACKSLASH && input[i + 1] === N) {
            if (input[i + 2] !== TAB && input[i + 2] !== LF) {
              throw new SyntaxError("Cannot transcode COPY text: text after \\N");
            }
            out.set(NULL, o);
            o += 4;
            i += 2;
          } else {
            out[o++] = QUOTE;
            // Room for the rest of the buffer as it is; an escaped byte checks for more.
            if (o + (n - i) >= cap) [out, cap] = grow(out, o, n - i);
            while (i < n) {
              const b = input[i]!;
              const kind = COPY_TEXT[b]!;
              if (kind === 0) {
                out[o++] = b;
              } else if (kind === 1) {
                break;
              } else {
                let value = b;
                if (kind === 3) {
                  if (i + 1 >= n) {
                    if (final) throw new SyntaxError("Cannot transcode COPY text: a cut backslash");
                    o = outStart;
                    break records;
                  }
                  value = COPY_TEXT_ESCAPED[input[++i]!]!;
                  if (value === 0) {
                    throw new SyntaxError(
                      "Cannot transcode COPY text: an unknown backslash sequence",
                    );
                  }
                }
                // Six bytes for this one, and the rest of the buffer still has its room after it.
                if (o + 6 + (n - i) >= cap) [out, cap] = grow(out, o, n - i + 6);
                o = escape(out, o, value);
              }
              i++;
            }
            out[o++] = QUOTE;
          }
        } else if (i < n && input[i] === QUOTE) {
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
          if (i === from) {
            o = fieldOut;
            out.set(NULL, o);
            o += 4;
          } else {
            out[o++] = QUOTE;
          }
        }
        field++;
        if (i >= n) {
          // The buffer ends inside the record: a final CSV buffer may end its last record so.
          if (!final) {
            o = outStart;
            break records;
          }
          if (copyText) {
            throw new SyntaxError("Cannot transcode COPY text: a record without its line end");
          }
        }
        if (i >= n || input[i] === LF) {
          if (keys !== undefined && field !== keys.length) {
            throw new SyntaxError(`Cannot transcode ${what}: too few fields`);
          }
          out[o++] = keys === undefined ? 0x5d : 0x7d; // ] or }
          i = i >= n ? n : i + 1;
          records++;
          lastStart = recordStart;
          end = i;
          continue records;
        }
        if (input[i] === separator) {
          i++;
          continue;
        }
        throw new SyntaxError(
          "Cannot transcode CSV: expected ',' or a line end after a quoted field",
        );
      }
    }
    this.#out = out;
    this.#length = o;
    this.#records += records;
    this.#end = end;
    this.#lastStart = lastStart;
    return records;
  }
}

/**
 * Transcodes complete CSV records of `input` from `start` into a JSON buffer of their own (see
 * {@link JsonRowsWriter.appendCsv}).
 *
 * @param names with `records`: the column names, in order; without: arrays (`tabular`).
 * @throws {SyntaxError} as {@link JsonRowsWriter.appendCsv}.
 */
export function csvToJson(
  input: Uint8Array,
  start: number,
  options: CsvJsonLimits & { readonly names?: readonly string[] | undefined },
): CsvJson {
  const writer = new JsonRowsWriter({
    names: options.names,
    capacity: Math.min(input.length - start, options.maxBytes) * 1.25 + 256,
  });
  const records = writer.appendCsv(input, start, options);
  return { records, end: writer.end, lastStart: writer.lastStart, json: writer.json };
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

/**
 * The values of the record at `lastStart` (the last one a {@link JsonRowsWriter} or {@link csvToJson}
 * transcoded), from its CSV or, with `format` `copy-text`, its COPY text.
 */
export function lastRecordOf(
  input: Uint8Array,
  result: CsvJsonStep,
  format: "csv" | "copy-text" = "csv",
): (string | null)[] | undefined {
  if (result.records === 0) return undefined;
  const record = input.subarray(result.lastStart, result.end);
  const writer = new JsonRowsWriter({ capacity: record.length * 1.25 + 64 });
  const limits = { maxRecords: 1, maxBytes: Number.MAX_SAFE_INTEGER, final: true };
  if (format === "csv") writer.appendCsv(record, 0, limits);
  else writer.appendCopyText(record, 0, limits);
  return JSON.parse(`[${new TextDecoder("utf-8", { fatal: true }).decode(writer.json)}]`)[0];
}
