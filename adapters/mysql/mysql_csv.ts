/**
 * Canonical CSV straight from the bytes of MySQL's text protocol: each row packet is a run of
 * length-coded values (`0xFB` for NULL), and each value is copied into the CSV chunk by its column's
 * {@link CsvEncoding}, without a JavaScript string or object per value (mysql2 would make both). The
 * output is byte for byte what `readRows` followed by `domain/csv.ts` writes (the source contract suite
 * compares the two on the W and EDGE tables).
 *
 * @module
 */
import { formatDouble, formatFloat32 } from "../../domain/logical_type.ts";
import { CsvEncoding } from "./mysql_dialect.ts";

const QUOTE = 0x22;
const COMMA = 0x2c;
const LF = 0x0a;
const CR = 0x0d;
const DOT = 0x2e;
const ZERO = 0x30;
const NULL_VALUE = 0xfb;

/** Lower-case hex digits, as character codes, of each byte value. */
const HEX_CODES = new Uint8Array(512);
for (let i = 0; i < 256; i++) {
  const hex = i.toString(16).padStart(2, "0");
  HEX_CODES[2 * i] = hex.charCodeAt(0);
  HEX_CODES[2 * i + 1] = hex.charCodeAt(1);
}

const utf8Encoder = new TextEncoder();

/** The row packets of one table encoded as CSV lines, gathered into chunks of about a given size. */
export class MysqlCsvEncoder {
  readonly #encodings: Uint8Array;
  readonly #widths: readonly number[];
  readonly #single: boolean;
  readonly #target: number;
  #chunk: Uint8Array;
  #size = 0;

  /**
   * @param columns each column's encoding and, for `bit(n)`, its width (see `mysqlCsvEncoding`).
   * @param chunkBytes the size of the chunks handed over.
   */
  constructor(
    columns: readonly { readonly encoding: CsvEncoding; readonly width: number }[],
    chunkBytes: number,
  ) {
    this.#encodings = Uint8Array.from(columns, (c) => c.encoding);
    this.#widths = columns.map((c) => c.width);
    this.#single = columns.length === 1;
    this.#target = chunkBytes;
    this.#chunk = new Uint8Array(chunkBytes + 4096);
  }

  /** Bytes in the chunk so far. */
  get size(): number {
    return this.#size;
  }

  /** Whether the chunk has reached its size. */
  get full(): boolean {
    return this.#size >= this.#target;
  }

  /**
   * Encodes one row packet's values, `buffer[offset..end)`, as a CSV line.
   *
   * @returns the offset after the table's columns: a guard column, if any, starts there.
   * @throws {RangeError} when the packet ends before its values do.
   */
  addRow(buffer: Uint8Array, offset: number, end: number): number {
    const encodings = this.#encodings;
    let at = offset;
    for (let column = 0; column < encodings.length; column++) {
      if (at >= end) throw new RangeError("Cannot read a MySQL row: the packet ended early");
      if (column > 0) this.#byte(COMMA);
      const first = buffer[at]!;
      if (first === NULL_VALUE) {
        at++;
        continue;
      }
      let length: number;
      if (first < NULL_VALUE) {
        length = first;
        at += 1;
      } else if (first === 0xfc) {
        length = buffer[at + 1]! | (buffer[at + 2]! << 8);
        at += 3;
      } else if (first === 0xfd) {
        length = buffer[at + 1]! | (buffer[at + 2]! << 8) | (buffer[at + 3]! << 16);
        at += 4;
      } else {
        length = buffer[at + 1]! + buffer[at + 2]! * 2 ** 8 + buffer[at + 3]! * 2 ** 16 +
          buffer[at + 4]! * 2 ** 24 + buffer[at + 5]! * 2 ** 32 + buffer[at + 6]! * 2 ** 40;
        at += 9;
      }
      if (at + length > end) throw new RangeError("Cannot read a MySQL row: a value overruns it");
      this.#value(encodings[column]!, this.#widths[column]!, buffer, at, at + length);
      at += length;
    }
    this.#byte(LF);
    return at;
  }

  /** The chunk so far; a new one is started. */
  take(): Uint8Array {
    const taken = this.#chunk.subarray(0, this.#size);
    this.#chunk = new Uint8Array(this.#target + 4096);
    this.#size = 0;
    return taken;
  }

  #value(encoding: number, width: number, buffer: Uint8Array, start: number, end: number): void {
    const length = end - start;
    // The most any encoding writes: hex or doubled quotes twice the bytes, bits eight times.
    this.#reserve((encoding === CsvEncoding.bits ? 8 * length + width : 2 * length) + 64);
    switch (encoding) {
      case CsvEncoding.plain:
        this.#copy(buffer, start, end);
        return;
      case CsvEncoding.stripZeros: {
        let from = start;
        if (buffer[from] === 0x2d) this.#byte(buffer[from++]!);
        while (from < end - 1 && buffer[from] === ZERO && isDigit(buffer[from + 1]!)) from++;
        this.#copy(buffer, from, end);
        return;
      }
      case CsvEncoding.boolean:
        this.#ascii(length === 1 && buffer[start] === ZERO ? "false" : "true");
        return;
      case CsvEncoding.double:
        this.#ascii(formatDouble(Number(latin1(buffer, start, end))));
        return;
      case CsvEncoding.real:
        this.#ascii(formatFloat32(Number(latin1(buffer, start, end))));
        return;
      case CsvEncoding.fraction:
      case CsvEncoding.fractionUtc: {
        this.#copy(buffer, start, trimmedFractionEnd(buffer, start, end));
        if (encoding === CsvEncoding.fractionUtc) this.#ascii("+00");
        return;
      }
      case CsvEncoding.uuid: {
        const chunk = this.#chunk;
        let size = this.#size;
        for (let i = start; i < end; i++) {
          const b = buffer[i]!;
          chunk[size++] = b >= 0x41 && b <= 0x5a ? b + 32 : b;
        }
        this.#size = size;
        return;
      }
      case CsvEncoding.binary: {
        const chunk = this.#chunk;
        let size = this.#size;
        chunk[size++] = 0x5c; // backslash
        chunk[size++] = 0x78; // x
        for (let i = start; i < end; i++) {
          const b = buffer[i]!;
          chunk[size++] = HEX_CODES[2 * b]!;
          chunk[size++] = HEX_CODES[2 * b + 1]!;
        }
        this.#size = size;
        return;
      }
      case CsvEncoding.bits: {
        let digits = "";
        for (let i = start; i < end; i++) digits += buffer[i]!.toString(2).padStart(8, "0");
        this.#ascii(
          digits.length > width ? digits.slice(digits.length - width) : digits.padStart(width, "0"),
        );
        return;
      }
      default:
        this.#text(buffer, start, end);
    }
  }

  /** A text field: quoted, quotes doubled, when empty or holding `"`, `,`, CR or LF (or `\.` alone). */
  #text(buffer: Uint8Array, start: number, end: number): void {
    let quote = start === end ||
      (this.#single && end - start === 2 && buffer[start] === 0x5c && buffer[start + 1] === DOT);
    for (let i = start; i < end && !quote; i++) {
      const b = buffer[i]!;
      quote = b === QUOTE || b === COMMA || b === LF || b === CR;
    }
    if (!quote) {
      this.#copy(buffer, start, end);
      return;
    }
    const chunk = this.#chunk;
    let size = this.#size;
    chunk[size++] = QUOTE;
    for (let i = start; i < end; i++) {
      const b = buffer[i]!;
      if (b === QUOTE) chunk[size++] = QUOTE;
      chunk[size++] = b;
    }
    chunk[size++] = QUOTE;
    this.#size = size;
  }

  #copy(buffer: Uint8Array, start: number, end: number): void {
    if (end - start > 32) {
      this.#chunk.set(buffer.subarray(start, end), this.#size);
      this.#size += end - start;
      return;
    }
    const chunk = this.#chunk;
    let size = this.#size;
    for (let i = start; i < end; i++) chunk[size++] = buffer[i]!;
    this.#size = size;
  }

  /** Appends text of ASCII characters (numbers, `true`), or any text through UTF-8. */
  #ascii(text: string): void {
    this.#reserve(3 * text.length);
    const chunk = this.#chunk;
    let size = this.#size;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code > 0x7f) {
        this.#size += utf8Encoder.encodeInto(text, chunk.subarray(this.#size)).written;
        return;
      }
      chunk[size++] = code;
    }
    this.#size = size;
  }

  #byte(value: number): void {
    if (this.#size === this.#chunk.length) this.#reserve(1);
    this.#chunk[this.#size++] = value;
  }

  /** Makes room for `more` bytes, growing the chunk past its size when one value needs it. */
  #reserve(more: number): void {
    if (this.#size + more <= this.#chunk.length) return;
    const grown = new Uint8Array(Math.max(2 * this.#chunk.length, this.#size + more));
    grown.set(this.#chunk.subarray(0, this.#size));
    this.#chunk = grown;
  }
}

function isDigit(b: number): boolean {
  return b >= ZERO && b <= 0x39;
}

/** `trimFraction` on bytes: the end without the fraction's trailing zeros, nor a bare dot. */
function trimmedFractionEnd(buffer: Uint8Array, start: number, end: number): number {
  let dot = -1;
  for (let i = end - 1; i >= start; i--) {
    if (buffer[i] === DOT) {
      dot = i;
      break;
    }
  }
  if (dot < 0) return end;
  let last = end;
  while (last > dot + 1 && buffer[last - 1] === ZERO) last--;
  return last === dot + 1 ? dot : last;
}

function latin1(buffer: Uint8Array, start: number, end: number): string {
  let text = "";
  for (let i = start; i < end; i++) text += String.fromCharCode(buffer[i]!);
  return text;
}
