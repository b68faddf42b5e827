/**
 * The checks of an uploaded tabular file (CSV, TSV, plain text; `docs/uploads.md`), fed its bytes in
 * chunks as they are read so that a file of any size is checked in constant memory: UTF-8 (an error
 * names the byte offset of the first invalid sequence), the delimiter (comma, tab or semicolon, from the
 * first line), the header, the row count, ragged rows, each column's type inferred from its values, a
 * preview of the first rows, and warnings for unsafe or reserved column names and for columns missing or
 * added relative to the data source's previous version. Pure: no IO.
 *
 * @module
 */

/** The column types inferred, most specific first where one includes another. */
export const COLUMN_TYPES = ["integer", "decimal", "boolean", "date", "timestamp", "text"] as const;

/** A column type; the uploader may override the inferred one (`withOverrides`). */
export type ColumnType = typeof COLUMN_TYPES[number];

/** The delimiters detected. */
export const DELIMITERS = [",", "\t", ";"] as const;

/** How many rows the preview keeps. */
export const PREVIEW_ROWS = 10;

/** How many ragged rows a report lists by line (it counts them all). */
const RAGGED_LISTED = 10;

/** One column of the report. */
export interface ColumnReport {
  readonly name: string;
  /** The type every non-empty value fits. */
  readonly inferred: ColumnType;
  /** The type the data source will declare: the uploader's override, else {@link inferred}. */
  readonly type: ColumnType;
  /** How many values were empty. */
  readonly empty: number;
}

/** What the checks found. */
export interface TabularReport {
  /** `null` when the file is valid UTF-8, else where it is not. */
  readonly encodingError: { readonly byteOffset: number; readonly message: string } | null;
  readonly delimiter: "," | "\t" | ";";
  readonly columns: readonly ColumnReport[];
  /** Data rows (the header not counted). */
  readonly rows: number;
  /** Rows whose field count differs from the header's. */
  readonly raggedRows: number;
  /** The first ragged rows' line numbers (1-based, the header is line 1) and field counts. */
  readonly ragged: readonly { readonly line: number; readonly fields: number }[];
  /** The header and up to {@link PREVIEW_ROWS} rows. */
  readonly preview: readonly (readonly string[])[];
  /** Problems that do not stop a release but that a reviewer should see. */
  readonly warnings: readonly string[];
  /** Problems that stop a release (bad encoding, no header, ragged rows, an unterminated quote). */
  readonly errors: readonly string[];
}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
const BOOLEAN = /^(?:true|false|TRUE|FALSE|True|False)$/;
const DATE = /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])$/;
const TIMESTAMP =
  /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[T ](?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?$/;

/** Column names SQL reserves (a subset every engine shares), refused quietly by some loaders. */
const RESERVED = new Set([
  "all",
  "and",
  "as",
  "by",
  "case",
  "check",
  "column",
  "constraint",
  "create",
  "default",
  "delete",
  "distinct",
  "drop",
  "from",
  "grant",
  "group",
  "having",
  "in",
  "insert",
  "into",
  "is",
  "join",
  "not",
  "null",
  "on",
  "or",
  "order",
  "select",
  "table",
  "to",
  "union",
  "update",
  "user",
  "where",
  "with",
]);

/** A safe column name: a letter or `_`, then letters, digits or `_`, at most 63 characters. */
const SAFE_COLUMN = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Validates UTF-8 across chunks, remembering the byte offset of the first invalid sequence. */
class Utf8Validator {
  #need = 0;
  #min = 0;
  #codePoint = 0;
  #start = 0;
  #offset = 0;
  error: { byteOffset: number; message: string } | null = null;

  push(bytes: Uint8Array): void {
    for (let i = 0; i < bytes.length && this.error === null; i++, this.#offset++) {
      const b = bytes[i]!;
      if (this.#need === 0) {
        this.#start = this.#offset;
        if (b < 0x80) continue;
        if (b >= 0xc2 && b <= 0xdf) [this.#need, this.#codePoint, this.#min] = [1, b & 0x1f, 0x80];
        else if (b >= 0xe0 && b <= 0xef) {
          [this.#need, this.#codePoint, this.#min] = [2, b & 0x0f, 0x800];
        } else if (b >= 0xf0 && b <= 0xf4) {
          [this.#need, this.#codePoint, this.#min] = [3, b & 0x07, 0x10000];
        } else this.#fail(`byte 0x${b.toString(16).padStart(2, "0")} cannot start a character`);
        continue;
      }
      if ((b & 0xc0) !== 0x80) {
        this.#fail("a multi-byte character ends too early");
        continue;
      }
      this.#codePoint = (this.#codePoint << 6) | (b & 0x3f);
      if (--this.#need === 0) {
        const cp = this.#codePoint;
        if (cp < this.#min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
          this.#fail("an overlong, surrogate or out-of-range character");
        }
      }
    }
  }

  end(): void {
    if (this.error === null && this.#need > 0) this.#fail("the file ends inside a character");
  }

  #fail(reason: string): void {
    this.error = {
      byteOffset: this.#start,
      message: `The file is not valid UTF-8 at byte offset ${this.#start}: ${reason}`,
    };
  }
}

/** Which types a column's values still all fit. */
interface ColumnState {
  fits: Set<ColumnType>;
  empty: number;
}

/**
 * Checks one tabular file fed in chunks ({@link push}), then reports ({@link finish}). `hint` is the
 * file's extension (a `.tsv` file whose first line has no delimiter is read as tab-separated).
 */
export class TabularChecker {
  readonly #utf8 = new Utf8Validator();
  readonly #decoder = new TextDecoder("utf-8", { fatal: false });
  readonly #hint: string;
  #delimiter: "," | "\t" | ";" | null = null;
  #pending = "";
  // Record parser state.
  #field = "";
  #record: string[] = [];
  #inQuotes = false;
  #quoteClosed = false;
  #afterCr = false;
  #header: string[] | null = null;
  #columns: ColumnState[] = [];
  #rows = 0;
  #raggedRows = 0;
  #ragged: { line: number; fields: number }[] = [];
  #preview: string[][] = [];
  #line = 0;
  #errors: string[] = [];

  constructor(hint = "csv") {
    this.#hint = hint;
  }

  /** Feeds the next bytes of the file. */
  push(bytes: Uint8Array): void {
    if (this.#utf8.error !== null) return;
    this.#utf8.push(bytes);
    if (this.#utf8.error !== null) return;
    this.#text(this.#decoder.decode(bytes, { stream: true }));
  }

  /** The report, given the previous version's column names (if any) and the uploader's overrides. */
  finish(
    previousColumns: readonly string[] | null = null,
    overrides: Readonly<Record<string, ColumnType>> = {},
  ): TabularReport {
    this.#utf8.end();
    if (this.#utf8.error === null) {
      this.#text(this.#decoder.decode());
      if (this.#delimiter === null) this.#detect(this.#pending, true);
      if (this.#inQuotes) this.#errors.push("The file ends inside a quoted field");
      else if (this.#field !== "" || this.#record.length > 0 || this.#quoteClosed) {
        this.#endRecord();
      }
    }
    const encodingError = this.#utf8.error;
    const errors = encodingError === null ? [...this.#errors] : [encodingError.message];
    if (encodingError === null && this.#header === null) errors.push("The file has no header row");
    if (this.#raggedRows > 0) {
      errors.push(
        `${this.#raggedRows} rows do not have the header's ${this.#header?.length} fields`,
      );
    }
    const names = this.#header ?? [];
    const columns = names.map((name, i): ColumnReport => {
      const inferred = COLUMN_TYPES.find((t) => this.#columns[i]?.fits.has(t)) ?? "text";
      return {
        name,
        inferred,
        type: overrides[name] ?? inferred,
        empty: this.#columns[i]?.empty ?? 0,
      };
    });
    return {
      encodingError,
      delimiter: this.#delimiter ?? ",",
      columns,
      rows: this.#rows,
      raggedRows: this.#raggedRows,
      ragged: this.#ragged,
      preview: this.#preview,
      warnings: columnWarnings(names, previousColumns),
      errors,
    };
  }

  #text(text: string): void {
    if (this.#delimiter === null) {
      this.#pending += text;
      if (!this.#detect(this.#pending, false)) return;
      text = this.#pending;
      this.#pending = "";
    }
    this.#parse(text);
  }

  /** Picks the delimiter from the first line once it is whole (or at the end of the file). */
  #detect(text: string, atEnd: boolean): boolean {
    const newline = text.indexOf("\n");
    if (newline < 0 && !atEnd) return false;
    const first = newline < 0 ? text : text.slice(0, newline);
    const counts = DELIMITERS.map((d) => first.split(d).length - 1);
    const best = Math.max(...counts);
    this.#delimiter = best === 0
      ? (this.#hint === "tsv" ? "\t" : ",")
      : DELIMITERS[counts.indexOf(best)]!;
    if (atEnd) {
      this.#pending = "";
      this.#parse(text);
    }
    return true;
  }

  #parse(text: string): void {
    const d = this.#delimiter!;
    for (const ch of text) {
      if (this.#afterCr) {
        this.#afterCr = false;
        if (ch === "\n") continue;
      }
      if (this.#inQuotes) {
        if (ch === '"') {
          this.#inQuotes = false;
          this.#quoteClosed = true;
        } else this.#field += ch;
        continue;
      }
      if (ch === '"') {
        // A doubled quote inside a quoted field, or a field that starts quoted.
        if (this.#quoteClosed) this.#field += '"';
        this.#inQuotes = true;
        this.#quoteClosed = false;
      } else if (ch === d) {
        this.#endField();
      } else if (ch === "\n" || ch === "\r") {
        this.#afterCr = ch === "\r";
        this.#endRecord();
      } else {
        this.#field += ch;
      }
    }
  }

  #endField(): void {
    this.#record.push(this.#field);
    this.#field = "";
    this.#quoteClosed = false;
  }

  #endRecord(): void {
    this.#endField();
    const record = this.#record;
    this.#record = [];
    this.#line++;
    if (this.#header === null) {
      this.#header = record.map((name) => name.trim());
      this.#columns = record.map(() => ({ fits: new Set(COLUMN_TYPES), empty: 0 }));
      this.#preview.push(this.#header);
      return;
    }
    if (record.length === 1 && record[0] === "") return; // a blank line
    this.#rows++;
    if (this.#preview.length <= PREVIEW_ROWS) this.#preview.push(record);
    if (record.length !== this.#header.length) {
      this.#raggedRows++;
      if (this.#ragged.length < RAGGED_LISTED) {
        this.#ragged.push({ line: this.#line, fields: record.length });
      }
    }
    record.forEach((value, i) => {
      const column = this.#columns[i];
      if (column === undefined) return;
      if (value === "") {
        column.empty++;
        return;
      }
      for (const type of column.fits) {
        if (type !== "text" && !fits(type, value)) column.fits.delete(type);
      }
    });
  }
}

function fits(type: Exclude<ColumnType, "text">, value: string): boolean {
  switch (type) {
    case "integer":
      return INTEGER.test(value) && fitsInt64(value);
    case "decimal":
      return DECIMAL.test(value);
    case "boolean":
      return BOOLEAN.test(value);
    case "date":
      return DATE.test(value);
    case "timestamp":
      return TIMESTAMP.test(value);
  }
}

const INT64_MAX = "9223372036854775807";
const INT64_MIN_MAGNITUDE = "9223372036854775808";

/** Whether integer text (`INTEGER`) fits a signed 64-bit integer; larger ones are `decimal`. */
function fitsInt64(value: string): boolean {
  const negative = value.startsWith("-");
  const digits = value.replace(/^[+-]/, "").replace(/^0+(?=\d)/, "");
  const limit = negative ? INT64_MIN_MAGNITUDE : INT64_MAX;
  return digits.length < limit.length || (digits.length === limit.length && digits <= limit);
}

/** Warnings on a header's names and on its change from the previous version's columns. */
export function columnWarnings(
  names: readonly string[],
  previousColumns: readonly string[] | null,
): string[] {
  const warnings: string[] = [];
  const seen = new Set<string>();
  for (const name of names) {
    const lower = name.toLowerCase();
    if (name === "") warnings.push("A column has no name");
    else if (!SAFE_COLUMN.test(name)) {
      warnings.push(
        `Column "${name}" is not a safe name (a letter or _, then letters, digits or _)`,
      );
    } else if (RESERVED.has(lower)) warnings.push(`Column "${name}" is an SQL reserved word`);
    if (seen.has(lower)) warnings.push(`Column "${name}" appears more than once`);
    seen.add(lower);
  }
  if (previousColumns !== null) {
    const missing = previousColumns.filter((c) => !names.includes(c));
    const added = names.filter((c) => !previousColumns.includes(c));
    if (missing.length > 0) {
      warnings.push(`Columns missing since the previous version: ${missing.join(", ")}`);
    }
    if (added.length > 0) {
      warnings.push(`Columns added since the previous version: ${added.join(", ")}`);
    }
  }
  return warnings;
}

/** Whether `text` names a {@link ColumnType}. */
export function isColumnType(text: string): text is ColumnType {
  return (COLUMN_TYPES as readonly string[]).includes(text);
}
