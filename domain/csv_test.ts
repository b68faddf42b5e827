import assert from "node:assert/strict";
import {
  encodeCsvRow,
  encodeCsvRows,
  needsFormulaPrefix,
  parseCsv,
  prefixFormulas,
} from "./csv.ts";
import type { CanonicalRow, LogicalKind } from "./logical_type.ts";

const KINDS: readonly LogicalKind[] = [
  "bigint",
  "text",
  "double",
  "json",
  "timestamptz",
  "interval",
];
const ROWS: CanonicalRow[] = [
  ["1", "plain", "0.5", '{"a": 1}', "2020-01-01 00:00:00+00", "1 day"],
  ["-2", "", "NaN", null, null, null],
  [null, 'quote " and, comma', "1e+15", "[1,\n2]", "1969-07-20 20:17:40.5+00", "-1 days"],
  ["3", "line\r\nbreak", "-0", "", "2000-01-01 00:00:00+00", "00:00:01"],
];

Deno.test("encodeCsvRows gives the same bytes with or without column kinds", () => {
  const generic = ROWS.map(encodeCsvRow).join("");
  assert.equal(encodeCsvRows(ROWS), generic);
  assert.equal(encodeCsvRows(ROWS, KINDS), generic);
  assert.deepEqual(parseCsv(generic), ROWS);
});

Deno.test("encodeCsvRows quotes the empty string and text with separators, and leaves NULL empty", () => {
  assert.equal(encodeCsvRows([["", null]], ["text", "text"]), '"",\n');
  assert.equal(encodeCsvRows([["a,b", "c"]], ["json", "uuid"]), '"a,b",c\n');
});

Deno.test("a single-column row quotes \\. so PostgreSQL does not read it as end of data", () => {
  assert.equal(encodeCsvRows([["\\."]], ["text"]), '"\\."\n');
  assert.equal(encodeCsvRows([["\\."], [null]]), '"\\."\n\n');
});

Deno.test("needsFormulaPrefix() is true for the first characters spreadsheets evaluate, and '", async (t) => {
  const cases: [string, boolean][] = [
    ["=1+1", true],
    ["+1", true],
    ["-1", true],
    ["@SUM(A1)", true],
    ["\tx", true],
    ["\rx", true],
    ["'already", true],
    ["", false],
    ["a=1", false],
    [" =1", false],
    ["1-2", false],
    ["\nx", false],
  ];
  for (const [value, expected] of cases) {
    await t.step(JSON.stringify(value), () => assert.equal(needsFormulaPrefix(value), expected));
  }
});

Deno.test("prefixFormulas() escapes text values only, and leaves its input alone", () => {
  const rows: CanonicalRow[] = [
    ["-1", "-1", "=x", "-1.5", '{"a":-1}', null],
    ["2", "ok", "", "3", "[]", "@y"],
  ];
  const copy = structuredClone(rows);
  const escaped = prefixFormulas(rows, ["integer", "text", "text", "decimal", "json", "text"]);
  assert.deepEqual(escaped, [
    ["-1", "'-1", "'=x", "-1.5", '{"a":-1}', null],
    ["2", "ok", "", "3", "[]", "'@y"],
  ]);
  assert.deepEqual(rows, copy);
  const untouched: CanonicalRow = ["1", "plain"];
  assert.equal(prefixFormulas([untouched], ["integer", "text"])[0], untouched, "passed on as is");
});
