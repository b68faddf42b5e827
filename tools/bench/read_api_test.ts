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

Deno.test("readApiReport() has a row through the gateway with both services' peak RSS", () => {
  const gateway = {
    seconds: 6,
    limit: 2,
    publishPeakRssMb: 130.2,
    gatewayPeakRssMb: 90.6,
    gatewayRssBeforeMb: 80,
    inOrderOnce: true,
  };
  const report = readApiReport({ ...RESULT, gateway });
  assert.match(report, /\| publish route \| 1000000 \| 100 \| 5\.50 \| 2\.75 \| 2\.00 \|/);
  assert.match(
    report,
    /\| gateway, HAWK \| 1000000 \| 100 \| 6\.00 \| 2\.00 \| 3\.00 \| gateway 80 \| publish 130, gateway 91 \| yes \|$/,
  );
  assert.doesNotMatch(readApiReport(RESULT), /gateway/);
  assert.match(
    readApiSummary({ ...RESULT, gateway }),
    /via the gateway \(HAWK\): 6\.00 s.*ratio 3\.00/,
  );
});
