import assert from "node:assert/strict";
import { join } from "node:path";
import postgres from "postgres";
import { RunStoreUnavailableError } from "../../ports/run_store.ts";
import { aRun, runStoreContract } from "../../tests/contracts/run_store_contract.ts";
import { postgresConnectionOptions } from "../../tests/support/databases.ts";
import { ignorePostgres, randomName } from "../../tests/support/services.ts";
import { HALF_WRITTEN_RUN_ID } from "../../tests/support/run_store_postgres_worker.ts";
import {
  openPostgresRunStore,
  POSTGRES_RUN_STORE_MIGRATIONS,
  type PostgresRunStoreOptions,
} from "./postgres_run_store.ts";
import { postgresClientOptions } from "./postgres_source_database.ts";
import { quotePostgresIdentifier } from "./postgres_dialect.ts";

const WORKER =
  new URL("../../tests/support/run_store_postgres_worker.ts", import.meta.url).pathname;

/** Waits until `path` exists, failing if `child` ends first or it takes a minute. */
async function waitForFile(path: string, child: Deno.ChildProcess): Promise<void> {
  let ended = false;
  child.status.then(() => ended = true);
  for (let waited = 0;; waited += 20) {
    try {
      await Deno.stat(path);
      return;
    } catch {
      if (ended) {
        const text = await new Response(child.stderr).text();
        throw new Error(`the worker ended before writing: ${text}`);
      }
      assert.ok(waited < 60_000, "the worker never started writing");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
}

/** Store options on the local server, in a schema of this test's own. */
function storeOptions(schema: string): PostgresRunStoreOptions {
  return { ...postgresConnectionOptions(), schema };
}

/** Drops the test schemas made through `schemas`, whatever happened. */
async function withSchemas(body: (schema: () => string) => Promise<void>): Promise<void> {
  const made: string[] = [];
  try {
    await body(() => {
      const name = randomName("runs_test");
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
  name: "PostgresRunStore passes the RunStore contract",
  ignore: ignorePostgres,
  fn: async (t) => {
    await withSchemas(async (schema) => {
      await runStoreContract(t, async () => {
        const options = storeOptions(schema());
        return {
          store: await openPostgresRunStore(options),
          reopen: () => openPostgresRunStore(options),
        };
      });
    });
  },
});

Deno.test({
  name: "PostgreSQL migrations applied twice, then by several replicas starting at once",
  ignore: ignorePostgres,
  fn: async () => {
    await withSchemas(async (schema) => {
      const expected = POSTGRES_RUN_STORE_MIGRATIONS.map((m) => m.version);
      const options = storeOptions(schema());
      const run = aRun(1);
      {
        await using first = await openPostgresRunStore(options);
        await first.create(run, { exclusive: true });
      }
      {
        await using again = await openPostgresRunStore(options);
        assert.deepEqual(await again.get(run.id), run, "a second migration pass keeps the data");
        assert.deepEqual(await again.migrationVersions(), expected);
      }
      const fresh = storeOptions(schema());
      const stores = await Promise.all(
        Array.from({ length: 6 }, () => openPostgresRunStore(fresh)),
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
  name: "PostgreSQL replicas writing at once: every run kept, one active run of a shared project",
  ignore: ignorePostgres,
  fn: async () => {
    await withSchemas(async (schema) => {
      const options = storeOptions(schema());
      const replicas = await Promise.all([1, 2, 3].map(() => openPostgresRunStore(options)));
      try {
        const count = 15;
        const results = await Promise.all(replicas.map(async (store, r) => {
          const shared: string[] = [];
          for (let n = 1; n <= count; n++) {
            await store.create(aRun(n, { project_name: `r${r}-${n}` }), { exclusive: true });
            const attempt = aRun(n, { project_name: "Shared", project_start_time: `r${r}_${n}` });
            const made = await store.create(attempt, { exclusive: true }).catch(() => undefined);
            if (made !== undefined) shared.push(made.run.id);
          }
          return shared;
        }));
        assert.equal(results.flat().length, 1);
        const { runs } = await replicas[0]!.list({ limit: 1000 });
        assert.equal(runs.length, replicas.length * count + 1);
      } finally {
        for (const store of replicas) await store.close();
      }
    });
  },
});

Deno.test({
  name: "a process killed in the middle of a PostgreSQL write leaves the store whole and unlocked",
  ignore: ignorePostgres,
  fn: async () => {
    await withSchemas(async (schema) => {
      const options = storeOptions(schema());
      await using store = await openPostgresRunStore(options);
      const dir = await Deno.makeTempDir({ prefix: "runs_pg_" });
      const signals = join(dir, "signal");
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          "--allow-read",
          "--allow-write",
          "--allow-net",
          "--allow-env",
          WORKER,
          signals,
          options.schema!,
        ],
        stdout: "null",
        stderr: "piped",
      }).spawn();
      try {
        await waitForFile(`${signals}.busy`, child);
      } finally {
        child.kill("SIGKILL");
        await child.status;
        await child.stderr.cancel();
      }
      const started = Date.now();
      const next = aRun(2, { project_name: "Killed" });
      assert.equal((await store.create(next, { exclusive: true })).attached, false);
      assert.ok(Date.now() - started < 10_000, "the dead writer's lock was released");
      assert.equal(await store.get(HALF_WRITTEN_RUN_ID), undefined, "its half write is gone");
      assert.deepEqual((await store.list({ limit: 10, project: "Killed" })).runs, [next]);
      await Deno.remove(dir, { recursive: true });
    });
  },
});

Deno.test({
  name: "an unreachable PostgreSQL run store is a RunStoreUnavailableError without the password",
  fn: async () => {
    const options = {
      ...storeOptions("cr8tor_runs"),
      port: 1,
      password: "s3cret-pw",
      connectTimeoutMs: 1000,
    };
    await assert.rejects(openPostgresRunStore(options), (e: unknown) => {
      assert.ok(e instanceof RunStoreUnavailableError);
      assert.match(e.logDetail ?? "", /Cannot migrate the run store/);
      assert.ok(!(e.logDetail ?? "").includes("s3cret-pw"));
      assert.ok(!e.message.includes("s3cret-pw"));
      return true;
    });
  },
});
