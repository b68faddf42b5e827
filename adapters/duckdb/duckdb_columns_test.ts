import assert from "node:assert/strict";
import {
  checkText,
  duckdbColumn,
  fitsDuckdbDecimal,
  parseBigint,
  parseBoolean,
  parseDate,
  parseDecimal,
  parseDouble,
  parseInteger,
  parseInterval,
  parseReal,
  parseTime,
  parseTimestamp,
  parseTimestamptz,
  parseUuid,
} from "./duckdb_columns.ts";

/** Days from 1970 by JavaScript's own (proleptic Gregorian, astronomical-year) calendar. */
function jsDays(year: number, month: number, day: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return Math.round(date.getTime() / 86_400_000);
}

Deno.test("parseDate() reads canonical dates, BC years and infinities", async (t) => {
  const cases: [string, number][] = [
    ["1970-01-01", 0],
    ["1969-12-31", -1],
    ["2000-02-29", jsDays(2000, 2, 29)],
    ["0001-01-01", jsDays(1, 1, 1)],
    ["0001-12-31 BC", jsDays(0, 12, 31)],
    ["0044-03-15 BC", jsDays(-43, 3, 15)],
    ["0005-02-29 BC", jsDays(-4, 2, 29)],
    ["9999-12-31", jsDays(9999, 12, 31)],
    // PostgreSQL's last date: Julian day 2147483493, and 1970-01-01 is Julian day 2440588.
    ["5874897-12-31", 2147483493 - 2440588],
    ["infinity", 2147483647],
    ["-infinity", -2147483647],
  ];
  for (const [text, days] of cases) {
    await t.step(text, () => assert.equal(parseDate(text), days));
  }
});

Deno.test("parseDate() refuses text that is not a canonical date", async (t) => {
  for (
    const text of [
      "",
      "2024-1-01",
      "2024-02-30",
      "2023-02-29",
      "0000-01-01",
      "2024-13-01",
      "0004-02-29 BC",
    ]
  ) {
    await t.step(JSON.stringify(text), () => assert.throws(() => parseDate(text), SyntaxError));
  }
  for (const text of ["2024-01-01 ", " 2024-01-01", "2024-01-01 AD", "24-01-01"]) {
    await t.step(JSON.stringify(text), () => assert.throws(() => parseDate(text), SyntaxError));
  }
});

Deno.test("parseTime() reads up to 24:00:00 with microseconds", () => {
  assert.equal(parseTime("00:00:00"), 0n);
  assert.equal(parseTime("12:00:00.1"), 43_200_100_000n);
  assert.equal(parseTime("23:59:59.999999"), 86_399_999_999n);
  assert.equal(parseTime("24:00:00"), 86_400_000_000n);
  for (const text of ["24:00:00.000001", "12:60:00", "12:00:60", "1:00:00", "12:00:00.", ""]) {
    assert.throws(() => parseTime(text), SyntaxError, text);
  }
  assert.throws(() => parseTime("12:00:00.1234567"), SyntaxError);
});

Deno.test("duckdbColumn() truncates 100 ns ticks to microseconds, never rounding", () => {
  const convert = (kind: "time" | "timestamp" | "timestamptz", text: string) =>
    duckdbColumn({ kind }).convert(text);
  // The last tick of 2020 stays in 2020 (rounding would give 2021-01-01 00:00:00).
  const lastOf2020 = parseTimestamp("2020-12-31 23:59:59.999999");
  assert.deepEqual(
    convert("timestamp", "2020-12-31 23:59:59.9999999"),
    convert("timestamp", "2020-12-31 23:59:59.999999"),
  );
  assert.equal(
    (convert("timestamp", "2020-12-31 23:59:59.9999999") as { micros: bigint }).micros,
    lastOf2020,
  );
  assert.equal(
    (convert("timestamptz", "2020-12-31 23:59:59.9999999+00") as { micros: bigint }).micros,
    lastOf2020,
  );
  assert.equal(
    (convert("time", "23:59:59.9999999") as { micros: bigint }).micros,
    86_399_999_999n,
  );
  assert.equal(
    (convert("timestamp", "2020-01-01 00:00:00.1234567") as { micros: bigint }).micros,
    parseTimestamp("2020-01-01 00:00:00.123456"),
  );
});

Deno.test("parseTimestamp() matches JavaScript's clock to the microsecond", () => {
  for (let ms = -62_000_000_000_000; ms < 9_000_000_000_000; ms += 987_654_321_987) {
    const iso = new Date(ms).toISOString(); // e.g. 1969-07-20T20:17:40.500Z (4-digit years here)
    const text = `${iso.slice(0, 10)} ${iso.slice(11, 23)}456`;
    assert.equal(parseTimestamp(text), BigInt(ms) * 1000n + 456n, text);
    assert.equal(parseTimestamptz(`${text}+00`), BigInt(ms) * 1000n + 456n, text);
  }
});

Deno.test("parseTimestamp() and parseTimestamptz() read BC, infinities and offsets", () => {
  const bc = BigInt(jsDays(-43, 3, 15)) * 86_400_000_000n + 43_200_000_000n;
  assert.equal(parseTimestamp("0044-03-15 12:00:00 BC"), bc);
  assert.equal(parseTimestamptz("0044-03-15 12:00:00+00 BC"), bc);
  assert.equal(parseTimestamp("infinity"), 9223372036854775807n);
  assert.equal(parseTimestamptz("-infinity"), -9223372036854775807n);
  assert.equal(parseTimestamp("1970-01-01 00:00:00.000001"), 1n);
  assert.equal(parseTimestamptz("1970-01-01 05:30:00+05:30"), 0n);
  assert.equal(parseTimestamptz("1969-12-31 20:59:44-03:00:16"), 0n);
  assert.equal(
    parseTimestamp("10000-01-01 00:00:00"),
    BigInt(jsDays(10000, 1, 1)) * 86_400_000_000n,
  );
  assert.throws(() => parseTimestamp("294247-01-10 04:00:54.775807"), RangeError);
  assert.equal(parseTimestamp("294247-01-10 04:00:54.775806"), 9223372036854775806n);
  for (
    const text of [
      "2024-01-01",
      "2024-01-01T00:00:00",
      "2024-01-01 24:00:00",
      "2024-01-01 00:00:00+00",
      "2024-01-01 00:00:00 AD",
    ]
  ) {
    assert.throws(() => parseTimestamp(text), SyntaxError, text);
  }
  for (const text of ["2024-01-01 00:00:00", "2024-01-01 00:00:00+", "2024-01-01 00:00:00+0"]) {
    assert.throws(() => parseTimestamptz(text), SyntaxError, text);
  }
});

Deno.test("parseInterval() reads PostgreSQL's postgres interval style exactly", async (t) => {
  const cases: [string, number, number, bigint][] = [
    ["00:00:00", 0, 0, 0n],
    ["1 year 2 mons 3 days 04:05:06.789", 14, 3, 14_706_789_000n],
    ["-1 years -2 mons +3 days -04:05:06", -14, 3, -14_706_000_000n],
    ["1 day", 0, 1, 0n],
    ["-1 days", 0, -1, 0n],
    ["100:00:00", 0, 0, 360_000_000_000n],
    ["1 mon -00:00:00.000001", 1, 0, -1n],
    ["178956970 years 7 mons", 2147483647, 0, 0n],
    ["-178956970 years -8 mons", -2147483648, 0, 0n],
    ["2562047788:00:54.775807", 0, 0, 9223372036854775807n],
    ["-2562047788:00:54.775808", 0, 0, -9223372036854775808n],
  ];
  for (const [text, months, days, micros] of cases) {
    await t.step(text, () => assert.deepEqual(parseInterval(text), { months, days, micros }));
  }
  await t.step("refuses infinities and other styles", () => {
    assert.throws(() => parseInterval("infinity"), RangeError);
    assert.throws(() => parseInterval("-infinity"), RangeError);
    assert.throws(() => parseInterval("2562047788:00:54.775808"), RangeError);
    for (
      const text of ["", "P1Y", "@ 1 day", "1 day 1 day", "1 days 2", "01:02", "1 week", "1:2:3"]
    ) {
      assert.throws(() => parseInterval(text), SyntaxError, text);
    }
  });
});

Deno.test("parseDecimal() returns the unscaled integer and never rounds", () => {
  assert.equal(parseDecimal("12.30", 18, 2), 1230n);
  assert.equal(parseDecimal("12.3", 18, 2), 1230n);
  assert.equal(parseDecimal("12", 18, 2), 1200n);
  assert.equal(parseDecimal("-0.01", 18, 2), -1n);
  assert.equal(parseDecimal("1.500", 18, 2), 150n);
  assert.equal(parseDecimal("0007.00", 3, 2), 700n);
  assert.equal(parseDecimal("0.5", 1, 1), 5n);
  assert.equal(
    parseDecimal("-9999999999999999999999999999.9999999999", 38, 10),
    -99999999999999999999999999999999999999n,
  );
  assert.throws(() => parseDecimal("1.005", 18, 2), RangeError);
  assert.throws(() => parseDecimal("10.0", 2, 1), RangeError);
  assert.throws(() => parseDecimal("NaN", 18, 2), RangeError);
  assert.throws(() => parseDecimal("Infinity", 18, 2), RangeError);
  for (const text of ["", "1e5", "+1", "1.", ".5", "1,5", " 1"]) {
    assert.throws(() => parseDecimal(text, 18, 2), SyntaxError, text);
  }
});

Deno.test("fitsDuckdbDecimal() allows 1 to 38 digits with 0 <= scale <= precision", () => {
  assert.ok(fitsDuckdbDecimal(38, 10));
  assert.ok(fitsDuckdbDecimal(1, 0));
  assert.ok(!fitsDuckdbDecimal(39, 0));
  assert.ok(!fitsDuckdbDecimal(5, 6));
  assert.ok(!fitsDuckdbDecimal(5, -1));
  assert.equal(duckdbColumn({ kind: "decimal", precision: 5, scale: -1 }).sqlType, "VARCHAR");
});

Deno.test("integer parsers keep the whole range and refuse anything else", () => {
  assert.equal(parseInteger("-32768", -32768, 32767), -32768);
  assert.throws(() => parseInteger("32768", -32768, 32767), RangeError);
  assert.throws(() => parseInteger("1e3", -32768, 32767), SyntaxError);
  assert.throws(() => parseInteger("", -32768, 32767), SyntaxError);
  assert.equal(parseBigint("-9223372036854775808"), -9223372036854775808n);
  assert.throws(() => parseBigint("9223372036854775808"), RangeError);
  assert.throws(() => parseBigint("0x10"), SyntaxError);
});

Deno.test("float parsers keep NaN, infinities and -0", () => {
  assert.ok(Number.isNaN(parseDouble("NaN")));
  assert.equal(parseDouble("-Infinity"), -Infinity);
  assert.ok(Object.is(parseDouble("-0"), -0));
  assert.equal(parseDouble("0.30000000000000004"), 0.1 + 0.2);
  assert.equal(parseDouble("5e-324"), Number.MIN_VALUE);
  assert.equal(Math.fround(parseReal("3.4028235e+38")), 3.4028234663852886e38);
  assert.throws(() => parseReal("1e+39"), RangeError);
  assert.equal(parseReal("0.1"), Math.fround(0.1));
  assert.equal(parseReal("-1e-45"), -1.401298464324817e-45);
});

Deno.test("parseReal() rounds the decimal, not the double, when the double is a tie", () => {
  // 1 + 2^-24 is halfway between the floats 1 and 1 + 2^-23, and these decimals are nearer to it than
  // any other double, so Number() returns the tie and Math.fround() would round it to even (1).
  const tie = 1 + 2 ** -24;
  assert.equal(Number("1.00000005960464477539063"), tie);
  assert.equal(parseReal("1.00000005960464477539063"), 1 + 2 ** -23);
  assert.equal(parseReal("1.00000005960464477539062"), 1);
  assert.equal(parseReal("1.000000059604644775390625"), 1); // the exact tie rounds to even
  assert.equal(parseReal("-1.00000005960464477539063"), -(1 + 2 ** -23));
  assert.equal(parseReal("100000005960464477539063e-23"), 1 + 2 ** -23);
  // 3 - 2^-23 is halfway between 3 - 2^-22 and 3, and here the even neighbour is the larger one.
  assert.equal(Math.fround(3 - 2 ** -23), 3);
  assert.equal(parseReal("2.999999880790710449218749"), 3 - 2 ** -22);
  assert.equal(parseReal("2.999999880790710449218751"), 3);
  for (const text of ["", " 1", "nan", "inf", "0x10", "1_000"]) {
    assert.throws(() => parseDouble(text), SyntaxError, text);
  }
});

Deno.test("parseUuid() returns the unsigned 128-bit value, without flipping any bit", () => {
  assert.equal(parseUuid("00000000-0000-0000-0000-000000000000"), 0n);
  assert.equal(parseUuid("ffffffff-ffff-ffff-ffff-ffffffffffff"), (1n << 128n) - 1n);
  assert.equal(parseUuid("80000000-0000-0000-0000-000000000001"), (1n << 127n) + 1n);
  assert.equal(
    parseUuid("9B2C1F3E-4D5A-4B6C-8D7E-0F1A2B3C4D5E"),
    0x9b2c1f3e4d5a4b6c8d7e0f1a2b3c4d5en,
  );
  for (
    const text of [
      "9b2c1f3e4d5a4b6c8d7e0f1a2b3c4d5e",
      "9b2c1f3e-4d5a-4b6c-8d7e-0f1a2b3c4d5g",
      "9b2c1f3e-4d5a-4b6c-8d7e-0f1a2b3c4d5 ",
      "{9b2c1f3e-4d5a-4b6c-8d7e-0f1a2b3c4d}",
    ]
  ) {
    assert.throws(() => parseUuid(text), SyntaxError, text);
  }
});

Deno.test("parseBoolean() and checkText() accept only what they can store exactly", () => {
  assert.equal(parseBoolean("true"), true);
  assert.equal(parseBoolean("false"), false);
  assert.throws(() => parseBoolean("t"), SyntaxError);
  assert.equal(checkText("é 😀"), "é 😀");
  assert.throws(() => checkText("broken \ud800 surrogate"), RangeError);
});
