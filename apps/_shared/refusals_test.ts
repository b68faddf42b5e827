import assert from "node:assert/strict";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { verifyAuditChain } from "../../domain/audit.ts";
import { memoryLogger } from "./log.ts";
import { RefusalTally } from "./refusals.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function events(lines: readonly string[], event: string): Record<string, unknown>[] {
  return lines.map((l) => JSON.parse(l)).filter((e) => e.event === event);
}

Deno.test("RefusalTally writes one summary per period, only when something was refused", async () => {
  const trail = new MemoryAuditTrail();
  const log = memoryLogger("approval");
  const tally = new RefusalTally({ service: "approval", log, trail, intervalMs: 100 });
  for (let i = 0; i < 500; i++) tally.count(i % 5 === 0 ? "wrong_key" : "missing_key");
  assert.deepEqual(trail.lines, [], "nothing written while the period runs");
  await sleep(180);
  assert.deepEqual(
    trail.refusalSummaries.map((s) => [s.service, s.missing_key, s.wrong_key]),
    [["approval", 400, 100]],
  );
  await sleep(150);
  assert.equal(trail.lines.length, 1, "a quiet period writes nothing");
  tally.count("missing_key");
  await sleep(180);
  assert.deepEqual(trail.refusalSummaries.map((s) => s.missing_key), [400, 1]);
  assert.deepEqual(
    events(log.lines, "requests_refused").map((e) => [e.missing_key, e.wrong_key]),
    [[400, 100], [1, 0]],
  );
  assert.equal((await verifyAuditChain(trail.text())).intact, true);
  await tally.close();
  assert.equal(trail.lines.length, 2);
});

Deno.test("RefusalTally.close() writes what the unfinished period counted", async () => {
  const trail = new MemoryAuditTrail();
  const tally = new RefusalTally({
    service: "metadata",
    log: memoryLogger("metadata"),
    trail,
    intervalMs: 3_600_000,
  });
  tally.count("wrong_key");
  tally.count("wrong_key");
  await tally.close();
  const [summary] = trail.refusalSummaries;
  assert.deepEqual([summary?.missing_key, summary?.wrong_key], [0, 2]);
  assert.ok(Date.parse(summary!.period_start) <= Date.parse(summary!.period_end));
});

Deno.test("RefusalTally logs a summary the trail refuses, and never throws", async () => {
  const trail = new MemoryAuditTrail();
  trail.failAppends("disk full");
  const log = memoryLogger("publish");
  const tally = new RefusalTally({ service: "publish", log, trail, intervalMs: 3_600_000 });
  tally.count("missing_key");
  await tally.close();
  const [failure] = events(log.lines, "audit_write_failed");
  assert.equal(failure?.level, "error");
  assert.deepEqual(JSON.parse(failure?.record as string).missing_key, 1);
  assert.equal(events(log.lines, "requests_refused").length, 1);
});
