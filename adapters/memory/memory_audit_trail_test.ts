import assert from "node:assert/strict";
import { anAuditEntry, auditTrailContract } from "../../tests/contracts/audit_trail_contract.ts";
import { AuditTrailUnavailableError } from "../../ports/audit_trail.ts";
import { MemoryAuditTrail } from "./memory_audit_trail.ts";

Deno.test("MemoryAuditTrail passes the AuditTrail contract", async (t) => {
  await auditTrailContract(t, () => {
    const trail = new MemoryAuditTrail();
    return Promise.resolve({ trail, text: () => Promise.resolve(trail.text()) });
  });
});

Deno.test("MemoryAuditTrail fails checks and appends on demand, and heals", async () => {
  const trail = new MemoryAuditTrail();
  trail.failChecks("disk full");
  trail.failAppends("disk full");
  await assert.rejects(trail.checkWritable(), AuditTrailUnavailableError);
  await assert.rejects(trail.append(anAuditEntry()), AuditTrailUnavailableError);
  assert.equal(trail.lines.length, 0);
  trail.failChecks(undefined);
  trail.failAppends(undefined);
  await trail.checkWritable();
  assert.equal((await trail.append(anAuditEntry())).seq, 1);
});
