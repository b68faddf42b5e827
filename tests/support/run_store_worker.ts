/**
 * A child process for the SQLite run store's multi-process tests. It opens the store at `<path>` once the
 * file `<path>.go` exists (so that several workers start together), then:
 *
 * - `race <writer> <count>`: creates `count` runs of its own projects (`<writer>-<n>`) and, between them,
 *   tries an exclusive run of the project `Shared`; prints `{"created":n,"shared":[ids won]}`.
 * - `forever <writer>`: creates and updates runs until it is killed (the kill-mid-write test).
 *
 * Usage: deno run --allow-read --allow-write run_store_worker.ts <path> <mode> <writer> [count]
 */
import { openSqliteRunStore } from "../../adapters/sqlite/sqlite_run_store.ts";
import { transition } from "../../domain/run.ts";
import { RunAlreadyActiveError } from "../../ports/run_store.ts";
import { aRun } from "../contracts/run_store_contract.ts";

const [path = "", mode = "race", writer = "w", count = "1"] = Deno.args;

if (import.meta.main) {
  while (!await exists(`${path}.go`)) await new Promise((resolve) => setTimeout(resolve, 5));
  await using store = await openSqliteRunStore({ path, busyTimeoutMs: 20_000 });
  if (mode === "race") {
    const shared: string[] = [];
    let created = 0;
    for (let n = 1; n <= Number(count); n++) {
      await store.create(aRun(n, { project_name: `${writer}-${n}` }), { exclusive: true });
      created++;
      const attempt = aRun(n, { project_name: "Shared", project_start_time: `${writer}_${n}` });
      try {
        shared.push((await store.create(attempt, { exclusive: true })).run.id);
      } catch (e) {
        if (!(e instanceof RunAlreadyActiveError)) throw e;
      }
    }
    Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify({ created, shared })));
  } else {
    for (let n = 1;; n++) {
      const run = aRun(n, { project_name: `${writer}-${n}` });
      await store.create(run, { exclusive: true });
      await store.update(run.id, 1, transition(run, "start", run.created_at));
      if (n === 20) await Deno.writeTextFile(`${path}.busy`, "");
    }
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
