/**
 * The contract every ReleaseStore adapter passes, the in-memory fake included.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseApprovalPolicy } from "../../domain/approval_policy.ts";
import {
  completeRevocation,
  type DecidingPerson,
  type Decision,
  gatesOpenedBy,
  InvalidReleaseTransitionError,
  newDecision,
  newRelease,
  type NewReleaseInput,
  type Release,
  ReleaseClosedError,
  type ReleaseRequest,
  ReleaseRevokedError,
  SelfApprovalError,
  settlePendingPublish,
  startRevocation,
  withPendingPublish,
  withPublication,
} from "../../domain/release.ts";
import {
  InvalidReleaseCursorError,
  ReleaseNotFoundError,
  type ReleaseStore,
  ReleaseStoreUnavailableError,
} from "../../ports/release_store.ts";

/** A fresh, empty store, and a way to open a second instance on the same storage. */
export interface ReleaseStoreUnderTest {
  readonly store: ReleaseStore;
  /** Another instance on the same storage (another process's view). The contract closes it. */
  reopen(): Promise<ReleaseStore>;
}

/** The ISO instant `seconds` after a fixed origin. */
export function instant(seconds: number): string {
  return new Date(Date.UTC(2026, 11, 1) + seconds * 1000).toISOString();
}

/** A new release created at `instant(seconds)`. */
export function aRelease(seconds: number, overrides: Partial<NewReleaseInput> = {}): Release {
  return newRelease({
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    destination: { type: "filestore", name: "LSC" },
    requested_by: { kind: "key", id: "0123456789abcdef" },
    ...overrides,
  }, instant(seconds));
}

/** What a request for dataset (schema) `schema` asked for. */
export function aRequest(schema: string): ReleaseRequest {
  return {
    source: { type: "postgresql", host: "db.example", port: 5432, database: "warehouse" },
    datasets: [{
      name: `Dataset ${schema}`,
      schema_name: schema,
      description: "A <dataset> & more",
      tables: [{
        name: "person",
        description: null,
        columns: [{ name: "id", description: "The person" }, { name: "age", description: null }],
      }, { name: "visit", description: "Visits", columns: null }],
    }],
    credentials: { username_key: "db-user", password_key: "db-password" },
  };
}

/** The policy the contract decides under: one gate needing three output checkers. */
export const CONTRACT_POLICY = parseApprovalPolicy({
  approval_types: { OUTPUT_CHECKER: { roles: ["output-checker"] } },
  gates: [{ name: "sign_off", before: "package", require: { OUTPUT_CHECKER: 3 } }],
  destinations: ["LSC"],
});

const NOW = instant(100);

function checker(id: string): DecidingPerson {
  return { id, issuer: "https://idp.example", name: `Checker ${id}`, roles: ["output-checker"] };
}

/** The callback of `decide` for `who` approving (or `decision`) at NOW under the contract policy. */
function by(who: string, decision: Decision["decision"] = "approve") {
  return (release: Release): Decision =>
    newDecision(release, CONTRACT_POLICY, checker(who), {
      gate: "sign_off",
      approval_type: "OUTPUT_CHECKER",
      decision,
      manifest_digest: null,
    }, NOW);
}

/**
 * Runs the ReleaseStore contract.
 *
 * @param make builds a store on fresh, empty storage; the contract closes it.
 */
export async function releaseStoreContract(
  t: Deno.TestContext,
  make: () => Promise<ReleaseStoreUnderTest>,
): Promise<void> {
  const step = (name: string, body: (under: ReleaseStoreUnderTest) => Promise<void>) =>
    t.step(name, async () => {
      const under = await make();
      try {
        await body(under);
      } finally {
        await under.store.close();
      }
    });

  await step("ensure stores a new release that get returns as given", async ({ store }) => {
    const release = aRelease(1);
    assert.deepEqual(await store.ensure(release), { release, created: true });
    assert.deepEqual(await store.get(release.id), release);
    assert.equal(await store.get("no-such-release"), undefined);
  });

  await step("ensure finds the release of the same project run instead", async ({ store }) => {
    const first = aRelease(1);
    await store.ensure(first);
    const again = aRelease(2, { requested_by: { kind: "person", id: "p", issuer: "i" } });
    assert.deepEqual(await store.ensure(again), { release: first, created: false });
    assert.equal(await store.get(again.id), undefined);
    for (
      const other of [
        aRelease(3, { project_name: "Pr043" }),
        aRelease(4, { project_start_time: "20250611_093001" }),
        aRelease(5, { destination: { type: "filestore", name: "OTHER" } }),
        aRelease(6, { destination: { type: "postgresql", name: "LSC" } }),
      ]
    ) {
      assert.equal((await store.ensure(other)).created, true);
    }
  });

  await step(
    "ensure keeps the request that named the release, and adds every other dataset requested once",
    async ({ store, reopen }) => {
      const first = aRelease(1, { request: aRequest("cohort") });
      assert.deepEqual(await store.ensure(first), { release: first, created: true });
      const same = await store.ensure(aRelease(2, { request: aRequest("cohort") }));
      assert.deepEqual(same, { release: first, created: false });
      const second = await store.ensure(aRelease(3, { request: aRequest("outcomes") }));
      assert.equal(second.created, false);
      assert.deepEqual(second.release.request?.datasets.map((d) => d.schema_name), [
        "cohort",
        "outcomes",
      ]);
      assert.deepEqual(second.release.request?.source, first.request?.source);
      const withoutRequest = await store.ensure(aRelease(4));
      assert.deepEqual(withoutRequest.release, second.release);
      const other = await reopen();
      try {
        assert.deepEqual(await other.get(first.id), second.release);
      } finally {
        await other.close();
      }
      const old = aRelease(5, { project_name: "Pr043" });
      assert.equal(old.request, null);
      await store.ensure(old);
      const later = await store.ensure(
        aRelease(6, { project_name: "Pr043", request: aRequest("x") }),
      );
      assert.deepEqual(later.release.request?.datasets.map((d) => d.schema_name), ["x"]);
    },
  );

  await step(
    "ensure refuses a release that is not valid, and stores nothing",
    async ({ store }) => {
      const bad = { ...aRelease(1), state: "maybe" } as unknown as Release;
      await assert.rejects(store.ensure(bad));
      assert.equal(await store.get(bad.id), undefined);
    },
  );

  await step(
    "decide appends the callback's decision to the freshest release",
    async ({ store }) => {
      const { release } = await store.ensure(aRelease(1));
      const first = await store.decide(release.id, by("a"));
      assert.equal(first.release.decisions.length, 1);
      assert.deepEqual(first.release.decisions[0], first.decision);
      let seen: Release | undefined;
      const second = await store.decide(release.id, (fresh) => {
        seen = fresh;
        return by("b")(fresh);
      });
      assert.deepEqual(seen, first.release);
      assert.deepEqual(second.release.decisions.map((d) => d.person.id), ["a", "b"]);
      assert.deepEqual(await store.get(release.id), second.release);
    },
  );

  await step("a decide whose callback throws changes nothing", async ({ store }) => {
    const { release } = await store.ensure(
      aRelease(1, {
        requested_by: { kind: "person", id: "a", issuer: "https://idp.example" },
      }),
    );
    await assert.rejects(store.decide(release.id, by("a")), SelfApprovalError);
    assert.deepEqual(await store.get(release.id), release);
  });

  await step("decide on an unknown release is release_not_found", async ({ store }) => {
    await assert.rejects(
      store.decide("no-such-release", by("a")),
      (e) => e instanceof ReleaseNotFoundError && e.code === "release_not_found",
    );
  });

  await step(
    "a reject closes the release: state rejected, no more decisions",
    async ({ store }) => {
      const { release } = await store.ensure(aRelease(1));
      const rejected = await store.decide(release.id, by("a", "reject"));
      assert.equal(rejected.release.state, "rejected");
      await assert.rejects(
        store.decide(release.id, by("b")),
        (e) => e instanceof ReleaseClosedError && e.code === "release_closed",
      );
      // Even a callback that ignores the rules cannot add to a rejected release.
      const sneaky = rejected.decision;
      await assert.rejects(
        store.decide(release.id, () => ({ ...sneaky, id: "other" })),
        ReleaseClosedError,
      );
      assert.deepEqual(await store.get(release.id), rejected.release);
    },
  );

  await step("decide refuses a decision that is not valid", async ({ store }) => {
    const { release } = await store.ensure(aRelease(1));
    await assert.rejects(
      store.decide(release.id, (r) => ({ ...by("a")(r), at: "yesterday" })),
    );
    assert.deepEqual(await store.get(release.id), release);
  });

  await step("list: newest first, filtered, one page at a time", async ({ store }) => {
    const made: Release[] = [];
    for (let i = 0; i < 5; i++) {
      made.push(
        (await store.ensure(aRelease(i, { project_start_time: `2025061${i}_093000` })))
          .release,
      );
    }
    const other = (await store.ensure(aRelease(10, { project_name: "Pr099" }))).release;
    const tied = (await store.ensure(aRelease(3, { project_name: "Pr100" }))).release;
    await store.decide(made[1]!.id, by("a", "reject"));

    const all: Release[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await store.list({ limit: 2, ...(cursor === undefined ? {} : { cursor }) });
      all.push(...page.releases);
      if (page.nextCursor === null) break;
      cursor = page.nextCursor;
    }
    assert.equal(all.length, 7);
    const expected = [
      other,
      made[4]!,
      ...[made[3]!, tied].sort((a, b) => a.id < b.id ? 1 : -1),
      made[2]!,
      made[1]!,
      made[0]!,
    ].map((r) => r.id);
    assert.deepEqual(all.map((r) => r.id), expected);

    const pr042 = await store.list({ project: "Pr042", limit: 1000 });
    assert.deepEqual(pr042.releases.map((r) => r.id), made.map((r) => r.id).reverse());
    assert.equal(pr042.nextCursor, null);
    const rejected = await store.list({ state: "rejected", limit: 10 });
    assert.deepEqual(rejected.releases.map((r) => [r.id, r.state]), [[made[1]!.id, "rejected"]]);
    const open = await store.list({ project: "Pr042", state: "open", limit: 10 });
    assert.equal(open.releases.length, 4);
  });

  await step("list refuses a bad cursor and a bad page size", async ({ store }) => {
    await assert.rejects(
      store.list({ limit: 10, cursor: "not-a-cursor" }),
      (e) => e instanceof InvalidReleaseCursorError && e.code === "invalid_release_cursor",
    );
    for (const limit of [0, 1001, 1.5]) {
      await assert.rejects(store.list({ limit }), RangeError);
    }
  });

  await step("close can be called twice; a closed store is unavailable", async ({ store }) => {
    await store.close();
    await store.close();
    await assert.rejects(
      store.get("x"),
      (e) => e instanceof ReleaseStoreUnavailableError && e.code === "release_store_unavailable",
    );
  });

  await step("a second instance sees the same releases", async (under) => {
    await using other = await under.reopen();
    const { release } = await under.store.ensure(aRelease(1));
    const decided = await other.decide(release.id, by("a"));
    assert.deepEqual(await under.store.get(release.id), decided.release);
  });

  await step(
    "concurrent ensures of one project run, from two instances, make one release",
    async (under) => {
      await using other = await under.reopen();
      const results = await Promise.all(
        Array.from(
          { length: 8 },
          (_, i) => (i % 2 === 0 ? under.store : other).ensure(aRelease(i)),
        ),
      );
      assert.equal(
        results.filter((r) => r.created).length,
        1,
      );
      assert.equal(new Set(results.map((r) => r.release.id)).size, 1);
      assert.equal((await under.store.list({ limit: 100 })).releases.length, 1);
    },
  );

  await step(
    "concurrent decides from two instances are all recorded, and the gate opens once",
    async (under) => {
      await using other = await under.reopen();
      const { release } = await under.store.ensure(aRelease(1));
      const people = ["a", "b", "c", "d", "e", "f"];
      const results = await Promise.all(
        people.map((who, i) => (i % 2 === 0 ? under.store : other).decide(release.id, by(who))),
      );
      const stored = await under.store.get(release.id);
      assert.ok(stored !== undefined);
      assert.deepEqual(stored.decisions.map((d) => d.person.id).sort(), people);
      assert.deepEqual(
        results.map((r) => r.release.decisions.length).sort((a, b) => a - b),
        [1, 2, 3, 4, 5, 6],
      );
      const opened = results.filter((r) =>
        gatesOpenedBy(r.release, CONTRACT_POLICY, NOW).includes("sign_off")
      );
      assert.equal(opened.length, 1);
      assert.equal(opened[0]?.release.decisions.length, 3);
    },
  );

  await step(
    "update stores the callback's change of the freshest release, seen by a second instance",
    async (under) => {
      const { store } = under;
      const { release } = await store.ensure(aRelease(1));
      const published = await store.update(
        release.id,
        (fresh) => withPublication(fresh, A_PUBLICATION, instant(1000)),
      );
      assert.deepEqual(published.publication, A_PUBLICATION);
      assert.equal(published.expires_at, instant(1000));
      let seen: Release | undefined;
      const revoking = await store.update(release.id, (fresh) => {
        seen = fresh;
        return startRevocation(fresh, { reason: "consent withdrawn", requested_by: KEY }, NOW);
      });
      assert.deepEqual(seen, published);
      assert.equal(revoking.state, "revoking");
      await using other = await under.reopen();
      assert.deepEqual(await other.get(release.id), revoking);
      const revoked = await other.update(
        release.id,
        (fresh) => completeRevocation(fresh, { id: "cert-1" }, instant(200)),
      );
      assert.equal(revoked.state, "revoked");
      assert.deepEqual(revoked.revocation?.certificate, { id: "cert-1" });
      assert.deepEqual(await store.get(release.id), revoked);
      assert.deepEqual(
        (await store.list({ state: "revoked", limit: 10 })).releases.map((r) => r.id),
        [release.id],
      );
    },
  );

  await step(
    "pending publish runs are kept, seen by a second instance, and settled once",
    async (under) => {
      const { store } = under;
      const { release } = await store.ensure(aRelease(1));
      assert.deepEqual(release.pending_publishes, []);
      const pending = await store.update(
        release.id,
        (fresh) => withPendingPublish(fresh, "run-1", instant(1000), instant(10)),
      );
      assert.deepEqual(pending.pending_publishes, [{ run_id: "run-1", requested_at: instant(10) }]);
      assert.equal(pending.expires_at, instant(1000));
      await using other = await under.reopen();
      assert.deepEqual(await other.get(release.id), pending);
      assert.deepEqual(
        (await other.list({ state: "open", limit: 10 })).releases.find((r) => r.id === release.id),
        pending,
      );
      const end = { succeeded: true, publication: A_PUBLICATION } as const;
      const [first, second] = await Promise.all([
        store.update(release.id, (fresh) => settlePendingPublish(fresh, "run-1", end)),
        other.update(release.id, (fresh) => settlePendingPublish(fresh, "run-1", end)),
      ]);
      assert.deepEqual(first, second);
      assert.deepEqual(first.publication, A_PUBLICATION);
      assert.deepEqual(first.pending_publishes, []);
      assert.deepEqual(await store.get(release.id), first);
    },
  );

  await step(
    "update refuses a callback error, a forbidden transition and another release, changing nothing",
    async ({ store }) => {
      const { release } = await store.ensure(aRelease(1));
      await assert.rejects(
        store.update(release.id, () => {
          throw new ReleaseClosedError(release.id);
        }),
        ReleaseClosedError,
      );
      await assert.rejects(
        store.update(release.id, (fresh) => ({ ...fresh, state: "revoked" })),
        (e) =>
          e instanceof InvalidReleaseTransitionError && e.code === "invalid_release_transition",
      );
      await assert.rejects(store.update(release.id, (fresh) => ({ ...fresh, id: "other" })));
      await assert.rejects(
        store.update(release.id, (fresh) => ({ ...fresh, expires_at: "tomorrow" })),
      );
      assert.deepEqual(await store.get(release.id), release);
      await assert.rejects(
        store.update("no-such-release", (r) => r),
        (e) => e instanceof ReleaseNotFoundError,
      );
    },
  );

  await step(
    "a revoking release takes no decision; revoked is final",
    async ({ store }) => {
      const { release } = await store.ensure(aRelease(1));
      await store.update(
        release.id,
        (fresh) => startRevocation(fresh, { reason: "r", requested_by: KEY }, NOW),
      );
      await assert.rejects(
        store.decide(release.id, by("a")),
        (e) => e instanceof ReleaseRevokedError && e.code === "release_revoked",
      );
      const revoked = await store.update(
        release.id,
        (fresh) => completeRevocation(fresh, { id: "c" }, NOW),
      );
      await assert.rejects(
        store.update(release.id, (fresh) => ({ ...fresh, state: "revoking" })),
        InvalidReleaseTransitionError,
      );
      await assert.rejects(
        store.update(release.id, (fresh) => withPublication(fresh, A_PUBLICATION, null)),
        ReleaseRevokedError,
      );
      assert.deepEqual(await store.get(release.id), revoked);
    },
  );

  await step(
    "concurrent revocations from two instances: the first is kept, every one sees it",
    async (under) => {
      await using other = await under.reopen();
      const { release } = await under.store.ensure(aRelease(1));
      const results = await Promise.all(
        ["a", "b", "c", "d"].map((who, i) =>
          (i % 2 === 0 ? under.store : other).update(
            release.id,
            (fresh) =>
              startRevocation(fresh, { reason: who, requested_by: { kind: "key", id: who } }, NOW),
          )
        ),
      );
      const stored = await under.store.get(release.id);
      assert.equal(stored?.state, "revoking");
      for (const result of results) assert.deepEqual(result, stored);
    },
  );
}

const KEY = { kind: "key", id: "0123456789abcdef" } as const;

/** A publication as the gateway records one from a publish reply. */
export const A_PUBLICATION = {
  published_at: instant(50),
  receipt: { jws: "aaa.bbb.ccc", claims: { release_id: "x", sub: "sha512:00" } },
  crate: { "@context": "https://w3id.org/ro/crate/1.1/context", "@graph": [] },
  files: [{ file_path: "Pr042/data.csv", hash_value: "ab", total_bytes: 3 }],
};
