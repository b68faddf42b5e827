import assert from "node:assert/strict";
import {
  columnLogicalType,
  CopyInputScanner,
  CsvLoadRefusedError,
  csvTableExtract,
  csvTableName,
  isCsvFileName,
} from "./csv_tables.ts";
import { TabularChecker } from "./tabular_checks.ts";

function checked(text: string | Uint8Array) {
  const checker = new TabularChecker("csv");
  checker.push(typeof text === "string" ? new TextEncoder().encode(text) : text);
  return checker.finish();
}

/** What {@link CopyInputScanner} finds in `text`, fed one byte at a time. */
function scanned(text: string): string | undefined {
  const scanner = new CopyInputScanner();
  for (const b of new TextEncoder().encode(text)) scanner.push(new Uint8Array([b]));
  return scanner.finish();
}

Deno.test("csvTableName() maps a file name by the project identifier rule", async (t) => {
  const cases: [string, RegExp][] = [
    ["codes.csv", /^codes$/],
    ["icd10_codes.CSV", /^icd10_codes$/],
    ["Weekly-2026.csv", /^weekly_2026_[0-9a-f]{8}$/],
    ["a.b.csv", /^a_b_[0-9a-f]{8}$/],
  ];
  for (const [name, expected] of cases) {
    await t.step(name, () => assert.match(csvTableName(name), expected));
  }
  assert.notEqual(csvTableName("Weekly-2026.csv"), csvTableName("weekly_2026.csv"));
  assert.ok(isCsvFileName("X.Csv"));
  assert.ok(!isCsvFileName("x.tsv"));
});

Deno.test("columnLogicalType() gives each checked type its destination type", () => {
  assert.deepEqual(
    (["integer", "decimal", "boolean", "date", "timestamp", "text"] as const).map((t) =>
      columnLogicalType(t).kind
    ),
    ["bigint", "numeric", "boolean", "date", "timestamptz", "text"],
  );
});

Deno.test("csvTableExtract() types columns from the checks, text for a column without values", () => {
  const extract = csvTableExtract(
    "weekly",
    "codes.csv",
    checked(
      "id,big,amount,flag,day,at,empty\n1,99999999999999999999,1.5,true,2024-01-02,2024-01-02T03:04:05Z,\n",
    ),
  );
  assert.equal(extract.schema, "weekly");
  assert.equal(extract.table.name, "codes");
  assert.deepEqual(extract.table.primaryKey, []);
  assert.deepEqual(
    extract.table.columns.map((c) => [c.name, c.dataType, c.logicalType.kind, c.nullable]),
    [
      ["id", "integer", "bigint", true],
      ["big", "decimal", "numeric", true],
      ["amount", "decimal", "numeric", true],
      ["flag", "boolean", "boolean", true],
      ["day", "date", "date", true],
      ["at", "timestamp", "timestamptz", true],
      ["empty", "text", "text", true],
    ],
  );
});

Deno.test("csvTableExtract() refuses what COPY could not load as it is", async (t) => {
  const cases: [string, string, string | Uint8Array, RegExp][] = [
    ["ragged rows", "a.csv", "a,b\n1,2\n3\n", /1 rows do not have the header's 2 fields/],
    [
      "bad UTF-8",
      "a.csv",
      new Uint8Array([0x61, 0x0a, 0xff, 0x0a]),
      /not valid UTF-8 at byte offset 2/,
    ],
    ["an unterminated quote", "a.csv", 'a\n"x\n', /ends inside a quoted field/],
    ["no header", "a.csv", "", /no header row/],
    ["tabs", "a.csv", "a\tb\n1\t2\n", /separated by tabs, not commas/],
    ["semicolons", "a.csv", "a;b\n1;2\n", /separated by semicolons/],
    ["not a .csv", "a.txt", "a\n1\n", /only \.csv files/],
    ["an empty column name", "a.csv", "a,,b\n1,2,3\n", /has no name/],
    ["a duplicate column name", "a.csv", "a,a\n1,2\n", /column "a" appears more than once/],
    ["a blank line", "a.csv", "a,b\n1,2\n\n3,4\n", /line 3 is blank/],
    [
      "a lone \\. line",
      "a.csv",
      "a\n1\n\\.\n2\n",
      /line 3 is only "\\\.", which COPY reads as the end/,
    ],
  ];
  for (const [what, name, text, message] of cases) {
    await t.step(what, () => {
      const copy = typeof text === "string" ? scanned(text) : undefined;
      assert.throws(() => csvTableExtract("s", name, checked(text), copy), (e: unknown) => {
        assert.ok(e instanceof CsvLoadRefusedError);
        assert.equal(e.code, "csv_load_refused");
        assert.match(e.message, new RegExp(`^Cannot load "${name.replace(".", "\\.")}" into`));
        assert.match(e.message, message);
        return true;
      });
    });
  }
});

Deno.test("CopyInputScanner finds blank and lone \\. lines outside quotes only", () => {
  assert.equal(scanned("a,b\r\n1,2\r\n"), undefined);
  assert.equal(scanned("a\n1"), undefined);
  assert.equal(scanned('a\n"x\n\n\\.\ny"\n"\\."\n'), undefined, "inside quotes, or quoted");
  assert.equal(scanned("a\n\\.x\n"), undefined);
  assert.match(scanned("a\r\n\r\n1\r\n") ?? "", /line 2 is blank/);
  assert.match(scanned("a\n1\n\\.") ?? "", /line 3 is only/);
});
