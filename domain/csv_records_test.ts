import assert from "node:assert/strict";
import { encodeCsvRows } from "./csv.ts";
import { parseCsvRecords } from "./csv_records.ts";

const bytes = (text: string) => new TextEncoder().encode(text);
const ALL = { maxRecords: 100, maxBytes: 1 << 20, final: true };

Deno.test("parseCsvRecords() keeps NULL, empty strings, quotes, commas and line ends apart", () => {
  const rows = [["1", null, "", 'a "quoted", value'], ["2", "line\nbreak", "é ü 中", ","]];
  const text = encodeCsvRows(rows);
  const parsed = parseCsvRecords(bytes(text), 0, ALL);
  assert.deepEqual(parsed.records, rows);
  assert.equal(parsed.end, bytes(text).length);
  assert.equal(parsed.bytes, bytes(text).length);
});

Deno.test("parseCsvRecords() starts at an offset and ends where the last record ends", () => {
  const text = "a,b\n1,x\n2,y\n3,z\n";
  const header = 4;
  const first = parseCsvRecords(bytes(text), header, { ...ALL, maxRecords: 2 });
  assert.deepEqual(first.records, [["1", "x"], ["2", "y"]]);
  assert.equal(first.end, 12);
  const second = parseCsvRecords(bytes(text), first.end, ALL);
  assert.deepEqual(second.records, [["3", "z"]]);
  assert.equal(second.end, text.length);
});

Deno.test("parseCsvRecords() stops at the byte cap after at least one record", () => {
  const text = "1,aaaaaaaa\n2,bbbbbbbb\n3,c\n";
  assert.deepEqual(parseCsvRecords(bytes(text), 0, { ...ALL, maxBytes: 1 }).records, [[
    "1",
    "aaaaaaaa",
  ]]);
  assert.equal(parseCsvRecords(bytes(text), 0, { ...ALL, maxBytes: 12 }).records.length, 2);
});

Deno.test("parseCsvRecords() leaves a record cut off by a non-final buffer for the next read", async (t) => {
  const text = '1,"a\nb"\n2,"c""d"\n3,e';
  for (let cut = 0; cut <= text.length; cut++) {
    await t.step(`cut at ${cut}`, () => {
      const parsed = parseCsvRecords(bytes(text.slice(0, cut)), 0, { ...ALL, final: false });
      const rest = parseCsvRecords(bytes(text), parsed.end, ALL);
      assert.deepEqual([...parsed.records, ...rest.records], [["1", "a\nb"], ["2", 'c"d'], [
        "3",
        "e",
      ]]);
    });
  }
});

Deno.test("parseCsvRecords() refuses what the CSV writer never writes", () => {
  assert.throws(() => parseCsvRecords(bytes('1,a"b\n'), 0, ALL), SyntaxError);
  assert.throws(() => parseCsvRecords(bytes('1,"ab\n'), 0, ALL), SyntaxError);
  assert.throws(() => parseCsvRecords(bytes('1,"a"b\n'), 0, ALL), SyntaxError);
  assert.throws(() => parseCsvRecords(new Uint8Array([0x31, 0x2c, 0xff, 0x0a]), 0, ALL), TypeError);
});
