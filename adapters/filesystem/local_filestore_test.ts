import assert from "node:assert/strict";
import {
  appendFile,
  link,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { filestoreContract, writeFiles } from "../../tests/contracts/filestore_contract.ts";
import { bagProblems } from "../../tests/support/bagit_check.ts";
import { FilestoreNotReadyError, UnsafeFilesystemEntryError } from "../../ports/filestore.ts";
import type { StagingWork } from "../../ports/dataset_writer.ts";
import { RunInterruptedError } from "../../domain/interruption.ts";
import { TEST_MANIFEST_KEY } from "../../tests/support/manifest_key.ts";
import type { FileModes } from "./confined_tree.ts";
import { LocalFilestore } from "./local_filestore.ts";
import { CRATE_TAG_FILE, RECEIPT_TAG_FILE, verifyReceipt } from "../../domain/release_receipt.ts";
import { testReleaseSigner, testReleaseSigning } from "../../tests/support/release_signing.ts";

const RUN = { project: "Pr042", startTime: "20250611_093000" };

async function makeBase(): Promise<string> {
  const base = await mkdtemp(join(tmpdir(), "cr8tor-filestore-"));
  await mkdir(join(base, "staging"));
  await mkdir(join(base, "production"));
  return base;
}

function store(base: string): LocalFilestore {
  return new LocalFilestore(base, {
    manifestKey: TEST_MANIFEST_KEY,
    today: () => new Date("2025-06-11T10:00:00Z"),
  });
}

Deno.test("LocalFilestore passes the Filestore contract", async (t) => {
  await filestoreContract(t, async () => {
    const base = await makeBase();
    return {
      filestore: store(base),
      breakArea: (area) => rm(join(base, area), { recursive: true }),
      tamper: (run, path) =>
        appendFile(join(base, "staging", run.project, run.startTime, path), "!"),
      editManifest: async (run, edit) => {
        const path = join(base, "staging", run.project, run.startTime, ".cr8tor-staging.json");
        const manifest = JSON.parse(await readFile(path, "utf8"));
        edit(manifest);
        await writeFile(path, JSON.stringify(manifest));
      },
      cleanup: () => rm(base, { recursive: true, force: true }),
    };
  });
});

Deno.test("LocalFilestore specifics", async (t) => {
  const base = await makeBase();
  const production = join(base, "production", "Pr042", "20250611_093000");
  const staging = join(base, "staging", "Pr042", "20250611_093000");
  try {
    await t.step("checkReady() refuses a file where the staging directory should be", async () => {
      const other = await makeBase();
      await rm(join(other, "staging"), { recursive: true });
      await writeFile(join(other, "staging"), "");
      const error = await store(other).checkReady().catch((e: Error) => e);
      assert.ok(error instanceof FilestoreNotReadyError);
      assert.equal(error.message, "Cannot use the staging area: it is not a directory");
      assert.ok(!error.message.includes(other));
      await rm(other, { recursive: true });
    });

    await t.step(
      "stage() lays files out under staging/{project}/{start}/ with a manifest",
      async () => {
        await store(base).stage(RUN, "onc", writeFiles({ "data/outputs/onc/t.csv": "a,b\n1,2\n" }));
        assert.equal(await readFile(join(staging, "data/outputs/onc/t.csv"), "utf8"), "a,b\n1,2\n");
        const manifest = JSON.parse(await readFile(join(staging, ".cr8tor-staging.json"), "utf8"));
        assert.deepEqual(
          manifest.files.map((f: { path: string; datasets: string[] }) => [f.path, f.datasets]),
          [
            ["data/outputs/onc/t.csv", ["onc"]],
          ],
        );
        assert.deepEqual((await readdir(staging)).sort(), [".cr8tor-staging.json", "data"]);
      },
    );

    await t.step("publish() writes a valid BagIt bag and removes staging", async () => {
      await store(base).stage(
        RUN,
        "ref",
        writeFiles({ "data/outputs/ref/codes.csv": "code\nC1\n" }),
      );
      await store(base).publish(RUN);
      assert.deepEqual(await bagProblems(production), []);
      assert.deepEqual((await readdir(production)).sort(), [
        "bag-info.txt",
        "bagit.txt",
        "data",
        "manifest-sha512.txt",
        "tagmanifest-sha512.txt",
      ]);
      assert.equal(
        await readFile(join(production, "bag-info.txt"), "utf8"),
        "Bagging-Date: 2025-06-11\nPayload-Oxum: 16.2\nExternal-Identifier: Pr042/20250611_093000\n" +
          "Bag-Software-Agent: cr8tor-publisher-ts\n",
      );
      await assert.rejects(stat(staging), { code: "ENOENT" });
      assert.deepEqual(await readdir(join(base, "production", "Pr042")), ["20250611_093000"]);
    });

    await t.step(
      "a tampered payload file in production fails the independent bag check",
      async () => {
        await appendFile(join(production, "data/outputs/ref/codes.csv"), "C2\n");
        const problems = await bagProblems(production);
        assert.ok(problems.some((p) => p.includes("Payload-Oxum")));
        assert.ok(problems.some((p) => p.includes("manifest-sha512.txt")));
      },
    );

    await t.step("recover() removes unfinished work and restores an interrupted swap", async () => {
      const projectDir = join(base, "production", "Pr042");
      await mkdir(
        join(projectDir, ".publish-20250611_093000-11111111-1111-1111-1111-111111111111", "data"),
        {
          recursive: true,
        },
      );
      // A swap cut short: the previous bag was moved aside, the new one never moved in.
      await mkdir(join(projectDir, "20240101_000000", "data"), { recursive: true });
      await writeFile(join(projectDir, "20240101_000000", "bagit.txt"), "previous");
      await rename(
        join(projectDir, "20240101_000000"),
        join(projectDir, ".old-20240101_000000-22222222-2222-2222-2222-222222222222"),
      );
      // A swap that completed but did not delete the old bag.
      await mkdir(join(projectDir, ".old-20250611_093000-33333333-3333-3333-3333-333333333333"));
      const runDir = join(base, "staging", "Pr042", "20990101_000000");
      await mkdir(join(runDir, ".work-44444444-4444-4444-4444-444444444444"), { recursive: true });
      await writeFile(
        join(runDir, ".cr8tor-staging.json.55555555-5555-5555-5555-555555555555.tmp"),
        "{",
      );

      const swept = await store(base).recover();
      assert.equal(swept.length, 5);
      assert.deepEqual((await readdir(projectDir)).sort(), ["20240101_000000", "20250611_093000"]);
      assert.equal(
        await readFile(join(projectDir, "20240101_000000", "bagit.txt"), "utf8"),
        "previous",
      );
      assert.deepEqual(await readdir(runDir), []);
      assert.deepEqual(await store(base).recover(), []);
    });
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});

/** The permission bits of every file and folder under `dir` (links not followed), by relative path. */
async function modesUnder(dir: string, prefix = ""): Promise<Map<string, string>> {
  const modes = new Map<string, string>();
  for (const name of (await readdir(dir)).sort()) {
    const info = await lstat(join(dir, name));
    const path = `${prefix}${name}`;
    modes.set(path, `${info.isDirectory() ? "d" : "f"}${(info.mode & 0o7777).toString(8)}`);
    if (info.isDirectory()) {
      for (const [p, m] of await modesUnder(join(dir, name), `${path}/`)) modes.set(p, m);
    }
  }
  return modes;
}

Deno.test("LocalFilestore creates files 0600 and folders 0700 whatever the umask, or the modes given", async (t) => {
  const cases: [string, number, FileModes | undefined, string, string][] = [
    ["owner-only by default, umask 000", 0o000, undefined, "f600", "d700"],
    ["owner-only by default, umask 077", 0o077, undefined, "f600", "d700"],
    ["configured 0640/0750, umask 077", 0o077, { file: 0o640, dir: 0o750 }, "f640", "d750"],
  ];
  for (const [name, umask, modes, file, dir] of cases) {
    await t.step(name, async () => {
      const base = await makeBase();
      const previous = Deno.umask(umask);
      try {
        const filestore = new LocalFilestore(base, {
          manifestKey: TEST_MANIFEST_KEY,
          ...(modes === undefined ? {} : { modes }),
        });
        await filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "1" }));
        const staged = await modesUnder(join(base, "staging"));
        await filestore.stage(RUN, "b", writeFiles({ "data/outputs/b/t.csv": "2" }));
        await filestore.publish(RUN);
        const published = await modesUnder(join(base, "production"));
        assert.deepEqual(Object.fromEntries(staged), {
          "Pr042": dir,
          "Pr042/20250611_093000": dir,
          "Pr042/20250611_093000/.cr8tor-staging.json": file,
          "Pr042/20250611_093000/data": dir,
          "Pr042/20250611_093000/data/outputs": dir,
          "Pr042/20250611_093000/data/outputs/a": dir,
          "Pr042/20250611_093000/data/outputs/a/t.csv": file,
        });
        const bag = "Pr042/20250611_093000";
        assert.deepEqual(Object.fromEntries(published), {
          "Pr042": dir,
          [bag]: dir,
          [`${bag}/bag-info.txt`]: file,
          [`${bag}/bagit.txt`]: file,
          [`${bag}/data`]: dir,
          [`${bag}/data/outputs`]: dir,
          [`${bag}/data/outputs/a`]: dir,
          [`${bag}/data/outputs/a/t.csv`]: file,
          [`${bag}/data/outputs/b`]: dir,
          [`${bag}/data/outputs/b/t.csv`]: file,
          [`${bag}/manifest-sha512.txt`]: file,
          [`${bag}/tagmanifest-sha512.txt`]: file,
        });
      } finally {
        Deno.umask(previous);
        await rm(base, { recursive: true, force: true });
      }
    });
  }
});

Deno.test("LocalFilestore.recover() never follows, removes or renames a link, and reports it", async () => {
  const root = await Deno.makeTempDir({ prefix: "cr8tor-sweep-links-" });
  try {
    const base = join(root, "base");
    const outside = join(root, "outside");
    await mkdir(join(base, "staging"), { recursive: true });
    await mkdir(join(base, "production"));
    await mkdir(join(outside, "bag", "data"), { recursive: true });
    await writeFile(join(outside, "keep.txt"), "keep");
    await writeFile(join(outside, "bag", "data", "x"), "x");
    const listing = async () => [...(await modesUnder(outside)).keys()];
    const before = await listing();
    const runDir = join(base, "staging", "Pr042", "20250611_093000");
    const projectDir = join(base, "production", "Pr042");
    await mkdir(runDir, { recursive: true });
    await mkdir(projectDir, { recursive: true });
    // An interrupted swap whose final place is now a link: the previous bag is not moved through it.
    await mkdir(join(projectDir, ".old-20230101_000000-66666666-6666-6666-6666-666666666666"));
    const links: [string, string][] = [
      [join(projectDir, "20230101_000000"), join(outside, "bag")],
      [join(runDir, ".work-11111111-1111-1111-1111-111111111111"), outside],
      [
        join(runDir, ".cr8tor-staging.json.22222222-2222-2222-2222-222222222222.tmp"),
        join(outside, "keep.txt"),
      ],
      [join(projectDir, ".publish-20250611_093000-33333333-3333-3333-3333-333333333333"), outside],
      [
        join(projectDir, ".old-20240101_000000-44444444-4444-4444-4444-444444444444"),
        join(outside, "bag"),
      ],
      [join(base, "staging", "Linked"), outside],
      [join(base, "production", "Linked"), outside],
    ];
    for (const [path, target] of links) await symlink(target, path);
    // A hard link to a file outside is never deleted either (the sweep would only drop one name, but a
    // file with two names is not the filestore's).
    await link(
      join(outside, "keep.txt"),
      join(runDir, ".cr8tor-staging.json.55555555-5555-5555-5555-555555555555.tmp"),
    );
    const warnings: Record<string, string>[] = [];
    const filestore = new LocalFilestore(base, {
      manifestKey: TEST_MANIFEST_KEY,
      onWarning: (event, fields) => warnings.push({ event, ...fields }),
    });

    assert.deepEqual(await filestore.recover(), []);
    assert.deepEqual(await listing(), before);
    assert.equal(await readFile(join(outside, "keep.txt"), "utf8"), "keep");
    for (const [path] of links) assert.ok((await lstat(path)).isSymbolicLink(), path);
    assert.deepEqual((await readdir(join(base, "production", "Pr042"))).sort(), [
      ".old-20230101_000000-66666666-6666-6666-6666-666666666666",
      ".old-20240101_000000-44444444-4444-4444-4444-444444444444",
      ".publish-20250611_093000-33333333-3333-3333-3333-333333333333",
      "20230101_000000",
    ]);
    assert.deepEqual(
      warnings.map((w) => `${w.event} ${w.path}: ${w.reason}`).sort(),
      [
        "unsafe_filesystem_entry production/Linked: is a symbolic link",
        "unsafe_filesystem_entry production/Pr042/.old-20240101_000000-44444444-4444-4444-4444-444444444444: is a symbolic link",
        "unsafe_filesystem_entry production/Pr042/.publish-20250611_093000-33333333-3333-3333-3333-333333333333: is a symbolic link",
        "unsafe_filesystem_entry production/Pr042/20230101_000000: is a symbolic link",
        "unsafe_filesystem_entry staging/Linked: is a symbolic link",
        "unsafe_filesystem_entry staging/Pr042/20250611_093000/.cr8tor-staging.json.22222222-2222-2222-2222-222222222222.tmp: is a symbolic link",
        "unsafe_filesystem_entry staging/Pr042/20250611_093000/.cr8tor-staging.json.55555555-5555-5555-5555-555555555555.tmp: is a file with 2 names (a hard link)",
        "unsafe_filesystem_entry staging/Pr042/20250611_093000/.work-11111111-1111-1111-1111-111111111111: is a symbolic link",
      ],
    );
    assert.ok(warnings.every((w) => !JSON.stringify(w).includes(root)), "no absolute path");
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

Deno.test("LocalFilestore keeps an interrupted stage's files aside for resuming", async (t) => {
  const sha = (text: string) => createHash("sha512").update(text).digest("hex");
  const interrupted = (files: Record<string, string>) => async (work: StagingWork) => {
    await writeFiles(files)(work);
    throw new RunInterruptedError();
  };
  const reusing = (path: string, content: string) => async (work: StagingWork) => {
    const kept = await work.reuse(path, sha(content));
    return kept === undefined ? [] : [kept];
  };

  await t.step(
    "an interrupted stage moves its dataset's files to .resumable/ and nothing else",
    async () => {
      const base = await makeBase();
      try {
        const runDir = join(base, "staging", RUN.project, RUN.startTime);
        await store(base).stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "old" }));
        const manifest = await readFile(join(runDir, ".cr8tor-staging.json"), "utf8");
        await assert.rejects(
          store(base).stage(
            RUN,
            "a",
            interrupted({ "data/outputs/a/t.csv": "new", "data/outputs/database.duckdb": "db" }),
          ),
          RunInterruptedError,
        );
        assert.deepEqual((await readdir(runDir)).sort(), [
          ".cr8tor-staging.json",
          ".resumable",
          "data",
        ]);
        assert.equal(await readFile(join(runDir, ".cr8tor-staging.json"), "utf8"), manifest);
        assert.equal(await readFile(join(runDir, "data/outputs/a/t.csv"), "utf8"), "old");
        assert.equal(
          await readFile(join(runDir, ".resumable/a/data/outputs/a/t.csv"), "utf8"),
          "new",
        );
        assert.deepEqual(await readdir(join(runDir, ".resumable/a/data/outputs")), ["a"]);
      } finally {
        await rm(base, { recursive: true, force: true });
      }
    },
  );

  for (
    const [name, plant] of [
      ["a symbolic link", (target: string, path: string) => symlink(target, path)],
      ["a hard link", (target: string, path: string) => link(target, path)],
    ] as const
  ) {
    await t.step(
      `reuse() refuses ${name} in the left-over folder, even with matching bytes`,
      async () => {
        const base = await makeBase();
        try {
          const runDir = join(base, "staging", RUN.project, RUN.startTime);
          const outside = join(base, "outside.csv");
          await writeFile(outside, "secret");
          await mkdir(join(runDir, ".resumable/a/data/outputs/a"), { recursive: true });
          await plant(outside, join(runDir, ".resumable/a/data/outputs/a/t.csv"));
          const error = await store(base).stage(RUN, "a", reusing("data/outputs/a/t.csv", "secret"))
            .catch((e: Error) => e);
          assert.ok(error instanceof UnsafeFilesystemEntryError, String(error));
          assert.equal(await readFile(outside, "utf8"), "secret");
          // The failed stage removed the left-over folder (the link itself, never its target).
          assert.deepEqual(await readdir(runDir).catch(() => []), [], "nothing staged");
        } finally {
          await rm(base, { recursive: true, force: true });
        }
      },
    );
  }

  await t.step("stage() refuses a left-over folder that is a link before writing", async () => {
    const base = await makeBase();
    try {
      const runDir = join(base, "staging", RUN.project, RUN.startTime);
      await mkdir(join(base, "elsewhere"));
      await mkdir(join(runDir, ".resumable"), { recursive: true });
      await symlink(join(base, "elsewhere"), join(runDir, ".resumable/a"));
      let written = false;
      const error = await store(base).stage(RUN, "a", (work) => {
        written = true;
        return writeFiles({ "data/outputs/a/t.csv": "x" })(work);
      }).catch((e: Error) => e);
      assert.ok(error instanceof UnsafeFilesystemEntryError, String(error));
      assert.equal(written, false);
      assert.ok((await lstat(join(runDir, ".resumable/a"))).isSymbolicLink());
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  await t.step(
    "recover() keeps a killed stage's files for resuming and sweeps day-old left-overs",
    async () => {
      const base = await makeBase();
      try {
        const runDir = join(base, "staging", RUN.project, RUN.startTime);
        const work = join(runDir, ".work-11111111-1111-1111-1111-111111111111-a");
        await mkdir(join(work, "data/outputs/a"), { recursive: true });
        await writeFile(join(work, "data/outputs/a/t.csv"), "done");
        await writeFile(join(work, "data/outputs/a/u.csv"), "half");
        await mkdir(join(runDir, ".resumable/old/data/outputs/old"), { recursive: true });
        await writeFile(join(runDir, ".resumable/old/data/outputs/old/t.csv"), "stale");
        const twoDaysAgo = new Date(Date.now() - 2 * 24 * 60 * 60 * 1000);
        await utimes(join(runDir, ".resumable/old"), twoDaysAgo, twoDaysAgo);

        const swept = await store(base).recover();
        assert.deepEqual(swept.sort(), [
          "staging/Pr042/20250611_093000/.resumable/old",
          "staging/Pr042/20250611_093000/.work-11111111-1111-1111-1111-111111111111-a",
        ]);
        assert.deepEqual(await readdir(join(runDir, ".resumable")), ["a"]);
        assert.deepEqual(await store(base).recover(), [], "a young left-over stays");

        const staged = await store(base).stage(RUN, "a", reusing("data/outputs/a/t.csv", "done"));
        assert.deepEqual(staged, [{ path: "data/outputs/a/t.csv", sha512: sha("done"), bytes: 4 }]);
        assert.ok(!(await readdir(runDir)).includes(".resumable"), "removed after the stage");
      } finally {
        await rm(base, { recursive: true, force: true });
      }
    },
  );
});

Deno.test("LocalFilestore signs a release into the bag: crate in the tag manifest, receipt over it, not listed", async () => {
  const base = await makeBase();
  try {
    const production = join(base, "production", "Pr042", "20250611_093000");
    const signer = await testReleaseSigner();
    await store(base).stage(RUN, "onc", writeFiles({ "data/outputs/onc/t.csv": "a\n1\n" }));
    await store(base).publish(RUN, testReleaseSigning(RUN, signer));
    assert.deepEqual(await bagProblems(production), []);
    const tagManifest = await readFile(join(production, "tagmanifest-sha512.txt"), "utf8");
    const listed = tagManifest.trim().split("\n").map((line) => line.split("  ")[1]);
    assert.ok(listed.includes(CRATE_TAG_FILE));
    assert.ok(!listed.includes(RECEIPT_TAG_FILE));
    const crateText = await readFile(join(production, CRATE_TAG_FILE), "utf8");
    assert.ok(tagManifest.includes(`${sha512Of(crateText)}  ${CRATE_TAG_FILE}\n`));
    const claims = await verifyReceipt(
      await readFile(join(production, RECEIPT_TAG_FILE), "utf8"),
      await signer.keySet(),
    );
    assert.equal(claims.subject.sha512, sha512Of(tagManifest));
    assert.deepEqual(
      (await readdir(production)).sort(),
      [
        "bag-info.txt",
        "bagit.txt",
        "data",
        "manifest-sha512.txt",
        RECEIPT_TAG_FILE,
        CRATE_TAG_FILE,
        "tagmanifest-sha512.txt",
      ].sort(),
    );
  } finally {
    await rm(base, { recursive: true });
  }
});

Deno.test("LocalFilestore: a signer that fails leaves production without a bag and staging as it was", async () => {
  const base = await makeBase();
  try {
    await store(base).stage(RUN, "onc", writeFiles({ "data/outputs/onc/t.csv": "a\n1\n" }));
    const failing = {
      ...testReleaseSigning(RUN, await testReleaseSigner()),
      sign: () => Promise.reject(new Error("key store down")),
    };
    await assert.rejects(store(base).publish(RUN, failing), /key store down/);
    assert.deepEqual(await readdir(join(base, "production")), []);
    assert.deepEqual(
      (await readdir(join(base, "staging", "Pr042", "20250611_093000"))).sort(),
      [".cr8tor-staging.json", "data"],
    );
  } finally {
    await rm(base, { recursive: true });
  }
});

function sha512Of(text: string): string {
  return createHash("sha512").update(text, "utf8").digest("hex");
}

Deno.test("LocalFilestore.revoke(): hidden folders survive the sweep; links are refused", async (t) => {
  const published = async () => {
    const base = await makeBase();
    const filestore = store(base);
    await filestore.stage(
      RUN,
      "a",
      writeFiles({ "data/outputs/a/t.csv": "t", "data/outputs/a/u.csv": "u" }),
    );
    await filestore.publish(RUN);
    await filestore.stage(RUN, "a", writeFiles({ "data/outputs/a/t.csv": "t2" }));
    return { base, filestore };
  };

  await t.step("recover() never removes a .revoking- folder; revoke() finishes it", async () => {
    const { base, filestore } = await published();
    try {
      const failure = new Error("stopped");
      await assert.rejects(
        filestore.revoke(RUN, {
          mode: "delete",
          releaseId: "rel-1",
          onRemoving: () => Promise.reject(failure),
        }),
        failure,
      );
      assert.deepEqual(await readdir(join(base, "production/Pr042")), [
        ".revoking-20250611_093000",
      ]);
      await filestore.recover();
      assert.deepEqual(await readdir(join(base, "production/Pr042")), [
        ".revoking-20250611_093000",
      ]);
      const revoked = await filestore.revoke(RUN, {
        mode: "delete",
        releaseId: "rel-1",
        onRemoving: () => Promise.resolve(),
      });
      assert.ok(revoked.files.some((f) => f.area === "production"));
      // Staging was not reached by the first attempt: it is revoked now.
      assert.ok(revoked.files.some((f) => f.area === "staging"));
      assert.deepEqual(await readdir(join(base, "production")), []);
      assert.deepEqual(await readdir(join(base, "staging")), []);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  for (
    const [kind, make] of [
      ["a symbolic link", (target: string, path: string) => symlink(target, path)],
      ["a hard link", (target: string, path: string) => link(target, path)],
    ] as const
  ) {
    await t.step(
      `a run holding ${kind} is refused before anything is hidden or removed`,
      async () => {
        const { base, filestore } = await published();
        try {
          const outside = join(base, "outside.txt");
          await writeFile(outside, "not the service's");
          await make(
            outside,
            join(base, "production", RUN.project, RUN.startTime, "data/outputs/a/x.csv"),
          );
          await assert.rejects(
            filestore.revoke(RUN, {
              mode: "delete",
              releaseId: "rel-1",
              onRemoving: () => assert.fail("nothing is removed"),
            }),
            UnsafeFilesystemEntryError,
          );
          assert.equal(await readFile(outside, "utf8"), "not the service's");
          assert.deepEqual(await readdir(join(base, "production/Pr042")), [RUN.startTime]);
        } finally {
          await rm(base, { recursive: true, force: true });
        }
      },
    );
  }
});
