import assert from "node:assert/strict";
import { cronMatches, InvalidCronError, latestCronTime, nextCronTime, parseCron } from "./cron.ts";

const at = (iso: string) => new Date(iso);

Deno.test("parseCron reads lists, ranges and steps", () => {
  const s = parseCron("*/15 9-17/4 1,15 * 1-5");
  assert.deepEqual([...s.minutes], [0, 15, 30, 45]);
  assert.deepEqual([...s.hours], [9, 13, 17]);
  assert.deepEqual([...s.daysOfMonth], [1, 15]);
  assert.equal(s.months.size, 12);
  assert.deepEqual([...s.daysOfWeek], [1, 2, 3, 4, 5]);
});

Deno.test("parseCron reads day of week 7 as Sunday", () => {
  assert.deepEqual([...parseCron("0 0 * * 7").daysOfWeek], [0]);
});

Deno.test("parseCron refuses wrong field counts, values out of range and other syntax", () => {
  for (
    const bad of ["* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "* * 0 * *", "* * * 13 *"]
  ) {
    assert.throws(() => parseCron(bad), InvalidCronError, bad);
  }
  for (const bad of ["5-1 * * * *", "*/0 * * * *", "@daily", "0 0 * JAN *", "1,,2 * * * *"]) {
    assert.throws(() => parseCron(bad), InvalidCronError, bad);
  }
});

Deno.test("nextCronTime finds the next minute strictly after, in UTC", () => {
  const daily = parseCron("30 3 * * *");
  assert.equal(
    nextCronTime(daily, at("2026-12-07T01:00:00Z"))?.toISOString(),
    "2026-12-07T03:30:00.000Z",
  );
  assert.equal(
    nextCronTime(daily, at("2026-12-07T03:30:00Z"))?.toISOString(),
    "2026-12-08T03:30:00.000Z",
  );
  assert.equal(
    nextCronTime(parseCron("0 0 29 2 *"), at("2026-03-01T00:00:00Z"))?.toISOString(),
    "2028-02-29T00:00:00.000Z",
  );
  assert.equal(nextCronTime(parseCron("0 0 31 2 *"), at("2026-01-01T00:00:00Z")), undefined);
});

Deno.test("both day fields restricted: either matches (Vixie cron)", () => {
  const s = parseCron("0 12 1 * 1");
  assert.equal(cronMatches(s, at("2026-12-01T12:00:00Z")), true); // the 1st, a Tuesday
  assert.equal(cronMatches(s, at("2026-12-07T12:00:00Z")), true); // a Monday
  assert.equal(cronMatches(s, at("2026-12-08T12:00:00Z")), false);
  const mondays = parseCron("0 12 * * 1");
  assert.equal(cronMatches(mondays, at("2026-12-01T12:00:00Z")), false);
});

Deno.test("latestCronTime gives the one slot to run after a gap, or none", () => {
  const hourly = parseCron("0 * * * *");
  assert.equal(
    latestCronTime(hourly, at("2026-12-07T01:00:00Z"), at("2026-12-07T04:20:00Z"))?.toISOString(),
    "2026-12-07T04:00:00.000Z",
  );
  assert.equal(
    latestCronTime(hourly, at("2026-12-07T04:00:00Z"), at("2026-12-07T04:59:00Z")),
    undefined,
  );
});
