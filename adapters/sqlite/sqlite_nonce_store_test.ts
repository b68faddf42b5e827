import assert from "node:assert/strict";
import { join } from "node:path";
import { nonceStoreContract } from "../../tests/contracts/nonce_store_contract.ts";
import { aRelease } from "../../tests/contracts/release_store_contract.ts";
import { openSqliteNonceStore } from "./sqlite_nonce_store.ts";
import { openSqliteReleaseStore, SQLITE_RELEASE_STORE_FILE } from "./sqlite_release_store.ts";

const TEMP_ROOT = await Deno.makeTempDir({ prefix: "nonces_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TEMP_ROOT, { recursive: true }));

async function tempStorePath(): Promise<string> {
  return join(await Deno.makeTempDir({ dir: TEMP_ROOT }), "state", SQLITE_RELEASE_STORE_FILE);
}

Deno.test("SqliteNonceStore passes the NonceStore contract", async (t) => {
  let path = "";
  await nonceStoreContract(t, {
    first: async (limits) => {
      path = await tempStorePath();
      return await openSqliteNonceStore({ path, ...limits });
    },
    second: (limits) => openSqliteNonceStore({ path, ...limits }),
  });
});

Deno.test("the SQLite nonce store shares the release store's file, each with its own tables", async () => {
  const path = await tempStorePath();
  await using releases = await openSqliteReleaseStore({ path });
  await using nonces = await openSqliteNonceStore({ path, windowSeconds: 60, maxEntries: 10 });
  await releases.ensure(aRelease(1));
  assert.equal(
    await nonces.claim({ clientId: "c", nonce: "n", timestampSeconds: 1 }, new Date(1000)),
    true,
  );
  assert.equal((await releases.list({ limit: 10 })).releases.length, 1);
});
