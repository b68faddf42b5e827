import assert from "node:assert/strict";
import { join } from "node:path";
import { RunStoreUnavailableError } from "../../ports/run_store.ts";
import { aRun, runStoreContract } from "../../tests/contracts/run_store_contract.ts";
import { ignorePostgres } from "../../tests/support/services.ts";
import {
  assertMigrationsAppliedOnce,
  assertUnreachableStoreHidesPassword,
  postgresStoreOptions,
  withStoreSchemas,
} from "../../tests/support/postgres_store_tests.ts";
import { HALF_WRITTEN_RUN_ID } from "../../tests/support/run_store_postgres_worker.ts";
import { openPostgresRunStore, POSTGRES_RUN_STORE_MIGRATIONS } from "./postgres_run_store.ts";

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

Deno.test({
  name: "PostgresRunStore passes the RunStore contract",
  ignore: ignorePostgres,
  fn: async (t) => {
    await withStoreSchemas("runs_test", async (schema) => {
      await runStoreContract(t, async () => {
        const options = postgresStoreOptions(schema());
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
    await withStoreSchemas("runs_test", async (schema) => {
      const item = aRun(1);
      await assertMigrationsAppliedOnce(
        (name) => openPostgresRunStore(postgresStoreOptions(name)),
        schema,
        POSTGRES_RUN_STORE_MIGRATIONS.map((m) => m.version),
        {
          write: async (store) => {
            await store.create(item, { exclusive: true });
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
  name: "PostgreSQL replicas writing at once: every run kept, one active run of a shared project",
  ignore: ignorePostgres,
  fn: async () => {
    await withStoreSchemas("runs_test", async (schema) => {
      const options = postgresStoreOptions(schema());
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
    await withStoreSchemas("runs_test", async (schema) => {
      const options = postgresStoreOptions(schema());
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
    await assertUnreachableStoreHidesPassword(
      openPostgresRunStore,
      "cr8tor_runs",
      RunStoreUnavailableError,
      /Cannot migrate the run store/,
    );
  },
});
