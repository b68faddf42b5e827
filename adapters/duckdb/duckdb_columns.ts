/**
 * How each logical type is stored in DuckDB, and the converter from canonical text (see
 * `domain/logical_type.ts`) to the value a DuckDB data chunk holds.
 *
 * Every conversion is exact or fails. A converter throws {@link RangeError} when DuckDB cannot hold the
 * value (a `NaN` in a DECIMAL column, an infinite interval, a timestamp past DuckDB's last day) and
 * {@link SyntaxError} when the text is not canonical; the writer adds the table, column and row. Messages
 * never repeat the value itself, which may be personal data; they name only special values (`NaN`,
 * `infinity`).
 *
 * | logical type             | DuckDB type                | why                                                          |
 * | ------------------------ | -------------------------- | ------------------------------------------------------------ |
 * | `decimal(p,s)`, p ≤ 38   | `DECIMAL(p,s)`             | exact                                                        |
 * | `decimal(p,s)`, p > 38, or s < 0 or s > p | `VARCHAR` | DuckDB's DECIMAL stops at 38 digits and needs 0 ≤ s ≤ p; text keeps every digit |
 * | `numeric` (no precision) | `VARCHAR`                  | up to 131072 digits and `NaN`/`±Infinity`; no DuckDB number holds them all exactly |
 * | `interval`               | `INTERVAL`                 | both store months, days and microseconds, so the text converts exactly; infinite intervals (PostgreSQL 17) are refused |
 * | `json`                   | `JSON`                     | the source's text, byte for byte (DuckDB neither re-serialises nor validates appended JSON) |
 *
 * The rest map one to one: `BOOLEAN`, `SMALLINT`, `INTEGER`, `BIGINT`, `FLOAT`, `DOUBLE`, `DATE`, `TIME`,
 * `TIMESTAMP`, `TIMESTAMP WITH TIME ZONE`, `UUID`, `VARCHAR`, `BLOB`. Dates and timestamps keep
 * `infinity`/`-infinity` and BC years (DuckDB counts days and microseconds from 1970 on the proleptic
 * Gregorian calendar, as PostgreSQL does); `NaN`, `±Infinity` and `-0` survive in FLOAT and DOUBLE. Times
 * and timestamps with more than six fraction digits (SQL Server's 100 ns ticks) are truncated to
 * microseconds by `truncateToMicroseconds`, the rule every destination follows.
 *
 * @module
 */
import {
  blobValue,
  dateValue,
  decimalValue,
  type DuckDBValue,
  intervalValue,
  timestampTZValue,
  timestampValue,
  timeValue,
  uuidValue,
} from "./duckdb.ts";
import {
  type LogicalType,
  parseBinary,
  truncateToMicroseconds,
} from "../../domain/logical_type.ts";
import { daysFromCivil } from "../../domain/civil_date.ts";

/** Converts one non-null canonical value into what a DuckDB data chunk holds for the column. */
export type DuckdbValueConverter = (text: string) => DuckDBValue;

/** How one column is declared and filled. */
export interface DuckdbColumn {
  /** The SQL type in `CREATE TABLE`, e.g. `DECIMAL(18,2)`. */
  readonly sqlType: string;
  /** Converts a non-null canonical value. */
  readonly convert: DuckdbValueConverter;
}

/** DuckDB's widest DECIMAL. */
export const DUCKDB_MAX_DECIMAL_WIDTH = 38;

/** Days DuckDB uses for DATE `infinity` and `-infinity`; finite dates lie strictly between them. */
const DATE_POS_INF = 2147483647;
const DATE_NEG_INF = -2147483647;
/** Microseconds DuckDB uses for TIMESTAMP `infinity` and `-infinity`, and its finite range. */
const TIMESTAMP_POS_INF = 9223372036854775807n;
const TIMESTAMP_NEG_INF = -9223372036854775807n;
const TIMESTAMP_MAX = 9223372036854775806n; // 294247-01-10 04:00:54.775806
const TIMESTAMP_MIN = -9223372022400000000n; // 290309-12-22 BC 00:00:00

const MICROS_PER_DAY = 86_400_000_000;
const MICROS_PER_DAY_N = 86_400_000_000n;
/** Below this many days from 1970, day microseconds stay under 2^53 and plain numbers are exact. */
const SAFE_DAYS = 100_000;

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const INT64_MIN = -9223372036854775808n;
const INT64_MAX = 9223372036854775807n;

const INTEGER_TEXT = /^-?[0-9]+$/;
const FLOAT_TEXT = /^-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const DECIMAL_TEXT = /^-?[0-9]+(?:\.[0-9]+)?$/;
const INTERVAL_TIME = /^([+-])?([0-9]+):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,6}))?$/;

/** Returns the DuckDB declaration and converter for a logical type; an unknown kind is stored as text. */
export function duckdbColumn(type: LogicalType): DuckdbColumn {
  switch (type.kind) {
    case "boolean":
      return { sqlType: "BOOLEAN", convert: parseBoolean };
    case "smallint":
      return { sqlType: "SMALLINT", convert: (t) => parseInteger(t, -32768, 32767) };
    case "integer":
      return { sqlType: "INTEGER", convert: (t) => parseInteger(t, INT32_MIN, INT32_MAX) };
    case "bigint":
      return { sqlType: "BIGINT", convert: parseBigint };
    case "decimal": {
      const { precision, scale } = type;
      if (!fitsDuckdbDecimal(precision, scale)) return TEXT_COLUMN;
      return {
        sqlType: `DECIMAL(${precision},${scale})`,
        convert: (t) => decimalValue(parseDecimal(t, precision, scale), precision, scale),
      };
    }
    case "numeric":
      return TEXT_COLUMN;
    case "real":
      return { sqlType: "FLOAT", convert: parseReal };
    case "double":
      return { sqlType: "DOUBLE", convert: parseDouble };
    case "date":
      return { sqlType: "DATE", convert: (t) => dateValue(parseDate(t)) };
    // DuckDB holds microseconds: SQL Server's seventh digit is cut, never rounded (one rule for every
    // destination, `truncateToMicroseconds` in domain/logical_type.ts).
    case "time":
      return { sqlType: "TIME", convert: (t) => timeValue(parseTime(truncateToMicroseconds(t))) };
    case "timestamp":
      return {
        sqlType: "TIMESTAMP",
        convert: (t) => timestampValue(parseTimestamp(truncateToMicroseconds(t))),
      };
    case "timestamptz":
      return {
        sqlType: "TIMESTAMP WITH TIME ZONE",
        convert: (t) => timestampTZValue(parseTimestamptz(truncateToMicroseconds(t))),
      };
    case "interval":
      return {
        sqlType: "INTERVAL",
        convert: (t) => {
          const { months, days, micros } = parseInterval(t);
          return intervalValue(months, days, micros);
        },
      };
    case "uuid":
      return { sqlType: "UUID", convert: (t) => uuidValue(parseUuid(t)) };
    case "json":
      return { sqlType: "JSON", convert: checkText };
    case "binary":
      return { sqlType: "BLOB", convert: (t) => blobValue(parseBinary(t)) };
    case "text":
    default:
      return TEXT_COLUMN;
  }
}

const TEXT_COLUMN: DuckdbColumn = { sqlType: "VARCHAR", convert: checkText };

/** True when DuckDB's DECIMAL can declare this precision and scale. */
export function fitsDuckdbDecimal(precision: number, scale: number): boolean {
  return Number.isInteger(precision) && Number.isInteger(scale) && precision >= 1 &&
    precision <= DUCKDB_MAX_DECIMAL_WIDTH && scale >= 0 && scale <= precision;
}

/**
 * Passes text through unchanged, refusing what UTF-8 cannot encode (an unpaired surrogate would silently
 * become U+FFFD).
 */
export function checkText(text: string): string {
  if (!text.isWellFormed()) {
    throw new RangeError("Cannot store text with an unpaired UTF-16 surrogate exactly");
  }
  return text;
}

/** `true` or `false`. */
export function parseBoolean(text: string): boolean {
  if (text === "true") return true;
  if (text === "false") return false;
  throw new SyntaxError("Cannot parse boolean: expected true or false");
}

/** A decimal integer within `[min, max]`, both at most 2^53 in size. */
export function parseInteger(text: string, min: number, max: number): number {
  if (!INTEGER_TEXT.test(text)) throw new SyntaxError("Cannot parse integer: expected digits");
  const value = Number(text);
  if (value < min || value > max) {
    throw new RangeError(`Cannot store integer: outside ${min} to ${max}`);
  }
  return value;
}

/** A 64-bit signed integer. */
export function parseBigint(text: string): bigint {
  if (!INTEGER_TEXT.test(text)) throw new SyntaxError("Cannot parse bigint: expected digits");
  const value = BigInt(text);
  if (value < INT64_MIN || value > INT64_MAX) {
    throw new RangeError("Cannot store bigint: outside the 64-bit range");
  }
  return value;
}

/**
 * The unscaled integer of a decimal with `scale` fraction digits: `12.3` at scale 2 is `1230n`. Extra
 * fraction digits are accepted only when they are zeros, so nothing is ever rounded.
 */
export function parseDecimal(text: string, precision: number, scale: number): bigint {
  if (!DECIMAL_TEXT.test(text)) {
    if (text === "NaN" || text === "Infinity" || text === "-Infinity") {
      throw new RangeError(
        `Cannot store ${text} in DECIMAL(${precision},${scale}): DuckDB decimals are finite numbers`,
      );
    }
    throw new SyntaxError("Cannot parse decimal: expected digits with an optional fraction");
  }
  const negative = text.charCodeAt(0) === 45;
  const dot = text.indexOf(".");
  const wholeEnd = dot < 0 ? text.length : dot;
  let wholeStart = negative ? 1 : 0;
  while (wholeStart < wholeEnd - 1 && text.charCodeAt(wholeStart) === 48) wholeStart++;
  const wholeDigits = wholeEnd - wholeStart;
  if (wholeDigits > precision - scale && !(wholeDigits === 1 && text[wholeStart] === "0")) {
    throw new RangeError(
      `Cannot store decimal in DECIMAL(${precision},${scale}): more than ${
        precision - scale
      } integer digits`,
    );
  }
  let fraction = dot < 0 ? "" : text.slice(dot + 1);
  if (fraction.length > scale) {
    for (let i = scale; i < fraction.length; i++) {
      if (fraction.charCodeAt(i) !== 48) {
        throw new RangeError(
          `Cannot store decimal in DECIMAL(${precision},${scale}): more than ${scale} fraction digits`,
        );
      }
    }
    fraction = fraction.slice(0, scale);
  } else if (fraction.length < scale) {
    fraction = fraction.padEnd(scale, "0");
  }
  const digits = text.slice(wholeStart, wholeEnd) + fraction;
  // Up to 15 digits a double is exact, and BigInt(number) is quicker than parsing the string.
  const unscaled = digits.length <= 15 ? BigInt(Number(digits)) : BigInt(digits);
  return negative ? -unscaled : unscaled;
}

function parseFloatText(text: string, what: string): number {
  if (text === "NaN") return NaN;
  if (text === "Infinity") return Infinity;
  if (text === "-Infinity") return -Infinity;
  if (!FLOAT_TEXT.test(text)) {
    throw new SyntaxError(`Cannot parse ${what}: expected a decimal number, NaN or ±Infinity`);
  }
  return Number(text);
}

/** A double; `Number` reads shortest round-trip digits back to the same bits, `-0` included. */
export function parseDouble(text: string): number {
  return parseFloatText(text, "double");
}

/**
 * The 4-byte float nearest to the decimal text. `Number` rounds to a double first, and rounding that to
 * single precision can only go wrong when the double lands exactly halfway between two floats; then the
 * decimal itself decides.
 */
export function parseReal(text: string): number {
  const value = parseFloatText(text, "real");
  const single = Math.fround(value);
  if (single === value || Number.isNaN(value)) return value;
  if (!Number.isFinite(single)) {
    throw new RangeError("Cannot store real: outside the 4-byte float range");
  }
  const other = adjacentFloat32(single, value);
  if (value * 2 !== single + other) return single;
  const side = compareDecimal(text, value);
  if (side === 0) return single; // a true tie: round half to even, as Math.fround did
  return (side > 0) === (other > single) ? other : single;
}

const F32 = new Float32Array(1);
const F32_BITS = new Uint32Array(F32.buffer);

/** The 4-byte float next to `single` in the direction of `toward`. */
function adjacentFloat32(single: number, toward: number): number {
  F32[0] = single;
  if (single === 0) F32_BITS[0] = toward > 0 ? 1 : 0x80000001;
  else F32_BITS[0]! += (toward > single) === (single > 0) ? 1 : -1;
  return F32[0]!;
}

const F64 = new DataView(new ArrayBuffer(8));

/** The sign of `text - value`, exactly, for decimal `text` and a finite, non-zero double `value`. */
function compareDecimal(text: string, value: number): number {
  const match = /^(-?)([0-9]*)\.?([0-9]*)(?:[eE]([+-]?[0-9]+))?$/.exec(text)!;
  const [, minus = "", whole = "", fraction = "", exponent = "0"] = match;
  let left = BigInt(whole + fraction || "0");
  const power10 = Number(exponent) - fraction.length;
  F64.setFloat64(0, Math.abs(value));
  const bits = F64.getBigUint64(0);
  const biased = Number(bits >> 52n);
  let right = biased === 0 ? bits & 0xfffffffffffffn : (bits & 0xfffffffffffffn) | (1n << 52n);
  const power2 = (biased === 0 ? 1 : biased) - 1075;
  if (power10 >= 0) left *= 10n ** BigInt(power10);
  else right *= 10n ** BigInt(-power10);
  if (power2 >= 0) right <<= BigInt(power2);
  else left <<= BigInt(-power2);
  const magnitude = left > right ? 1 : left < right ? -1 : 0;
  return minus === "-" ? -magnitude : magnitude;
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/*
 * Dates and times are read with a hand-written scanner rather than a regular expression: for a million
 * timestamps it is about three times faster. `scanned` is where the last scan stopped (JavaScript runs
 * one scan at a time, so a module variable is safe and spares an object per value).
 */
let scanned = 0;

function isDigit(code: number): boolean {
  return code >= 48 && code <= 57;
}

/** The number in `count` digits at `at`, or -1 when one of them is not a digit. */
function digitsAt(text: string, at: number, count: number): number {
  let value = 0;
  for (let i = at; i < at + count; i++) {
    const code = text.charCodeAt(i);
    if (!isDigit(code)) return -1;
    value = value * 10 + code - 48;
  }
  return value;
}

/**
 * Scans `YYYY-MM-DD` (four or more year digits) from the start of `text` and returns days from 1970,
 * leaving `scanned` after the day; the caller applies a ` BC` suffix with {@link bcDays}. Returns NaN
 * when the text does not start with a date.
 */
function scanDate(text: string): number {
  let at = 0;
  while (isDigit(text.charCodeAt(at))) at++;
  if (at < 4 || text.charCodeAt(at) !== 45 || text.charCodeAt(at + 3) !== 45) return NaN;
  const year = at === 4 ? digitsAt(text, 0, 4) : Number(text.slice(0, at));
  const month = digitsAt(text, at + 1, 2);
  const day = digitsAt(text, at + 4, 2);
  if (month < 1 || month > 12 || day < 1) return NaN;
  scanned = at + 6;
  return year * 10000 + month * 100 + day; // packed; unpacked by civil()
}

/** Days from 1970 for a packed `YYYYMMDD` on the written calendar (year 1 BC is written 1 with BC). */
function civil(packed: number, bc: boolean, what: string): number {
  const written = Math.floor(packed / 10000);
  const month = Math.floor(packed / 100) % 100;
  const day = packed % 100;
  if (written === 0) throw new SyntaxError(`Cannot parse ${what}: there is no year 0`);
  const year = bc ? 1 - written : written;
  const monthDays = month === 2 && isLeap(year) ? 29 : MONTH_DAYS[month - 1]!;
  if (day > monthDays) throw new SyntaxError(`Cannot parse ${what}: no such day`);
  return daysFromCivil(year, month, day);
}

/** False when `text` ends at `at`, true when ` BC` ends it there, and undefined for anything else. */
function endsWithOptionalBc(text: string, at: number): boolean | undefined {
  if (at === text.length) return false;
  if (at + 3 === text.length && text.endsWith(" BC")) return true;
  return undefined;
}

/** `YYYY-MM-DD[ BC]`, `infinity` or `-infinity`, as days from 1970-01-01. */
export function parseDate(text: string): number {
  if (text === "infinity") return DATE_POS_INF;
  if (text === "-infinity") return DATE_NEG_INF;
  const packed = scanDate(text);
  const bc = Number.isNaN(packed) ? undefined : endsWithOptionalBc(text, scanned);
  if (bc === undefined) throw new SyntaxError("Cannot parse date: expected YYYY-MM-DD");
  const days = civil(packed, bc, "date");
  if (days <= DATE_NEG_INF || days >= DATE_POS_INF) {
    throw new RangeError("Cannot store date: outside DuckDB's date range");
  }
  return days;
}

/**
 * Scans `HH:MM:SS[.f…]` (one to six fraction digits) at `at` and returns microseconds since midnight,
 * leaving `scanned` after it; NaN when there is no such time. `24:00:00` is allowed only when `allow24`.
 */
function scanTime(text: string, at: number, allow24: boolean): number {
  if (text.charCodeAt(at + 2) !== 58 || text.charCodeAt(at + 5) !== 58) return NaN;
  const h = digitsAt(text, at, 2);
  const m = digitsAt(text, at + 3, 2);
  const s = digitsAt(text, at + 6, 2);
  if (h < 0 || m < 0 || m > 59 || s < 0 || s > 59) return NaN;
  let micros = ((h * 60 + m) * 60 + s) * 1_000_000;
  at += 8;
  if (text.charCodeAt(at) === 46) {
    let scale = 100_000;
    let i = at + 1;
    for (; i < at + 7 && isDigit(text.charCodeAt(i)); i++) {
      micros += (text.charCodeAt(i) - 48) * scale;
      scale /= 10;
    }
    if (i === at + 1) return NaN;
    at = i;
  }
  if (micros > MICROS_PER_DAY || (!allow24 && micros === MICROS_PER_DAY)) return NaN;
  scanned = at;
  return micros;
}

/** `HH:MM:SS[.ffffff]` (up to `24:00:00`, as PostgreSQL allows) as microseconds since midnight. */
export function parseTime(text: string): bigint {
  const micros = scanTime(text, 0, true);
  if (Number.isNaN(micros) || scanned !== text.length) {
    throw new SyntaxError("Cannot parse time: expected HH:MM:SS");
  }
  return BigInt(micros);
}

/**
 * Scans a UTC offset `±HH[:MM[:SS]]` at `at` and returns it in microseconds, leaving `scanned` after it;
 * NaN when there is none.
 */
function scanOffset(text: string, at: number): number {
  const sign = text.charCodeAt(at);
  if (sign !== 43 && sign !== 45) return NaN;
  const hours = digitsAt(text, at + 1, 2);
  if (hours < 0) return NaN;
  let seconds = hours * 3600;
  at += 3;
  for (const unit of [60, 1]) {
    if (text.charCodeAt(at) !== 58) break;
    const part = digitsAt(text, at + 1, 2);
    if (part < 0 || part > 59) return NaN;
    seconds += part * unit;
    at += 3;
  }
  scanned = at;
  return (sign === 45 ? -seconds : seconds) * 1_000_000;
}

function timestampMicros(days: number, timeMicros: number): bigint {
  if (days > -SAFE_DAYS && days < SAFE_DAYS) return BigInt(days * MICROS_PER_DAY + timeMicros);
  const micros = BigInt(days) * MICROS_PER_DAY_N + BigInt(timeMicros);
  if (micros < TIMESTAMP_MIN || micros > TIMESTAMP_MAX) {
    throw new RangeError(
      "Cannot store timestamp: outside DuckDB's range (290309-12-22 BC to 294247-01-10)",
    );
  }
  return micros;
}

function scanTimestamp(text: string, withOffset: boolean, what: string): bigint {
  if (text === "infinity") return TIMESTAMP_POS_INF;
  if (text === "-infinity") return TIMESTAMP_NEG_INF;
  const packed = scanDate(text);
  let time = NaN;
  let offset = 0;
  let bc: boolean | undefined;
  if (!Number.isNaN(packed) && text.charCodeAt(scanned) === 32) {
    time = scanTime(text, scanned + 1, false);
    if (!Number.isNaN(time) && withOffset) offset = scanOffset(text, scanned);
    if (!Number.isNaN(time) && !Number.isNaN(offset)) bc = endsWithOptionalBc(text, scanned);
  }
  if (bc === undefined) {
    throw new SyntaxError(
      `Cannot parse ${what}: expected YYYY-MM-DD HH:MM:SS${withOffset ? "+00" : ""}`,
    );
  }
  return timestampMicros(civil(packed, bc, what), time - offset);
}

/** `YYYY-MM-DD HH:MM:SS[.ffffff][ BC]`, `infinity` or `-infinity`, as microseconds from 1970. */
export function parseTimestamp(text: string): bigint {
  return scanTimestamp(text, false, "timestamp");
}

/**
 * `YYYY-MM-DD HH:MM:SS[.ffffff]±HH[:MM[:SS]][ BC]` (canonically `+00`), `infinity` or `-infinity`, as
 * microseconds from 1970 UTC.
 */
export function parseTimestamptz(text: string): bigint {
  return scanTimestamp(text, true, "timestamptz");
}

/** An interval as PostgreSQL and DuckDB both store it. */
export interface IntervalParts {
  readonly months: number;
  readonly days: number;
  readonly micros: bigint;
}

const INTERVAL_UNITS: Readonly<Record<string, "years" | "months" | "days">> = {
  year: "years",
  years: "years",
  mon: "months",
  mons: "months",
  day: "days",
  days: "days",
};

/**
 * PostgreSQL's `postgres` interval style, e.g. `1 year 2 mons -3 days +04:05:06.5` or `00:00:00`, as
 * months, days and microseconds.
 *
 * @throws {RangeError} for `infinity` and `-infinity`, which DuckDB has no interval for.
 */
export function parseInterval(text: string): IntervalParts {
  if (text === "infinity" || text === "-infinity") {
    throw new RangeError(`Cannot store interval ${text}: DuckDB intervals are finite`);
  }
  const fields = { years: 0, months: 0, days: 0 };
  const seen = new Set<string>();
  let micros = 0n;
  let timeSeen = false;
  const tokens = text.split(" ");
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    const time = INTERVAL_TIME.exec(token);
    if (time !== null && !timeSeen && i === tokens.length - 1) {
      const [, sign, h = "0", m = "0", s = "0", f = ""] = time;
      if (Number(m) > 59 || Number(s) > 59) {
        throw new SyntaxError("Cannot parse interval: no such time");
      }
      const total = BigInt(h) * 3_600_000_000n + BigInt(Number(m) * 60 + Number(s)) * 1_000_000n +
        BigInt(f.padEnd(6, "0") || "0");
      micros = sign === "-" ? -total : total;
      timeSeen = true;
      continue;
    }
    const unit = INTERVAL_UNITS[tokens[i + 1] ?? ""];
    if (!/^[+-]?[0-9]+$/.test(token) || unit === undefined || seen.has(unit)) {
      throw new SyntaxError("Cannot parse interval: expected PostgreSQL's postgres style");
    }
    seen.add(unit);
    fields[unit] = Number(token);
    i++;
  }
  if (seen.size === 0 && !timeSeen) {
    throw new SyntaxError("Cannot parse interval: expected PostgreSQL's postgres style");
  }
  const months = fields.years * 12 + fields.months;
  if (
    months < INT32_MIN || months > INT32_MAX || fields.days < INT32_MIN ||
    fields.days > INT32_MAX || micros < INT64_MIN || micros > INT64_MAX
  ) {
    throw new RangeError("Cannot store interval: a field is outside DuckDB's range");
  }
  return { months, days: fields.days, micros };
}

/** A UUID as the unsigned 128-bit integer `uuidValue` expects (it flips the top bit itself). */
export function parseUuid(text: string): bigint {
  // Checking the hyphens and letting BigInt reject anything but hex is quicker than a regular expression;
  // BigInt also ignores trailing whitespace, hence the last check.
  if (
    text.length !== 36 || text.charCodeAt(8) !== 45 || text.charCodeAt(13) !== 45 ||
    text.charCodeAt(18) !== 45 || text.charCodeAt(23) !== 45 || text.charCodeAt(35) <= 32
  ) {
    throw new SyntaxError(UUID_SYNTAX);
  }
  try {
    return BigInt(
      `0x${text.slice(0, 8)}${text.slice(9, 13)}${text.slice(14, 18)}${text.slice(19, 23)}${
        text.slice(24)
      }`,
    );
  } catch {
    throw new SyntaxError(UUID_SYNTAX);
  }
}

const UUID_SYNTAX = "Cannot parse uuid: expected 8-4-4-4-12 hex digits";
