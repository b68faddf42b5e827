/**
 * The contract every Filestore adapter passes: readiness, staging several datasets of a run, publishing
 * atomically and idempotently, and refusing to publish anything that changed after staging, the staging
 * manifest included; a stage stopped by a `RunInterruptedError` leaves its finished files for the next
 * stage of the dataset to keep (`StagingWork.reuse`), any other end of a stage removes them, and they
 * are never published. `revoke()` reports every file of a run before removing it, hides the run at once,
 * and finishes when called again.
 *
 * @module
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { RunInterruptedError } from "../../domain/interruption.ts";
import type { RevokedFile } from "../../domain/revocation.ts";
import type { RunRef } from "../../domain/staging_layout.ts";
import type { StagedFile, StagingWork } from "../../ports/dataset_writer.ts";
import {
  type Filestore,
  FilestoreNotReadyError,
  NothingStagedError,
  StagingIntegrityError,
} from "../../ports/filestore.ts";
import { verifyReceipt } from "../../domain/release_receipt.ts";
import type { StagedContent } from "../../domain/staging_manifest.ts";
import { testReleaseSigner, testReleaseSigning } from "../support/release_signing.ts";

/** A filestore under test, plus ways to break it the way the adapter can break. */
export interface FilestoreUnderTest {
  readonly filestore: Filestore;
  /** Makes the given area unusable. */
  breakArea(area: "staging" | "production"): Promise<void>;
  /** Changes one byte of a staged file behind the filestore's back. */
  tamper(run: RunRef, path: string): Promise<void>;
  /** Edits the run's staging manifest (as JSON) behind the filestore's back, keeping its signature. */
  editManifest(run: RunRef, edit: (manifest: StagingManifestJson) => void): Promise<void>;
  cleanup(): Promise<void>;
}

/** The staging manifest as its JSON reads. */
export interface StagingManifestJson {
  files: { path: string; sha512: string; bytes: number; datasets: string[] }[];
}

const RUN: RunRef = { project: "Pr042", startTime: "20250611_093000" };

/** A writer that stages the given files (path → content) and reports their checksums. */
export function writeFiles(
  files: Record<string, string>,
): (work: StagingWork) => Promise<StagedFile[]> {
  return async (work) => {
    const staged: StagedFile[] = [];
    for (const [path, content] of Object.entries(files)) {
      await mkdir(dirname(join(work.dir, path)), { recursive: true });
      await writeFile(join(work.dir, path), content);
      const bytes = new TextEncoder().encode(content);
      staged.push({
        path,
        sha512: createHash("sha512").update(bytes).digest("hex"),
        bytes: bytes.length,
      });
    }
    return staged;
  };
}

function sha512(text: string): string {
  return createHash("sha512").update(new TextEncoder().encode(text)).digest("hex");
}

/** Runs the Filestore contract. */
export async function filestoreContract(
  t: Deno.TestContext,
  make: () => Promise<FilestoreUnderTest>,
): Promise<void> {
  async function withStore(fn: (it: FilestoreUnderTest) => Promise<void>): Promise<void> {
    const it = await make();
    try {
      await fn(it);
    } finally {
      await it.cleanup();
    }
  }

  await t.step(
    "checkReady() resolves when staging and production are usable",
    () =>
      withStore(async (it) => {
        await it.filestore.checkReady();
      }),
  );

  for (const area of ["staging", "production"] as const) {
    await t.step(
      `checkReady() names the ${area} area when it is unusable`,
      () =>
        withStore(async (it) => {
          await it.breakArea(area);
          const error = await it.filestore.checkReady().catch((e: Error) => e);
          assert.ok(error instanceof FilestoreNotReadyError);
          assert.match(error.message, new RegExp(`\\b${area}\\b`));
        }),
    );
  }

  await t.step(
    "stage() returns the dataset's files sorted, and publish() lists them with checksums",
    () =>
      withStore(async (it) => {
        const staged = await it.filestore.stage(
          RUN,
          "onc",
          writeFiles({
            "data/outputs/onc/b.csv": "id\n2\n",
            "data/outputs/onc/a.csv": "id\n1\n",
          }),
        );
        assert.deepEqual(staged.map((f) => f.path), [
          "data/outputs/onc/a.csv",
          "data/outputs/onc/b.csv",
        ]);
        const published = await it.filestore.publish(RUN);
        assert.deepEqual(published, [
          { path: "data/outputs/onc/a.csv", sha512: sha512("id\n1\n"), bytes: 5 },
          { path: "data/outputs/onc/b.csv", sha512: sha512("id\n2\n"), bytes: 5 },
        ]);
      }),
  );

  await t.step(
    "staging a second dataset keeps the first; restaging replaces only its own files",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(
          RUN,
          "a",
          writeFiles({ "data/outputs/a/t1.csv": "1", "data/outputs/a/t2.csv": "2" }),
        );
        await it.filestore.stage(RUN, "b", writeFiles({ "data/outputs/b/t.csv": "b" }));
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t1.csv": "one" }));
        const published = await it.filestore.publish(RUN);
        assert.deepEqual(published.map((f) => [f.path, f.bytes]), [
          ["data/outputs/a/t1.csv", 3],
          ["data/outputs/b/t.csv", 1],
        ]);
      }),
  );

  await t.step(
    "a shared file stays while any dataset still owns it",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/database.duckdb": "a" }));
        await it.filestore.stage(RUN, "b", writeFiles({ "data/outputs/database.duckdb": "ab" }));
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "x" }));
        const published = await it.filestore.publish(RUN);
        assert.deepEqual(published.map((f) => [f.path, f.bytes]), [
          ["data/outputs/a/t.csv", 1],
          ["data/outputs/database.duckdb", 2],
        ]);
      }),
  );

  await t.step("a failing write changes nothing in staging", () =>
    withStore(async (it) => {
      await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "old" }));
      await assert.rejects(
        it.filestore.stage(RUN, "a", async (work) => {
          await writeFiles({ "data/outputs/a/t.csv": "half" })(work);
          throw new Error("source went away");
        }),
        /source went away/,
      );
      const published = await it.filestore.publish(RUN);
      assert.deepEqual(published.map((f) => f.sha512), [sha512("old")]);
    }));

  await t.step(
    "publish() again after success returns the same files",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "x" }));
        const first = await it.filestore.publish(RUN);
        assert.deepEqual(await it.filestore.publish(RUN), first);
      }),
  );

  await t.step(
    "publish() with nothing staged or published is NothingStagedError",
    () =>
      withStore(async (it) => {
        await assert.rejects(it.filestore.publish(RUN), NothingStagedError);
      }),
  );

  await t.step(
    "publish() refuses a staged file changed after staging and keeps production as it was",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "version 1" }));
        const first = await it.filestore.publish(RUN);
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "version 2" }));
        await it.tamper(RUN, "data/outputs/a/t.csv");
        await assert.rejects(it.filestore.publish(RUN), StagingIntegrityError);
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "version 3" }));
        const third = await it.filestore.publish(RUN);
        assert.notDeepEqual(third, first);
        assert.equal(third[0]?.sha512, sha512("version 3"));
      }),
  );

  const edits: [string, (manifest: StagingManifestJson) => void][] = [
    // `tamper` appends one byte: the file and its entry are changed to match each other.
    ["a file changed with its entry", (m) => {
      m.files[0]!.sha512 = sha512("version 1!");
      m.files[0]!.bytes = 10;
    }],
    ["an added entry", (m) =>
      m.files.push({
        path: "data/outputs/a/extra.csv",
        sha512: sha512("x"),
        bytes: 1,
        datasets: ["a"],
      })],
  ];
  for (const [name, edit] of edits) {
    await t.step(
      `publish() refuses a staging manifest edited after staging (${name}); packaging again recovers`,
      () =>
        withStore(async (it) => {
          await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "version 1" }));
          await it.filestore.stage(RUN, "b", writeFiles({ "data/outputs/b/t.csv": "other" }));
          await it.tamper(RUN, "data/outputs/a/t.csv");
          await it.editManifest(RUN, edit);
          const error = await it.filestore.publish(RUN).catch((e: Error) => e);
          assert.ok(error instanceof StagingIntegrityError, String(error));
          assert.match(error.message, /not signed by this service for this run/);
          // A manifest that does not verify is not trusted for anything: a new package starts afresh.
          await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "version 2" }));
          assert.deepEqual(await it.filestore.publish(RUN), [
            { path: "data/outputs/a/t.csv", sha512: sha512("version 2"), bytes: 9 },
          ]);
        }),
    );
  }

  await t.step(
    "republishing after a new package replaces the published files",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(
          RUN,
          "a",
          writeFiles({ "data/outputs/a/t.csv": "1", "data/outputs/a/u.csv": "2" }),
        );
        await it.filestore.publish(RUN);
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "new" }));
        const published = await it.filestore.publish(RUN);
        assert.deepEqual(published.map((f) => f.path), ["data/outputs/a/t.csv"]);
        assert.deepEqual(await it.filestore.publish(RUN), published);
      }),
  );

  await t.step(
    "runs of different projects and start times do not touch each other",
    () =>
      withStore(async (it) => {
        const other: RunRef = { project: "Other", startTime: "20250611_093000" };
        const later: RunRef = { project: "Pr042", startTime: "20260101_000000" };
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "run" }));
        await it.filestore.stage(other, "a", writeFiles({ "data/outputs/a/t.csv": "other" }));
        await it.filestore.stage(later, "a", writeFiles({ "data/outputs/a/t.csv": "later" }));
        assert.equal((await it.filestore.publish(other))[0]?.sha512, sha512("other"));
        assert.equal((await it.filestore.publish(RUN))[0]?.sha512, sha512("run"));
        assert.equal((await it.filestore.publish(later))[0]?.sha512, sha512("later"));
      }),
  );

  /** A write that writes `files`, then stops with `reason` as an aborted writer does. */
  function stoppedWrite(files: Record<string, string>, reason: unknown) {
    return async (work: StagingWork): Promise<StagedFile[]> => {
      await writeFiles(files)(work);
      throw reason;
    };
  }

  /** A write that keeps what `reuse` offers for `keep` (path → content it must have) and writes the rest. */
  function resumingWrite(
    keep: Record<string, string>,
    write: Record<string, string>,
    kept: string[],
  ) {
    return async (work: StagingWork): Promise<StagedFile[]> => {
      const staged: StagedFile[] = [];
      const rest: Record<string, string> = { ...write };
      for (const [path, content] of Object.entries(keep)) {
        const file = await work.reuse(path, sha512(content));
        if (file === undefined) rest[path] = content;
        else {
          kept.push(path);
          staged.push(file);
        }
      }
      return [...staged, ...await writeFiles(rest)(work)];
    };
  }

  await t.step(
    "a cancelled stage changes nothing in staging and leaves nothing to reuse",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "old" }));
        const cancel = new AbortController();
        cancel.abort();
        await assert.rejects(
          it.filestore.stage(
            RUN,
            "a",
            stoppedWrite({ "data/outputs/a/t.csv": "new" }, cancel.signal.reason),
          ),
          (e) => e === cancel.signal.reason,
        );
        const kept: string[] = [];
        await it.filestore.stage(
          RUN,
          "b",
          resumingWrite({ "data/outputs/b/x.csv": "new" }, {}, kept),
        );
        await it.filestore.stage(
          RUN,
          "a",
          resumingWrite({ "data/outputs/a/t.csv": "new" }, {}, kept),
        );
        assert.deepEqual(kept, []);
        assert.deepEqual((await it.filestore.publish(RUN)).map((f) => f.path), [
          "data/outputs/a/t.csv",
          "data/outputs/b/x.csv",
        ]);
      }),
  );

  await t.step(
    "an interrupted stage changes nothing in staging; the next stage keeps its files whose SHA-512 matches",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "old" }));
        const interruption = new RunInterruptedError();
        await assert.rejects(
          it.filestore.stage(
            RUN,
            "a",
            stoppedWrite({
              "data/outputs/a/t.csv": "t done",
              "data/outputs/a/u.csv": "u half",
            }, interruption),
          ),
          (e) => e === interruption,
        );
        // Left-overs are never published: staging still has the old file only.
        await it.filestore.stage(RUN, "b", writeFiles({ "data/outputs/b/x.csv": "b" }));
        const kept: string[] = [];
        const staged = await it.filestore.stage(
          RUN,
          "a",
          resumingWrite(
            { "data/outputs/a/t.csv": "t done", "data/outputs/a/u.csv": "u done" },
            {},
            kept,
          ),
        );
        assert.deepEqual(kept, ["data/outputs/a/t.csv"]);
        assert.deepEqual(staged, [
          { path: "data/outputs/a/t.csv", sha512: sha512("t done"), bytes: 6 },
          { path: "data/outputs/a/u.csv", sha512: sha512("u done"), bytes: 6 },
        ]);
        // A stage that succeeded removed the dataset's left-overs.
        const again: string[] = [];
        await it.filestore.stage(
          RUN,
          "a",
          resumingWrite({ "data/outputs/a/t.csv": "t done" }, {}, again),
        );
        assert.deepEqual(again, []);
      }),
  );

  await t.step(
    "left-overs are kept across interruptions, belong to their dataset and are never published",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "a" }));
        await assert.rejects(
          it.filestore.stage(
            RUN,
            "b",
            stoppedWrite({ "data/outputs/b/t.csv": "b1" }, new RunInterruptedError()),
          ),
          RunInterruptedError,
        );
        // Interrupted again after keeping nothing and writing another table: both stay.
        await assert.rejects(
          it.filestore.stage(
            RUN,
            "b",
            stoppedWrite({ "data/outputs/b/u.csv": "b2" }, new RunInterruptedError()),
          ),
          RunInterruptedError,
        );
        const kept: string[] = [];
        await it.filestore.stage(
          RUN,
          "b",
          resumingWrite({ "data/outputs/b/t.csv": "b1", "data/outputs/b/u.csv": "b2" }, {}, kept),
        );
        assert.deepEqual(kept, ["data/outputs/b/t.csv", "data/outputs/b/u.csv"]);
        await assert.rejects(
          it.filestore.stage(
            RUN,
            "c",
            stoppedWrite({ "data/outputs/c/t.csv": "c" }, new RunInterruptedError()),
          ),
          RunInterruptedError,
        );
        assert.deepEqual((await it.filestore.publish(RUN)).map((f) => f.path), [
          "data/outputs/a/t.csv",
          "data/outputs/b/t.csv",
          "data/outputs/b/u.csv",
        ]);
        // Publishing removed the run's staging, left-overs included.
        const after: string[] = [];
        await it.filestore.stage(
          RUN,
          "c",
          resumingWrite({ "data/outputs/c/t.csv": "c" }, {}, after),
        );
        assert.deepEqual(after, []);
      }),
  );

  await t.step(
    "reuse() refuses a path outside the dataset's own folder",
    () =>
      withStore(async (it) => {
        await assert.rejects(
          it.filestore.stage(RUN, "a", async (work) => {
            await work.reuse("data/outputs/b/t.csv", sha512("x"));
            return [];
          }),
          RangeError,
        );
      }),
  );

  await t.step(
    "publish() with a release writes its crate and a receipt that verifies; republishing returns them unchanged",
    () =>
      withStore(async (it) => {
        const signer = await testReleaseSigner();
        const tables = [{
          name: "t",
          description: null,
          columns: [{ name: "id", datatype: "integer", description: null }],
        }];
        await it.filestore.stage(
          RUN,
          "onc",
          writeFiles({ "data/outputs/onc/t.csv": "id\n1\n" }),
          undefined,
          tables,
        );
        const seen: StagedContent[] = [];
        const published = await it.filestore.publish(RUN, testReleaseSigning(RUN, signer, seen));
        assert.deepEqual(seen.at(-1)?.datasets, [{ schema_name: "onc", tables, disclosure: null }]);
        const release = await it.filestore.publishedRelease(RUN);
        assert.ok(release !== undefined);
        const claims = await verifyReceipt(release.receipt.jws, await signer.keySet());
        assert.deepEqual(claims, release.receipt.claims);
        assert.equal(claims.release_id, "rel-test");
        assert.equal(claims.project_name, RUN.project);
        assert.equal(claims.project_start_time, RUN.startTime);
        assert.deepEqual(claims.destination, { type: "filestore", name: "LSC" });
        assert.equal(claims.subject.kind, "bagit-tagmanifest-sha512");
        const files = (release.crate["@graph"] as Record<string, unknown>[])
          .filter((e) => published.some((p) => p.path === e["@id"]));
        assert.deepEqual(
          files.map((e) => [e["@id"], Number(e.contentSize), e.sha512]),
          published.map((p) => [p.path, p.bytes, p.sha512]),
        );

        assert.deepEqual(await it.filestore.publish(RUN), published);
        assert.deepEqual(await it.filestore.publishedRelease(RUN), release);
      }),
  );

  await t.step(
    "publish() without a release writes no receipt",
    () =>
      withStore(async (it) => {
        assert.equal(await it.filestore.publishedRelease(RUN), undefined);
        await it.filestore.stage(RUN, "onc", writeFiles({ "data/outputs/onc/t.csv": "x" }));
        await it.filestore.publish(RUN);
        assert.equal(await it.filestore.publishedRelease(RUN), undefined);
      }),
  );

  await t.step(
    "revoke() reports every published and staged file before removing it; again, nothing",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(RUN, "onc", writeFiles({ "data/outputs/onc/a.csv": "id\n1\n" }));
        await it.filestore.publish(RUN);
        await it.filestore.stage(RUN, "onc", writeFiles({ "data/outputs/onc/b.csv": "id\n2\n" }));
        const reported: RevokedFile[] = [];

        const revoked = await it.filestore.revoke(RUN, {
          mode: "delete",
          releaseId: "rel-1",
          onRemoving: (file) => Promise.resolve(void reported.push(file)),
        });

        assert.equal(revoked.mode, "deleted");
        assert.deepEqual(revoked.files, [...reported].sort(byAreaPath));
        const byName = new Map(revoked.files.map((f) => [`${f.area}/${f.path}`, f]));
        assert.deepEqual(byName.get("production/data/outputs/onc/a.csv"), {
          area: "production",
          path: "data/outputs/onc/a.csv",
          sha512: sha512("id\n1\n"),
          bytes: 5,
        });
        assert.equal(byName.get("staging/data/outputs/onc/b.csv")?.sha512, sha512("id\n2\n"));
        assert.ok(byName.has("production/manifest-sha512.txt"), "tag files too");
        await assert.rejects(it.filestore.publish(RUN), NothingStagedError);
        assert.deepEqual((await it.filestore.staging(RUN)).digest, null);

        const again = await it.filestore.revoke(RUN, {
          mode: "delete",
          releaseId: "rel-1",
          onRemoving: () => assert.fail("nothing is left to remove"),
        });
        assert.deepEqual(again.files, []);
      }),
  );

  await t.step(
    "revoke() hides the run at once; a file whose report fails stays, and revoking again finishes",
    () =>
      withStore(async (it) => {
        await it.filestore.stage(
          RUN,
          "onc",
          writeFiles({ "data/outputs/onc/a.csv": "a", "data/outputs/onc/b.csv": "b" }),
        );
        await it.filestore.publish(RUN);
        const failure = new Error("the record could not be stored");
        await assert.rejects(
          it.filestore.revoke(RUN, {
            mode: "delete",
            releaseId: "rel-1",
            onRemoving: () => Promise.reject(failure),
          }),
          failure,
        );
        await assert.rejects(it.filestore.publish(RUN), NothingStagedError, "hidden at once");

        const reported: string[] = [];
        const revoked = await it.filestore.revoke(RUN, {
          mode: "delete",
          releaseId: "rel-1",
          onRemoving: (file) => Promise.resolve(void reported.push(file.path)),
        });
        assert.ok(reported.includes("data/outputs/onc/a.csv"), "the first file is reported again");
        assert.deepEqual(revoked.files.map((f) => f.path).sort(), reported.sort());
      }),
  );

  await t.step(
    "revoke() of a run never staged or published removes and reports nothing",
    () =>
      withStore(async (it) => {
        const revoked = await it.filestore.revoke(RUN, {
          mode: "quarantine",
          releaseId: "rel-1",
          onRemoving: () => assert.fail("nothing to remove"),
        });
        assert.deepEqual(revoked, { mode: "quarantined", files: [] });
      }),
  );
}

function byAreaPath(a: RevokedFile, b: RevokedFile): number {
  const x = `${a.area}/${a.path}`;
  const y = `${b.area}/${b.path}`;
  return x < y ? -1 : x > y ? 1 : 0;
}
