import assert from "node:assert/strict";
import {
  CanonicalCsvParser,
  CATEGORY_CAP,
  CATEGORY_LABEL_MAX_CHARS,
  checksDisclosure,
  codePointCompare,
  compareDecimalText,
  compareTemporalText,
  DisclosureAccumulator,
  disclosureThresholds,
  DISTINCT_EXACT_CAP,
} from "./disclosure.ts";
import { encodeCsvRow } from "./csv.ts";

Deno.test("counts rows, nulls and exact distinct values", () => {
  const acc = new DisclosureAccumulator("t", [{ name: "a", kind: "text" }, {
    name: "b",
    kind: "integer",
  }]);
  acc.addRow(["x", "1"]);
  acc.addRow(["y", null]);
  acc.addRow(["x", "3"]);
  const result = acc.result();
  assert.equal(result.rows, 3);
  assert.equal(result.columns[0]!.nulls, 0);
  assert.deepEqual(result.columns[0]!.distinct, { value: 2, estimate: false });
  assert.equal(result.columns[1]!.nulls, 1);
  assert.deepEqual(result.columns[1]!.distinct, { value: 2, estimate: false });
});

Deno.test("min and max only for numbers, dates and times", () => {
  const acc = new DisclosureAccumulator("t", [
    { name: "name", kind: "text" },
    { name: "id", kind: "uuid" },
    { name: "n", kind: "decimal" },
  ]);
  acc.addRow(["Zed", "00000000-0000-0000-0000-000000000001", "10.5"]);
  acc.addRow(["Amy", "ffffffff-0000-0000-0000-000000000001", "9.75"]);
  const [name, id, n] = acc.result().columns;
  assert.equal(name!.min, null);
  assert.equal(name!.max, null);
  assert.equal(id!.min, null);
  assert.equal(n!.min, "9.75");
  assert.equal(n!.max, "10.5");
});

Deno.test("numbers compare exactly as decimals, not floats", () => {
  assert.equal(compareDecimalText("9007199254740993", "9007199254740992"), 1);
  assert.equal(compareDecimalText("0.10000000000000000001", "0.1"), 1);
  assert.equal(compareDecimalText("-2", "-10"), 1);
  assert.equal(compareDecimalText("1e+15", "999999999999999"), 1);
  assert.equal(compareDecimalText("1e-05", "0.0001"), -1);
  assert.equal(compareDecimalText("12.30", "12.3"), 0);
  assert.equal(compareDecimalText("-0", "0"), 0);
  assert.equal(compareDecimalText("-Infinity", "-1e+300"), -1);
  assert.equal(compareDecimalText("Infinity", "1e+300"), 1);
  assert.equal(compareDecimalText("NaN", "Infinity"), 1);
  assert.equal(compareDecimalText("0.001", "-5"), 1);
});

Deno.test("dates and timestamps compare with BC years and infinities", () => {
  assert.equal(compareTemporalText("0044-03-15 BC", "0001-01-01"), -1);
  assert.equal(compareTemporalText("0044-03-15 BC", "0043-01-01 BC"), -1);
  assert.equal(compareTemporalText("-infinity", "0044-03-15 BC"), -1);
  assert.equal(compareTemporalText("infinity", "9999-12-31"), 1);
  assert.equal(compareTemporalText("2020-01-01 00:00:01+00", "2020-01-01 00:00:01.5+00"), -1);
  assert.equal(compareTemporalText("2020-01-01 00:00:01", "2020-01-01 00:00:01.5"), -1);
  assert.equal(compareTemporalText("10000-01-01", "9999-12-31"), 1);
});

Deno.test("text compares by code point", () => {
  assert.equal(codePointCompare("\u{1F600}", "\uFFFF"), 1);
  assert.equal(codePointCompare("a", "ab"), -1);
  assert.equal(codePointCompare("b", "ab"), 1);
});

Deno.test("few distinct values get counts, small ones flagged", () => {
  const acc = new DisclosureAccumulator("t", [{ name: "sex", kind: "text" }], 10);
  for (let i = 0; i < 20; i++) acc.addRow(["F"]);
  for (let i = 0; i < 3; i++) acc.addRow(["X"]);
  for (let i = 0; i < 10; i++) acc.addRow(["M"]);
  acc.addRow([null]);
  const [sex] = acc.result().columns;
  assert.deepEqual(sex!.categories, [
    { value: "F", count: 20, small: false },
    { value: "M", count: 10, small: false },
    { value: "X", count: 3, small: true },
  ]);
  assert.equal(sex!.small_categories, 1);
  assert.equal(sex!.nulls, 1);
});

Deno.test("more distinct values than the category cap: no counts per value", () => {
  const acc = new DisclosureAccumulator("t", [{ name: "v", kind: "integer" }]);
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i <= CATEGORY_CAP + 9; i++) acc.addRow([String(i)]);
  }
  assert.equal(acc.result().columns[0]!.categories, null);
  assert.deepEqual(acc.result().columns[0]!.distinct, {
    value: CATEGORY_CAP + 10,
    estimate: false,
  });
  assert.equal(acc.result().columns[0]!.small_categories, 0);
});

Deno.test("a long value makes the column no category", () => {
  const acc = new DisclosureAccumulator("t", [{ name: "v", kind: "text" }]);
  acc.addRow(["a"]);
  acc.addRow(["b".repeat(CATEGORY_LABEL_MAX_CHARS + 1)]);
  acc.addRow(["a"]);
  acc.addRow(["a"]);
  assert.equal(acc.result().columns[0]!.categories, null);
  assert.deepEqual(acc.result().columns[0]!.distinct, { value: 2, estimate: false });
});

Deno.test("distinct counts past the cap are estimates within a few percent", () => {
  const acc = new DisclosureAccumulator("t", [{ name: "v", kind: "bigint" }]);
  const n = 100_000;
  for (let i = 0; i < n; i++) acc.addRow([String(i * 7)]);
  for (let i = 0; i < n; i++) acc.addRow([String(i * 7)]);
  const { distinct } = acc.result().columns[0]!;
  assert.equal(distinct.estimate, true);
  assert.ok(Math.abs(distinct.value - n) / n < 0.06, `estimate ${distinct.value}`);
});

Deno.test("exactly at the cap the count is still exact", () => {
  const acc = new DisclosureAccumulator("t", [{ name: "v", kind: "integer" }]);
  for (let i = 0; i < DISTINCT_EXACT_CAP; i++) acc.addRow([String(i)]);
  assert.deepEqual(acc.result().columns[0]!.distinct, {
    value: DISTINCT_EXACT_CAP,
    estimate: false,
  });
});

Deno.test("memory stays bounded over many distinct rows", () => {
  const acc = new DisclosureAccumulator("t", [
    { name: "id", kind: "text" },
    { name: "n", kind: "double" },
  ]);
  const size = () => JSON.stringify(acc.result()).length;
  for (let i = 0; i < 50_000; i++) acc.addRow([`id-${i}-${"x".repeat(50)}`, String(i / 3)]);
  const first = size();
  for (let i = 50_000; i < 1_000_000; i++) acc.addRow([`id-${i}-${"x".repeat(50)}`, String(i / 3)]);
  // The result, and every structure behind it, stays the same size however many rows came after the cap.
  assert.ok(size() <= first + 16);
  assert.equal(acc.result().rows, 1_000_000);
  assert.equal(acc.result().columns[0]!.categories, null);
});

Deno.test("the output holds no free-text value of a high-cardinality column", () => {
  const acc = new DisclosureAccumulator("t", [{ name: "note", kind: "text" }]);
  for (let i = 0; i < 100; i++) acc.addRow([`secret note ${i}`]);
  assert.ok(!JSON.stringify(acc.result()).includes("secret note"));
});

Deno.test("a column whose every value is seen once gets no counts per value", () => {
  const acc = new DisclosureAccumulator("t", [{ name: "note", kind: "text" }]);
  for (let i = 0; i < 5; i++) acc.addRow([`note ${i}`]);
  acc.addRow([null]);
  const [note] = acc.result().columns;
  assert.equal(note!.categories, null);
  assert.ok(!JSON.stringify(acc.result()).includes("note 1"));
});

Deno.test("the threshold must be a whole number of at least 1", () => {
  assert.throws(() => disclosureThresholds(0), RangeError);
  assert.throws(() => new DisclosureAccumulator("t", [], 1.5), RangeError);
  assert.equal(disclosureThresholds(5).small_cell_threshold, 5);
});

Deno.test("the CSV parser reads canonical CSV in chunks of any size", () => {
  const rows: (string | null)[][] = [
    ["plain", "", null, 'with "quotes"', "a,b", "line\nbreak", "\r", "é€\u{1F600}"],
    [null, null, null, null, null, null, null, null],
  ];
  const text = encodeCsvRow(["a", "b", "c", "d", "e", "f", "g", "h"]) +
    rows.map(encodeCsvRow).join("");
  const bytes = new TextEncoder().encode(text);
  for (const size of [1, 2, 3, 7, bytes.length]) {
    const seen: (string | null)[][] = [];
    const parser = new CanonicalCsvParser((row) => seen.push(row));
    for (let i = 0; i < bytes.length; i += size) parser.push(bytes.subarray(i, i + size));
    parser.end();
    assert.deepEqual(seen, rows, `chunk size ${size}`);
  }
});

Deno.test("the CSV parser reads single-column files with nulls and \\.", () => {
  const rows = [["x"], [null], [""], ["\\."]];
  const text = encodeCsvRow(["only"]) + rows.map(encodeCsvRow).join("");
  const seen: (string | null)[][] = [];
  const parser = new CanonicalCsvParser((row) => seen.push(row));
  parser.push(new TextEncoder().encode(text));
  parser.end();
  assert.deepEqual(seen, rows);
});

Deno.test("the CSV parser refuses a file that ends inside a record", () => {
  const parser = new CanonicalCsvParser(() => {});
  parser.push(new TextEncoder().encode('h\n"open'));
  assert.throws(() => parser.end(), RangeError);
});

Deno.test("the fast decimal comparison agrees with the exact one", () => {
  const values = [
    "0",
    "-0",
    "0.5",
    "-0.5",
    "0.50",
    "5",
    "12.3",
    "12.30",
    "12.31",
    "-12.3",
    "-12.31",
    "100",
    "99.999",
    "1e+15",
    "-1e-05",
    "NaN",
    "Infinity",
    "-Infinity",
    "007",
    "123456789012345678901234567890.1",
    "123456789012345678901234567890.09",
  ];
  const sign = (n: number) => n < 0 ? -1 : n > 0 ? 1 : 0;
  const exact = (a: string, b: string) => {
    // Reference: BigInt over a common scale (specials and exponents excluded).
    const scaled = (t: string) => {
      const [w = "", f = ""] = t.replace("-", "").split(".");
      const v = BigInt(w + f.padEnd(40, "0"));
      return t.startsWith("-") ? -v : v;
    };
    const x = scaled(a);
    const y = scaled(b);
    return x < y ? -1 : x > y ? 1 : 0;
  };
  for (const a of values) {
    for (const b of values) {
      const plain = (t: string) => /^-?\d+(\.\d+)?$/.test(t);
      if (plain(a) && plain(b)) {
        assert.equal(sign(compareDecimalText(a, b)), exact(a, b), `${a} vs ${b}`);
      }
      assert.equal(sign(compareDecimalText(a, b)), sign(-compareDecimalText(b, a)), `${a} vs ${b}`);
    }
  }
});

Deno.test("checksDisclosure: requested checks what asks, on everything, off nothing", () => {
  const cases: [Parameters<typeof checksDisclosure>[0], boolean | undefined, boolean][] = [
    ["requested", undefined, false],
    ["requested", false, false],
    ["requested", true, true],
    ["on", undefined, true],
    ["on", false, true],
    ["on", true, true],
    ["off", undefined, false],
    ["off", false, false],
    ["off", true, false],
  ];
  for (const [setting, requested, checked] of cases) {
    assert.equal(checksDisclosure(setting, requested), checked, `${setting} ${requested}`);
  }
});
