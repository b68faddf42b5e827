import assert from "node:assert/strict";
import postgres from "postgres";
import { parseApprovalPolicy } from "../../domain/approval_policy.ts";
import { gatesOpenedBy, newDecision } from "../../domain/release.ts";
import { ReleaseStoreUnavailableError } from "../../ports/release_store.ts";
import { aRelease, releaseStoreContract } from "../../tests/contracts/release_store_contract.ts";
import { postgresConnectionOptions } from "../../tests/support/databases.ts";
import { ignorePostgres, randomName } from "../../tests/support/services.ts";
import {
  openPostgresReleaseStore,
  POSTGRES_RELEASE_STORE_MIGRATIONS,
  type PostgresReleaseStoreOptions,
} from "./postgres_release_store.ts";
import { postgresClientOptions } from "./postgres_source_database.ts";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";

/** Store options on the local server, in a schema of this test's own. */
function storeOptions(schema: string): PostgresReleaseStoreOptions {
  return { ...postgresConnectionOptions(), schema };
}

/** Drops the test schemas made through `schemas`, whatever happened. */
async function withSchemas(body: (schema: () => string) => Promise<void>): Promise<void> {
  const made: string[] = [];
  try {
    await body(() => {
      const name = randomName("releases_test");
      made.push(name);
      return name;
    });
  } finally {
    const sql = postgres(postgresClientOptions(postgresConnectionOptions()));
    try {
      for (const name of made) {
        await sql.unsafe(`drop schema if exists ${quotePostgresIdentifier(name)} cascade`);
      }
    } finally {
      await sql.end({ timeout: 5 });
    }
  }
}

Deno.test({
  name: "PostgresReleaseStore passes the ReleaseStore contract",
  ignore: ignorePostgres,
  fn: async (t) => {
    await withSchemas(async (schema) => {
      await releaseStoreContract(t, async () => {
        const options = storeOptions(schema());
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
    await withSchemas(async (schema) => {
      const expected = POSTGRES_RELEASE_STORE_MIGRATIONS.map((m) => m.version);
      const options = storeOptions(schema());
      const release = aRelease(1);
      {
        await using first = await openPostgresReleaseStore(options);
        await first.ensure(release);
      }
      {
        await using again = await openPostgresReleaseStore(options);
        assert.deepEqual(await again.get(release.id), release, "a second pass keeps the data");
        assert.deepEqual(await again.migrationVersions(), expected);
      }
      const fresh = storeOptions(schema());
      const stores = await Promise.all(
        Array.from({ length: 6 }, () => openPostgresReleaseStore(fresh)),
      );
      try {
        for (const store of stores) assert.deepEqual(await store.migrationVersions(), expected);
      } finally {
        for (const store of stores) await store.close();
      }
    });
  },
});

Deno.test({
  name: "PostgreSQL replicas deciding at once: every decision kept, the gate opened once",
  ignore: ignorePostgres,
  fn: async () => {
    await withSchemas(async (schema) => {
      const policy = parseApprovalPolicy({
        approval_types: { CHECKER: { roles: ["checker"] } },
        gates: [{ name: "g", before: "package", require: { CHECKER: 10 } }],
        destinations: ["LSC"],
      });
      const now = new Date().toISOString();
      const options = { ...storeOptions(schema()), maxConnections: 8 };
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
    const options = {
      ...storeOptions("cr8tor_releases"),
      port: 1,
      password: "s3cret-pw",
      connectTimeoutMs: 1000,
    };
    await assert.rejects(openPostgresReleaseStore(options), (e: unknown) => {
      assert.ok(e instanceof ReleaseStoreUnavailableError);
      assert.match(e.logDetail ?? "", /Cannot migrate the release store/);
      assert.ok(!(e.logDetail ?? "").includes("s3cret-pw"));
      assert.ok(!e.message.includes("s3cret-pw"));
      return true;
    });
  },
});
