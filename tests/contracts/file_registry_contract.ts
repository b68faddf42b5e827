/**
 * The contract every FileRegistry adapter passes, the in-memory fake included.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { FileRecord } from "../../domain/http_file_sources.ts";
import type { FileRegistry } from "../../ports/file_registry.ts";

/** A record with overrides. */
export function aFileRecord(overrides: Partial<FileRecord> = {}): FileRecord {
  return {
    source: "weekly",
    url: "https://files.example/a.csv",
    state: "processed",
    etag: '"v1"',
    last_modified: null,
    bytes: 3,
    sha512: "a".repeat(128),
    attempts: 0,
    next_attempt_at: null,
    run_id: "run-1",
    reason: null,
    updated_at: "2026-12-07T00:00:00.000Z",
    ...overrides,
  };
}

/** Runs the contract; `open` gives a fresh, empty registry and maybe a second view of its storage. */
export async function fileRegistryContract(
  t: Deno.TestContext,
  open: () => Promise<{ registry: FileRegistry; reopen?: () => Promise<FileRegistry> }>,
): Promise<void> {
  await t.step("an empty source has no records", async () => {
    const { registry } = await open();
    await using _ = registry;
    assert.deepEqual(await registry.records("weekly"), []);
  });

  await t.step("put stores, replaces by source and URL, and lists by URL", async () => {
    const { registry, reopen } = await open();
    await using _ = registry;
    const b = aFileRecord({ url: "https://files.example/b.csv" });
    await registry.put([b, aFileRecord()]);
    await registry.put([aFileRecord({ source: "other" })]);
    const failed = aFileRecord({
      state: "failed",
      attempts: 1,
      next_attempt_at: "2026-12-07T00:01:00.000Z",
      reason: "http_file_failed",
      sha512: null,
    });
    await registry.put([failed]);
    assert.deepEqual(await registry.records("weekly"), [failed, b]);
    assert.equal((await registry.records("other")).length, 1);
    if (reopen !== undefined) {
      await using again = await reopen();
      assert.deepEqual(await again.records("weekly"), [failed, b]);
    }
  });

  await t.step("an invalid record stores nothing of its batch", async () => {
    const { registry } = await open();
    await using _ = registry;
    await assert.rejects(
      registry.put([aFileRecord(), aFileRecord({ url: "u2", sha512: "not hex" })]),
    );
    assert.deepEqual(await registry.records("weekly"), []);
  });
}
