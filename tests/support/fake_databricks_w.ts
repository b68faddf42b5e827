/**
 * The W and EDGE tables of `w_table.ts` as a fake Databricks workspace holds them: Unity Catalog column
 * types (`TestColumn.databricks`, the Databricks-only EDGE columns) and values in the stored form of
 * `fake_databricks_workspace.ts` (LONG as `bigint`, DECIMAL as digits, DATE and TIMESTAMP as
 * astronomical-year text in UTC, BINARY as bytes, complex types as JS arrays and objects). W is a
 * {@link FakeRowSource}: its rows are made as they are read, so a million-row table costs no memory.
 *
 * Also a process of its own serving W and EDGE, for the benchmark (the fake's CPU is then counted apart
 * from the client's):
 * `deno run --allow-net=127.0.0.1 --allow-env --allow-read --allow-write --allow-run=openssl
 * --allow-sys=osRelease tests/support/fake_databricks_w.ts <rows> <client id> <client secret>
 * [<rows per Arrow batch>]` prints
 * one line, `{"port": <port>, "caCertificate": "<PEM>"}`, once it listens, and serves the workspace of
 * {@link startFakeWWorkspace} until it gets SIGTERM or SIGINT.
 *
 * @module
 */
import { parseBinary } from "../../domain/logical_type.ts";
import { type FakeDatabricks, startFakeDatabricks } from "./fake_databricks.ts";
import {
  createFakeThrift,
  type FakeThrift,
  parseSparkType,
  type SparkType,
} from "./fake_databricks_thrift.ts";
import type {
  FakeRowSource,
  FakeSparkValue,
  FakeUcColumn,
  FakeUcSchema,
  FakeUcTable,
  FakeWorkspace,
} from "./fake_databricks_workspace.ts";
import {
  EDGE_COLUMNS,
  EDGE_ENGINE_COLUMNS,
  EDGE_TABLE,
  edgeCasesFor,
  W_COLUMNS,
  W_TABLE,
  wExpectedRow,
} from "./w_table.ts";
import { civilFromDays, daysFromCivil } from "../../domain/civil_date.ts";

import { FAKE_W_CATALOG, FAKE_W_HTTP_PATH, FAKE_W_SCHEMA } from "./fake_databricks_w_names.ts";

/** The catalog, schema and warehouse path the process serves. */
export { FAKE_W_CATALOG, FAKE_W_HTTP_PATH, FAKE_W_SCHEMA };

/** Turns one canonical value (or an edge case's input) into what a Databricks table stores. */
export type StoredConverter = (text: string) => FakeSparkValue;

/**
 * The converter for a column of this Unity Catalog `type_text`. Canonical text is taken as PostgreSQL
 * writes it: dates and timestamps may end in ` BC`, timestamps in an offset (`+00`, `+02`, `-05:30`),
 * which becomes UTC as Spark's TIMESTAMP input does (no offset: UTC). A complex value is the JSON of what the table holds,
 * with LONG, DECIMAL, DATE and TIMESTAMP values as strings (JSON numbers cannot carry them exactly),
 * BINARY as `\x` hex and DOUBLE/FLOAT as numbers or `"NaN"`, `"Infinity"`, `"-Infinity"`.
 *
 * @throws {SyntaxError} when the type text is not a Spark type.
 */
export function databricksStoredConverter(typeText: string): StoredConverter {
  const type = parseSparkType(typeText);
  switch (type.kind) {
    case "array":
    case "map":
    case "struct":
      return (text) => fromJson(type, JSON.parse(text));
    default:
      return (text) => fromText(type, text);
  }
}

function fromText(type: SparkType, text: string): FakeSparkValue {
  switch (type.kind) {
    case "boolean":
      if (text !== "true" && text !== "false") throw notCanonical(type, text);
      return text === "true";
    case "tinyint":
    case "smallint":
    case "int":
    case "float":
    case "double":
      return Number(text);
    case "bigint":
      return BigInt(text);
    case "binary":
      return parseBinary(text);
    case "date":
      return astronomicalDate(text);
    case "timestamp":
      return utcTimestamp(text);
    case "timestamp_ntz":
      return astronomicalDate(text);
    default:
      // DECIMAL digits, STRING, CHAR, VARCHAR and INTERVAL text are stored as written.
      return text;
  }
}

function fromJson(type: SparkType, value: unknown): FakeSparkValue {
  if (value === null || value === undefined) return null;
  switch (type.kind) {
    case "array":
      if (!Array.isArray(value)) throw notCanonical(type, value);
      return value.map((e) => fromJson(type.element, e));
    case "map":
    case "struct": {
      if (typeof value !== "object" || Array.isArray(value)) throw notCanonical(type, value);
      const entries = Object.entries(value as Record<string, unknown>);
      if (type.kind === "map") {
        return Object.fromEntries(entries.map(([k, v]) => [k, fromJson(type.value, v)]));
      }
      const known = new Set(type.fields.map((f) => f.name));
      const unknown = entries.find(([k]) => !known.has(k));
      if (unknown !== undefined) throw notCanonical(type, unknown[0]);
      return Object.fromEntries(
        type.fields.map((
          f,
        ) => [f.name, fromJson(f.type, (value as Record<string, unknown>)[f.name])]),
      );
    }
    case "boolean":
      if (typeof value !== "boolean") throw notCanonical(type, value);
      return value;
    case "tinyint":
    case "smallint":
    case "int":
      if (typeof value !== "number") throw notCanonical(type, value);
      return value;
    case "float":
    case "double":
      if (typeof value !== "number" && !["NaN", "Infinity", "-Infinity"].includes(String(value))) {
        throw notCanonical(type, value);
      }
      return Number(value);
    default:
      if (typeof value !== "string") throw notCanonical(type, value);
      return fromText(type, value);
  }
}

function notCanonical(type: SparkType, value: unknown): SyntaxError {
  return new SyntaxError(
    `Cannot store ${JSON.stringify(value)} in a ${type.kind} column of the fake workspace`,
  );
}

/** `0044-03-15[ 12:00:00] BC` → `-0043-03-15[ 12:00:00]` (year 0 is 1 BC); other text unchanged. */
function astronomicalDate(text: string): string {
  if (!text.endsWith(" BC")) return text;
  const body = text.slice(0, -3);
  const dash = body.indexOf("-");
  const year = 1 - Number(body.slice(0, dash));
  return `${year < 0 ? "-" : ""}${String(Math.abs(year)).padStart(4, "0")}${body.slice(dash)}`;
}

const OFFSET = /([+-])(\d{2})(?::?(\d{2}))?$/;

/**
 * A timestamptz as UTC wall-clock text: `2020-06-01 12:00:00+02` → `2020-06-01 10:00:00`; text without
 * an offset is taken as UTC.
 */
function utcTimestamp(text: string): string {
  const bc = text.endsWith(" BC");
  const body = bc ? text.slice(0, -3) : text;
  const match = OFFSET.exec(body);
  if (match === null) return astronomicalDate(text); // already UTC, as inside a complex value
  const local = astronomicalDate(body.slice(0, match.index) + (bc ? " BC" : ""));
  const minutes = (Number(match[2]) * 60 + Number(match[3] ?? "0")) * (match[1] === "-" ? -1 : 1);
  if (minutes === 0) return local;
  // Shift through microseconds since 1970: exact for any year.
  const parsed = /^(-?\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(\.\d+)?$/.exec(local);
  if (parsed === null) throw new SyntaxError(`Cannot read timestamp "${text}"`);
  const [, y, mo, d, h, mi, s, fraction = ""] = parsed;
  const days = daysFromCivil(Number(y), Number(mo), Number(d));
  const seconds = days * 86_400 + Number(h) * 3_600 + Number(mi) * 60 + Number(s) - minutes * 60;
  const day = Math.floor(seconds / 86_400);
  const rest = seconds - day * 86_400;
  const [year, month, date] = civilFromDays(day);
  const yearText = `${year < 0 ? "-" : ""}${String(Math.abs(year)).padStart(4, "0")}`;
  return `${yearText}-${two(month)}-${two(date)} ${two(Math.floor(rest / 3_600))}:${
    two(Math.floor(rest / 60) % 60)
  }:${two(rest % 60)}${fraction}`;
}

function two(n: number): string {
  return String(n).padStart(2, "0");
}

// ---------------------------------------------------------------------------------------------------

/** The W table (rows 1..`rows`, made as they are read) with Unity Catalog's types. */
export function databricksWTable(rows: number, name: string = W_TABLE): FakeUcTable {
  const converters = W_COLUMNS.map((c) => databricksStoredConverter(c.databricks.type_text));
  const source: FakeRowSource = {
    count: rows,
    row(index) {
      const canonical = wExpectedRow(index + 1);
      const stored: FakeSparkValue[] = new Array(canonical.length);
      for (let i = 0; i < canonical.length; i++) {
        const v = canonical[i]!;
        stored[i] = v === null ? null : converters[i]!(v);
      }
      return stored;
    },
  };
  return {
    name,
    table_type: "MANAGED",
    columns: W_COLUMNS.map((c): FakeUcColumn => ({
      name: c.name,
      ...c.databricks,
      nullable: c.name !== "id",
    })),
    primaryKey: ["id"],
    rows: source,
  };
}

/** The Databricks EDGE table's columns: the shared ones, then the Databricks-only ones. */
export function databricksEdgeColumns(): FakeUcColumn[] {
  return [
    ...EDGE_COLUMNS.map((c) => ({ name: c.name, ...c.databricks, nullable: c.name !== "id" })),
    ...EDGE_ENGINE_COLUMNS.filter((c) => c.engine === "databricks").map((c) => ({
      name: c.name,
      type_name: c.typeName!,
      type_text: c.type,
    })),
  ];
}

/** The EDGE table with the cases Databricks holds, as stored. */
export function databricksEdgeTable(name: string = EDGE_TABLE): FakeUcTable {
  const columns = databricksEdgeColumns();
  const converters = columns.map((c) => databricksStoredConverter(c.type_text));
  return {
    name,
    table_type: "MANAGED",
    columns,
    primaryKey: ["id"],
    rows: edgeCasesFor("databricks").map((c) =>
      columns.map((column, i) =>
        column.name === "id"
          ? c.id
          : column.name === c.column
          ? converters[i]!(c.input ?? c.expected!)
          : null
      )
    ),
  };
}

/** A schema holding W (`wRows` rows) and EDGE. */
export function databricksTablesSchema(name: string, wRows: number): FakeUcSchema {
  return { name, tables: [databricksWTable(wRows), databricksEdgeTable()] };
}

/**
 * Starts the fake workspace the benchmark runs: W (`rows` rows) and EDGE in {@link FAKE_W_CATALOG}.
 * {@link FAKE_W_SCHEMA}, served in Arrow batches of up to `batchRows` rows, each made while the client
 * reads the one before (`prefetch`), as a warehouse has its result ready.
 */
export async function startFakeWWorkspace(options: {
  readonly rows: number;
  readonly clientId: string;
  readonly clientSecret: string;
  readonly batchRows: number;
}): Promise<{ readonly server: FakeDatabricks; readonly thrift: FakeThrift }> {
  const workspace: FakeWorkspace = {
    catalog: FAKE_W_CATALOG,
    clientId: options.clientId,
    clientSecret: options.clientSecret,
    schemas: [databricksTablesSchema(FAKE_W_SCHEMA, options.rows)],
  };
  const thrift = createFakeThrift(workspace, { batchRows: options.batchRows, prefetch: true });
  const server = await startFakeDatabricks(workspace, { thrift: thrift.handle });
  return { server, thrift };
}

if (import.meta.main) {
  const [rowsText = "", clientId = "", clientSecret = "", batchText = "100000"] = Deno.args;
  const rows = Number(rowsText);
  const batchRows = Number(batchText);
  if (
    !Number.isSafeInteger(rows) || rows < 0 || clientId === "" || clientSecret === "" ||
    !Number.isSafeInteger(batchRows) || batchRows < 1
  ) {
    throw new TypeError(
      "Usage: fake_databricks_w.ts <rows> <client id> <client secret> [<rows per Arrow batch>]",
    );
  }
  const { server } = await startFakeWWorkspace({ rows, clientId, clientSecret, batchRows });
  const stop = async () => {
    await server.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  Deno.stdout.writeSync(
    new TextEncoder().encode(
      `${JSON.stringify({ port: server.port, caCertificate: server.caCertificate })}\n`,
    ),
  );
}
