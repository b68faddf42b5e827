import assert from "node:assert/strict";
import { parseApprovalPolicy } from "../../domain/approval_policy.ts";
import { gatesOpenedBy, newDecision } from "../../domain/release.ts";
import { ReleaseStoreUnavailableError } from "../../ports/release_store.ts";
import { aRelease, releaseStoreContract } from "../../tests/contracts/release_store_contract.ts";
import { ignorePostgres } from "../../tests/support/services.ts";
import {
  assertMigrationsAppliedOnce,
  assertUnreachableStoreHidesPassword,
  postgresStoreOptions,
  withStoreSchemas,
} from "../../tests/support/postgres_store_tests.ts";
import {
  openPostgresReleaseStore,
  POSTGRES_RELEASE_STORE_MIGRATIONS,
} from "./postgres_release_store.ts";

Deno.test({
  name: "PostgresReleaseStore passes the ReleaseStore contract",
  ignore: ignorePostgres,
  fn: async (t) => {
    await withStoreSchemas("releases_test", async (schema) => {
      await releaseStoreContract(t, async () => {
        const options = postgresStoreOptions(schema());
        return {
          store: await openPostgresReleaseStore(options),
          reopen: () => openPostgresReleaseStore(options),
        };
      });
    });
  },
});

Deno.test({
  name: "PostgreSQL release store migrations: applied twice, then by several replicas at once",
  ignore: ignorePostgres,
  fn: async () => {
    await withStoreSchemas("releases_test", async (schema) => {
      const item = aRelease(1);
      await assertMigrationsAppliedOnce(
        (name) => openPostgresReleaseStore(postgresStoreOptions(name)),
        schema,
        POSTGRES_RELEASE_STORE_MIGRATIONS.map((m) => m.version),
        {
          write: async (store) => {
            await store.ensure(item);
          },
          check: async (store) => {
            assert.deepEqual(await store.get(item.id), item, "a second pass keeps the data");
          },
        },
      );
    });
  },
});

Deno.test({
  name: "PostgreSQL replicas deciding at once: every decision kept, the gate opened once",
  ignore: ignorePostgres,
  fn: async () => {
    await withStoreSchemas("releases_test", async (schema) => {
      const policy = parseApprovalPolicy({
        approval_types: { CHECKER: { roles: ["checker"] } },
        gates: [{ name: "g", before: "package", require: { CHECKER: 10 } }],
        destinations: ["LSC"],
      });
      const now = new Date().toISOString();
      const options = { ...postgresStoreOptions(schema()), maxConnections: 8 };
      const replicas = await Promise.all([1, 2, 3].map(() => openPostgresReleaseStore(options)));
      try {
        const { release } = await replicas[0]!.ensure(aRelease(1));
        const results = await Promise.all(
          Array.from(
            { length: 30 },
            (_, i) =>
              replicas[i % 3]!.decide(release.id, (fresh) =>
                newDecision(fresh, policy, {
                  id: `p${i}`,
                  issuer: "https://idp.example",
                  name: `P${i}`,
                  roles: ["checker"],
                }, {
                  gate: "g",
                  approval_type: "CHECKER",
                  decision: "approve",
                  manifest_digest: null,
                }, now)),
          ),
        );
        const stored = await replicas[1]!.get(release.id);
        assert.equal(stored?.decisions.length, 30);
        const opened = results.filter((r) => gatesOpenedBy(r.release, policy, now).length > 0);
        assert.equal(opened.length, 1);
        assert.equal(opened[0]?.release.decisions.length, 10);
      } finally {
        for (const store of replicas) await store.close();
      }
    });
  },
});

Deno.test({
  name: "an unreachable PostgreSQL release store is unavailable, without the password",
  fn: async () => {
    await assertUnreachableStoreHidesPassword(
      openPostgresReleaseStore,
      "cr8tor_releases",
      ReleaseStoreUnavailableError,
      /Cannot migrate the release store/,
    );
  },
});
