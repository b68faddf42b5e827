/**
 * Disclosure pre-checks: statistics computed over every row of a staged table while it is packaged, so
 * that the people who approve a release see what it discloses, and the published bag carries the record
 * of the checks and the thresholds applied (`disclosure-checks.json`, see `docs/disclosure.md`).
 *
 * Per table: the rows. Per column: the nulls; the distinct values (exact up to
 * {@link DISTINCT_EXACT_CAP}, then a HyperLogLog estimate, `estimate: true`); the minimum and maximum for
 * numbers, dates and times ({@link ORDERED_KINDS}); and, for columns with at most {@link CATEGORY_CAP}
 * distinct values, the count per value, each value seen fewer than the small-cell threshold flagged
 * (unless every value is seen once: that column is an identifier or free text, not a category).
 *
 * **What the output may hold.** No row-level value except category labels with their counts (a label seen
 * at least the threshold's times is an aggregate; one seen fewer times is flagged, as the approvers must
 * see it) and the minimum and maximum of numbers, dates and times. Text, identifiers (UUID), JSON, binary,
 * intervals and booleans get no minimum or maximum: the smallest or largest of a free-text or identifier
 * column is one person's value, and tells an approver nothing about the distribution.
 *
 * **Memory** is bounded whatever the number of rows: per column at most {@link DISTINCT_EXACT_CAP} 53-bit
 * value hashes (then a 4 KiB sketch instead), at most {@link CATEGORY_CAP} + 1 labels of at most
 * {@link CATEGORY_LABEL_MAX_CHARS} characters, and the current minimum and maximum (numbers, dates and
 * times: short). Distinct counts below the cap compare 53-bit hashes, so two values could in theory share
 * one (about one chance in 10^9 at the cap).
 *
 * @module
 */
import { z } from "zod";
import type { LogicalKind } from "./logical_type.ts";

/** Distinct values are counted exactly up to this many per column, then estimated. */
export const DISTINCT_EXACT_CAP = 10_000;

/** Columns with at most this many distinct values get a count per value. */
export const CATEGORY_CAP = 50;

/** A value longer than this (in UTF-16 code units) is no category: its column gets no counts per value. */
export const CATEGORY_LABEL_MAX_CHARS = 200;

/** Values seen fewer times than this are flagged, unless the service sets `SMALL_CELL_THRESHOLD`. */
export const DEFAULT_SMALL_CELL_THRESHOLD = 10;

/**
 * The publish service's `DISCLOSURE_CHECKS`: `requested` (the default) checks a package whose request asks
 * for it (`disclosure_checks: true`, sent by the gateway when a gate before `publish` covers the
 * destination), `on` checks every package, `off` none.
 */
export const DISCLOSURE_CHECK_SETTINGS = ["requested", "on", "off"] as const;

/** One of {@link DISCLOSURE_CHECK_SETTINGS}. */
export type DisclosureCheckSetting = (typeof DISCLOSURE_CHECK_SETTINGS)[number];

/** The service default of `DISCLOSURE_CHECKS`: pay for the checks only when someone will look at them. */
export const DEFAULT_DISCLOSURE_CHECK_SETTING: DisclosureCheckSetting = "requested";

/** Whether a package gets its disclosure pre-checks, from the service's setting and the request's ask. */
export function checksDisclosure(
  setting: DisclosureCheckSetting,
  requested: boolean | undefined,
): boolean {
  if (setting === "on") return true;
  if (setting === "off") return false;
  return requested === true;
}

/** The kinds whose minimum and maximum are reported: numbers, dates and times. */
export const ORDERED_KINDS: ReadonlySet<LogicalKind> = new Set<LogicalKind>([
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
]);

/** The thresholds a check applied, recorded with its results. */
export interface DisclosureThresholds {
  readonly small_cell_threshold: number;
  readonly distinct_exact_cap: number;
  readonly category_cap: number;
  readonly category_label_max_chars: number;
}

/** The thresholds for a small-cell threshold, with this module's caps. */
export function disclosureThresholds(smallCellThreshold: number): DisclosureThresholds {
  if (!Number.isSafeInteger(smallCellThreshold) || smallCellThreshold < 1) {
    throw new RangeError("The small-cell threshold must be a whole number of at least 1");
  }
  return {
    small_cell_threshold: smallCellThreshold,
    distinct_exact_cap: DISTINCT_EXACT_CAP,
    category_cap: CATEGORY_CAP,
    category_label_max_chars: CATEGORY_LABEL_MAX_CHARS,
  };
}

/** The count of one category value; `small` when it was seen fewer times than the threshold. */
export interface CategoryCount {
  readonly value: string;
  readonly count: number;
  readonly small: boolean;
}

/** The statistics of one column. */
export interface ColumnDisclosure {
  readonly name: string;
  readonly kind: LogicalKind;
  readonly nulls: number;
  /** Distinct non-null values; `estimate: true` past {@link DISTINCT_EXACT_CAP}. */
  readonly distinct: { readonly value: number; readonly estimate: boolean };
  /** Canonical text of the smallest value; `null` for unordered kinds or when every value is null. */
  readonly min: string | null;
  readonly max: string | null;
  /**
   * Counts per value, sorted by value (code point), when the column has at most {@link CATEGORY_CAP}
   * distinct values none longer than {@link CATEGORY_LABEL_MAX_CHARS} and some value is seen more than
   * once; otherwise `null` (a column of values each seen once is no category: its labels would be rows).
   */
  readonly categories: readonly CategoryCount[] | null;
  /** How many of `categories` are flagged `small`. */
  readonly small_categories: number;
}

/** The statistics of one table. */
export interface TableDisclosure {
  readonly table: string;
  readonly rows: number;
  readonly columns: readonly ColumnDisclosure[];
}

/** A column to check: its name and logical kind. */
export interface DisclosureColumn {
  readonly name: string;
  readonly kind: LogicalKind;
}

const count = z.number().int().nonnegative();

/** {@link DisclosureThresholds} as stored (staging manifest, run). */
export const disclosureThresholdsSchema = z.strictObject({
  small_cell_threshold: z.number().int().positive(),
  distinct_exact_cap: count,
  category_cap: count,
  category_label_max_chars: count,
});

/** {@link TableDisclosure} as stored (staging manifest, run). */
export const tableDisclosureSchema = z.strictObject({
  table: z.string().min(1),
  rows: count,
  columns: z.array(z.strictObject({
    name: z.string(),
    kind: z.string() as z.ZodType<LogicalKind>,
    nulls: count,
    distinct: z.strictObject({ value: count, estimate: z.boolean() }),
    min: z.string().nullable(),
    max: z.string().nullable(),
    categories: z.array(z.strictObject({ value: z.string(), count, small: z.boolean() })).readonly()
      .nullable(),
    small_categories: count,
  })).readonly(),
});

/** The checks of one staged dataset: the thresholds applied and each table's statistics. */
export const datasetDisclosureSchema = z.strictObject({
  thresholds: disclosureThresholdsSchema,
  tables: z.array(tableDisclosureSchema).readonly(),
});

/** See {@link datasetDisclosureSchema}. */
export type DatasetDisclosure = z.infer<typeof datasetDisclosureSchema>;

/** cyrb53 (public domain): a fast 53-bit string hash. */
function hash53(text: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** HyperLogLog precision: 2^12 one-byte registers, a standard error of about 1.6 %. */
const HLL_BITS = 12;
const HLL_REGISTERS = 1 << HLL_BITS;
/** Bits of the 53-bit hash left for the rank once the register index is taken. */
const HLL_RANK_BITS = 53 - HLL_BITS;

/** A fixed-size HyperLogLog sketch over 53-bit hashes. */
class HyperLogLog {
  readonly #registers = new Uint8Array(HLL_REGISTERS);

  add(hash: number): void {
    const index = hash % HLL_REGISTERS;
    const rest = Math.floor(hash / HLL_REGISTERS);
    // Rank: position of the highest set bit of `rest` counted from the top of HLL_RANK_BITS bits.
    const rank = rest === 0 ? HLL_RANK_BITS + 1 : HLL_RANK_BITS - Math.floor(Math.log2(rest));
    if (rank > this.#registers[index]!) this.#registers[index] = rank;
  }

  estimate(): number {
    let sum = 0;
    let zeros = 0;
    for (const register of this.#registers) {
      sum += 2 ** -register;
      if (register === 0) zeros++;
    }
    const alpha = 0.7213 / (1 + 1.079 / HLL_REGISTERS);
    const raw = alpha * HLL_REGISTERS * HLL_REGISTERS / sum;
    if (raw <= 2.5 * HLL_REGISTERS && zeros > 0) {
      return Math.round(HLL_REGISTERS * Math.log(HLL_REGISTERS / zeros));
    }
    return Math.round(raw);
  }
}

/** A number's canonical text as sign, significant digits and exponent (value = 0.digits × 10^exponent). */
interface DecimalParts {
  /** -2: -Infinity, 2: Infinity, 3: NaN (greatest, as PostgreSQL orders it), else the sign (-1, 0, 1). */
  readonly rank: number;
  readonly digits: string;
  readonly exponent: number;
}

function decimalParts(text: string): DecimalParts {
  if (text === "NaN") return { rank: 3, digits: "", exponent: 0 };
  if (text === "Infinity") return { rank: 2, digits: "", exponent: 0 };
  if (text === "-Infinity") return { rank: -2, digits: "", exponent: 0 };
  const negative = text.startsWith("-");
  let body = negative || text.startsWith("+") ? text.slice(1) : text;
  let shift = 0;
  const e = body.search(/[eE]/);
  if (e >= 0) {
    shift = Number(body.slice(e + 1));
    body = body.slice(0, e);
  }
  const point = body.indexOf(".");
  const whole = point < 0 ? body : body.slice(0, point);
  const fraction = point < 0 ? "" : body.slice(point + 1);
  let digits = whole + fraction;
  let exponent = whole.length + shift;
  const leading = digits.search(/[1-9]/);
  if (leading < 0) return { rank: 0, digits: "", exponent: 0 };
  digits = digits.slice(leading).replace(/0+$/, "");
  exponent -= leading;
  return { rank: negative ? -1 : 1, digits, exponent };
}

/** Compares two numbers' canonical texts exactly (no floating point). */
export function compareDecimalText(a: string, b: string): number {
  const fast = comparePlainDecimals(a, b);
  if (fast !== undefined) return fast;
  const x = decimalParts(a);
  const y = decimalParts(b);
  if (x.rank !== y.rank) return x.rank < y.rank ? -1 : 1;
  if (x.rank !== 1 && x.rank !== -1) return 0;
  let order: number;
  if (x.exponent !== y.exponent) order = x.exponent < y.exponent ? -1 : 1;
  else order = x.digits < y.digits ? -1 : x.digits > y.digits ? 1 : 0;
  return x.rank === 1 ? order : -order;
}

/**
 * The index of the decimal point of a plain decimal (`-?digits[.digits]`, no leading zero), or its
 * length when it has none; -1 for any other text (exponent form, `NaN`, `-0...`), left to the exact path.
 */
function plainPoint(text: string, start: number): number {
  const length = text.length;
  if (start >= length) return -1;
  let point = length;
  for (let i = start; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) continue;
    if (c !== 46 || point !== length || i === start) return -1;
    point = i;
  }
  if (text.charCodeAt(start) === 48 && (point - start > 1 || start === 1)) return -1;
  return point;
}

/** The fast path of {@link compareDecimalText} for plain decimals; `undefined` for anything else. */
function comparePlainDecimals(a: string, b: string): number | undefined {
  const aNegative = a.charCodeAt(0) === 45;
  const bNegative = b.charCodeAt(0) === 45;
  const aStart = aNegative ? 1 : 0;
  const bStart = bNegative ? 1 : 0;
  const aPoint = plainPoint(a, aStart);
  const bPoint = plainPoint(b, bStart);
  if (aPoint < 0 || bPoint < 0) return undefined;
  if (aNegative !== bNegative) return aNegative ? -1 : 1;
  let order = 0;
  const aWhole = aPoint - aStart;
  const bWhole = bPoint - bStart;
  if (aWhole !== bWhole) order = aWhole < bWhole ? -1 : 1;
  else {
    for (let i = 0; i < aWhole && order === 0; i++) {
      const x = a.charCodeAt(aStart + i);
      const y = b.charCodeAt(bStart + i);
      if (x !== y) order = x < y ? -1 : 1;
    }
    const fraction = Math.max(a.length - aPoint, b.length - bPoint);
    for (let i = 1; i < fraction && order === 0; i++) {
      const x = aPoint + i < a.length ? a.charCodeAt(aPoint + i) : 48;
      const y = bPoint + i < b.length ? b.charCodeAt(bPoint + i) : 48;
      if (x !== y) order = x < y ? -1 : 1;
    }
  }
  return aNegative ? -order : order;
}

/** `-infinity` before every date, `infinity` after; years BC as negative (astronomical) years. */
function temporalKey(text: string): { rank: number; year: number; rest: string } {
  if (text === "-infinity") return { rank: -1, year: 0, rest: "" };
  if (text === "infinity") return { rank: 1, year: 0, rest: "" };
  const bc = text.endsWith(" BC");
  const body = bc ? text.slice(0, -3) : text;
  const dash = body.indexOf("-");
  const year = Number(body.slice(0, dash));
  return { rank: 0, year: bc ? 1 - year : year, rest: body.slice(dash) };
}

/** A date or timestamp of a four-digit year AD: its canonical text sorts as ASCII. */
function isPlainTemporal(text: string): boolean {
  const first = text.charCodeAt(0);
  return first >= 48 && first <= 57 && text.charCodeAt(4) === 45 &&
    text.charCodeAt(text.length - 1) !== 67;
}

/** Compares two dates or timestamps in canonical text. */
export function compareTemporalText(a: string, b: string): number {
  if (isPlainTemporal(a) && isPlainTemporal(b)) return a < b ? -1 : a > b ? 1 : 0;
  const x = temporalKey(a);
  const y = temporalKey(b);
  if (x.rank !== y.rank) return x.rank < y.rank ? -1 : 1;
  if (x.year !== y.year) return x.year < y.year ? -1 : 1;
  return codePointCompare(x.rest, y.rest);
}

/** Compares by Unicode code point (not UTF-16 code unit). */
export function codePointCompare(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x < y ? -1 : 1;
    if (x > 0xffff) i++;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

function comparatorOf(kind: LogicalKind): ((a: string, b: string) => number) | undefined {
  switch (kind) {
    case "smallint":
    case "integer":
    case "bigint":
    case "decimal":
    case "numeric":
    case "real":
    case "double":
      return compareDecimalText;
    case "date":
    case "timestamp":
    case "timestamptz":
      return compareTemporalText;
    case "time":
      return codePointCompare;
    default:
      return undefined;
  }
}

/** The running statistics of one column. */
class ColumnAccumulator {
  readonly #column: DisclosureColumn;
  readonly #compare: ((a: string, b: string) => number) | undefined;
  #nulls = 0;
  #exact: Set<number> | undefined = new Set();
  #sketch: HyperLogLog | undefined;
  #categories: Map<string, number> | undefined = new Map();
  #min: string | null = null;
  #max: string | null = null;

  constructor(column: DisclosureColumn) {
    this.#column = column;
    this.#compare = comparatorOf(column.kind);
  }

  add(value: string | null): void {
    if (value === null) {
      this.#nulls++;
      return;
    }
    const compare = this.#compare;
    if (compare !== undefined) {
      if (this.#min === null || compare(value, this.#min) < 0) this.#min = value;
      if (this.#max === null || compare(value, this.#max) > 0) this.#max = value;
    }
    // While the column has few distinct values, the counts per value are its distinct count too.
    const categories = this.#categories;
    if (categories === undefined) {
      this.#countDistinct(hash53(value));
      return;
    }
    const counted = value.length <= CATEGORY_LABEL_MAX_CHARS;
    if (counted) {
      categories.set(value, (categories.get(value) ?? 0) + 1);
      if (categories.size <= CATEGORY_CAP) return;
    }
    this.#categories = undefined;
    for (const seen of categories.keys()) this.#countDistinct(hash53(seen));
    if (!counted) this.#countDistinct(hash53(value));
  }

  #countDistinct(hash: number): void {
    if (this.#exact === undefined) {
      this.#sketch!.add(hash);
      return;
    }
    this.#exact.add(hash);
    if (this.#exact.size > DISTINCT_EXACT_CAP) {
      this.#sketch = new HyperLogLog();
      for (const seen of this.#exact) this.#sketch.add(seen);
      this.#exact = undefined;
    }
  }

  result(smallCellThreshold: number): ColumnDisclosure {
    // A column whose every value is seen once is an identifier or free text, not a category.
    const repeats = this.#categories !== undefined &&
      [...this.#categories.values()].some((count) => count > 1);
    const categories = this.#categories === undefined || !repeats
      ? null
      : [...this.#categories].sort(([a], [b]) => codePointCompare(a, b)).map(([value, count]) => ({
        value,
        count,
        small: count < smallCellThreshold,
      }));
    return {
      name: this.#column.name,
      kind: this.#column.kind,
      nulls: this.#nulls,
      distinct: this.#categories !== undefined
        ? { value: this.#categories.size, estimate: false }
        : this.#exact !== undefined
        ? { value: this.#exact.size, estimate: false }
        : { value: this.#sketch!.estimate(), estimate: true },
      min: this.#min,
      max: this.#max,
      categories,
      small_categories: categories?.filter((c) => c.small).length ?? 0,
    };
  }
}

/** The streaming accumulator of one table: feed it every row, then read the result. */
export class DisclosureAccumulator {
  readonly #table: string;
  readonly #columns: ColumnAccumulator[];
  readonly #smallCellThreshold: number;
  #rows = 0;

  /**
   * @param table the table's name.
   * @param columns the extract's columns, in row order.
   * @param smallCellThreshold values seen fewer times are flagged.
   */
  constructor(
    table: string,
    columns: readonly DisclosureColumn[],
    smallCellThreshold = DEFAULT_SMALL_CELL_THRESHOLD,
  ) {
    disclosureThresholds(smallCellThreshold);
    this.#table = table;
    this.#columns = columns.map((c) => new ColumnAccumulator(c));
    this.#smallCellThreshold = smallCellThreshold;
  }

  /** Adds one row of canonical values, in column order. */
  addRow(row: readonly (string | null)[]): void {
    this.#rows++;
    const columns = this.#columns;
    for (let i = 0; i < columns.length; i++) columns[i]!.add(row[i] ?? null);
  }

  /** The statistics so far. */
  result(): TableDisclosure {
    return {
      table: this.#table,
      rows: this.#rows,
      columns: this.#columns.map((c) => c.result(this.#smallCellThreshold)),
    };
  }
}

/**
 * An incremental parser of canonical CSV (`domain/csv.ts`): feed it the bytes in chunks of any size; it
 * skips the header row and hands each record to `onRow` (an unquoted empty field is `null`, `""` the
 * empty string). Only the unfinished record is held between chunks.
 */
export class CanonicalCsvParser {
  readonly #decoder = new TextDecoder("utf-8", { fatal: true });
  readonly #onRow: (row: (string | null)[]) => void;
  #pending = "";
  #headerSeen = false;

  constructor(onRow: (row: (string | null)[]) => void) {
    this.#onRow = onRow;
  }

  /** Parses a chunk; records it completes are handed on. */
  push(chunk: Uint8Array): void {
    this.#parse(this.#pending + this.#decoder.decode(chunk, { stream: true }), false);
  }

  /**
   * Ends the input.
   *
   * @throws {RangeError} when the input ends inside a quoted field.
   */
  end(): void {
    this.#parse(this.#pending + this.#decoder.decode(), true);
  }

  #parse(text: string, final: boolean): void {
    let start = 0;
    let quote = text.indexOf('"');
    const length = text.length;
    while (start < length) {
      const newline = text.indexOf("\n", start);
      if (newline < 0) break;
      if (quote >= 0 && quote < start) quote = text.indexOf('"', start);
      let row: (string | null)[];
      if (quote < 0 || quote > newline) {
        // No quote in the record: its fields are the line split at commas, empty ones NULL.
        row = text.slice(start, newline).split(",");
        for (let i = 0; i < row.length; i++) if (row[i] === "") row[i] = null;
        start = newline + 1;
      } else {
        const record = quotedRecord(text, start, final);
        if (record === undefined) break;
        row = record.row;
        start = record.next;
      }
      if (this.#headerSeen) this.#onRow(row);
      else this.#headerSeen = true;
    }
    this.#pending = text.slice(start);
    if (final && this.#pending !== "") {
      throw new RangeError("Cannot check the CSV file: it ends inside a record");
    }
  }
}

/**
 * Parses the record at `start`, which holds a quoted field.
 *
 * @returns the record and where the next one starts; `undefined` when the text ends before the record.
 */
function quotedRecord(
  text: string,
  start: number,
  final: boolean,
): { row: (string | null)[]; next: number } | undefined {
  const length = text.length;
  const row: (string | null)[] = [];
  let i = start;
  for (;;) {
    if (i >= length) return undefined;
    if (text.charCodeAt(i) === 34) {
      // Quoted field: up to the closing quote, with doubled quotes inside.
      let value = "";
      let j = i + 1;
      for (;;) {
        const q = text.indexOf('"', j);
        if (q < 0) return undefined;
        value += text.slice(j, q);
        if (q + 1 < length && text.charCodeAt(q + 1) === 34) {
          value += '"';
          j = q + 2;
          continue;
        }
        if (q + 1 >= length && !final) return undefined;
        j = q + 1;
        break;
      }
      row.push(value);
      i = j;
    } else {
      let j = i;
      while (j < length) {
        const c = text.charCodeAt(j);
        if (c === 44 || c === 10) break;
        j++;
      }
      if (j >= length) return undefined;
      row.push(j === i ? null : text.slice(i, j));
      i = j;
    }
    if (i >= length) return undefined;
    const separator = text.charCodeAt(i);
    i++;
    if (separator === 10) return { row, next: i };
  }
}
