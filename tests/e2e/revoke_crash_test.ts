/**
 * Crash safety of a filestore revocation (issue 16): a revoke run killed with SIGKILL at every step
 * (before and after each file is recorded, after the last removal) is resumed, by `POST /runs/{id}/resume`
 * (`Runner.resume`) or by sending the same request again (`Runner.start`), after the startup sweep; the
 * certificate then lists every file of production and staging with the SHA-512 and size it had when
 * published, and nothing of the run is left in production or staging (with quarantine: everything is in
 * the `revoked/` area).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { openSqliteRunStore } from "../../adapters/sqlite/sqlite_run_store.ts";
import { deletionCertificateSchema, type RevocationMode } from "../../domain/revocation.ts";
import { writeFiles } from "../contracts/filestore_contract.ts";
import { crashPayload } from "../support/filestore_worker.ts";
import { TEST_MANIFEST_KEY } from "../support/manifest_key.ts";
import {
  revocationRunner,
  REVOKE_REQUEST,
  REVOKE_RUN,
  REVOKE_RUN_INPUT,
} from "../support/revoke_worker.ts";

const WORKER = new URL("../support/revoke_worker.ts", import.meta.url).pathname;

/** Every file under `dir`, relative to it, with its SHA-512 and size. */
async function filesUnder(dir: string, prefix = ""): Promise<Map<string, [string, number]>> {
  const found = new Map<string, [string, number]>();
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return found;
  }
  for (const entry of entries) {
    const rel = prefix === "" ? entry.name : `${prefix}/${entry.name}`;
    if (entry.isDirectory) {
      for (const [k, v] of await filesUnder(join(dir, entry.name), rel)) found.set(k, v);
    } else {
      const bytes = await readFile(join(dir, entry.name));
      found.set(rel, [createHash("sha512").update(bytes).digest("hex"), bytes.length]);
    }
  }
  return found;
}

/** A filestore with the run published (version `v`) and staged again (version `w`). */
async function publishedFilestore(): Promise<
  { base: string; expected: Map<string, [string, number]> }
> {
  const base = await mkdtemp(join(tmpdir(), "revoke-crash-"));
  await mkdir(join(base, "staging"));
  await mkdir(join(base, "production"));
  const store = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
  await store.stage(REVOKE_RUN, "crash", writeFiles(crashPayload("v", 1)));
  await store.publish(REVOKE_RUN);
  await store.stage(REVOKE_RUN, "crash", writeFiles(crashPayload("w", 1)));
  const expected = new Map<string, [string, number]>();
  for (const area of ["production", "staging"]) {
    const dir = join(base, area, REVOKE_RUN.project, REVOKE_RUN.startTime);
    for (const [path, value] of await filesUnder(dir)) expected.set(`${area}/${path}`, value);
  }
  return { base, expected };
}

/** Runs the worker until it kills itself at `killAt` (or ends); returns whether it printed an outcome. */
async function runWorker(
  base: string,
  storePath: string,
  killAt: number,
  mode: RevocationMode,
): Promise<boolean> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER, base, storePath, String(killAt), mode],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(output.stdout).includes('"status":200');
}

/** After the sweep, resumes the interrupted run (or sends the request again); returns the certificate. */
async function resume(base: string, storePath: string, mode: RevocationMode, again: boolean) {
  await using store = await openSqliteRunStore({ path: storePath, busyTimeoutMs: 20_000 });
  const { runner, filestore } = revocationRunner(base, store, mode, () => {}, 60);
  try {
    await filestore.recover();
    await new Promise((resolve) => setTimeout(resolve, 120));
    await runner.maintain(90);
    const { runs } = await store.list({ project: REVOKE_RUN.project, limit: 10 });
    assert.equal(runs.length, 1);
    assert.equal(runs[0]!.state, "interrupted");
    const id = again
      ? (await runner.start(REVOKE_RUN_INPUT)).run.id
      : (await runner.resume(runs[0]!.id)).id;
    const { run } = await runner.settled(id);
    assert.equal(run.state, "succeeded", JSON.stringify(run.outcome));
    const body = run.outcome!.body as { payload: { certificate: unknown } };
    return deletionCertificateSchema.parse(body.payload.certificate);
  } finally {
    await runner.close();
  }
}

async function checkKilledAt(killAt: number, mode: RevocationMode, again: boolean): Promise<void> {
  const { base, expected } = await publishedFilestore();
  const storePath = join(base, "runs.sqlite");
  try {
    const finished = await runWorker(base, storePath, killAt, mode);
    assert.equal(finished, false, `the worker is killed at step ${killAt}`);

    const certificate = await resume(base, storePath, mode, again);

    assert.equal(certificate.release_id, REVOKE_REQUEST.release_id);
    assert.equal(certificate.mode, mode === "delete" ? "deleted" : "quarantined");
    assert.deepEqual(
      new Map(certificate.files.map((f) => [`${f.area}/${f.path}`, [f.sha512, f.bytes]])),
      expected,
      `step ${killAt}: the certificate lists every file with its published SHA-512`,
    );
    for (const area of ["production", "staging"]) {
      assert.deepEqual(await readdir(join(base, area)), [], `step ${killAt}: ${area} is empty`);
    }
    if (mode === "quarantine") {
      const moved = join(
        base,
        "revoked",
        REVOKE_RUN.project,
        `${REVOKE_RUN.startTime}-${REVOKE_REQUEST.release_id}`,
      );
      const kept = new Map<string, [string, number]>();
      for (const area of ["production", "staging"]) {
        for (const [path, value] of await filesUnder(join(moved, area))) {
          kept.set(`${area}/${path}`, value);
        }
      }
      assert.deepEqual(kept, expected, `step ${killAt}: every file is in the revoked area`);
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

Deno.test({
  name: "revocation: SIGKILL at every step, then resumed, certifies every file and leaves nothing",
  sanitizeResources: false,
  fn: async (t) => {
    const { base, expected } = await publishedFilestore();
    await rm(base, { recursive: true, force: true });
    const steps = 2 * expected.size + 1;
    assert.ok(expected.size >= 8, "production and staging files");

    await t.step("an uninterrupted worker revokes everything", async () => {
      const fresh = await publishedFilestore();
      try {
        assert.equal(
          await runWorker(fresh.base, join(fresh.base, "runs.sqlite"), -1, "delete"),
          true,
        );
        assert.deepEqual(await readdir(join(fresh.base, "production")), []);
      } finally {
        await rm(fresh.base, { recursive: true, force: true });
      }
    });

    for (let killAt = 0; killAt < steps; killAt++) {
      await t.step(
        `delete: killed at step ${killAt} of ${steps}`,
        () => checkKilledAt(killAt, "delete", killAt % 2 === 1),
      );
    }
    for (const killAt of [0, 3, expected.size, steps - 1]) {
      await t.step(
        `quarantine: killed at step ${killAt} of ${steps}`,
        () => checkKilledAt(killAt, "quarantine", killAt % 2 === 0),
      );
    }
  },
});
