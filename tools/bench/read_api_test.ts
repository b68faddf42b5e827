import assert from "node:assert/strict";
import { readApiReport, readApiSummary } from "./read_api.ts";

const RESULT = {
  rows: 1_000_000,
  pages: 100,
  seconds: 5.5,
  limit: 2.75,
  peakRssMb: 120.4,
  rssBeforeMb: 110,
  inOrderOnce: true,
};

Deno.test("readApiReport() gives the ratio to psql \\copy and the memory before and at peak", () => {
  const report = readApiReport(RESULT);
  assert.match(report, /\| 1000000 \| 100 \| 5\.50 \| 2\.75 \| 2\.00 \| 110 \| 120 \| yes \|/);
  assert.match(readApiReport({ ...RESULT, inOrderOnce: false }), /\| NO \|$/);
  assert.match(readApiSummary(RESULT), /ratio 2\.00/);
});
