import assert from "node:assert/strict";
import { MemoryReleaseStore } from "../adapters/memory/memory_release_store.ts";
import { newRelease, type Release, type Revocation } from "../domain/release.ts";
import type { ReleaseRevoker } from "../ports/release_revoker.ts";
import type { PublishRuns, PublishRunSummary } from "../ports/publish_runs.ts";
import { CLOCK_SKEW_MS, ReleaseLifecycle } from "./release_lifecycle.ts";

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
    const release = await aStoredRelease(store, project);
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
  assert.deepEqual(again, { settled: [], revoked: [], failed: [] });
});

Deno.test("the sweep records a revocation before storing it revoked; a failed record leaves it revoking, to retry", async () => {
  const store = new MemoryReleaseStore();
  const clock = { now: NOW };
  const revoker = new FakeRevoker();
  const recorded: { state: string | undefined; certificate: unknown }[] = [];
  let recordFails = true;
  const lifecycle = new ReleaseLifecycle({
    store,
    revoker,
    now: () => clock.now,
    expiryDays: 1,
    recordSweepRevocation: async (release, certificate) => {
      recorded.push({ state: (await store.get(release.id))?.state, certificate });
      if (recordFails) throw new Error("the audit trail is full");
    },
  });
  const expiring = await aStoredRelease(store, "P1");
  await lifecycle.recordPublication(expiring.id, PUBLISHED, lifecycle.expiryFor(undefined));
  const manual = await aStoredRelease(store, "P2");
  await lifecycle.recordPublication(manual.id, PUBLISHED, null);
  clock.now = new Date(NOW.getTime() + 86_400_000);

  const failed = await lifecycle.sweep();
  assert.deepEqual(failed.revoked, []);
  assert.deepEqual(failed.failed, [{ id: expiring.id, code: "internal_error" }]);
  assert.equal((await store.get(expiring.id))?.state, "revoking", "not revoked without its record");

  recordFails = false;
  clock.now = new Date(clock.now.getTime() + 61_000);
  const retried = await lifecycle.sweep();
  assert.deepEqual(retried.failed, []);
  assert.deepEqual(retried.revoked.map((r) => r.id), [expiring.id]);
  const certificate = { release_id: expiring.id, certificate_id: `cert-${expiring.id}` };
  assert.deepEqual((await store.get(expiring.id))?.revocation?.certificate, certificate);
  assert.deepEqual(recorded, [
    { state: "revoking", certificate },
    { state: "revoking", certificate },
  ], "recorded while the release is still revoking, at least once");

  await lifecycle.revoke(manual.id, { reason: "withdrawn", requested_by: KEY });
  assert.equal((await store.get(manual.id))?.state, "revoked");
  assert.equal(recorded.length, 2, "a revocation on request is recorded by its request, not here");
});

Deno.test("a publication without a valid receipt and crate records the expiry only", async () => {
  const store = new MemoryReleaseStore();
  const lifecycle = lifecycleOn(store, new FakeRevoker(), () => NOW);
  const release = await aStoredRelease(store, "P");
  const recorded = await lifecycle.recordPublication(
    release.id,
    { receipt: { jws: "" }, crate: [] },
    null,
  );
  assert.equal(recorded.publication, null);
  await assert.rejects(lifecycle.crate(release.id), { code: "release_not_published" });
  await assert.rejects(lifecycle.crate("nope"), { code: "release_not_found" });
});

/** A release of project run `project` / 20261206_120000 on filestore `destination`, stored. */
async function aStoredRelease(
  store: MemoryReleaseStore,
  project: string,
  destination = "LSC",
): Promise<Release> {
  const { release } = await store.ensure(newRelease({
    project_name: project,
    project_start_time: "20261206_120000",
    destination: { type: "filestore", name: destination },
    requested_by: KEY,
  }, NOW.toISOString()));
  return release;
}

/** The publish service's runs, as a test sets them; counts reads. */
class FakePublishRuns implements PublishRuns {
  readonly runs = new Map<string, PublishRunSummary>();
  reads = 0;
  get(id: string) {
    this.reads++;
    return Promise.resolve(this.runs.get(id));
  }
  latestPublish(
    of: Pick<PublishRunSummary, "project_name" | "project_start_time" | "destination">,
    since: string,
  ) {
    const newestFirst = [...this.runs.values()].sort((a, b) =>
      b.created_at.localeCompare(a.created_at)
    );
    return Promise.resolve(
      newestFirst.find((run) =>
        run.action === "publish" && run.project_name === of.project_name &&
        run.project_start_time === of.project_start_time &&
        JSON.stringify(run.destination) === JSON.stringify(of.destination) &&
        run.created_at >= since
      ),
    );
  }
}

function aPublishRun(id: string, overrides: Partial<PublishRunSummary> = {}): PublishRunSummary {
  return {
    id,
    action: "publish",
    state: "running",
    project_name: "P1",
    project_start_time: "20261206_120000",
    destination: { type: "filestore", name: "LSC" },
    outcome: null,
    created_at: "2026-12-06T12:00:00.000Z",
    finished_at: null,
    ...overrides,
  };
}

const SUCCEEDED = {
  state: "succeeded",
  outcome: { status: 200, body: { status: "success", payload: PUBLISHED } },
  finished_at: "2026-12-06T12:10:00.000Z",
} as const;

Deno.test("two replicas sweeping at once settle a finished publish run once, as a synchronous publish", async () => {
  const storage = new Map();
  const runs = new FakePublishRuns();
  const [a, b] = [0, 1].map(() =>
    new ReleaseLifecycle({
      store: new MemoryReleaseStore(storage),
      revoker: new FakeRevoker(),
      now: () => NOW,
      runs,
    })
  );
  const store = new MemoryReleaseStore(storage);
  const release = await aStoredRelease(store, "P1");
  await a!.recordPublishAccepted(release.id, "run-1", null);
  runs.runs.set("run-1", aPublishRun("run-1"));
  assert.deepEqual((await a!.sweep()).settled, [], "still running");

  runs.runs.set("run-1", aPublishRun("run-1", SUCCEEDED));
  const reports = await Promise.all([a!.sweep(), b!.sweep()]);
  assert.deepEqual(reports.flatMap((r) => r.failed), []);
  const stored = await store.get(release.id);
  assert.deepEqual(stored?.pending_publishes, []);
  assert.deepEqual(stored?.publication, {
    published_at: SUCCEEDED.finished_at,
    receipt: PUBLISHED.receipt,
    crate: PUBLISHED.crate,
    files: PUBLISHED.data_published,
  });
  const reads = runs.reads;
  assert.deepEqual(await a!.sweep(), { settled: [], revoked: [], failed: [] });
  assert.equal(runs.reads, reads, "a settled run is read no more");
  assert.deepEqual(await a!.settlePublishRun(aPublishRun("run-1", SUCCEEDED)), []);
});

Deno.test("settlePublishRun waits for a run's end and settles only the releases waiting for it", async () => {
  const store = new MemoryReleaseStore();
  const lifecycle = lifecycleOn(store, new FakeRevoker(), () => NOW);
  const ids: string[] = [];
  for (const name of ["LSC", "OTHER"]) {
    const release = await aStoredRelease(store, "P1", name);
    await lifecycle.recordPublishAccepted(release.id, `run-${name}`, null);
    ids.push(release.id);
  }
  for (const state of ["queued", "running", "interrupted"] as const) {
    assert.deepEqual(await lifecycle.settlePublishRun(aPublishRun("run-LSC", { state })), []);
  }
  assert.deepEqual(
    await lifecycle.settlePublishRun(aPublishRun("run-LSC", { ...SUCCEEDED, action: "package" })),
    [],
    "a package run publishes nothing",
  );
  const [settled, ...more] = await lifecycle.settlePublishRun(aPublishRun("run-LSC", SUCCEEDED));
  assert.deepEqual(more, []);
  assert.equal(settled?.id, ids[0]);
  assert.deepEqual(settled?.publication?.receipt, PUBLISHED.receipt);
  const other = await store.get(ids[1]!);
  assert.deepEqual(other?.pending_publishes.map((p) => p.run_id), ["run-OTHER"]);
  // A succeeded run whose reply is not a success envelope records nothing but is settled.
  const [odd] = await lifecycle.settlePublishRun(
    aPublishRun("run-OTHER", { ...SUCCEEDED, outcome: { status: 200, body: [] } }),
  );
  assert.equal(odd?.publication, null);
  assert.deepEqual(odd?.pending_publishes, []);
});

Deno.test("a publish whose reply never came: the newest publish run of its project run since it was sent becomes pending", async () => {
  const runs = new FakePublishRuns();
  const store = new MemoryReleaseStore();
  const lifecycle = new ReleaseLifecycle({
    store,
    revoker: new FakeRevoker(),
    now: () => NOW,
    runs,
  });
  const release = await aStoredRelease(store, "P1");
  const sentAt = new Date("2026-12-06T12:00:00.000Z");
  const at = (ms: number) => new Date(sentAt.getTime() + ms).toISOString();
  // Not it: too old, another destination, another project run, a package.
  runs.runs.set("old", aPublishRun("old", { created_at: at(-CLOCK_SKEW_MS - 1) }));
  runs.runs.set("other", aPublishRun("other", { destination: { type: "filestore", name: "X" } }));
  runs.runs.set("start", aPublishRun("start", { project_start_time: "20261207_120000" }));
  runs.runs.set("package", aPublishRun("package", { action: "package", created_at: at(2) }));
  assert.equal(await lifecycle.recordPublishUnanswered(release.id, sentAt, null), undefined);
  assert.deepEqual((await store.get(release.id))?.pending_publishes, [], "nothing recorded");

  // Within the clock skew, and the newest of two.
  runs.runs.set("skewed", aPublishRun("skewed", { created_at: at(-CLOCK_SKEW_MS + 1) }));
  runs.runs.set("ours", aPublishRun("ours", { created_at: at(1) }));
  const followed = await lifecycle.recordPublishUnanswered(release.id, sentAt, null);
  assert.deepEqual(followed?.pending_publishes.map((p) => p.run_id), ["ours"]);

  // Its end is then recorded as an accepted run's is.
  runs.runs.set("ours", aPublishRun("ours", { ...SUCCEEDED, created_at: at(1) }));
  await lifecycle.sweep();
  const published = await store.get(release.id);
  assert.deepEqual(published?.pending_publishes, []);
  assert.notEqual(published?.publication, null);
  await assert.rejects(lifecycle.recordPublishUnanswered("nope", sentAt, null), {
    code: "release_not_found",
  });
});
