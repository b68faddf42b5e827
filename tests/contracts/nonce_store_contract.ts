/**
 * The contract every NonceStore adapter passes, the in-memory fake included.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type NonceClaim,
  type NonceStore,
  NonceStoreFullError,
  type NonceStoreLimits,
  NonceStoreUnavailableError,
} from "../../ports/nonce_store.ts";

/**
 * Opens stores with the given limits; `second` opens another instance on the same storage as the last
 * store `first` opened (another replica), or is absent when the storage is not shared.
 */
export interface NonceStoreMaker {
  first(limits: NonceStoreLimits): Promise<NonceStore>;
  second?: (limits: NonceStoreLimits) => Promise<NonceStore>;
}

const T0 = Date.UTC(2026, 11, 7, 3, 0, 0);

function at(seconds: number): Date {
  return new Date(T0 + seconds * 1000);
}

function aClaim(nonce: string, overrides: Partial<NonceClaim> = {}): NonceClaim {
  return { clientId: "pipeline-a", nonce, timestampSeconds: T0 / 1000, ...overrides };
}

const LIMITS: NonceStoreLimits = { windowSeconds: 60, maxEntries: 1000 };

/** Runs the NonceStore contract against stores from `make`. */
export async function nonceStoreContract(t: Deno.TestContext, make: NonceStoreMaker) {
  await t.step("claim() accepts a new nonce once and refuses its replay", async () => {
    await using store = await make.first(LIMITS);
    assert.equal(await store.claim(aClaim("n1"), at(0)), true);
    assert.equal(await store.claim(aClaim("n1"), at(1)), false);
    assert.equal(
      await store.claim(aClaim("n1", { timestampSeconds: T0 / 1000 + 5 }), at(5)),
      false,
    );
    assert.equal(await store.claim(aClaim("n2"), at(1)), true);
  });

  await t.step("claim() keeps clients apart", async () => {
    await using store = await make.first(LIMITS);
    assert.equal(await store.claim(aClaim("n1"), at(0)), true);
    assert.equal(await store.claim(aClaim("n1", { clientId: "pipeline-b" }), at(0)), true);
  });

  await t.step("claim() keeps an entry for the whole window, then lets it go", async () => {
    await using store = await make.first(LIMITS);
    assert.equal(await store.claim(aClaim("n1"), at(0)), true);
    assert.equal(await store.claim(aClaim("n1"), at(60)), false, "still inside the window");
    assert.equal(await store.claim(aClaim("n1"), at(61)), true, "the window is over");
  });

  await t.step("claim() refuses past the cap, and expired entries do not count", async () => {
    await using store = await make.first({ windowSeconds: 60, maxEntries: 3 });
    for (const nonce of ["a", "b", "c"]) {
      assert.equal(await store.claim(aClaim(nonce), at(0)), true);
    }
    await assert.rejects(store.claim(aClaim("d"), at(1)), NonceStoreFullError);
    assert.equal(await store.claim(aClaim("a"), at(1)), false, "a replay is still a replay");
    assert.equal(
      await store.claim(aClaim("d", { timestampSeconds: T0 / 1000 + 70 }), at(70)),
      true,
      "the old entries expired",
    );
  });

  await t.step("claim() of one nonce many times at once: exactly one is first", async () => {
    await using store = await make.first(LIMITS);
    const results = await Promise.all(
      Array.from({ length: 10 }, () => store.claim(aClaim("race"), at(0))),
    );
    assert.equal(results.filter((r) => r).length, 1);
  });

  if (make.second !== undefined) {
    await t.step("two instances on one storage share their nonces", async () => {
      await using one = await make.first(LIMITS);
      await using two = await make.second!(LIMITS);
      assert.equal(await one.claim(aClaim("shared"), at(0)), true);
      assert.equal(await two.claim(aClaim("shared"), at(1)), false);
      const results = await Promise.all(
        Array.from({ length: 6 }, (_, i) => (i % 2 === 0 ? one : two).claim(aClaim("r"), at(2))),
      );
      assert.equal(results.filter((r) => r).length, 1);
    });
  }

  await t.step("a closed store is unavailable, and close() is idempotent", async () => {
    const store = await make.first(LIMITS);
    await store.close();
    await store.close();
    await assert.rejects(store.claim(aClaim("n"), at(0)), NonceStoreUnavailableError);
  });
}
