import assert from "node:assert/strict";
import { nonceStoreContract } from "../../tests/contracts/nonce_store_contract.ts";
import { MemoryNonceStore } from "./memory_nonce_store.ts";

Deno.test("MemoryNonceStore passes the NonceStore contract", async (t) => {
  await nonceStoreContract(t, { first: (limits) => Promise.resolve(new MemoryNonceStore(limits)) });
});

Deno.test("MemoryNonceStore() refuses limits that are not positive integers", () => {
  assert.throws(() => new MemoryNonceStore({ windowSeconds: 0, maxEntries: 10 }), RangeError);
  assert.throws(() => new MemoryNonceStore({ windowSeconds: 60, maxEntries: 1.5 }), RangeError);
});

Deno.test("MemoryNonceStore drops expired entries, so its size stays bounded", async () => {
  const store = new MemoryNonceStore({ windowSeconds: 60, maxEntries: 1000 });
  const t0 = Date.now();
  for (let i = 0; i < 100; i++) {
    await store.claim(
      { clientId: "c", nonce: `n${i}`, timestampSeconds: Math.floor(t0 / 1000) },
      new Date(t0),
    );
  }
  assert.equal(store.size, 100);
  await store.claim(
    { clientId: "c", nonce: "late", timestampSeconds: t0 / 1000 + 120 },
    new Date(t0 + 120_000),
  );
  assert.equal(store.size, 1);
});
