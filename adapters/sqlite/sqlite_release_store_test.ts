import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { join } from "node:path";
import { ReleaseStoreUnavailableError } from "../../ports/release_store.ts";
import { withPendingPublish } from "../../domain/release.ts";
import { aRelease, releaseStoreContract } from "../../tests/contracts/release_store_contract.ts";
import {
  openSqliteReleaseStore,
  SQLITE_RELEASE_STORE_FILE,
  SQLITE_RELEASE_STORE_MIGRATIONS,
  sqliteReleaseStorePath,
} from "./sqlite_release_store.ts";

const TEMP_ROOT = await Deno.makeTempDir({ prefix: "releases_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TEMP_ROOT, { recursive: true }));

async function tempStorePath(): Promise<string> {
  return join(await Deno.makeTempDir({ dir: TEMP_ROOT }), "state", SQLITE_RELEASE_STORE_FILE);
}

Deno.test("SqliteReleaseStore passes the ReleaseStore contract", async (t) => {
  await releaseStoreContract(t, async () => {
    const path = await tempStorePath();
    return {
      store: await openSqliteReleaseStore({ path }),
      reopen: () => openSqliteReleaseStore({ path }),
    };
  });
});

Deno.test("the SQLite release store lives in releases.sqlite under the state directory", () => {
  assert.equal(sqliteReleaseStorePath(), join("state", "releases.sqlite"));
  assert.equal(sqliteReleaseStorePath("/var/lib/cr8tor"), "/var/lib/cr8tor/releases.sqlite");
});

Deno.test("the SQLite release store is in WAL mode and records each migration once", async () => {
  const path = await tempStorePath();
  const expected = SQLITE_RELEASE_STORE_MIGRATIONS.map((m) => m.version);
  const stores = await Promise.all(
    Array.from({ length: 4 }, () => openSqliteReleaseStore({ path })),
  );
  try {
    for (const store of stores) assert.deepEqual(await store.migrationVersions(), expected);
  } finally {
    for (const store of stores) await store.close();
  }
  await using again = await openSqliteReleaseStore({ path });
  assert.deepEqual(await again.migrationVersions(), expected);
  const raw = new DatabaseSync(path, { readOnly: true });
  try {
    assert.equal(raw.prepare("PRAGMA journal_mode").get()?.journal_mode, "wal");
  } finally {
    raw.close();
  }
});

Deno.test("a release store that cannot be opened is unavailable, naming the path only in the log", async () => {
  const file = join(await Deno.makeTempDir({ dir: TEMP_ROOT }), "file");
  await Deno.writeTextFile(file, "not a directory");
  await assert.rejects(
    openSqliteReleaseStore({ path: join(file, "releases.sqlite") }),
    (e) =>
      e instanceof ReleaseStoreUnavailableError &&
      e.message === "The release store is unavailable" &&
      (e.logDetail ?? "").includes(file),
  );
});

Deno.test("a corrupt release row is an error, not a release", async () => {
  const path = await tempStorePath();
  await using store = await openSqliteReleaseStore({ path });
  const { release } = await store.ensure(aRelease(1));
  const raw = new DatabaseSync(path);
  try {
    raw.prepare("UPDATE releases SET body = ? WHERE id = ?").run('{"id": 1}', release.id);
  } finally {
    raw.close();
  }
  await assert.rejects(store.get(release.id));
});

Deno.test("a release row stored before pending publishes were kept reads with none, and takes one", async () => {
  const path = await tempStorePath();
  await using store = await openSqliteReleaseStore({ path });
  const { release } = await store.ensure(aRelease(1));
  const { pending_publishes: _pending, ...old } = release;
  const raw = new DatabaseSync(path);
  try {
    raw.prepare("UPDATE releases SET body = ? WHERE id = ?").run(JSON.stringify(old), release.id);
  } finally {
    raw.close();
  }
  assert.deepEqual((await store.get(release.id))?.pending_publishes, []);
  const pending = await store.update(
    release.id,
    (fresh) => withPendingPublish(fresh, "run-1", null, release.created_at),
  );
  assert.deepEqual(pending.pending_publishes.map((p) => p.run_id), ["run-1"]);
});

const WORKER = new URL("../../tests/support/release_store_worker.ts", import.meta.url).pathname;

Deno.test("two processes deciding at once: every decision kept, the gate opened once", async () => {
  const path = await tempStorePath();
  await using store = await openSqliteReleaseStore({ path });
  const { release } = await store.ensure(aRelease(1));
  const count = 15;
  const children = ["x", "y"].map((writer) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-read",
        "--allow-write",
        WORKER,
        path,
        release.id,
        writer,
        `${count}`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn()
  );
  await Deno.writeTextFile(`${path}.go`, "");
  const outputs = await Promise.all(children.map((child) => child.output()));
  for (const output of outputs) {
    assert.ok(output.success, new TextDecoder().decode(output.stderr));
  }
  const opened = outputs.map((o) => JSON.parse(new TextDecoder().decode(o.stdout)).opened);
  assert.equal(opened[0] + opened[1], 1);
  const stored = await store.get(release.id);
  assert.equal(stored?.decisions.length, 2 * count);
  assert.equal(new Set(stored?.decisions.map((d) => d.person.id)).size, 2 * count);
});
