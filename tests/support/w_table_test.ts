import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { formatDouble } from "../../domain/logical_type.ts";
import {
  EDGE_CASES,
  edgeCasesFor,
  edgeColumnsFor,
  edgeExpectedRows,
  edgeMssqlRows,
  logicalTypeIn,
  W_COLUMNS,
  wExpectedRow,
} from "./w_table.ts";

/**
 * The W row as the SQL of §F.3 defines it, transcribed with BigInt and `Date` and no shortcuts: the oracle
 * for the fast {@link wExpectedRow}.
 */
function referenceRow(id: number): (string | null)[] {
  const g = BigInt(id);
  const md5 = createHash("md5").update(String(id)).digest("hex");
  const cents = (g * 137n) % 100_000_000n;
  const divideRounded = (n: bigint, d: bigint) => (n % d) * 2n >= d ? n / d + 1n : n / d;
  const fixed = (units: bigint, scale: number) => {
    const factor = 10n ** BigInt(scale);
    return `${units / factor}.${String(units % factor).padStart(scale, "0")}`;
  };
  // PostgreSQL's select_div_scale for g / 3.0.
  let weight = 0;
  let first = g;
  while (first >= 10_000n) {
    first /= 10_000n;
    weight++;
  }
  const qweight = first <= 3n ? weight - 1 : weight;
  const scale = Math.min(Math.max(16 - qweight * 4, 1), 1_000);
  const ratio = fixed(divideRounded(g * 10n ** BigInt(scale), 3n), scale);
  const iso = (ms: number) =>
    new Date(ms).toISOString().replace("T", " ").replace(/\.000Z$/, "").replace(/Z$/, "");
  return [
    String(id),
    String((g * 7n) % 100_000n),
    String(g % 30_000n),
    `${cents / 100n}.${String(cents % 100n).padStart(2, "0")}`,
    fixed(divideRounded(g * 31_415_926_535n, 7n), 10),
    formatDouble(Number(ratio)),
    id % 2 === 0 ? "true" : "false",
    `${iso(Date.UTC(2020, 0, 1) + id * 1_000)}+00`,
    iso(Date.UTC(2000, 0, 1) + (id % 9_000) * 86_400_000).slice(0, 10),
    `C${String(id % 99_999).padStart(8, "0")}`,
    `${md5} ${id % 1_000}`,
    id % 2 === 0 ? null : `v${id}`,
    `${md5.slice(0, 8)}-${md5.slice(8, 12)}-${md5.slice(12, 16)}-${md5.slice(16, 20)}-${
      md5.slice(20)
    }`,
  ];
}

Deno.test("wExpectedRow() equals the BigInt transcription of the W table's SQL", () => {
  const ids = [
    ...Array.from({ length: 30_000 }, (_, i) => i + 1),
    // Around the scale changes of g/3.0 and the plain-number limit of the price.
    ...[9_999, 10_000, 10_002, 29_999, 30_000, 39_999, 40_000, 99_999_999, 100_000_000],
    ...[1_999_999, 2_000_000, 2_000_001, 2_006_000, 3_000_001, 10_000_000, 123_456_789],
  ];
  for (const id of ids) assert.deepEqual(wExpectedRow(id), referenceRow(id), `W row ${id}`);
});

Deno.test("edgeCasesFor() keeps each engine's cases and columns apart", () => {
  const ids = (engine: "postgres" | "mysql" | "mssql") =>
    new Set(edgeCasesFor(engine).map((c) => c.id));
  const pg = ids("postgres");
  const my = ids("mysql");
  const ms = ids("mssql");
  const byLabel = (column: string, label: string) => {
    const found = EDGE_CASES.find((c) => c.column === column && c.label === label);
    assert.ok(found, `${column}: ${label}`);
    return found.id;
  };
  // Shared by all, held by two, held by one, and held by all but SQL Server.
  assert.ok([pg, my, ms].every((s) => s.has(byLabel("t", "comma"))));
  const offset = byLabel("tz", "another offset becomes UTC");
  assert.ok(pg.has(offset) && ms.has(offset) && !my.has(offset));
  const ticks = byLabel("ts", "100-nanosecond ticks");
  assert.ok(ms.has(ticks) && !pg.has(ticks) && !my.has(ticks));
  const denormal = byLabel("f8", "smallest denormal");
  assert.ok(pg.has(denormal) && my.has(denormal) && !ms.has(denormal));
  // Engine-only columns exist only there, and their cases too.
  const money = byLabel("m", "money max");
  assert.ok(ms.has(money) && !pg.has(money));
  assert.ok(edgeColumnsFor("mssql").some((c) => c.name === "m"));
  assert.ok(!edgeColumnsFor("postgres").some((c) => c.name === "m"));
  assert.equal(edgeExpectedRows("postgres")[0]!.length, edgeColumnsFor("postgres").length);
  assert.equal(edgeExpectedRows("mssql")[0]!.length, edgeColumnsFor("mssql").length);
  assert.deepEqual(
    edgeColumnsFor("mssql").find((c) => c.name === "j")?.logicalType,
    { kind: "text" },
  );
  // The stored rows of SQL Server's table line up with its expected rows.
  assert.equal(edgeMssqlRows().length, ms.size);
});

Deno.test("edgeColumnsFor() gives Databricks its own columns and STRINGs for TIME, UUID and JSON", () => {
  const columns = new Map(edgeColumnsFor("databricks").map((c) => [c.name, c.logicalType.kind]));
  for (const name of ["tm", "u", "j"]) assert.equal(columns.get(name), "text", name);
  assert.equal(columns.get("ts"), "timestamp");
  assert.equal(columns.get("tz"), "timestamptz");
  assert.equal(columns.get("tiny"), "smallint");
  assert.equal(columns.get("st"), "json");
  assert.ok(!columns.has("m"), "SQL Server's money is not a Databricks column");
  assert.ok(!edgeColumnsFor("postgres").some((c) => c.name === "tiny"));
  assert.equal(
    W_COLUMNS.find((c) => c.name === "u")!.databricks.type_name,
    "STRING",
    "Databricks has no UUID type",
  );
  assert.equal(logicalTypeIn(W_COLUMNS.find((c) => c.name === "u")!, "databricks").kind, "text");
  assert.equal(logicalTypeIn(W_COLUMNS.find((c) => c.name === "u")!, "postgres").kind, "uuid");

  const dbx = new Set(edgeCasesFor("databricks").map((c) => c.id));
  const id = (column: string, label: string) =>
    EDGE_CASES.find((c) => c.column === column && c.label === label)!.id;
  // Shared with PostgreSQL, Databricks only, and a case a STRING stand-in cannot normalise.
  assert.ok(dbx.has(id("d", "BC")) && dbx.has(id("f8", "NaN")));
  assert.ok(dbx.has(id("d", "the last day of a Spark date")));
  assert.ok(
    !edgeCasesFor("postgres").some((c) => c.id === id("d", "the last day of a Spark date")),
  );
  assert.ok(!dbx.has(id("u", "upper-case input")) && !dbx.has(id("tm", "trailing zeros trimmed")));
  assert.ok(!dbx.has(id("d", "infinity")) && !dbx.has(id("m", "money max")));
  assert.equal(edgeExpectedRows("databricks")[0]!.length, edgeColumnsFor("databricks").length);
});
