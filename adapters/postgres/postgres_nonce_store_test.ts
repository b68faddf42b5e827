import assert from "node:assert/strict";
import { nonceStoreContract } from "../../tests/contracts/nonce_store_contract.ts";
import { aRelease } from "../../tests/contracts/release_store_contract.ts";
import { ignorePostgres } from "../../tests/support/services.ts";
import {
  postgresStoreOptions,
  withStoreSchemas,
} from "../../tests/support/postgres_store_tests.ts";
import { openPostgresNonceStore } from "./postgres_nonce_store.ts";
import { openPostgresReleaseStore } from "./postgres_release_store.ts";

Deno.test({
  name: "PostgresNonceStore passes the NonceStore contract",
  ignore: ignorePostgres,
  fn: async (t) => {
    await withStoreSchemas("nonces_test", async (schema) => {
      let current = "";
      await nonceStoreContract(t, {
        first: (limits) => {
          current = schema();
          return openPostgresNonceStore({ ...postgresStoreOptions(current), ...limits });
        },
        second: (limits) => openPostgresNonceStore({ ...postgresStoreOptions(current), ...limits }),
      });
    });
  },
});

Deno.test({
  name: "the PostgreSQL nonce store shares the release store's schema, each with its own tables",
  ignore: ignorePostgres,
  fn: async () => {
    await withStoreSchemas("nonces_test", async (schema) => {
      const options = postgresStoreOptions(schema());
      await using releases = await openPostgresReleaseStore(options);
      await using nonces = await openPostgresNonceStore({
        ...options,
        windowSeconds: 60,
        maxEntries: 10,
      });
      await releases.ensure(aRelease(1));
      const claim = { clientId: "c", nonce: "n", timestampSeconds: 1 };
      assert.equal(await nonces.claim(claim, new Date(1000)), true);
      assert.equal(await nonces.claim(claim, new Date(2000)), false);
      assert.equal((await releases.list({ limit: 10 })).releases.length, 1);
    });
  },
});
