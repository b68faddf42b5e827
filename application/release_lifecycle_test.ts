import assert from "node:assert/strict";
import { MemoryReleaseStore } from "../adapters/memory/memory_release_store.ts";
import { newRelease, type Release, type Revocation } from "../domain/release.ts";
import type { ReleaseRevoker } from "../ports/release_revoker.ts";
import { ReleaseLifecycle } from "./release_lifecycle.ts";

const KEY = { kind: "key" as const, id: "0123456789abcdef" };
const NOW = new Date("2026-12-06T12:00:00.000Z");
const PUBLISHED = {
  receipt: { jws: "a.b.c", claims: { release_id: "r" } },
  crate: { "@graph": [] },
  data_published: [{ file_path: "p/data.csv", hash_value: "ab", total_bytes: 3 }],
};

/** A publish service whose revoke is idempotent, as the real one: one certificate per release. */
class FakeRevoker implements ReleaseRevoker {
  readonly calls: { release: Release; revocation: Revocation }[] = [];
  revoke(release: Release, revocation: Revocation) {
    this.calls.push({ release, revocation });
    return Promise.resolve({ release_id: release.id, certificate_id: `cert-${release.id}` });
  }
}

function lifecycleOn(store: MemoryReleaseStore, revoker: ReleaseRevoker, now: () => Date) {
  return new ReleaseLifecycle({ store, revoker, now, expiryDays: 1 });
}

Deno.test("two replicas sweeping at once revoke each expired release once, with one certificate", async () => {
  const storage = new Map();
  const clock = { now: NOW };
  const revoker = new FakeRevoker();
  const [a, b] = [0, 1].map(() =>
    lifecycleOn(new MemoryReleaseStore(storage), revoker, () => clock.now)
  );
  const store = new MemoryReleaseStore(storage);
  const ids: string[] = [];
  for (const project of ["P1", "P2", "P3"]) {
    const { release } = await store.ensure(newRelease({
      project_name: project,
      project_start_time: "20261206_120000",
      destination: { type: "filestore", name: "LSC" },
      requested_by: KEY,
    }, NOW.toISOString()));
    await a!.recordPublication(release.id, PUBLISHED, a!.expiryFor(undefined));
    ids.push(release.id);
  }
  const published = await store.get(ids[0]!);
  assert.equal(published?.expires_at, "2026-12-07T12:00:00.000Z", "the policy's default: one day");
  assert.deepEqual(published?.publication?.crate, PUBLISHED.crate);

  clock.now = new Date(NOW.getTime() + 86_400_000);
  const reports = await Promise.all([a!.sweep(), b!.sweep()]);
  assert.deepEqual(reports.flatMap((r) => r.failed), []);
  for (const id of ids) {
    const release = await store.get(id);
    assert.equal(release?.state, "revoked");
    assert.deepEqual(release?.revocation?.certificate, {
      release_id: id,
      certificate_id: `cert-${id}`,
    });
    assert.deepEqual(release?.revocation?.requested_by, { kind: "system", id: "expiry" });
  }
  const again = await a!.sweep();
  assert.deepEqual(again, { revoked: [], failed: [] });
});

Deno.test("a publication without a valid receipt and crate records the expiry only", async () => {
  const store = new MemoryReleaseStore();
  const lifecycle = lifecycleOn(store, new FakeRevoker(), () => NOW);
  const { release } = await store.ensure(newRelease({
    project_name: "P",
    project_start_time: "20261206_120000",
    destination: { type: "filestore", name: "LSC" },
    requested_by: KEY,
  }, NOW.toISOString()));
  const recorded = await lifecycle.recordPublication(
    release.id,
    { receipt: { jws: "" }, crate: [] },
    null,
  );
  assert.equal(recorded.publication, null);
  await assert.rejects(lifecycle.crate(release.id), { code: "release_not_published" });
  await assert.rejects(lifecycle.crate("nope"), { code: "release_not_found" });
});
