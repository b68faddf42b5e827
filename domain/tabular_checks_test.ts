import assert from "node:assert/strict";
import { TabularChecker, type TabularReport } from "./tabular_checks.ts";

/** Checks `bytes`, fed in chunks of `chunk` bytes so that characters and lines split across pushes. */
function check(
  bytes: Uint8Array | string,
  options: { chunk?: number; previous?: string[]; hint?: string } = {},
): TabularReport {
  const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
  const checker = new TabularChecker(options.hint);
  const chunk = options.chunk ?? 3;
  for (let at = 0; at < data.length; at += chunk) checker.push(data.subarray(at, at + chunk));
  return checker.finish(options.previous ?? null);
}

Deno.test("a CSV file: delimiter, header, rows, inferred types and a preview", () => {
  const report = check(
    'id,score,ok,day,at,name\r\n1,1.5,true,2024-01-02,2024-01-02T03:04:05Z,"Smith, ""J"""\r\n' +
      "2,,false,2024-02-29,2024-01-02 03:04,Café\r\n",
  );
  assert.equal(report.delimiter, ",");
  assert.deepEqual(report.errors, []);
  assert.equal(report.rows, 2);
  assert.deepEqual(
    report.columns.map((c) => [c.name, c.inferred]),
    [["id", "integer"], ["score", "decimal"], ["ok", "boolean"], ["day", "date"], [
      "at",
      "timestamp",
    ], ["name", "text"]],
  );
  assert.equal(report.columns[1]?.empty, 1);
  assert.deepEqual(report.preview[1], [
    "1",
    "1.5",
    "true",
    "2024-01-02",
    "2024-01-02T03:04:05Z",
    'Smith, "J"',
  ]);
  assert.deepEqual(report.preview[2]?.[5], "Café");
});

Deno.test("tab and semicolon delimiters are detected from the first line", () => {
  assert.equal(check("a\tb\n1\t2\n").delimiter, "\t");
  assert.equal(check("a;b\n1;2\n").delimiter, ";");
  assert.equal(check("a\n1\n", { hint: "tsv" }).delimiter, "\t");
});

Deno.test("bad encodings: the error names the byte offset of the first invalid sequence", () => {
  const prefix = new TextEncoder().encode("a,b\nxé,");
  for (
    const [bad, why] of [
      [[0xff], /cannot start/],
      [[0xc3, 0x28], /ends too early/],
      [[0xc0, 0xaf], /cannot start/],
      [[0xed, 0xa0, 0x80], /surrogate/],
    ] as const
  ) {
    const bytes = new Uint8Array([...prefix, ...bad, 0x0a]);
    for (const chunk of [1, 2, 64]) {
      const report = check(bytes, { chunk });
      assert.equal(report.encodingError?.byteOffset, prefix.length, `0x${bad[0].toString(16)}`);
      assert.match(report.encodingError?.message ?? "", why);
      assert.match(report.errors[0] ?? "", new RegExp(`byte offset ${prefix.length}`));
    }
  }
  const truncated = check(new Uint8Array([0x61, 0x0a, 0xe2, 0x82]));
  assert.equal(truncated.encodingError?.byteOffset, 2);
});

Deno.test("ragged rows are counted and listed by line", () => {
  const report = check("a,b,c\n1,2,3\n1,2\n1,2,3,4\n\n1,2,3\n");
  assert.equal(report.rows, 4);
  assert.equal(report.raggedRows, 2);
  assert.deepEqual(report.ragged, [{ line: 3, fields: 2 }, { line: 4, fields: 4 }]);
  assert.match(report.errors.join("\n"), /2 rows do not have the header's 3 fields/);
});

Deno.test("a header change between versions warns of missing and added columns", () => {
  const report = check("id,name,postcode\n1,a,b\n", { previous: ["id", "name", "age"] });
  assert.deepEqual(report.warnings, [
    "Columns missing since the previous version: age",
    "Columns added since the previous version: postcode",
  ]);
  assert.deepEqual(check("id,name\n", { previous: ["id", "name"] }).warnings, []);
});

Deno.test("reserved, unsafe, duplicate and empty column names warn", () => {
  const report = check('select,"a b",id,ID,\n1,2,3,4,5\n');
  assert.deepEqual(report.warnings, [
    'Column "select" is an SQL reserved word',
    'Column "a b" is not a safe name (a letter or _, then letters, digits or _)',
    'Column "ID" appears more than once',
    "A column has no name",
  ]);
});

Deno.test("the uploader's overrides replace the inferred types; an empty file has no header", () => {
  const checker = new TabularChecker();
  checker.push(new TextEncoder().encode("code\n001\n002\n"));
  const report = checker.finish(null, { code: "text" });
  assert.deepEqual(report.columns, [{ name: "code", inferred: "integer", type: "text", empty: 0 }]);
  assert.deepEqual(check("").errors, ["The file has no header row"]);
  assert.deepEqual(check('a\n"open\n').errors, ["The file ends inside a quoted field"]);
});

Deno.test("integer is inferred only for values that fit 64 bits; larger ones are decimal", () => {
  const report = (values: string[]) => {
    const checker = new TabularChecker("csv");
    checker.push(new TextEncoder().encode(`n\n${values.join("\n")}\n`));
    return checker.finish().columns[0]!.inferred;
  };
  assert.equal(report(["9223372036854775807", "-9223372036854775808", "+007"]), "integer");
  assert.equal(report(["9223372036854775808"]), "decimal");
  assert.equal(report(["-9223372036854775809"]), "decimal");
  assert.equal(report(["00000000000000000000001"]), "integer");
});
