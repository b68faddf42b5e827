import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { runSchema } from "../../domain/run.ts";
import { RunStoreUnavailableError } from "../../ports/run_store.ts";
import { aRun, runStoreContract } from "../../tests/contracts/run_store_contract.ts";
import {
  openSqliteRunStore,
  SQLITE_RUN_STORE_FILE,
  SQLITE_RUN_STORE_MIGRATIONS,
  sqliteRunStorePath,
} from "./sqlite_run_store.ts";

const WORKER = new URL("../../tests/support/run_store_worker.ts", import.meta.url).pathname;

const TEMP_ROOT = await Deno.makeTempDir({ prefix: "runs_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TEMP_ROOT, { recursive: true }));

async function tempStorePath(): Promise<string> {
  return join(await Deno.makeTempDir({ dir: TEMP_ROOT }), "state", SQLITE_RUN_STORE_FILE);
}

function worker(path: string, ...args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-read", "--allow-write", WORKER, path, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

Deno.test("SqliteRunStore passes the RunStore contract", async (t) => {
  await runStoreContract(t, async () => {
    const path = await tempStorePath();
    return {
      store: await openSqliteRunStore({ path }),
      reopen: () => openSqliteRunStore({ path }),
    };
  });
});

Deno.test("the SQLite run store lives in runs.sqlite under the state directory, ./state by default", () => {
  assert.equal(sqliteRunStorePath(), join("state", "runs.sqlite"));
  assert.equal(sqliteRunStorePath("/var/lib/cr8tor"), "/var/lib/cr8tor/runs.sqlite");
});

Deno.test("the SQLite run store is in WAL mode and records each migration once", async () => {
  const path = await tempStorePath();
  await using store = await openSqliteRunStore({ path });
  const expected = SQLITE_RUN_STORE_MIGRATIONS.map((m) => m.version);
  assert.deepEqual(await store.migrationVersions(), expected);
  const raw = new DatabaseSync(path, { readOnly: true });
  try {
    assert.equal(raw.prepare("PRAGMA journal_mode").get()?.journal_mode, "wal");
  } finally {
    raw.close();
  }
});

Deno.test("migrations applied twice, then by several stores opening one new file at once", async () => {
  const path = await tempStorePath();
  const run = aRun(1);
  {
    await using first = await openSqliteRunStore({ path });
    await first.create(run, { exclusive: true });
  }
  {
    await using again = await openSqliteRunStore({ path });
    assert.deepEqual(await again.get(run.id), run, "a second migration pass keeps the data");
    assert.deepEqual(await again.migrationVersions(), [1]);
  }
  const fresh = await tempStorePath();
  const stores = await Promise.all(
    Array.from({ length: 4 }, () => openSqliteRunStore({ path: fresh })),
  );
  try {
    for (const store of stores) assert.deepEqual(await store.migrationVersions(), [1]);
  } finally {
    for (const store of stores) await store.close();
  }
});

Deno.test("migrations applied concurrently by two processes on one new file", async () => {
  const path = await tempStorePath();
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const children = [worker(path, "race", "a", "1"), worker(path, "race", "b", "1")];
  await Deno.writeTextFile(`${path}.go`, "");
  for (const child of children) {
    const { code, stderr } = await child.output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
  }
  await using store = await openSqliteRunStore({ path });
  assert.deepEqual(await store.migrationVersions(), [1]);
});

Deno.test("two processes writing at once: every run kept, one active run of a shared project", async () => {
  const path = await tempStorePath();
  await Deno.mkdir(join(path, ".."), { recursive: true });
  {
    await using _ = await openSqliteRunStore({ path });
  }
  const count = 40;
  const children = [
    worker(path, "race", "a", String(count)),
    worker(path, "race", "b", String(count)),
  ];
  await Deno.writeTextFile(`${path}.go`, "");
  const results: { created: number; shared: string[] }[] = [];
  for (const child of children) {
    const { code, stdout, stderr } = await child.output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    results.push(JSON.parse(new TextDecoder().decode(stdout)));
  }
  assert.deepEqual(results.map((r) => r.created), [count, count]);
  const won = results.flatMap((r) => r.shared);
  assert.equal(won.length, 1, `one exclusive run of Shared, not ${won.length}`);

  await using store = await openSqliteRunStore({ path });
  const all = await store.list({ limit: 1000 });
  assert.equal(all.runs.length, 2 * count + 1);
  assert.deepEqual((await store.list({ limit: 10, project: "Shared" })).runs.map((r) => r.id), won);
});

Deno.test("a process killed in the middle of writing leaves a whole, writable store", async () => {
  const path = await tempStorePath();
  await Deno.mkdir(join(path, ".."), { recursive: true });
  const child = worker(path, "forever", "k");
  await Deno.writeTextFile(`${path}.go`, "");
  for (let waited = 0;; waited += 10) {
    try {
      await Deno.stat(`${path}.busy`);
      break;
    } catch {
      assert.ok(waited < 60_000, "the worker never got going");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 50));
  child.kill("SIGKILL");
  const status = await child.status;
  await child.stdout.cancel();
  await child.stderr.cancel();
  assert.equal(status.success, false);

  const raw = new DatabaseSync(path);
  try {
    assert.equal(raw.prepare("PRAGMA integrity_check").get()?.integrity_check, "ok");
  } finally {
    raw.close();
  }
  await using store = await openSqliteRunStore({ path });
  const { runs } = await store.list({ limit: 1000 });
  assert.ok(runs.length >= 20, `${runs.length} runs`);
  for (const run of runs) assert.deepEqual(runSchema.parse(run), run);
  const interrupted = await store.markInterrupted(new Date().toISOString());
  assert.equal(interrupted, runs.length, "every run the dead process left is queued or running");
  const after = aRun(1, { project_name: "after" });
  assert.equal((await store.create(after, { exclusive: true })).attached, false);
});

Deno.test("a file that is not a SQLite database is a RunStoreUnavailableError", async () => {
  const path = await tempStorePath();
  await Deno.mkdir(join(path, ".."), { recursive: true });
  await Deno.writeTextFile(path, "this is not a database, ".repeat(100));
  await assert.rejects(openSqliteRunStore({ path }), (e: unknown) => {
    assert.ok(e instanceof RunStoreUnavailableError);
    assert.equal(e.code, "run_store_unavailable");
    assert.match(e.logDetail ?? "", /Cannot open the run store/);
    return true;
  });
});

Deno.test("a closed SQLite store refuses work with RunStoreUnavailableError", async () => {
  const store = await openSqliteRunStore({ path: await tempStorePath() });
  await store.close();
  await assert.rejects(store.get("x"), RunStoreUnavailableError);
});
