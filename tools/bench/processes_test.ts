import assert from "node:assert/strict";
import {
  cpuSeconds,
  cpuSecondsOfStat,
  peakRssMb,
  peakRssMbOfStatus,
  resetPeakRss,
  sh,
} from "./processes.ts";

Deno.test("sh() times a command and reports a failing one with its stderr", async () => {
  assert.ok(await sh("true") >= 0);
  await assert.rejects(sh("echo broken >&2; exit 3"), (e: Error) => {
    assert.equal(e.message, "echo broken >&2; exit 3: broken\n");
    return true;
  });
});

Deno.test("cpuSecondsOfStat() adds utime and stime after a command name with spaces", () => {
  const stat = "4242 (deno (main) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 9 0";
  assert.equal(cpuSecondsOfStat(stat), 3.25);
});

Deno.test("peakRssMbOfStatus() reads VmHWM", () => {
  assert.equal(peakRssMbOfStatus("Name:\tdeno\nVmHWM:\t  204800 kB\nVmRSS:\t1 kB\n"), 200);
  assert.equal(peakRssMbOfStatus("Name:\tdeno\n"), 0);
});

Deno.test("cpuSeconds(), peakRssMb() and resetPeakRss() read this process", async () => {
  assert.ok(await cpuSeconds(Deno.pid) > 0);
  await resetPeakRss(Deno.pid);
  assert.ok(await peakRssMb(Deno.pid) > 0);
});
