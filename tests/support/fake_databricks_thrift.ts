/**
 * A fake Databricks SQL warehouse endpoint that speaks the real wire protocol: Thrift `TCLIService`
 * (HiveServer2 with the Spark extensions) in `TBinaryProtocol` over HTTP POST, built from the generated
 * `Processor` that ships inside `@databricks/sql` 1.17.0 and `npm:thrift`. The real driver talks to it
 * end to end: sessions, asynchronous statements with polling, direct results, result-set metadata,
 * several `FetchResults` calls each carrying one inline Arrow IPC record batch (`ARROW_BASED_SET`),
 * cancel and close.
 *
 * It serves the workspace model of `fake_databricks_workspace.ts` and understands only the statements
 * the Databricks source sends:
 *
 * - `SELECT 1` (any integer literal), and `SELECT <item>, ... FROM <table>` where an item is a column,
 *   `CAST(<item> AS STRING|TIMESTAMP)`, `unix_micros(...)`, `unix_date(...)` or `to_json(...)`, or the
 *   value guard's `CASE WHEN <a> > <b> THEN <item> ELSE <item> END` with `octet_length(...)`,
 *   `concat(...)`, `raise_error(...)` (which fails the statement, `[USER_RAISED_EXCEPTION]`), `+` and
 *   `*`, with an optional `[AS] alias`; identifiers bare or in backticks (a doubled backtick is a backtick), resolved
 *   case-insensitively as Spark does; a table name has one to three parts;
 * - `DESCRIBE [TABLE] [EXTENDED] <table>`, with the `Statistics` row of `FakeUcTable.statistics`;
 * - `SET TIME ZONE '<zone>'` (`UTC`, `Z`, `Etc/UTC`, `GMT` or a fixed offset such as `+05:00`) and
 *   `SET <key> = <value>` (recorded; `ansi_mode` / `spark.sql.ansi.enabled` and `timezone` take effect).
 *
 * Anything else fails the statement with an error status shaped like Spark's (`[PARSE_SYNTAX_ERROR]`,
 * `[TABLE_OR_VIEW_NOT_FOUND]` with SQLSTATE 42P01, `[UNRESOLVED_COLUMN...]`, `[UNRESOLVED_ROUTINE]`,
 * `[DATATYPE_MISMATCH...]`, `[UNSUPPORTED_FEATURE]`); nothing is served that the fake cannot compute.
 *
 * Spark behaviour emulated (Spark 3.4+/Databricks SQL):
 * - `CAST(x AS STRING)`: timestamps in the session time zone as `yyyy-MM-dd HH:mm:ss[.ffffff]` with
 *   trailing fraction zeros dropped (TIMESTAMP_NTZ without a zone); dates `yyyy-MM-dd`; booleans
 *   `true`/`false`; doubles and floats as Java's `Double.toString`/`Float.toString` (`1.0E10`, `NaN`);
 *   decimals as `BigDecimal.toPlainString` under ANSI mode (the warehouse default) and as
 *   `BigDecimal.toString` otherwise (`0E-10`); arrays `[1, null]`, maps `{a -> 1}`, structs `{1, x}`;
 *   binary decoded as UTF-8; intervals and variants as stored.
 * - `CAST(timestamp_ntz AS TIMESTAMP)` reads the wall clock in the session time zone.
 * - `unix_micros(timestamp)`, `unix_date(date)` as in Spark 3.1+.
 * - `to_json` as Spark's JacksonGenerator: compact, struct fields that are NULL left out, map values and
 *   array elements that are NULL kept as `null`, strings escaped as Jackson does (control characters as
 *   `\u001F`, upper-case hex), doubles via `Double.toString` (non-finite ones quoted),
 *   decimals via `BigDecimal.toString`, binary as base64, dates `yyyy-MM-dd`, timestamps
 *   `yyyy-MM-dd'T'HH:mm:ss.SSSXXX` in the session zone (milliseconds only, as Spark does), variants as
 *   their JSON.
 * - CHAR(n) columns are padded with spaces to n characters on read (Spark's read-side char padding).
 * - Result Arrow types follow the request's `useArrowNativeTypes`: Bool, Int8/16/32/64, Float32/64,
 *   Utf8, Binary, Date32 (days), Timestamp(MICROSECOND, session zone) or zoneless for TIMESTAMP_NTZ,
 *   Decimal128(p, s), List/Map/Struct, Null; when a flag is off the value goes as Utf8 text (timestamps as
 *   `CAST(... AS STRING)`, decimals plain, complex types as `to_json`); intervals and variants are always
 *   Utf8. The schema goes in `GetResultSetMetadata` as an IPC schema message without the end-of-stream
 *   marker, each batch as a record-batch message alone.
 *
 * Not emulated: column-based or CloudFetch (`URL_BASED_SET`) results, LZ4 compression, query parameters,
 * metadata operations (`GetTables`, `GetColumns`, ...: they fail), region time zones (with daylight saving),
 * Spark's rendering of years outside 0001-9999 by `CAST(... AS STRING)` (approximated), `SET` without
 * arguments, and any SQL beyond the subset above. Timestamps nested inside native Arrow complex types keep
 * milliseconds only (the Arrow JS builders' limit). Authentication is the HTTP server's job (see
 * {@link startFakeThriftServer}).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import type { IncomingMessage, ServerResponse } from "node:http";
import https from "node:https";
import thrift from "thrift";
import Int64 from "node-int64";
import * as arrow from "apache-arrow";
import { databricks } from "../../adapters/databricks/databricks_driver.ts";
import type { TestCertificates } from "./fake_key_vault.ts";
import {
  fakeRow,
  fakeRowCount,
  type FakeUcTable,
  type FakeWorkspace,
} from "./fake_databricks_workspace.ts";
import { civilFromDays, daysFromCivil } from "../../domain/civil_date.ts";

const databricksThrift = databricks.thrift;
const T = databricksThrift.TCLIService_types;
type TStatus = InstanceType<typeof T.TStatus>;
type TTableSchema = InstanceType<typeof T.TTableSchema>;
type TGetOperationStatusResp = InstanceType<typeof T.TGetOperationStatusResp>;
type TGetResultSetMetadataResp = InstanceType<typeof T.TGetResultSetMetadataResp>;
type TFetchResultsResp = InstanceType<typeof T.TFetchResultsResp>;
type TExecuteStatementReq = InstanceType<typeof T.TExecuteStatementReq>;
type TOpenSessionReq = InstanceType<typeof T.TOpenSessionReq>;
type TOperationHandle = InstanceType<typeof T.TOperationHandle>;
type TSessionHandle = InstanceType<typeof T.TSessionHandle>;
type TFetchResultsReq = InstanceType<typeof T.TFetchResultsReq>;

/** Options of {@link createFakeThrift}. */
export interface FakeThriftOptions {
  /** Rows per Arrow batch and per `FetchResults` at most (the driver may ask for fewer); default 10,000. */
  readonly batchRows?: number;
  /** The time zone new sessions start in (`UTC` or a fixed offset such as `+05:00`); default `UTC`. */
  readonly sessionTimeZone?: string;
  /** Whether sessions start in ANSI mode (SQL warehouses do; clusters before DBR 17 do not); default true. */
  readonly ansiMode?: boolean;
  /**
   * How many `GetOperationStatus` polls answer RUNNING before a statement is FINISHED, for every
   * statement or per statement text; default 0 (direct results carry the finished status). `Infinity`:
   * the statement never finishes (for timeouts).
   */
  readonly runningPolls?: number | ((statement: string) => number);
  /**
   * Makes each statement's next batch as soon as one is served, so that it is ready when the client
   * asks, as a warehouse's finished result is (the benchmark uses this; tests that count the rows
   * generated leave it off, the default).
   */
  readonly prefetch?: boolean;
}

/** What one `ExecuteStatement` asked for, as the fake received it. */
export interface FakeExecution {
  readonly statement: string;
  /** `queryTimeout` in seconds, when sent. */
  readonly queryTimeoutSeconds: number | undefined;
  /** Whether CloudFetch (presigned-URL results) was allowed. */
  readonly canDownloadResult: boolean | undefined;
  /** Whether LZ4-compressed Arrow was allowed. */
  readonly canDecompressLZ4Result: boolean | undefined;
  /** Rows asked for in the direct results, when asked for. */
  readonly directResultsMaxRows: number | undefined;
}

/** The fake endpoint; mount {@link FakeThrift.handle} for POSTs to the warehouse's HTTP path. */
export interface FakeThrift {
  /**
   * Answers one Thrift-over-HTTP POST; checking the bearer token is left to the server. Bound, so it
   * can be mounted as a plain function.
   */
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Every statement executed, in order. */
  readonly statements: string[];
  /** What each `ExecuteStatement` asked for, in order. */
  readonly executions: FakeExecution[];
  readonly sessions: {
    opened: number;
    closed: number;
    /** The `configuration` each `OpenSession` sent, in order. */
    configurations: Record<string, string>[];
  };
  readonly operations: { opened: number; closed: number; cancelled: number };
  /** Row numbers generated so far from each table (by name), to check that reads are lazy. */
  readonly rowsGenerated: Map<string, number>;
  /** Makes the next statement fail with this message (and SQLSTATE), as a server error would. */
  failNextStatement(message: string, sqlState?: string): void;
}

/** Creates the fake endpoint over a workspace; see the module documentation for what it emulates. */
export function createFakeThrift(
  workspace: FakeWorkspace,
  options: FakeThriftOptions = {},
): FakeThrift {
  return new FakeThriftService(workspace, options);
}

// ---------------------------------------------------------------------------------------------------
// Spark types

/** A Spark SQL type, as parsed from Unity Catalog's `type_text`. */
export type SparkType =
  | {
    readonly kind:
      | "boolean"
      | "tinyint"
      | "smallint"
      | "int"
      | "bigint"
      | "float"
      | "double"
      | "string"
      | "binary"
      | "date"
      | "timestamp"
      | "timestamp_ntz"
      | "variant"
      | "void";
  }
  | { readonly kind: "decimal"; readonly precision: number; readonly scale: number }
  | { readonly kind: "char" | "varchar"; readonly length: number }
  | { readonly kind: "interval"; readonly yearMonth: boolean }
  | { readonly kind: "array"; readonly element: SparkType }
  | { readonly kind: "map"; readonly key: SparkType; readonly value: SparkType }
  | { readonly kind: "struct"; readonly fields: readonly SparkField[] };

/** One field of a struct type. */
export interface SparkField {
  readonly name: string;
  readonly type: SparkType;
}

const SIMPLE_TYPES: Readonly<Record<string, SparkType>> = {
  boolean: { kind: "boolean" },
  byte: { kind: "tinyint" },
  tinyint: { kind: "tinyint" },
  short: { kind: "smallint" },
  smallint: { kind: "smallint" },
  int: { kind: "int" },
  integer: { kind: "int" },
  long: { kind: "bigint" },
  bigint: { kind: "bigint" },
  float: { kind: "float" },
  real: { kind: "float" },
  double: { kind: "double" },
  string: { kind: "string" },
  binary: { kind: "binary" },
  date: { kind: "date" },
  timestamp: { kind: "timestamp" },
  timestamp_ltz: { kind: "timestamp" },
  timestamp_ntz: { kind: "timestamp_ntz" },
  variant: { kind: "variant" },
  void: { kind: "void" },
};

/**
 * Parses a Spark type as Unity Catalog writes it in `type_text` (`decimal(38,10)`,
 * `array<struct<a:int,b:string>>`, `map<string,bigint>`, `interval day to second`, ...).
 *
 * @throws {SyntaxError} for anything else.
 */
export function parseSparkType(text: string): SparkType {
  const parser = new TypeParser(text);
  const type = parser.type();
  parser.end();
  return type;
}

class TypeParser {
  #at = 0;
  constructor(readonly text: string) {}

  type(): SparkType {
    const name = this.#word().toLowerCase();
    if (name === "array") {
      this.#expect("<");
      const element = this.type();
      this.#expect(">");
      return { kind: "array", element };
    }
    if (name === "map") {
      this.#expect("<");
      const key = this.type();
      this.#expect(",");
      const value = this.type();
      this.#expect(">");
      return { kind: "map", key, value };
    }
    if (name === "struct") {
      this.#expect("<");
      const fields: SparkField[] = [];
      if (!this.#peek(">")) {
        do {
          const fieldName = this.#name();
          this.#expect(":");
          fields.push({ name: fieldName, type: this.type() });
          this.#fieldModifiers();
        } while (this.#accept(","));
      }
      this.#expect(">");
      return { kind: "struct", fields };
    }
    if (name === "decimal" || name === "dec" || name === "numeric") {
      if (!this.#accept("(")) return { kind: "decimal", precision: 10, scale: 0 };
      const precision = this.#number();
      const scale = this.#accept(",") ? this.#number() : 0;
      this.#expect(")");
      if (precision < 1 || precision > 38 || scale > precision) this.#fail();
      return { kind: "decimal", precision, scale };
    }
    if (name === "char" || name === "character" || name === "varchar") {
      this.#expect("(");
      const length = this.#number();
      this.#expect(")");
      return { kind: name === "varchar" ? "varchar" : "char", length };
    }
    if (name === "interval") {
      const words: string[] = [];
      while (/^\s*[a-z]/i.test(this.#rest())) words.push(this.#word().toLowerCase());
      const first = words[0];
      if (first === undefined) this.#fail();
      return { kind: "interval", yearMonth: first === "year" || first === "month" };
    }
    const simple = SIMPLE_TYPES[name];
    if (simple === undefined) this.#fail();
    return simple;
  }

  end(): void {
    this.#skipSpace();
    if (this.#at !== this.text.length) this.#fail();
  }

  #fieldModifiers(): void {
    while (true) {
      this.#skipSpace();
      const rest = this.#rest();
      if (/^not\s+null\b/i.test(rest)) {
        this.#at += /^not\s+null/i.exec(rest)![0].length;
      } else if (/^comment\b/i.test(rest)) {
        this.#word();
        this.#skipSpace();
        const quoted = /^'(?:[^'\\]|\\.)*'/.exec(this.#rest());
        if (quoted === null) this.#fail();
        this.#at += quoted[0].length;
      } else {
        return;
      }
    }
  }

  #name(): string {
    this.#skipSpace();
    if (this.text[this.#at] === "`") {
      const quoted = /^`((?:[^`]|``)*)`/.exec(this.#rest());
      if (quoted === null) this.#fail();
      this.#at += quoted[0].length;
      return quoted[1]!.replaceAll("``", "`");
    }
    return this.#word();
  }

  #word(): string {
    this.#skipSpace();
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(this.#rest());
    if (word === null) this.#fail();
    this.#at += word[0].length;
    return word[0];
  }

  #number(): number {
    this.#skipSpace();
    const digits = /^\d+/.exec(this.#rest());
    if (digits === null) this.#fail();
    this.#at += digits[0].length;
    return Number(digits[0]);
  }

  #peek(symbol: string): boolean {
    this.#skipSpace();
    return this.text.startsWith(symbol, this.#at);
  }

  #accept(symbol: string): boolean {
    if (!this.#peek(symbol)) return false;
    this.#at += symbol.length;
    return true;
  }

  #expect(symbol: string): void {
    if (!this.#accept(symbol)) this.#fail();
  }

  #skipSpace(): void {
    while (this.#at < this.text.length && /\s/.test(this.text[this.#at]!)) this.#at++;
  }

  #rest(): string {
    return this.text.slice(this.#at);
  }

  #fail(): never {
    throw new SyntaxError(`Cannot parse Spark type "${this.text}" at position ${this.#at}`);
  }
}

function typeText(type: SparkType): string {
  switch (type.kind) {
    case "decimal":
      return `decimal(${type.precision},${type.scale})`;
    case "char":
    case "varchar":
      return `${type.kind}(${type.length})`;
    case "interval":
      return type.yearMonth ? "interval year to month" : "interval day to second";
    case "array":
      return `array<${typeText(type.element)}>`;
    case "map":
      return `map<${typeText(type.key)},${typeText(type.value)}>`;
    case "struct":
      return `struct<${type.fields.map((f) => `${f.name}:${typeText(f.type)}`).join(",")}>`;
    default:
      return type.kind;
  }
}

// ---------------------------------------------------------------------------------------------------
// Values: a stored FakeSparkValue becomes Spark's internal form, by type:
// boolean, number (tinyint..int, float, double; dates as days since 1970-01-01), bigint (bigint;
// timestamps as microseconds since 1970-01-01 00:00 UTC, or of the wall clock for TIMESTAMP_NTZ; decimals
// as the unscaled integer), string, Uint8Array, arrays for arrays, [key, value][] for maps, value arrays
// in field order for structs, and any JSON value for variants.

const MICROS_PER_DAY = 86_400_000_000n;

class FakeSqlError extends Error {
  constructor(message: string, readonly sqlState: string) {
    super(message);
  }
}

function storedMismatch(type: SparkType, value: unknown): FakeSqlError {
  const shown = typeof value === "bigint" ? `${value}n` : JSON.stringify(value) ?? String(value);
  return new FakeSqlError(
    `The fake workspace holds ${shown.slice(0, 80)} in a ${typeText(type)} column, which the ` +
      `workspace model does not allow`,
    "XX000",
  );
}

function toInternal(type: SparkType, value: unknown): unknown {
  if (value === null || value === undefined) return null;
  switch (type.kind) {
    case "boolean":
      if (typeof value !== "boolean") throw storedMismatch(type, value);
      return value;
    case "tinyint":
    case "smallint":
    case "int": {
      const limit = type.kind === "tinyint" ? 2 ** 7 : type.kind === "smallint" ? 2 ** 15 : 2 ** 31;
      if (!Number.isInteger(value) || (value as number) < -limit || (value as number) >= limit) {
        throw storedMismatch(type, value);
      }
      return value;
    }
    case "bigint":
      if (typeof value !== "bigint" || BigInt.asIntN(64, value) !== value) {
        throw storedMismatch(type, value);
      }
      return value;
    case "float":
      if (typeof value !== "number") throw storedMismatch(type, value);
      return Math.fround(value);
    case "double":
      if (typeof value !== "number") throw storedMismatch(type, value);
      return value;
    case "decimal": {
      const unscaled = typeof value === "string" ? parseDecimal(value, type.scale) : undefined;
      if (unscaled === undefined || abs(unscaled) >= 10n ** BigInt(type.precision)) {
        throw storedMismatch(type, value);
      }
      return unscaled;
    }
    case "string":
    case "varchar":
      if (typeof value !== "string") throw storedMismatch(type, value);
      return value;
    case "char":
      if (typeof value !== "string") throw storedMismatch(type, value);
      return value.padEnd(type.length, " ");
    case "binary":
      if (!(value instanceof Uint8Array)) throw storedMismatch(type, value);
      return value;
    case "date": {
      const days = typeof value === "string" ? parseDate(value) : undefined;
      if (days === undefined) throw storedMismatch(type, value);
      return days;
    }
    case "timestamp":
    case "timestamp_ntz": {
      const micros = typeof value === "string" ? parseTimestamp(value) : undefined;
      if (micros === undefined) throw storedMismatch(type, value);
      return micros;
    }
    case "interval":
      if (typeof value !== "string") throw storedMismatch(type, value);
      return value;
    case "variant":
      return value;
    case "void":
      throw storedMismatch(type, value);
    case "array":
      if (!Array.isArray(value)) throw storedMismatch(type, value);
      return value.map((e) => toInternal(type.element, e));
    case "map": {
      if (typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
        throw storedMismatch(type, value);
      }
      return Object.entries(value).map((
        [k, v],
      ) => [mapKey(type.key, k), toInternal(type.value, v)]);
    }
    case "struct": {
      if (typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
        throw storedMismatch(type, value);
      }
      const record = value as Record<string, unknown>;
      return type.fields.map((f) => toInternal(f.type, record[f.name]));
    }
  }
}

/** A map key stored as an object key (always a string), read as the map's key type. */
function mapKey(type: SparkType, key: string): unknown {
  switch (type.kind) {
    case "tinyint":
    case "smallint":
    case "int":
    case "float":
    case "double":
      return toInternal(type, Number(key));
    case "bigint":
      return toInternal(type, BigInt(key));
    case "boolean":
      return toInternal(type, key === "true");
    default:
      return toInternal(type, key);
  }
}

function abs(n: bigint): bigint {
  return n < 0n ? -n : n;
}

/** `"-12.3"` at scale 2 → -1230n; undefined when it is not a decimal or has more digits than the scale. */
function parseDecimal(text: string, scale: number): bigint | undefined {
  const match = /^(-)?(\d+)(?:\.(\d+))?$/.exec(text);
  if (match === null) return undefined;
  const fraction = match[3] ?? "";
  if (fraction.length > scale) return undefined;
  const unscaled = BigInt(match[2]! + fraction.padEnd(scale, "0"));
  return match[1] === "-" ? -unscaled : unscaled;
}

function isLeap(year: number): boolean {
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
}

/** `YYYY-MM-DD` (the year may be longer, or negative: astronomical numbering) → days since epoch. */
function parseDate(text: string): number | undefined {
  const match = /^(-?\d{4,})-(\d{2})-(\d{2})$/.exec(text);
  if (match === null) return undefined;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const lengths = [31, isLeap(year) ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
  if (month < 1 || month > 12 || day < 1 || day > lengths[month - 1]!) return undefined;
  return daysFromCivil(year, month, day);
}

/** `YYYY-MM-DD HH:MM:SS[.ffffff]` → microseconds since 1970-01-01 00:00. */
function parseTimestamp(text: string): bigint | undefined {
  const match = /^(-?\d{4,}-\d{2}-\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$/.exec(text);
  if (match === null) return undefined;
  const days = parseDate(match[1]!);
  const [h, m, s] = [Number(match[2]), Number(match[3]), Number(match[4])];
  if (days === undefined || h > 23 || m > 59 || s > 59) return undefined;
  return BigInt(days) * MICROS_PER_DAY + BigInt((h * 60 + m) * 60 + s) * 1_000_000n +
    BigInt((match[5] ?? "").padEnd(6, "0"));
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return (a % b !== 0n && (a < 0n) !== (b < 0n)) ? q - 1n : q;
}

/** Spark's `yyyy-MM-dd` (years outside 0-9999 approximated with a sign). */
function sparkDate(days: number): string {
  const [y, m, d] = civilFromDays(days);
  const year = y >= 0 && y <= 9999
    ? String(y).padStart(4, "0")
    : y < 0
    ? `-${String(-y).padStart(4, "0")}`
    : `+${y}`;
  return `${year}-${two(m)}-${two(d)}`;
}

function two(n: number): string {
  return String(n).padStart(2, "0");
}

/** Splits microseconds since epoch into days, time of day and microseconds of the second. */
function splitMicros(
  micros: bigint,
): { days: number; h: number; m: number; s: number; us: number } {
  const days = floorDiv(micros, MICROS_PER_DAY);
  const inDay = Number(micros - days * MICROS_PER_DAY);
  const seconds = Math.floor(inDay / 1_000_000);
  return {
    days: Number(days),
    h: Math.floor(seconds / 3600),
    m: Math.floor(seconds / 60) % 60,
    s: seconds % 60,
    us: inDay % 1_000_000,
  };
}

/** Spark's fraction formatter: `yyyy-MM-dd HH:mm:ss[.ffffff]`, trailing fraction zeros dropped. */
function sparkTimestamp(micros: bigint): string {
  const { days, h, m, s, us } = splitMicros(micros);
  const fraction = us === 0 ? "" : `.${String(us).padStart(6, "0").replace(/0+$/, "")}`;
  return `${sparkDate(days)} ${two(h)}:${two(m)}:${two(s)}${fraction}`;
}

/** Jackson's default for `to_json`: `yyyy-MM-dd'T'HH:mm:ss.SSS` plus the zone (`XXX`) when given. */
function jsonTimestamp(micros: bigint, offsetMinutes: number | undefined): string {
  const { days, h, m, s, us } = splitMicros(micros);
  const ms = String(Math.floor(us / 1000)).padStart(3, "0");
  const base = `${sparkDate(days)}T${two(h)}:${two(m)}:${two(s)}`;
  if (offsetMinutes === undefined) return ms === "000" ? base : `${base}.${ms}`;
  return `${base}.${ms}${zoneSuffix(offsetMinutes)}`;
}

function zoneSuffix(offsetMinutes: number): string {
  if (offsetMinutes === 0) return "Z";
  const sign = offsetMinutes < 0 ? "-" : "+";
  const a = Math.abs(offsetMinutes);
  return `${sign}${two(Math.floor(a / 60))}:${two(a % 60)}`;
}

/** Java's `Double.toString` (shortest digits, as JDK 19+ prints them). */
function javaDouble(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "Infinity";
  if (value === -Infinity) return "-Infinity";
  return javaLayout(value, String(value), value.toExponential());
}

/** Java's `Float.toString` for a value that is exactly a 32-bit float. */
function javaFloat(value: number): string {
  if (!Number.isFinite(value)) return javaDouble(value);
  let digits = 1;
  while (digits < 9 && Math.fround(Number(value.toPrecision(digits))) !== value) digits++;
  const shortest = Number(value.toPrecision(digits));
  return javaLayout(shortest, String(shortest), shortest.toExponential());
}

function javaLayout(value: number, plain: string, exponential: string): string {
  if (value === 0) return Object.is(value, -0) ? "-0.0" : "0.0";
  const magnitude = Math.abs(value);
  if (magnitude >= 1e-3 && magnitude < 1e7) return plain.includes(".") ? plain : `${plain}.0`;
  const [mantissa = "", exponent = ""] = exponential.split("e");
  return `${mantissa.includes(".") ? mantissa : `${mantissa}.0`}E${exponent.replace("+", "")}`;
}

/** `BigDecimal.toPlainString` of unscaled × 10^-scale. */
function plainDecimal(unscaled: bigint, scale: number): string {
  const digits = abs(unscaled).toString().padStart(scale + 1, "0");
  const sign = unscaled < 0n ? "-" : "";
  const cut = digits.length - scale;
  return scale === 0 ? `${sign}${digits}` : `${sign}${digits.slice(0, cut)}.${digits.slice(cut)}`;
}

/** `BigDecimal.toString`: plain unless the adjusted exponent is below -6 (`0E-10`, `1.5E-7`). */
function javaDecimal(unscaled: bigint, scale: number): string {
  const coefficient = abs(unscaled).toString();
  const adjusted = coefficient.length - 1 - scale;
  if (adjusted >= -6) return plainDecimal(unscaled, scale);
  const sign = unscaled < 0n ? "-" : "";
  const mantissa = coefficient.length > 1
    ? `${coefficient[0]}.${coefficient.slice(1)}`
    : coefficient;
  return `${sign}${mantissa}E${adjusted}`;
}

/** What a statement needs to know about its session when evaluating. */
interface EvalContext {
  /** The session time zone's offset from UTC. */
  readonly offsetMinutes: number;
  readonly ansi: boolean;
}

/** `CAST(value AS STRING)` for a non-null value of `type` (Spark's ToStringBase). */
function castToString(type: SparkType, value: unknown, ctx: EvalContext): string {
  switch (type.kind) {
    case "boolean":
      return value ? "true" : "false";
    case "tinyint":
    case "smallint":
    case "int":
    case "bigint":
      return String(value);
    case "float":
      return javaFloat(value as number);
    case "double":
      return javaDouble(value as number);
    case "decimal":
      return ctx.ansi
        ? plainDecimal(value as bigint, type.scale)
        : javaDecimal(value as bigint, type.scale);
    case "string":
    case "char":
    case "varchar":
    case "interval":
      return value as string;
    case "binary":
      return new TextDecoder().decode(value as Uint8Array);
    case "date":
      return sparkDate(value as number);
    case "timestamp":
      return sparkTimestamp((value as bigint) + BigInt(ctx.offsetMinutes) * 60_000_000n);
    case "timestamp_ntz":
      return sparkTimestamp(value as bigint);
    case "variant":
      return JSON.stringify(value);
    case "void":
      return "null";
    case "array": {
      const items = (value as unknown[]).map((e) =>
        e === null ? "null" : castToString(type.element, e, ctx)
      );
      return `[${items.join(", ")}]`;
    }
    case "map": {
      const entries = (value as [unknown, unknown][]).map(([k, v]) =>
        `${castToString(type.key, k, ctx)} -> ${
          v === null ? "null" : castToString(type.value, v, ctx)
        }`
      );
      return `{${entries.join(", ")}}`;
    }
    case "struct": {
      const items = (value as unknown[]).map((v, i) =>
        v === null ? "null" : castToString(type.fields[i]!.type, v, ctx)
      );
      return `{${items.join(", ")}}`;
    }
  }
}

/**
 * A JSON string as Jackson writes it: the same escapes as `JSON.stringify` (`\"`, `\\`, `\b`, `\f`,
 * `\n`, `\r`, `\t`, other control characters as `\u00XX`, nothing else escaped), but with upper-case
 * hex digits (`\u001F`), Jackson's default.
 */
function jacksonString(text: string): string {
  const json = JSON.stringify(text);
  if (!json.includes("\\u")) return json;
  return json.replace(
    /\\(?:u([0-9a-f]{4})|[^u])/g,
    (escape: string, hex: string | undefined) =>
      hex === undefined ? escape : `\\u${hex.toUpperCase()}`,
  );
}

/** `to_json` of a non-null value (Spark's JacksonGenerator with default options). */
function toJson(type: SparkType, value: unknown, ctx: EvalContext): string {
  switch (type.kind) {
    case "boolean":
      return value ? "true" : "false";
    case "tinyint":
    case "smallint":
    case "int":
    case "bigint":
      return String(value);
    case "float":
    case "double": {
      const text = type.kind === "float" ? javaFloat(value as number) : javaDouble(value as number);
      return Number.isFinite(value) ? text : JSON.stringify(text);
    }
    case "decimal":
      return javaDecimal(value as bigint, type.scale);
    case "string":
    case "char":
    case "varchar":
    case "interval":
      return jacksonString(value as string);
    case "binary":
      return JSON.stringify(Buffer.from(value as Uint8Array).toString("base64"));
    case "date":
      return JSON.stringify(sparkDate(value as number));
    case "timestamp":
      return JSON.stringify(
        jsonTimestamp(
          (value as bigint) + BigInt(ctx.offsetMinutes) * 60_000_000n,
          ctx.offsetMinutes,
        ),
      );
    case "timestamp_ntz":
      return JSON.stringify(jsonTimestamp(value as bigint, undefined));
    case "variant":
      return JSON.stringify(value);
    case "void":
      return "null";
    case "array":
      return `[${
        (value as unknown[]).map((e) => e === null ? "null" : toJson(type.element, e, ctx)).join(
          ",",
        )
      }]`;
    case "map":
      return `{${
        (value as [unknown, unknown][]).map(([k, v]) =>
          `${jacksonString(castToString(type.key, k, ctx))}:${
            v === null ? "null" : toJson(type.value, v, ctx)
          }`
        ).join(",")
      }}`;
    case "struct":
      return `{${
        (value as unknown[]).flatMap((v, i) => {
          const field = type.fields[i]!;
          return v === null ? [] : [`${jacksonString(field.name)}:${toJson(field.type, v, ctx)}`];
        }).join(",")
      }}`;
  }
}

// ---------------------------------------------------------------------------------------------------
// SQL: tokens, statements, plans

type Token =
  | { readonly kind: "word"; readonly text: string; readonly quoted: boolean }
  | { readonly kind: "number" | "string" | "symbol"; readonly text: string }
  | { readonly kind: "end"; readonly text: "" };

function syntaxError(near: Token): FakeSqlError {
  const where = near.kind === "end" ? "end of input" : `'${near.text}'`;
  return new FakeSqlError(
    `[PARSE_SYNTAX_ERROR] Syntax error at or near ${where}. SQLSTATE: 42601`,
    "42601",
  );
}

function tokenize(sql: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  while (at < sql.length) {
    const rest = sql.slice(at);
    const space = /^(?:\s+|--[^\n]*)/.exec(rest);
    if (space !== null) {
      at += space[0].length;
      continue;
    }
    const quoted = /^`((?:[^`]|``)*)`/.exec(rest);
    const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest);
    const number = /^\d+(?:\.\d+)?/.exec(rest);
    const string = /^'((?:[^'\\]|\\.)*)'/.exec(rest);
    if (quoted !== null) {
      tokens.push({ kind: "word", text: quoted[1]!.replaceAll("``", "`"), quoted: true });
      at += quoted[0].length;
    } else if (word !== null) {
      tokens.push({ kind: "word", text: word[0], quoted: false });
      at += word[0].length;
    } else if (number !== null) {
      tokens.push({ kind: "number", text: number[0] });
      at += number[0].length;
    } else if (string !== null) {
      tokens.push({ kind: "string", text: string[1]!.replace(/\\(.)/g, "$1") });
      at += string[0].length;
    } else if (/^[(),.=;:+\-*>]/.test(rest)) {
      tokens.push({ kind: "symbol", text: rest[0]! });
      at += 1;
    } else {
      throw syntaxError({ kind: "symbol", text: rest[0]! });
    }
  }
  tokens.push({ kind: "end", text: "" });
  return tokens;
}

/** An expression of the select list, before resolution. */
type Expr =
  | { readonly kind: "column"; readonly name: string }
  | { readonly kind: "literal"; readonly value: number }
  | { readonly kind: "string"; readonly value: string }
  | { readonly kind: "cast"; readonly arg: Expr; readonly to: string }
  | { readonly kind: "call"; readonly name: string; readonly arg: Expr }
  | { readonly kind: "calls"; readonly name: string; readonly args: readonly Expr[] }
  | {
    readonly kind: "arithmetic";
    readonly operator: "+" | "*";
    readonly left: Expr;
    readonly right: Expr;
  }
  | {
    readonly kind: "case";
    readonly left: Expr;
    readonly right: Expr;
    readonly then: Expr;
    readonly otherwise: Expr;
  };

type Statement =
  | {
    readonly kind: "select";
    readonly items: readonly { readonly expr: Expr; readonly alias: string | undefined }[];
    readonly from: readonly string[] | undefined;
  }
  | { readonly kind: "set"; readonly key: string; readonly value: string }
  | { readonly kind: "describe"; readonly extended: boolean; readonly table: readonly string[] };

const RESERVED = new Set(["select", "from", "as", "where", "limit", "order", "group", "join"]);

class StatementParser {
  #at = 0;
  constructor(readonly tokens: readonly Token[]) {}

  statement(): Statement {
    const statement = this.#keyword("set")
      ? this.#set()
      : this.#keyword("describe")
      ? this.#describe()
      : this.#select();
    this.#acceptSymbol(";");
    const next = this.#peek();
    if (next.kind !== "end") {
      if (next.kind === "word" && !next.quoted && RESERVED.has(next.text.toLowerCase())) {
        throw new FakeSqlError(
          `[UNSUPPORTED_FEATURE] The fake warehouse does not support ${next.text.toUpperCase()}. ` +
            "SQLSTATE: 0A000",
          "0A000",
        );
      }
      throw syntaxError(next);
    }
    return statement;
  }

  #set(): Statement {
    if (this.#keyword("time")) {
      if (!this.#keyword("zone")) throw syntaxError(this.#peek());
      const zone = this.#next();
      if (zone.kind !== "string") throw syntaxError(zone);
      return { kind: "set", key: "timezone", value: zone.text };
    }
    const parts: string[] = [this.#name()];
    while (this.#acceptSymbol(".")) parts.push(this.#name());
    if (!this.#acceptSymbol("=")) throw syntaxError(this.#peek());
    let value = "";
    while (this.#peek().kind !== "end" && !(this.#peek().text === ";")) {
      const token = this.#next();
      value += token.text;
    }
    if (value === "") throw syntaxError(this.#peek());
    return { kind: "set", key: parts.join("."), value };
  }

  /** `DESCRIBE [TABLE] [EXTENDED] <table>`. */
  #describe(): Statement {
    this.#keyword("table");
    const extended = this.#keyword("extended");
    const table = [this.#name()];
    while (this.#acceptSymbol(".")) table.push(this.#name());
    if (table.length > 3) throw syntaxError(this.#peek());
    return { kind: "describe", extended, table };
  }

  #select(): Statement {
    if (!this.#keyword("select")) throw syntaxError(this.#peek());
    const items: { expr: Expr; alias: string | undefined }[] = [];
    do {
      const expr = this.#expr();
      let alias: string | undefined;
      if (this.#keyword("as")) {
        alias = this.#name();
      } else if (this.#peek().kind === "word" && !this.#isReserved(this.#peek())) {
        alias = this.#name();
      }
      items.push({ expr, alias });
    } while (this.#acceptSymbol(","));
    let from: string[] | undefined;
    if (this.#keyword("from")) {
      from = [this.#name()];
      while (this.#acceptSymbol(".")) from.push(this.#name());
      if (from.length > 3) throw syntaxError(this.#peek());
    }
    return { kind: "select", items, from };
  }

  /** `term (+ term)*`, a term being `primary (* primary)*`: the arithmetic of the value guards. */
  #expr(): Expr {
    let expr = this.#term();
    while (this.#acceptSymbol("+")) {
      expr = { kind: "arithmetic", operator: "+", left: expr, right: this.#term() };
    }
    return expr;
  }

  #term(): Expr {
    let expr = this.#primary();
    while (this.#acceptSymbol("*")) {
      expr = { kind: "arithmetic", operator: "*", left: expr, right: this.#primary() };
    }
    return expr;
  }

  /** `CASE WHEN <expr> > <expr> THEN <expr> ELSE <expr> END`, after `CASE`. */
  #case(): Expr {
    if (!this.#keyword("when")) throw syntaxError(this.#peek());
    const left = this.#expr();
    if (!this.#acceptSymbol(">")) throw syntaxError(this.#peek());
    const right = this.#expr();
    if (!this.#keyword("then")) throw syntaxError(this.#peek());
    const then = this.#expr();
    if (!this.#keyword("else")) throw syntaxError(this.#peek());
    const otherwise = this.#expr();
    if (!this.#keyword("end")) throw syntaxError(this.#peek());
    return { kind: "case", left, right, then, otherwise };
  }

  #primary(): Expr {
    if (this.#keyword("case")) return this.#case();
    const token = this.#next();
    if (token.kind === "string") return { kind: "string", value: token.text };
    if (token.kind === "number") {
      if (!/^\d+$/.test(token.text)) {
        throw new FakeSqlError(
          "[UNSUPPORTED_FEATURE] The fake warehouse only supports integer literals. SQLSTATE: 0A000",
          "0A000",
        );
      }
      return { kind: "literal", value: Number(token.text) };
    }
    if (token.kind !== "word" || (!token.quoted && this.#isReserved(token))) {
      throw syntaxError(token);
    }
    if (!token.quoted && this.#acceptSymbol("(")) {
      const name = token.text.toLowerCase();
      const arg = this.#expr();
      let expr: Expr;
      if (name === "cast") {
        if (!this.#keyword("as")) throw syntaxError(this.#peek());
        const to = this.#next();
        if (to.kind !== "word") throw syntaxError(to);
        expr = { kind: "cast", arg, to: to.text.toLowerCase() };
      } else if (this.#acceptSymbol(",")) {
        const args = [arg, this.#expr()];
        while (this.#acceptSymbol(",")) args.push(this.#expr());
        expr = { kind: "calls", name, args };
      } else {
        expr = { kind: "call", name, arg };
      }
      if (!this.#acceptSymbol(")")) throw syntaxError(this.#peek());
      return expr;
    }
    return { kind: "column", name: token.text };
  }

  #isReserved(token: Token): boolean {
    return token.kind === "word" && !token.quoted && RESERVED.has(token.text.toLowerCase());
  }

  #name(): string {
    const token = this.#next();
    if (token.kind !== "word" || this.#isReserved(token)) throw syntaxError(token);
    return token.text;
  }

  #keyword(word: string): boolean {
    const token = this.#peek();
    if (token.kind === "word" && !token.quoted && token.text.toLowerCase() === word) {
      this.#at++;
      return true;
    }
    return false;
  }

  #acceptSymbol(symbol: string): boolean {
    const token = this.#peek();
    if (token.kind === "symbol" && token.text === symbol) {
      this.#at++;
      return true;
    }
    return false;
  }

  #peek(): Token {
    return this.tokens[this.#at] ?? { kind: "end", text: "" };
  }

  #next(): Token {
    const token = this.#peek();
    if (token.kind !== "end") this.#at++;
    return token;
  }
}

/** Parses one statement of the supported subset. */
function parseStatement(sql: string): Statement {
  return new StatementParser(tokenize(sql)).statement();
}

/** Writes a name as Spark does in messages: in backticks, backticks doubled. */
function sqlId(name: string): string {
  return `\`${name.replaceAll("`", "``")}\``;
}

/** A resolved select-list item: its result name, type, and how to compute it from a table row. */
interface PlannedColumn {
  readonly name: string;
  readonly type: SparkType;
  /** Computes the value from the internal values of the table's columns. */
  readonly evaluate: (row: readonly unknown[], ctx: EvalContext) => unknown;
}

/** A planned query: its columns, and where its rows come from. */
interface Plan {
  readonly columns: readonly PlannedColumn[];
  readonly rowCount: number;
  /** Internal values of the table's columns used by the plan, for row `index`. */
  readonly row: (index: number) => readonly unknown[];
  readonly tableName: string | undefined;
}

function mismatch(expression: string, detail: string): FakeSqlError {
  return new FakeSqlError(
    `[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve "${expression}" due to data type ` +
      `mismatch: ${detail}. SQLSTATE: 42K09`,
    "42K09",
  );
}

function exprText(expr: Expr): string {
  switch (expr.kind) {
    case "column":
      return expr.name;
    case "literal":
      return String(expr.value);
    case "string":
      return `'${expr.value}'`;
    case "calls":
      return `${expr.name}(${expr.args.map(exprText).join(", ")})`;
    case "arithmetic":
      return `(${exprText(expr.left)} ${expr.operator} ${exprText(expr.right)})`;
    case "case":
      return `CASE WHEN (${exprText(expr.left)} > ${exprText(expr.right)}) THEN ${
        exprText(expr.then)
      } ELSE ${exprText(expr.otherwise)} END`;
    case "cast":
      return `CAST(${exprText(expr.arg)} AS ${expr.to.toUpperCase()})`;
    case "call":
      return `${expr.name}(${exprText(expr.arg)})`;
  }
}

function resolve(
  expr: Expr,
  columns: readonly { readonly name: string; readonly type: SparkType }[] | undefined,
  used: Set<number>,
): Omit<PlannedColumn, "name"> {
  switch (expr.kind) {
    case "literal":
      return { type: { kind: "int" }, evaluate: () => expr.value };
    case "column": {
      const index = columns === undefined
        ? -1
        : columns.findIndex((c) => c.name.toLowerCase() === expr.name.toLowerCase());
      if (index < 0) {
        const suggestions = (columns ?? []).map((c) => sqlId(c.name)).join(", ");
        throw new FakeSqlError(
          `[UNRESOLVED_COLUMN.WITH_SUGGESTION] A column, variable, or function parameter with name ` +
            `${sqlId(expr.name)} cannot be resolved. Did you mean one of the following? ` +
            `[${suggestions}]. SQLSTATE: 42703`,
          "42703",
        );
      }
      used.add(index);
      return { type: columns![index]!.type, evaluate: (row) => row[index] };
    }
    case "cast": {
      const arg = resolve(expr.arg, columns, used);
      if (expr.to === "string") {
        return {
          type: { kind: "string" },
          evaluate: (row, ctx) => {
            const v = arg.evaluate(row, ctx);
            return v === null ? null : castToString(arg.type, v, ctx);
          },
        };
      }
      if (expr.to === "timestamp") {
        const from = arg.type.kind;
        if (from === "timestamp") return { type: arg.type, evaluate: arg.evaluate };
        if (from === "timestamp_ntz" || from === "date") {
          return {
            type: { kind: "timestamp" },
            evaluate: (row, ctx) => {
              const v = arg.evaluate(row, ctx);
              if (v === null) return null;
              const wall = from === "date" ? BigInt(v as number) * MICROS_PER_DAY : v as bigint;
              return wall - BigInt(ctx.offsetMinutes) * 60_000_000n;
            },
          };
        }
        throw new FakeSqlError(
          `[DATATYPE_MISMATCH.CAST_WITHOUT_SUGGESTION] Cannot resolve "${exprText(expr)}" due to ` +
            `data type mismatch: cannot cast "${
              typeText(arg.type).toUpperCase()
            }" to "TIMESTAMP". SQLSTATE: 42K09`,
          "42K09",
        );
      }
      throw new FakeSqlError(
        `[UNSUPPORTED_FEATURE] The fake warehouse cannot cast to ${expr.to.toUpperCase()}. ` +
          "SQLSTATE: 0A000",
        "0A000",
      );
    }
    case "string": {
      const value = expr.value;
      return { type: { kind: "string" }, evaluate: () => value };
    }
    case "arithmetic": {
      const left = resolve(expr.left, columns, used);
      const right = resolve(expr.right, columns, used);
      for (const side of [left, right]) {
        if (side.type.kind !== "int" && side.type.kind !== "bigint") {
          throw mismatch(exprText(expr), `requires a numeric type, got "${typeText(side.type)}"`);
        }
      }
      const compute = expr.operator === "+"
        ? (a: number, b: number) => a + b
        : (a: number, b: number) => a * b;
      return {
        type: { kind: "int" },
        evaluate: (row, ctx) => {
          const [a, b] = [left.evaluate(row, ctx), right.evaluate(row, ctx)];
          return a === null || b === null ? null : compute(Number(a), Number(b));
        },
      };
    }
    case "case": {
      const left = resolve(expr.left, columns, used);
      const right = resolve(expr.right, columns, used);
      const then = resolve(expr.then, columns, used);
      const otherwise = resolve(expr.otherwise, columns, used);
      if (then.type.kind !== "void" && typeText(then.type) !== typeText(otherwise.type)) {
        throw new FakeSqlError(
          "[UNSUPPORTED_FEATURE] The fake warehouse only supports a CASE whose branches have one " +
            "type, or a void THEN. SQLSTATE: 0A000",
          "0A000",
        );
      }
      return {
        type: otherwise.type,
        evaluate: (row, ctx) => {
          const [a, b] = [left.evaluate(row, ctx), right.evaluate(row, ctx)];
          const above = a !== null && b !== null && Number(a) > Number(b);
          return above ? then.evaluate(row, ctx) : otherwise.evaluate(row, ctx);
        },
      };
    }
    case "calls": {
      if (expr.name !== "concat") {
        throw new FakeSqlError(
          `[UNRESOLVED_ROUTINE] Cannot resolve routine ${
            sqlId(expr.name)
          } on search path [\`system\`.\`builtin\`, \`system\`.\`session\`]. SQLSTATE: 42883`,
          "42883",
        );
      }
      const args = expr.args.map((a) => resolve(a, columns, used));
      return {
        type: { kind: "string" },
        evaluate: (row, ctx) => {
          const values = args.map((a) => a.evaluate(row, ctx));
          return values.includes(null)
            ? null
            : values.map((v, i) => castToString(args[i]!.type, v, ctx)).join("");
        },
      };
    }
    case "call": {
      const arg = resolve(expr.arg, columns, used);
      const text = exprText(expr);
      switch (expr.name) {
        case "octet_length":
          if (arg.type.kind !== "string" && arg.type.kind !== "binary") {
            throw mismatch(
              text,
              `requires the "STRING" or "BINARY" type, got "${typeText(arg.type)}"`,
            );
          }
          return {
            type: { kind: "int" },
            evaluate: (row, ctx) => {
              const v = arg.evaluate(row, ctx);
              return v === null ? null : v instanceof Uint8Array ? v.length : utf8Length(String(v));
            },
          };
        case "raise_error":
          return {
            type: { kind: "void" },
            evaluate: (row, ctx) => {
              const message = arg.evaluate(row, ctx);
              throw new FakeSqlError(`[USER_RAISED_EXCEPTION] ${message} SQLSTATE: P0001`, "P0001");
            },
          };
        case "unix_micros":
          if (arg.type.kind !== "timestamp") {
            throw mismatch(text, `requires the "TIMESTAMP" type, got "${typeText(arg.type)}"`);
          }
          return { type: { kind: "bigint" }, evaluate: arg.evaluate };
        case "unix_date":
          if (arg.type.kind !== "date") {
            throw mismatch(text, `requires the "DATE" type, got "${typeText(arg.type)}"`);
          }
          return { type: { kind: "int" }, evaluate: arg.evaluate };
        case "to_json": {
          const k = arg.type.kind;
          if (k !== "struct" && k !== "array" && k !== "map" && k !== "variant") {
            throw mismatch(
              text,
              `requires the "STRUCT", "ARRAY", "MAP" or "VARIANT" type, got "${
                typeText(arg.type)
              }"`,
            );
          }
          return {
            type: { kind: "string" },
            evaluate: (row, ctx) => {
              const v = arg.evaluate(row, ctx);
              return v === null ? null : toJson(arg.type, v, ctx);
            },
          };
        }
        default:
          throw new FakeSqlError(
            `[UNRESOLVED_ROUTINE] Cannot resolve routine ${
              sqlId(expr.name)
            } on search path [\`system\`.\`builtin\`, \`system\`.\`session\`]. SQLSTATE: 42883`,
            "42883",
          );
      }
    }
  }
}

/**
 * What `DESCRIBE TABLE [EXTENDED]` returns, as Spark lays it out: `col_name`, `data_type`, `comment`, a
 * row per column; with EXTENDED then a blank row, `# Detailed Table Information` and one row per fact
 * (`Table`, `Type`, and `Statistics` as `<bytes> bytes[, <rows> rows]` when the table has statistics).
 */
function describePlan(table: FakeUcTable, extended: boolean): Plan {
  const rows: string[][] = table.columns.map((c) => [c.name, c.type_text, c.comment ?? ""]);
  if (extended) {
    rows.push(["", "", ""], ["# Detailed Table Information", "", ""]);
    rows.push(["Table", table.name, ""], ["Type", table.table_type.toUpperCase(), ""]);
    const statistics = table.statistics;
    if (statistics !== undefined) {
      const count = statistics.numRows === undefined ? "" : `, ${statistics.numRows} rows`;
      rows.push(["Statistics", `${statistics.sizeInBytes} bytes${count}`, ""]);
    }
  }
  return {
    columns: ["col_name", "data_type", "comment"].map((name, i) => ({
      name,
      type: { kind: "string" },
      evaluate: (row: readonly unknown[]) => row[i],
    })),
    rowCount: rows.length,
    row: (index) => rows[index]!,
    tableName: undefined,
  };
}

function tableOrViewNotFound(parts: readonly string[]): FakeSqlError {
  return new FakeSqlError(
    `[TABLE_OR_VIEW_NOT_FOUND] The table or view ${
      parts.map(sqlId).join(".")
    } cannot be found. Verify the spelling and correctness of the schema and catalog. ` +
      "SQLSTATE: 42P01",
    "42P01",
  );
}

// ---------------------------------------------------------------------------------------------------
// Arrow

/** Which Spark types the client asked to receive as native Arrow types. */
interface ArrowOptions {
  readonly timestamps: boolean;
  readonly decimals: boolean;
  readonly complex: boolean;
}

function arrowType(type: SparkType, options: ArrowOptions, zone: string): arrow.DataType {
  switch (type.kind) {
    case "boolean":
      return new arrow.Bool();
    case "tinyint":
      return new arrow.Int8();
    case "smallint":
      return new arrow.Int16();
    case "int":
      return new arrow.Int32();
    case "bigint":
      return new arrow.Int64();
    case "float":
      return new arrow.Float32();
    case "double":
      return new arrow.Float64();
    case "binary":
      return new arrow.Binary();
    case "date":
      return new arrow.DateDay();
    case "timestamp":
      return options.timestamps ? new arrow.TimestampMicrosecond(zone) : new arrow.Utf8();
    case "timestamp_ntz":
      return options.timestamps ? new arrow.TimestampMicrosecond() : new arrow.Utf8();
    case "decimal":
      return options.decimals
        ? new arrow.Decimal(type.scale, type.precision, 128)
        : new arrow.Utf8();
    case "void":
      return new arrow.Null();
    case "array":
      return options.complex
        ? new arrow.List(new arrow.Field("element", arrowType(type.element, options, zone), true))
        : new arrow.Utf8();
    case "map":
      return options.complex
        ? new arrow.Map_(
          new arrow.Field(
            "entries",
            new arrow.Struct([
              new arrow.Field("key", arrowType(type.key, options, zone), false),
              new arrow.Field("value", arrowType(type.value, options, zone), true),
            ] as arrow.Field[]),
            false,
          ) as never,
        )
        : new arrow.Utf8();
    case "struct":
      return options.complex
        ? new arrow.Struct(
          type.fields.map((f) => new arrow.Field(f.name, arrowType(f.type, options, zone), true)),
        )
        : new arrow.Utf8();
    default:
      return new arrow.Utf8();
  }
}

/** The Utf8 text a value travels as when its type is not sent natively. */
function textForm(type: SparkType, value: unknown, ctx: EvalContext): string {
  switch (type.kind) {
    case "decimal":
      return plainDecimal(value as bigint, type.scale);
    case "array":
    case "map":
    case "struct":
    case "variant":
      return toJson(type, value, ctx);
    default:
      return castToString(type, value, ctx);
  }
}

function validity(values: readonly unknown[]): { nullBitmap: Uint8Array; nullCount: number } {
  const nullBitmap = new Uint8Array(Math.ceil(values.length / 8));
  let nullCount = 0;
  for (let i = 0; i < values.length; i++) {
    if (values[i] === null) nullCount++;
    else nullBitmap[i >> 3]! |= 1 << (i & 7);
  }
  return { nullBitmap, nullCount };
}

const encoder = new TextEncoder();

/** The UTF-8 length of a string as TextEncoder writes it (a lone surrogate becomes U+FFFD). */
function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (unit >= 0xd800 && unit < 0xdc00 && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next < 0xe000) {
        bytes += 4;
        i++;
      } else {
        bytes += 3;
      }
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

function utf8Column(type: arrow.Utf8, values: readonly (string | null)[]): arrow.Data {
  // One encode for the whole column: encoding value by value costs a call into the runtime each.
  const valueOffsets = new Int32Array(values.length + 1);
  let total = 0;
  values.forEach((v, i) => {
    if (v !== null) total += utf8Length(v);
    valueOffsets[i + 1] = total;
  });
  const data = encoder.encode(values.map((v) => v ?? "").join(""));
  if (data.length !== total) throw new Error("UTF-8 length mismatch in the fake's Arrow encoder");
  return arrow.makeData({ type, length: values.length, ...validity(values), valueOffsets, data });
}

function binaryColumn(type: arrow.Binary, values: readonly unknown[]): arrow.Data {
  const valueOffsets = new Int32Array(values.length + 1);
  let total = 0;
  values.forEach((v, i) => {
    if (v !== null) total += (v as Uint8Array).length;
    valueOffsets[i + 1] = total;
  });
  const data = new Uint8Array(total);
  values.forEach((v, i) => {
    if (v !== null) data.set(v as Uint8Array, valueOffsets[i]!);
  });
  return arrow.makeData({ type, length: values.length, ...validity(values), valueOffsets, data });
}

function decimalWords(values: readonly unknown[]): Uint32Array {
  const words = new Uint32Array(values.length * 4);
  values.forEach((v, i) => {
    let u = BigInt.asUintN(128, (v as bigint | null) ?? 0n);
    for (let k = 0; k < 4; k++) {
      words[i * 4 + k] = Number(u & 0xffff_ffffn);
      u >>= 32n;
    }
  });
  return words;
}

/** Builds one result column as an Arrow vector of `arrowType(type, ...)`. */
function arrowColumn(
  type: SparkType,
  target: arrow.DataType,
  values: readonly unknown[],
  ctx: EvalContext,
): arrow.Data {
  const length = values.length;
  if (arrow.DataType.isUtf8(target)) {
    const native = type.kind === "string" || type.kind === "char" || type.kind === "varchar";
    return utf8Column(
      target,
      native
        ? values as readonly (string | null)[]
        : values.map((v) => v === null ? null : textForm(type, v, ctx)),
    );
  }
  if (target instanceof arrow.Null) return arrow.makeData({ type: target, length });
  if (arrow.DataType.isBinary(target)) return binaryColumn(target, values);
  const { nullBitmap, nullCount } = validity(values);
  switch (type.kind) {
    case "boolean": {
      const data = new Uint8Array(Math.ceil(length / 8));
      values.forEach((v, i) => {
        if (v === true) data[i >> 3]! |= 1 << (i & 7);
      });
      return arrow.makeData({ type: target as arrow.Bool, length, nullBitmap, nullCount, data });
    }
    case "tinyint":
    case "smallint":
    case "int":
    case "date": {
      const Typed = type.kind === "tinyint"
        ? Int8Array
        : type.kind === "smallint"
        ? Int16Array
        : Int32Array;
      const data = new Typed(length);
      values.forEach((v, i) => data[i] = (v as number | null) ?? 0);
      return arrow.makeData({ type: target as arrow.Int, length, nullBitmap, nullCount, data });
    }
    case "float":
    case "double": {
      const Typed = type.kind === "float" ? Float32Array : Float64Array;
      const data = new Typed(length);
      values.forEach((v, i) => data[i] = (v as number | null) ?? 0);
      return arrow.makeData({ type: target as arrow.Float, length, nullBitmap, nullCount, data });
    }
    case "bigint":
    case "timestamp":
    case "timestamp_ntz": {
      const data = BigInt64Array.from(values, (v) => (v as bigint | null) ?? 0n);
      return arrow.makeData({
        type: target as arrow.Int64,
        length,
        nullBitmap,
        nullCount,
        data: data as never,
      });
    }
    case "decimal":
      return arrow.makeData({
        type: target as arrow.Decimal,
        length,
        nullBitmap,
        nullCount,
        data: decimalWords(values),
      });
    default: {
      const builder = arrow.makeBuilder({ type: target, nullValues: [null] });
      for (const v of values) builder.append(builderValue(type, v) as never);
      return builder.finish().flush();
    }
  }
}

/** A nested value in the form Arrow's builders take. */
function builderValue(type: SparkType, value: unknown): unknown {
  if (value === null) return null;
  switch (type.kind) {
    case "array":
      return (value as unknown[]).map((e) => builderValue(type.element, e));
    case "map":
      return new Map(
        (value as [unknown, unknown][]).map((
          [k, v],
        ) => [builderValue(type.key, k), builderValue(type.value, v)]),
      );
    case "struct":
      return Object.fromEntries(
        (value as unknown[]).map((
          v,
          i,
        ) => [type.fields[i]!.name, builderValue(type.fields[i]!.type, v)]),
      );
    case "decimal":
      return decimalWords([value]);
    case "date":
      return (value as number) * 86_400_000;
    case "timestamp":
    case "timestamp_ntz":
      return Number(value as bigint) / 1000;
    default:
      return value;
  }
}

/** The IPC stream bytes of a schema alone, without the end-of-stream marker. */
function ipcSchema(schema: arrow.Schema): Uint8Array {
  const writer = new arrow.RecordBatchStreamWriter();
  writer.reset(undefined, schema);
  writer.finish();
  const bytes = writer.toUint8Array(true);
  return bytes.subarray(0, bytes.length - 8);
}

function ttypeId(type: SparkType): number {
  const id = T.TTypeId;
  switch (type.kind) {
    case "boolean":
      return id.BOOLEAN_TYPE;
    case "tinyint":
      return id.TINYINT_TYPE;
    case "smallint":
      return id.SMALLINT_TYPE;
    case "int":
      return id.INT_TYPE;
    case "bigint":
      return id.BIGINT_TYPE;
    case "float":
      return id.FLOAT_TYPE;
    case "double":
      return id.DOUBLE_TYPE;
    case "decimal":
      return id.DECIMAL_TYPE;
    case "binary":
      return id.BINARY_TYPE;
    case "date":
      return id.DATE_TYPE;
    case "timestamp":
    case "timestamp_ntz":
      return id.TIMESTAMP_TYPE;
    case "interval":
      return type.yearMonth ? id.INTERVAL_YEAR_MONTH_TYPE : id.INTERVAL_DAY_TIME_TYPE;
    case "array":
      return id.ARRAY_TYPE;
    case "map":
      return id.MAP_TYPE;
    case "struct":
      return id.STRUCT_TYPE;
    case "void":
      return id.NULL_TYPE;
    default:
      return id.STRING_TYPE;
  }
}

function hiveSchema(columns: readonly PlannedColumn[]): TTableSchema {
  return {
    columns: columns.map((c, i) => ({
      columnName: c.name,
      position: i + 1,
      comment: "",
      typeDesc: {
        types: [{
          primitiveEntry: {
            type: ttypeId(c.type),
            ...(c.type.kind === "decimal"
              ? {
                typeQualifiers: {
                  qualifiers: {
                    precision: { i32Value: c.type.precision },
                    scale: { i32Value: c.type.scale },
                  },
                },
              }
              : {}),
          },
        }],
      },
    })),
  } as TTableSchema;
}

// ---------------------------------------------------------------------------------------------------
// The Thrift service

const OK: TStatus = { statusCode: T.TStatusCode.SUCCESS_STATUS };

function errorStatus(message: string, sqlState?: string): TStatus {
  return {
    statusCode: T.TStatusCode.ERROR_STATUS,
    errorMessage: message,
    displayMessage: message,
    ...(sqlState === undefined ? {} : { sqlState }),
  };
}

function invalidHandle(what: string): TStatus {
  return { statusCode: T.TStatusCode.INVALID_HANDLE_STATUS, errorMessage: `Invalid ${what}` };
}

/** A fresh handle: 16 random bytes that form a valid (version 4) UUID, as the driver requires. */
function newHandleId(): { guid: Buffer; secret: Buffer } {
  const uuid = () => Buffer.from(crypto.randomUUID().replaceAll("-", ""), "hex");
  return { guid: uuid(), secret: uuid() };
}

function keyOf(guid: Buffer | Uint8Array | undefined): string {
  return guid === undefined ? "" : Buffer.from(guid).toString("hex");
}

function int64Number(value: unknown): number | undefined {
  if (value === undefined || value === null) return undefined;
  return (value as { toNumber(allowImprecise?: boolean): number }).toNumber(true);
}

interface Session {
  readonly key: string;
  readonly catalog: string;
  readonly schema: string;
  timeZone: string;
  offsetMinutes: number;
  ansi: boolean;
  readonly operations: Set<string>;
}

type OperationState = "running" | "finished" | "error" | "canceled";

interface Operation {
  readonly key: string;
  readonly session: Session;
  readonly handle: TOperationHandle;
  state: OperationState;
  pollsLeft: number;
  error: { message: string; sqlState: string } | undefined;
  plan: Plan | undefined;
  arrowOptions: ArrowOptions;
  /** The next row to serve. */
  cursor: number;
  /** Set once the metadata is built: the result schema, Arrow schema and its IPC bytes. */
  metadata: { schema: arrow.Schema; ipcSchema: Uint8Array; hive: TTableSchema } | undefined;
  /** With {@link FakeThriftOptions.prefetch}: the next batch, made before it was asked for. */
  prefetched?: { start: number; count: number; batch: PreparedBatch } | undefined;
}

/** One `FetchResults` reply made ahead of time, or the failure making it met. */
type PreparedBatch =
  | { readonly end: number; readonly response: TFetchResultsResp }
  | { readonly error: { message: string; sqlState: string } };

function parseZone(zone: string): number | undefined {
  if (/^(utc|z|gmt|etc\/utc|etc\/gmt|\+00:?00|-00:?00)$/i.test(zone)) return 0;
  const match = /^(?:utc|gmt)?([+-])(\d{1,2})(?::?(\d{2}))?$/i.exec(zone);
  if (match === null) return undefined;
  const minutes = Number(match[2]) * 60 + Number(match[3] ?? "0");
  if (minutes > 18 * 60) return undefined;
  return match[1] === "-" ? -minutes : minutes;
}

class FakeThriftService implements FakeThrift {
  readonly statements: string[] = [];
  readonly executions: FakeExecution[] = [];
  readonly sessions = { opened: 0, closed: 0, configurations: [] as Record<string, string>[] };
  readonly operations = { opened: 0, closed: 0, cancelled: 0 };
  readonly rowsGenerated = new Map<string, number>();
  readonly #workspace: FakeWorkspace;
  readonly #batchRows: number;
  readonly #prefetch: boolean;
  readonly #sessionTimeZone: string;
  readonly #ansi: boolean;
  readonly #runningPolls: (statement: string) => number;
  readonly #sessions = new Map<string, Session>();
  readonly #operations = new Map<string, Operation>();
  readonly #processor: InstanceType<typeof databricksThrift.TCLIService.Processor>;
  #nextFailure: { message: string; sqlState: string } | undefined;

  constructor(workspace: FakeWorkspace, options: FakeThriftOptions) {
    this.#workspace = workspace;
    this.#batchRows = options.batchRows ?? 10_000;
    this.#prefetch = options.prefetch ?? false;
    if (!Number.isSafeInteger(this.#batchRows) || this.#batchRows < 1) {
      throw new RangeError(`Cannot serve batches of ${this.#batchRows} rows`);
    }
    this.#sessionTimeZone = options.sessionTimeZone ?? "UTC";
    if (parseZone(this.#sessionTimeZone) === undefined) {
      throw new RangeError(`Cannot start sessions in time zone "${this.#sessionTimeZone}"`);
    }
    this.#ansi = options.ansiMode ?? true;
    const polls = options.runningPolls ?? 0;
    this.#runningPolls = typeof polls === "number" ? () => polls : polls;
    this.#processor = new databricksThrift.TCLIService.Processor(this.#handlers());
    // Callers mount `fake.handle` as a plain function.
    this.handle = this.handle.bind(this);
  }

  failNextStatement(message: string, sqlState = "XX000"): void {
    this.#nextFailure = { message, sqlState };
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "POST") {
      res.writeHead(405, { allow: "POST" });
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("error", () => res.destroy());
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const output = new thrift.TBinaryProtocol(
        new thrift.TBufferedTransport(undefined, (reply: Buffer) => {
          res.writeHead(200, {
            "content-type": "application/x-thrift",
            "content-length": String(reply.length),
          });
          res.end(reply);
        }),
      );
      thrift.TBufferedTransport.receiver((transport: unknown) => {
        try {
          this.#processor.process(new thrift.TBinaryProtocol(transport), output);
        } catch {
          // A body that is not one complete Thrift message.
          res.writeHead(400, { "content-type": "text/plain" });
          res.end("Cannot read the Thrift request");
        }
      })(body);
    });
  }

  /** The handler object the generated Processor dispatches to; every method returns a promise. */
  #handlers(): object {
    const unsupported = (name: string) => () =>
      Promise.resolve({
        status: errorStatus(`The fake warehouse does not implement ${name}`, "0A000"),
      });
    return {
      OpenSession: (req: TOpenSessionReq) => Promise.resolve(this.#openSession(req)),
      CloseSession: (req: { sessionHandle: TSessionHandle }) =>
        Promise.resolve(this.#closeSession(req.sessionHandle)),
      ExecuteStatement: (req: TExecuteStatementReq) => Promise.resolve(this.#execute(req)),
      GetOperationStatus: (req: { operationHandle: TOperationHandle }) =>
        Promise.resolve(this.#status(req.operationHandle)),
      GetResultSetMetadata: (req: { operationHandle: TOperationHandle }) =>
        Promise.resolve(this.#metadata(req.operationHandle)),
      FetchResults: (req: TFetchResultsReq) => Promise.resolve(this.#fetch(req)),
      CancelOperation: (req: { operationHandle: TOperationHandle }) =>
        Promise.resolve(this.#cancel(req.operationHandle)),
      CloseOperation: (req: { operationHandle: TOperationHandle }) =>
        Promise.resolve(this.#closeOperation(req.operationHandle)),
      GetInfo: unsupported("GetInfo"),
      GetTypeInfo: unsupported("GetTypeInfo"),
      GetCatalogs: unsupported("GetCatalogs"),
      GetSchemas: unsupported("GetSchemas"),
      GetTables: unsupported("GetTables"),
      GetTableTypes: unsupported("GetTableTypes"),
      GetColumns: unsupported("GetColumns"),
      GetFunctions: unsupported("GetFunctions"),
      GetPrimaryKeys: unsupported("GetPrimaryKeys"),
      GetCrossReference: unsupported("GetCrossReference"),
      GetDelegationToken: unsupported("GetDelegationToken"),
      CancelDelegationToken: unsupported("CancelDelegationToken"),
      RenewDelegationToken: unsupported("RenewDelegationToken"),
    };
  }

  #openSession(req: TOpenSessionReq) {
    const protocol = T.TProtocolVersion.SPARK_CLI_SERVICE_PROTOCOL_V8;
    const catalog = req.initialNamespace?.catalogName ?? this.#workspace.catalog;
    if (catalog.toLowerCase() !== this.#workspace.catalog.toLowerCase()) {
      return {
        status: errorStatus(
          `[NO_SUCH_CATALOG_EXCEPTION] Catalog '${catalog}' was not found. SQLSTATE: 42704`,
          "42704",
        ),
        serverProtocolVersion: protocol,
      };
    }
    const configuration = { ...(req.configuration ?? {}) };
    this.sessions.opened++;
    this.sessions.configurations.push(configuration);
    const id = newHandleId();
    const session: Session = {
      key: keyOf(id.guid),
      catalog: this.#workspace.catalog,
      schema: req.initialNamespace?.schemaName ?? "default",
      timeZone: this.#sessionTimeZone,
      offsetMinutes: parseZone(this.#sessionTimeZone)!,
      ansi: this.#ansi,
      operations: new Set(),
    };
    this.#sessions.set(session.key, session);
    return {
      status: OK,
      serverProtocolVersion: protocol,
      sessionHandle: { sessionId: id },
      canUseMultipleCatalogs: true,
    };
  }

  #closeSession(handle: TSessionHandle) {
    const session = this.#sessions.get(keyOf(handle?.sessionId?.guid));
    if (session === undefined) return { status: invalidHandle("SessionHandle") };
    for (const key of session.operations) {
      this.#operations.delete(key);
      this.operations.closed++;
    }
    this.#sessions.delete(session.key);
    this.sessions.closed++;
    return { status: OK };
  }

  #execute(req: TExecuteStatementReq) {
    const session = this.#sessions.get(keyOf(req.sessionHandle?.sessionId?.guid));
    if (session === undefined) return { status: invalidHandle("SessionHandle") };
    const statement = req.statement ?? "";
    this.statements.push(statement);
    this.executions.push({
      statement,
      queryTimeoutSeconds: int64Number(req.queryTimeout),
      canDownloadResult: req.canDownloadResult,
      canDecompressLZ4Result: req.canDecompressLZ4Result,
      directResultsMaxRows: int64Number(req.getDirectResults?.maxRows),
    });
    const id = newHandleId();
    const handle: TOperationHandle = {
      operationId: id,
      operationType: T.TOperationType.EXECUTE_STATEMENT,
      hasResultSet: true,
    } as TOperationHandle;
    const native = req.useArrowNativeTypes;
    const operation: Operation = {
      key: keyOf(id.guid),
      session,
      handle,
      state: "running",
      pollsLeft: this.#runningPolls(statement),
      error: undefined,
      plan: undefined,
      arrowOptions: {
        timestamps: native?.timestampAsArrow ?? false,
        decimals: native?.decimalAsArrow ?? false,
        complex: native?.complexTypesAsArrow ?? false,
      },
      cursor: 0,
      metadata: undefined,
    };
    this.#operations.set(operation.key, operation);
    session.operations.add(operation.key);
    this.operations.opened++;

    try {
      const failure = this.#nextFailure;
      this.#nextFailure = undefined;
      if (failure !== undefined) throw new FakeSqlError(failure.message, failure.sqlState);
      if (!req.canReadArrowResult) {
        throw new FakeSqlError(
          "[UNSUPPORTED_FEATURE] The fake warehouse serves Arrow results only. SQLSTATE: 0A000",
          "0A000",
        );
      }
      if ((req.parameters ?? []).length > 0) {
        throw new FakeSqlError(
          "[UNSUPPORTED_FEATURE] The fake warehouse takes no query parameters. SQLSTATE: 0A000",
          "0A000",
        );
      }
      operation.plan = this.#plan(parseStatement(statement), session);
      if (operation.pollsLeft <= 0) operation.state = "finished";
    } catch (e) {
      operation.state = "error";
      operation.error = e instanceof FakeSqlError
        ? { message: e.message, sqlState: e.sqlState }
        : { message: `The fake warehouse failed: ${String(e)}`, sqlState: "XX000" };
    }

    const maxRows = int64Number(req.getDirectResults?.maxRows);
    if (maxRows === undefined) return { status: OK, operationHandle: handle };
    // As a warehouse does when the client asks for direct results: the status, and once the statement
    // has finished the metadata and the first rows too; a result that fits is closed at once.
    const operationStatus = this.#statusOf(operation, false);
    if (operation.state !== "finished") {
      return { status: OK, operationHandle: handle, directResults: { operationStatus } };
    }
    const resultSetMetadata = this.#metadataOf(operation);
    const resultSet = this.#fetchFrom(operation, maxRows);
    if (resultSet.status.statusCode === T.TStatusCode.ERROR_STATUS) {
      return {
        status: OK,
        operationHandle: handle,
        directResults: { operationStatus: this.#statusOf(operation, false) },
      };
    }
    const done = resultSet.hasMoreRows !== true;
    if (done) this.#forget(operation);
    return {
      status: OK,
      operationHandle: handle,
      directResults: {
        operationStatus,
        resultSetMetadata,
        resultSet,
        ...(done ? { closeOperation: { status: OK } } : {}),
      },
    };
  }

  #plan(statement: Statement, session: Session): Plan {
    if (statement.kind === "set") {
      const key = statement.key.toLowerCase();
      if (key === "timezone" || key === "spark.sql.session.timezone") {
        const offset = parseZone(statement.value);
        if (offset === undefined) {
          throw new FakeSqlError(
            `[INVALID_CONF_VALUE.TIME_ZONE] The value '${statement.value}' in the config ` +
              `"spark.sql.session.timeZone" is invalid (the fake knows only UTC and fixed offsets). ` +
              "SQLSTATE: 22022",
            "22022",
          );
        }
        session.timeZone = statement.value;
        session.offsetMinutes = offset;
      } else if (key === "ansi_mode" || key === "spark.sql.ansi.enabled") {
        session.ansi = statement.value.toLowerCase() === "true";
      }
      const name = key === "timezone" ? "spark.sql.session.timeZone" : statement.key;
      const values = [name, statement.value];
      return {
        columns: ["key", "value"].map((column, i) => ({
          name: column,
          type: { kind: "string" },
          evaluate: () => values[i],
        })),
        rowCount: 1,
        row: () => [],
        tableName: undefined,
      };
    }

    if (statement.kind === "describe") {
      return describePlan(this.#lookUp(statement.table, session), statement.extended);
    }

    let table: FakeUcTable | undefined;
    let columns: { name: string; type: SparkType }[] | undefined;
    if (statement.from !== undefined) {
      table = this.#lookUp(statement.from, session);
      columns = table.columns.map((c) => ({ name: c.name, type: parseSparkType(c.type_text) }));
    }
    const used = new Set<number>();
    const planned = statement.items.map(({ expr, alias }): PlannedColumn => ({
      name: alias ?? exprText(expr),
      ...resolve(expr, columns, used),
    }));
    if (table === undefined || columns === undefined) {
      return { columns: planned, rowCount: 1, row: () => [], tableName: undefined };
    }
    const source = table;
    const types = columns.map((c) => c.type);
    const indexes = [...used];
    return {
      columns: planned,
      rowCount: fakeRowCount(source),
      tableName: source.name,
      row: (index) => {
        const stored = fakeRow(source, index);
        const row: unknown[] = new Array(types.length).fill(null);
        for (const i of indexes) row[i] = toInternal(types[i]!, stored[i]);
        return row;
      },
    };
  }

  /** Finds a table by a one- to three-part name, case-insensitively as Spark does. */
  #lookUp(parts: readonly string[], session: Session): FakeUcTable {
    const [catalog, schema, name] = parts.length === 3
      ? parts
      : parts.length === 2
      ? [session.catalog, ...parts]
      : [session.catalog, session.schema, ...parts];
    const same = (a: string | undefined, b: string) => a?.toLowerCase() === b.toLowerCase();
    let table: FakeUcTable | undefined;
    if (same(catalog, this.#workspace.catalog)) {
      table = this.#workspace.schemas.find((s) => same(schema, s.name))?.tables.find((t) =>
        same(name, t.name)
      );
    }
    if (table === undefined) throw tableOrViewNotFound(parts);
    return table;
  }

  #operation(handle: TOperationHandle | undefined): Operation | undefined {
    return this.#operations.get(keyOf(handle?.operationId?.guid));
  }

  #status(handle: TOperationHandle) {
    const operation = this.#operation(handle);
    if (operation === undefined) return { status: invalidHandle("OperationHandle") };
    return this.#statusOf(operation, true);
  }

  #statusOf(operation: Operation, poll: boolean): TGetOperationStatusResp {
    if (poll && operation.state === "running") {
      operation.pollsLeft--;
      if (operation.pollsLeft <= 0) operation.state = "finished";
    }
    const states = T.TOperationState;
    const state = {
      running: states.RUNNING_STATE,
      finished: states.FINISHED_STATE,
      error: states.ERROR_STATE,
      canceled: states.CANCELED_STATE,
    }[operation.state];
    const error = operation.error;
    return {
      status: OK,
      operationState: state,
      hasResultSet: operation.state !== "error",
      ...(error === undefined
        ? {}
        : { errorMessage: error.message, displayMessage: error.message, sqlState: error.sqlState }),
    } as TGetOperationStatusResp;
  }

  #metadata(handle: TOperationHandle) {
    const operation = this.#operation(handle);
    if (operation === undefined) return { status: invalidHandle("OperationHandle") };
    if (operation.state !== "finished") {
      return { status: errorStatus(`The operation is not finished (${operation.state})`) };
    }
    return this.#metadataOf(operation);
  }

  #metadataOf(operation: Operation): TGetResultSetMetadataResp {
    const metadata = this.#arrowMetadata(operation);
    return {
      status: OK,
      schema: metadata.hive,
      resultFormat: T.TSparkRowSetType.ARROW_BASED_SET,
      lz4Compressed: false,
      arrowSchema: Buffer.from(metadata.ipcSchema),
      isStagingOperation: false,
    } as TGetResultSetMetadataResp;
  }

  #arrowMetadata(operation: Operation): NonNullable<Operation["metadata"]> {
    if (operation.metadata === undefined) {
      const columns = operation.plan!.columns;
      const schema = new arrow.Schema(
        columns.map((c) =>
          new arrow.Field(
            c.name,
            arrowType(c.type, operation.arrowOptions, operation.session.timeZone),
            true,
          )
        ),
      );
      operation.metadata = { schema, ipcSchema: ipcSchema(schema), hive: hiveSchema(columns) };
    }
    return operation.metadata;
  }

  #fetch(req: TFetchResultsReq) {
    const operation = this.#operation(req.operationHandle);
    if (operation === undefined) return { status: invalidHandle("OperationHandle") };
    if (operation.state === "error") {
      return { status: errorStatus(operation.error!.message, operation.error!.sqlState) };
    }
    if (operation.state !== "finished") {
      return { status: errorStatus(`The operation is not finished (${operation.state})`) };
    }
    if (req.fetchType === 1) {
      // Operation logs: a warehouse has none to give.
      return {
        status: OK,
        hasMoreRows: false,
        results: { startRowOffset: new Int64(0), rows: [] },
      };
    }
    if (req.orientation === T.TFetchOrientation.FETCH_FIRST) operation.cursor = 0;
    return this.#fetchFrom(operation, int64Number(req.maxRows) ?? this.#batchRows);
  }

  /** Serves up to `maxRows` rows (and at most one batch) from the operation's cursor. */
  #fetchFrom(operation: Operation, maxRows: number): TFetchResultsResp {
    const start = operation.cursor;
    const count = Math.max(0, Math.min(maxRows > 0 ? maxRows : this.#batchRows, this.#batchRows));
    const ready = operation.prefetched;
    operation.prefetched = undefined;
    const batch = ready !== undefined && ready.start === start && ready.count === count
      ? ready.batch
      : this.#batch(operation, start, count);
    if ("error" in batch) {
      // A runtime failure (such as a stored value the type does not allow) fails the statement.
      operation.state = "error";
      operation.error = batch.error;
      return {
        status: errorStatus(batch.error.message, batch.error.sqlState),
      } as TFetchResultsResp;
    }
    operation.cursor = batch.end;
    if (this.#prefetch && batch.response.hasMoreRows) {
      // As a warehouse has its result ready: the next batch is made while the client reads this one
      // (after this reply is written, since timers run after the promise callbacks that write it).
      setTimeout(() => {
        if (this.#operations.get(operation.key) !== operation || operation.state !== "finished") {
          return;
        }
        if (operation.cursor !== batch.end || operation.prefetched !== undefined) return;
        operation.prefetched = {
          start: batch.end,
          count,
          batch: this.#batch(operation, batch.end, count),
        };
      }, 0);
    }
    return batch.response;
  }

  /** Rows `start` to `start + count` (at most) of the operation's result as one Arrow batch. */
  #batch(operation: Operation, start: number, count: number): PreparedBatch {
    const plan = operation.plan!;
    const end = Math.min(plan.rowCount, start + count);
    const ctx: EvalContext = {
      offsetMinutes: operation.session.offsetMinutes,
      ansi: operation.session.ansi,
    };
    const values: unknown[][] = plan.columns.map(() => new Array(end - start));
    try {
      for (let index = start; index < end; index++) {
        const row = plan.row(index);
        for (let c = 0; c < plan.columns.length; c++) {
          values[c]![index - start] = plan.columns[c]!.evaluate(row, ctx);
        }
      }
    } catch (e) {
      return {
        error: e instanceof FakeSqlError
          ? { message: e.message, sqlState: e.sqlState }
          : { message: `The fake warehouse failed: ${String(e)}`, sqlState: "XX000" },
      };
    }
    if (plan.tableName !== undefined) {
      const seen = this.rowsGenerated.get(plan.tableName) ?? 0;
      this.rowsGenerated.set(plan.tableName, Math.max(seen, end));
    }
    const arrowBatches = [];
    if (end > start) {
      const metadata = this.#arrowMetadata(operation);
      const children = plan.columns.map((c, i) =>
        arrowColumn(c.type, metadata.schema.fields[i]!.type, values[i]!, ctx)
      );
      const batch = new arrow.RecordBatch(
        metadata.schema,
        arrow.makeData({
          type: new arrow.Struct(metadata.schema.fields),
          length: end - start,
          nullCount: 0,
          children,
        }),
      );
      const stream = arrow.RecordBatchStreamWriter.writeAll([batch]).toUint8Array(true);
      const message = stream.subarray(metadata.ipcSchema.length, stream.length - 8);
      arrowBatches.push({
        batch: Buffer.from(message.buffer, message.byteOffset, message.length),
        rowCount: new Int64(end - start),
      });
    }
    return {
      end,
      response: {
        status: OK,
        hasMoreRows: end < plan.rowCount,
        results: { startRowOffset: new Int64(start), rows: [], arrowBatches },
      } as unknown as TFetchResultsResp,
    };
  }

  #cancel(handle: TOperationHandle) {
    const operation = this.#operation(handle);
    if (operation === undefined) return { status: invalidHandle("OperationHandle") };
    if (operation.state === "running" || operation.state === "finished") {
      operation.state = "canceled";
      this.operations.cancelled++;
    }
    return { status: OK };
  }

  #closeOperation(handle: TOperationHandle) {
    const operation = this.#operation(handle);
    if (operation === undefined) return { status: invalidHandle("OperationHandle") };
    this.#forget(operation);
    return { status: OK };
  }

  #forget(operation: Operation): void {
    this.#operations.delete(operation.key);
    operation.session.operations.delete(operation.key);
    this.operations.closed++;
  }
}

// ---------------------------------------------------------------------------------------------------
// A small HTTPS server for tests

/** An HTTPS server in front of a {@link FakeThrift}; see {@link startFakeThriftServer}. */
export interface FakeThriftServer extends AsyncDisposable {
  readonly port: number;
  /** The warehouse path POSTs go to. */
  readonly path: string;
  /** The bearer tokens of every request, in order (fake tokens only; never log them). */
  readonly tokens: string[];
  close(): Promise<void>;
}

/**
 * Serves a {@link FakeThrift} over HTTPS on 127.0.0.1 with a test certificate: POSTs to `path` with an
 * accepted `Authorization: Bearer` token go to the fake, a missing or refused token gets 401 (as a
 * workspace answers), any other path 404.
 */
export async function startFakeThriftServer(options: {
  readonly thrift: FakeThrift;
  readonly certificates: TestCertificates;
  readonly acceptToken: (token: string) => boolean;
  readonly path?: string;
}): Promise<FakeThriftServer> {
  const path = options.path ?? "/sql/1.0/warehouses/fake";
  const tokens: string[] = [];
  const handle = options.thrift.handle;
  const server = https.createServer(
    { cert: options.certificates.cert, key: options.certificates.key },
    (req, res) => {
      const url = new URL(req.url ?? "/", "https://127.0.0.1");
      if (req.method !== "POST" || url.pathname !== path) {
        res.writeHead(404, { "content-type": "text/plain" });
        res.end("Not found");
        return;
      }
      const match = /^Bearer (.+)$/.exec(req.headers.authorization ?? "");
      if (match !== null) tokens.push(match[1]!);
      if (match === null || !options.acceptToken(match[1]!)) {
        req.resume();
        res.writeHead(401, { "content-type": "text/plain" });
        res.end("Unauthorized");
        return;
      }
      handle(req, res);
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closed;
  };
  return { port, path, tokens, close, [Symbol.asyncDispose]: close };
}
