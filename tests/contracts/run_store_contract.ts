/**
 * The contract every RunStore adapter passes, the in-memory fake included.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  InvalidRunTransitionError,
  newRun,
  type NewRunInput,
  type Run,
  RUN_ACTIONS,
  transition,
} from "../../domain/run.ts";
import {
  InvalidRunCursorError,
  RunAlreadyActiveError,
  RunNotFoundError,
  type RunStore,
  RunVersionConflictError,
} from "../../ports/run_store.ts";

/** A fresh, empty store, and maybe a way to open a second instance on the same storage. */
export interface RunStoreUnderTest {
  readonly store: RunStore;
  /**
   * Another instance on the same storage (another process's view), when the adapter has one. The
   * contract closes it.
   */
  reopen?(): Promise<RunStore>;
}

/** The request of a run, with overrides. */
export function aRunInput(overrides: Partial<NewRunInput> = {}): NewRunInput {
  return {
    action: "publish",
    project_name: "Pr042",
    project_start_time: "20250611_093000",
    dataset: { source_host: "db.example", schema_name: "oncology", tables: ["patients"] },
    destination: { type: "filestore", name: "LSC", format: "csv" },
    caller_key_id: "0123456789abcdef",
    ...overrides,
  };
}

/** The ISO instant `seconds` after a fixed origin. */
export function instant(seconds: number): string {
  return new Date(Date.UTC(2026, 0, 1) + seconds * 1000).toISOString();
}

/** A new queued run created at `instant(seconds)`. */
export function aRun(seconds: number, overrides: Partial<NewRunInput> = {}): Run {
  return newRun(aRunInput(overrides), instant(seconds));
}

/**
 * Runs the RunStore contract.
 *
 * @param make builds a store on fresh, empty storage; the contract closes it.
 */
export async function runStoreContract(
  t: Deno.TestContext,
  make: () => Promise<RunStoreUnderTest>,
): Promise<void> {
  const step = (name: string, body: (under: RunStoreUnderTest) => Promise<void>) =>
    t.step(name, async () => {
      const under = await make();
      try {
        await body(under);
      } finally {
        await under.store.close();
      }
    });

  await step(
    "create stores a run that get returns as given; an unknown id is undefined",
    async ({ store }) => {
      const run = aRun(1);
      const created = await store.create(run, { exclusive: true });
      assert.deepEqual(created, { run, attached: false });
      assert.deepEqual(await store.get(run.id), run);
      assert.equal(await store.get(crypto.randomUUID()), undefined);
    },
  );

  await step("every action is stored and read back, revoke runs included", async ({ store }) => {
    for (const [i, action] of RUN_ACTIONS.entries()) {
      const run = aRun(10 + i, { action, project_name: `actions-${action}` });
      await store.create(run, { exclusive: true });
      assert.equal((await store.get(run.id))?.action, action);
    }
  });

  await step("create refuses a run that is not valid, and stores nothing", async ({ store }) => {
    const run = aRun(1);
    for (
      const bad of [{ ...run, project_name: "" }, { ...run, created_at: "today" }, {
        ...run,
        version: 0,
      }]
    ) {
      await assert.rejects(store.create(bad, { exclusive: true }));
    }
    assert.deepEqual((await store.list({ limit: 10 })).runs, []);
  });

  await step(
    "list pages newest first, ties by id, and filters by project and state",
    async ({ store }) => {
      const runs: Run[] = [];
      for (let n = 0; n < 5; n++) {
        const run = aRun(n < 2 ? 10 : 10 + n, { project_name: `P${n}` });
        runs.push(run);
        await store.create(run, { exclusive: true });
      }
      const other = aRun(100, { project_name: "Other" });
      await store.create(other, { exclusive: true });
      const finished = await store.update(
        other.id,
        1,
        transition(transition(other, "start", instant(101)), "succeed", instant(102)),
      );
      const expected = [
        finished,
        ...runs.slice(2).reverse(),
        ...runs.slice(0, 2).sort((a, b) => a.id < b.id ? 1 : -1),
      ];
      const seen: Run[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await store.list({ limit: 2, ...(cursor === undefined ? {} : { cursor }) });
        assert.ok(page.runs.length <= 2);
        seen.push(...page.runs);
        cursor = page.nextCursor ?? undefined;
        pages++;
      } while (cursor !== undefined);
      assert.deepEqual(seen.map((r) => r.id), expected.map((r) => r.id));
      assert.equal(pages, 3);
      assert.deepEqual(seen, expected);

      assert.deepEqual((await store.list({ limit: 10, project: "P3" })).runs, [runs[3]]);
      assert.deepEqual((await store.list({ limit: 10, state: "succeeded" })).runs, [finished]);
      assert.deepEqual(
        (await store.list({ limit: 10, project: "P3", state: "succeeded" })).runs,
        [],
      );
      assert.deepEqual(await store.list({ limit: 6 }), { runs: expected, nextCursor: null });
    },
  );

  await step(
    "list refuses a cursor it did not give, and a page size out of range",
    async ({ store }) => {
      for (const cursor of ["", "not a cursor", btoa("[1,2]"), btoa('["x","y"]')]) {
        await assert.rejects(store.list({ limit: 1, cursor }), InvalidRunCursorError, cursor);
      }
      for (const limit of [0, -1, 1.5, 1001]) {
        await assert.rejects(store.list({ limit }), RangeError, String(limit));
      }
    },
  );

  await step("an identical request attaches to the active run, whoever asks", async ({ store }) => {
    const first = aRun(1);
    await store.create(first, { exclusive: true });
    const again = aRun(2, { caller_key_id: "fedcba9876543210" });
    assert.deepEqual(await store.create(again, { exclusive: true }), {
      run: first,
      attached: true,
    });
    assert.deepEqual(await store.create(again, { exclusive: false }), {
      run: first,
      attached: true,
    });
    assert.equal(await store.get(again.id), undefined, "the attached request stores nothing");

    await store.update(first.id, 1, transition(first, "fail", instant(3)));
    const later = aRun(4);
    assert.deepEqual(await store.create(later, { exclusive: true }), {
      run: later,
      attached: false,
    });
  });

  await step(
    "exclusive creation refuses a second active run of the project, only that",
    async ({ store }) => {
      const first = aRun(1);
      await store.create(first, { exclusive: true });
      const other = aRun(2, { destination: { type: "filestore", name: "LSC", format: "duckdb" } });
      await assert.rejects(store.create(other, { exclusive: true }), (e: unknown) => {
        assert.ok(e instanceof RunAlreadyActiveError);
        assert.equal(e.code, "run_already_active");
        assert.equal(e.activeRunId, first.id);
        return true;
      });
      assert.equal(await store.get(other.id), undefined);

      const elsewhere = aRun(3, { project_name: "Pr043" });
      assert.equal((await store.create(elsewhere, { exclusive: true })).attached, false);
      const parallel = aRun(4, { action: "package" });
      assert.equal((await store.create(parallel, { exclusive: false })).attached, false);

      const started = await store.update(first.id, 1, transition(first, "start", instant(5)));
      await store.update(first.id, 2, transition(started, "cancel", instant(6)));
      await store.update(parallel.id, 1, transition(parallel, "cancel", instant(6)));
      const now = aRun(7, { destination: { type: "filestore", name: "LSC", format: "duckdb" } });
      assert.equal((await store.create(now, { exclusive: true })).attached, false);
    },
  );

  await step(
    "update is optimistic: a stale version is refused and changes nothing",
    async ({ store }) => {
      const run = aRun(1);
      await store.create(run, { exclusive: true });
      const started = await store.update(run.id, 1, transition(run, "start", instant(2)));
      assert.equal(started.version, 2);
      assert.equal(started.state, "running");
      assert.deepEqual(await store.get(run.id), started);

      await assert.rejects(store.update(run.id, 1, { state: "failed" }), (e: unknown) => {
        assert.ok(e instanceof RunVersionConflictError);
        assert.equal(e.code, "run_version_conflict");
        assert.equal(e.actualVersion, 2);
        return true;
      });
      await assert.rejects(store.update(crypto.randomUUID(), 1, {}), RunNotFoundError);
      await assert.rejects(store.update(run.id, 2, { updated_at: "yesterday" }));
      assert.deepEqual(await store.get(run.id), started, "a refused update changes nothing");

      const table = {
        name: "patients",
        state: "done" as const,
        rows: 3,
        bytes: 120,
        started_at: instant(2),
        finished_at: instant(3),
        sha512: "ab".repeat(64),
        expected_rows: { value: 3, estimate: true as const },
      };
      const outcome = { status: 200, body: { status: "success", payload: { files: ["a.csv"] } } };
      const done = await store.update(run.id, 2, {
        ...transition(started, "succeed", instant(3)),
        tables: [table],
        outcome,
      });
      assert.equal(done.version, 3);
      assert.deepEqual(done.tables, [table]);
      assert.deepEqual(done.outcome, outcome);
      assert.deepEqual(await store.get(run.id), done);
    },
  );

  await step("markInterrupted marks queued and running runs, and no other", async ({ store }) => {
    const queued = aRun(1, { project_name: "A" });
    const running = aRun(2, { project_name: "B" });
    const done = aRun(3, { project_name: "C" });
    for (const run of [queued, running, done]) await store.create(run, { exclusive: true });
    await store.update(running.id, 1, transition(running, "start", instant(4)));
    const finished = await store.update(done.id, 1, transition(done, "fail", instant(4)));

    assert.equal(await store.markInterrupted(instant(9)), 2);
    for (const id of [queued.id, running.id]) {
      const run = await store.get(id);
      assert.equal(run?.state, "interrupted");
      assert.equal(run?.finished_at, instant(9));
      assert.equal(run?.updated_at, instant(9));
    }
    assert.equal((await store.get(running.id))?.version, 3);
    assert.deepEqual(await store.get(done.id), finished);
    assert.equal(await store.markInterrupted(instant(10)), 0);
  });

  await step(
    "resuming a run is refused while another run of its project is active",
    async ({ store }) => {
      const first = aRun(1);
      await store.create(first, { exclusive: true });
      const stopped = await store.update(first.id, 1, transition(first, "interrupt", instant(2)));
      const second = aRun(3, { project_start_time: "20250612_093000" });
      await store.create(second, { exclusive: true });

      await assert.rejects(
        store.update(first.id, 2, transition(stopped, "resume", instant(4))),
        (e: unknown) => e instanceof RunAlreadyActiveError && e.activeRunId === second.id,
      );
      assert.deepEqual(await store.get(first.id), stopped);

      await store.update(second.id, 1, transition(second, "cancel", instant(5)));
      const resumed = await store.update(first.id, 2, transition(stopped, "resume", instant(6)));
      assert.equal(resumed.state, "queued");
    },
  );

  await step(
    "markInterrupted leaves alone active runs updated since updatedBefore",
    async ({ store }) => {
      const stale = aRun(1, { project_name: "A" });
      const live = aRun(1, { project_name: "B" });
      for (const run of [stale, live]) await store.create(run, { exclusive: true });
      await store.update(stale.id, 1, transition(stale, "start", instant(2)));
      const alive = await store.update(live.id, 1, transition(live, "start", instant(8)));

      assert.equal(await store.markInterrupted(instant(9), instant(5)), 1);
      assert.equal((await store.get(stale.id))?.state, "interrupted");
      assert.deepEqual(await store.get(live.id), alive);
    },
  );

  await step("prune deletes old runs that are not active", async ({ store }) => {
    const oldDone = aRun(1, { project_name: "A" });
    const oldActive = aRun(1, { project_name: "B" });
    const newDone = aRun(1, { project_name: "C" });
    for (const run of [oldDone, oldActive, newDone]) await store.create(run, { exclusive: true });
    await store.update(oldDone.id, 1, transition(oldDone, "cancel", instant(2)));
    await store.update(newDone.id, 1, transition(newDone, "cancel", instant(20)));

    assert.equal(await store.prune(instant(10)), 1);
    assert.equal(await store.get(oldDone.id), undefined);
    assert.equal((await store.get(oldActive.id))?.state, "queued");
    assert.equal((await store.get(newDone.id))?.state, "cancelled");
  });

  await step(
    "claim starts queued runs of a project one at a time, oldest first",
    async ({ store }) => {
      const runs = [1, 2, 3].map((n) => aRun(n, { project_start_time: `2025061${n}_093000` }));
      for (const run of runs) await store.create(run, { exclusive: false });
      const [a, b, c] = runs as [Run, Run, Run];
      const elsewhere = aRun(9, { project_name: "Pr043" });
      await store.create(elsewhere, { exclusive: false });

      const clockReads: string[] = [];
      const clock = (at: string) => () => {
        clockReads.push(at);
        return at;
      };
      assert.equal(
        await store.claim(c.id, clock("refused")),
        undefined,
        "older queued runs go first",
      );
      assert.deepEqual(await store.get(c.id), c, "a refused claim changes nothing");
      const started = await store.claim(a.id, clock(instant(10)));
      assert.deepEqual(
        clockReads,
        [instant(10)],
        "the start time is read once, when it is the turn",
      );
      assert.equal(started?.state, "running");
      assert.equal(started?.started_at, instant(10));
      assert.equal(started?.version, 2);
      assert.deepEqual(await store.get(a.id), started);
      assert.equal(
        await store.claim(b.id, () => instant(11)),
        undefined,
        "a run of the project runs",
      );
      assert.equal((await store.claim(elsewhere.id, () => instant(11)))?.state, "running");

      await store.update(a.id, 2, transition(started!, "succeed", instant(12)));
      assert.equal(await store.claim(c.id, () => instant(13)), undefined);
      assert.equal((await store.claim(b.id, () => instant(13)))?.state, "running");
      await assert.rejects(store.claim(b.id, () => instant(14)), InvalidRunTransitionError);
      await assert.rejects(store.claim(a.id, () => instant(14)), InvalidRunTransitionError);
      await assert.rejects(store.claim(crypto.randomUUID(), () => instant(14)), RunNotFoundError);
    },
  );

  await step("close can be called twice", async ({ store }) => {
    await store.close();
    await store.close();
  });

  await step("a second instance sees the same runs", async (under) => {
    if (under.reopen === undefined) return;
    const run = aRun(1);
    await under.store.create(run, { exclusive: true });
    await using other = await under.reopen();
    assert.deepEqual(await other.get(run.id), run);
    const started = await other.update(run.id, 1, transition(run, "start", instant(2)));
    assert.deepEqual(await under.store.get(run.id), started);
  });

  await step(
    "two instances racing: one exclusive run per project, one update per version",
    async (under) => {
      if (under.reopen === undefined) return;
      await using other = await under.reopen();
      const stores = [under.store, other];
      for (let round = 0; round < 5; round++) {
        const project = `Race${round}`;
        const candidates = stores.map((_, n) =>
          aRun(round, { project_name: project, project_start_time: `2025061${n}_093000` })
        );
        const results = await Promise.allSettled(
          candidates.map((run, n) => stores[n]!.create(run, { exclusive: true })),
        );
        const won = results.filter((r) => r.status === "fulfilled");
        const lost = results.filter((r) => r.status === "rejected");
        assert.equal(won.length, 1, `round ${round}`);
        assert.ok(lost[0]?.reason instanceof RunAlreadyActiveError, String(lost[0]?.reason));
        const winner = won[0]!.value.run;

        const updates = await Promise.allSettled(
          stores.map((store, n) =>
            store.update(
              winner.id,
              1,
              transition(winner, n === 0 ? "start" : "cancel", instant(99)),
            )
          ),
        );
        assert.equal(updates.filter((r) => r.status === "fulfilled").length, 1);
        const refused = updates.find((r) => r.status === "rejected");
        assert.ok(refused?.reason instanceof RunVersionConflictError, String(refused?.reason));
        assert.equal((await under.store.get(winner.id))?.version, 2);
      }
    },
  );

  await step(
    "two instances claiming at once: one running run per project, the oldest",
    async (under) => {
      if (under.reopen === undefined) return;
      await using other = await under.reopen();
      const stores = [under.store, other];
      for (let round = 0; round < 5; round++) {
        const project = `Claim${round}`;
        const runs = [0, 1, 2].map((n) =>
          aRun(round * 10 + n, { project_name: project, project_start_time: `2025061${n}_093000` })
        );
        for (const run of runs) await under.store.create(run, { exclusive: false });
        const claims = await Promise.allSettled(
          runs.flatMap((run) => stores.map((store) => store.claim(run.id, () => instant(99)))),
        );
        const started = claims.filter((r) => r.status === "fulfilled" && r.value !== undefined);
        assert.equal(started.length, 1, `round ${round}`);
        for (const claim of claims) {
          if (claim.status === "rejected") {
            assert.ok(claim.reason instanceof InvalidRunTransitionError, String(claim.reason));
          }
        }
        const { runs: stored } = await under.store.list({ limit: 10, project });
        assert.deepEqual(
          stored.filter((r) => r.state === "running").map((r) => r.id),
          [runs[0]!.id],
        );
      }
    },
  );
}
