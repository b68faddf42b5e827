/**
 * Logical column types: the source-neutral meaning of a column, which every writer maps to its own type
 * (DuckDB, PostgreSQL destination), and the one canonical text form of each type's values.
 *
 * Canonical text is what sources deliver and what CSV files hold (see `docs/csv-format.md`). It is
 * PostgreSQL's text output with `DateStyle=ISO`, `TimeZone=UTC`, `extra_float_digits=1`,
 * `bytea_output=hex` and `IntervalStyle=postgres`, except that booleans are `true` / `false`:
 *
 * | kind          | canonical text                                           | example                           |
 * | ------------- | -------------------------------------------------------- | --------------------------------- |
 * | boolean       | `true` or `false`                                        | `true`                            |
 * | smallint, integer, bigint | decimal digits with optional `-`             | `-42`                             |
 * | decimal, numeric | every digit the source holds, scale kept; `NaN`, `Infinity`, `-Infinity` | `12.30`       |
 * | real, double  | shortest round-trip digits; exponent form `1e+15` when the exponent is < -4 or >= 15; `NaN`, `Infinity`, `-Infinity` | `0.30000000000000004` |
 * | date          | `YYYY-MM-DD`; years before 1 as `YYYY-MM-DD BC`; `infinity`, `-infinity` | `1850-02-28`        |
 * | time          | `HH:MM:SS` plus up to 7 fraction digits, trailing zeros removed | `12:00:00.1`               |
 * | timestamp     | `YYYY-MM-DD HH:MM:SS[.fffffff]` (zeros trimmed)           | `1969-07-20 20:17:40.5`           |
 * | timestamptz   | the same in UTC followed by `+00`                        | `2020-01-01 00:00:01.123456+00`   |
 * | interval      | PostgreSQL's `postgres` interval style                    | `1 day 02:00:00`                  |
 * | uuid          | 36 lower-case hex characters with hyphens                 | `9b2c…-…`                         |
 * | json          | the source's JSON text                                   | `{"a": 1}`                        |
 * | text          | the characters as stored                                 |                                   |
 * | binary        | `\x` followed by lower-case hex                           | `\x01ff`                          |
 *
 * **Fractional seconds.** Canonical text keeps every digit the source holds: six for PostgreSQL and
 * MySQL (microseconds), seven for SQL Server's `time(7)`, `datetime2(7)` and `datetimeoffset(7)` (100 ns
 * ticks). CSV files keep the seven digits exactly. The DuckDB and PostgreSQL destinations hold
 * microseconds, so both apply one rule, {@link truncateToMicroseconds}, before a value reaches them:
 * digits past the sixth are dropped, never rounded. Truncation never moves a value into the next second,
 * day or year (`2020-12-31 23:59:59.9999999` stays on 31 December), where rounding would, and it is what
 * reading a `datetime2(7)` into a microsecond type does in most clients; PostgreSQL's own input would
 * round, which is why the rule is applied before `COPY`.
 *
 * @module
 */

/** The meaning of a column, independent of the database it comes from. */
export type LogicalType =
  | { readonly kind: "boolean" }
  | { readonly kind: "smallint" }
  | { readonly kind: "integer" }
  | { readonly kind: "bigint" }
  /** Fixed precision and scale, exact. */
  | { readonly kind: "decimal"; readonly precision: number; readonly scale: number }
  /** Exact number without a declared precision (PostgreSQL `numeric`, unsigned 64-bit integers). */
  | { readonly kind: "numeric" }
  | { readonly kind: "real" }
  | { readonly kind: "double" }
  | { readonly kind: "date" }
  | { readonly kind: "time" }
  | { readonly kind: "timestamp" }
  | { readonly kind: "timestamptz" }
  | { readonly kind: "interval" }
  | { readonly kind: "uuid" }
  | { readonly kind: "json" }
  /** Character data; also the fallback for types without a closer match (enums, arrays, geometry, ...). */
  | { readonly kind: "text" }
  | { readonly kind: "binary" };

/** The kinds of {@link LogicalType}. */
export type LogicalKind = LogicalType["kind"];

/** A value in canonical text form, or `null` for SQL NULL. */
export type CanonicalValue = string | null;

/** One row of canonical values, in the order of the extract's columns. */
export type CanonicalRow = CanonicalValue[];

const TEXT: LogicalType = { kind: "text" };

/** Shorthand for the text type, the fallback of every mapping. */
export function textType(): LogicalType {
  return TEXT;
}

/**
 * Formats a double as canonical text: the shortest digits that read back to the same double, in
 * PostgreSQL's layout (`1e+15`, `1e-05`, `0.0001`, `123456`), with `NaN`, `Infinity` and `-Infinity`.
 */
export function formatDouble(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "Infinity";
  if (value === -Infinity) return "-Infinity";
  if (value === 0) return Object.is(value, -0) ? "-0" : "0";
  const magnitude = Math.abs(value);
  // In this range JavaScript's own shortest form is already plain decimal notation, as PostgreSQL's is.
  if (magnitude >= 1e-4 && magnitude < 1e15) return String(value);
  const [mantissa = "0", exponentText = "0"] = value.toExponential().split("e");
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 15) {
    const sign = exponent < 0 ? "-" : "+";
    return `${mantissa}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  const negative = mantissa.startsWith("-");
  const digits = mantissa.replace("-", "").replace(".", "");
  let text: string;
  if (exponent >= 0) {
    const intLength = exponent + 1;
    text = digits.length <= intLength
      ? digits + "0".repeat(intLength - digits.length)
      : `${digits.slice(0, intLength)}.${digits.slice(intLength)}`;
  } else {
    text = `0.${"0".repeat(-exponent - 1)}${digits}`;
  }
  return negative ? `-${text}` : text;
}

/** The fewest significant digits that read back to the same 32-bit float, laid out as a double. */
export function formatFloat32(value: number): string {
  if (!Number.isFinite(value) || value === 0) return formatDouble(value);
  const float = Math.fround(value);
  for (let digits = 1; digits < 9; digits++) {
    const candidate = Number(float.toPrecision(digits));
    if (Math.fround(candidate) === float) return formatDouble(candidate);
  }
  return formatDouble(Number(float.toPrecision(9)));
}

/** Removes trailing zeros from a fractional seconds part: `12:00:00.100000` → `12:00:00.1`. */
export function trimFraction(text: string): string {
  const dot = text.lastIndexOf(".");
  if (dot < 0) return text;
  let end = text.length;
  while (end > dot + 1 && text[end - 1] === "0") end--;
  return end === dot + 1 ? text.slice(0, dot) : text.slice(0, end);
}

/** Fraction digits the destinations (DuckDB, PostgreSQL) hold: microseconds. */
export const DESTINATION_FRACTION_DIGITS = 6;

/**
 * Cuts canonical `time`, `timestamp` or `timestamptz` text to whole microseconds, the precision of the
 * DuckDB and PostgreSQL destinations: fraction digits past the sixth are dropped (never rounded, so
 * `2020-12-31 23:59:59.9999999` becomes `2020-12-31 23:59:59.999999`, still in 2020), then trailing zeros
 * are trimmed as canonical text has them (`12:00:00.1000001` becomes `12:00:00.1`). Text with at most six
 * fraction digits, `infinity` and the like are returned unchanged; a suffix (`+00`, ` BC`) is kept.
 */
export function truncateToMicroseconds(text: string): string {
  const dot = text.indexOf(".");
  if (dot < 0) return text;
  let end = dot + 1;
  while (end < text.length && text.charCodeAt(end) >= 48 && text.charCodeAt(end) <= 57) end++;
  const keep = dot + 1 + DESTINATION_FRACTION_DIGITS;
  if (end <= keep) return text;
  return trimFraction(text.slice(0, keep)) + text.slice(end);
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/** Formats bytes as canonical binary text: `\x` and lower-case hex. */
export function formatBinary(bytes: Uint8Array): string {
  let out = "\\x";
  for (const byte of bytes) out += HEX[byte];
  return out;
}

/**
 * Parses canonical binary text back into bytes.
 *
 * @throws {SyntaxError} when the text is not `\x` followed by an even number of hex digits.
 */
export function parseBinary(text: string): Uint8Array {
  if (!text.startsWith("\\x") || text.length % 2 !== 0 || /[^0-9a-fA-F]/.test(text.slice(2))) {
    throw new SyntaxError(`Cannot parse binary value: expected \\x and hex digits`);
  }
  const bytes = new Uint8Array((text.length - 2) / 2);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = parseInt(text.slice(2 + 2 * i, 4 + 2 * i), 16);
  }
  return bytes;
}
