import assert from "node:assert/strict";
import { formatDouble, formatFloat32, truncateToMicroseconds } from "./logical_type.ts";

// What PostgreSQL 15 prints for these float8 values with extra_float_digits = 1.
const POSTGRES_TEXT: readonly [number, string][] = [
  [0.1 + 0.2, "0.30000000000000004"],
  [1e-4, "0.0001"],
  [9.999e-5, "9.999e-05"],
  [1e-5, "1e-05"],
  [123456.789, "123456.789"],
  [-0.5, "-0.5"],
  [999999999999999.9, "999999999999999.9"],
  [1e15, "1e+15"],
  [1.5e15, "1.5e+15"],
  [-1e15, "-1e+15"],
  [1e21, "1e+21"],
  [1.7976931348623157e308, "1.7976931348623157e+308"],
  [5e-324, "5e-324"],
  [100, "100"],
  [-0, "-0"],
  [0, "0"],
  [NaN, "NaN"],
  [Infinity, "Infinity"],
  [-Infinity, "-Infinity"],
];

Deno.test("formatDouble writes what PostgreSQL writes", () => {
  for (const [value, text] of POSTGRES_TEXT) assert.equal(formatDouble(value), text, `${value}`);
});

Deno.test("formatDouble keeps the shortest round-trip digits and switches to exponents outside [1e-4, 1e15)", () => {
  const view = new DataView(new ArrayBuffer(8));
  for (let i = 0; i < 20_000; i++) {
    // Random bit patterns cover every magnitude; the exponent range below keeps them finite.
    view.setUint32(0, Math.floor(Math.random() * 2 ** 32));
    view.setUint32(4, Math.floor(Math.random() * 2 ** 32));
    const value = view.getFloat64(0);
    if (!Number.isFinite(value) || value === 0) continue;
    const text = formatDouble(value);
    assert.equal(Number(text), value, text);
    const exponent = Number(value.toExponential().split("e")[1]);
    const usesExponent = /e[+-]\d\d+$/.test(text);
    assert.equal(usesExponent, exponent < -4 || exponent >= 15, text);
    const digits = (s: string) =>
      s.replace(/e.*$/, "").replace(/[-.]/g, "").replace(/^0+/, "").replace(/0+$/, "");
    assert.equal(digits(text), digits(value.toExponential()), text);
  }
});

Deno.test("formatFloat32() writes the fewest digits that read back to the same float", () => {
  for (
    const [value, expected] of [
      [Math.fround(0.1), "0.1"],
      [Math.fround(0.3), "0.3"],
      [Math.fround(123456.7), "123456.7"],
      [1234567, "1234567"],
      [Math.fround(123456789012345), "123456790000000"],
      [Math.fround(1e15), "1e+15"],
      [Math.fround(3.4028234e38), "3.4028235e+38"],
      [Math.fround(1.4e-45), "1e-45"],
      [Math.fround(1.17549435e-38), "1.1754944e-38"],
      [-2.5, "-2.5"],
      [0, "0"],
    ] as const
  ) {
    assert.equal(formatFloat32(value), expected, String(value));
  }
});

Deno.test("truncateToMicroseconds() drops digits past the sixth, never rounding", async (t) => {
  const cases: [string, string][] = [
    // Rounding would move these into the next second, day or year.
    ["2020-12-31 23:59:59.9999999", "2020-12-31 23:59:59.999999"],
    ["2020-12-31 23:59:59.9999999+00", "2020-12-31 23:59:59.999999+00"],
    ["9999-12-31 23:59:59.9999999+00", "9999-12-31 23:59:59.999999+00"],
    ["23:59:59.9999999", "23:59:59.999999"],
    // Trailing zeros are trimmed again, as canonical text has them.
    ["12:00:00.1000001", "12:00:00.1"],
    ["2020-01-01 00:00:00.0000001", "2020-01-01 00:00:00"],
    ["2020-01-01 00:00:00.1234567 BC", "2020-01-01 00:00:00.123456 BC"],
    // Six digits or fewer are left alone, offsets included.
    ["2020-01-01 00:00:00.123456+00", "2020-01-01 00:00:00.123456+00"],
    ["2020-01-01 00:00:00.1+05:30", "2020-01-01 00:00:00.1+05:30"],
    ["12:00:00", "12:00:00"],
    ["infinity", "infinity"],
  ];
  for (const [text, expected] of cases) {
    await t.step(text, () => assert.equal(truncateToMicroseconds(text), expected));
  }
});
