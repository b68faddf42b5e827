/**
 * Crash safety of the filestore: a publish or package killed with SIGKILL at many different moments leaves
 * production as the previous complete bag or the new complete bag, never a mix; the startup sweep removes the
 * leftovers; and running the request again completes the job.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LocalFilestore } from "../../adapters/filesystem/local_filestore.ts";
import { writeFiles } from "../contracts/filestore_contract.ts";
import { bagProblems } from "../support/bagit_check.ts";
import { crashPayload } from "../support/filestore_worker.ts";
import { TEST_MANIFEST_KEY } from "../support/manifest_key.ts";

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

/** Which version a production bag holds, after checking it is a complete, valid bag. */
async function productionVersion(base: string): Promise<string | undefined> {
  const dir = join(base, "production", RUN.project, RUN.startTime);
  const present = await readdir(dir).then(() => true, () => false);
  if (!present) return undefined;
  assert.deepEqual(await bagProblems(dir), [], "production is a valid bag");
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
          await store.publish(RUN);
          await store.stage(RUN, "crash", writeFiles(crashPayload("v2", MEGABYTES)));

          const finished = await killDuring(base, "publish", "", delayMs);
          outcomes.push(finished ? "finished" : "killed");
          const restarted = new LocalFilestore(base, { manifestKey: TEST_MANIFEST_KEY });
          await restarted.recover();
          const version = await productionVersion(base);
          assert.ok(version === "v1" || version === "v2", `production holds ${version}`);
          if (finished) assert.equal(version, "v2");
          assert.deepEqual(
            (await readdir(join(base, "production", RUN.project))).filter((n) => n.startsWith(".")),
            [],
            "no leftovers after the sweep",
          );

          const published = await restarted.publish(RUN);
          assert.equal(await productionVersion(base), "v2");
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
              n !== "data" && !n.startsWith(".cr8tor-staging.json")
            ),
            [],
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
          await restarted.publish(RUN);
          assert.equal(await productionVersion(base), "v3");
        } finally {
          await rm(base, { recursive: true, force: true });
        }
      });
    }
  },
});
