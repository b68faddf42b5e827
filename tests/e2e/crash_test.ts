/**
 * Crash safety of the filestore: a publish or package killed with SIGKILL at many different moments leaves
 * production as the previous complete bag or the new complete bag, never a mix; the startup sweep removes the
 * leftovers; and running the request again completes the job. A package killed after some tables were done
 * resumes: the sweep keeps those tables' files aside, and a stage told their SHA-512 keeps them without
 * reading them again, ending with the same staging manifest and bytes as a stage never interrupted.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { writeFiles } from "../contracts/filestore_contract.ts";
import { bagProblems } from "../support/bagit_check.ts";
import { crashPayload, crashRelease } from "../support/filestore_worker.ts";
import {
  CRATE_TAG_FILE,
  RECEIPT_TAG_FILE,
  sha512Hex,
  verifyReceipt,
} from "../../domain/release_receipt.ts";
import { TEST_MANIFEST_KEY } from "../support/manifest_key.ts";
import { RESUME_RUN, RESUME_TABLES, stageResumable } from "../support/resume_worker.ts";

const RUN = { project: "Crash", startTime: "20250611_093000" };
const MEGABYTES = 8;
const WORKER = new URL("../support/filestore_worker.ts", import.meta.url).pathname;

/** Starts the worker and kills it `delayMs` after it says it started; returns whether it had finished. */
async function killDuring(
  base: string,
  mode: "stage" | "publish",
  tag: string,
  delayMs: number,
): Promise<boolean> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER, base, mode, tag, String(MEGABYTES)],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("started")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
  }
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  try {
    child.kill("SIGKILL");
  } catch {
    // already exited
  }
  await child.status;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
  }
  return seen.includes("done");
}

/**
 * Which version a production bag holds, after checking it is a complete, valid bag (and, when `signed`,
 * that it has its crate in the tag manifest and a receipt over the tag manifest).
 */
async function productionVersion(base: string, signed = false): Promise<string | undefined> {
  const dir = join(base, "production", RUN.project, RUN.startTime);
  const present = await readdir(dir).then(() => true, () => false);
  if (!present) return undefined;
  assert.deepEqual(await bagProblems(dir), [], "production is a valid bag");
  if (signed) {
    const tagManifest = await readFile(join(dir, "tagmanifest-sha512.txt"), "utf8");
    assert.ok(tagManifest.includes(`  ${CRATE_TAG_FILE}\n`), "the crate is in the tag manifest");
    const claims = await verifyReceipt(
      await readFile(join(dir, RECEIPT_TAG_FILE), "utf8"),
      await crashRelease(base, RUN).signer.keySet(),
    );
    assert.equal(claims.subject.sha512, await sha512Hex(tagManifest), "the receipt signs this bag");
  }
  const head = (await readFile(join(dir, "data/outputs/crash/a.csv"), "utf8")).slice(0, 8);
  const versions = new Set(
    await Promise.all(
      ["a", "b", "c"].map(async (n) =>
        (await readFile(join(dir, `data/outputs/crash/${n}.csv`), "utf8")).split("-")[0]
      ),
    ),
  );
  assert.equal(versions.size, 1, `files of one version only, got ${[...versions]} (${head})`);
  return [...versions][0];
}

Deno.test({
  name:
    "crash safety: SIGKILL during publish leaves production previous-or-new, and publish recovers",
  sanitizeResources: false,
  fn: async (t) => {
    const outcomes: string[] = [];
    for (const delayMs of [0, 10, 25, 50, 80, 120, 180, 260, 400]) {
      await t.step(`killed ${delayMs} ms into publish`, async () => {
        const base = await mkdtemp(join(tmpdir(), "cr8tor-crash-"));
        try {
          await mkdir(join(base, "staging"));
          await mkdir(join(base, "production"));
          const store = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
          await store.stage(RUN, "crash", writeFiles(crashPayload("v1", MEGABYTES)));
          const { release } = crashRelease(base, RUN);
          await store.publish(RUN, release);
          await store.stage(RUN, "crash", writeFiles(crashPayload("v2", MEGABYTES)));

          const finished = await killDuring(base, "publish", "", delayMs);
          outcomes.push(finished ? "finished" : "killed");
          const restarted = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
          await restarted.recover();
          const version = await productionVersion(base, true);
          assert.ok(version === "v1" || version === "v2", `production holds ${version}`);
          if (finished) assert.equal(version, "v2");
          assert.deepEqual(
            (await readdir(join(base, "production", RUN.project))).filter((n) => n.startsWith(".")),
            [],
            "no leftovers after the sweep",
          );

          const published = await restarted.publish(RUN, release);
          assert.equal(await productionVersion(base, true), "v2");
          assert.deepEqual(
            await restarted.publish(RUN),
            published,
            "publishing again answers the same",
          );
        } finally {
          await rm(base, { recursive: true, force: true });
        }
      });
    }
    await t.step("some kills landed before the publish finished", () => {
      assert.ok(outcomes.includes("killed"), outcomes.join(","));
    });
  },
});

Deno.test({
  name: "crash safety: SIGKILL during package leaves the previous staging, and package recovers",
  sanitizeResources: false,
  fn: async (t) => {
    for (const delayMs of [0, 20, 60, 120, 250]) {
      await t.step(`killed ${delayMs} ms into package`, async () => {
        const base = await mkdtemp(join(tmpdir(), "cr8tor-crash-"));
        try {
          await mkdir(join(base, "staging"));
          await mkdir(join(base, "production"));
          const store = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
          await store.stage(RUN, "crash", writeFiles(crashPayload("v1", MEGABYTES)));

          await killDuring(base, "stage", "v2", delayMs);
          const restarted = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
          await restarted.recover();
          const runDir = join(base, "staging", RUN.project, RUN.startTime);
          assert.deepEqual(
            (await readdir(runDir)).filter((n) =>
              n !== "data" && n !== ".resumable" && !n.startsWith(".cr8tor-staging.json")
            ),
            [],
            "only the staging, and what the killed stage wrote kept aside for resuming",
          );
          // Whatever the moment, publishing either succeeds with one consistent version or refuses with 409.
          const outcome = await restarted.publish(RUN).then(
            () => "published",
            (e: Error) => e.name,
          );
          assert.ok(outcome === "published" || outcome === "StagingIntegrityError", outcome);
          if (outcome === "published") {
            assert.ok(["v1", "v2"].includes((await productionVersion(base))!));
          }

          await restarted.stage(RUN, "crash", writeFiles(crashPayload("v3", 1)));
          assert.ok(!(await readdir(runDir)).includes(".resumable"), "staging again removed it");
          await restarted.publish(RUN);
          assert.equal(await productionVersion(base), "v3");
        } finally {
          await rm(base, { recursive: true, force: true });
        }
      });
    }
  },
});

/** Every file of a staging run folder (manifest included), path → bytes, hidden work folders excluded. */
async function stagedBytes(base: string): Promise<Map<string, string>> {
  const runDir = join(base, "staging", RESUME_RUN.project, RESUME_RUN.startTime);
  const files = new Map<string, string>();
  files.set(".cr8tor-staging.json", await readFile(join(runDir, ".cr8tor-staging.json"), "utf8"));
  const dataDir = join(runDir, "data/outputs/cohort");
  for (const name of (await readdir(dataDir)).sort()) {
    files.set(name, await readFile(join(dataDir, name), "utf8"));
  }
  return files;
}

async function newBase(): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), "cr8tor-resume-"));
  await mkdir(join(base, "staging"));
  await mkdir(join(base, "production"));
  return base;
}

Deno.test({
  name:
    "crash safety: a package killed after some tables resumes, keeping them unread, and stages the same bytes",
  sanitizeResources: false,
  fn: async () => {
    const uninterruptedBase = await newBase();
    const base = await newBase();
    try {
      await stageResumable(uninterruptedBase, { delayMs: 0 });
      const want = await stagedBytes(uninterruptedBase);

      // The child prints a line per table done; it is killed once two are done.
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../support/resume_worker.ts", import.meta.url).pathname,
          base,
          "15",
        ],
        stdout: "piped",
        stderr: "null",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let seen = "";
      const doneLines = () => seen.split("\n").filter((l) => l.startsWith("done "));
      while (doneLines().length < 2) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += value;
      }
      child.kill("SIGKILL");
      await child.status;
      await reader.cancel();
      assert.ok(!seen.includes("finished"), "killed before the stage finished");
      const reuse = new Map(
        doneLines().map((line) => {
          const [, table, sha512] = line.split(" ");
          return [table!, sha512!] as const;
        }),
      );
      assert.ok(reuse.size >= 2 && reuse.size < RESUME_TABLES.length, `${reuse.size} tables done`);

      await new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY }).recover();
      const reads: string[] = [];
      const reused: string[] = [];
      await stageResumable(base, {
        delayMs: 0,
        reuse,
        onRead: (table) => reads.push(table),
        onProgress: (p) => {
          if (p.done?.reused) reused.push(p.table);
        },
      });
      assert.deepEqual(reused.sort(), [...reuse.keys()].sort(), "every finished table kept");
      assert.deepEqual(
        reads.sort(),
        RESUME_TABLES.filter((t) => !reuse.has(t)).sort(),
        "only the other tables read",
      );
      assert.deepEqual(await stagedBytes(base), want, "same manifest and bytes as uninterrupted");
      const runDir = join(base, "staging", RESUME_RUN.project, RESUME_RUN.startTime);
      assert.deepEqual((await readdir(runDir)).sort(), [".cr8tor-staging.json", "data"]);
    } finally {
      await rm(uninterruptedBase, { recursive: true, force: true });
      await rm(base, { recursive: true, force: true });
    }
  },
});
