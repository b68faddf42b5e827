/**
 * The contract every AuditTrail adapter passes, the in-memory fake included.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type AuditEntry,
  canonicalJson,
  GENESIS_SHA256,
  sha256Hex,
  verifyAuditChain,
} from "../../domain/audit.ts";
import type { AuditTrail } from "../../ports/audit_trail.ts";

/** A fresh, empty trail and a way to read what it stores. */
export interface AuditTrailUnderTest {
  readonly trail: AuditTrail;
  /** The trail's content, as its file would hold it. */
  text(): Promise<string>;
  /** Another instance on the same storage (another process's view), when the adapter has one. */
  reopen?(): AuditTrail;
}

/** A valid entry, with overrides. */
export function anAuditEntry(overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    kind: "operation",
    time: "2025-06-11T09:30:00.000Z",
    request_id: crypto.randomUUID(),
    service_request_id: crypto.randomUUID(),
    service: "publish",
    caller_key_id: "0123456789abcdef",
    action: "/data-publish/publish",
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    source_host: null,
    schema_name: null,
    tables: null,
    destination: { type: "filestore", name: "LSC", format: "csv" },
    outcome: "success",
    status: 200,
    error_code: null,
    files: [{ path: "data/outputs/oncology/t.csv", sha512: "ab".repeat(64), bytes: 12 }],
    destination_tables: null,
    opal_resources: null,
    ...overrides,
  };
}

/**
 * Runs the AuditTrail contract.
 *
 * @param make builds an empty trail on fresh storage.
 */
export async function auditTrailContract(
  t: Deno.TestContext,
  make: () => Promise<AuditTrailUnderTest>,
): Promise<void> {
  await t.step("checkWritable() resolves for a new trail, which is empty", async () => {
    const { trail, text } = await make();
    await trail.checkWritable();
    assert.deepEqual(await verifyAuditChain(await text()), { intact: true, records: 0 });
  });

  await t.step("append() chains the first record to the genesis and stores one line", async () => {
    const { trail, text } = await make();
    const entry = anAuditEntry();
    const record = await trail.append(entry);
    assert.equal(record.seq, 1);
    assert.equal(record.prev_sha256, GENESIS_SHA256);
    const stored = await text();
    assert.ok(stored.endsWith("\n") && stored.indexOf("\n") === stored.length - 1, "one line");
    const parsed = JSON.parse(stored);
    assert.deepEqual(parsed, {
      ...entry,
      seq: 1,
      prev_sha256: GENESIS_SHA256,
      sha256: record.sha256,
    });
    assert.equal(stored, canonicalJson(parsed) + "\n", "the line is canonical JSON");
    const { sha256: _, ...content } = parsed;
    assert.equal(record.sha256, await sha256Hex(canonicalJson(content)));
  });

  await t.step("append() chains each record to the one before", async () => {
    const { trail, text } = await make();
    const records = [];
    for (const status of [200, 403, 422]) {
      records.push(await trail.append(anAuditEntry({ status, outcome: "error" })));
    }
    assert.deepEqual(records.map((r) => r.seq), [1, 2, 3]);
    assert.equal(records[1]?.prev_sha256, records[0]?.sha256);
    assert.equal(records[2]?.prev_sha256, records[1]?.sha256);
    assert.deepEqual(await verifyAuditChain(await text()), {
      intact: true,
      records: 3,
      last: { seq: 3, sha256: records[2]?.sha256 },
    });
  });

  await t.step("concurrent appends form one chain holding every record once", async () => {
    const { trail, text } = await make();
    const ids = Array.from({ length: 25 }, () => crypto.randomUUID());
    await Promise.all(ids.map((request_id) => trail.append(anAuditEntry({ request_id }))));
    const content = await text();
    const result = await verifyAuditChain(content);
    assert.equal(result.intact, true, JSON.stringify(result));
    assert.equal(result.records, 25);
    const stored = content.trimEnd().split("\n").map((line) => JSON.parse(line).request_id);
    assert.deepEqual([...stored].sort(), [...ids].sort());
  });

  await t.step("append() rejects an invalid entry with TypeError and stores nothing", async () => {
    const { trail, text } = await make();
    await trail.append(anAuditEntry());
    const before = await text();
    await assert.rejects(
      trail.append(anAuditEntry({ status: 42, time: "yesterday" })),
      TypeError,
    );
    assert.equal(await text(), before);
  });

  const probe = await make();
  if (probe.reopen !== undefined) {
    await t.step("two instances on the same storage continue one chain", async () => {
      const { trail, text, reopen } = await make();
      const other = reopen!();
      await trail.append(anAuditEntry());
      await Promise.all([
        other.append(anAuditEntry()),
        trail.append(anAuditEntry()),
        other.append(anAuditEntry()),
      ]);
      const result = await verifyAuditChain(await text());
      assert.equal(result.intact, true, JSON.stringify(result));
      assert.equal(result.records, 4);
    });
  }
}
