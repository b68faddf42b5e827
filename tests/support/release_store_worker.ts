/**
 * A child process for the SQLite release store's multi-process test. Once the file `<path>.go` exists (so
 * that several workers start together), it opens the store at `<path>` and records `<count>` approvals of
 * `<releaseId>` under {@link CONTRACT_POLICY}, by people `<writer>-1` … `<writer>-<count>`, then prints
 * `{"opened": n}`: how many of its decisions opened the gate.
 *
 * Usage: deno run --allow-read --allow-write release_store_worker.ts <path> <releaseId> <writer> <count>
 */
import { openSqliteReleaseStore } from "../../adapters/sqlite/sqlite_release_store.ts";
import { gatesOpenedBy, newDecision } from "../../domain/release.ts";
import { CONTRACT_POLICY } from "../contracts/release_store_contract.ts";

const [path = "", releaseId = "", writer = "w", count = "1"] = Deno.args;

/** The time every worker decides at, so that no approval expires during the test. */
export const WORKER_NOW = "2026-12-01T00:10:00.000Z";

if (import.meta.main) {
  while (!await exists(`${path}.go`)) await new Promise((resolve) => setTimeout(resolve, 5));
  await using store = await openSqliteReleaseStore({ path, busyTimeoutMs: 20_000 });
  let opened = 0;
  for (let n = 1; n <= Number(count); n++) {
    const { release } = await store.decide(
      releaseId,
      (fresh) =>
        newDecision(fresh, CONTRACT_POLICY, {
          id: `${writer}-${n}`,
          issuer: "https://idp.example",
          name: `${writer} ${n}`,
          roles: ["output-checker"],
        }, {
          gate: "sign_off",
          approval_type: "OUTPUT_CHECKER",
          decision: "approve",
          manifest_digest: null,
        }, WORKER_NOW),
    );
    opened += gatesOpenedBy(release, CONTRACT_POLICY, WORKER_NOW).length;
  }
  Deno.stdout.writeSync(new TextEncoder().encode(JSON.stringify({ opened })));
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
