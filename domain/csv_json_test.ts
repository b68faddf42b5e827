import assert from "node:assert/strict";
import { encodeCsvRows } from "./csv.ts";
import { csvToJson, JsonRowsWriter, lastRecordOf } from "./csv_json.ts";
import { parseCsvRecords } from "./csv_records.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const ALL = { maxRecords: 1000, maxBytes: 1 << 20, final: true };

const ROWS: (string | null)[][] = [
  ["1", null, "", 'a "quoted", value'],
  ["2", "line\nbreak\r\n", "tab\there \\ back", "\u0001\u001f control"],
  ["3", "é ü 中 😀", ",", '"'],
  [null, null, null, null],
];

function parsed(json: Uint8Array): unknown {
  return JSON.parse(`[${new TextDecoder().decode(json)}]`);
}

Deno.test("csvToJson() gives what parseCsvRecords() reads, as arrays or objects", () => {
  const input = bytes(encodeCsvRows(ROWS));
  const tabular = csvToJson(input, 0, ALL);
  assert.deepEqual(parsed(tabular.json), ROWS);
  assert.equal(tabular.records, 4);
  assert.equal(tabular.end, input.length);
  const names = ["a", 'b "q"', "c", "d"];
  const records = csvToJson(input, 0, { ...ALL, names });
  assert.deepEqual(
    parsed(records.json),
    ROWS.map((r) => Object.fromEntries(names.map((n, i) => [n, r[i]]))),
  );
  assert.deepEqual(lastRecordOf(input, tabular), ROWS[3]);
});

Deno.test("csvToJson() stops at the limit or the byte cap, at record ends", () => {
  const input = bytes(encodeCsvRows(ROWS));
  const two = csvToJson(input, 0, { ...ALL, maxRecords: 2 });
  assert.deepEqual(parsed(two.json), ROWS.slice(0, 2));
  assert.equal(two.end, parseCsvRecords(input, 0, { ...ALL, maxRecords: 2 }).end);
  assert.deepEqual(lastRecordOf(input, two), ROWS[1]);
  const rest = csvToJson(input, two.end, ALL);
  assert.deepEqual(parsed(rest.json), ROWS.slice(2));
  assert.equal(csvToJson(input, 0, { ...ALL, maxBytes: 1 }).records, 1);
});

Deno.test("csvToJson() leaves a record cut off by a non-final buffer for the next call", async (t) => {
  const text = encodeCsvRows(ROWS);
  const input = bytes(text);
  for (let cut = 0; cut <= input.length; cut++) {
    await t.step(`cut at ${cut}`, () => {
      const first = csvToJson(input.subarray(0, cut), 0, { ...ALL, final: false });
      const expected = parseCsvRecords(input.subarray(0, cut), 0, { ...ALL, final: false });
      assert.equal(first.end, expected.end);
      assert.deepEqual(parsed(first.json), expected.records);
    });
  }
});

Deno.test("csvToJson() refuses what the CSV writer never writes", () => {
  for (const bad of ['1,a"b\n', '1,"ab\n', '1,"a"b\n']) {
    assert.throws(() => csvToJson(bytes(bad), 0, ALL), SyntaxError, bad);
  }
  assert.throws(() => csvToJson(bytes("1,2\n"), 0, { ...ALL, names: ["a"] }), SyntaxError);
  assert.throws(() => csvToJson(bytes("1\n"), 0, { ...ALL, names: ["a", "b"] }), SyntaxError);
});

Deno.test("csvToJson() grows its output for values made of escaped bytes", () => {
  const rows = [["\t".repeat(5000), "\\".repeat(3000)], ['"'.repeat(2000), "\u0001".repeat(4000)]];
  const input = bytes(encodeCsvRows(rows));
  const out = csvToJson(input, 0, ALL);
  assert.deepEqual(parsed(out.json), rows);
  assert.deepEqual(parsed(csvToJson(input, 0, { ...ALL, names: ["a", "b"] }).json), [
    { a: rows[0]![0], b: rows[0]![1] },
    { a: rows[1]![0], b: rows[1]![1] },
  ]);
});

/** The values as PostgreSQL's `COPY ... TO` writes them in its text format (`CopyAttributeOutText`). */
function copyText(rows: readonly (readonly (string | null)[])[]): string {
  const special: Record<string, string> = {
    "\\": "\\\\",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
  };
  return rows.map((row) =>
    row.map((v) => v === null ? "\\N" : v.replace(/[\\\b\f\n\r\t\v]/g, (c) => special[c]!))
      .join("\t") + "\n"
  ).join("");
}

const COPY_ROWS: (string | null)[][] = [
  ...ROWS,
  ["\\N", "\b\f\v\u007f", "", "\\\\n"],
  ["", "", "", ""],
];

Deno.test("appendCopyText() gives the JSON appendCsv() gives for the same values", () => {
  const names = ["a", 'b "q"', "c", "d"];
  for (const options of [{}, { names }]) {
    const fromCsv = new JsonRowsWriter(options);
    fromCsv.appendCsv(bytes(encodeCsvRows(COPY_ROWS)), 0, ALL);
    const fromCopy = new JsonRowsWriter(options);
    const input = bytes(copyText(COPY_ROWS));
    // One record per call, as PostgreSQL sends them, and all at once.
    assert.equal(fromCopy.appendCopyText(input, 0, { ...ALL, maxRecords: 2 }), 2);
    const step = { records: 2, end: fromCopy.end, lastStart: fromCopy.lastStart };
    assert.deepEqual(lastRecordOf(input, step, "copy-text"), COPY_ROWS[1]);
    fromCopy.appendCopyText(input, step.end, ALL);
    assert.equal(fromCopy.records, COPY_ROWS.length);
    assert.equal(new TextDecoder().decode(fromCopy.json), new TextDecoder().decode(fromCsv.json));
  }
  assert.deepEqual(
    parsed(csvToJson(bytes(encodeCsvRows(COPY_ROWS)), 0, ALL).json),
    COPY_ROWS,
  );
});

Deno.test("appendCopyText() leaves a record cut off by a non-final buffer for the next call", async (t) => {
  const input = bytes(copyText(COPY_ROWS));
  const ends: number[] = [];
  for (let i = 0; i < input.length; i++) if (input[i] === 0x0a) ends.push(i + 1);
  for (let cut = 0; cut <= input.length; cut++) {
    await t.step(`cut at ${cut}`, () => {
      const writer = new JsonRowsWriter({});
      const taken = writer.appendCopyText(input.subarray(0, cut), 0, { ...ALL, final: false });
      const complete = ends.filter((e) => e <= cut).length;
      assert.equal(taken, complete);
      const end = writer.end;
      assert.equal(end, complete === 0 ? 0 : ends[complete - 1]);
      writer.appendCopyText(input, end, ALL);
      assert.equal(writer.end, input.length);
      assert.deepEqual(parsed(writer.json), COPY_ROWS);
    });
  }
});

Deno.test("appendCopyText() refuses what COPY never writes", () => {
  const writer = () => new JsonRowsWriter({});
  for (const bad of ["a\\x\n", "\\Na\tb\n", "a\tb", "a\\", "\\N"]) {
    assert.throws(() => writer().appendCopyText(bytes(bad), 0, ALL), SyntaxError, bad);
  }
  const named = () => new JsonRowsWriter({ names: ["a", "b"] });
  assert.throws(() => named().appendCopyText(bytes("1\n"), 0, ALL), SyntaxError);
  assert.throws(() => named().appendCopyText(bytes("1\t2\t3\n"), 0, ALL), SyntaxError);
});
