import assert from "node:assert/strict";
import { MemoryAuditTrail } from "../../adapters/memory/memory_audit_trail.ts";
import { type DataRead, verifyAuditChain } from "../../domain/audit.ts";
import { memoryLogger } from "./log.ts";
import { DataReadAudit } from "./data_read_audit.ts";

function aRead(i: number): DataRead {
  return {
    time: new Date(Date.UTC(2026, 11, 7, 3, 0, i)).toISOString(),
    request_id: `req-${i}`,
    client_id: "pipeline-a",
    action: "read_rows",
    release_id: "r1",
    dataset: "clinic",
    table: "people",
    status: 200,
    error_code: null,
    rows_returned: 1000,
    cursor_in_sha256: null,
    cursor_out_sha256: "a".repeat(64),
  };
}

Deno.test("DataReadAudit: N reads cost at most ceil(N / batch) appends, and close() writes the rest", async () => {
  for (const [n, batch] of [[1, 10], [10, 10], [25, 10], [1000, 256]] as const) {
    const trail = new MemoryAuditTrail();
    const audit = new DataReadAudit({
      service: "approval",
      log: memoryLogger(),
      trail,
      flushMs: 60_000,
      maxReadsPerRecord: batch,
    });
    for (let i = 0; i < n; i++) audit.record(aRead(i));
    await audit.close();
    assert.ok(trail.dataReads.length <= Math.ceil(n / batch), `${n} reads, batches of ${batch}`);
    assert.deepEqual(
      trail.dataReads.flatMap((r) => r.reads.map((read) => read.request_id)),
      Array.from({ length: n }, (_, i) => `req-${i}`),
      "every read, once, in order",
    );
    assert.equal((await verifyAuditChain(trail.text())).intact, true);
  }
});

Deno.test("DataReadAudit: a period's reads are one record; a read after close() is written at once", async () => {
  const trail = new MemoryAuditTrail();
  const audit = new DataReadAudit({ service: "approval", log: memoryLogger(), trail, flushMs: 30 });
  for (let i = 0; i < 7; i++) audit.record(aRead(i));
  assert.equal(trail.dataReads.length, 0);
  // The period's timer writes them; a loaded machine may run it late, so wait for it (at most 10 s).
  for (let waited = 0; trail.dataReads.length === 0 && waited < 10_000; waited += 20) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(trail.dataReads.length, 1);
  const [record] = trail.dataReads;
  assert.equal(record!.reads.length, 7);
  assert.equal(record!.period_start, aRead(0).time);
  assert.equal(record!.period_end, aRead(6).time);
  await audit.close();
  assert.equal(trail.dataReads.length, 1, "nothing left, nothing written");
  audit.record(aRead(7));
  await audit.flush();
  assert.equal(trail.dataReads.length, 2);
});

Deno.test("DataReadAudit: a record the trail refuses goes to the log, not lost", async () => {
  const trail = new MemoryAuditTrail();
  trail.failAppends("disk full");
  const log = memoryLogger();
  const audit = new DataReadAudit({ service: "approval", log, trail, flushMs: 60_000 });
  audit.record(aRead(1));
  await audit.close();
  const line = log.lines.find((l) => l.includes('"audit_write_failed"'));
  assert.ok(line);
  assert.match(line, /req-1/);
});
