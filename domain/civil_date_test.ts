import assert from "node:assert/strict";
import { civilFromDays, daysFromCivil } from "./civil_date.ts";

/** Days from 1970 by JavaScript's own (proleptic Gregorian, astronomical-year) calendar. */
function jsDays(year: number, month: number, day: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day);
  return Math.round(date.getTime() / 86_400_000);
}

Deno.test("daysFromCivil() agrees with JavaScript's calendar from 270000 BC to 270000 AD", () => {
  for (let year = -270_000; year <= 270_000; year += 997) {
    for (const [month, day] of [[1, 1], [2, 28], [3, 1], [12, 31]] as const) {
      assert.equal(daysFromCivil(year, month, day), jsDays(year, month, day), `${year}-${month}`);
    }
  }
});

Deno.test("civilFromDays() inverts daysFromCivil() and agrees with JavaScript's calendar", () => {
  for (let days = -800_000; days < 800_000; days += 367) {
    const date = new Date(days * 86_400_000);
    const civil: [number, number, number] = [
      date.getUTCFullYear(),
      date.getUTCMonth() + 1,
      date.getUTCDate(),
    ];
    assert.equal(daysFromCivil(...civil), days);
    assert.deepEqual(civilFromDays(days), civil);
  }
  assert.deepEqual(civilFromDays(0), [1970, 1, 1]);
  assert.deepEqual(civilFromDays(-719_528), [0, 1, 1]); // 1 BC
  assert.deepEqual(civilFromDays(daysFromCivil(2000, 2, 29)), [2000, 2, 29]);
});
